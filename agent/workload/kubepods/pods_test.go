package kubepods

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

const testNode = "node-a"

// podSpec describes a test pod; containers map a container's name to its
// status's runtime id ("containerd://…").
type podSpec struct {
	uid, ns, name, sa, node string
	labels, annotations     map[string]string
	containers              [][2]string // name, id
	initContainers          [][2]string
}

func (s podSpec) pod() *corev1.Pod {
	node := s.node
	if node == "" {
		node = testNode
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			UID: types.UID(s.uid), Namespace: s.ns, Name: s.name,
			Labels: s.labels, Annotations: s.annotations,
			// Fields the cache has no use for, to see them dropped.
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet"}},
		},
		Spec: corev1.PodSpec{NodeName: node, ServiceAccountName: s.sa,
			Containers: []corev1.Container{{Name: "spec-only", Image: "spec/image", Env: []corev1.EnvVar{{Name: "SECRET", Value: "x"}}}}},
	}
	for _, c := range s.containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: c[0], Image: "registry.example/" + c[0] + ":1", ContainerID: c[1]})
	}
	for _, c := range s.initContainers {
		p.Status.InitContainerStatuses = append(p.Status.InitContainerStatuses, corev1.ContainerStatus{Name: c[0], Image: "registry.example/" + c[0] + ":1", ContainerID: c[1]})
	}
	return p
}

