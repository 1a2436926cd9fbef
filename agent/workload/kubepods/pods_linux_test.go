package kubepods

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/corral-dev/corral/agent/workload"
	"github.com/corral-dev/corral/internal/testutil"
)

func randomHex(n int) string {
	b := make([]byte, n/2)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func randomUID() string {
	h := randomHex(32)
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-8" + h[17:20] + "-" + h[20:]
}

// layout is one way a kubelet and a runtime name a container's cgroup.
type layout struct {
	name    string
	scheme  string // the runtime's prefix of a status's container id
	runtime string // what the cgroup path says, "" where it cannot
	path    func(uid, cid string) []string
	static  bool // the pod is a static pod: its cgroup carries the hash
}

func systemdPath(qos, prefix string) func(uid, cid string) []string {
	return func(uid, cid string) []string {
		slice := "kubepods"
		dirs := []string{"kubepods.slice"}
		if qos != "" {
			slice += "-" + qos
			dirs = append(dirs, slice+".slice")
		}
		return append(dirs, slice+"-pod"+strings.ReplaceAll(uid, "-", "_")+".slice", prefix+cid+".scope")
	}
}

func cgroupfsPath(qos string) func(uid, cid string) []string {
	return func(uid, cid string) []string {
		dirs := []string{"kubepods"}
		if qos != "" {
			dirs = append(dirs, qos)
		}
		return append(dirs, "pod"+uid, cid)
	}
}

var layouts = []layout{
	{name: "systemd/containerd", scheme: "containerd", runtime: workload.RuntimeContainerd, path: systemdPath("burstable", "cri-containerd-")},
	{name: "systemd/cri-o", scheme: "cri-o", runtime: workload.RuntimeCRIO, path: systemdPath("besteffort", "crio-")},
	{name: "systemd/docker", scheme: "docker", runtime: workload.RuntimeDocker, path: systemdPath("", "docker-")},
	{name: "cgroupfs/containerd", scheme: "containerd", path: cgroupfsPath("burstable")},
	{name: "cgroupfs/cri-o", scheme: "cri-o", path: cgroupfsPath("besteffort")},
	{name: "cgroupfs/docker", scheme: "docker", path: cgroupfsPath("")},
	{name: "systemd/containerd static pod", scheme: "containerd", runtime: workload.RuntimeContainerd, path: systemdPath("burstable", "cri-containerd-"), static: true},
	{name: "cgroupfs/cri-o static pod", scheme: "cri-o", path: cgroupfsPath("burstable"), static: true},
}

// placed is a process in a kubelet-layout cgroup and the pod the API
// says it belongs to.
type placed struct {
	layout
	cgroupUID string // the UID in the cgroup path
	cid       string
	cgroup    string
	pid       int
	pod       *corev1.Pod
}

// place builds l's cgroups below base and starts a process in the
// container's cgroup; it and the cgroups go when the test ends.
func place(t *testing.T, base string, l layout, i int) *placed {
	t.Helper()
	pl := &placed{layout: l, cid: randomHex(64)}
	apiUID := randomUID()
	pl.cgroupUID = apiUID
	ann := map[string]string(nil)
	if l.static {
		pl.cgroupUID = randomHex(32)
		ann = map[string]string{annotationConfigHash: pl.cgroupUID, annotationConfigMirror: pl.cgroupUID}
	}
	name := strings.NewReplacer("/", "-", " ", "-").Replace(l.name)
	if l.static {
		name += "-" + testNode // the kubelet names a mirror pod so
	}
	pl.pod = podSpec{
		uid: apiUID, ns: "ns-" + name, name: name, sa: "sa-" + name,
		labels: map[string]string{"layout": name}, annotations: ann,
		containers: [][2]string{{"sidecar", l.scheme + "://" + randomHex(64)}, {"main", l.scheme + "://" + pl.cid}},
	}.pod()

	// Each layout gets its own subtree: several share the top directory
	// names (kubepods.slice, kubepods).
	dir := filepath.Join(base, "l"+string(rune('a'+i)))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range l.path(pl.cgroupUID, pl.cid) {
		dir = filepath.Join(dir, e)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pl.cgroup = dir

	cmd := exec.Command("sleep", "300")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: testutil.CgroupFD(t, dir)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pl.pid = cmd.Process.Pid
	return pl
}

func (pl *placed) identify(t *testing.T, r *workload.Resolver) workload.Identity {
	t.Helper()
	id, err := workload.ID(pl.cgroup)
	if err != nil {
		t.Fatal(err)
	}
	return r.Identify(workload.Facts{CgroupID: id, PID: uint32(pl.pid), UID: 0, Comm: "sleep"})
}

// check compares what Identify said with the pod behind pl; known says
// whether the cache is expected to hold it.
func (pl *placed) check(t *testing.T, id workload.Identity, known bool) {
	t.Helper()
	if id.ContainerID != pl.cid || id.Runtime != pl.runtime || id.Comm != "sleep" || !strings.HasSuffix(id.Exe, "/sleep") {
		t.Errorf("%s: kernel and cgroup facts: %+v", pl.name, id)
	}
	want := workload.Pod{UID: pl.cgroupUID}
	if known {
		want = workload.Pod{
			UID: string(pl.pod.UID), Namespace: pl.pod.Namespace, Name: pl.pod.Name,
			ServiceAccount: pl.pod.Spec.ServiceAccountName, Labels: pl.pod.Labels,
			Container: "main", Image: "registry.example/main:1",
		}
	}
	got := id.Pod
	if got.UID != want.UID || got.Namespace != want.Namespace || got.Name != want.Name ||
		got.ServiceAccount != want.ServiceAccount || got.Container != want.Container || got.Image != want.Image ||
		len(got.Labels) != len(want.Labels) || got.Labels["layout"] != want.Labels["layout"] {
		t.Errorf("%s: Pod = %+v\nwant %+v", pl.name, got, want)
	}
}

// TestIdentifyKubeletLayouts places processes in real cgroups named the
// way kubelets and runtimes name them, serves their pods from a fake API
// through the informer, and identifies them as the agent does.
func TestIdentifyKubeletLayouts(t *testing.T) {
	testutil.RequireRoot(t)
	root, err := workload.Cgroup2Root()
	if err != nil {
		t.Skip(err)
	}
	cg, err := workload.NewCgroups(root)
	if err != nil {
		t.Fatal(err)
	}
	base := testutil.NewCgroup(t, "")
	var all []*placed
	for i, l := range layouts {
		all = append(all, place(t, base, l, i))
	}
	// The last one's pod appears only after the informer has synced.
	late := all[len(all)-1]
	var initial []runtime.Object
	for _, pl := range all[:len(all)-1] {
		initial = append(initial, pl.pod)
	}
	p, client, ev := startPods(t, initial...)
	log, _ := testLogger(t)
	r := workload.NewResolver(cg, "/proc", log)

	// Without the informer: the cgroup path alone.
	for _, pl := range all {
		pl.check(t, pl.identify(t, r), false)
	}

	r.SetPods(p)
	for _, pl := range all[:len(all)-1] {
		pl.check(t, pl.identify(t, r), true)
	}
	late.check(t, late.identify(t, r), false)

	ctx := context.Background()
	if _, err := client.CoreV1().Pods(late.pod.Namespace).Create(ctx, late.pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wait(t, ev.add, late.pod.Name)
	late.check(t, late.identify(t, r), true)

	gone := all[0]
	if err := client.CoreV1().Pods(gone.pod.Namespace).Delete(ctx, gone.pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wait(t, ev.del, gone.pod.Name)
	gone.check(t, gone.identify(t, r), false)
	// The others are untouched.
	for _, pl := range all[1:] {
		pl.check(t, pl.identify(t, r), true)
	}
}
