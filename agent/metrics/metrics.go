// Package metrics is corral's Prometheus instrumentation: the collectors
// the agent registers on its own registry (never the global one), the
// counters the intercept server and the protocol handlers report to
// (intercept.Metrics), collectors that read the kernel programs' counters
// and the agent's state at scrape time, and the HTTP endpoint that serves
// them with /healthz and /readyz.
//
// Label values are bounded: configured target names, protocol names and
// fixed outcome words. Statements, users, workloads, session ids and
// secrets never become labels.
package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/policy"
)

const namespace = "corral"

// AddedBuckets are the buckets of corral_proxy_added_seconds: corral's
// own time on a request, from a few microseconds (a cached decision) to
// tens of milliseconds (an uncached decision on a loaded node, a catalog
// lookup).
var AddedBuckets = []float64{
	5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
	1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3,
}

// ApprovalBuckets are the buckets of corral_approval_wait_seconds: a
// human's answer, from seconds to an hour.
var ApprovalBuckets = []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600}

// BPFCounters are the kernel programs' connect counters, summed over CPUs.
type BPFCounters struct {
	Redirected uint64 // connects to a target, sent to corral
	Refused    uint64 // connects to a target refused: no live listener
	Passed     uint64 // connects to anything else, untouched
	Exempt     uint64 // corral's own connects to a target
}

// Options are the sources read at scrape time. A nil source reads as zero.
type Options struct {
	// BPF reads the kernel programs' counters (bpf.Programs.Counters).
	BPF func() (BPFCounters, error)
	// PolicyVersion is the version of the policy in force.
	PolicyVersion func() uint64
	// NetnsListeners is the number of network namespaces corral listens in.
	NetnsListeners func() int
	// RecordingFailures is the number of session records the recorder
	// could not write ((*recorder.Recorder).Failures).
	RecordingFailures func() uint64
	// Approvals reads the approval workflow's counts (nil: none).
	Approvals func() ApprovalCounts
}

// ApprovalCounts are the approval workflow's counts since start.
type ApprovalCounts struct {
	// Requests by outcome: requested, approved, denied, expired,
	// cancelled, and covered (let through by a window grant already held).
	Requests map[string]uint64
	Pending  int
	// Webhook notifications delivered and given up on.
	WebhookSent, WebhookFailed uint64
}

// Metrics are corral's collectors, registered on one registry. It
// implements intercept.Metrics; its methods are safe for concurrent use.
type Metrics struct {
	connections  *prometheus.CounterVec
	operations   *prometheus.CounterVec
	masked       *prometheus.CounterVec
	active       *prometheus.GaugeVec
	added        *prometheus.HistogramVec
	approvalWait *prometheus.HistogramVec
	reloadOK     prometheus.Counter
	reloadFailed prometheus.Counter

	mu       sync.RWMutex
	conns    map[key]*connCounters
	sessions map[key]*sessionCounters
}

type key struct{ target, protocol string }

