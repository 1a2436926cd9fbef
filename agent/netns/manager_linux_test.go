package netns_test

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/agent/netns"
	"github.com/corral-dev/corral/internal/testutil"
)

// fakeRegistry stands in for the eBPF maps. Safe for concurrent use.
type fakeRegistry struct {
	mu      sync.Mutex
	ports   map[uint64][2]uint16 // announced now: cookie → {port4, port6}
	sets    map[uint64]int       // SetListener calls per cookie
	deletes map[uint64]int       // DeleteListener calls per cookie
	failSet map[uint64]error
}

func newRegistry() *fakeRegistry {
	return &fakeRegistry{
		ports:   map[uint64][2]uint16{},
		sets:    map[uint64]int{},
		deletes: map[uint64]int{},
		failSet: map[uint64]error{},
	}
}

func (r *fakeRegistry) SetListener(cookie uint64, port4, port6 uint16) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sets[cookie]++
	if err := r.failSet[cookie]; err != nil {
		return err
	}
	r.ports[cookie] = [2]uint16{port4, port6}
	return nil
}

func (r *fakeRegistry) DeleteListener(cookie uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deletes[cookie]++
	delete(r.ports, cookie)
	return nil
}

func (r *fakeRegistry) failFor(cookie uint64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		delete(r.failSet, cookie)
	} else {
		r.failSet[cookie] = err
	}
}

func (r *fakeRegistry) announced(cookie uint64) ([2]uint16, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.ports[cookie]
	return p, ok
}

func (r *fakeRegistry) counts(cookie uint64) (sets, deletes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sets[cookie], r.deletes[cookie]
}

// served records the listeners a Manager hands out, and reports those of
// one namespace on a channel.
type served struct {
	mu    sync.Mutex
	all   []*netns.Listener
	watch netns.ID
	found chan *netns.Listener
}

func newServed(watch netns.ID) *served {
	return &served{watch: watch, found: make(chan *netns.Listener, 16)}
}

func (s *served) serve(l *netns.Listener) {
	s.mu.Lock()
	s.all = append(s.all, l)
	s.mu.Unlock()
	if l.NS.ID == s.watch {
		s.found <- l
	}
}

func (s *served) in(id netns.ID) []*netns.Listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*netns.Listener
	for _, l := range s.all {
		if l.NS.ID == id {
			out = append(out, l)
		}
	}
	return out
}

func (s *served) listeners() []*netns.Listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*netns.Listener(nil), s.all...)
}

func newManager(t *testing.T, reg netns.Registry, mark uint32, s *served) *netns.Manager {
	t.Helper()
	m := netns.NewManager("/proc", reg, mark, s.serve, slog.New(slog.DiscardHandler))
	t.Cleanup(m.Close)
	return m
}

// only returns the single listener served in namespace id.
func only(t *testing.T, s *served, id netns.ID) *netns.Listener {
	t.Helper()
	ls := s.in(id)
	if len(ls) != 1 {
		t.Fatalf("%d listeners served in namespace %v, want 1", len(ls), id)
	}
	return ls[0]
}

// nsCookie is the cookie of the namespace at path, from a socket of its own.
func nsCookie(t *testing.T, path string) uint64 {
	t.Helper()
	l, err := netns.Listen(path, "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return listenerCookie(t, l)
}

// reachFromInside connects to l from inside the namespace at path and
// checks that l accepts that very connection.
func reachFromInside(t *testing.T, path string, l *net.TCPListener) {
	t.Helper()
	var c net.Conn
	if err := netns.Do(path, func() error {
		var err error
		c, err = net.DialTimeout(l.Addr().Network(), l.Addr().String(), waitFor)
		return err
	}); err != nil {
		t.Fatalf("connect to %s from inside %s: %v", l.Addr(), path, err)
	}
	defer c.Close()
	l.SetDeadline(time.Now().Add(waitFor))
	a, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.RemoteAddr().String() != c.LocalAddr().String() {
		t.Errorf("listener accepted %s, want %s", a.RemoteAddr(), c.LocalAddr())
	}
}

// expectClosed checks that l was closed. An open listener would block
// Accept: the deadline turns that into a failure.
func expectClosed(t *testing.T, l *net.TCPListener) {
	t.Helper()
	if l == nil {
		return
	}
	l.SetDeadline(time.Now().Add(2 * time.Second)) // fails on a closed listener
	c, err := l.Accept()
	if err == nil {
		c.Close()
	}
	if !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on %s = %v, want the listener closed", l.Addr(), err)
	}
}

func port6(l *netns.Listener) uint16 {
	if l.V6 == nil {
		return 0
	}
	return uint16(l.V6.Addr().(*net.TCPAddr).Port)
}

