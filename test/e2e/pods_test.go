//go:build linux

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/internal/testutil"
)

// podAPI is the part of a Kubernetes API server the agent's pod informer
// uses: LIST and WATCH of /api/v1/pods with a spec.nodeName field
// selector, in either of client-go's ways (a list then a watch, or one
// watch streaming the initial state and ending it with a bookmark). It
// checks the bearer token and serves the pods of the node selected only.
type podAPI struct {
	token string
	pods  []corev1.Pod

	mu        sync.Mutex
	selectors []string
}

func (a *podAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+a.token {
		http.Error(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Unauthorized","code":401}`, http.StatusUnauthorized)
		return
	}
	if r.URL.Path != "/api/v1/pods" {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	sel := q.Get("fieldSelector")
	a.mu.Lock()
	a.selectors = append(a.selectors, sel)
	a.mu.Unlock()
	node, ok := strings.CutPrefix(sel, "spec.nodeName=")
	if !ok {
		http.Error(w, "this server only answers for one node's pods", http.StatusBadRequest)
		return
	}
	var pods []corev1.Pod
	for _, p := range a.pods {
		if p.Spec.NodeName == node {
			pods = append(pods, p)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if q.Get("watch") != "true" && q.Get("watch") != "1" {
		json.NewEncoder(w).Encode(&corev1.PodList{
			TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"},
			ListMeta: metav1.ListMeta{ResourceVersion: "10"},
			Items:    pods,
		})
		return
	}
	enc := json.NewEncoder(w)
	send := func(typ string, p *corev1.Pod) {
		p.TypeMeta = metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"}
		raw, _ := json.Marshal(p)
		enc.Encode(&metav1.WatchEvent{Type: typ, Object: runtime.RawExtension{Raw: raw}})
	}
	if q.Get("sendInitialEvents") == "true" {
		for i := range pods {
			send("ADDED", &pods[i])
		}
		send("BOOKMARK", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "10",
			Annotations: map[string]string{metav1.InitialEventsAnnotationKey: "true"}}})
	}
	w.(http.Flusher).Flush()
	// Nothing changes afterwards: hold the watch open until the agent
	// or the test goes away.
	<-r.Context().Done()
}

func (a *podAPI) seen() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.selectors...)
}

// kubeletPod creates the cgroups a kubelet (systemd driver) and containerd
// give a burstable pod's container, below parent, and the API's view of it.
func kubeletPod(t *testing.T, parent, node, ns, name, sa, uid, cid string) (string, corev1.Pod) {
	t.Helper()
	dir := parent
	for _, e := range []string{
		"kubepods.slice",
		"kubepods-burstable.slice",
		"kubepods-burstable-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice",
		"cri-containerd-" + cid + ".scope",
	} {
		dir = filepath.Join(dir, e)
		if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
	}
	return dir, corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid), ResourceVersion: "5",
			Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{NodeName: node, ServiceAccountName: sa},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{
			{Name: "main", Image: "registry.example/" + name + ":1.0", ContainerID: "containerd://" + cid},
		}},
	}
}

