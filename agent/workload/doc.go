// Package workload tells the agent which workload opened a connection.
//
// The eBPF programs capture kernel facts at connect time (cgroup id, tgid,
// uid, comm); those are authoritative because they cannot be forged by the
// workload and stay true after the process has gone. Everything else is
// derived from them and is best effort: the cgroup id is turned into a path
// in the cgroup2 hierarchy, the path into a systemd unit or a Kubernetes pod
// UID and container id, and /proc adds the executable, command line and
// user name while the process still exists. Pod metadata (namespace, name,
// service account, labels) comes from an optional PodLookup supplied by the
// agent.
//
// Path names are only believed where nobody but root could have chosen them:
// inside a subtree delegated to an unprivileged user (systemd Delegate=,
// rootless containers) a process can create directories that look like a
// kubelet's or a runtime's, so placement is parsed only from the part of the
// path whose parent directories are all root-owned.
//
// The agent must run in the host's pid and cgroup namespaces for pids and
// cgroup paths to mean what the kernel reported.
package workload
