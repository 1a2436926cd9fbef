package agent

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/corral-dev/corral/agent/config"
	"github.com/corral-dev/corral/policy"
)

const reloadBase = `targets:
  - name: db
    protocol: tcp
    endpoints: ["10.0.0.5:5432"]
rules:
  - name: batch
    who: {unit: "%s"}
    targets: [db]
    allow: [connect]
`

type outcome struct {
	version uint64
	err     error
}

func startReloader(t *testing.T, path string) (*policy.Engine, chan outcome, chan os.Signal, *atomic.Pointer[config.Config]) {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	engine := policy.NewEngine(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := engine.Load(context.Background(), cfg.Policy()); err != nil {
		t.Fatal(err)
	}
	outcomes := make(chan outcome, 16)
	hup := make(chan os.Signal, 1)
	var applied atomic.Pointer[config.Config]
	r := &reloader{
		path:     path,
		engine:   engine,
		log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		current:  cfg,
		apply:    func(c *config.Config) { applied.Store(c) },
		reloaded: func(v uint64, err error) { outcomes <- outcome{v, err} },
	}
	watching := make(chan struct{})
	r.watching = func() { close(watching) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.run(ctx, hup); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	<-watching
	return engine, outcomes, hup, &applied
}

func write(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func next(t *testing.T, ch chan outcome) outcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(10 * time.Second):
		t.Fatal("no reload happened")
	}
	return outcome{}
}

func connectAs(unit string) policy.Input {
	return policy.Input{
		Workload: policy.Workload{Unit: unit},
		Target:   policy.Target{Name: "db", Protocol: "tcp"},
		Action:   policy.Action{Kind: policy.KindConnect, Operations: []string{"connect"}},
	}
}

// A decision loop runs through every reload: no decision fails, each comes
// from a whole policy version, the new rules take effect, and a broken file
// leaves the previous rules in force.
func TestReloadUnderLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "corral.yaml")
	write(t, path, strings.Replace(reloadBase, "%s", "nightly.service", 1))
	engine, outcomes, hup, applied := startReloader(t, path)

	stop := make(chan struct{})
	var (
		wg        sync.WaitGroup
		decisions atomic.Int64
		failures  atomic.Int64
	)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				d, err := engine.Decide(context.Background(), connectAs("nightly.service"))
				decisions.Add(1)
				// Version 1 and 2 allow nightly; version 3 moves the rule to
				// another unit. A decision must match the version it names.
				wantAllow := d.PolicyVersion < 3
				if err != nil || d.Allowed() != wantAllow {
					failures.Add(1)
					t.Errorf("decision under reload: %+v %v", d, err)
				}
			}
		}()
	}
	defer func() {
		close(stop)
		wg.Wait()
		if decisions.Load() == 0 {
			t.Error("the decision loop never ran")
		}
	}()

	// An equivalent file: a new version, same answers.
	write(t, path, strings.Replace(reloadBase, "%s", "nightly.service", 1)+"\n# touched\n")
	if o := next(t, outcomes); o.err != nil || o.version != 2 {
		t.Fatalf("reload 1: %+v", o)
	}

	// A broken file: rejected, naming the problem; version 2 stays.
	write(t, path, strings.Replace(reloadBase, "%s", "nightly.service", 1)+"    allwo: [connect]\n")
	o := next(t, outcomes)
	if o.err == nil || !strings.Contains(o.err.Error(), "allwo") || engine.Version() != 2 {
		t.Fatalf("broken file: %+v, engine at version %d", o, engine.Version())
	}
	if d, _ := engine.Decide(context.Background(), connectAs("nightly.service")); !d.Allowed() {
		t.Fatalf("old rules not in force after a rejected reload: %+v", d)
	}

	// A rule change, delivered by SIGHUP as well as by the file watch.
	write(t, path, strings.Replace(reloadBase, "%s", "hourly.service", 1))
	if o := next(t, outcomes); o.err != nil || o.version != 3 {
		t.Fatalf("reload 3: %+v", o)
	}
	hup <- syscall.SIGHUP
	if o := next(t, outcomes); o.err != nil || o.version != 4 {
		t.Fatalf("SIGHUP reload: %+v", o)
	}
	if d, _ := engine.Decide(context.Background(), connectAs("hourly.service")); !d.Allowed() {
		t.Errorf("new rule not in force: %+v", d)
	}
	if c := applied.Load(); c == nil || c.Rules[0].Who.Unit[0] != "hourly.service" {
		t.Errorf("the live settings were not applied: %+v", c)
	}
	if failures.Load() > 0 {
		t.Fatalf("%d of %d decisions failed during reloads", failures.Load(), decisions.Load())
	}
}

// A policy file that no longer compiles is rejected like a bad config.
func TestReloadRejectsBrokenPolicyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "corral.yaml")
	rego := filepath.Join(dir, "extra.rego")
	write(t, rego, "package corral.custom\n\nimport rego.v1\n\ndeny contains \"pid 1\" if input.workload.pid == 1\n")
	write(t, path, strings.Replace(reloadBase, "%s", "nightly.service", 1)+"policy_files: [extra.rego]\n")
	engine, outcomes, _, _ := startReloader(t, path)

	write(t, rego, "package corral.custom\n\ndeny contains if {\n")
	o := next(t, outcomes)
	if o.err == nil || !strings.Contains(o.err.Error(), "extra.rego") || engine.Version() != 1 {
		t.Fatalf("broken policy file: %+v, version %d", o, engine.Version())
	}
	in := connectAs("nightly.service")
	in.Workload.PID = 1
	if d, _ := engine.Decide(context.Background(), in); d.Allowed() || d.Reason != "pid 1" {
		t.Fatalf("the previous custom policy is not in force: %+v", d)
	}
}

// A ConfigMap volume: corral.yaml -> ..data/corral.yaml, ..data -> a
// timestamped directory, swapped by renaming a new ..data link over it.
// The file's own name sees no event; the swap reloads.
func TestReloadFollowsConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	swap := func(n int, unit string) {
		ts := filepath.Join(dir, "..2026_"+strings.Repeat("x", n))
		os.Mkdir(ts, 0o755)
		if err := os.WriteFile(filepath.Join(ts, "corral.yaml"), []byte(strings.Replace(reloadBase, "%s", unit, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "..data_tmp")
		os.Remove(tmp)
		if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	swap(1, "one.service")
	path := filepath.Join(dir, "corral.yaml")
	if err := os.Symlink("..data/corral.yaml", path); err != nil {
		t.Fatal(err)
	}
	engine, outcomes, _, _ := startReloader(t, path)
	swap(2, "two.service")
	if o := next(t, outcomes); o.err != nil {
		t.Fatal(o.err)
	}
	d, _ := engine.Decide(context.Background(), connectAs("two.service"))
	if !d.Allowed() {
		t.Errorf("after the swap: %+v", d)
	}
}
