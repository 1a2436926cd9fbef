//go:build linux

package e2e

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/internal/testutil"
)

// The rule of these tests sends deletes to review by group:dba or root.
// The workloads run as nobody, so root, who runs the tests and the
// commands that decide, is never the requester.
const approvalConfig = `targets:
  - name: orders-db
    protocol: postgres
    endpoints: [%q]
    client_auth: %s
    credentials:
      default: {username: app, password_file: %s}
    upstream_tls: {mode: disable}
rules:
  - name: app
    who: {cgroup: %q}
    targets: [orders-db]
    allow: [select, insert, update, transaction, set, show]
    review: {operations: [delete], reviewers: ["group:dba", "user:root"], %s}
audit_log: "-"
state_dir: %s
admin_socket: %[6]s/admin.sock
cgroup_path: %s
bpf_pin_dir: %s
log_level: debug
%s
`

type approvalEnv struct {
	*env
	pg             *testutil.Postgres
	a              *testutil.Agent
	pw, clientAuth string
	extra          string
}

func newApprovalEnv(t *testing.T, clientAuth, review, extra string) *approvalEnv {
	t.Helper()
	e := newEnv(t, func(h *testutil.Host) []string { return []string{addr(h.Addr, 5432)} })
	pg := testutil.StartPostgres(t, e.host, testutil.PostgresOptions{})
	pg.Exec(t, "postgres", "CREATE DATABASE orders")
	pg.Exec(t, "orders", ordersSchema)
	ae := &approvalEnv{env: e, pg: pg, pw: filepath.Join(e.stateDir, "pw"), clientAuth: clientAuth, extra: extra}
	os.WriteFile(ae.pw, []byte("app-secret-pw\n"), 0o600)
	ae.write(t, review)
	ae.a = e.start(t)
	return ae
}

func (ae *approvalEnv) write(t *testing.T, review string) {
	t.Helper()
	cfg := fmt.Sprintf(approvalConfig, addr(ae.host.Addr, 5432), ae.clientAuth, ae.pw, ae.rel(ae.workCg), review, ae.stateDir, ae.cgroup, ae.pinDir, ae.extra)
	writeAtomically(t, ae.config, cfg)
}

// review changes the rule's review settings on the live agent.
func (ae *approvalEnv) review(t *testing.T, review string) {
	t.Helper()
	from := ae.a.Mark()
	ae.write(t, review)
	ae.a.WaitLine(t, from, func(l string) bool { return strings.Contains(l, "configuration reloaded") })
}

func (ae *approvalEnv) orders(t *testing.T) string {
	return ae.pg.Exec(t, "orders", "SELECT count(*) FROM orders")[0][0]
}

func (ae *approvalEnv) restoreOrders(t *testing.T) {
	ae.pg.Exec(t, "orders", "DELETE FROM orders; INSERT INTO orders VALUES (1, 1, 10), (2, 2, 20)")
}

// corral runs the real corral binary (approve, deny, requests).
func (ae *approvalEnv) corral(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(testutil.CorralBinary(t), args...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (ae *approvalEnv) socket() string { return filepath.Join(ae.stateDir, "admin.sock") }

// bgPsql is psql running in the background as a workload (user nobody),
// its output read line by line as it comes.
type bgPsql struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error

	mu      sync.Mutex
	lines   []string
	changed chan struct{}
}

func (ae *approvalEnv) psql(t *testing.T, password, sql string) *bgPsql {
	t.Helper()
	cmd := exec.Command("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
		"psql", "-X", "-w", "-At", "-v", "ON_ERROR_STOP=1", "-h", ae.host.Addr.String(), "-U", "whoever", "-d", "orders", "-c", sql)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGCONNECT_TIMEOUT=10", "PGSSLMODE=disable")
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: testutil.CgroupFD(t, ae.workCg)}
	return startBG(t, cmd)
}

// startBG starts a workload's client in the background, its output read
// line by line as it comes.
func startBG(t *testing.T, cmd *exec.Cmd) *bgPsql {
	t.Helper()
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	p := &bgPsql{cmd: cmd, done: make(chan struct{}), changed: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// done closes when psql has exited and all it wrote has been read.
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
		io.Copy(io.Discard, r)
	}()
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		w.Close()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *bgPsql) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

