package postgres

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/policy"
)

// A syntactically real JWT (header {"alg":"RS256","typ":"JWT"}); the
// signature part is irrelevant to the fake verifier.
const (
	goodToken    = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
	malloryToken = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJl"
	badToken     = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9.Zm9yZ2Vk"
)

// fakeTokens accepts goodToken as alice of group dba and malloryToken as
// mallory, and refuses the rest.
type fakeTokens struct {
	mu   sync.Mutex
	seen []string
}

func (f *fakeTokens) Verify(_ context.Context, raw string) (*policy.OIDC, error) {
	f.mu.Lock()
	f.seen = append(f.seen, raw)
	f.mu.Unlock()
	switch raw {
	case goodToken:
		return &policy.OIDC{Issuer: "https://issuer.example", Subject: "alice", Groups: []string{"dba"}}, nil
	case malloryToken:
		return &policy.OIDC{Issuer: "https://issuer.example", Subject: "mallory"}, nil
	}
	return nil, errors.New("token signature does not verify with the issuer's keys")
}

func (f *fakeTokens) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seen)
}

// tokenPolicy: tokens with group dba get the writer credential; the
// kernel identity alone gets default; subject mallory is denied.
func tokenPolicy(in policy.Input) policy.Decision {
	switch o := in.Workload.OIDC; {
	case o == nil:
		return policy.Decision{Result: policy.Allow, Rule: "kernel"}
	case o.Subject == "mallory":
		return policy.Decision{Result: policy.Deny, Reason: `connect is denied by rule "no-mallory"`}
	case slices.Contains(o.Groups, "dba"):
		return policy.Decision{Result: policy.Allow, Rule: "dba", Credential: "writer"}
	}
	return policy.Decision{Result: policy.Deny, Reason: "no rule"}
}

// upstreamLogin is what the fake server was told at login.
type upstreamLogin struct {
	user, password string
}

// fakeCredentials: alias a logs in as user a with password a-secret.
type fakeCredentials struct{}

func (fakeCredentials) Credential(_, alias string) (Credential, error) {
	return Credential{Username: alias, Password: alias + "-secret"}, nil
}

// pipeDialer hands pgconn one end of a pipe whose other end is a fake
// PostgreSQL that asks for a password and reports what it was given.
type pipeDialer struct {
	logins chan upstreamLogin
}

func (d pipeDialer) DialContext(context.Context, string, string) (net.Conn, error) {
	ours, theirs := net.Pipe()
	go func() {
		defer theirs.Close()
		be := pgproto3.NewBackend(theirs, theirs)
		msg, err := be.ReceiveStartupMessage()
		if err != nil {
			return
		}
		sm, ok := msg.(*pgproto3.StartupMessage)
		if !ok {
			return
		}
		be.Send(&pgproto3.AuthenticationCleartextPassword{})
		be.Flush()
		be.SetAuthType(pgproto3.AuthTypeCleartextPassword)
		msg, err = be.Receive()
		if err != nil {
			return
		}
		d.logins <- upstreamLogin{user: sm.Parameters["user"], password: msg.(*pgproto3.PasswordMessage).Password}
		be.Send(&pgproto3.AuthenticationOk{})
		be.Send(&pgproto3.ParameterStatus{Name: "client_encoding", Value: "UTF8"})
		be.Send(&pgproto3.ParameterStatus{Name: "standard_conforming_strings", Value: "on"})
		be.Send(&pgproto3.BackendKeyData{ProcessID: 7, SecretKey: []byte{1, 2, 3, 4}})
		be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		be.Flush()
		io.Copy(io.Discard, theirs)
	}()
	return ours, nil
}

type loginTest struct {
	h      *Handler
	conn   *intercept.Conn
	client *pgproto3.Frontend
	cli    net.Conn
	tokens *fakeTokens
	logins chan upstreamLogin
	logs   *bytes.Buffer
	done   chan error
}

