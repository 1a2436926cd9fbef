package admin

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/corral-dev/corral/agent/oidc"
	"github.com/corral-dev/corral/internal/testutil"
	"github.com/corral-dev/corral/policy"
	"github.com/corral-dev/corral/policy/approval"
)

type web struct {
	*api
	issuer   *testutil.OIDCIssuer
	sessions *Sessions
	tokens   *oidc.Verifier
}

// serveWeb serves the API and the page over HTTPS as the agent does on
// approvals.listen: bearer tokens or the page's session cookie.
func serveWeb(t *testing.T) *web {
	t.Helper()
	issuer := testutil.StartOIDCIssuer(t)
	v := oidc.New(nil, slog.New(slog.DiscardHandler))
	v.SetIssuers([]oidc.Issuer{{URL: issuer.URL, Audiences: []string{"corral"}}})
	srv := &Server{Log: slog.New(slog.DiscardHandler), Heartbeat: time.Hour}
	b := newBroker(t, srv)
	srv.Approvals = b
	sessions := &Sessions{Tokens: v}
	hs := httptest.NewTLSServer(srv.Handler(&Web{Bearer: &Bearer{Tokens: v}, Sessions: sessions}))
	t.Cleanup(func() { srv.Close(); hs.Close() })
	return &web{api: &api{broker: b, srv: srv, client: hs.Client(), base: hs.URL}, issuer: issuer, sessions: sessions, tokens: v}
}

type answer struct {
	status int
	header http.Header
	body   string
}

// do sends a call with the session cookie (when not "") and headers.
func (w *web) do(t *testing.T, method, path, cookie, body string, headers ...string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, w.base+path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: SessionCookie, Value: cookie})
	}
	resp, err := w.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func loginBody(token string) string {
	b, _ := json.Marshal(Login{Token: token})
	return string(b)
}

// login logs in with token and returns the session cookie.
func (w *web) login(t *testing.T, token string) *http.Cookie {
	t.Helper()
	a := w.do(t, "POST", "/login", "", loginBody(token))
	if a.status != 200 {
		t.Fatalf("login: %d %s", a.status, a.body)
	}
	resp := http.Response{Header: a.header}
	for _, c := range resp.Cookies() {
		if c.Name == SessionCookie {
			return c
		}
	}
	t.Fatalf("no session cookie: %v", a.header)
	return nil
}

var csrfAttr = regexp.MustCompile(`data-csrf="([^"]*)"`)

// csrf is the session's CSRF token, as the page gives it.
func (w *web) csrf(t *testing.T, c *http.Cookie) string {
	t.Helper()
	m := csrfAttr.FindStringSubmatch(w.do(t, "GET", "/", c.Value, "").body)
	if m == nil {
		t.Fatal("no CSRF token on the page")
	}
	return m[1]
}

