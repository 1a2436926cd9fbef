package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/corral-dev/corral/agent/config"
	"github.com/corral-dev/corral/policy"
)

// reloader applies a changed configuration without dropping live sessions:
// when the file or one of its policy files changes, or on SIGHUP, it loads
// and validates the whole configuration and compiles its policy; only if
// both succeed does the new version replace the old. A rejected file is
// logged and the previous configuration stays in force.
type reloader struct {
	path    string
	engine  *policy.Engine
	apply   func(*config.Config) // live settings beyond the policy (targets)
	log     *slog.Logger
	current *config.Config
	// watching and reloaded, when set, are told that the watch is in place
	// and the outcome of every attempt.
	watching func()
	reloaded func(version uint64, err error)
	// extend, when set, adds what the file does not hold (the cluster's
	// ProtectedTargets and AccessRules) to every configuration loaded;
	// kick says it changed.
	extend func(ctx context.Context, c *config.Config) (*config.Config, error)
	kick   <-chan struct{}
}

// debounce lets an editor finish writing (truncate, write, rename) before
// the file is read.
const debounce = 100 * time.Millisecond

func (r *reloader) run(ctx context.Context, hup <-chan os.Signal) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch configuration: %w", err)
	}
	defer w.Close()
	r.watch(w)
	if r.watching != nil {
		r.watching()
	}

	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			r.reload(ctx, w)
		case <-r.kick:
			timer = time.After(debounce)
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if r.relevant(ev.Name) {
				timer = time.After(debounce)
			}
		case <-timer:
			timer = nil
			r.reload(ctx, w)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			r.log.Warn("watching configuration", "err", err)
		}
	}
}

// files are the paths whose change triggers a reload.
func (r *reloader) files() []string {
	out := []string{filepath.Clean(r.path)}
	for f := range r.current.PolicyModules {
		out = append(out, filepath.Clean(f))
	}
	return out
}

func (r *reloader) relevant(name string) bool {
	name = filepath.Clean(name)
	for _, f := range r.files() {
		// A Kubernetes ConfigMap or Secret volume swaps all its files at
		// once by renaming its ..data link; the files' own names see no
		// event.
		if f == name || filepath.Join(filepath.Dir(f), "..data") == name {
			return true
		}
	}
	return false
}

// watch follows the directories holding the files: editors and
// configuration management replace files by renaming, which a watch on the
// file itself would lose.
func (r *reloader) watch(w *fsnotify.Watcher) {
	for _, f := range r.files() {
		if err := w.Add(filepath.Dir(f)); err != nil {
			r.log.Warn("cannot watch for configuration changes; SIGHUP still reloads", "dir", filepath.Dir(f), "err", err)
		}
	}
}

func (r *reloader) reload(ctx context.Context, w *fsnotify.Watcher) {
	v, err := r.try(ctx)
	if err != nil {
		r.log.Error("configuration rejected; the previous one stays in force", "path", r.path, "err", err)
	} else {
		r.log.Info("configuration reloaded", "path", r.path, "policy_version", v)
		r.watch(w)
	}
	if r.reloaded != nil {
		r.reloaded(v, err)
	}
}

func (r *reloader) try(ctx context.Context) (uint64, error) {
	cfg, err := config.Load(r.path)
	if err != nil {
		return r.engine.Version(), err
	}
	if r.extend != nil {
		if cfg, err = r.extend(ctx, cfg); err != nil {
			return r.engine.Version(), err
		}
	}
	v, err := r.engine.Load(ctx, cfg.Policy())
	if err != nil {
		return v, err
	}
	for _, f := range restartOnly(r.current, cfg) {
		r.log.Warn("setting changed; it takes effect when the agent restarts", "setting", f)
	}
	r.apply(cfg)
	r.current = cfg
	return v, nil
}

// restartOnly names the settings that differ between a and b but are only
// read at start.
func restartOnly(a, b *config.Config) []string {
	var out []string
	for name, pair := range map[string][2]any{
		"audit_log":             {a.AuditLog, b.AuditLog},
		"state_dir":             {a.StateDir, b.StateDir},
		"cgroup_path":           {a.CgroupPath, b.CgroupPath},
		"bpf_pin_dir":           {a.BPFPinDir, b.BPFPinDir},
		"socket_mark":           {*a.SocketMark, *b.SocketMark},
		"netns_rescan_interval": {a.NetnsRescan, b.NetnsRescan},
		"dns_refresh_interval":  {a.DNSRefresh, b.DNSRefresh},
		"log_level":             {a.LogLevel, b.LogLevel},
		"admin_socket":          {a.AdminSocket, b.AdminSocket},
		"metrics_address":       {a.MetricsAddress, b.MetricsAddress},
		"ca":                    {a.CA, b.CA},
		"recording":             {a.Recording, b.Recording},
		"kubernetes":            {a.Kubernetes, b.Kubernetes},
	} {
		if !reflect.DeepEqual(pair[0], pair[1]) {
			out = append(out, name)
		}
	}
	return out
}
