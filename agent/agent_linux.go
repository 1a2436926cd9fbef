package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/dynamic"

	"github.com/corral-dev/corral/agent/config"
	"github.com/corral-dev/corral/agent/kube"
	"github.com/corral-dev/corral/agent/netns"
	"github.com/corral-dev/corral/agent/workload"
	"github.com/corral-dev/corral/agent/workload/kubepods"
	"github.com/corral-dev/corral/bpf"
	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/intercept/postgres"
	issh "github.com/corral-dev/corral/intercept/ssh"
	"github.com/corral-dev/corral/intercept/tcp"
	"github.com/corral-dev/corral/policy"
	"github.com/corral-dev/corral/recorder"
	"golang.org/x/sys/unix"
)

// Run intercepts until ctx ends. It fails before touching the kernel when
// the kernel lacks a feature or the configuration cannot be honoured.
func Run(ctx context.Context, o Options) error {
	cfg, log := o.Config, o.Log
	if o.ProcRoot == "" {
		o.ProcRoot = "/proc"
	}
	if n := schedulerProcs(cfg.MaxProcs, os.Getenv("GOMAXPROCS"), runtime.GOMAXPROCS(0), runtime.NumCPU()); n > 0 {
		runtime.GOMAXPROCS(n)
	}
	log.Info("scheduler", "max_procs", runtime.GOMAXPROCS(0))
	probe := o.Features
	if probe == nil {
		probe = bpf.Features
	}
	if err := bpf.Missing(probe()); err != nil {
		return fmt.Errorf("this kernel cannot run corral (`corral doctor` explains):\n%w", err)
	}

	root, err := workload.Cgroup2Root()
	if err != nil {
		return err
	}
	attach := cfg.CgroupPath
	if attach == "" {
		attach = root
	}
	if !strings.HasPrefix(filepath.Clean(attach)+"/", filepath.Clean(root)+"/") {
		return fmt.Errorf("cgroup_path: %s is not inside the cgroup2 hierarchy at %s", attach, root)
	}
	if _, err := workload.ID(attach); err != nil {
		return fmt.Errorf("cgroup_path: %w", err)
	}

	authority, err := openCA(cfg, log)
	if err != nil {
		return err
	}

	own, leaveCgroup, err := ownCgroup(root, log)
	if err != nil {
		return err
	}
	defer leaveCgroup()

	if err := ensurePinDir(cfg.BPFPinDir); err != nil {
		return fmt.Errorf("bpf_pin_dir: %w", err)
	}
	progs, err := bpf.Load(bpf.Options{
		CgroupPath:    attach,
		PinDir:        cfg.BPFPinDir,
		AgentCgroupID: own,
		Mark:          *cfg.SocketMark,
	})
	if err != nil {
		return err
	}
	attached := false
	defer func() {
		// Links never attached by this run must not be unpinned on error:
		// they may be a previous agent's, still protecting the host.
		if err := progs.Close(o.KeepPinned || !attached); err != nil {
			log.Error("releasing eBPF programs", "err", err)
		}
	}()

	var cluster *clusterPolicy
	if cfg.Kubernetes.Resources {
		rc, err := kube.AgentConfig(cfg.Kubernetes.Kubeconfig)
		if err != nil {
			return fmt.Errorf("kubernetes.resources: %w", err)
		}
		dyn, err := dynamic.NewForConfig(rc)
		if err != nil {
			return fmt.Errorf("kubernetes.resources: %w", err)
		}
		cluster = newClusterPolicy(dyn, log)
		if cfg, err = cluster.initial(ctx, cfg, 30*time.Second); err != nil {
			return err
		}
		log.Info("targets and rules include the cluster's ProtectedTargets and AccessRules", "targets", len(cfg.Targets), "rules", len(cfg.Rules))
	}
	engine := policy.NewEngine(log)
	if _, err := engine.Load(ctx, cfg.Policy()); err != nil {
		return err
	}
	table := newTargetTable(cfg.Targets)
	table.keepResolved(filepath.Join(cfg.StateDir, "resolved.json"), log)
	if err := table.sync(ctx, progs, log); err != nil {
		return err
	}

	audit, err := recorder.OpenJSONLog(cfg.AuditLog)
	if err != nil {
		return fmt.Errorf("audit_log: %w", err)
	}
	defer audit.Close()
	rec, closeRec, err := openRecorder(ctx, cfg.Recording, log)
	if err != nil {
		return err
	}
	// Deferred before the server's shutdown runs, so it runs after it: the
	// sessions' end records are written first.
	defer closeRec()

	cgroups, err := workload.NewCgroups(root)
	if err != nil {
		return err
	}
	key, err := maskKey(cfg.StateDir)
	if err != nil {
		return fmt.Errorf("state_dir: %w", err)
	}
	creds := newCredentials(cfg.Targets)
	dialer := upstreamDialer(*cfg.SocketMark)
	tokens := newTokens(cfg.OIDC, dialer.DialContext, log)
	pgHandler := &postgres.Handler{
		Policy: engine, Credentials: creds, Upstreams: creds.Upstream,
		ClientTLS:  (&clientTLS{ca: authority, targets: table, log: log}).forConn,
		ClientAuth: creds.ClientAuth, Databases: creds.Databases, Tokens: tokens,
		Dialer: dialer, MaskKey: key, Log: log,
	}
	defer pgHandler.Close()
	sshKeys, err := openSSHCA(cfg, log)
	if err != nil {
		return err
	}
	sshHandler := &issh.Handler{
		Policy: engine, Targets: &sshTargets{ca: sshKeys, table: table, creds: creds},
		Tokens: tokens, Dialer: dialer, Log: log,
	}
	ident := workload.NewResolver(cgroups, o.ProcRoot, log)
	pods, stopPods, err := watchPods(ctx, cfg.Kubernetes, ident, log)
	if err != nil {
		return err
	}
	defer stopPods()
	srv := &intercept.Server{
		Resolver: &resolver{progs: progs, targets: table, ident: ident},
		Handlers: map[string]intercept.Handler{
			"tcp":      &tcp.Handler{Dialer: dialer},
			"postgres": pgHandler,
			"ssh":      sshHandler,
		},
		Policy:        engine,
		Auditor:       auditLog{audit, log},
		Recorder:      rec,
		RecordingMode: table.recordingMode,
		Unidentified:  pgHandler.ServeUnidentified,
		Log:           log,
	}

	// Sessions run on runCtx; the namespace manager on mgrCtx, stopped
	// first at shutdown so no listener accepts while sessions wind down.
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	home := func(w *policy.Workload) string { return ident.TrustedCgroup(w.CgroupPath) }
	appr, err := startApprovals(runCtx, cfg, authority, tokens.Approvers(), dialer.DialContext, home, srv.Auditor, log)
	if err != nil {
		return err
	}
	defer appr.close()
	srv.Approvals = appr.broker
	creds.setSecrets(appr.secrets)
	mgrCtx, stopMgr := context.WithCancel(runCtx)
	defer stopMgr()
	defer tokens.Wait()
	var bg sync.WaitGroup
	defer bg.Wait()
	defer stop()
	// Issuers are discovered in the background: one that is down must not
	// hold up or fail the start.
	tokens.Warm(runCtx)

	mgr := netns.NewManager(o.ProcRoot, progs, *cfg.SocketMark, func(l *netns.Listener) {
		srv.Go(runCtx, l.V4, l.Cookie)
		if l.V6 != nil {
			srv.Go(runCtx, l.V6, l.Cookie)
		}
	}, log)
	obs, err := startMetrics(cfg.MetricsAddress, progs, engine, mgr, rec.Failures, appr.counts, log)
	if err != nil {
		mgr.Close()
		return err
	}
	defer obs.close(log)
	obs.wire(srv)
	if err := mgr.Sync(); err != nil {
		mgr.Close()
		return err
	}
	if pods != nil && !pods.WaitForCacheSync(podSyncWait) {
		log.Warn("Kubernetes API not answering yet; intercepting anyway: until the pod list arrives, pods' identities carry their UID only and rules on pod facts do not match them",
			"waited", podSyncWait)
	}
	if err := progs.Attach(); err != nil {
		mgr.Close()
		return err
	}
	attached = true

	events, err := progs.Events()
	if err != nil {
		mgr.Close()
		return err
	}
	if o.ConfigPath != "" {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		r := &reloader{path: o.ConfigPath, engine: engine, log: log, current: cfg, apply: func(c *config.Config) {
			tokens.SetIssuers(issuers(c.OIDC))
			tokens.Warm(runCtx)
			creds.replace(c.Targets)
			table.replace(c.Targets)
			if err := table.sync(runCtx, progs, log); err != nil {
				log.Error("applying reloaded targets", "err", err)
			}
			appr.recheckGrants(runCtx, engine, log)
		}}
		if cluster != nil {
			r.extend, r.kick = cluster.extend, cluster.kick
			cluster.watch(runCtx)
		}
		watching, ended := make(chan struct{}), make(chan struct{})
		r.watching = func() { close(watching) }
		r.reloaded = obs.reloaded
		bg.Add(1)
		go func() {
			defer bg.Done()
			defer close(ended)
			if err := r.run(runCtx, hup); err != nil {
				log.Error("configuration reloads stopped; restart the agent to apply changes", "err", err)
			}
		}()
		// Ready means ready for changes too.
		select {
		case <-watching:
		case <-ended:
		}
	}
	mgrDone := make(chan struct{})
	bg.Add(3)
	go func() {
		defer bg.Done()
		defer close(mgrDone)
		mgr.Run(mgrCtx, cfg.NetnsRescan)
	}()
	go func() {
		defer bg.Done()
		readEvents(events, mgr, log)
	}()
	go func() {
		defer bg.Done()
		table.refresh(runCtx, progs, cfg.DNSRefresh, log)
	}()

	// /readyz first: whoever reads the log line may ask it at once.
	obs.ready()
	log.Info("corral agent ready", "cgroup", attach, "targets", len(cfg.Targets), "rules", len(cfg.Rules), "policy_version", engine.Version(), "netns_listeners", mgr.Len(), "audit_log", cfg.AuditLog)
	if o.Ready != nil {
		o.Ready()
	}
	<-ctx.Done()

	log.Info("corral agent stopping", "keep_pinned", o.KeepPinned)
	obs.stopping()
	// Listeners first (no new sessions), then a grace period for the live
	// ones, then whatever is left is cut.
	stopMgr()
	<-mgrDone
	srv.Wait()
	appr.stop() // operations waiting for approval are told, and end
	grace, cancel := context.WithTimeout(context.Background(), config.DefaultShutdownGrace)
	defer cancel()
	srv.Shutdown(grace)
	stop()
	events.Close()
	return nil
}