func TestWebLogin(t *testing.T) {
	w := serveWeb(t)
	requester := policy.Workload{UID: 1000, Exe: "/usr/bin/psql", OIDC: &policy.OIDC{Issuer: w.issuer.URL, Subject: "dave", Groups: []string{"dba"}}}
	r := w.request(t, requester, "group:dba")

	// No session: the login form, under a strict CSP, with no inline script.
	a := w.do(t, "GET", "/", "", "")
	if a.status != 200 || !strings.Contains(a.body, `<form id="login"`) || strings.Contains(a.body, r.ID) {
		t.Fatalf("page without a session: %d\n%s", a.status, a.body)
	}
	if csp := a.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Fatalf("CSP %q", csp)
	}
	if regexp.MustCompile(`<script>|<script [^>]*>[^<]`).MatchString(a.body) || strings.Contains(a.body, " on") && regexp.MustCompile(` on[a-z]+=`).MatchString(a.body) {
		t.Fatal("the page has inline script")
	}
	js := w.do(t, "GET", "/static/app.js", "", "")
	if js.status != 200 || !strings.HasPrefix(js.header.Get("Content-Type"), "text/javascript") || !strings.Contains(js.body, "X-Corral-CSRF") {
		t.Fatalf("script: %d %v", js.status, js.header)
	}
	if strings.Contains(js.body, "localStorage") || strings.Contains(js.body, "sessionStorage") {
		t.Fatal("the script keeps something in the browser's storage")
	}

	// Tokens the API refuses do not log in.
	forged := testutil.SignJWT(t, jose.RS256, mustKey(t), "k1", w.issuer.Claims(nil))
	for _, c := range []struct{ name, token, says string }{
		{"empty", "", "paste an OIDC ID token"},
		{"expired", w.issuer.Token(t, map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}), "token expired"},
		{"wrong audience", w.issuer.Token(t, map[string]any{"aud": "elsewhere"}), "audience"},
		{"forged", forged, "signature"},
	} {
		a := w.do(t, "POST", "/login", "", loginBody(c.token))
		if a.status != 401 || !strings.Contains(a.body, c.says) || a.header.Get("Set-Cookie") != "" {
			t.Fatalf("login with %s: %d %s %v", c.name, a.status, a.body, a.header)
		}
	}
	if w.sessions.Len() != 0 {
		t.Fatal("a refused login left a session")
	}
	// Only a JSON POST from the page's own origin logs in.
	good := w.issuer.Token(t, nil)
	if a := w.do(t, "POST", "/login", "", loginBody(good), "Content-Type", "application/x-www-form-urlencoded"); a.status != 403 {
		t.Fatalf("form login: %d", a.status)
	}
	if a := w.do(t, "POST", "/login", "", loginBody(good), "Origin", "https://evil.example"); a.status != 403 {
		t.Fatalf("login from another origin: %d", a.status)
	}
	if a := w.do(t, "POST", "/login", "", loginBody(good), "Sec-Fetch-Site", "cross-site"); a.status != 403 {
		t.Fatalf("cross-site login: %d", a.status)
	}

	// A valid token: a session cookie as the page needs it.
	exp := time.Now().Add(10 * time.Minute).Truncate(time.Second)
	c := w.login(t, w.issuer.Token(t, map[string]any{"exp": exp.Unix()}))
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Fatalf("cookie %+v", c)
	}
	if c.Expires.After(exp) || c.MaxAge <= 0 || c.MaxAge > 600 {
		t.Fatalf("cookie ends %v (max age %d), the token at %v", c.Expires, c.MaxAge, exp)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(c.Value); err != nil || len(raw) != 32 {
		t.Fatalf("session id %q: %d bytes, %v", c.Value, len(raw), err)
	}
	if strings.Contains(w.do(t, "GET", "/", c.Value, "").body, good) {
		t.Fatal("the page shows the token")
	}
	// Logging in again replaces the browser's session.
	req, _ := http.NewRequest("POST", w.base+"/login", strings.NewReader(loginBody(good)))
	req.Header.Set("Content-Type", "application/json")
	req.AddCookie(c)
	resp, err := w.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || w.sessions.Len() != 1 {
		t.Fatalf("second login: %d, %d sessions", resp.StatusCode, w.sessions.Len())
	}
	if a := w.do(t, "GET", "/v1/whoami", c.Value, ""); a.status != 401 {
		t.Fatalf("the replaced session still works: %d", a.status)
	}
	for _, nc := range resp.Cookies() {
		if nc.Name == SessionCookie {
			c = nc
		}
	}

	// The page lists what alice may see; buttons only where she may decide.
	secret := w.request(t, requester, "group:secret")
	own := w.request(t, policy.Workload{UID: 1001, OIDC: &policy.OIDC{Issuer: w.issuer.URL, Subject: "alice"}}, "group:dba")
	a = w.do(t, "GET", "/", c.Value, "")
	m := csrfAttr.FindStringSubmatch(a.body)
	if a.status != 200 || m == nil || m[1] == "" {
		t.Fatalf("page: %d\n%s", a.status, a.body)
	}
	csrf := m[1]
	if !strings.Contains(a.body, "alice@example.com") || !strings.Contains(a.body, r.ID) || !strings.Contains(a.body, "DELETE FROM orders") || strings.Contains(a.body, secret.ID) {
		t.Fatalf("page:\n%s", a.body)
	}
	section := func(body, id string) string {
		i := strings.Index(body, `id="req-`+id+`"`)
		if i < 0 {
			t.Fatalf("%s not on the page", id)
		}
		j := strings.Index(body[i:], "</article>")
		return body[i : i+j]
	}
	if s := section(a.body, r.ID); !strings.Contains(s, `data-action="approve"`) || !strings.Contains(s, `data-action="deny"`) {
		t.Fatalf("no buttons for a request alice may decide:\n%s", s)
	}
	if s := section(a.body, own.ID); strings.Contains(s, "data-action") || !strings.Contains(s, "You made this request") {
		t.Fatalf("buttons on alice's own request:\n%s", s)
	}
	if f := w.do(t, "GET", "/requests/fragment", c.Value, ""); f.status != 200 || !strings.Contains(f.body, r.ID) || strings.Contains(f.body, "<html") {
		t.Fatalf("fragment: %d\n%s", f.status, f.body)
	}
	if f := w.do(t, "GET", "/requests/fragment", "", ""); f.status != 401 {
		t.Fatalf("fragment without a session: %d", f.status)
	}

	// Reading with the cookie needs no CSRF token; deciding does.
	var who approval.Approver
	if a := w.do(t, "GET", "/v1/whoami", c.Value, ""); a.status != 200 || json.Unmarshal([]byte(a.body), &who) != nil || who.Name != "alice@example.com" || who.Via != "oidc" {
		t.Fatalf("whoami: %d %s", a.status, a.body)
	}
	approve := "/v1/requests/" + r.ID + "/approve"
	for _, h := range [][]string{
		nil,
		{CSRFHeader, "wrong"},
		{CSRFHeader, csrf, "Sec-Fetch-Site", "cross-site"},
	} {
		if a := w.do(t, "POST", approve, c.Value, `{"reason":"ok"}`, h...); a.status != 401 || !strings.Contains(a.body, "refused") && !strings.Contains(a.body, CSRFHeader) {
			t.Fatalf("approve with %v: %d %s", h, a.status, a.body)
		}
	}
	if got, _ := w.broker.Get(context.Background(), r.ID); got.State != approval.Pending {
		t.Fatalf("a call without the CSRF token decided: %s", got.State)
	}
	a = w.do(t, "POST", approve, c.Value, `{"reason":"ok"}`, CSRFHeader, csrf, "Sec-Fetch-Site", "same-origin")
	var got approval.Request
	if a.status != 200 || json.Unmarshal([]byte(a.body), &got) != nil || got.State != approval.Approved || got.DecidedBy.Name != "alice@example.com" || got.DecidedBy.Via != "oidc" {
		t.Fatalf("approve: %d %s", a.status, a.body)
	}
	// Her own request: refused by the API as well.
	if a := w.do(t, "POST", "/v1/requests/"+own.ID+"/approve", c.Value, `{}`, CSRFHeader, csrf); a.status != 403 {
		t.Fatalf("approve her own: %d %s", a.status, a.body)
	}
	// A bearer token still works without a session.
	if a := w.do(t, "GET", "/v1/whoami", "", "", "Authorization", "Bearer "+good); a.status != 200 {
		t.Fatalf("bearer: %d %s", a.status, a.body)
	}

	// Logout needs the CSRF token, ends the session and clears the cookie.
	if a := w.do(t, "POST", "/logout", c.Value, "{}"); a.status != 403 {
		t.Fatalf("logout without the CSRF token: %d", a.status)
	}
	a = w.do(t, "POST", "/logout", c.Value, "{}", CSRFHeader, csrf)
	if a.status != 204 || !strings.Contains(a.header.Get("Set-Cookie"), SessionCookie+"=;") || !strings.Contains(a.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("logout: %d %v", a.status, a.header)
	}
	if a := w.do(t, "GET", "/v1/whoami", c.Value, ""); a.status != 401 {
		t.Fatalf("whoami after logout: %d", a.status)
	}
	if a := w.do(t, "GET", "/", c.Value, ""); !strings.Contains(a.body, `<form id="login"`) || !strings.Contains(a.body, "session has ended") {
		t.Fatalf("page after logout:\n%s", a.body)
	}
}

