package agent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/corral-dev/corral/agent/workload"
	"github.com/corral-dev/corral/bpf"
)

// Doctor checks, and prints, everything corral needs from this host: the
// privileges, the cgroup2 hierarchy, bpffs, and each kernel feature. It
// returns an error naming what is missing.
func Doctor(w io.Writer, cgroupPath, pinDir string, probe func() []bpf.Feature) error {
	var missing []error
	check := func(name string, err error) {
		if err == nil {
			fmt.Fprintf(w, "ok       %s\n", name)
			return
		}
		fmt.Fprintf(w, "MISSING  %s: %v\n", name, err)
		missing = append(missing, fmt.Errorf("%s: %w", name, err))
	}

	var rootErr error
	if os.Geteuid() != 0 {
		rootErr = errors.New("corral needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)")
	}
	check("running as root", rootErr)

	root, err := workload.Cgroup2Root()
	if err == nil {
		check("cgroup2 hierarchy at "+root, nil)
	} else {
		check("cgroup2 hierarchy", err)
	}
	if cgroupPath != "" {
		_, err := workload.ID(cgroupPath)
		check("cgroup to intercept "+cgroupPath, err)
	}
	if pinDir != "" {
		parent := filepath.Dir(pinDir)
		var err error
		if !bpf.IsBPFFS(parent) {
			if parent == "/sys/fs/bpf" {
				fmt.Fprintf(w, "note     bpffs is not mounted at %s; the agent mounts it\n", parent)
			} else {
				err = fmt.Errorf("%s is not on a bpf filesystem", parent)
			}
		}
		check("bpffs for pinned links ("+pinDir+")", err)
	}
	if probe == nil {
		probe = bpf.Features
	}
	for _, f := range probe() {
		check(f.Name, f.Err)
	}
	if len(missing) > 0 {
		return fmt.Errorf("%d requirement(s) missing:\n%w", len(missing), errors.Join(missing...))
	}
	fmt.Fprintln(w, "corral can run on this host")
	return nil
}
