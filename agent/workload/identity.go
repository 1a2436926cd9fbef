package workload

import "github.com/corral-dev/corral/intercept"

// Identity and Pod are the intercept package's: the resolver fills what
// the connection carries.
type (
	Identity = intercept.Identity
	Pod      = intercept.Pod
)

// Container runtimes recognisable from cgroup names.
const (
	RuntimeContainerd = "containerd"
	RuntimeCRIO       = "cri-o"
	RuntimeDocker     = "docker"
)

// Kubernetes QoS classes as the kubelet spells them in cgroup names.
const (
	QoSGuaranteed = "guaranteed"
	QoSBurstable  = "burstable"
	QoSBestEffort = "besteffort"
)