// testSessions are Sessions of at most max, for tokens of a test issuer,
// on a clock the test moves.
func testSessions(t *testing.T, max int) (*testutil.OIDCIssuer, *Sessions, *time.Time) {
	issuer := testutil.StartOIDCIssuer(t)
	v := oidc.New(nil, slog.New(slog.DiscardHandler))
	v.SetIssuers([]oidc.Issuer{{URL: issuer.URL, Audiences: []string{"corral"}}})
	now := time.Now()
	return issuer, &Sessions{Tokens: v, Max: max, Now: func() time.Time { return now }}, &now
}

// withSession is a call carrying the session cookie id.
func withSession(id string) *http.Request {
	r := httptest.NewRequest("GET", "/v1/whoami", nil)
	r.AddCookie(&http.Cookie{Name: SessionCookie, Value: id})
	return r
}

// Sessions end with their token, and there are never more than Max.
func TestSessionBounds(t *testing.T) {
	issuer, s, now := testSessions(t, 2)
	r := httptest.NewRequest("POST", "/login", nil)
	var ids []string
	for i, ttl := range []time.Duration{time.Hour, 30 * time.Minute, 2 * time.Hour} {
		id, _, exp, err := s.Login(r, issuer.Token(t, map[string]any{"exp": now.Add(ttl).Unix()}))
		if err != nil {
			t.Fatal(i, err)
		}
		if exp.After(now.Add(ttl)) {
			t.Fatalf("session %d ends %v, after its token", i, exp)
		}
		ids = append(ids, id)
	}
	if s.Len() != 2 {
		t.Fatalf("%d sessions", s.Len())
	}
	if _, err := s.Authenticate(withSession(ids[1])); err == nil {
		t.Fatal("the session ending soonest was kept past Max")
	}
	if _, err := s.Authenticate(withSession(ids[0])); err != nil {
		t.Fatal(err)
	}
	*now = now.Add(61 * time.Minute)
	if _, err := s.Authenticate(withSession(ids[0])); err == nil {
		t.Fatal("a session outlived its token")
	}
	if s.Len() != 1 {
		t.Fatalf("%d sessions after the first ended", s.Len())
	}
	*now = now.Add(2 * time.Hour)
	if s.Len() != 0 {
		t.Fatal("expired sessions were kept")
	}
}