func TestManagerSyncListensInHeldNamespace(t *testing.T) {
	nsPath, holder, heldID := heldNetNS(t)
	reg, s := newRegistry(), newServed(heldID)
	m := newManager(t, reg, 0, s)

	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	l := only(t, s, heldID)
	if l.NS.Path != "/proc/"+strconv.Itoa(holder.Pid)+"/ns/net" {
		t.Errorf("listener namespace path %s, want the holder's", l.NS.Path)
	}
	if want := nsCookie(t, nsPath); l.Cookie != want {
		t.Errorf("listener cookie %d, want the namespace's %d", l.Cookie, want)
	}
	if got := listenerCookie(t, l.V4); got != l.Cookie {
		t.Errorf("IPv4 socket cookie %d, Listener.Cookie %d", got, l.Cookie)
	}
	if a := l.V4.Addr().(*net.TCPAddr); !a.IP.Equal(net.IPv4(127, 0, 0, 1)) || uint16(a.Port) != l.Port() || l.Port() == 0 {
		t.Errorf("IPv4 listener on %v, Port() %d", a, l.Port())
	}
	reachFromInside(t, nsPath, l.V4)
	if l.V6 != nil {
		if a := l.V6.Addr().(*net.TCPAddr); !a.IP.Equal(net.IPv6loopback) {
			t.Errorf("IPv6 listener on %v, want ::1", a)
		}
		if got := listenerCookie(t, l.V6); got != l.Cookie {
			t.Errorf("IPv6 socket cookie %d, Listener.Cookie %d", got, l.Cookie)
		}
		reachFromInside(t, nsPath, l.V6)
	}
	if p, ok := reg.announced(l.Cookie); !ok || p != [2]uint16{l.Port(), port6(l)} {
		t.Errorf("registry has %v (%v) for cookie %d, want ports %d/%d", p, ok, l.Cookie, l.Port(), port6(l))
	}

	// The test's own namespace holds processes too, and gets its listener.
	own := only(t, s, selfNetNS(t))
	hostSock, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer hostSock.Close()
	if hc := listenerCookie(t, hostSock); own.Cookie != hc || own.Cookie == l.Cookie {
		t.Errorf("host listener cookie %d, want %d (held namespace %d)", own.Cookie, hc, l.Cookie)
	}

	// One listener per namespace, and a rescan opens nothing new.
	seen := map[netns.ID]bool{}
	for _, x := range s.listeners() {
		if seen[x.NS.ID] {
			t.Errorf("two listeners for namespace %v", x.NS.ID)
		}
		seen[x.NS.ID] = true
	}
	before := len(s.in(heldID))
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	if after := len(s.in(heldID)); after != before {
		t.Errorf("a rescan served %d more listeners in an unchanged namespace", after-before)
	}
	if sets, deletes := reg.counts(l.Cookie); sets != 1 || deletes != 0 {
		t.Errorf("registry calls for the held namespace: %d set, %d delete; want 1, 0", sets, deletes)
	}
}

func TestManagerClosesListenerWhenNamespaceEmpties(t *testing.T) {
	nsPath, holder, heldID := heldNetNS(t)
	reg, s := newRegistry(), newServed(heldID)
	m := newManager(t, reg, 0, s)
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	l := only(t, s, heldID)

	if err := holder.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	if sets, deletes := reg.counts(l.Cookie); sets != 1 || deletes != 1 {
		t.Errorf("registry calls: %d set, %d delete; want 1, 1", sets, deletes)
	}
	if _, ok := reg.announced(l.Cookie); ok {
		t.Error("listener still announced after its namespace emptied")
	}
	expectClosed(t, l.V4)
	expectClosed(t, l.V6)

	// Still empty: nothing reopened, nothing deleted twice.
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	if n := len(s.in(heldID)); n != 1 {
		t.Errorf("%d listeners served for an empty namespace", n)
	}
	if _, deletes := reg.counts(l.Cookie); deletes != 1 {
		t.Errorf("%d deletes, want 1", deletes)
	}

	// A new process in the namespace brings a new listener.
	again := testutil.Hold(t, testutil.NewCgroup(t, ""), nsPath)
	waitInNetNS(t, again.Pid, nsPath)
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	ls := s.in(heldID)
	if len(ls) != 2 {
		t.Fatalf("%d listeners served in the namespace, want a second one", len(ls))
	}
	l2 := ls[1]
	if l2.Cookie != l.Cookie {
		t.Errorf("same namespace, cookies %d then %d", l.Cookie, l2.Cookie)
	}
	if p, ok := reg.announced(l2.Cookie); !ok || p != [2]uint16{l2.Port(), port6(l2)} {
		t.Errorf("registry has %v (%v), want %d/%d", p, ok, l2.Port(), port6(l2))
	}
	reachFromInside(t, nsPath, l2.V4)
}

