package testutil

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	cnetns "github.com/corral-dev/corral/agent/netns"
)

// Host is a test host: a network namespace joined to the host's by a veth
// pair, reachable at Addr (IPv4, in 198.18.0.0/15, the range set aside for
// benchmarking, so never a real network) and Addr6 (a ULA).
type Host struct {
	NS       string     // path to enter the namespace
	Addr     netip.Addr // the test host's IPv4 address
	Addr6    netip.Addr // the test host's IPv6 address
	HostAddr netip.Addr // the host's end of the veth pair
}

// NewHost creates a test host and removes it at cleanup.
func NewHost(t testing.TB) *Host {
	t.Helper()
	path := NewNetNS(t)
	nsh, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer nsh.Close()

	// A veth name is unique on the host: claiming one is how concurrent
	// test processes agree on distinct subnets without talking.
	var (
		veth *netlink.Veth
		n    uint32
	)
	start := uint32(os.Getpid()) * 7
	for i := uint32(0); ; i++ {
		if i == 4096 {
			t.Fatal("no free test subnet")
		}
		n = (start + i) % 16384
		veth = &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: "crl" + strconv.Itoa(int(n))},
			PeerName:      "eth0",
			PeerNamespace: netlink.NsFd(int(nsh)),
		}
		err := netlink.LinkAdd(veth)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EEXIST) {
			t.Fatalf("create veth: %v", err)
		}
	}
	t.Cleanup(func() { netlink.LinkDel(veth) })

	base := [4]byte{198, 18 + byte(n>>14), byte(n >> 6), byte(n<<2) & 0xfc}
	h := &Host{
		NS:       path,
		HostAddr: netip.AddrFrom4([4]byte{base[0], base[1], base[2], base[3] + 1}),
		Addr:     netip.AddrFrom4([4]byte{base[0], base[1], base[2], base[3] + 2}),
	}
	v6 := [16]byte{0xfd, 0xc0, 0x7a, 0x11, 0, 0, byte(n >> 8), byte(n)}
	hv6 := v6
	hv6[15] = 1
	v6[15] = 2
	h.Addr6 = netip.AddrFrom16(v6)
	host6 := netip.AddrFrom16(hv6)

	if err := configure(nil, veth.Name, netip.PrefixFrom(h.HostAddr, 30), netip.PrefixFrom(host6, 64)); err != nil {
		t.Fatal(err)
	}
	inside, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	if err := configure(inside, "eth0", netip.PrefixFrom(h.Addr, 30), netip.PrefixFrom(h.Addr6, 64)); err != nil {
		t.Fatal(err)
	}
	return h
}

func configure(h *netlink.Handle, name string, addrs ...netip.Prefix) error {
	if h == nil {
		var err error
		if h, err = netlink.NewHandle(); err != nil {
			return err
		}
		defer h.Close()
	}
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	for _, a := range addrs {
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), a.Addr().BitLen())}}
		if a.Addr().Is6() {
			addr.Flags = syscall.IFA_F_NODAD // usable at once, no duplicate detection wait
		}
		if err := h.AddrAdd(l, addr); err != nil {
			return fmt.Errorf("add %s to %s: %w", a, name, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("bring %s up: %w", name, err)
	}
	return nil
}

func linkUp(nsPath, name string) error {
	nsh, err := netns.GetFromPath(nsPath)
	if err != nil {
		return err
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return err
	}
	defer h.Close()
	return configure(h, name)
}

// Listen opens a TCP listener on the test host (addr like ":5432" or
// "[::]:22"), closed at cleanup.
func (h *Host) Listen(t testing.TB, addr string) *net.TCPListener {
	t.Helper()
	l, err := cnetns.Listen(h.NS, "tcp", addr)
	if err != nil {
		t.Fatalf("listen on test host: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// EchoServer answers each connection with "<peer address>|<everything the
// peer sent>" once the peer has closed its side, and counts connections.
type EchoServer struct {
	Accepted atomic.Int64
	wg       sync.WaitGroup
}

// Echo serves l until it is closed.
func Echo(t testing.TB, l net.Listener) *EchoServer {
	s := &EchoServer{}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.Accepted.Add(1)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				b, _ := io.ReadAll(c)
				fmt.Fprintf(c, "%s|%s", c.RemoteAddr(), b)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		s.wg.Wait()
	})
	return s
}