// startLogin serves one connection to a target with the given client_auth
// and kernel admission.
func startLogin(t *testing.T, mode ClientAuth, admission policy.Decision) *loginTest {
	t.Helper()
	cli, srv := net.Pipe()
	deadline := time.Now().Add(20 * time.Second)
	cli.SetDeadline(deadline)
	t.Cleanup(func() { cli.Close(); srv.Close() })
	lt := &loginTest{tokens: &fakeTokens{}, logins: make(chan upstreamLogin, 1), logs: &bytes.Buffer{}, cli: cli, done: make(chan error, 1)}
	lt.h = &Handler{
		Policy:      stubDecider(tokenPolicy),
		Credentials: fakeCredentials{},
		Upstreams:   func(string) Upstream { return Upstream{SSLMode: "disable"} },
		ClientAuth:  func(string) ClientAuth { return mode },
		Tokens:      lt.tokens,
		Dialer:      pipeDialer{lt.logins},
		MaskKey:     testKey,
		Log:         slog.New(slog.NewTextHandler(lt.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	t.Cleanup(lt.h.Close)
	lt.conn = &intercept.Conn{Conn: srv, SessionID: "s-test", Admission: admission}
	lt.conn.Meta.Target = intercept.Target{Name: "orders-db", Protocol: "postgres"}
	lt.conn.Meta.OrigDst = netip.MustParseAddrPort("10.0.0.5:5432")
	go func() { lt.done <- lt.h.Serve(context.Background(), lt.conn) }()
	lt.client = pgproto3.NewFrontend(cli, cli)
	lt.client.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "whoever", "database": "orders"}})
	if err := lt.client.Flush(); err != nil {
		t.Fatal(err)
	}
	return lt
}

// receive reads one message from corral, copied (Receive reuses them).
func (lt *loginTest) receive(t *testing.T) pgproto3.BackendMessage {
	t.Helper()
	msg, err := lt.client.Receive()
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	b, _ := msg.Encode(nil)
	kept, _ := pgproto3.NewFrontend(bytes.NewReader(b), nil).Receive()
	return kept
}

// password answers corral's password request.
func (lt *loginTest) password(t *testing.T, pw string) {
	t.Helper()
	if m, ok := lt.receive(t).(*pgproto3.AuthenticationCleartextPassword); !ok {
		t.Fatalf("corral sent %T, want a password request", m)
	}
	lt.client.Send(&pgproto3.PasswordMessage{Password: pw})
	if err := lt.client.Flush(); err != nil {
		t.Fatal(err)
	}
}

