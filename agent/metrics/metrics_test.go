package metrics_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/corral-dev/corral/agent/metrics"
	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/policy"
)

// sources are fixed values for every scrape-time source.
func sources() metrics.Options {
	return metrics.Options{
		BPF: func() (metrics.BPFCounters, error) {
			return metrics.BPFCounters{Redirected: 7, Refused: 2, Passed: 1000, Exempt: 3}, nil
		},
		PolicyVersion:     func() uint64 { return 4 },
		NetnsListeners:    func() int { return 3 },
		RecordingFailures: func() uint64 { return 5 },
	}
}

func newMetrics(t *testing.T, o metrics.Options) (*metrics.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, o)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

// names gathers reg and returns the names of the metric families.
func names(t *testing.T, reg prometheus.Gatherer) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		out = append(out, mf.GetName())
	}
	return out
}

func TestScrapeTimeSources(t *testing.T) {
	_, reg := newMetrics(t, sources())
	err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP corral_bpf_connects_total connect() calls seen by corral's kernel programs: redirected (to a target, sent to corral), refused (to a target, no live listener of corral's: EPERM), passed (not a target), exempt (corral's own).
# TYPE corral_bpf_connects_total counter
corral_bpf_connects_total{result="exempt"} 3
corral_bpf_connects_total{result="passed"} 1000
corral_bpf_connects_total{result="redirected"} 7
corral_bpf_connects_total{result="refused"} 2
# HELP corral_netns_listeners Network namespaces corral listens in.
# TYPE corral_netns_listeners gauge
corral_netns_listeners 3
# HELP corral_policy_version Version of the policy in force (it changes at every successful reload).
# TYPE corral_policy_version gauge
corral_policy_version 4
# HELP corral_recording_failures_total Session records the recorder could not write.
# TYPE corral_recording_failures_total counter
corral_recording_failures_total 5
`), "corral_bpf_connects_total", "corral_netns_listeners", "corral_policy_version", "corral_recording_failures_total")
	if err != nil {
		t.Error(err)
	}
}

// Without sources (no kernel programs, no recorder) everything reads zero.
func TestNilSourcesReadZero(t *testing.T) {
	_, reg := newMetrics(t, metrics.Options{})
	for name, want := range map[string]float64{
		"corral_netns_listeners": 0, "corral_policy_version": 0, "corral_recording_failures_total": 0,
	} {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			m := mf.GetMetric()[0]
			got := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			if got != want {
				t.Errorf("%s = %v, want %v", name, got, want)
			}
		}
	}
	if n, err := testutil.GatherAndCount(reg, "corral_bpf_connects_total"); err != nil || n != 4 {
		t.Errorf("corral_bpf_connects_total has %d series, want 4 zeros", n)
	}
}

// A failing read of the kernel's counters leaves them out of the scrape
// and says why; the rest is still gathered.
func TestBPFReadFailure(t *testing.T) {
	o := sources()
	o.BPF = func() (metrics.BPFCounters, error) { return metrics.BPFCounters{}, errors.New("map gone") }
	_, reg := newMetrics(t, o)
	mfs, err := reg.Gather()
	if err == nil || !strings.Contains(err.Error(), "map gone") {
		t.Errorf("gather error = %v, want the read failure", err)
	}
	var got []string
	for _, mf := range mfs {
		got = append(got, mf.GetName())
	}
	if slices.Contains(got, "corral_bpf_connects_total") || !slices.Contains(got, "corral_policy_version") {
		t.Errorf("gathered %v", got)
	}
}

func TestRegistersOnceOnItsRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := metrics.New(reg, sources()); err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.New(reg, sources()); err == nil {
		t.Error("a second registration on the same registry succeeded")
	}
	// Another registry is another agent: no global state in between.
	if _, err := metrics.New(prometheus.NewRegistry(), sources()); err != nil {
		t.Error(err)
	}
}

func TestNamesFollowConventions(t *testing.T) {
	m, reg := newMetrics(t, sources())
	// Every vector gets a child, so every family is linted.
	m.Connection("orders-db", "postgres", intercept.ConnAllowed)
	s := m.Session("orders-db", "postgres")
	s.Operations(policy.Allow, 1)
	s.Masked(1)
	s.Added(time.Microsecond)
	m.ApprovalWait("orders-db", time.Second)
	m.Reloaded(nil)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	for _, n := range names(t, reg) {
		if !strings.HasPrefix(n, "corral_") {
			t.Errorf("%s is not in corral's namespace", n)
		}
	}
}

func TestConnectionsAndSessions(t *testing.T) {
	m, reg := newMetrics(t, sources())
	m.Connection("orders-db", "postgres", intercept.ConnAllowed)
	m.Connection("orders-db", "postgres", intercept.ConnAllowed)
	m.Connection("orders-db", "postgres", intercept.ConnDenied)
	m.Connection("", "", intercept.ConnRejected)
	m.Connection("ssh-bastion", "tcp", intercept.ConnError)

	a := m.Session("orders-db", "postgres")
	b := m.Session("orders-db", "postgres")
	a.Operations(policy.Allow, 3)
	b.Operations(policy.Deny, 1)
	b.Operations(policy.Review, 1)
	a.Masked(4)
	b.Masked(2)
	a.Added(20 * time.Microsecond)
	b.Added(3 * time.Millisecond)
	if got := value(t, reg, "corral_active_sessions", map[string]string{"target": "orders-db", "protocol": "postgres"}); got != 2 {
		t.Errorf("active sessions = %v, want 2", got)
	}
	a.End()

	err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP corral_connections_total Intercepted connections by outcome: allowed (a session started), denied (the policy refused it), rejected (no kernel record of its origin, or no handler for its protocol), error (the policy could not be evaluated).
# TYPE corral_connections_total counter
corral_connections_total{protocol="",result="allowed",target=""} 0
corral_connections_total{protocol="",result="denied",target=""} 0
corral_connections_total{protocol="",result="error",target=""} 0
corral_connections_total{protocol="",result="rejected",target=""} 1
corral_connections_total{protocol="postgres",result="allowed",target="orders-db"} 2
corral_connections_total{protocol="postgres",result="denied",target="orders-db"} 1
corral_connections_total{protocol="postgres",result="error",target="orders-db"} 0
corral_connections_total{protocol="postgres",result="rejected",target="orders-db"} 0
corral_connections_total{protocol="tcp",result="allowed",target="ssh-bastion"} 0
corral_connections_total{protocol="tcp",result="denied",target="ssh-bastion"} 0
corral_connections_total{protocol="tcp",result="error",target="ssh-bastion"} 1
corral_connections_total{protocol="tcp",result="rejected",target="ssh-bastion"} 0
# HELP corral_operations_total Operations inside sessions (SQL statements, function calls) by decision: allow (passed on to the target), deny (refused), review (held for approval; refused while approvals are not available).
# TYPE corral_operations_total counter
corral_operations_total{decision="allow",protocol="postgres",target="orders-db"} 3
corral_operations_total{decision="deny",protocol="postgres",target="orders-db"} 1
corral_operations_total{decision="review",protocol="postgres",target="orders-db"} 1
# HELP corral_masked_values_total Values masked in responses (column masks and detectors).
# TYPE corral_masked_values_total counter
corral_masked_values_total{target="orders-db"} 6
# HELP corral_active_sessions Sessions being served (from admission to close, login included).
# TYPE corral_active_sessions gauge
corral_active_sessions{protocol="postgres",target="orders-db"} 1
`), "corral_connections_total", "corral_operations_total", "corral_masked_values_total", "corral_active_sessions")
	if err != nil {
		t.Error(err)
	}

	// The histogram: 20 µs and 3 ms land in their buckets.
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "corral_proxy_added_seconds" {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		if h.GetSampleCount() != 2 || h.GetSampleSum() < 0.003 || h.GetSampleSum() > 0.0031 {
			t.Errorf("added: count %d sum %v", h.GetSampleCount(), h.GetSampleSum())
		}
		for _, b := range h.GetBucket() {
			want := uint64(0)
			switch {
			case b.GetUpperBound() >= 0.003:
				want = 2
			case b.GetUpperBound() >= 20e-6:
				want = 1
			}
			if b.GetCumulativeCount() != want {
				t.Errorf("added bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
			}
		}
		if l := mf.GetMetric()[0].GetLabel(); len(l) != 1 || l[0].GetName() != "protocol" || l[0].GetValue() != "postgres" {
			t.Errorf("added labels %v", l)
		}
	}
}

