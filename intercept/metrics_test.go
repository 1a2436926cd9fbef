package intercept_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/policy"
)

// tally counts what the server and handlers report, by a readable key.
type tally struct {
	mu     sync.Mutex
	counts map[string]int
}

func newTally() *tally { return &tally{counts: map[string]int{}} }

func (m *tally) add(k string, n int) {
	m.mu.Lock()
	m.counts[k] += n
	m.mu.Unlock()
}

func (m *tally) get(k string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counts[k]
}

func (m *tally) snapshot() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.counts)
}

func (m *tally) Connection(target, protocol, result string) {
	m.add(fmt.Sprintf("connection %s/%s %s", target, protocol, result), 1)
}

func (m *tally) Session(target, protocol string) intercept.SessionMetrics {
	m.add("active "+target+"/"+protocol, 1)
	return &tallySession{m: m, name: target + "/" + protocol}
}

type tallySession struct {
	m    *tally
	name string
	once sync.Once
}

func (s *tallySession) Operations(decision string, n int) {
	s.m.add("operations "+s.name+" "+decision, n)
}
func (s *tallySession) Masked(n int)               { s.m.add("masked "+s.name, n) }
func (s *tallySession) Added(d time.Duration)      { s.m.add("added "+s.name, 1) }
func (s *tallySession) ApprovalWait(time.Duration) {}

func (s *tallySession) End() {
	ended := false
	s.once.Do(func() { ended = true })
	if !ended {
		s.m.add("ended twice "+s.name, 1)
	}
	s.m.add("active "+s.name, -1)
}

func TestMetricsCountConnectionOutcomes(t *testing.T) {
	handler := intercept.HandlerFunc(func(context.Context, *intercept.Conn) error { return nil })
	mysql := testMeta()
	mysql.Target = intercept.Target{Name: "inventory", Protocol: "mysql"}
	for _, tc := range []struct {
		name    string
		meta    intercept.Meta
		resolve error
		policy  intercept.Decider
		handler intercept.Handler
		want    map[string]int
	}{
		{
			name: "allowed", meta: testMeta(), policy: newDecider(allowed, nil), handler: handler,
			want: map[string]int{"connection orders-db/tcp allowed": 1, "active orders-db/tcp": 0},
		},
		{
			name: "denied", meta: testMeta(), policy: newDecider(policy.Decision{Result: policy.Deny, Reason: "no"}, nil), handler: handler,
			want: map[string]int{"connection orders-db/tcp denied": 1},
		},
		{
			name: "review is a denial", meta: testMeta(), policy: newDecider(policy.Decision{Result: policy.Review, Reason: "a DBA"}, nil), handler: handler,
			want: map[string]int{"connection orders-db/tcp denied": 1},
		},
		{
			name: "policy error", meta: testMeta(), handler: handler,
			policy: newDecider(policy.Decision{Result: policy.Deny, Reason: "the policy could not be evaluated"}, errors.New("boom")),
			want:   map[string]int{"connection orders-db/tcp error": 1},
		},
		{
			name: "unknown origin", resolve: errors.New("no record"), policy: newDecider(allowed, nil), handler: handler,
			want: map[string]int{"connection / rejected": 1},
		},
		{
			name: "no handler", meta: mysql, policy: newDecider(allowed, nil), handler: handler,
			want: map[string]int{"connection inventory/mysql rejected": 1},
		},
		{
			name: "token refused at login", meta: testMeta(), policy: newDecider(allowed, nil),
			handler: authHandler{login: func(ctx context.Context, c *intercept.Conn) error {
				c.Refuse("corral could not verify the token")
				return nil
			}},
			want: map[string]int{"connection orders-db/tcp denied": 1, "active orders-db/tcp": 0},
		},
		{
			name: "policy fails on the token", meta: testMeta(), policy: newDecider(allowed, nil),
			handler: authHandler{login: func(ctx context.Context, c *intercept.Conn) error {
				_, err := c.Identify(ctx, newDecider(policy.Decision{}, errors.New("engine exploded")), &policy.OIDC{Subject: "x"})
				return err
			}},
			want: map[string]int{"connection orders-db/tcp error": 1, "active orders-db/tcp": 0},
		},
		{
			name: "token admits where the kernel identity was denied", meta: testMeta(),
			policy: newDecider(policy.Decision{Result: policy.Deny, Reason: "no"}, nil),
			handler: authHandler{login: func(ctx context.Context, c *intercept.Conn) error {
				c.Identify(ctx, newDecider(allowed, nil), &policy.OIDC{Subject: "alice"})
				c.Open()
				return nil
			}},
			want: map[string]int{"connection orders-db/tcp allowed": 1, "active orders-db/tcp": 0},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newTally()
			ts := startServerWith(t, serverOptions{policy: tc.policy, metrics: m}, newResolver(tc.meta, tc.resolve),
				map[string]intercept.Handler{"tcp": tc.handler}, 1)
			expectEOF(t, dial(t, ts.addr))
			ts.stop(t)
			got := m.snapshot()
			for k, v := range got {
				if v == 0 {
					delete(got, k)
				}
			}
			want := maps.Clone(tc.want)
			for k, v := range want {
				if v == 0 {
					delete(want, k)
				}
			}
			if !maps.Equal(got, want) {
				t.Errorf("counted %v, want %v", got, want)
			}
		})
	}
}

