package workload

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// requireRoot skips tests that need root, unless CORRAL_REQUIRE_PRIVILEGED=1
// says a skip would hide a gap in CI's coverage.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CORRAL_REQUIRE_PRIVILEGED") == "1" {
		t.Fatal("test needs root and CORRAL_REQUIRE_PRIVILEGED=1 forbids skipping")
	}
	t.Skip("test needs root")
}

// testCgroup2Root returns the host's cgroup2 mount, with the same skip rule
// as requireRoot when there is none.
func testCgroup2Root(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	root, err := Cgroup2Root()
	if err != nil {
		if os.Getenv("CORRAL_REQUIRE_PRIVILEGED") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return root
}

// mkCgroup creates a cgroup that is removed when the test ends, after any
// cgroups created below it later (t.Cleanup runs last-in first-out).
func mkCgroup(t *testing.T, dir string) string {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A process moved in by the test may take a moment to leave after
		// being killed; the kernel refuses to remove a populated cgroup.
		var err error
		for range 50 {
			if err = os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("removing cgroup %s: %v", dir, err)
	})
	return dir
}

// testCgroup creates a uniquely named cgroup directly below root.
func testCgroup(t *testing.T, root string) string {
	t.Helper()
	return mkCgroup(t, filepath.Join(root, fmt.Sprintf("corral-test-%d-%x", os.Getpid(), rand.Uint64())))
}

func mustID(t *testing.T, p string) uint64 {
	t.Helper()
	id, err := ID(p)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestCgroup2Root(t *testing.T) {
	root := testCgroup2Root(t)
	if !strings.HasPrefix(root, "/sys/fs/cgroup") {
		t.Errorf("Cgroup2Root() = %q", root)
	}
	if _, err := NewCgroups(root); err != nil {
		t.Fatal(err)
	}
}

func TestNewCgroupsRejects(t *testing.T) {
	if _, err := NewCgroups(t.TempDir()); err == nil {
		t.Error("NewCgroups accepted a directory that is not cgroup2")
	}
	root := testCgroup2Root(t)
	if _, err := NewCgroups(testCgroup(t, root)); err == nil {
		t.Error("NewCgroups accepted a cgroup below the mount root")
	}
}

func TestIDAndPath(t *testing.T) {
	root := testCgroup2Root(t)
	base := testCgroup(t, root)
	nested := mkCgroup(t, filepath.Join(base, "nested.service"))
	deeper := mkCgroup(t, filepath.Join(nested, "leaf"))
	rel := func(p string) string { return strings.TrimPrefix(p, root) }

	want := map[uint64]string{mustID(t, root): "/"}
	for _, p := range []string{base, nested, deeper} {
		id := mustID(t, p)
		if _, dup := want[id]; dup {
			t.Fatalf("cgroup id %d seen twice", id)
		}
		want[id] = rel(p)
	}

	t.Run("handle", func(t *testing.T) {
		cg, err := NewCgroups(root)
		if err != nil {
			t.Fatal(err)
		}
		for id, p := range want {
			got, err := cg.pathByHandle(id)
			if err != nil {
				t.Fatalf("pathByHandle(%d): %v", id, err)
			}
			if got != p {
				t.Errorf("pathByHandle(%d) = %q, want %q", id, got, p)
			}
			if got, err := cg.Path(id); err != nil || got != p {
				t.Errorf("Path(%d) = %q, %v; want %q", id, got, err, p)
			}
		}
	})
	t.Run("walk", func(t *testing.T) {
		cg, err := NewCgroups(root)
		if err != nil {
			t.Fatal(err)
		}
		cg.noHandles.Store(true)
		for id, p := range want {
			if got, err := cg.Path(id); err != nil || got != p {
				t.Errorf("Path(%d) = %q, %v; want %q", id, got, err, p)
			}
		}
	})
}

func TestPathNotFound(t *testing.T) {
	root := testCgroup2Root(t)
	gone := filepath.Join(root, fmt.Sprintf("corral-test-%d-%x", os.Getpid(), rand.Uint64()))
	if err := os.Mkdir(gone, 0o755); err != nil {
		t.Fatal(err)
	}
	id, err := ID(gone)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	for _, handles := range []bool{true, false} {
		cg, err := NewCgroups(root)
		if err != nil {
			t.Fatal(err)
		}
		cg.noHandles.Store(!handles)
		if p, err := cg.Path(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("handles=%v: Path(removed cgroup) = %q, %v; want ErrNotFound", handles, p, err)
		}
		if _, err := cg.Path(0); !errors.Is(err, ErrNotFound) {
			t.Errorf("Path(0) = %v; want ErrNotFound", err)
		}
	}
}

func TestWalkRateLimit(t *testing.T) {
	root := testCgroup2Root(t)
	cg, err := NewCgroups(root)
	if err != nil {
		t.Fatal(err)
	}
	cg.noHandles.Store(true)
	if _, err := cg.Path(mustID(t, root)); err != nil {
		t.Fatal(err)
	}
	fresh := testCgroup(t, root)
	id := mustID(t, fresh)
	if _, err := cg.Path(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Path right after a walk = %v; want ErrNotFound from the rate limit", err)
	}
	cg.walkMu.Lock()
	cg.lastWalk = time.Now().Add(-walkInterval)
	cg.walkMu.Unlock()
	if got, err := cg.Path(id); err != nil || got != strings.TrimPrefix(fresh, root) {
		t.Fatalf("Path after the interval = %q, %v", got, err)
	}
}

func TestIDRejects(t *testing.T) {
	if _, err := ID(t.TempDir()); err == nil {
		t.Error("ID accepted a directory that is not cgroup2")
	}
	root := testCgroup2Root(t)
	if _, err := ID(filepath.Join(root, "cgroup.procs")); err == nil {
		t.Error("ID accepted a cgroup file")
	}
}

func TestSelfPath(t *testing.T) {
	root := testCgroup2Root(t)
	p, err := SelfPath()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p, "/") {
		t.Fatalf("SelfPath() = %q", p)
	}
	cg, err := NewCgroups(root)
	if err != nil {
		t.Fatal(err)
	}
	got, err := cg.Path(mustID(t, filepath.Join(root, p)))
	if err != nil || got != p {
		t.Errorf("Path(ID(self)) = %q, %v; want %q", got, err, p)
	}
}

func TestParseProcCgroup(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"0::/system.slice/corral.service\n", "/system.slice/corral.service", true},
		{"12:pids:/user.slice\n1:name=systemd:/user.slice/session-2.scope\n0::/user.slice/session-2.scope\n", "/user.slice/session-2.scope", true},
		{"0::/\n", "/", true},
		{"4:memory:/x\n1:cpu:/\n", "", false},
		{"", "", false},
		{"0::\n", "", false},
	} {
		got, err := parseProcCgroup([]byte(tt.in))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseProcCgroup(%q) = %q, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
