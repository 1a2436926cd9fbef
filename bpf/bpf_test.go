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