var waitingNotice = regexp.MustCompile(`NOTICE:  corral: waiting for approval (r-[0-9a-f]{16}) \(reviewers: ([^)]*)\)`)

// waiting waits for the notice that the statement waits and returns the
// request's id.
func (p *bgPsql) waiting(t *testing.T) string {
	t.Helper()
	var id string
	p.waitFor(t, func(out string) bool {
		m := waitingNotice.FindStringSubmatch(out)
		if m == nil {
			return false
		}
		if m[2] != "group:dba, user:root" {
			t.Errorf("the notice names reviewers %q", m[2])
		}
		id = m[1]
		return true
	})
	return id
}

// waitFor waits until the output so far matches.
func (p *bgPsql) waitFor(t *testing.T, match func(out string) bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		p.mu.Lock()
		out, changed := strings.Join(p.lines, "\n"), p.changed
		p.mu.Unlock()
		if match(out) {
			return
		}
		select {
		case <-changed:
		case <-p.done:
			t.Fatalf("the client ended before the expected output:\n%s", p.output())
		case <-deadline:
			t.Fatalf("the expected output did not come:\n%s", p.output())
		}
	}
}

// wait waits for psql to end.
func (p *bgPsql) wait(t *testing.T) (string, error) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("psql did not end:\n%s", p.output())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n"), p.err
}

// approval waits for the audit event of a request's step.
func (ae *approvalEnv) approval(t *testing.T, from int, id, step string) intercept.Event {
	t.Helper()
	return ae.a.WaitEvent(t, from, func(ev intercept.Event) bool {
		return ev.Event == intercept.EventApproval && ev.Approval != nil && ev.Approval.Request == id && ev.Approval.Step == step
	})
}

