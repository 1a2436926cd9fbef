package workload

// Container is what the pod's status says about one of its containers.
type Container struct {
	Name  string
	Image string
}

// ContainerLookup is implemented by a PodLookup that also knows a pod's
// containers by the id the runtime gave them, which is what a container's
// cgroup is named after. It is optional so that a lookup knowing only pods
// stays a PodLookup.
type ContainerLookup interface {
	// Container finds containerID among the containers of the pod with
	// podUID (the UID from the cgroup path, as passed to Pod).
	Container(podUID, containerID string) (Container, bool)
}
