package workload

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func debugLogger() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

func TestResolverProcessCache(t *testing.T) {
	procRoot := t.TempDir()
	log, buf := debugLogger()
	r := NewResolver(nil, procRoot, log)
	comm := "a" // the connecting thread's, as the kernel recorded it
	identify := func() Identity {
		t.Helper()
		return r.Identify(Facts{PID: 100, UID: 7, Comm: comm})
	}

	fakeProc(t, procRoot, 100, "a", 1, 7, "/bin/a", "a\x00")
	if id := identify(); id.Exe != "/bin/a" || !slices.Equal(id.Cmdline, []string{"a"}) || id.Comm != "a" {
		t.Fatalf("first Identify = %+v", id)
	}

	// Same start time: the cached facts stand, /proc is not read again.
	fakeProc(t, procRoot, 100, "a", 1, 7, "/bin/changed", "changed\x00")
	if id := identify(); id.Exe != "/bin/a" {
		t.Errorf("cache hit read /proc again: Exe = %q", id.Exe)
	}

	// Same start time, new comm: the process exec'd another program. Had
	// it connected before, its executable now is not what connected.
	fakeProc(t, procRoot, 100, "b", 1, 7, "/bin/b", "b\x00")
	if id := identify(); id.Exe != "" || id.Cmdline != nil {
		t.Errorf("a connection made before an exec took the new program's facts: %+v", id)
	}
	comm = "b"
	if id := identify(); id.Exe != "/bin/b" || !slices.Equal(id.Cmdline, []string{"b"}) {
		t.Errorf("exec not noticed: Identify = %+v", id)
	}

	// New start time: the pid has a new owner, whose facts must replace the
	// cached ones.
	comm = "c"
	fakeProc(t, procRoot, 100, "c", 2, 8, "/bin/c", "c\x00-x\x00")
	if id := identify(); id.Exe != "/bin/c" || !slices.Equal(id.Cmdline, []string{"c", "-x"}) {
		t.Errorf("reused pid: Identify = %+v", id)
	}

	// Gone: kernel facts stay, /proc facts are empty, nothing is returned
	// from the cache.
	if err := os.RemoveAll(filepath.Join(procRoot, "100")); err != nil {
		t.Fatal(err)
	}
	id := identify()
	if id.Exe != "" || id.Cmdline != nil || id.PID != 100 || id.UID != 7 || id.Comm != "c" {
		t.Errorf("exited pid: Identify = %+v", id)
	}
	if !strings.Contains(buf.String(), "level=DEBUG") || !strings.Contains(buf.String(), "pid=100") {
		t.Errorf("exited pid not logged at debug: %q", buf.String())
	}
	if len(r.procs) != 0 {
		t.Errorf("exited pid still cached: %v", r.procs)
	}

	// No kernel comm: the process's own name fills in.
	fakeProc(t, procRoot, 101, "fallback", 3, 0, "/bin/f", "")
	if id := r.Identify(Facts{PID: 101}); id.Comm != "fallback" {
		t.Errorf("Comm = %q, want the /proc comm", id.Comm)
	}
}

func TestResolverProcessCacheBound(t *testing.T) {
	procRoot := t.TempDir()
	r := NewResolver(nil, procRoot, nil)
	r.maxProcs = 4
	for pid := uint32(200); pid < 220; pid++ {
		fakeProc(t, procRoot, pid, "p", uint64(pid), 0, "/bin/p", "p\x00")
		if id := r.Identify(Facts{PID: pid}); id.Exe != "/bin/p" {
			t.Fatalf("Identify(%d) = %+v", pid, id)
		}
		if len(r.procs) > r.maxProcs {
			t.Fatalf("%d cached processes, bound is %d", len(r.procs), r.maxProcs)
		}
	}
}

func TestResolverConcurrent(t *testing.T) {
	procRoot := t.TempDir()
	for pid := uint32(300); pid < 310; pid++ {
		fakeProc(t, procRoot, pid, "p", uint64(pid), pid, "/bin/p", "p\x00")
	}
	r := NewResolver(nil, procRoot, nil)
	r.maxProcs = 5
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				pid := uint32(300 + (g+i)%10)
				if id := r.Identify(Facts{PID: pid, UID: pid}); id.Exe != "/bin/p" || id.UID != pid {
					t.Errorf("Identify(%d) = %+v", pid, id)
					return
				}
				if i%50 == 0 {
					r.SetPods(staticPods{})
				}
			}
		})
	}
	wg.Wait()
}

// TestIdentityJSON pins the field names later tooling reads, and that the
// contract fields are present even when empty.
func TestIdentityJSON(t *testing.T) {
	b, err := json.Marshal(Identity{})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"cgroup_id", "cgroup_path", "container_id", "exe", "pid", "pod", "uid", "unit"}
	if !slices.Equal(keys, want) {
		t.Errorf("empty Identity has keys %v, want %v", keys, want)
	}
	pod, _ := got["pod"].(map[string]any)
	var podKeys []string
	for k := range pod {
		podKeys = append(podKeys, k)
	}
	slices.Sort(podKeys)
	if want := []string{"name", "namespace", "service_account", "uid"}; !slices.Equal(podKeys, want) {
		t.Errorf("empty Pod has keys %v, want %v", podKeys, want)
	}

	full := Identity{Cmdline: []string{"x"}, Comm: "c", User: "u", Runtime: RuntimeCRIO, Pod: Pod{Labels: map[string]string{"a": "b"}}}
	b, err = json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"cmdline":["x"]`, `"comm":"c"`, `"user":"u"`, `"container_runtime":"cri-o"`, `"labels":{"a":"b"}`} {
		if !bytes.Contains(b, []byte(k)) {
			t.Errorf("%s missing from %s", k, b)
		}
	}
}

type staticPods map[string]Pod

func (s staticPods) Pod(uid string) (Pod, bool) {
	p, ok := s[uid]
	return p, ok
}