// A handler reports to its session's counters; the session counts as
// active while it is served.
func TestMetricsSessionCounters(t *testing.T) {
	m := newTally()
	inside := make(chan int, 1)
	h := intercept.HandlerFunc(func(_ context.Context, c *intercept.Conn) error {
		if !c.Counting() {
			t.Error("a session of a server with metrics is not counting")
		}
		inside <- m.get("active orders-db/tcp")
		c.Metrics().Operations(policy.Allow, 2)
		c.Metrics().Operations(policy.Deny, 1)
		c.Metrics().Masked(3)
		c.Metrics().Added(time.Microsecond)
		_, err := io.Copy(io.Discard, c)
		return err
	})
	ts := startServerWith(t, serverOptions{metrics: m}, newResolver(testMeta(), nil), map[string]intercept.Handler{"tcp": h}, 1)
	c := dial(t, ts.addr)
	if n := <-inside; n != 1 {
		t.Errorf("active sessions while served = %d, want 1", n)
	}
	c.CloseWrite()
	ts.stop(t)
	for k, want := range map[string]int{
		"connection orders-db/tcp allowed":  1,
		"operations orders-db/tcp allow":    2,
		"operations orders-db/tcp deny":     1,
		"masked orders-db/tcp":              3,
		"added orders-db/tcp":               1,
		"active orders-db/tcp":              0,
		"ended twice orders-db/tcp":         0,
		"connection orders-db/tcp rejected": 0,
		"connection orders-db/tcp denied":   0,
		"operations orders-db/tcp review":   0,
		"connection orders-db/tcp error":    0,
	} {
		if got := m.get(k); got != want {
			t.Errorf("%q = %d, want %d", k, got, want)
		}
	}
}

// Without metrics, handlers count to counters that do nothing.
func TestConnMetricsWithoutServerMetrics(t *testing.T) {
	var c intercept.Conn
	if c.Counting() {
		t.Error("a Conn without metrics is counting")
	}
	c.Metrics().Operations(policy.Allow, 1)
	c.Metrics().Masked(1)
	c.Metrics().Added(time.Second)
	c.Metrics().End()

	got := make(chan bool, 1)
	h := intercept.HandlerFunc(func(_ context.Context, c *intercept.Conn) error {
		c.Metrics().Operations(policy.Deny, 1) // must not panic
		got <- !c.Counting()
		return nil
	})
	ts := startServer(t, newResolver(testMeta(), nil), map[string]intercept.Handler{"tcp": h}, 1)
	expectEOF(t, dial(t, ts.addr))
	if !<-got {
		t.Error("a session of a server without metrics is counting")
	}
}
