package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
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
	dir := filepath.Join(parent, RandomName("corral-test-"))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("create cgroup: %v", err)
	}
	t.Cleanup(func() { removeCgroup(t, dir) })
	return dir
}

func removeCgroup(t testing.TB, dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			removeCgroup(t, filepath.Join(dir, e.Name()))
		}
	}
	// Processes left behind would keep the cgroup busy: kill them all
	// (cgroup.kill) and wait until the kernel reports it unpopulated.
	os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
	for i := 0; i < 250 && populated(dir); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("remove cgroup %s: %v", dir, err)
	}
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
	name := RandomName("corral-t-")
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
	dir := filepath.Join("/sys/fs/bpf", RandomName("corral-test-"))
	t.Cleanup(func() {
		if err := bpf.Unpin(dir); err != nil {
			t.Errorf("remove pinned links: %v", err)
		}
	})
	return dir
}
