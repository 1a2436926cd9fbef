package ssh

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/policy"
)

// These tests run the handler inside a real intercept.Server on loopback,
// between a Go SSH client (the workload) and a small Go SSH server (the
// target), so they need neither root nor eBPF; test/e2e runs the same
// paths with OpenSSH through the kernel.

// target is an SSH server that runs "exec" requests by echoing the
// command and exiting with the status the command names ("exit N").
type target struct {
	addr netip.AddrPort
	key  gossh.Signer
	mu   sync.Mutex
	ran  []string
}

func startTarget(t *testing.T) *target {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	key, _ := gossh.NewSignerFromKey(priv)
	cfg := &gossh.ServerConfig{PasswordCallback: func(m gossh.ConnMetadata, pw []byte) (*gossh.Permissions, error) {
		if m.User() == "deploy" && string(pw) == "s3cret" {
			return nil, nil
		}
		return nil, errors.New("wrong password")
	}}
	cfg.AddHostKey(key)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	tg := &target{addr: l.Addr().(*net.TCPAddr).AddrPort(), key: key}
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go tg.serve(nc, cfg)
		}
	}()
	return tg
}

func (tg *target) serve(nc net.Conn, cfg *gossh.ServerConfig) {
	_, chans, reqs, err := gossh.NewServerConn(nc, cfg)
	if err != nil {
		return
	}
	go gossh.DiscardRequests(reqs)
	for nch := range chans {
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		go func() {
			defer ch.Close()
			for r := range creqs {
				if r.Type != "exec" {
					r.Reply(r.Type == "env" || r.Type == "pty-req", nil)
					continue
				}
				var p struct{ Command string }
				gossh.Unmarshal(r.Payload, &p)
				tg.mu.Lock()
				tg.ran = append(tg.ran, p.Command)
				tg.mu.Unlock()
				r.Reply(true, nil)
				status := 0
				fmt.Sscanf(p.Command, "exit %d", &status)
				io.WriteString(ch, "ran: "+p.Command+"\n")
				ch.CloseWrite()
				ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, uint32(status)))
				return
			}
		}()
	}
}

func (tg *target) commands() []string {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]string(nil), tg.ran...)
}

// rules is a policy in Go: exec of anything but rm, and connect.
type rules struct{}

func (rules) Decide(_ context.Context, in policy.Input) (policy.Decision, error) {
	a := in.Action
	if a.Kind == policy.KindConnect {
		return policy.Decision{Result: policy.Allow, Reason: "ok", Rule: "test", Record: true}, nil
	}
	for _, op := range a.Operations {
		if op != "exec" && op != "env" {
			return policy.Decision{Result: policy.Deny, Reason: "no rule allows " + op, Record: true}, nil
		}
	}
	if a.SSH != nil && len(a.SSH.Argv) > 0 && a.SSH.Argv[0] == "rm" {
		return policy.Decision{Result: policy.Deny, Reason: "exec is denied by rule \"test\"", Rule: "test", Record: true}, nil
	}
	return policy.Decision{Result: policy.Allow, Reason: "ok", Rule: "test", Record: true}, nil
}

type targets struct {
	host gossh.Signer
	tg   *target
}

func (p targets) Target(*intercept.Conn) (Target, error) {
	return Target{HostSigner: p.host, HostKeyCallback: gossh.FixedHostKey(p.tg.key.PublicKey())}, nil
}

func (p targets) Login(*intercept.Conn, string) (Login, error) {
	return Login{User: "deploy", Auth: gossh.Password("s3cret")}, nil
}

type resolver struct{ dst netip.AddrPort }

func (r resolver) Resolve(uint64, netip.AddrPort, uint16) (intercept.Meta, error) {
	return intercept.Meta{OrigDst: r.dst, Target: intercept.Target{Name: "web", Protocol: "ssh"}}, nil
}

type events struct {
	mu sync.Mutex
	ev []intercept.Event
}

