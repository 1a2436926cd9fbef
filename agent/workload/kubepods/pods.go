// Package kubepods supplies pod metadata to agent/workload from the
// Kubernetes API: an informer watching the pods bound to this node, looked
// up by the pod UID and container id a cgroup path carries.
//
// The cgroup path is the kernel's word and decides which pod a connection
// came from; the API only names it. A pod the cache does not hold (not yet
// synced, API server down, pod already deleted) leaves the identity with its
// UID and nothing else, so rules that need pod facts do not match it.
//
// It is a package of its own so that client-go stays out of everything
// that only needs agent/workload.
package kubepods

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/corral-dev/corral/agent/workload"
)

// Annotations the kubelet puts on the mirror pod it creates in the API for
// a static pod (from a manifest file). The pod's cgroup is named after the
// kubelet's own UID for it, the config hash; the mirror pod has an API UID
// of its own.
const (
	annotationConfigHash   = "kubernetes.io/config.hash"
	annotationConfigMirror = "kubernetes.io/config.mirror"
)

// uidIndex finds pods by the UIDs their cgroups may carry: their own, and
// for mirror pods the static pod's hash.
const uidIndex = "uid"

// Pods is a workload.PodLookup and workload.ContainerLookup backed by an
// informer over the pods bound to one node. It is safe for concurrent use.
type Pods struct {
	node     string
	log      *slog.Logger
	informer cache.SharedIndexInformer
	done     chan struct{}
	start    sync.Once
	started  atomic.Bool
}

var (
	_ workload.PodLookup       = (*Pods)(nil)
	_ workload.ContainerLookup = (*Pods)(nil)
)

// New watches the pods bound to node through client once started.
func New(client kubernetes.Interface, node string, log *slog.Logger) *Pods {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pods{node: node, log: log, done: make(chan struct{})}
	selector := fields.OneTermEqualSelector("spec.nodeName", node).String()
	// No resync: the watch delivers every change, and a resync would only
	// replay the cache to handlers this package does not have.
	p.informer = coreinformers.NewFilteredPodInformer(client, metav1.NamespaceAll, 0,
		cache.Indexers{uidIndex: p.indexUIDs},
		func(o *metav1.ListOptions) { o.FieldSelector = selector })
	// A node can run hundreds of pods with large specs; only what an
	// identity needs is kept. Cannot fail before the informer runs.
	_ = p.informer.SetTransform(slim)
	return p
}

// Start runs the informer until ctx ends, and logs when the first list of
// the node's pods has arrived, however late. client-go's own messages
// (watch failures, retries) go to the Pods' logger.
func (p *Pods) Start(ctx context.Context) {
	p.start.Do(func() {
		p.started.Store(true)
		ctx = klog.NewContext(ctx, logr.FromSlogHandler(p.log.With("component", "kubernetes").Handler()))
		var wg sync.WaitGroup
		wg.Go(func() { p.informer.RunWithContext(ctx) })
		wg.Go(func() {
			if cache.WaitForCacheSync(ctx.Done(), p.informer.HasSynced) {
				p.log.Info("pod metadata synced", "node", p.node, "pods", p.Len())
			}
		})
		go func() {
			wg.Wait()
			close(p.done)
		}()
	})
}

// Wait returns once the informer has stopped, at once if it never ran.
func (p *Pods) Wait() {
	if p.started.Load() {
		<-p.done
	}
}

// HasSynced reports whether the first full list of the node's pods has
// been received.
func (p *Pods) HasSynced() bool { return p.informer.HasSynced() }

// WaitForCacheSync waits up to timeout for the first list of the node's
// pods, and reports whether it arrived. The informer keeps trying after a
// timeout; lookups meanwhile find only what has arrived.
func (p *Pods) WaitForCacheSync(timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return cache.WaitForCacheSync(ctx.Done(), p.informer.HasSynced)
}

// Len is the number of pods in the cache.
func (p *Pods) Len() int { return len(p.informer.GetStore().ListKeys()) }

// Pod returns the metadata of the pod whose cgroup carries uid. The
// returned UID is the pod's API UID, which for a static pod differs from
// the one asked for.
func (p *Pods) Pod(uid string) (workload.Pod, bool) {
	pod := p.find(uid)
	if pod == nil {
		return workload.Pod{}, false
	}
	return workload.Pod{
		UID:            string(pod.UID),
		Namespace:      pod.Namespace,
		Name:           pod.Name,
		ServiceAccount: pod.Spec.ServiceAccountName,
		Labels:         pod.Labels,
	}, true
}

