//go:build !linux

package workload

import "errors"

// errNoCgroup2 keeps the package building where the agent cannot run, so
// tooling and the portable parts (ParseCgroupPath, Identity) work anywhere.
var errNoCgroup2 = errors.New("workload: cgroup2 is only available on Linux")

// Cgroups resolves cgroup ids to paths in one cgroup2 mount.
type Cgroups struct {
	root string
}

// NewCgroups fails: there is no cgroup2 outside Linux.
func NewCgroups(root string) (*Cgroups, error) { return nil, errNoCgroup2 }

// Root returns the mount root paths are relative to.
func (c *Cgroups) Root() string { return c.root }

// Path fails: there is no cgroup2 outside Linux.
func (c *Cgroups) Path(id uint64) (string, error) { return "", errNoCgroup2 }

// ID fails: there is no cgroup2 outside Linux.
func ID(path string) (uint64, error) { return 0, errNoCgroup2 }

// Cgroup2Root fails: there is no cgroup2 outside Linux.
func Cgroup2Root() (string, error) { return "", errNoCgroup2 }

// SelfPath fails: there is no cgroup2 outside Linux.
func SelfPath() (string, error) { return "", errNoCgroup2 }

func rootOnlyDir(p string) bool { return false }