// NewRegistry returns a registry of the agent's own with the Go runtime's
// and the process's collectors (go_*, process_*); New adds corral's.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// New creates corral's collectors and registers them on reg.
func New(reg prometheus.Registerer, o Options) (*Metrics, error) {
	labels := []string{"target", "protocol"}
	m := &Metrics{
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "connections_total",
			Help: "Intercepted connections by outcome: allowed (a session started), denied (the policy refused it), rejected (no kernel record of its origin, or no handler for its protocol), error (the policy could not be evaluated).",
		}, append(labels, "result")),
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "operations_total",
			Help: "Operations inside sessions (SQL statements, function calls) by decision: allow (passed on to the target), deny (refused), review (held for approval; refused while approvals are not available).",
		}, append(labels, "decision")),
		masked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "masked_values_total",
			Help: "Values masked in responses (column masks and detectors).",
		}, []string{"target"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "active_sessions",
			Help: "Sessions being served (from admission to close, login included).",
		}, labels),
		added: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "proxy_added_seconds",
			Help:    "Time corral spends on a client request before passing it to the target (parsing, classification, policy, bookkeeping); network, server time and response masking excluded.",
			Buckets: AddedBuckets,
		}, []string{"protocol"}),
		approvalWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "approval_wait_seconds",
			Help:    "Time operations held for review waited for a decision.",
			Buckets: ApprovalBuckets,
		}, []string{"target"}),
		conns:    map[key]*connCounters{},
		sessions: map[key]*sessionCounters{},
	}
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "policy_reloads_total",
		Help: "Configuration and policy reloads (file change or SIGHUP): ok (in force), failed (rejected; the previous one stays).",
	}, []string{"result"})
	m.reloadOK, m.reloadFailed = reloads.WithLabelValues("ok"), reloads.WithLabelValues("failed")

	cs := []prometheus.Collector{
		m.connections, m.operations, m.masked, m.active, m.added, m.approvalWait, reloads,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "policy_version",
			Help: "Version of the policy in force (it changes at every successful reload).",
		}, func() float64 { return readUint(o.PolicyVersion) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "netns_listeners",
			Help: "Network namespaces corral listens in.",
		}, func() float64 {
			if o.NetnsListeners == nil {
				return 0
			}
			return float64(o.NetnsListeners())
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: namespace, Name: "recording_failures_total",
			Help: "Session records the recorder could not write.",
		}, func() float64 { return readUint(o.RecordingFailures) }),
		newBPFCollector(o.BPF),
		newApprovalCollector(o.Approvals),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func readUint(f func() uint64) float64 {
	if f == nil {
		return 0
	}
	return float64(f())
}

// connCounters are the connection counters of one target, by outcome.
type connCounters struct {
	allowed, denied, rejected, failed prometheus.Counter
}

// Connection counts one intercepted connection by its outcome.
func (m *Metrics) Connection(target, protocol, result string) {
	k := key{target, protocol}
	m.mu.RLock()
	c := m.conns[k]
	m.mu.RUnlock()
	if c == nil {
		c = &connCounters{
			allowed:  m.connections.WithLabelValues(target, protocol, intercept.ConnAllowed),
			denied:   m.connections.WithLabelValues(target, protocol, intercept.ConnDenied),
			rejected: m.connections.WithLabelValues(target, protocol, intercept.ConnRejected),
			failed:   m.connections.WithLabelValues(target, protocol, intercept.ConnError),
		}
		m.mu.Lock()
		m.conns[k] = c
		m.mu.Unlock()
	}
	switch result {
	case intercept.ConnAllowed:
		c.allowed.Inc()
	case intercept.ConnDenied:
		c.denied.Inc()
	case intercept.ConnRejected:
		c.rejected.Inc()
	default:
		c.failed.Inc()
	}
}

// sessionCounters are the counters the sessions of one target report to,
// resolved once per target: counting costs an atomic add.
type sessionCounters struct {
	allow, deny, review prometheus.Counter
	masked              prometheus.Counter
	active              prometheus.Gauge
	added               prometheus.Observer
	approvalWait        prometheus.Observer
}

// Session counts a session as active and returns the counters of its
// target.
func (m *Metrics) Session(target, protocol string) intercept.SessionMetrics {
	k := key{target, protocol}
	m.mu.RLock()
	s := m.sessions[k]
	m.mu.RUnlock()
	if s == nil {
		s = &sessionCounters{
			allow:        m.operations.WithLabelValues(target, protocol, policy.Allow),
			deny:         m.operations.WithLabelValues(target, protocol, policy.Deny),
			review:       m.operations.WithLabelValues(target, protocol, policy.Review),
			masked:       m.masked.WithLabelValues(target),
			active:       m.active.WithLabelValues(target, protocol),
			added:        m.added.WithLabelValues(protocol),
			approvalWait: m.approvalWait.WithLabelValues(target),
		}
		m.mu.Lock()
		m.sessions[k] = s
		m.mu.Unlock()
	}
	s.active.Inc()
	return s
}