func (e *events) Audit(ev intercept.Event) {
	e.mu.Lock()
	e.ev = append(e.ev, ev)
	e.mu.Unlock()
}

func (e *events) statements() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.ev {
		if ev.Statement != nil {
			out = append(out, ev.Statement.Decision+" "+ev.Statement.Text)
		}
	}
	return out
}

// dialCorral starts the handler in front of tg and connects a client.
func dialCorral(t *testing.T, tg *target) (*gossh.Client, *events) {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	host, _ := gossh.NewSignerFromKey(priv)
	log := slog.New(slog.DiscardHandler)
	ev := &events{}
	h := &Handler{Policy: rules{}, Targets: targets{host: host, tg: tg}, Dialer: &net.Dialer{}, Log: log}
	srv := &intercept.Server{Resolver: resolver{tg.addr}, Handlers: map[string]intercept.Handler{"ssh": h}, Policy: rules{}, Auditor: ev, Log: log}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv.Go(ctx, l, 1)
	t.Cleanup(func() {
		l.Close()
		cancel()
		sctx, done := context.WithTimeout(context.Background(), 5*time.Second)
		defer done()
		srv.Shutdown(sctx)
		srv.Wait()
	})
	c, err := gossh.Dial("tcp", l.Addr().String(), &gossh.ClientConfig{
		User: "whoever", HostKeyCallback: gossh.FixedHostKey(host.PublicKey()), Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, ev
}

func run(t *testing.T, c *gossh.Client, cmd string) (string, string, int) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr = &out, &errb
	err = s.Run(cmd)
	var ee *gossh.ExitError
	switch {
	case err == nil:
		return out.String(), errb.String(), 0
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitStatus()
	}
	t.Fatalf("%q: %v", cmd, err)
	return "", "", -1
}

func TestExecAllowedAndDenied(t *testing.T) {
	tg := startTarget(t)
	c, ev := dialCorral(t, tg)
	if out, _, code := run(t, c, "exit 3"); out != "ran: exit 3\n" || code != 3 {
		t.Errorf("allowed: %q, exit %d", out, code)
	}
	out, stderr, code := run(t, c, "echo hi; rm -rf /")
	if code != deniedStatus || out != "" || !strings.Contains(stderr, `corral: exec is denied by rule "test" (in `+"`rm -rf /`)") {
		t.Errorf("denied: out %q, stderr %q, exit %d", out, stderr, code)
	}
	if ran := tg.commands(); len(ran) != 1 || ran[0] != "exit 3" {
		t.Errorf("the target ran %q", ran)
	}
	if got := ev.statements(); len(got) != 2 || got[0] != "allow exit 3" || got[1] != "deny echo hi; rm -rf /" {
		t.Errorf("audited %q", got)
	}
}

// A refused request followed by more requests than x/crypto queues per
// channel must not stop the connection: another channel still works.
func TestRefusalFollowedByAFloodOfRequests(t *testing.T) {
	tg := startTarget(t)
	c, _ := dialCorral(t, tg)
	ch, reqs, err := c.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	go gossh.DiscardRequests(reqs)
	go io.Copy(io.Discard, ch)
	go io.Copy(io.Discard, ch.Stderr())
	ch.SendRequest("exec", false, gossh.Marshal(struct{ Command string }{"rm -rf /"}))
	for i := 0; i < 64; i++ {
		if _, err := ch.SendRequest("env", false, gossh.Marshal(struct{ Name, Value string }{"LANG", "C"})); err != nil {
			break // the channel was closed by the refusal
		}
	}
	// run may fail the test, which only the test's goroutine may do: the
	// exec runs here, and a watchdog closes the connection if it hangs.
	wedged := time.AfterFunc(10*time.Second, func() { c.Close() })
	out, _, _ := run(t, c, "exit 0")
	if !wedged.Stop() {
		t.Fatal("the connection is wedged after a refusal and a flood of requests")
	}
	if out != "ran: exit 0\n" {
		t.Errorf("after the flood: %q", out)
	}
	if slices.Contains(tg.commands(), "rm -rf /") {
		t.Error("the refused command reached the target")
	}
}

func TestForwardingAndShellRefusedByDefault(t *testing.T) {
	tg := startTarget(t)
	c, ev := dialCorral(t, tg)
	if _, err := c.Dial("tcp", "127.0.0.1:22"); err == nil || !strings.Contains(err.Error(), "corral: no rule allows forward") {
		t.Errorf("direct-tcpip: %v", err)
	}
	if _, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
		t.Error("a remote forward was allowed")
	}
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	s.Stderr = &stderr
	err = s.Shell()
	if err == nil {
		err = s.Wait()
	}
	var ee *gossh.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != deniedStatus || !strings.Contains(stderr.String(), "no rule allows shell") {
		t.Errorf("shell: %v, %q", err, stderr.String())
	}
	if got := ev.statements(); len(got) != 3 {
		t.Errorf("audited %q", got)
	}
}