func TestManagerCloseUnregistersAll(t *testing.T) {
	_, _, heldID := heldNetNS(t)
	reg, s := newRegistry(), newServed(heldID)
	m := newManager(t, reg, 0, s)
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	all := s.listeners()
	if len(s.in(heldID)) != 1 || m.Len() != len(all) {
		t.Fatalf("Len %d, %d served, %d in the held namespace", m.Len(), len(all), len(s.in(heldID)))
	}

	m.Close()
	if n := m.Len(); n != 0 {
		t.Errorf("Len = %d after Close", n)
	}
	for _, l := range all {
		if sets, deletes := reg.counts(l.Cookie); deletes != sets {
			t.Errorf("cookie %d: %d set, %d delete", l.Cookie, sets, deletes)
		}
		expectClosed(t, l.V4)
		expectClosed(t, l.V6)
	}
	reg.mu.Lock()
	left := len(reg.ports)
	reg.mu.Unlock()
	if left != 0 {
		t.Errorf("%d listeners still announced after Close", left)
	}

	m.Close() // idempotent
	for _, l := range all {
		if _, deletes := reg.counts(l.Cookie); deletes != 1 {
			t.Errorf("cookie %d deleted %d times", l.Cookie, deletes)
		}
	}
}

// listening returns the listening TCP sockets of the namespace at path, as
// lines of /proc/net/tcp{,6}.
func listening(t *testing.T, path string) []string {
	t.Helper()
	var out []string
	err := netns.Do(path, func() error {
		for _, f := range []string{"/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"} {
			fh, err := os.Open(f)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			sc := bufio.NewScanner(fh)
			for sc.Scan() {
				if fields := strings.Fields(sc.Text()); len(fields) > 3 && fields[3] == "0A" {
					out = append(out, sc.Text())
				}
			}
			fh.Close()
			if err := sc.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestManagerRetriesAfterRegistryFailure(t *testing.T) {
	nsPath, _, heldID := heldNetNS(t)
	cookie := nsCookie(t, nsPath)
	reg, s := newRegistry(), newServed(heldID)
	reg.failFor(cookie, errors.New("netns_listener map full"))
	m := newManager(t, reg, 0, s)

	if err := m.Sync(); err != nil {
		t.Fatalf("Sync failed as a whole for one namespace: %v", err)
	}
	if n := len(s.in(heldID)); n != 0 {
		t.Fatalf("%d listeners served although the registry refused them", n)
	}
	if sets, _ := reg.counts(cookie); sets != 1 {
		t.Errorf("%d SetListener calls, want 1", sets)
	}
	if socks := listening(t, nsPath); len(socks) != 0 {
		t.Errorf("unannounced listeners left open in the namespace:\n%s", strings.Join(socks, "\n"))
	}

	reg.failFor(cookie, nil)
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	l := only(t, s, heldID)
	if p, ok := reg.announced(cookie); !ok || p[0] != l.Port() {
		t.Errorf("registry has %v (%v), want port %d", p, ok, l.Port())
	}
	reachFromInside(t, nsPath, l.V4)
}

func sockMark(t *testing.T, l *net.TCPListener) int {
	t.Helper()
	rc, err := l.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var (
		mark int
		serr error
	)
	if err := rc.Control(func(fd uintptr) {
		mark, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK)
	}); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return mark
}

func TestManagerMarksListeners(t *testing.T) {
	_, _, heldID := heldNetNS(t)
	const mark = 0x5ec0
	for _, tc := range []struct {
		mark uint32
		want int
	}{{mark, mark}, {0, 0}} {
		reg, s := newRegistry(), newServed(heldID)
		m := newManager(t, reg, tc.mark, s)
		if err := m.Sync(); err != nil {
			t.Fatal(err)
		}
		l := only(t, s, heldID)
		if got := sockMark(t, l.V4); got != tc.want {
			t.Errorf("mark %#x: IPv4 listener mark %#x, want %#x", tc.mark, got, tc.want)
		}
		if l.V6 != nil {
			if got := sockMark(t, l.V6); got != tc.want {
				t.Errorf("mark %#x: IPv6 listener mark %#x, want %#x", tc.mark, got, tc.want)
			}
		}
		m.Close()
	}
}

func TestManagerRunScansOnKick(t *testing.T) {
	_, _, heldID := heldNetNS(t)
	reg, s := newRegistry(), newServed(heldID)
	m := newManager(t, reg, 0, s)

	// Kick never blocks, with or without Run to take it.
	kicked := make(chan struct{})
	go func() {
		defer close(kicked)
		for range 10000 {
			m.Kick()
		}
	}()
	select {
	case <-kicked:
	case <-time.After(waitFor):
		t.Fatal("Kick blocked")
	}
	if n := m.Len(); n != 0 {
		t.Fatalf("Len = %d before Run", n)
	}

	// The pending kick makes Run scan at once, long before its interval.
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		m.Run(ctx, time.Hour)
	}()
	defer func() {
		cancel()
		<-ran
	}()
	var l *netns.Listener
	select {
	case l = <-s.found:
	case <-time.After(waitFor):
		t.Fatal("Run did not scan after Kick")
	}
	for range 100 {
		m.Kick() // while Run is busy or idle: never blocks
	}

	cancel()
	select {
	case <-ran:
	case <-time.After(waitFor):
		t.Fatal("Run did not return after its context ended")
	}
	if n := m.Len(); n != 0 {
		t.Errorf("Len = %d after Run returned", n)
	}
	if _, deletes := reg.counts(l.Cookie); deletes != 1 {
		t.Errorf("held namespace unregistered %d times when Run returned, want 1", deletes)
	}
	expectClosed(t, l.V4)
}