func (s *sessionCounters) Operations(decision string, n int) {
	switch decision {
	case policy.Allow:
		s.allow.Add(float64(n))
	case policy.Review:
		s.review.Add(float64(n))
	default:
		s.deny.Add(float64(n))
	}
}

func (s *sessionCounters) Masked(n int)          { s.masked.Add(float64(n)) }
func (s *sessionCounters) Added(d time.Duration) { s.added.Observe(d.Seconds()) }
func (s *sessionCounters) End()                  { s.active.Dec() }
func (s *sessionCounters) ApprovalWait(d time.Duration) {
	s.approvalWait.Observe(d.Seconds())
}

// ApprovalWait observes how long an operation held for review waited for
// its decision (sessions observe theirs through their SessionMetrics).
func (m *Metrics) ApprovalWait(target string, d time.Duration) {
	m.approvalWait.WithLabelValues(target).Observe(d.Seconds())
}

// Reloaded counts a configuration reload: err nil, it is in force.
func (m *Metrics) Reloaded(err error) {
	if err != nil {
		m.reloadFailed.Inc()
	} else {
		m.reloadOK.Inc()
	}
}

// bpfCollector reads the kernel programs' counters at scrape time: they
// live in a per-CPU map the kernel updates without corral.
type bpfCollector struct {
	read func() (BPFCounters, error)
	desc *prometheus.Desc
}

func newBPFCollector(read func() (BPFCounters, error)) *bpfCollector {
	return &bpfCollector{read: read, desc: prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "bpf", "connects_total"),
		"connect() calls seen by corral's kernel programs: redirected (to a target, sent to corral), refused (to a target, no live listener of corral's: EPERM), passed (not a target), exempt (corral's own).",
		[]string{"result"}, nil,
	)}
}

func (c *bpfCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *bpfCollector) Collect(ch chan<- prometheus.Metric) {
	var v BPFCounters
	if c.read != nil {
		var err error
		if v, err = c.read(); err != nil {
			ch <- prometheus.NewInvalidMetric(c.desc, err)
			return
		}
	}
	for _, r := range []struct {
		result string
		n      uint64
	}{{"redirected", v.Redirected}, {"refused", v.Refused}, {"passed", v.Passed}, {"exempt", v.Exempt}} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(r.n), r.result)
	}
}

// approvalCollector reads the approval workflow's counts at scrape time.
type approvalCollector struct {
	read              func() ApprovalCounts
	requests, webhook *prometheus.Desc
	pending           *prometheus.Desc
}

func newApprovalCollector(read func() ApprovalCounts) *approvalCollector {
	return &approvalCollector{
		read: read,
		requests: prometheus.NewDesc(namespace+"_approval_requests_total",
			"Access requests by outcome (requested, approved, denied, expired, cancelled, covered by a window grant).", []string{"outcome"}, nil),
		pending: prometheus.NewDesc(namespace+"_approval_requests_pending",
			"Access requests waiting for a decision.", nil, nil),
		webhook: prometheus.NewDesc(namespace+"_approval_webhooks_total",
			"Review notifications by result (sent, failed after every attempt).", []string{"result"}, nil),
	}
}

func (c *approvalCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.requests
	ch <- c.pending
	ch <- c.webhook
}

func (c *approvalCollector) Collect(ch chan<- prometheus.Metric) {
	var a ApprovalCounts
	if c.read != nil {
		a = c.read()
	}
	for _, o := range []string{"requested", "approved", "denied", "expired", "cancelled", "covered"} {
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(a.Requests[o]), o)
	}
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(a.Pending))
	ch <- prometheus.MustNewConstMetric(c.webhook, prometheus.CounterValue, float64(a.WebhookSent), "sent")
	ch <- prometheus.MustNewConstMetric(c.webhook, prometheus.CounterValue, float64(a.WebhookFailed), "failed")
}