// podSyncWait bounds how long the start waits for the node's pods before
// intercepting, so that the first connections are not judged without pod
// metadata while an API server that is down does not hold up the agent.
const podSyncWait = 10 * time.Second

// watchPods gives ident pod metadata from the Kubernetes API when the agent
// runs in a cluster or has a kubeconfig; on a VM there is no client at all
// and pods is nil. stop ends the informer.
func watchPods(ctx context.Context, k config.Kubernetes, ident *workload.Resolver, log *slog.Logger) (pods *kubepods.Pods, stop func(), err error) {
	client, err := kubepods.Client(k.Kubeconfig)
	switch {
	case errors.Is(err, kubepods.ErrNoCluster):
		log.Debug("no Kubernetes API: pod identities carry the UID from the cgroup path only")
		return nil, func() {}, nil
	case err != nil && k.Kubeconfig != "":
		return nil, nil, fmt.Errorf("kubernetes.kubeconfig: %w", err)
	case err != nil:
		log.Warn("running in a Kubernetes pod, but without an API client: pod identities carry the UID from the cgroup path only", "err", err)
		return nil, func() {}, nil
	}
	node, err := kubepods.NodeName(k.NodeName)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes.node_name: %w", err)
	}
	pods = kubepods.New(client, node, log)
	podCtx, cancel := context.WithCancel(ctx)
	pods.Start(podCtx)
	ident.SetPods(pods)
	log.Info("watching this node's pods for pod metadata", "node", node)
	return pods, func() { cancel(); pods.Wait() }, nil
}

