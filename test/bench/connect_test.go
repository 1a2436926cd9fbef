//go:build linux

// Package bench measures corral against its baselines in the same run; the
// results are read as ratios (see benchratio and `make bench`), never as
// pass/fail timings.
package bench

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/agent/workload"
	"github.com/corral-dev/corral/bpf"
	"github.com/corral-dev/corral/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// BenchmarkConnect is the cost corral puts on every connection that is not
// to a protected target: connect()+accept+close to a loopback server, with
// the programs not attached (baseline) and attached with 256 targets
// (corral), in alternating rounds. Rate ratio = baseline ns/op ÷ corral
// ns/op (target ≥ 0.98).
func BenchmarkConnect(b *testing.B) {
	testutil.RequireBPF(b)
	root, err := workload.Cgroup2Root()
	if err != nil {
		b.Fatal(err)
	}
	self, err := workload.SelfPath()
	if err != nil {
		b.Fatal(err)
	}
	cg := testutil.NewCgroup(b, "")
	// The benchmark process itself must be inside the attached cgroup.
	join := func(dir string) {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(fmt.Sprint(os.Getpid())), 0); err != nil {
			b.Fatal(err)
		}
	}
	join(cg)
	b.Cleanup(func() { join(filepath.Join(root, self)) })

	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dst := l.Addr().(*net.TCPAddr).AddrPort()

	p, err := bpf.Load(bpf.Options{CgroupPath: cg, AgentCgroupID: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close(false) })
	var targets []bpf.Target
	for i := 0; i < 256; i++ {
		targets = append(targets, bpf.Target{
			ID:     uint32(i + 1),
			Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i), 0}), 24),
			Port:   5432,
		})
	}
	if err := p.SetTargets(targets); err != nil {
		b.Fatal(err)
	}

	// Alternate rounds so drift on a shared machine hits both sides alike.
	for round := 0; round < 5; round++ {
		b.Run("baseline", func(b *testing.B) { connectLoop(b, dst) })
		if err := p.Attach(); err != nil {
			b.Fatal(err)
		}
		b.Run("corral", func(b *testing.B) { connectLoop(b, dst) })
		if err := p.Detach(false); err != nil {
			b.Fatal(err)
		}
	}
	c, _ := p.Counters()
	if c.Redirected != 0 || c.Passed == 0 {
		b.Fatalf("connects were not passed through untouched: %+v", c)
	}
}

func connectLoop(b *testing.B, dst netip.AddrPort) {
	sa := &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()}
	b.ReportAllocs()
	for b.Loop() {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		if err := unix.Connect(fd, sa); err != nil {
			b.Fatal(err)
		}
		unix.Close(fd)
	}
}
