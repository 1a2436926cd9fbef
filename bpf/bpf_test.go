//go:build linux

package bpf_test

import (
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/agent/netns"
	"github.com/corral-dev/corral/agent/workload"
	"github.com/corral-dev/corral/bpf"
	"github.com/corral-dev/corral/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// kernel is the programs attached to a test cgroup, with one marked
// listener in the test's own network namespace.
type kernel struct {
	progs    *bpf.Programs
	cgroup   string
	listener *net.TCPListener
	cookie   uint64
}

func setup(t *testing.T, opts bpf.Options, targets []bpf.Target) *kernel {
	t.Helper()
	testutil.RequireBPF(t)
	k := &kernel{cgroup: testutil.NewCgroup(t, "")}
	opts.CgroupPath = k.cgroup
	p, err := bpf.Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(false) })
	k.progs = p
	if err := p.SetTargets(targets); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	k.listener = l.(*net.TCPListener)
	rc, _ := k.listener.SyscallConn()
	if k.cookie, err = netns.Cookie(rc); err != nil {
		t.Fatal(err)
	}
	if opts.Mark != 0 {
		rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(opts.Mark)) })
	}
	if err := p.SetListener(k.cookie, uint16(k.listener.Addr().(*net.TCPAddr).Port), 0); err != nil {
		t.Fatal(err)
	}
	if err := p.Attach(); err != nil {
		t.Fatal(err)
	}
	return k
}

// accept serves one connection: it looks up the origin, then answers.
func (k *kernel) accept(t *testing.T) <-chan bpf.Origin {
	ch := make(chan bpf.Origin, 1)
	go func() {
		c, err := k.listener.Accept()
		if err != nil {
			close(ch)
			return
		}
		defer c.Close()
		client := c.RemoteAddr().(*net.TCPAddr).AddrPort()
		client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
		o, err := k.progs.Origin(k.cookie, client, uint16(k.listener.Addr().(*net.TCPAddr).Port))
		if err != nil {
			t.Errorf("origin: %v", err)
		}
		ch <- o
		c.Write([]byte("ok"))
	}()
	return ch
}

func TestRedirectRecordsOriginAndIdentity(t *testing.T) {
	dst := netip.MustParseAddrPort("198.18.255.1:7001")
	k := setup(t, bpf.Options{AgentCgroupID: 1}, []bpf.Target{{ID: 42, Prefix: netip.PrefixFrom(dst.Addr(), 32), Port: dst.Port()}})
	got := k.accept(t)
	r := testutil.RunClient(t, k.cgroup, testutil.Client{Network: "tcp4", Addr: dst.String()})
	if r.Err != "" || r.Reply != "ok" {
		t.Fatalf("client: reply %q err %q", r.Reply, r.Err)
	}
	o := <-got
	cg, _ := workload.ID(k.cgroup)
	if o.Dst != dst || o.TargetID != 42 || o.CgroupID != cg || int(o.PID) != r.PID || o.UID != uint32(os.Getuid()) || o.Family != syscall.AF_INET || o.NetnsCookie != k.cookie {
		t.Errorf("origin %+v; want dst %s target 42 cgroup %d pid %d", o, dst, cg, r.PID)
	}
	if o.Comm == "" || !strings.HasPrefix(os.Args[0][strings.LastIndexByte(os.Args[0], '/')+1:], o.Comm) {
		t.Errorf("comm %q", o.Comm)
	}
	// The record is handed out once.
	client, _ := netip.ParseAddrPort(r.Local)
	if _, err := k.progs.Origin(k.cookie, client, uint16(k.listener.Addr().(*net.TCPAddr).Port)); err != bpf.ErrNoOrigin {
		t.Errorf("second lookup: %v, want ErrNoOrigin", err)
	}
	c, err := k.progs.Counters()
	if err != nil || c.Redirected != 1 {
		t.Errorf("counters %+v %v", c, err)
	}
}

// upstream is a plain loopback server standing in for a target.
func upstream(t *testing.T) netip.AddrPort {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testutil.Echo(t, l)
	return l.Addr().(*net.TCPAddr).AddrPort()
}