func readEvents(r *bpf.EventReader, mgr *netns.Manager, log *slog.Logger) {
	for {
		ev, err := r.Read()
		if errors.Is(err, bpf.ErrClosed) {
			return
		}
		if err != nil {
			log.Warn("reading kernel events", "err", err)
			continue
		}
		log.Debug("kernel refused a connect", "netns_cookie", ev.NetnsCookie, "pid", ev.PID, "reason", ev.Reason.String())
		if ev.Reason == bpf.RefuseNoListener {
			mgr.Kick()
		}
	}
}

// resolver joins the kernel's record of a connection with the configured
// target and the host's view of the workload.
type resolver struct {
	progs   *bpf.Programs
	targets *targetTable
	ident   *workload.Resolver
}

func (r *resolver) Resolve(netnsCookie uint64, client netip.AddrPort, listenerPort uint16) (intercept.Meta, error) {
	o, err := r.progs.Origin(netnsCookie, client, listenerPort)
	if err != nil {
		return intercept.Meta{}, err
	}
	t, ok := r.targets.byID(o.TargetID)
	if !ok {
		return intercept.Meta{}, fmt.Errorf("connection to %s matched target #%d, which is no longer configured", o.Dst, o.TargetID)
	}
	id := r.ident.Identify(workload.Facts{CgroupID: o.CgroupID, PID: o.PID, UID: o.UID, Comm: o.Comm})
	return intercept.Meta{
		OrigDst:  o.Dst,
		Target:   intercept.Target{Name: t.Name, Protocol: t.Protocol},
		Workload: id,
	}, nil
}

type auditLog struct {
	w   *recorder.JSONLog
	log *slog.Logger
}

// Audit writes session boundaries at once and buffers the events inside a
// session, which a busy session produces per statement.
func (a auditLog) Audit(e intercept.Event) {
	write := a.w.Write
	if e.Event == intercept.EventStatement {
		write = a.w.Buffer
	}
	if err := write(&e); err != nil {
		a.log.Error("audit log write failed", "session_id", e.SessionID, "event", e.Event, "err", err)
	}
}

// upstreamDialer marks corral's own connections so the kernel lets them
// through even should the agent's cgroup exemption not apply.
func upstreamDialer(mark uint32) *net.Dialer {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if mark != 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
			}); err != nil {
				return err
			}
			if serr != nil {
				return fmt.Errorf("set SO_MARK on upstream socket: %w", serr)
			}
			return nil
		}
	}
	return d
}

func ensurePinDir(dir string) error {
	if dir == "" {
		return nil
	}
	parent := filepath.Dir(dir)
	if bpf.IsBPFFS(parent) {
		return nil
	}
	if parent == "/sys/fs/bpf" {
		return bpf.MountBPFFS(parent)
	}
	return fmt.Errorf("%s is not on a bpf filesystem", parent)
}