func TestApprovalPostgres(t *testing.T) {
	// The rule's webhook: a chat tool's incoming webhook, in the test.
	hooks := make(chan []byte, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hooks <- b
	}))
	t.Cleanup(hook.Close)
	ae := newApprovalEnv(t, "kernel", fmt.Sprintf("timeout: 1m, webhook: %q", hook.URL+"/services/T0/B0/secret"), "")
	sock := ae.socket()
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("admin socket: %v %v", fi, err)
	}

	t.Run("approve", func(t *testing.T) {
		from := ae.a.Mark()
		p := ae.psql(t, "x", "DELETE FROM orders")
		id := p.waiting(t)
		req := ae.approval(t, from, id, "requested")
		if a := req.Approval; a.Text != "DELETE FROM orders" || a.Rule != "app" || req.Target != "orders-db" || req.SessionID == "" {
			t.Errorf("requested event %+v %+v", req, a)
		}
		// Listed as pending, then approved by root with the real CLI.
		out, err := ae.corral(t, "requests", "--socket", sock)
		if err != nil || !strings.Contains(out, id) || !strings.Contains(out, "DELETE FROM orders") {
			t.Fatalf("corral requests: %v\n%s", err, out)
		}
		if ae.orders(t) != "2" {
			t.Fatal("the statement ran before it was approved")
		}
		select {
		case b := <-hooks:
			var m struct {
				Text    string `json:"text"`
				Approve string `json:"approve_command"`
			}
			if err := json.Unmarshal(b, &m); err != nil || !strings.Contains(m.Text, "corral: approval "+id+" requested: DELETE FROM orders on orders-db") || m.Approve != "corral approve "+id {
				t.Errorf("webhook notification %v: %s", err, b)
			}
		case <-time.After(30 * time.Second):
			t.Error("the rule's webhook was not notified")
		}
		for _, l := range ae.a.Lines() {
			if strings.Contains(l, "/services/T0/B0/secret") {
				t.Errorf("the webhook URL reached the agent's output: %s", l)
			}
		}
		out, err = ae.corral(t, "approve", id, "--socket", sock, "--reason", "cleanup ticket 42")
		if err != nil || !strings.HasPrefix(out, "approved "+id) {
			t.Fatalf("corral approve: %v\n%s", err, out)
		}
		out, err = p.wait(t)
		if err != nil || !strings.Contains(out, "DELETE 2") {
			t.Fatalf("psql after approval: %v\n%s", err, out)
		}
		if n := ae.orders(t); n != "0" {
			t.Fatalf("%s orders left after the approved DELETE", n)
		}
		ev := ae.approval(t, from, id, "approved")
		if a := ev.Approval; a.DecidedBy != "root" || a.Via != "unix" || a.DecisionReason != "cleanup ticket 42" {
			t.Errorf("approved event %+v", a)
		}
		st := ae.a.WaitEvent(t, from, func(ev intercept.Event) bool {
			return ev.Event == intercept.EventStatement && ev.Statement != nil && ev.Statement.Request == id
		})
		if st.Statement.Decision != "review" || st.SessionID != req.SessionID {
			t.Errorf("statement event %+v", st.Statement)
		}
		// The session's recording has the approval steps.
		ae.a.WaitEvent(t, from, func(ev intercept.Event) bool {
			return ev.Event == intercept.EventClose && ev.SessionID == req.SessionID
		})
		cfgFlag := []string{"--config", ae.config}
		out, err = ae.corral(t, append([]string{"replay", req.SessionID}, cfgFlag...)...)
		if err != nil || !strings.Contains(out, "approval "+id+": pending") || !strings.Contains(out, "approval "+id+": approved root") {
			t.Errorf("replay: %v\n%s", err, out)
		}
		ae.restoreOrders(t)
	})

	t.Run("deny", func(t *testing.T) {
		from := ae.a.Mark()
		p := ae.psql(t, "x", "DELETE FROM orders")
		id := p.waiting(t)
		if out, err := ae.corral(t, "deny", id, "--socket", sock); err == nil || !strings.Contains(out, "a denial needs --reason") {
			t.Fatalf("deny without a reason: %v\n%s", err, out)
		}
		out, err := ae.corral(t, "deny", id, "--socket", sock, "--reason", "not during business hours")
		if err != nil || !strings.HasPrefix(out, "denied "+id) {
			t.Fatalf("corral deny: %v\n%s", err, out)
		}
		out, err = p.wait(t)
		if err == nil || !strings.Contains(out, "corral: request "+id+" denied by root: not during business hours") {
			t.Fatalf("psql after denial: %v\n%s", err, out)
		}
		if n := ae.orders(t); n != "2" {
			t.Fatalf("%s orders left after the denied DELETE", n)
		}
		// Decided once: a late approval is refused.
		if out, err := ae.corral(t, "approve", id, "--socket", sock); err == nil || !strings.Contains(out, "already denied by root") {
			t.Fatalf("approval after denial: %v\n%s", err, out)
		}
		// The session counts the refused statement as a denial.
		sid := ae.approval(t, from, id, "requested").SessionID
		ae.a.WaitEvent(t, from, func(ev intercept.Event) bool { return ev.Event == intercept.EventClose && ev.SessionID == sid })
		if out, err := ae.corral(t, "sessions", "--config", ae.config, "--denied"); err != nil || !strings.Contains(out, sid) {
			t.Errorf("corral sessions --denied: %v\n%s", err, out)
		}
	})

	t.Run("client disconnects", func(t *testing.T) {
		from := ae.a.Mark()
		p := ae.psql(t, "x", "DELETE FROM orders")
		id := p.waiting(t)
		p.cmd.Process.Kill()
		ev := ae.approval(t, from, id, "cancelled")
		if !strings.Contains(ev.Approval.DecisionReason, "the client disconnected") {
			t.Errorf("cancelled event %+v", ev.Approval)
		}
		if out, err := ae.corral(t, "approve", id, "--socket", sock); err == nil || !strings.Contains(out, "cancelled") {
			t.Fatalf("approval after the client left: %v\n%s", err, out)
		}
		if n := ae.orders(t); n != "2" {
			t.Fatalf("%s orders left", n)
		}
	})

	t.Run("expires", func(t *testing.T) {
		ae.review(t, "timeout: 2s")
		p := ae.psql(t, "x", "DELETE FROM orders")
		id := p.waiting(t)
		out, err := p.wait(t)
		if err == nil || !strings.Contains(out, "corral: request "+id+" expired: no reviewer decided within 2s") {
			t.Fatalf("psql after the timeout: %v\n%s", err, out)
		}
		if n := ae.orders(t); n != "2" {
			t.Fatalf("%s orders left", n)
		}
	})

	t.Run("window grant", func(t *testing.T) {
		ae.review(t, "grant: window, window: 15s, timeout: 1m")
		from := ae.a.Mark()
		p := ae.psql(t, "x", "DELETE FROM orders WHERE id = 1")
		id := p.waiting(t)
		if out, err := ae.corral(t, "approve", id, "--socket", sock); err != nil {
			t.Fatalf("corral approve: %v\n%s", err, out)
		}
		if out, err := p.wait(t); err != nil || !strings.Contains(out, "DELETE 1") {
			t.Fatalf("first delete: %v\n%s", err, out)
		}
		approved := ae.approval(t, from, id, "approved")
		until := approved.Approval.GrantExpires
		if until == nil || until.Sub(approved.Time) != 15*time.Second {
			t.Fatalf("grant %+v", approved.Approval)
		}

		// A second matching statement of the same workload, in another
		// session: no new request, no wait.
		p = ae.psql(t, "x", "DELETE FROM orders WHERE id = 2")
		out, err := p.wait(t)
		if err != nil || !strings.Contains(out, "DELETE 1") || strings.Contains(out, "waiting for approval") {
			t.Fatalf("second delete under the grant: %v\n%s", err, out)
		}
		if time.Now().After(*until) {
			t.Fatal("the second statement ran after the window ended: the machine was too slow for this test")
		}
		covered := ae.approval(t, from, id, "covered")
		if covered.Approval.Text != "DELETE FROM orders WHERE id = $1" {
			t.Errorf("covered event %+v", covered.Approval)
		}
		if n := ae.orders(t); n != "0" {
			t.Fatalf("%s orders left", n)
		}
		ae.restoreOrders(t)

		// The window ends on time: the next one waits again. (Waiting for
		// the clock here is what is being tested.)
		time.Sleep(time.Until(*until) + 100*time.Millisecond)
		p = ae.psql(t, "x", "DELETE FROM orders")
		next := p.waiting(t)
		if next == id {
			t.Fatal("the expired grant's request was reused")
		}
		ae.corral(t, "deny", next, "--socket", sock, "--reason", "window over")
		if out, err := p.wait(t); err == nil || !strings.Contains(out, "denied by root: window over") {
			t.Fatalf("after the window: %v\n%s", err, out)
		}
		if n := ae.orders(t); n != "2" {
			t.Fatalf("%s orders left", n)
		}
	})

	// The agent stops while a statement waits: the client is told, the
	// request stays on record, and the next agent marks it cancelled,
	// saying why.
	t.Run("agent restart", func(t *testing.T) {
		p := ae.psql(t, "x", "DELETE FROM orders")
		id := p.waiting(t)
		if err := ae.a.Stop(t, syscall.SIGTERM); err != nil {
			t.Fatalf("agent exit: %v", err)
		}
		out, err := p.wait(t)
		if err == nil || !strings.Contains(out, "corral: the agent is stopping: request "+id+" was not decided, and the operation did not run") {
			t.Fatalf("psql when the agent stopped: %v\n%s", err, out)
		}
		ae.a = ae.start(t)
		out, err = ae.corral(t, "requests", "--state", "cancelled", "--socket", sock)
		if err != nil || !strings.Contains(out, id) || !strings.Contains(out, "the agent restarted while the request waited") {
			t.Fatalf("after the restart: %v\n%s", err, out)
		}
		if n := ae.orders(t); n != "2" {
			t.Fatalf("%s orders left", n)
		}
	})
}

