package kubepods

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ErrNoCluster reports that there is no API server to ask: the agent does
// not run in a pod (KUBERNETES_SERVICE_HOST is unset) and was given no
// kubeconfig. Pod identities then carry the UID from the cgroup path only.
var ErrNoCluster = errors.New("not running in a Kubernetes cluster and no kubeconfig given")

// Client connects to the API server kubeconfig names or, without one, to
// the cluster the agent runs in. It only builds the client: an API server
// that is down shows up later, as an informer that does not sync.
func Client(kubeconfig string) (kubernetes.Interface, error) {
	var (
		cfg *rest.Config
		err error
	)
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, err
		}
	} else {
		if os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
			return nil, ErrNoCluster
		}
		if cfg, err = rest.InClusterConfig(); err != nil {
			return nil, fmt.Errorf("in-cluster configuration: %w", err)
		}
	}
	cfg.UserAgent = "corral-agent"
	return kubernetes.NewForConfig(cfg)
}

// NodeName is the node whose pods the agent watches: the configured name,
// else $NODE_NAME (a DaemonSet sets it from spec.nodeName through the
// downward API), else the host name as the kubelet derives its default
// node name from it. The host name is right only in the host's UTS
// namespace, which a DaemonSet pod without hostNetwork does not share.
func NodeName(configured string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	if n := os.Getenv("NODE_NAME"); n != "" {
		return n, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("node name: %w", err)
	}
	return strings.ToLower(h), nil
}