func testLogger(t *testing.T) (*slog.Logger, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

// events counts the informer's notifications, which it delivers after its
// cache (and so every lookup) reflects the change.
type events struct {
	add, update, del chan *corev1.Pod
}

// startPods runs a Pods over a fake API holding objs until the test ends,
// waits for its first sync and returns the client to change pods with.
func startPods(t *testing.T, objs ...runtime.Object) (*Pods, *fake.Clientset, events) {
	t.Helper()
	client := fake.NewClientset(objs...)
	log, _ := testLogger(t)
	p := New(client, testNode, log)
	ev := events{make(chan *corev1.Pod, 64), make(chan *corev1.Pod, 64), make(chan *corev1.Pod, 64)}
	if _, err := p.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { ev.add <- o.(*corev1.Pod) },
		UpdateFunc: func(_, o any) { ev.update <- o.(*corev1.Pod) },
		DeleteFunc: func(o any) {
			if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			ev.del <- o.(*corev1.Pod)
		},
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.Start(ctx)
	t.Cleanup(func() { cancel(); p.Wait() })
	if !p.WaitForCacheSync(30 * time.Second) {
		t.Fatal("pod cache did not sync")
	}
	for range objs {
		<-ev.add
	}
	return p, client, ev
}

// wait takes the next event from ch, which must be about the pod named.
func wait(t *testing.T, ch chan *corev1.Pod, name string) {
	t.Helper()
	select {
	case p := <-ch:
		if p.Name != name {
			t.Fatalf("event for pod %s, want %s", p.Name, name)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no event for pod %s", name)
	}
}

const (
	uidA       = "0d7c6b1e-2a3f-4b5c-8d9e-0f1a2b3c4d5e"
	uidB       = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
	hashStatic = "6f1c4e0b2d3a59e8c7b6a5f4e3d2c1b0"
	mirrorUID  = "5a5a5a5a-1b1b-4c4c-8d8d-9e9e9e9e9e9e"
	uidB2      = "3c3c3c3c-1b1b-4c4c-8d8d-9e9e9e9e9e9e"
	cidA       = "8b3e6f2d1c0a9e8f7d6c5b4a3928170615243f4e5d6c7b8a9f0e1d2c3b4a5968"
	cidInit    = "1f2e3d4c5b6a79880716253443526170f1e2d3c4b5a69788796a5b4c3d2e1f00"
)

func TestPodLookup(t *testing.T) {
	p, _, _ := startPods(t,
		podSpec{uid: uidA, ns: "etl", name: "migrator-7d9f", sa: "migrator", labels: map[string]string{"app": "migrator"},
			containers: [][2]string{{"main", "containerd://" + cidA}}, initContainers: [][2]string{{"setup", "containerd://" + cidInit}}}.pod(),
		podSpec{uid: uidB, ns: "web", name: "elsewhere", sa: "web", node: "node-b"}.pod(),
		podSpec{uid: mirrorUID, ns: "kube-system", name: "etcd-node-a", sa: "", annotations: map[string]string{
			annotationConfigHash: hashStatic, annotationConfigMirror: hashStatic, "unrelated": "dropped"}}.pod(),
	)

	got, ok := p.Pod(uidA)
	if !ok || got.UID != uidA || got.Namespace != "etl" || got.Name != "migrator-7d9f" || got.ServiceAccount != "migrator" || got.Labels["app"] != "migrator" {
		t.Errorf("Pod(%s) = %+v, %v", uidA, got, ok)
	}
	for _, c := range []struct {
		id, name string
	}{{cidA, "main"}, {cidA[:12], "main"}, {cidInit, "setup"}} {
		if ctr, ok := p.Container(uidA, c.id); !ok || ctr.Name != c.name || ctr.Image != "registry.example/"+c.name+":1" {
			t.Errorf("Container(%s) = %+v, %v; want %s", c.id, ctr, ok, c.name)
		}
	}
	if ctr, ok := p.Container(uidA, cidInit[:20]+"0000"); ok {
		t.Errorf("unknown container id found: %+v", ctr)
	}
	if ctr, ok := p.Container(mirrorUID, cidA); ok {
		t.Errorf("another pod's container found: %+v", ctr)
	}

	// The fake API ignores field selectors; the cache must not be fooled
	// by a server that does the same.
	if got, ok := p.Pod(uidB); ok {
		t.Errorf("pod of another node found: %+v", got)
	}

	// A static pod's cgroup carries the kubelet's hash, its mirror pod
	// another UID: both find it.
	for _, uid := range []string{hashStatic, mirrorUID} {
		if got, ok := p.Pod(uid); !ok || got.UID != mirrorUID || got.Name != "etcd-node-a" || got.Namespace != "kube-system" {
			t.Errorf("Pod(%s) = %+v, %v; want the mirror pod", uid, got, ok)
		}
	}

	// Only what identities need is cached.
	obj, ok, err := p.informer.GetStore().GetByKey("kube-system/etcd-node-a")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	cached := obj.(*corev1.Pod)
	if cached.ManagedFields != nil || cached.Spec.Containers != nil || len(cached.Annotations) != 2 {
		t.Errorf("cache keeps more than identities need: %+v", cached)
	}
}

func TestStaticHashClaims(t *testing.T) {
	p, client, ev := startPods(t,
		podSpec{uid: mirrorUID, ns: "kube-system", name: "etcd-node-a", annotations: map[string]string{annotationConfigMirror: hashStatic}}.pod(),
		// A UUID-form "hash" could shadow an API pod: never an alias.
		podSpec{uid: uidB, ns: "evil", name: "shadow", annotations: map[string]string{annotationConfigHash: uidA}}.pod(),
	)
	if got, ok := p.Pod(hashStatic); !ok || got.UID != mirrorUID {
		t.Errorf("Pod(hash) via config.mirror = %+v, %v", got, ok)
	}
	if got, ok := p.Pod(uidA); ok {
		t.Errorf("UUID-form annotation became an alias: %+v", got)
	}

	// A pod any user binds to the node with the hash alone, or not named
	// as the kubelet names a mirror pod, claims nothing.
	for _, c := range []podSpec{
		{uid: uidA, ns: "evil", name: "claimant-node-a", annotations: map[string]string{annotationConfigHash: hashStatic}},
		{uid: "7c7c7c7c-1b1b-4c4c-8d8d-9e9e9e9e9e9e", ns: "evil", name: "claimant", annotations: map[string]string{annotationConfigMirror: hashStatic}},
	} {
		if _, err := client.CoreV1().Pods("evil").Create(context.Background(), c.pod(), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		wait(t, ev.add, c.name)
		if got, ok := p.Pod(hashStatic); !ok || got.UID != mirrorUID {
			t.Errorf("after %s: Pod(hash) = %+v, %v; want the mirror pod", c.name, got, ok)
		}
	}
	// A second claim shaped as a mirror pod makes the hash name nothing.
	if _, err := client.CoreV1().Pods("evil").Create(context.Background(),
		podSpec{uid: uidB2, ns: "evil", name: "etcd2-node-a", annotations: map[string]string{annotationConfigMirror: hashStatic}}.pod(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wait(t, ev.add, "etcd2-node-a")
	if got, ok := p.Pod(hashStatic); ok {
		t.Errorf("ambiguous static pod hash resolved to %+v", got)
	}
	// Its own UID still names it.
	if got, ok := p.Pod(uidA); !ok || got.Name != "claimant-node-a" {
		t.Errorf("Pod(own uid) = %+v, %v", got, ok)
	}
}

func TestPodsComeAndGo(t *testing.T) {
	p, client, ev := startPods(t)
	ctx := context.Background()
	if _, ok := p.Pod(uidA); ok {
		t.Fatal("pod found before it exists")
	}
	pods := client.CoreV1().Pods("etl")
	spec := podSpec{uid: uidA, ns: "etl", name: "late", sa: "late", labels: map[string]string{"v": "1"}}
	if _, err := pods.Create(ctx, spec.pod(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wait(t, ev.add, "late")
	if got, ok := p.Pod(uidA); !ok || got.Name != "late" || got.ServiceAccount != "late" {
		t.Errorf("added pod: %+v, %v", got, ok)
	}
	if _, ok := p.Container(uidA, cidA); ok {
		t.Error("container found before the pod's status lists it")
	}

	spec.labels = map[string]string{"v": "2"}
	spec.containers = [][2]string{{"main", "cri-o://" + cidA}}
	if _, err := pods.Update(ctx, spec.pod(), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wait(t, ev.update, "late")
	if got, _ := p.Pod(uidA); got.Labels["v"] != "2" {
		t.Errorf("labels not updated: %+v", got)
	}
	if c, ok := p.Container(uidA, cidA); !ok || c.Name != "main" {
		t.Errorf("container after status update: %+v, %v", c, ok)
	}

	if err := pods.Delete(ctx, "late", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wait(t, ev.del, "late")
	if got, ok := p.Pod(uidA); ok {
		t.Errorf("deleted pod still found: %+v", got)
	}
	if p.Len() != 0 {
		t.Errorf("Len = %d after delete", p.Len())
	}
}

// TestAPIDown: an unreachable API server leaves the cache unsynced and
// empty, without failing anything.
func TestAPIDown(t *testing.T) {
	client, err := kubernetes.NewForConfig(&rest.Config{Host: "http://127.0.0.1:1", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	log, buf := testLogger(t)
	p := New(client, testNode, log)
	ctx, cancel := context.WithCancel(context.Background())
	p.Start(ctx)
	if p.WaitForCacheSync(300 * time.Millisecond) {
		t.Fatal("synced without an API server")
	}
	if _, ok := p.Pod(uidA); ok || p.HasSynced() {
		t.Error("lookup answered without an API server")
	}
	cancel()
	p.Wait()
	// client-go's complaints reach the agent's log, not klog's stderr.
	if !strings.Contains(buf.String(), "component=kubernetes") {
		t.Errorf("client-go's messages not in the logger: %s", buf.String())
	}
}

func TestWaitWithoutStart(t *testing.T) {
	p := New(fake.NewClientset(), testNode, nil)
	p.Wait() // must not block
}

func TestNodeName(t *testing.T) {
	t.Setenv("NODE_NAME", "from-env")
	if n, _ := NodeName("configured"); n != "configured" {
		t.Errorf("NodeName(configured) = %q", n)
	}
	if n, _ := NodeName(""); n != "from-env" {
		t.Errorf("NodeName from env = %q", n)
	}
	t.Setenv("NODE_NAME", "")
	if n, err := NodeName(""); err != nil || n == "" || n != strings.ToLower(n) {
		t.Errorf("NodeName from host name = %q, %v", n, err)
	}
}

func TestClientNoCluster(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := Client(""); err != ErrNoCluster {
		t.Errorf("Client outside a cluster: %v, want ErrNoCluster", err)
	}
	if _, err := Client(t.TempDir() + "/missing"); err == nil || err == ErrNoCluster {
		t.Errorf("Client with a missing kubeconfig: %v", err)
	}
}
