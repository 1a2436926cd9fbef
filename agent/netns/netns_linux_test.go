package netns_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-dev/corral/agent/netns"
	"github.com/corral-dev/corral/internal/testutil"
)

const waitFor = 10 * time.Second

// waitInNetNS waits until process pid has entered the namespace at nsPath:
// Hold starts nsenter, which joins the namespace only after it started.
// Nothing signals that moment, so this polls.
func waitInNetNS(t *testing.T, pid int, nsPath string) {
	t.Helper()
	want, err := netns.Stat(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("/proc", strconv.Itoa(pid), "ns", "net")
	deadline := time.Now().Add(waitFor)
	for {
		got, err := netns.Stat(path)
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d never entered %s (last: %v, %v)", pid, nsPath, got, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// heldNetNS creates a network namespace and a process that lives in it.
func heldNetNS(t *testing.T) (path string, holder *os.Process, id netns.ID) {
	t.Helper()
	testutil.RequireRoot(t)
	path = testutil.NewNetNS(t)
	holder = testutil.Hold(t, testutil.NewCgroup(t, ""), path)
	waitInNetNS(t, holder.Pid, path)
	id, err := netns.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, holder, id
}

func selfNetNS(t *testing.T) netns.ID {
	t.Helper()
	id, err := netns.Stat("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func listenerCookie(t *testing.T, l *net.TCPListener) uint64 {
	t.Helper()
	rc, err := l.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	c, err := netns.Cookie(rc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func connCookie(t *testing.T, c net.Conn) uint64 {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	cookie, err := netns.Cookie(rc)
	if err != nil {
		t.Fatal(err)
	}
	return cookie
}

func TestScanFindsOwnAndHeldNamespaces(t *testing.T) {
	nsPath, holder, heldID := heldNetNS(t)
	own := selfNetNS(t)
	if own == heldID {
		t.Fatal("the new namespace is the test's own")
	}

	nss, err := netns.Scan("/proc")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[netns.ID]netns.Namespace{}
	for _, ns := range nss {
		if prev, dup := seen[ns.ID]; dup {
			t.Errorf("namespace %v listed twice: %s and %s", ns.ID, prev.Path, ns.Path)
		}
		seen[ns.ID] = ns
	}
	if _, ok := seen[own]; !ok {
		t.Errorf("Scan did not find the test's own namespace %v", own)
	}
	held, ok := seen[heldID]
	if !ok {
		t.Fatalf("Scan did not find the namespace %s held by process %d", nsPath, holder.Pid)
	}
	if want := fmt.Sprintf("/proc/%d/ns/net", holder.Pid); held.Path != want {
		t.Errorf("held namespace path = %s, want %s (its only process)", held.Path, want)
	}
	if id, err := netns.Stat(held.Path); err != nil || id != heldID {
		t.Errorf("Stat(%s) = %v, %v; want %v", held.Path, id, err, heldID)
	}
}

func TestScanDedupesAndSkips(t *testing.T) {
	// A fake proc root: numeric entries are processes, others are not.
	root := t.TempDir()
	link := func(entry, target string) {
		t.Helper()
		dir := filepath.Join(root, entry, "ns")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(dir, "net")); err != nil {
			t.Fatal(err)
		}
	}
	notNS := filepath.Join(t.TempDir(), "regular")
	if err := os.WriteFile(notNS, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link("10", "/proc/self/ns/net")
	link("11", "/proc/self/ns/net")            // same namespace again
	link("12", filepath.Join(root, "missing")) // process gone mid-scan
	link("self", notNS)                        // not a pid: must be ignored
	link("net", notNS)                         // not a pid either
	if err := os.Mkdir(filepath.Join(root, "13"), 0o755); err != nil {
		t.Fatal(err) // a pid without ns/
	}
	if err := os.WriteFile(filepath.Join(root, "uptime"), nil, 0o600); err != nil {
		t.Fatal(err)
	}

	nss, err := netns.Scan(root)
	if err != nil {
		t.Fatal(err)
	}
	own := selfNetNS(t)
	if len(nss) != 1 || nss[0].ID != own || nss[0].Path != filepath.Join(root, "10", "ns", "net") {
		t.Errorf("Scan = %+v, want only %v at %s", nss, own, filepath.Join(root, "10", "ns", "net"))
	}
}

func TestScanMissingRoot(t *testing.T) {
	if _, err := netns.Scan(filepath.Join(t.TempDir(), "no-proc")); err == nil {
		t.Error("Scan of a missing directory succeeded")
	}
}

func TestStat(t *testing.T) {
	a, err := netns.Stat("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	b, err := netns.Stat(fmt.Sprintf("/proc/%d/ns/net", os.Getpid()))
	if err != nil || a != b {
		t.Errorf("Stat of the same namespace by two paths: %v and %v (%v)", a, b, err)
	}
	if a.Ino == 0 {
		t.Error("namespace inode is 0")
	}
	if _, err := netns.Stat(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("Stat of a missing path succeeded")
	}
}

func TestDoRunsInNamespace(t *testing.T) {
	testutil.RequireRoot(t)
	nsPath := testutil.NewNetNS(t)
	want, err := netns.Stat(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	host := selfNetNS(t)

	var inside netns.ID
	err = netns.Do(nsPath, func() error {
		var err error
		inside, err = netns.Stat("/proc/thread-self/ns/net")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if inside != want || inside == host {
		t.Errorf("fn ran in %v, want %v (host %v)", inside, want, host)
	}

	// Threads that ran Do go back to the pool in the host namespace.
	for range 20 {
		if err := netns.Do(nsPath, func() error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, 4*runtime.GOMAXPROCS(0))
	for range cap(errs) {
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			id, err := netns.Stat("/proc/thread-self/ns/net")
			if err == nil && id != host {
				err = fmt.Errorf("a thread is left in namespace %v", id)
			}
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestListenIsIsolatedPerNamespace(t *testing.T) {
	testutil.RequireRoot(t)
	nsPath := testutil.NewNetNS(t)

	hostL, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer hostL.Close()
	addr := hostL.Addr().String()
	// The same address is free in another namespace.
	nsL, err := netns.Listen(nsPath, "tcp4", addr)
	if err != nil {
		t.Fatalf("listen on %s inside the namespace: %v", addr, err)
	}
	defer nsL.Close()
	if got := nsL.Addr().String(); got != addr {
		t.Fatalf("namespace listener on %s, want %s", got, addr)
	}

	accept := func(l *net.TCPListener) net.Conn {
		t.Helper()
		l.SetDeadline(time.Now().Add(waitFor))
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	// From the host, the address reaches the host's listener.
	hc, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	if got := accept(hostL); got.RemoteAddr().String() != hc.LocalAddr().String() {
		t.Errorf("host listener accepted %s, want the host client %s", got.RemoteAddr(), hc.LocalAddr())
	}

	// From inside, the same address reaches the namespace's listener.
	var nc net.Conn
	if err := netns.Do(nsPath, func() error {
		var err error
		nc, err = net.Dial("tcp4", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nsAccepted := accept(nsL)
	if nsAccepted.RemoteAddr().String() != nc.LocalAddr().String() {
		t.Errorf("namespace listener accepted %s, want the inside client %s", nsAccepted.RemoteAddr(), nc.LocalAddr())
	}

	// Cookies tell the namespaces apart and are shared by all sockets of
	// one namespace, whichever goroutine uses them later.
	hostCookie, nsCookie := listenerCookie(t, hostL), listenerCookie(t, nsL)
	if hostCookie == 0 || nsCookie == 0 || hostCookie == nsCookie {
		t.Errorf("cookies: host %d, namespace %d; want distinct non-zero", hostCookie, nsCookie)
	}
	if c := connCookie(t, hc); c != hostCookie {
		t.Errorf("host client cookie %d, want %d", c, hostCookie)
	}
	if c := connCookie(t, nc); c != nsCookie {
		t.Errorf("inside client cookie %d, want %d", c, nsCookie)
	}
	if c := connCookie(t, nsAccepted); c != nsCookie {
		t.Errorf("accepted inside cookie %d, want %d", c, nsCookie)
	}
}

func TestDoErrors(t *testing.T) {
	regular := filepath.Join(t.TempDir(), "regular")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		root       bool
	}{
		{"missing", filepath.Join(t.TempDir(), "missing"), false},
		{"regular file", regular, true},
		{"another namespace type", "/proc/self/ns/uts", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root {
				testutil.RequireRoot(t) // setns is what refuses these
			}
			called := false
			err := netns.Do(tc.path, func() error {
				called = true
				return nil
			})
			if err == nil {
				t.Fatal("Do succeeded")
			}
			if !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q does not name %s", err, tc.path)
			}
			if called {
				t.Error("fn ran although the namespace could not be entered")
			}
		})
	}
	t.Run("fn error", func(t *testing.T) {
		testutil.RequireRoot(t)
		sentinel := errors.New("listen failed")
		if err := netns.Do(testutil.NewNetNS(t), func() error { return sentinel }); !errors.Is(err, sentinel) {
			t.Errorf("Do = %v, want fn's error", err)
		}
	})
}
