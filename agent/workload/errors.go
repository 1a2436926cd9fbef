package workload

import "errors"

// ErrNotFound reports a cgroup id that names no directory under the root:
// the cgroup has been removed, or belongs to another cgroup2 mount.
var ErrNotFound = errors.New("cgroup not found")
