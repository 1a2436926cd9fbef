package agent

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/corral-dev/corral/agent/workload"
)

// ownCgroupName is where the agent moves itself when it shares a cgroup.
const ownCgroupName = "corral-agent"

// ownCgroup returns the id of a cgroup that holds the agent and nothing
// else. The kernel exempts that cgroup from redirection, so sharing it with
// any other process would let that process bypass corral. An agent started
// in a shared cgroup (a login shell, the root cgroup) moves itself into a
// cgroup of its own; leave moves it back.
func ownCgroup(root string, log *slog.Logger) (id uint64, leave func(), err error) {
	self, err := workload.SelfPath()
	if err != nil {
		return 0, nil, err
	}
	dir := filepath.Join(root, self)
	shared, err := sharedCgroup(dir)
	if err != nil {
		return 0, nil, err
	}
	if self != "/" && !shared {
		id, err := workload.ID(dir)
		return id, func() {}, err
	}
	own := filepath.Join(root, ownCgroupName)
	if err := os.Mkdir(own, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return 0, nil, fmt.Errorf("create a cgroup of the agent's own: %w", err)
	}
	if err := joinCgroup(own); err != nil {
		return 0, nil, fmt.Errorf("move the agent into %s: %w", own, err)
	}
	log.Info("agent moved into a cgroup of its own: its upstream connections are exempt from redirection, nothing else is", "from", self, "to", "/"+ownCgroupName)
	id, err = workload.ID(own)
	return id, func() {
		if err := joinCgroup(dir); err != nil {
			log.Warn("cannot move the agent back to its cgroup", "cgroup", dir, "err", err)
			return
		}
		os.Remove(own) // fails while another agent is in it: fine
	}, err
}

func sharedCgroup(dir string) (bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return false, fmt.Errorf("read the agent's cgroup: %w", err)
	}
	me := strconv.Itoa(os.Getpid())
	for _, line := range bytes.Fields(b) {
		if string(line) != me {
			return true, nil
		}
	}
	return false, nil
}

func joinCgroup(dir string) error {
	return os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0)
}
