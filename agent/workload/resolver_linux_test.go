package workload

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// newTestResolver returns a resolver over the real cgroup2 tree and /proc,
// and its debug log.
func newTestResolver(t *testing.T, root string) (*Resolver, *bytes.Buffer) {
	t.Helper()
	cg, err := NewCgroups(root)
	if err != nil {
		t.Fatal(err)
	}
	log, buf := debugLogger()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("resolver log:\n%s", buf)
		}
	})
	return NewResolver(cg, "/proc", log), buf
}

func TestIdentifySelf(t *testing.T) {
	root := testCgroup2Root(t)
	self, err := SelfPath()
	if err != nil {
		t.Fatal(err)
	}
	r, _ := newTestResolver(t, root)
	f := Facts{CgroupID: mustID(t, filepath.Join(root, self)), PID: uint32(os.Getpid()), UID: uint32(os.Getuid()), Comm: selfComm(t)}
	id := r.Identify(f)

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pl := ParseCgroupPath(self)
	if id.CgroupID != f.CgroupID || id.CgroupPath != self || id.PID != f.PID || id.UID != f.UID || id.Comm != f.Comm ||
		id.Exe != realPath(t, exe) || !slices.Equal(id.Cmdline, os.Args) || id.Unit != pl.Unit {
		t.Errorf("Identify(self) = %+v", id)
	}
	if os.Getuid() == 0 && id.User != "root" {
		t.Errorf("User = %q, want root", id.User)
	}
}

func TestIdentifyExited(t *testing.T) {
	root := testCgroup2Root(t)
	r, buf := newTestResolver(t, root)
	pid := exitedPID(t)
	id := r.Identify(Facts{CgroupID: mustID(t, root), PID: pid, UID: 4242, Comm: "true"})
	if id.Exe != "" || id.Cmdline != nil {
		t.Errorf("exited process has /proc facts: %+v", id)
	}
	if id.PID != pid || id.UID != 4242 || id.Comm != "true" || id.CgroupPath != "/" {
		t.Errorf("kernel facts lost: %+v", id)
	}
	if s := buf.String(); !strings.Contains(s, "level=DEBUG") || !strings.Contains(s, "pid="+strconv.Itoa(int(pid))) {
		t.Errorf("exited process not logged at debug: %q", s)
	}
}

// TestIdentifyUnit moves a real process into a cgroup named like a systemd
// unit and identifies it from the ids the kernel would report.
func TestIdentifyUnit(t *testing.T) {
	root := testCgroup2Root(t)
	base := testCgroup(t, root)
	unit := mkCgroup(t, filepath.Join(base, "probe.service"))
	sub := mkCgroup(t, filepath.Join(unit, "worker"))
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip(err)
	}
	cmd := startProcess(t, sleep, "30")
	pid := uint32(cmd.Process.Pid)
	if err := os.WriteFile(filepath.Join(sub, "cgroup.procs"), []byte(strconv.Itoa(int(pid))), 0); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	rel := strings.TrimPrefix(sub, root)
	if got, err := parseProcCgroup(b); err != nil || got != rel {
		t.Fatalf("child's cgroup = %q, %v; want %q", got, err, rel)
	}

	r, _ := newTestResolver(t, root)
	id := r.Identify(Facts{CgroupID: mustID(t, sub), PID: pid, UID: 0, Comm: "sleep"})
	if id.CgroupPath != rel || id.Unit != "probe.service" || id.Exe != realPath(t, sleep) ||
		!slices.Equal(id.Cmdline, []string{sleep, "30"}) || id.Pod.UID != "" || id.ContainerID != "" {
		t.Errorf("Identify = %+v", id)
	}
}

// kubeTree creates a kubelet systemd-driver layout below dir and returns the
// container's cgroup.
func kubeTree(t *testing.T, dir string) (pod, container string) {
	t.Helper()
	for _, e := range []string{
		"kubepods.slice",
		"kubepods-burstable.slice",
		"kubepods-burstable-pod" + testUIDU + ".slice",
		"cri-containerd-" + testCID + ".scope",
	} {
		pod = dir
		dir = mkCgroup(t, filepath.Join(dir, e))
	}
	return pod, dir
}

