//go:build linux

// Package e2e drives the corral binary against real kernels objects: the
// eBPF programs attached to per-test cgroups, test hosts in network
// namespaces joined by veth pairs, and client processes placed in cgroups
// and namespaces like workloads and pods.
package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	cnetns "github.com/corral-dev/corral/agent/netns"
	"github.com/corral-dev/corral/agent/workload"
	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// env is one test's world: a cgroup corral intercepts, with the agent and
// the workloads in child cgroups of it, and a test host to connect to.
type env struct {
	root     string // cgroup2 mount
	cgroup   string // attached cgroup
	agentCg  string
	workCg   string // the rule lets workloads here connect
	otherCg  string // no rule covers workloads here
	host     *testutil.Host
	pinDir   string
	config   string
	stateDir string
}

func newEnv(t *testing.T, endpoints func(h *testutil.Host) []string) *env {
	t.Helper()
	testutil.RequireBPF(t)
	root, err := workload.Cgroup2Root()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{root: root, host: testutil.NewHost(t), pinDir: testutil.BPFPinDir(t), stateDir: t.TempDir()}
	e.cgroup = testutil.NewCgroup(t, "")
	e.agentCg = testutil.NewCgroup(t, e.cgroup)
	e.workCg = testutil.NewCgroup(t, e.cgroup)
	e.otherCg = testutil.NewCgroup(t, e.cgroup)
	var eps []string
	for _, ep := range endpoints(e.host) {
		eps = append(eps, strconv.Quote(ep))
	}
	cfg := fmt.Sprintf(`targets:
  - name: echo
    protocol: tcp
    endpoints: [%s]
rules:
  - name: workloads
    who: {cgroup: %q}
    targets: [echo]
    allow: [connect]
audit_log: "-"
state_dir: %s
admin_socket: %[3]s/admin.sock
cgroup_path: %s
bpf_pin_dir: %s
netns_rescan_interval: 200ms
log_level: debug
`, strings.Join(eps, ", "), e.rel(e.workCg), e.stateDir, e.cgroup, e.pinDir)
	e.config = filepath.Join(e.stateDir, "corral.yaml")
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) start(t *testing.T, args ...string) *testutil.Agent {
	return testutil.StartAgent(t, e.config, e.agentCg, args...)
}

func (e *env) rel(cg string) string { return strings.TrimPrefix(cg, e.root) }

func addr(a netip.Addr, port int) string { return netip.AddrPortFrom(a, uint16(port)).String() }

func port(l net.Listener) int { return l.Addr().(*net.TCPAddr).Port }

// replyPeer is the address the echo server saw the connection come from.
func replyPeer(t *testing.T, r testutil.ClientResult) string {
	t.Helper()
	peer, _, ok := strings.Cut(r.Reply, "|")
	if !ok {
		t.Fatalf("unexpected reply %q (client error %q)", r.Reply, r.Err)
	}
	return peer
}