// Container finds the container with containerID in the pod whose cgroup
// carries podUID. containerID may be a prefix of the full id (some
// layouts shorten it), but no shorter than a cgroup path parse accepts.
func (p *Pods) Container(podUID, containerID string) (workload.Container, bool) {
	pod := p.find(podUID)
	if pod == nil || containerID == "" {
		return workload.Container{}, false
	}
	for _, list := range [][]corev1.ContainerStatus{
		pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses, pod.Status.EphemeralContainerStatuses,
	} {
		for _, s := range list {
			if id := runtimeID(s.ContainerID); id != "" && strings.HasPrefix(id, containerID) {
				return workload.Container{Name: s.Name, Image: s.Image}, true
			}
		}
	}
	return workload.Container{}, false
}

// find returns the cached pod for a cgroup's pod UID: the pod with that
// UID, else the one mirror pod claiming it as its static pod's hash. Two
// claims are ambiguous and name nothing: a pod's annotations are written
// by whoever creates it, and a wrong name is worse than none.
func (p *Pods) find(uid string) *corev1.Pod {
	objs, err := p.informer.GetIndexer().ByIndex(uidIndex, uid)
	if err != nil {
		return nil
	}
	var alias *corev1.Pod
	claims := 0
	for _, o := range objs {
		pod, ok := o.(*corev1.Pod)
		if !ok {
			continue
		}
		if string(pod.UID) == uid {
			return pod
		}
		alias = pod
		claims++
	}
	if claims > 1 {
		p.log.Warn("several mirror pods claim the same static pod; its connections carry no pod metadata", "pod_uid", uid, "claims", claims)
		return nil
	}
	return alias
}

// indexUIDs keys a pod by its UID and, for a mirror pod, its static pod's
// hash. Pods of other nodes are left out should the server not have
// honoured the field selector: their UIDs name no cgroup here.
func (p *Pods) indexUIDs(obj any) ([]string, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.Spec.NodeName != p.node {
		return nil, nil
	}
	keys := []string{string(pod.UID)}
	if h := staticHash(pod, p.node); h != "" && h != string(pod.UID) {
		keys = append(keys, h)
	}
	return keys, nil
}

// staticHash is the UID a mirror pod's static pod has on the node. Only
// the kubelet's hash form (32 hex digits) is accepted, so no annotation
// can claim the UUID-form UID of a pod the API server created; and only
// from a pod shaped as the kubelet makes a mirror pod (the mirror
// annotation, agreeing with the hash when both are there, and the name
// the kubelet gives: the static pod's, a dash, the node's), so that a
// pod any user binds to the node with the hash alone claims nothing.
func staticHash(pod *corev1.Pod, node string) string {
	h := pod.Annotations[annotationConfigMirror]
	if c := pod.Annotations[annotationConfigHash]; c != "" && c != h || !strings.HasSuffix(pod.Name, "-"+node) {
		return ""
	}
	if len(h) != 32 {
		return ""
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return ""
		}
	}
	return h
}

// runtimeID strips the runtime scheme from a status's container id
// ("containerd://<id>", "cri-o://<id>", "docker://<id>").
func runtimeID(s string) string {
	_, id, ok := strings.Cut(s, "://")
	if !ok {
		return ""
	}
	return id
}

// slim keeps what Pod, Container and the index read, and what the
// informer itself needs (name, namespace, resource version).
func slim(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		// A tombstone or something unexpected: the informer handles it.
		return obj, nil
	}
	out := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:            pod.Name,
			Namespace:       pod.Namespace,
			UID:             pod.UID,
			ResourceVersion: pod.ResourceVersion,
			Labels:          pod.Labels,
		},
		Spec: corev1.PodSpec{NodeName: pod.Spec.NodeName, ServiceAccountName: pod.Spec.ServiceAccountName},
		Status: corev1.PodStatus{
			ContainerStatuses:          slimStatuses(pod.Status.ContainerStatuses),
			InitContainerStatuses:      slimStatuses(pod.Status.InitContainerStatuses),
			EphemeralContainerStatuses: slimStatuses(pod.Status.EphemeralContainerStatuses),
		},
	}
	for _, k := range []string{annotationConfigHash, annotationConfigMirror} {
		if v, ok := pod.Annotations[k]; ok {
			if out.Annotations == nil {
				out.Annotations = map[string]string{}
			}
			out.Annotations[k] = v
		}
	}
	return out, nil
}

func slimStatuses(in []corev1.ContainerStatus) []corev1.ContainerStatus {
	if len(in) == 0 {
		return nil
	}
	out := make([]corev1.ContainerStatus, len(in))
	for i, s := range in {
		out[i] = corev1.ContainerStatus{Name: s.Name, Image: s.Image, ContainerID: s.ContainerID}
	}
	return out
}
