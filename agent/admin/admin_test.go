package admin

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/corral-dev/corral/agent/oidc"
	"github.com/corral-dev/corral/internal/testutil"
	"github.com/corral-dev/corral/policy"
	"github.com/corral-dev/corral/policy/approval"
)

type api struct {
	broker *approval.Broker
	srv    *Server
	client *http.Client
	base   string
}

func newBroker(t *testing.T, srv *Server) *approval.Broker {
	t.Helper()
	store, err := approval.OpenStore(filepath.Join(t.TempDir(), "approvals.db"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := approval.NewBroker(context.Background(), store, approval.Options{Events: srv.Publish})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(); store.Close() })
	return b
}

// serveSocket serves the API on a real unix socket, as the agent does.
func serveSocket(t *testing.T) *api {
	t.Helper()
	srv := &Server{Log: slog.New(slog.DiscardHandler), Heartbeat: time.Hour}
	b := newBroker(t, srv)
	srv.Approvals = b
	path := filepath.Join(t.TempDir(), "run", "admin.sock")
	l, err := ListenUnix(path, "")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler(PeerCred{}), ConnContext: ConnContext}
	go hs.Serve(l)
	t.Cleanup(func() { srv.Close(); hs.Close() })
	return &api{broker: b, srv: srv, base: "http://corral", client: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}}
}