func isLoopback(s string) bool {
	ap, err := netip.ParseAddrPort(s)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

func TestInterceptsProtectedAndPassesOthers(t *testing.T) {
	var protected, other *net.TCPListener
	e := newEnv(t, func(h *testutil.Host) []string {
		protected = h.Listen(t, ":0")
		other = h.Listen(t, ":0")
		return []string{addr(h.Addr, port(protected))}
	})
	srv := testutil.Echo(t, protected)
	otherSrv := testutil.Echo(t, other)
	a := e.start(t)

	from := a.Mark()
	r := testutil.RunClient(t, e.workCg, testutil.Client{Network: "tcp", Addr: addr(e.host.Addr, port(protected)), Payload: "hello"})
	if r.Err != "" {
		t.Fatalf("client: %s", r.Err)
	}
	if !isLoopback(r.Remote) {
		t.Errorf("client's socket is connected to %s, want corral's loopback listener", r.Remote)
	}
	peer := replyPeer(t, r)
	if !strings.HasPrefix(peer, e.host.HostAddr.String()+":") {
		t.Errorf("server saw %s, want the host's veth address %s", peer, e.host.HostAddr)
	}
	if !strings.HasSuffix(r.Reply, "|hello") {
		t.Errorf("reply %q lost the payload", r.Reply)
	}
	if n := srv.Accepted.Load(); n != 1 {
		t.Errorf("server accepted %d connections, want 1", n)
	}

	open := a.WaitEvent(t, from, func(ev intercept.Event) bool { return ev.Event == intercept.EventOpen })
	closed := a.WaitEvent(t, from, func(ev intercept.Event) bool {
		return ev.Event == intercept.EventClose && ev.SessionID == open.SessionID
	})
	exe, _ := os.Executable()
	w := closed.Workload
	if w == nil {
		t.Fatal("close event without workload")
	}
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"target", closed.Target, "echo"},
		{"protocol", closed.Protocol, "tcp"},
		{"orig_dst", closed.OrigDst, addr(e.host.Addr, port(protected))},
		{"client", closed.Client, r.Local},
		{"cgroup_path", w.CgroupPath, e.rel(e.workCg)},
		{"pid", int(w.PID), r.PID},
		{"exe", w.Exe, exe},
		{"uid", w.UID, uint32(os.Getuid())},
		{"bytes_up", closed.BytesUp, uint64(len("hello"))},
		{"bytes_down", closed.BytesDown, uint64(len(r.Reply))},
	} {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("audit %s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if id, err := workload.ID(e.workCg); err != nil || w.CgroupID != id {
		t.Errorf("audit cgroup_id = %d, want %d (%v)", w.CgroupID, id, err)
	}

	// Not a target: straight to the server, untouched.
	r = testutil.RunClient(t, e.workCg, testutil.Client{Network: "tcp", Addr: addr(e.host.Addr, port(other)), Payload: "direct"})
	if r.Err != "" {
		t.Fatalf("client to an unprotected address: %s", r.Err)
	}
	if r.Remote != addr(e.host.Addr, port(other)) {
		t.Errorf("unprotected connect went to %s", r.Remote)
	}
	if got := replyPeer(t, r); got != r.Local {
		t.Errorf("server saw %s, want the client's own address %s", got, r.Local)
	}
	if otherSrv.Accepted.Load() != 1 {
		t.Errorf("unprotected server accepted %d connections", otherSrv.Accepted.Load())
	}

	// The agent sits inside the intercepted cgroup; had its own upstream
	// dial been redirected, it would have opened a second session to itself.
	var sessions int
	for _, ev := range a.Events() {
		if ev.Event == intercept.EventOpen {
			sessions++
		}
		if ev.OrigDst == addr(e.host.Addr, port(other)) {
			t.Errorf("unprotected connection was audited: %+v", ev)
		}
	}
	if sessions != 1 {
		t.Errorf("%d sessions audited, want exactly 1", sessions)
	}
}

func TestInterceptsIPv6MappedAndCIDR(t *testing.T) {
	var l *net.TCPListener
	e := newEnv(t, func(h *testutil.Host) []string {
		l = h.Listen(t, "[::]:0")
		p := port(l)
		return []string{
			netip.PrefixFrom(h.Addr, 30).Masked().String() + ":" + strconv.Itoa(p),
			addr(h.Addr6, p),
		}
	})
	testutil.Echo(t, l)
	a := e.start(t)
	p := port(l)

	cases := []struct {
		name, network, dial, origDst string
	}{
		{"ipv4 in CIDR", "tcp4", addr(e.host.Addr, p), addr(e.host.Addr, p)},
		{"v4-mapped over AF_INET6", "tcp6-mapped", addr(e.host.Addr, p), addr(e.host.Addr, p)},
		{"native IPv6", "tcp6", addr(e.host.Addr6, p), addr(e.host.Addr6, p)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			from := a.Mark()
			r := testutil.RunClient(t, e.workCg, testutil.Client{Network: c.network, Addr: c.dial, Payload: c.name})
			if r.Err != "" {
				t.Fatalf("client: %s", r.Err)
			}
			if !isLoopback(r.Remote) {
				t.Errorf("client connected to %s, want corral's loopback listener", r.Remote)
			}
			if !strings.HasSuffix(r.Reply, "|"+c.name) {
				t.Errorf("reply %q", r.Reply)
			}
			ev := a.WaitEvent(t, from, func(ev intercept.Event) bool { return ev.Event == intercept.EventClose })
			if ev.OrigDst != c.origDst {
				t.Errorf("orig_dst = %s, want %s", ev.OrigDst, c.origDst)
			}
		})
	}

	// Another address of the CIDR, where nothing listens: still caught,
	// and corral reports the refused upstream instead of the kernel.
	from := a.Mark()
	r := testutil.RunClient(t, e.workCg, testutil.Client{Network: "tcp4", Addr: addr(e.host.HostAddr, p), Payload: "x"})
	if !isLoopback(r.Remote) {
		t.Errorf("connect to %s inside the CIDR was not intercepted (peer %s, err %s)", e.host.HostAddr, r.Remote, r.Err)
	}
	ev := a.WaitEvent(t, from, func(ev intercept.Event) bool { return ev.Event == intercept.EventClose })
	if ev.OrigDst != addr(e.host.HostAddr, p) || !strings.Contains(ev.Error, "refused") {
		t.Errorf("close event %+v: want orig_dst %s and a refused upstream", ev, addr(e.host.HostAddr, p))
	}
}