func TestIdentifyPod(t *testing.T) {
	root := testCgroup2Root(t)
	_, ctr := kubeTree(t, testCgroup(t, root))
	r, _ := newTestResolver(t, root)
	f := Facts{CgroupID: mustID(t, ctr), PID: uint32(os.Getpid()), UID: 65534}

	id := r.Identify(f)
	if id.Pod.UID != testUID || id.ContainerID != testCID || id.Runtime != RuntimeContainerd || id.Unit != "" ||
		id.CgroupPath != strings.TrimPrefix(ctr, root) {
		t.Errorf("Identify = %+v", id)
	}
	if id.Pod.Namespace != "" {
		t.Errorf("Pod filled without a lookup: %+v", id.Pod)
	}

	meta := Pod{Namespace: "etl", Name: "migrator-7d9f", ServiceAccount: "migrator", Labels: map[string]string{"app": "migrator"}}
	r.SetPods(staticPods{testUID: meta})
	id = r.Identify(f)
	meta.UID = testUID
	if id.Pod.UID != meta.UID || id.Pod.Namespace != meta.Namespace || id.Pod.Name != meta.Name ||
		id.Pod.ServiceAccount != meta.ServiceAccount || id.Pod.Labels["app"] != "migrator" {
		t.Errorf("Pod = %+v, want %+v", id.Pod, meta)
	}

	r.SetPods(staticPods{})
	if id := r.Identify(f); id.Pod.UID != testUID || id.Pod.Name != "" {
		t.Errorf("unknown pod: Pod = %+v", id.Pod)
	}
	r.SetPods(nil)
	if id := r.Identify(f); id.Pod.UID != testUID || id.Pod.Name != "" {
		t.Errorf("no lookup: Pod = %+v", id.Pod)
	}
}

// TestIdentifyDelegated checks that a kubepods look-alike built inside a
// directory an unprivileged user controls does not earn a pod identity,
// while a runtime chowning the container's own cgroup (user-namespaced
// pods) does not lose one.
func TestIdentifyDelegated(t *testing.T) {
	root := testCgroup2Root(t)
	chownAll := func(t *testing.T, from, to string) {
		t.Helper()
		for p := to; ; p = filepath.Dir(p) {
			if err := os.Chown(p, 1000, 1000); err != nil {
				t.Fatal(err)
			}
			if p == from {
				return
			}
		}
	}

	t.Run("user-owned subtree", func(t *testing.T) {
		deleg := mkCgroup(t, filepath.Join(testCgroup(t, root), "user@1000.service"))
		_, ctr := kubeTree(t, deleg)
		chownAll(t, deleg, ctr)
		r, buf := newTestResolver(t, root)
		id := r.Identify(Facts{CgroupID: mustID(t, ctr), PID: uint32(os.Getpid()), UID: 1000})
		if id.Pod.UID != "" || id.ContainerID != "" || id.Runtime != "" {
			t.Errorf("delegated look-alike believed: %+v", id)
		}
		if id.Unit != "user@1000.service" {
			t.Errorf("Unit = %q, want the delegated unit", id.Unit)
		}
		if id.CgroupPath != strings.TrimPrefix(ctr, root) {
			t.Errorf("CgroupPath = %q, want the full path", id.CgroupPath)
		}
		// Where it runs, for approvals' bounds: the delegated directory.
		if got, want := r.TrustedCgroup(id.CgroupPath), strings.TrimPrefix(deleg, root); got != want {
			t.Errorf("TrustedCgroup = %q, want %q", got, want)
		}
		if !strings.Contains(buf.String(), "level=WARN") {
			t.Errorf("no warning: %q", buf.String())
		}
	})

	t.Run("world-writable parent", func(t *testing.T) {
		open := testCgroup(t, root)
		if err := os.Chmod(open, 0o777); err != nil {
			t.Fatal(err)
		}
		_, ctr := kubeTree(t, open)
		r, _ := newTestResolver(t, root)
		if id := r.Identify(Facts{CgroupID: mustID(t, ctr)}); id.Pod.UID != "" || id.ContainerID != "" {
			t.Errorf("look-alike below a world-writable directory believed: %+v", id)
		}
	})

	t.Run("container cgroup owned by its userns root", func(t *testing.T) {
		_, ctr := kubeTree(t, testCgroup(t, root))
		nested := mkCgroup(t, filepath.Join(ctr, "init.scope"))
		chownAll(t, ctr, nested)
		r, _ := newTestResolver(t, root)
		id := r.Identify(Facts{CgroupID: mustID(t, nested)})
		if id.Pod.UID != testUID || id.ContainerID != testCID || id.Runtime != RuntimeContainerd || id.Unit != "" {
			t.Errorf("Identify = %+v", id)
		}
	})
}

// selfComm is this process's name, as the kernel records it at connect.
func selfComm(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(string(b), "\n")
}