func single(id uint32, ap netip.AddrPort) []bpf.Target {
	return []bpf.Target{{ID: id, Prefix: netip.PrefixFrom(ap.Addr(), ap.Addr().BitLen()), Port: ap.Port()}}
}

// A socket that carries the agent's mark is redirected like any other: a
// workload with CAP_NET_RAW can set the mark, so only the agent's cgroup
// exempts its dials.
func TestMarkedSocketsAreNotExempt(t *testing.T) {
	up := upstream(t)
	const mark = 0x77
	k := setup(t, bpf.Options{AgentCgroupID: 1, Mark: mark}, single(1, up))

	for _, m := range []int{0, mark} {
		got := k.accept(t)
		r := testutil.RunClient(t, k.cgroup, testutil.Client{Network: "tcp4", Addr: up.String(), Mark: m})
		if r.Err != "" || r.Remote != k.listener.Addr().String() {
			t.Fatalf("client with mark %#x: remote %s err %q, want the listener %s", m, r.Remote, r.Err, k.listener.Addr())
		}
		<-got
	}
	c, _ := k.progs.Counters()
	if c.Redirected != 2 || c.Exempt != 0 {
		t.Errorf("counters %+v, want 2 redirected and none exempt", c)
	}
}

func TestOwnCgroupIsExempt(t *testing.T) {
	up := upstream(t)
	testutil.RequireBPF(t)
	parent := testutil.NewCgroup(t, "")
	agentCg := testutil.NewCgroup(t, parent)
	id, err := workload.ID(agentCg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := bpf.Load(bpf.Options{CgroupPath: parent, AgentCgroupID: id})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(false)
	if err := p.SetTargets(single(1, up)); err != nil {
		t.Fatal(err)
	}
	if err := p.Attach(); err != nil {
		t.Fatal(err)
	}
	// No listener anywhere: any redirected connect would be refused, so
	// reaching the target proves the agent's cgroup was let through.
	r := testutil.RunClient(t, agentCg, testutil.Client{Network: "tcp4", Addr: up.String(), Payload: "x"})
	if r.Err != "" || r.Remote != up.String() {
		t.Fatalf("agent cgroup's connect: remote %s err %q", r.Remote, r.Err)
	}
	other := testutil.NewCgroup(t, parent)
	r = testutil.RunClient(t, other, testutil.Client{Network: "tcp4", Addr: up.String()})
	if !strings.Contains(r.Err, syscall.EPERM.Error()) {
		t.Fatalf("another cgroup's connect: %q, want EPERM", r.Err)
	}
}

// A listener that is not the agent's (here: unmarked, as after a crash when
// something else binds the port) never receives redirected connections.
func TestUnmarkedListenerIsRefusedAndReported(t *testing.T) {
	up := upstream(t)
	k := setup(t, bpf.Options{AgentCgroupID: 1}, single(1, up))
	// Re-register the same listener, but now the programs expect a mark it
	// does not carry: reload with a mark and take over the maps' contents.
	p, err := bpf.Load(bpf.Options{CgroupPath: k.cgroup, AgentCgroupID: 1, Mark: 0x99})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(false)
	if err := p.SetTargets(single(1, up)); err != nil {
		t.Fatal(err)
	}
	if err := p.SetListener(k.cookie, uint16(k.listener.Addr().(*net.TCPAddr).Port), 0); err != nil {
		t.Fatal(err)
	}
	ev, err := p.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	k.progs.Close(false)
	if err := p.Attach(); err != nil {
		t.Fatal(err)
	}
	r := testutil.RunClient(t, k.cgroup, testutil.Client{Network: "tcp4", Addr: up.String()})
	if !strings.Contains(r.Err, syscall.EPERM.Error()) {
		t.Fatalf("connect: remote %s err %q, want EPERM", r.Remote, r.Err)
	}
	e, err := ev.Read()
	if err != nil {
		t.Fatal(err)
	}
	if e.Reason != bpf.RefuseDeadListener || e.NetnsCookie != k.cookie || int(e.PID) != r.PID {
		t.Errorf("event %+v, want dead listener in netns %d from pid %d", e, k.cookie, r.PID)
	}
}

func TestNoListenerIsRefusedAndReported(t *testing.T) {
	up := upstream(t)
	testutil.RequireBPF(t)
	cg := testutil.NewCgroup(t, "")
	p, err := bpf.Load(bpf.Options{CgroupPath: cg, AgentCgroupID: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(false)
	ev, err := p.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	if err := p.SetTargets(single(1, up)); err != nil {
		t.Fatal(err)
	}
	if err := p.Attach(); err != nil {
		t.Fatal(err)
	}
	r := testutil.RunClient(t, cg, testutil.Client{Network: "tcp4", Addr: up.String()})
	if !strings.Contains(r.Err, syscall.EPERM.Error()) {
		t.Fatalf("connect: %q, want EPERM", r.Err)
	}
	e, err := ev.Read()
	if err != nil {
		t.Fatal(err)
	}
	if e.Reason != bpf.RefuseNoListener || int(e.PID) != r.PID {
		t.Errorf("event %+v", e)
	}
	c, _ := p.Counters()
	if c.Refused != 1 || c.Redirected != 0 {
		t.Errorf("counters %+v", c)
	}
}

func TestSetTargetsReplacesTheSet(t *testing.T) {
	a, b := upstream(t), upstream(t)
	k := setup(t, bpf.Options{AgentCgroupID: 1}, single(1, a))
	if err := k.progs.SetTargets(single(2, b)); err != nil {
		t.Fatal(err)
	}
	r := testutil.RunClient(t, k.cgroup, testutil.Client{Network: "tcp4", Addr: a.String(), Payload: "x"})
	if r.Err != "" || r.Remote != a.String() {
		t.Fatalf("a no longer a target: remote %s err %q", r.Remote, r.Err)
	}
	got := k.accept(t)
	r = testutil.RunClient(t, k.cgroup, testutil.Client{Network: "tcp4", Addr: b.String()})
	if r.Remote != k.listener.Addr().String() {
		t.Fatalf("b is a target: remote %s err %q", r.Remote, r.Err)
	}
	if o := <-got; o.TargetID != 2 || o.Dst != b {
		t.Errorf("origin %+v", o)
	}
}

func TestNonTCPIsIgnored(t *testing.T) {
	up := upstream(t)
	k := setup(t, bpf.Options{AgentCgroupID: 1}, single(1, up))
	r := testutil.RunClient(t, k.cgroup, testutil.Client{Network: "udp4", Addr: up.String(), Payload: "x"})
	if r.Err != "" || r.Remote != up.String() {
		t.Fatalf("UDP connect: remote %s err %q, want it untouched", r.Remote, r.Err)
	}
	if c, err := k.progs.Counters(); err != nil || c.Redirected != 0 || c.Refused != 0 {
		t.Fatalf("counters %+v %v", c, err)
	}
}

// A connect that was redirected and then failed leaves no record that a
// later connect of the same socket could be taken for: connected straight
// to the listener (by whoever holds the socket by then), it has no origin.
func TestFailedRedirectLeavesNoOrigin(t *testing.T) {
	up := upstream(t)
	k := setup(t, bpf.Options{AgentCgroupID: 1}, single(1, up))
	l6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer l6.Close()
	port6 := uint16(l6.Addr().(*net.TCPAddr).Port)
	if err := k.progs.SetListener(k.cookie, uint16(k.listener.Addr().(*net.TCPAddr).Port), port6); err != nil {
		t.Fatal(err)
	}
	origin := make(chan error, 1)
	go func() {
		c, err := l6.Accept()
		if err != nil {
			origin <- err
			return
		}
		defer c.Close()
		client := c.RemoteAddr().(*net.TCPAddr).AddrPort()
		_, err = k.progs.Origin(k.cookie, client, port6)
		origin <- err
		c.Write([]byte("hello"))
	}()
	r := testutil.RunClient(t, k.cgroup, testutil.Client{Network: "tcp6-v6only", Addr: up.String(), Then: l6.Addr().String()})
	if r.Err != "" {
		t.Fatalf("client: %s", r.Err)
	}
	if err := <-origin; err == nil {
		t.Error("the listener's connection has the origin of the socket's failed redirect")
	}
}