func TestInterceptsInsideAnotherNetworkNamespace(t *testing.T) {
	var l *net.TCPListener
	e := newEnv(t, func(h *testutil.Host) []string {
		l = h.Listen(t, ":0")
		return []string{addr(h.Addr, port(l))}
	})
	testutil.Echo(t, l)
	target := addr(e.host.Addr, port(l))

	// A "pod": its own network namespace with nothing but loopback (it has
	// no route to the target at all), held by a pause-like process.
	pod := testutil.NewNetNS(t)
	podID, err := cnetns.Stat(pod)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Hold(t, e.workCg, pod)
	a := e.start(t)
	listening := func(ino uint64) func(string) bool {
		return func(l string) bool {
			return strings.Contains(l, "listening in network namespace") && strings.Contains(l, "netns_inode="+strconv.FormatUint(ino, 10)+" ")
		}
	}
	a.WaitLine(t, 0, listening(podID.Ino))

	from := a.Mark()
	r := testutil.RunClient(t, e.workCg, testutil.Client{Network: "tcp", Addr: target, Payload: "from the pod", NetNS: pod})
	if r.Err != "" {
		t.Fatalf("client in the pod: %s", r.Err)
	}
	if !strings.HasSuffix(r.Reply, "|from the pod") {
		t.Errorf("reply %q", r.Reply)
	}
	ev := a.WaitEvent(t, from, func(ev intercept.Event) bool { return ev.Event == intercept.EventClose })
	if ev.OrigDst != target || ev.Workload == nil || int(ev.Workload.PID) != r.PID {
		t.Errorf("close event %+v, want orig_dst %s from pid %d", ev, target, r.PID)
	}

	// A namespace that appears later has no listener yet: the kernel
	// refuses (EPERM), never lets the connect through, and tells the agent,
	// which opens a listener there once a process holds the namespace.
	late := testutil.NewNetNS(t)
	lateID, err := cnetns.Stat(late)
	if err != nil {
		t.Fatal(err)
	}
	from = a.Mark()
	r = testutil.RunClient(t, e.workCg, testutil.Client{Network: "tcp", Addr: target, Payload: "x", NetNS: late})
	if !strings.Contains(r.Err, syscall.EPERM.Error()) {
		t.Fatalf("connect from a namespace without listener: err %q, want EPERM", r.Err)
	}
	a.WaitLine(t, from, func(l string) bool { return strings.Contains(l, "kernel refused a connect") })
	testutil.Hold(t, e.workCg, late)
	a.WaitLine(t, from, listening(lateID.Ino))
	r = testutil.RunClient(t, e.workCg, testutil.Client{Network: "tcp", Addr: target, Payload: "late", NetNS: late})
	if r.Err != "" || !strings.HasSuffix(r.Reply, "|late") {
		t.Fatalf("client in the late namespace: reply %q, err %q", r.Reply, r.Err)
	}
}

