// Package agent wires corral's parts into the node agent: it loads the eBPF
// programs, keeps a listener in every network namespace, identifies each
// intercepted connection and hands it to its protocol handler, and writes
// the audit log. It holds no protocol or policy logic of its own.
package agent

import (
	"log/slog"

	"github.com/corral-dev/corral/agent/config"
	"github.com/corral-dev/corral/bpf"
)

// Options for Run.
type Options struct {
	Config *config.Config
	// ConfigPath, when set, is watched: changes (and SIGHUP) reload the
	// targets and the policy without dropping live sessions.
	ConfigPath string
	Log        *slog.Logger
	// KeepPinned leaves the eBPF links in the kernel when the agent stops:
	// protected connects are then refused until an agent runs again, instead
	// of going straight to their targets.
	KeepPinned bool
	// Ready is called once interception is live.
	Ready func()
	// ProcRoot is where /proc is mounted (the host's, in a container).
	ProcRoot string
	// Features probes the kernel; nil means the real probe. Replaceable so
	// the refusal on an incapable kernel can be exercised on a capable one.
	Features func() []bpf.Feature
}