func TestReloadsAndApprovalWaits(t *testing.T) {
	m, reg := newMetrics(t, sources())
	m.Reloaded(nil)
	m.Reloaded(errors.New("targets[0]: bad"))
	m.Reloaded(nil)
	err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP corral_policy_reloads_total Configuration and policy reloads (file change or SIGHUP): ok (in force), failed (rejected; the previous one stays).
# TYPE corral_policy_reloads_total counter
corral_policy_reloads_total{result="failed"} 1
corral_policy_reloads_total{result="ok"} 2
`), "corral_policy_reloads_total")
	if err != nil {
		t.Error(err)
	}
	// Nothing waits for approval yet: the histogram exists, empty.
	if n, err := testutil.GatherAndCount(reg, "corral_approval_wait_seconds"); err != nil || n != 0 {
		t.Errorf("approval waits before any: %d series", n)
	}
	m.ApprovalWait("orders-db", 90*time.Second)
	if n, err := testutil.GatherAndCount(reg, "corral_approval_wait_seconds"); err != nil || n != 1 {
		t.Errorf("approval waits: %d series, want 1", n)
	}
}

// value is the gauge or counter of family name whose labels include
// labels.
func value(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metric
				}
			}
			return m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	t.Fatalf("%s%v not found", name, labels)
	return 0
}