// TestPodIdentity runs the agent with a kubeconfig naming a (minimal) API
// server and connects from processes placed in kubelet-layout cgroups: the
// pod's metadata comes from the API, reaches the audit log, and is what
// the policy decides on.
func TestPodIdentity(t *testing.T) {
	var l *net.TCPListener
	e := newEnv(t, func(h *testutil.Host) []string {
		l = h.Listen(t, ":0")
		return []string{addr(h.Addr, port(l))}
	})
	testutil.Echo(t, l)
	target := addr(e.host.Addr, port(l))

	const node = "node-e2e"
	const (
		etlUID = "0d7c6b1e-2a3f-4b5c-8d9e-0f1a2b3c4d5e"
		etlCID = "8b3e6f2d1c0a9e8f7d6c5b4a3928170615243f4e5d6c7b8a9f0e1d2c3b4a5968"
		webUID = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
		webCID = "1f2e3d4c5b6a79880716253443526170f1e2d3c4b5a69788796a5b4c3d2e1f00"
	)
	etlCg, etlPod := kubeletPod(t, e.cgroup, node, "etl", "migrator-7d9f", "migrator", etlUID, etlCID)
	webCg, webPod := kubeletPod(t, e.cgroup, node, "web", "frontend-5c8b", "frontend", webUID, webCID)
	// Another node's pod: only a server ignoring the selector would show
	// it to the agent.
	elsewhere := *webPod.DeepCopy()
	elsewhere.Namespace, elsewhere.Name, elsewhere.UID, elsewhere.Spec.NodeName = "other", "elsewhere", "5a5a5a5a-1b1b-4c4c-8d8d-9e9e9e9e9e9e", "node-other"

	api := &podAPI{token: "pod-reader-token", pods: []corev1.Pod{elsewhere, etlPod, webPod}}
	srv := httptest.NewTLSServer(api)
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	kubeconfig := filepath.Join(e.stateDir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %q, certificate-authority-data: %s}}]
users: [{name: corral, user: {token: %s}}]
contexts: [{name: test, context: {cluster: test, user: corral}}]
current-context: test
`, srv.URL, base64.StdEncoding.EncodeToString(ca), api.token), 0o600); err != nil {
		t.Fatal(err)
	}

	writeAtomically(t, e.config, fmt.Sprintf(`targets:
  - {name: echo, protocol: tcp, endpoints: [%q]}
rules:
  - name: etl-migrator
    who: {kubernetes: {namespace: [etl], service_account: [migrator]}}
    targets: [echo]
    allow: [connect]
kubernetes: {node_name: %s, kubeconfig: %s}
audit_log: "-"
state_dir: %s
admin_socket: %[4]s/admin.sock
cgroup_path: %s
bpf_pin_dir: %s
log_level: debug
`, target, node, kubeconfig, e.stateDir, e.cgroup, e.pinDir))
	a := e.start(t)
	a.WaitLine(t, 0, func(l string) bool { return strings.Contains(l, "pod metadata synced") })
	if seen := api.seen(); len(seen) == 0 || seen[0] != "spec.nodeName="+node {
		t.Errorf("API asked with field selectors %q", seen)
	}

	// The etl pod's service account is what the rule allows.
	from := a.Mark()
	r := testutil.RunClient(t, etlCg, testutil.Client{Network: "tcp", Addr: target, Payload: "hello"})
	if r.Err != "" || !strings.HasSuffix(r.Reply, "|hello") {
		t.Fatalf("etl pod's connection: reply %q, error %q", r.Reply, r.Err)
	}
	open := a.WaitEvent(t, from, func(ev intercept.Event) bool { return ev.Event == intercept.EventOpen })
	w := open.Workload
	if w == nil {
		t.Fatal("open event without workload")
	}
	if open.Rule != "etl-migrator" {
		t.Errorf("admitted by rule %q", open.Rule)
	}
	for _, c := range []struct{ what, got, want string }{
		{"pod.uid", w.Pod.UID, etlUID},
		{"pod.namespace", w.Pod.Namespace, "etl"},
		{"pod.name", w.Pod.Name, "migrator-7d9f"},
		{"pod.service_account", w.Pod.ServiceAccount, "migrator"},
		{"pod.labels.app", w.Pod.Labels["app"], "migrator-7d9f"},
		{"pod.container", w.Pod.Container, "main"},
		{"pod.image", w.Pod.Image, "registry.example/migrator-7d9f:1.0"},
		{"container_id", w.ContainerID, etlCID},
		{"container_runtime", w.Runtime, "containerd"},
		{"cgroup_path", w.CgroupPath, e.rel(etlCg)},
	} {
		if c.got != c.want {
			t.Errorf("audit workload %s = %q, want %q", c.what, c.got, c.want)
		}
	}

	// Another pod is named too, and no rule covers it.
	from = a.Mark()
	testutil.RunClient(t, webCg, testutil.Client{Network: "tcp", Addr: target, Payload: "hello"})
	deny := a.WaitEvent(t, from, func(ev intercept.Event) bool { return ev.Event == intercept.EventDeny })
	if w := deny.Workload; w == nil || w.Pod.UID != webUID || w.Pod.Namespace != "web" || w.Pod.Name != "frontend-5c8b" || w.Pod.ServiceAccount != "frontend" {
		t.Errorf("deny event's workload = %+v", deny.Workload)
	}
}