// newOIDCApprovalEnv is an approvals environment whose target takes OIDC
// tokens from issuer, with the admin API on HTTPS at listen for approvers
// with issuer's tokens; workloads' tokens come from more issuers too.
func newOIDCApprovalEnv(t *testing.T, issuer *testutil.OIDCIssuer, listen, review string, workloads ...*testutil.OIDCIssuer) *approvalEnv {
	t.Helper()
	issuers := fmt.Sprintf("{url: %q, audiences: [corral], approvers: true}", issuer.URL)
	for _, w := range workloads {
		issuers += fmt.Sprintf(", {url: %q, audiences: [corral]}", w.URL)
	}
	return newApprovalEnv(t, "token", review, fmt.Sprintf(`oidc:
  issuers: [%s]
approvals: {listen: %q}`, issuers, listen))
}

// Approvers over HTTPS present OIDC ID tokens from a configured issuer;
// only a valid token of a reviewer who is not the requester decides.
func TestApprovalOIDC(t *testing.T) {
	issuer, ci := testutil.StartOIDCIssuer(t), testutil.StartOIDCIssuer(t)
	listen := freeLoopbackAddr(t)
	ae := newOIDCApprovalEnv(t, issuer, listen, "timeout: 1m", ci)

	// alice logs in with her token and asks; she holds group dba.
	p := ae.psql(t, issuer.Token(t, nil), "DELETE FROM orders")
	id := p.waiting(t)

	tokenFile := func(tok string) string {
		f := filepath.Join(t.TempDir(), "token")
		os.WriteFile(f, []byte(tok), 0o600)
		return f
	}
	remote := func(tok string, args ...string) (string, error) {
		return ae.corral(t, append(args, "--server", "https://"+listen, "--ca-file", filepath.Join(ae.stateDir, "ca.pem"), "--token-file", tokenFile(tok))...)
	}
	unsigned := func() string {
		h := b64json(map[string]any{"alg": "none", "typ": "JWT"})
		return h + "." + b64json(issuer.Claims(map[string]any{"sub": "bob", "email": "bob@example.com"})) + "."
	}
	forger := testutil.SignJWT(t, jose.RS256, newKey(t), "k1", issuer.Claims(map[string]any{"sub": "bob"}))
	for _, c := range []struct{ name, token, says string }{
		{"the requester's own token", issuer.Token(t, nil), "cannot decide its own request"},
		{"wrong group", issuer.Token(t, map[string]any{"sub": "erin", "email": "erin@example.com", "groups": []string{"ops"}}), "no such request among those you may see"},
		{"expired", issuer.Token(t, map[string]any{"sub": "bob", "email": "bob@example.com", "exp": time.Now().Add(-time.Minute).Unix()}), "token expired at"},
		{"wrong audience", issuer.Token(t, map[string]any{"sub": "bob", "email": "bob@example.com", "aud": "elsewhere"}), "token is for audience"},
		{"alg none", unsigned(), "alg none"},
		{"forged", forger, "signature does not verify"},
		// ci vouches for workloads: it may say bob is in dba, but that
		// does not make bob's approval.
		{"a workload issuer's", ci.Token(t, map[string]any{"sub": "bob", "email": "bob@example.com"}), "do not decide approvals"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := remote(c.token, "approve", id)
			if err == nil || !strings.Contains(out, c.says) {
				t.Fatalf("approve with %s: %v\n%s", c.name, err, out)
			}
		})
	}
	if n := ae.orders(t); n != "2" {
		t.Fatal("a refused approver let the statement run")
	}
	// bob, a reviewer: his approval counts.
	bob := issuer.Token(t, map[string]any{"sub": "bob", "email": "bob@example.com"})
	if out, err := remote(bob, "requests"); err != nil || !strings.Contains(out, id) {
		t.Fatalf("remote requests: %v\n%s", err, out)
	}
	from := ae.a.Mark()
	if out, err := remote(bob, "approve", id, "--reason", "ok from bob"); err != nil || !strings.HasPrefix(out, "approved "+id) {
		t.Fatalf("approve as bob: %v\n%s", err, out)
	}
	out, err := p.wait(t)
	if err != nil || !strings.Contains(out, "DELETE 2") {
		t.Fatalf("psql after bob's approval: %v\n%s", err, out)
	}
	if n := ae.orders(t); n != "0" {
		t.Fatalf("%s orders left", n)
	}
	ev := ae.approval(t, from, id, "approved")
	if ev.Approval.DecidedBy != "bob@example.com" || ev.Approval.Via != "oidc" {
		t.Errorf("approved event %+v", ev.Approval)
	}
	for _, l := range ae.a.Lines() {
		if strings.Contains(l, bob) {
			t.Fatalf("a token reached the agent's output: %s", l)
		}
	}
}