func TestPinnedLinksFailClosedWhileAgentIsDown(t *testing.T) {
	var l *net.TCPListener
	e := newEnv(t, func(h *testutil.Host) []string {
		l = h.Listen(t, ":0")
		return []string{addr(h.Addr, port(l))}
	})
	srv := testutil.Echo(t, l)
	target := addr(e.host.Addr, port(l))
	dial := func(payload string) testutil.ClientResult {
		return testutil.RunClient(t, e.workCg, testutil.Client{Network: "tcp", Addr: target, Payload: payload})
	}
	works := func(when string) {
		t.Helper()
		r := dial(when)
		if r.Err != "" || !isLoopback(r.Remote) || !strings.HasSuffix(r.Reply, "|"+when) {
			t.Fatalf("%s: want an intercepted session, got remote %s reply %q err %q", when, r.Remote, r.Reply, r.Err)
		}
	}
	refused := func(when string) {
		t.Helper()
		before := srv.Accepted.Load()
		r := dial(when)
		if !strings.Contains(r.Err, syscall.EPERM.Error()) {
			t.Fatalf("%s: connect must be refused with EPERM, got remote %s reply %q err %q", when, r.Remote, r.Reply, r.Err)
		}
		if srv.Accepted.Load() != before {
			t.Fatalf("%s: the target received a connection", when)
		}
	}

	a := e.start(t, "--keep-pinned")
	works("first run")
	if err := a.Stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("agent exit: %v", err)
	}
	refused("after a clean stop with --keep-pinned")

	a = e.start(t, "--keep-pinned")
	works("after restart")
	a.Stop(t, syscall.SIGKILL)
	refused("after the agent was killed")

	a = e.start(t)
	works("after restart from a kill")
	if err := a.Stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("agent exit: %v", err)
	}
	// A plain stop removes the links: connections go where they were going.
	r := dial("direct")
	if r.Err != "" || r.Remote != target {
		t.Fatalf("after a plain stop: remote %s err %q, want a direct connection", r.Remote, r.Err)
	}
	if entries, _ := os.ReadDir(e.pinDir); len(entries) != 0 {
		t.Errorf("pinned objects left behind: %v", entries)
	}
}

// The admission decision comes from the policy: a workload no rule covers is
// cut off before anything reaches the target, and the audit line says why.
// Changing the file changes the decision for new connections, without a
// restart; a broken file changes nothing.
func TestPolicyAdmitsAndReloads(t *testing.T) {
	var l *net.TCPListener
	e := newEnv(t, func(h *testutil.Host) []string {
		l = h.Listen(t, ":0")
		return []string{addr(h.Addr, port(l))}
	})
	srv := testutil.Echo(t, l)
	target := addr(e.host.Addr, port(l))
	a := e.start(t)

	from := a.Mark()
	r := testutil.RunClient(t, e.otherCg, testutil.Client{Network: "tcp", Addr: target, Payload: "let me in"})
	if r.Reply != "" {
		t.Fatalf("a workload no rule covers got a reply: %q", r.Reply)
	}
	ev := a.WaitEvent(t, from, func(ev intercept.Event) bool { return ev.Event == intercept.EventDeny })
	if ev.Decision != "deny" || !strings.Contains(ev.Reason, `no rule lets this workload use target "echo"`) || ev.Workload == nil || ev.Workload.CgroupPath != e.rel(e.otherCg) {
		t.Errorf("deny event %+v", ev)
	}
	if srv.Accepted.Load() != 0 {
		t.Fatal("the target was reached by a denied workload")
	}

	r = testutil.RunClient(t, e.workCg, testutil.Client{Network: "tcp", Addr: target, Payload: "allowed"})
	if !strings.HasSuffix(r.Reply, "|allowed") {
		t.Fatalf("covered workload: reply %q err %q", r.Reply, r.Err)
	}
	open := a.WaitEvent(t, from, func(ev intercept.Event) bool { return ev.Event == intercept.EventOpen })
	if open.Decision != "allow" || open.Rule != "workloads" || open.PolicyVersion != 1 {
		t.Errorf("open event %+v", open)
	}

	// Widen the rule to the other cgroup too: atomically, as configuration
	// management does.
	cfg, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	widened := strings.Replace(string(cfg), fmt.Sprintf("cgroup: %q", e.rel(e.workCg)), fmt.Sprintf("cgroup: [%q, %q]", e.rel(e.workCg), e.rel(e.otherCg)), 1)
	from = a.Mark()
	writeAtomically(t, e.config, widened)
	a.WaitLine(t, from, func(l string) bool {
		return strings.Contains(l, "configuration reloaded") && strings.Contains(l, "policy_version=2")
	})
	r = testutil.RunClient(t, e.otherCg, testutil.Client{Network: "tcp", Addr: target, Payload: "now"})
	if !strings.HasSuffix(r.Reply, "|now") {
		t.Fatalf("after the reload: reply %q err %q", r.Reply, r.Err)
	}

	// A broken file is rejected and the widened policy stays.
	from = a.Mark()
	writeAtomically(t, e.config, widened+"\nrules_typo: true\n")
	a.WaitLine(t, from, func(l string) bool {
		return strings.Contains(l, "configuration rejected") && strings.Contains(l, "rules_typo")
	})
	r = testutil.RunClient(t, e.otherCg, testutil.Client{Network: "tcp", Addr: target, Payload: "still"})
	if !strings.HasSuffix(r.Reply, "|still") {
		t.Fatalf("after a rejected reload: reply %q err %q", r.Reply, r.Err)
	}
}

