package intercept

import "github.com/corral-dev/corral/policy"

// Identity is everything known about the workload behind one connection.
// It is defined here, with the connection that carries it, so protocol
// handlers need nothing of the agent; agent/workload resolves it.
// Its JSON form is a contract read by policy input, recordings and audit
// tooling: field names must not change and the unconditional fields are
// always present, empty or not, so consumers can tell "unknown" from "absent
// from an older agent".
type Identity struct {
	CgroupID uint64 `json:"cgroup_id"`
	// CgroupPath is relative to the cgroup2 root and starts with "/".
	CgroupPath string `json:"cgroup_path"`
	// PID is the tgid in the initial pid namespace.
	PID     uint32   `json:"pid"`
	Exe     string   `json:"exe"`
	Cmdline []string `json:"cmdline,omitempty"`
	Comm    string   `json:"comm,omitempty"`
	UID     uint32   `json:"uid"`
	User    string   `json:"user,omitempty"`
	// Unit is the systemd unit (foo.service, foo.scope) of a workload that is
	// neither in a pod nor in a container, or "".
	Unit        string `json:"unit"`
	Pod         Pod    `json:"pod"`
	ContainerID string `json:"container_id"`
	// Runtime is one of agent/workload's Runtime constants (containerd,
	// cri-o, docker), or "" when the cgroup layout does not say.
	Runtime string `json:"container_runtime,omitempty"`
	// OIDC is the identity in a token the workload presented at login,
	// once verified; nil when it presented none. It is not a kernel fact:
	// a protocol handler adds it after the connection is identified.
	OIDC *policy.OIDC `json:"oidc,omitempty"`
}

// Pod identifies a Kubernetes pod. Only UID comes from the node itself; the
// rest is filled by the agent's pod lookup.
type Pod struct {
	UID            string            `json:"uid"`
	Namespace      string            `json:"namespace"`
	Name           string            `json:"name"`
	ServiceAccount string            `json:"service_account"`
	Labels         map[string]string `json:"labels,omitempty"`
	// Container and Image are the name and image the pod's status gives
	// the container whose id the cgroup path names; empty while the
	// status does not list that id (container starting, pod not cached).
	Container string `json:"container,omitempty"`
	Image     string `json:"image,omitempty"`
}