// Environment variables that change what a decided command does never
// reach the target, whatever the policy; agent forwarding is refused
// unless a rule allows it.
func TestEnvAndAgentForwarding(t *testing.T) {
	tg := startTarget(t)
	c, ev := dialCorral(t, tg)
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Setenv("LANG", "C.UTF-8"); err != nil {
		t.Errorf("LANG: %v", err)
	}
	for _, name := range []string{"LD_PRELOAD", "BASH_ENV", "PATH", "BASH_FUNC_x%%", "LC_ALL=x"} {
		if err := s.Setenv(name, "x"); err == nil {
			t.Errorf("%s was forwarded", name)
		}
	}
	if ok, err := s.SendRequest("auth-agent-req@openssh.com", true, nil); ok || err != nil {
		t.Errorf("agent forwarding: ok %v, err %v", ok, err)
	}
	if got := ev.statements(); len(got) != 2 || got[0] != "allow env LANG" || got[1] != "deny agent forwarding" {
		t.Errorf("audited %q", got)
	}
}

// Each setting a client asks for is decided and recorded; a channel asking
// without end gets the rest refused without a record, so it cannot fill
// the disk with them.
func TestSettingsRequestsBounded(t *testing.T) {
	tg := startTarget(t)
	c, ev := dialCorral(t, tg)
	ch, reqs, err := c.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	go gossh.DiscardRequests(reqs)
	refused := 0
	for range maxAsked + 50 {
		ok, err := ch.SendRequest("env", true, gossh.Marshal(struct{ Name, Value string }{"LANG", "C"}))
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			refused++
		}
	}
	if refused < 50 {
		t.Errorf("%d of %d requests refused, want at least the 50 past the bound", refused, maxAsked+50)
	}
	n := 0
	for _, s := range ev.statements() {
		if strings.HasSuffix(s, "env LANG") {
			n++
		}
	}
	if n != maxAsked {
		t.Errorf("%d env requests recorded, want %d", n, maxAsked)
	}
}

// Locale and terminal values are all a client may set: a value with shell
// syntax in it would reach the command line through the environment,
// where it cannot be checked.
func TestEnvValuesPlain(t *testing.T) {
	tg := startTarget(t)
	c, _ := dialCorral(t, tg)
	ch, reqs, err := c.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	go gossh.DiscardRequests(reqs)
	for v, want := range map[string]bool{"en_US.UTF-8": true, "xterm-256color": true, ":/etc/localtime": true, "a[$(rm -f x)]": false, "x`id`": false, "a b": false} {
		ok, err := ch.SendRequest("env", true, gossh.Marshal(struct{ Name, Value string }{"LC_X", v}))
		if err != nil {
			t.Fatal(err)
		}
		if ok != want {
			t.Errorf("LC_X=%q: accepted %v, want %v", v, ok, want)
		}
	}
}