// loggedIn expects the login to complete and the server to have been
// logged in to with alias's credential; it ends the session.
func (lt *loginTest) loggedIn(t *testing.T, alias string) {
	t.Helper()
	if m, ok := lt.receive(t).(*pgproto3.AuthenticationOk); !ok {
		t.Fatalf("corral sent %T, want AuthenticationOk", m)
	}
	for {
		if _, ok := lt.receive(t).(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	select {
	case l := <-lt.logins:
		if l.user != alias || l.password != alias+"-secret" {
			t.Errorf("upstream login %+v, want credential %q", l, alias)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no upstream login")
	}
	lt.client.Send(&pgproto3.Terminate{})
	lt.client.Flush()
	lt.cli.Close()
	<-lt.done
}

// refused expects a FATAL error with code and a message containing msg,
// and no upstream login.
func (lt *loginTest) refused(t *testing.T, code, msg string) {
	t.Helper()
	e, ok := lt.receive(t).(*pgproto3.ErrorResponse)
	if !ok {
		t.Fatalf("corral did not refuse the login")
	}
	if e.Severity != "FATAL" || e.Code != code || !strings.Contains(e.Message, msg) {
		t.Errorf("error %s %s %q, want FATAL %s containing %q", e.Severity, e.Code, e.Message, code, msg)
	}
	<-lt.done
	select {
	case l := <-lt.logins:
		t.Errorf("the server was logged in to (%+v) for a refused client", l)
	default:
	}
}

func TestLoginKernelAsksNoPassword(t *testing.T) {
	lt := startLogin(t, ClientAuthKernel, policy.Decision{Result: policy.Allow})
	lt.loggedIn(t, "default")
	if lt.tokens.calls() != 0 {
		t.Error("a token was verified on a kernel target")
	}
}

func TestLoginTokenJoinsIdentity(t *testing.T) {
	for _, mode := range []ClientAuth{ClientAuthToken, ClientAuthTokenRequired} {
		t.Run(string(mode), func(t *testing.T) {
			lt := startLogin(t, mode, policy.Decision{Result: policy.Allow, Rule: "kernel"})
			lt.password(t, goodToken+"\n")
			// The admission was decided again: group dba picks writer.
			lt.loggedIn(t, "writer")
			o := lt.conn.Meta.Workload.OIDC
			if o == nil || o.Subject != "alice" || lt.conn.Admission.Rule != "dba" {
				t.Fatalf("identity %+v admission %+v", o, lt.conn.Admission)
			}
			in := lt.conn.Input(policy.Action{Kind: policy.KindSQL, Operations: []string{"select"}})
			if in.Workload.OIDC == nil || in.Workload.OIDC.Subject != "alice" || in.IdentityKey != policy.IdentityKey(&in.Workload) {
				t.Errorf("statement questions do not carry the token's identity: %+v", in.Workload.OIDC)
			}
			if strings.Contains(lt.logs.String(), goodToken) {
				t.Error("the token reached the log")
			}
		})
	}
}

// Without a token the kernel identity stands, even where the kernel's
// admission denied: the token was the way in, and there is none.
func TestLoginTokenOptional(t *testing.T) {
	t.Run("ordinary password", func(t *testing.T) {
		lt := startLogin(t, ClientAuthToken, policy.Decision{Result: policy.Allow})
		lt.password(t, "not.a-token")
		lt.loggedIn(t, "default")
		if lt.tokens.calls() != 0 || lt.conn.Meta.Workload.OIDC != nil {
			t.Error("an ordinary password was taken for a token")
		}
	})
	t.Run("kernel identity denied", func(t *testing.T) {
		lt := startLogin(t, ClientAuthToken, policy.Decision{Result: policy.Deny, Reason: `no rule lets this workload use target "orders-db"`})
		lt.password(t, "")
		lt.refused(t, "42501", `corral: no rule lets this workload use target "orders-db"`)
	})
}

func TestLoginRefusals(t *testing.T) {
	for _, c := range []struct {
		name      string
		mode      ClientAuth
		password  string
		code, msg string
	}{
		{"bad token", ClientAuthToken, badToken, "28P01", "corral could not verify the token: token signature does not verify"},
		{"bad token where one is required", ClientAuthTokenRequired, badToken, "28P01", "corral could not verify the token"},
		{"malformed token", ClientAuthToken, "eyJhbGciOiJub25lIn0.!!!.", "28P01", "corral could not verify the token"},
		{"no token where one is required", ClientAuthTokenRequired, "", "28P01", `target "orders-db" requires an OIDC token (a JWT) as the password`},
		{"ordinary password where a token is required", ClientAuthTokenRequired, "hunter2", "28P01", "requires an OIDC token"},
		{"token the policy denies", ClientAuthToken, malloryToken, "42501", `corral: connect is denied by rule "no-mallory"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			lt := startLogin(t, c.mode, policy.Decision{Result: policy.Allow})
			lt.password(t, c.password)
			lt.refused(t, c.code, c.msg)
			if lt.conn.Admission.Allowed() {
				t.Errorf("admission still allows: %+v", lt.conn.Admission)
			}
			if c.code == "28P01" && !strings.Contains(lt.conn.Admission.Reason, c.msg) {
				t.Errorf("the refusal's reason %q is not the audited one", lt.conn.Admission.Reason)
			}
			if c.password != "" && strings.Contains(lt.logs.String(), c.password) {
				t.Error("the password reached the log")
			}
		})
	}
}

func TestLooksLikeJWT(t *testing.T) {
	for s, want := range map[string]bool{
		goodToken:                              true,
		"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.": true, // unsigned: still a token, to be refused
		"eyJhbGciOiJSUzI1NiJ9.x.y":             true, // a token cut short
		"eyJhbGciOiJSUzI1NiJ9.a.b.c.d":         true, // JWE
		"":                                     false,
		"hunter2":                              false,
		"not.a-token":                          false,
		"a.b.c":                                false,
		"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0": false,
		"bm90IGpzb24.eyJzdWIiOiJ4In0.c2ln":     false, // header is not JSON
		"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln.x.y": true,
	} {
		if got := looksLikeJWT(s); got != want {
			t.Errorf("looksLikeJWT(%q) = %v, want %v", s, got, want)
		}
	}
}

// The password a client sends is read as a token only when it has a
// token's shape; nothing else about it can make corral stumble.
func FuzzLooksLikeJWT(f *testing.F) {
	for _, s := range []string{"", "hunter2", goodToken, "a.b.c", "eyJ9.x.y", "eyJhbGciOiJSUzI1NiJ9.a.b.c.d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if looksLikeJWT(s) && strings.Count(s, ".") != 2 && strings.Count(s, ".") != 4 {
			t.Fatalf("%q taken for a token", s)
		}
	})
}
