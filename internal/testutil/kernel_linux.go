package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/corral-dev/corral/agent/workload"
	"github.com/corral-dev/corral/bpf"
)

// RequireBPF skips (or fails, in CI) a test that needs root and a kernel
// with every feature corral uses.
func RequireBPF(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	if err := bpf.Missing(bpf.Features()); err != nil {
		skipOrFail(t, "kernel lacks eBPF features: "+err.Error())
	}
}

// RandomName returns prefix followed by random hex, short enough for an
// interface name when prefix is.
func RandomName(prefix string) string {
	var b [4]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// A test process names what it makes with a token of its own, and holds
// an exclusive lock on a file named for the token for as long as it runs.
// What a process killed before its cleanup ran (a timeout) left behind,
// the next test process removes (sweepStale): its token's file is there
// and no longer locked. A name whose file this process cannot see (made
// in another container, say) is never taken for stale.
var (
	ownerOnce  sync.Once
	ownerToken string
	ownerLock  *os.File // held (a file no longer referenced is closed), and locked, for the process's life
	ownerErr   error
)

func ownersDir() string { return filepath.Join(os.TempDir(), "corral-test-owners") }

// token returns this process's token, taking its lock the first time.
func token() (string, error) {
	ownerOnce.Do(func() {
		tok := RandomName("")
		if err := os.MkdirAll(ownersDir(), 0o700); err != nil {
			ownerErr = err
			return
		}
		// Locked before it takes its name: no sweep sees it unlocked.
		f, err := os.OpenFile(filepath.Join(ownersDir(), tok+".new"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			ownerErr = err
			return
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			ownerErr = err
			return
		}
		if err := os.Rename(f.Name(), filepath.Join(ownersDir(), tok)); err != nil {
			f.Close()
			ownerErr = err
			return
		}
		ownerToken, ownerLock = tok, f
	})
	return ownerToken, ownerErr
}

// ownedName is prefix, this process's token and random hex.
func ownedName(t testing.TB, prefix string) string {
	tok, err := token()
	if err != nil {
		t.Fatalf("test owner lock: %v", err)
	}
	return RandomName(prefix + tok + "-")
}

// owner is the token in a name ownedName made with prefix; false for
// other names.
func owner(name, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return "", false
	}
	tok, _, ok := strings.Cut(rest, "-")
	return tok, ok && len(tok) == 8
}

var sweepOnce sync.Once

// sweepStale removes the cgroups (and the processes in them), network
// namespaces and pin directories of test processes that have ended, once
// per test process.
func sweepStale(t testing.TB) {
	sweepOnce.Do(func() {
		mine, err := token()
		if err != nil {
			return
		}
		// ended holds the lock of each token found ended until its
		// leftovers are gone; then its file goes too.
		ended := map[string]*os.File{}
		isEnded := func(tok string) bool {
			if tok == mine {
				return false
			}
			if _, ok := ended[tok]; ok {
				return true
			}
			f, err := os.OpenFile(filepath.Join(ownersDir(), filepath.Base(tok)), os.O_RDWR, 0)
			if err != nil {
				return false // not one this process can see
			}
			if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
				f.Close()
				return false // its owner runs
			}
			ended[tok] = f
			return true
		}
		kept := map[string]bool{} // tokens with leftovers that would not go
		stale := func(dir, prefix string, remove func(path string) error) {
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if tok, ok := owner(e.Name(), prefix); ok && isEnded(tok) {
					if err := remove(filepath.Join(dir, e.Name())); err != nil {
						t.Logf("remove what an ended test left: %v", err)
						kept[tok] = true
					}
				}
			}
		}
		if root, err := workload.Cgroup2Root(); err == nil {
			stale(root, "corral-test-", removeCgroup)
		}
		stale("/run/netns", "corral-t-", func(path string) error { return netns.DeleteNamed(filepath.Base(path)) })
		stale("/sys/fs/bpf", "corral-test-", bpf.Unpin)
		// The files of processes that ended, leftovers or not.
		files, _ := os.ReadDir(ownersDir())
		for _, e := range files {
			if !strings.HasSuffix(e.Name(), ".new") { // one starting, maybe not yet locked
				isEnded(e.Name())
			}
		}
		for tok, f := range ended {
			if !kept[tok] {
				os.Remove(filepath.Join(ownersDir(), tok))
			}
			f.Close()
		}
	})
}

// NewCgroup creates a cgroup2 directory for this test under the host's
// cgroup2 root (or under parent, when given) and removes it at cleanup,
// killing whatever the test left in it. It never attaches anything to the
// root itself.
func NewCgroup(t testing.TB, parent string) string {
	t.Helper()
	RequireRoot(t)
	if parent == "" {
		root, err := workload.Cgroup2Root()
		if err != nil {
			t.Fatal(err)
		}
		parent = root
	}
	sweepStale(t)
	dir := filepath.Join(parent, ownedName(t, "corral-test-"))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("create cgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := removeCgroup(dir); err != nil {
			t.Error(err)
		}
	})
	return dir
}

func removeCgroup(dir string) error {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroup(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	// Processes left behind would keep the cgroup busy: kill them all
	// (cgroup.kill) and wait until the kernel reports it unpopulated.
	os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
	for i := 0; i < 250 && populated(dir); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove cgroup %s: %w", dir, err)
	}
	return nil
}

func populated(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	return err == nil && strings.Contains(string(b), "populated 1")
}

// CgroupFD opens a cgroup directory for exec.Cmd's SysProcAttr.CgroupFD,
// which starts a child directly inside the cgroup (no window outside it).
func CgroupFD(t testing.TB, dir string) int {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return int(f.Fd())
}

var netnsMu sync.Mutex

// NewNetNS creates a named network namespace with its loopback up, and
// deletes it at cleanup. It returns the path to enter it by.
func NewNetNS(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	sweepStale(t)
	name := ownedName(t, "corral-t-")
	netnsMu.Lock()
	err := func() error {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		orig, err := netns.Get()
		if err != nil {
			return err
		}
		defer orig.Close()
		ns, err := netns.NewNamed(name)
		if err != nil {
			netns.Set(orig)
			return err
		}
		ns.Close()
		return netns.Set(orig)
	}()
	netnsMu.Unlock()
	if err != nil {
		t.Fatalf("create network namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete network namespace %s: %v", name, err)
		}
	})
	path := filepath.Join("/run/netns", name)
	if err := linkUp(path, "lo"); err != nil {
		t.Fatal(err)
	}
	return path
}

// BPFPinDir returns a fresh pin directory on bpffs (mounting bpffs at
// /sys/fs/bpf if the host has not) and removes whatever is left in it at
// cleanup, so no test leaves programs attached.
func BPFPinDir(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	if err := bpf.MountBPFFS("/sys/fs/bpf"); err != nil {
		t.Fatal(err)
	}
	sweepStale(t)
	dir := filepath.Join("/sys/fs/bpf", ownedName(t, "corral-test-"))
	t.Cleanup(func() {
		if err := bpf.Unpin(dir); err != nil {
			t.Errorf("remove pinned links: %v", err)
		}
	})
	return dir
}