func b64json(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func newKey(t *testing.T) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// An approval is of an operation under the terms it was held on: a reload
// while it waits that changes them (here the grant; a deny, other
// reviewers, more masks alike) refuses it once approved, and the client
// is told to send it again. A reload that leaves them alone (the timeout)
// does not.
func TestApprovalPolicyChangedWhileWaiting(t *testing.T) {
	ae := newApprovalEnv(t, "kernel", "timeout: 1m", "")
	sock := ae.socket()

	p := ae.psql(t, "x", "DELETE FROM orders WHERE id = 1")
	id := p.waiting(t)
	// The reviewer sees the statement as sent; the list, normalised.
	out, err := ae.corral(t, "requests", id[:8], "--socket", sock)
	if err != nil || !strings.Contains(out, "statement:\n    DELETE FROM orders WHERE id = 1") || !regexp.MustCompile(`recorded as +DELETE FROM orders WHERE id = \$1`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^database +orders$`).MatchString(out) {
		t.Fatalf("corral requests %s: %v\n%s", id, err, out)
	}
	ae.review(t, "timeout: 2m")
	if out, err := ae.corral(t, "approve", id, "--socket", sock); err != nil {
		t.Fatalf("corral approve: %v\n%s", err, out)
	}
	if out, err := p.wait(t); err != nil || !strings.Contains(out, "DELETE 1") {
		t.Fatalf("approved after a reload that changed nothing it was held on: %v\n%s", err, out)
	}

	p = ae.psql(t, "x", "DELETE FROM orders WHERE id = 2")
	id = p.waiting(t)
	ae.review(t, "timeout: 2m, grant: window, window: 10m")
	if out, err := ae.corral(t, "approve", id, "--socket", sock); err != nil {
		t.Fatalf("corral approve: %v\n%s", err, out)
	}
	out, err = p.wait(t)
	if err == nil || !strings.Contains(out, "request "+id+" was approved, but the policy changed while it waited") {
		t.Fatalf("approved after a reload that changed its terms: %v\n%s", err, out)
	}
	if n := ae.orders(t); n != "1" {
		t.Fatalf("%s orders left; the DELETE approved under other terms ran", n)
	}
}

// A reload that takes a window grant's operation away ends the grant for
// good: the reload back to the old terms asks anew.
func TestApprovalWindowEndsAtAReload(t *testing.T) {
	const window = "timeout: 1m, grant: window, window: 10m"
	ae := newApprovalEnv(t, "kernel", window, "")
	sock := ae.socket()
	p := ae.psql(t, "x", "DELETE FROM orders WHERE id = 1")
	id := p.waiting(t)
	if out, err := ae.corral(t, "approve", id, "--socket", sock); err != nil {
		t.Fatalf("corral approve: %v\n%s", err, out)
	}
	if out, err := p.wait(t); err != nil || !strings.Contains(out, "DELETE 1") {
		t.Fatalf("approved: %v\n%s", err, out)
	}
	// The rule no longer mentions delete: denied; then as before.
	from := ae.a.Mark()
	cfg := fmt.Sprintf(approvalConfig, addr(ae.host.Addr, 5432), ae.clientAuth, ae.pw, ae.rel(ae.workCg), window, ae.stateDir, ae.cgroup, ae.pinDir, ae.extra)
	writeAtomically(t, ae.config, strings.Replace(cfg, "operations: [delete]", "operations: [ddl]", 1))
	ae.a.WaitLine(t, from, func(l string) bool { return strings.Contains(l, "configuration reloaded") })
	if !slices.ContainsFunc(ae.a.Lines()[from:], func(l string) bool {
		return strings.Contains(l, "window grants the reloaded policy no longer gives were ended")
	}) {
		t.Fatal("the reload ended no grant")
	}
	ae.review(t, window)
	p = ae.psql(t, "x", "DELETE FROM orders WHERE id = 2")
	if again := p.waiting(t); again == id {
		t.Fatalf("the grant of %s came back with its terms", id)
	}
	if n := ae.orders(t); n != "1" {
		t.Fatalf("%s orders left", n)
	}
}