// One approver's logins end that approver's oldest sessions, not anyone
// else's: a token used in a loop cannot log every other approver out.
func TestSessionsPerApprover(t *testing.T) {
	issuer, s, now := testSessions(t, 16)
	r := httptest.NewRequest("POST", "/login", nil)
	login := func(sub string, ttl time.Duration) string {
		t.Helper()
		id, _, _, err := s.Login(r, issuer.Token(t, map[string]any{"sub": sub, "exp": now.Add(ttl).Unix()}))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	bob := login("bob", time.Minute) // ends before any of alice's
	var alice []string
	for i := range 3 * MaxSessionsPerApprover {
		alice = append(alice, login("alice", time.Hour+time.Duration(i)*time.Minute))
	}
	if s.Len() != MaxSessionsPerApprover+1 {
		t.Fatalf("%d sessions, want alice's %d and bob's", s.Len(), MaxSessionsPerApprover)
	}
	if who, err := s.Authenticate(withSession(bob)); err != nil || who.Subject != "bob" {
		t.Fatalf("bob's session: %v %v", who, err)
	}
	for i, id := range alice {
		_, err := s.Authenticate(withSession(id))
		if kept := i >= len(alice)-MaxSessionsPerApprover; kept != (err == nil) {
			t.Fatalf("alice's session %d: kept %v, err %v", i, kept, err)
		}
	}
}

// On the admin socket the page needs no login: the caller is who the
// kernel says it is.
func TestSocketPage(t *testing.T) {
	a := serveSocket(t)
	r := a.request(t, policy.Workload{UID: 4242}, "user:"+me(t).Username)
	resp, err := a.client.Get(a.base + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), r.ID) || strings.Contains(string(b), `id="login"`) || !strings.Contains(string(b), `data-action="approve"`) {
		t.Fatalf("%d\n%s", resp.StatusCode, b)
	}
	resp2, err := a.client.Post(a.base+"/login", "application/json", strings.NewReader(`{"token":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != 404 {
		t.Fatalf("login on the socket: %d", resp2.StatusCode)
	}
}

// An event stream is authenticated again before each event: logged out,
// the caller gets nothing more, and the stream ends.
func TestWebEventsEndAtLogout(t *testing.T) {
	w := serveWeb(t)
	c := w.login(t, w.issuer.Token(t, nil))
	csrf := w.csrf(t, c)
	req, _ := http.NewRequest("GET", w.base+"/v1/events", nil)
	req.AddCookie(c)
	resp, err := w.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() || sc.Text() != ": ready" {
		t.Fatalf("stream: %d, first line %q", resp.StatusCode, sc.Text())
	}
	if a := w.do(t, "POST", "/logout", c.Value, "{}", CSRFHeader, csrf); a.status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", a.status, a.body)
	}
	w.request(t, policy.Workload{UID: 1000, User: "app"}, "group:dba")
	for sc.Scan() { // to the stream's end
		if strings.HasPrefix(sc.Text(), "data:") {
			t.Fatalf("after logout the stream delivered %s", sc.Text())
		}
	}
}

// events opens the event stream with a bearer token, past its first line.
func (w *web) events(t *testing.T, tok string) *bufio.Scanner {
	t.Helper()
	req, _ := http.NewRequest("GET", w.base+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := w.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	if !sc.Scan() || sc.Text() != ": ready" {
		t.Fatalf("stream: %d, first line %q", resp.StatusCode, sc.Text())
	}
	return sc
}

// The stream shows each request to the caller as it is when the request
// comes: a reload that takes the groups away (the token still verifies,
// its groups now read from a claim it lacks) stops requests to those
// groups, as listing them does.
func TestWebEventsFollowTheCallersGroups(t *testing.T) {
	w := serveWeb(t)
	tok := w.issuer.Token(t, nil) // groups dba and ops, subject alice
	sc := w.events(t, tok)
	w.tokens.SetIssuers([]oidc.Issuer{{URL: w.issuer.URL, Audiences: []string{"corral"}, GroupsClaim: "roles"}})
	hidden := w.request(t, policy.Workload{UID: 1000, User: "app"}, "group:dba")
	var list RequestList
	if st := w.call(t, "GET", "/v1/requests", tok, nil, &list); st != 200 || len(list.Requests) != 0 {
		t.Fatalf("list after the reload: %d, %d requests", st, len(list.Requests))
	}
	shown := w.request(t, policy.Workload{UID: 1001, User: "svc"}, "user:alice")
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			if strings.Contains(d, hidden.ID) || !strings.Contains(d, shown.ID) {
				t.Fatalf("first event after the reload: %s; want %s, not %s", d, shown.ID, hidden.ID)
			}
			return
		}
	}
	t.Fatalf("the stream ended: %v", sc.Err())
}

// Groups a reload gives the caller reach its stream from the next
// heartbeat on.
func TestWebEventsFollowGainedGroups(t *testing.T) {
	w := serveWeb(t)
	w.srv.Heartbeat = 20 * time.Millisecond
	tok := w.issuer.Token(t, map[string]any{"groups": []string{"ops"}, "roles": []string{"dba"}})
	sc := w.events(t, tok)
	w.tokens.SetIssuers([]oidc.Issuer{{URL: w.issuer.URL, Audiences: []string{"corral"}, GroupsClaim: "roles"}})
	for sc.Scan() && sc.Text() != ": keepalive" {
	}
	r := w.request(t, policy.Workload{UID: 1000, User: "app"}, "group:dba")
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			if !strings.Contains(d, r.ID) {
				t.Fatalf("event %s, want %s", d, r.ID)
			}
			return
		}
	}
	t.Fatalf("the stream ended: %v", sc.Err())
}

// Requests a caller may not see do not push those it may off its list
// or its page: the limit counts what it is shown.
func TestListsCountOnlyWhatTheCallerSees(t *testing.T) {
	w := serveWeb(t)
	tok := w.issuer.Token(t, nil) // groups dba and ops
	mine := w.request(t, policy.Workload{UID: 1000, User: "app", CgroupPath: "/app"}, "group:dba")
	for i := range 100 {
		w.request(t, policy.Workload{UID: uint32(2000 + i), User: "flood", CgroupPath: fmt.Sprintf("/flood%d", i)}, "group:scratch")
	}
	var list RequestList
	if st := w.call(t, "GET", "/v1/requests?state=pending&limit=5", tok, nil, &list); st != 200 || len(list.Requests) != 1 || list.Requests[0].ID != mine.ID {
		t.Fatalf("list: %d, %+v; want only %s", st, list.Requests, mine.ID)
	}
	c := w.login(t, tok)
	if page := w.do(t, "GET", "/", c.Value, ""); page.status != 200 || !strings.Contains(page.body, mine.ID) {
		t.Fatalf("page: %d, without %s:\n%s", page.status, mine.ID, page.body)
	}
	// A list with nothing to show is empty, not null.
	nobody := w.issuer.Token(t, map[string]any{"sub": "nobody", "groups": []string{}})
	if a := w.do(t, "GET", "/v1/requests?state=pending", "", "", "Authorization", "Bearer "+nobody); a.status != 200 || strings.TrimSpace(a.body) != `{"requests":[]}` {
		t.Fatalf("an empty list: %d %s", a.status, a.body)
	}
}

// An issuer that does not answer says nothing of a session's token: the
// call is refused (503, no approval), and the session is still there once
// the issuer answers again.
func TestWebSessionOutlivesAnIssuerDown(t *testing.T) {
	w := serveWeb(t)
	c := w.login(t, w.issuer.Token(t, nil))
	csrf := w.csrf(t, c)
	issuers := []oidc.Issuer{{URL: w.issuer.URL, Audiences: []string{"corral"}}}
	// A reload that changes the issuer's settings discovers it anew.
	rediscover := func() {
		w.tokens.SetIssuers(nil)
		w.tokens.SetIssuers(issuers)
	}
	w.issuer.SetDown(true)
	rediscover()
	r := w.request(t, policy.Workload{UID: 4242, User: "svc"}, "group:dba")
	a := w.do(t, "POST", "/v1/requests/"+r.ID+"/approve", c.Value, `{}`, CSRFHeader, csrf)
	if a.status != http.StatusServiceUnavailable || !strings.Contains(a.body, "unreachable") || strings.Contains(a.body, "log in again") {
		t.Fatalf("approve while the issuer is down: %d %s", a.status, a.body)
	}
	if got, _ := w.broker.Get(context.Background(), r.ID); got.State != approval.Pending {
		t.Fatalf("request %s", got.State)
	}
	if page := w.do(t, "GET", "/", c.Value, ""); page.status != http.StatusServiceUnavailable || strings.Contains(page.body, `id="login"`) || !strings.Contains(page.body, "unreachable") {
		t.Fatalf("page while the issuer is down: %d %s", page.status, page.body)
	}
	if f := w.do(t, "GET", "/requests/fragment", c.Value, ""); f.status != http.StatusServiceUnavailable {
		t.Fatalf("fragment while the issuer is down: %d %s", f.status, f.body)
	}
	w.issuer.SetDown(false)
	rediscover()
	if a := w.do(t, "POST", "/v1/requests/"+r.ID+"/approve", c.Value, `{}`, CSRFHeader, csrf); a.status != 200 {
		t.Fatalf("approve once the issuer answers: %d %s", a.status, a.body)
	}
	if got, _ := w.broker.Get(context.Background(), r.ID); got.State != approval.Approved {
		t.Fatalf("request %s", got.State)
	}
}

// A session is only as good as the token it was opened with: a reload
// that removes its issuer ends it, as it refuses the token itself.
func TestWebSessionEndsWithItsIssuer(t *testing.T) {
	w := serveWeb(t)
	c := w.login(t, w.issuer.Token(t, nil))
	csrf := w.csrf(t, c)
	if a := w.do(t, "GET", "/v1/whoami", c.Value, ""); a.status != 200 {
		t.Fatalf("whoami: %d %s", a.status, a.body)
	}
	w.tokens.SetIssuers(nil)
	r := w.request(t, policy.Workload{UID: 4242, User: "svc"}, "group:dba")
	a := w.do(t, "POST", "/v1/requests/"+r.ID+"/approve", c.Value, `{}`, CSRFHeader, csrf)
	if a.status != 401 || !strings.Contains(a.body, "log in again") {
		t.Fatalf("approve after the issuer was removed: %d %s", a.status, a.body)
	}
	if got, _ := w.broker.Get(context.Background(), r.ID); got.State != approval.Pending {
		t.Fatalf("request %s", got.State)
	}
	if a := w.do(t, "GET", "/v1/whoami", c.Value, ""); a.status != 401 {
		t.Fatalf("whoami after: %d %s", a.status, a.body)
	}
}

// What a workload wrote is shown with its controls and bidirectional
// marks escaped: a reviewer reads the statement in the order it runs. A
// statement withheld (it speaks of a password) is said to be.
func TestWebPageShowsStatementsAsTheyRun(t *testing.T) {
	w := serveWeb(t)
	c := w.login(t, w.issuer.Token(t, nil))
	requester := policy.Workload{UID: 1000, User: "app"}
	for _, r := range []approval.Request{
		{Text: "DELETE FROM orders /*\u202e } \u2066WHERE id = $1\u2069 \u2066{ */", Statement: "DELETE FROM orders /*\u202e } \u2066WHERE id = 12\u2069 \u2066{ */"},
		{Text: "DELETE FROM users WHERE id = $1 OR $2 /* password */"},
	} {
		r.Requester, r.Target, r.Kind, r.Operations = requester, "orders-db", policy.KindSQL, []string{"delete"}
		r.Reason, r.Reviewers, r.Timeout = "delete needs review", []string{"group:dba"}, approval.Duration(time.Minute)
		if _, err := w.broker.Request(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	page := w.do(t, "GET", "/", c.Value, "").body
	if strings.ContainsAny(page, "\u202e\u2066\u2069") || !strings.Contains(page, `/*\u202e } \u2066WHERE id = 12\u2069`) {
		t.Errorf("the page shows bidirectional marks as they act:\n%s", page)
	}
	if !strings.Contains(page, "The statement's values (the $n above) are not shown") {
		t.Errorf("a withheld statement is not said to be:\n%s", page)
	}
}