func writeAtomically(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// The kernel takes a connect to an unspecified address as one to a local
// address: 0.0.0.0 goes to the socket's bound source address or to
// 127.0.0.1, :: to ::1. A node-local target is matched by where the
// connection really goes, or connecting to 0.0.0.0 would reach it around
// corral.
func TestInterceptsUnspecifiedDestination(t *testing.T) {
	var onHost, loop4, loop6 *net.TCPListener
	listen := func(network, address string) *net.TCPListener {
		l, err := net.Listen(network, address)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l.(*net.TCPListener)
	}
	e := newEnv(t, func(h *testutil.Host) []string {
		// In the workloads' own network namespace: the node's address,
		// and loopback.
		onHost = listen("tcp4", addr(h.HostAddr, 0))
		loop4 = listen("tcp4", "127.0.0.1:0")
		loop6 = listen("tcp6", "[::1]:0")
		return []string{addr(h.HostAddr, port(onHost)), "127.0.0.1:" + strconv.Itoa(port(loop4)), "[::1]:" + strconv.Itoa(port(loop6))}
	})
	servers := []*testutil.EchoServer{testutil.Echo(t, onHost), testutil.Echo(t, loop4), testutil.Echo(t, loop6)}
	a := e.start(t)

	for _, c := range []struct {
		name string
		c    testutil.Client
		dst  string
	}{
		{"0.0.0.0 from a socket bound to the node's address", testutil.Client{Network: "tcp4", Addr: "0.0.0.0:" + strconv.Itoa(port(onHost)), Bind: addr(e.host.HostAddr, 0)}, addr(e.host.HostAddr, port(onHost))},
		{"0.0.0.0", testutil.Client{Network: "tcp4", Addr: "0.0.0.0:" + strconv.Itoa(port(loop4))}, "127.0.0.1:" + strconv.Itoa(port(loop4))},
		{"::ffff:0.0.0.0", testutil.Client{Network: "tcp6-mapped", Addr: "0.0.0.0:" + strconv.Itoa(port(loop4))}, "127.0.0.1:" + strconv.Itoa(port(loop4))},
		{"::", testutil.Client{Network: "tcp6", Addr: "[::]:" + strconv.Itoa(port(loop6))}, "[::1]:" + strconv.Itoa(port(loop6))},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, cg := range []string{e.workCg, e.otherCg} {
				accepted := 0
				for _, s := range servers {
					accepted += int(s.Accepted.Load())
				}
				from := a.Mark()
				c.c.Payload = c.name
				r := testutil.RunClient(t, cg, c.c)
				ev := a.WaitEvent(t, from, func(ev intercept.Event) bool {
					return ev.Event == intercept.EventClose || ev.Event == intercept.EventDeny
				})
				if ev.OrigDst != c.dst {
					t.Errorf("orig_dst = %s, want %s", ev.OrigDst, c.dst)
				}
				after := 0
				for _, s := range servers {
					after += int(s.Accepted.Load())
				}
				if cg == e.workCg && (ev.Event != intercept.EventClose || !strings.HasSuffix(r.Reply, "|"+c.name) || after != accepted+1) {
					t.Errorf("allowed workload: %s event, reply %q (%s), %d connections reached the servers", ev.Event, r.Reply, r.Err, after-accepted)
				}
				if cg == e.otherCg && (ev.Event != intercept.EventDeny || after != accepted) {
					t.Errorf("workload no rule covers: %s event, reply %q, %d connections reached the servers", ev.Event, r.Reply, after-accepted)
				}
			}
		})
	}
}
