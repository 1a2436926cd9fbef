package agent

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/corral-dev/corral/agent/metrics"
	"github.com/corral-dev/corral/agent/netns"
	"github.com/corral-dev/corral/bpf"
	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/policy"
)

// observability is the agent's metrics and its HTTP endpoint; the zero
// value (metrics_address empty) counts and serves nothing.
type observability struct {
	m   *metrics.Metrics
	srv *metrics.Server
}

// startMetrics registers corral's collectors on a registry of the agent's
// own (with the Go runtime's and the process's) and serves it on addr.
// The endpoint answers /readyz with 503 until ready is called.
// recordingFailures is the recorder's failure count (nil: none).
func startMetrics(addr string, progs *bpf.Programs, engine *policy.Engine, mgr *netns.Manager, recordingFailures func() uint64, approvals func() metrics.ApprovalCounts, log *slog.Logger) (*observability, error) {
	if addr == "" {
		return &observability{}, nil
	}
	reg := metrics.NewRegistry()
	m, err := metrics.New(reg, metrics.Options{
		BPF: func() (metrics.BPFCounters, error) {
			c, err := progs.Counters()
			return metrics.BPFCounters{Redirected: c.Redirected, Refused: c.Refused, Passed: c.Passed, Exempt: c.Exempt}, err
		},
		PolicyVersion:     engine.Version,
		NetnsListeners:    mgr.Len,
		RecordingFailures: recordingFailures,
		Approvals:         approvals,
	})
	if err != nil {
		return nil, err
	}
	srv, err := metrics.Listen(addr, reg, log)
	if err != nil {
		return nil, fmt.Errorf("metrics_address: %w", err)
	}
	log.Info("serving metrics", "address", srv.Addr().String(), "paths", "/metrics /healthz /readyz")
	return &observability{m: m, srv: srv}, nil
}

// wire makes the intercept server count to the metrics.
func (o *observability) wire(srv *intercept.Server) {
	if o.m != nil {
		srv.Metrics = o.m
	}
}

// reloaded counts a configuration reload.
func (o *observability) reloaded(_ uint64, err error) {
	if o.m != nil {
		o.m.Reloaded(err)
	}
}

func (o *observability) ready() {
	if o.srv != nil {
		o.srv.SetReady()
	}
}

func (o *observability) stopping() {
	if o.srv != nil {
		o.srv.SetNotReady("stopping")
	}
}

// close stops the endpoint; a scrape in flight gets a few seconds.
func (o *observability) close(log *slog.Logger) {
	if o.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := o.srv.Close(ctx); err != nil {
		log.Warn("stopping the metrics endpoint", "err", err)
	}
}