func (a *api) call(t *testing.T, method, path, token string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, a.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

func (a *api) request(t *testing.T, requester policy.Workload, reviewers ...string) *approval.Request {
	t.Helper()
	r, err := a.broker.Request(context.Background(), approval.Request{
		Requester: requester, Target: "orders-db", Kind: policy.KindSQL, Operations: []string{"delete"},
		Text: "DELETE FROM orders", Reason: "delete needs review", Reviewers: reviewers, Timeout: approval.Duration(time.Minute),
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func me(t *testing.T) *user.User {
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Over the socket the caller is who the kernel says it is.
func TestSocketDecisions(t *testing.T) {
	a := serveSocket(t)
	u := me(t)
	other := policy.Workload{UID: uint32(os.Getuid()) + 4242, Exe: "/usr/bin/psql"}

	var who approval.Approver
	if st := a.call(t, "GET", "/v1/whoami", "", nil, &who); st != 200 || who.Name != u.Username || who.Via != "unix" || who.UID == nil || *who.UID != uint32(os.Getuid()) {
		t.Fatalf("whoami %d %+v", st, who)
	}

	r := a.request(t, other, "user:"+u.Username)
	var e Error
	if st := a.call(t, "POST", "/v1/requests/"+r.ID+"/deny", "", Decision{}, &e); st != 400 || !strings.Contains(e.Error, "a denial needs a reason") {
		t.Fatalf("deny without reason: %d %+v", st, e)
	}
	req, _ := http.NewRequest("POST", a.base+"/v1/requests/"+r.ID+"/approve", strings.NewReader("reason=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := a.client.Do(req); err != nil || resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("form post: %v %v", resp, err)
	}
	var got approval.Request
	if st := a.call(t, "POST", "/v1/requests/"+r.ID[:10]+"/approve", "", Decision{Reason: "ok"}, &got); st != 200 || got.State != approval.Approved || got.DecidedBy.Name != u.Username || got.DecisionReason != "ok" {
		t.Fatalf("approve: %d %+v", st, got)
	}
	if st := a.call(t, "POST", "/v1/requests/"+r.ID+"/deny", "", Decision{Reason: "late"}, &e); st != 409 || !strings.Contains(e.Error, "already approved by "+u.Username) {
		t.Fatalf("second decision: %d %+v", st, e)
	}
	if st := a.call(t, "GET", "/v1/requests/r-0000", "", nil, &e); st != 404 {
		t.Fatalf("unknown request: %d", st)
	}

	// The caller's own workload's request: refused, whatever it holds.
	own := a.request(t, policy.Workload{UID: uint32(os.Getuid())}, "user:"+u.Username)
	if st := a.call(t, "POST", "/v1/requests/"+own.ID+"/approve", "", Decision{}, &e); st != 403 || !strings.Contains(e.Error, "cannot decide its own request") {
		t.Fatalf("self approval: %d %+v", st, e)
	}
	// A reviewer group the caller is not in.
	g := a.request(t, other, "group:corral-no-such-group")
	if st := a.call(t, "POST", "/v1/requests/"+g.ID+"/approve", "", Decision{}, &e); st != 403 || !strings.Contains(e.Error, "not a reviewer") {
		t.Fatalf("not a reviewer: %d %+v", st, e)
	}

	var list RequestList
	if st := a.call(t, "GET", "/v1/requests?state=pending", "", nil, &list); st != 200 || len(list.Requests) != 2 {
		t.Fatalf("pending: %d %+v", st, list)
	}
	if st := a.call(t, "GET", "/v1/requests?state=maybe", "", nil, &e); st != 400 {
		t.Fatalf("bad state: %d", st)
	}
	if st := a.call(t, "GET", "/v1/requests", "", nil, &list); st != 200 || len(list.Requests) != 3 {
		t.Fatalf("all: %d %d", st, len(list.Requests))
	}
}

func TestSocketEvents(t *testing.T) {
	a := serveSocket(t)
	resp, err := a.client.Get(a.base + "/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() || sc.Text() != ": ready" {
		t.Fatalf("first line %q", sc.Text())
	}
	r := a.request(t, policy.Workload{UID: 4242}, "user:"+me(t).Username)
	var ev StreamEvent
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if ev.Type != approval.EventRequested || ev.Request.ID != r.ID {
		t.Fatalf("event %+v", ev)
	}
}

func TestSocketFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	l, err := ListenUnix(path, "")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v %v", fi.Mode(), err)
	}
	// Served: a second agent does not take it over.
	if _, err := ListenUnix(path, ""); err == nil || !strings.Contains(err.Error(), "served by another process") {
		t.Fatalf("second listener: %v", err)
	}
	// Stale (a socket file nobody serves): replaced.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l2, err := ListenUnix(path, "")
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	l2.Close()
	if _, err := ListenUnix(path, "corral-no-such-group"); err == nil || !strings.Contains(err.Error(), "admin_group") {
		t.Fatalf("unknown group: %v", err)
	}
}

// Over HTTPS, approvers present an OIDC ID token from a configured issuer.
func TestBearerTokens(t *testing.T) {
	issuer := testutil.StartOIDCIssuer(t)
	v := oidc.New(nil, slog.New(slog.DiscardHandler))
	v.SetIssuers([]oidc.Issuer{{URL: issuer.URL, Audiences: []string{"corral"}}})
	srv := &Server{Log: slog.New(slog.DiscardHandler)}
	b := newBroker(t, srv)
	srv.Approvals = b
	hs := httptest.NewTLSServer(srv.Handler(&Bearer{Tokens: v}))
	t.Cleanup(hs.Close)
	a := &api{broker: b, srv: srv, client: hs.Client(), base: hs.URL}

	// The requester logged in with a token for subject "dave".
	requester := policy.Workload{UID: 1000, OIDC: &policy.OIDC{Issuer: issuer.URL, Subject: "dave", Groups: []string{"dba"}}}
	alg := func(claims map[string]any) string {
		// An unsigned token: header {"alg":"none"}.
		h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
		c, _ := json.Marshal(claims)
		return b64(h) + "." + b64(c) + "."
	}
	forger := testutil.SignJWT(t, jose.RS256, mustKey(t), "k1", issuer.Claims(nil))
	for _, c := range []struct {
		name, token string
		status      int
		says        string
	}{
		{"no token", "", 401, "present an OIDC ID token"},
		// Not a reviewer, nor its requester: the request is none of theirs
		// to see, and the refusal does not name its reviewers.
		{"wrong group", issuer.Token(t, map[string]any{"sub": "erin", "email": nil, "groups": []string{"ops"}}), 404, "no such request among those you may see"},
		{"expired", issuer.Token(t, map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}), 401, "token expired"},
		{"wrong audience", issuer.Token(t, map[string]any{"aud": "elsewhere"}), 401, "audience"},
		{"alg none", alg(issuer.Claims(nil)), 401, "alg none"},
		{"forged", forger, 401, "signature"},
		{"requester's own token", issuer.Token(t, map[string]any{"sub": "dave", "email": nil}), 403, "cannot decide its own request"},
		{"valid reviewer", issuer.Token(t, nil), 200, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := a.request(t, requester, "group:dba")
			var e Error
			st := a.call(t, "POST", "/v1/requests/"+r.ID+"/approve", c.token, Decision{}, &e)
			if st != c.status || !strings.Contains(e.Error, c.says) {
				t.Fatalf("%d %q, want %d %q", st, e.Error, c.status, c.says)
			}
			got, _ := b.Get(context.Background(), r.ID)
			if (c.status == 200) != (got.State == approval.Approved) {
				t.Fatalf("state %s", got.State)
			}
			if c.status == 200 && (got.DecidedBy.Name != "alice@example.com" || got.DecidedBy.Via != "oidc" || got.DecidedBy.Subject != "alice") {
				t.Fatalf("decided by %+v", got.DecidedBy)
			}
		})
	}
	// A token holder sees only what it may decide or made.
	b.Request(context.Background(), approval.Request{Requester: requester, Target: "t", Kind: "sql", Operations: []string{"delete"}, Reviewers: []string{"group:secret"}})
	var list RequestList
	if st := a.call(t, "GET", "/v1/requests", issuer.Token(t, nil), nil, &list); st != 200 {
		t.Fatal(st)
	}
	for _, r := range list.Requests {
		if r.Reviewers[0] == "group:secret" {
			t.Fatalf("a token holder sees a request it may not decide: %+v", r)
		}
	}
	if len(list.Requests) != 8 {
		t.Fatalf("%d requests visible", len(list.Requests))
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustKey(t *testing.T) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
