package postgres

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/corral-dev/corral/policy"
)

// sessionTally counts what a session reports.
type sessionTally struct {
	mu     sync.Mutex
	ops    map[string]int
	masked int
	added  []time.Duration
}

func (m *sessionTally) Operations(decision string, n int) {
	m.mu.Lock()
	m.ops[decision] += n
	m.mu.Unlock()
}

func (m *sessionTally) Masked(n int) {
	m.mu.Lock()
	m.masked += n
	m.mu.Unlock()
}

func (m *sessionTally) Added(d time.Duration) {
	m.mu.Lock()
	m.added = append(m.added, d)
	m.mu.Unlock()
}

func (m *sessionTally) End()                       {}
func (m *sessionTally) ApprovalWait(time.Duration) {}

func (m *sessionTally) get() (ops map[string]int, masked, added int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return map[string]int{policy.Allow: m.ops[policy.Allow], policy.Deny: m.ops[policy.Deny], policy.Review: m.ops[policy.Review]}, m.masked, len(m.added)
}

// reviewingPolicy is maskingPolicy that also holds DELETE for review and
// refuses fast-path function calls.
func reviewingPolicy(in policy.Input) policy.Decision {
	switch {
	case slices.Contains(in.Action.Operations, "delete"):
		return policy.Decision{Result: policy.Review, Reason: "deletes need a DBA"}
	case slices.Contains(in.Action.Operations, "function"):
		return policy.Decision{Result: policy.Deny, Reason: "no functions"}
	}
	return maskingPolicy(customersMasks)(in)
}

// Every attempt to run an operation is counted once with its outcome,
// masked values as they are replaced, and corral's time once per request.
func TestSessionMetrics(t *testing.T) {
	ts := newTestSession(t, stubDecider(reviewingPolicy), policy.Decision{Result: policy.Allow, Mask: customersMasks})
	m := &sessionTally{ops: map[string]int{}}
	ts.s.c.SetMetrics(m)
	server := ts.fakeServer()
	done := ts.run()

	step := func(name string, wantOps map[string]int, wantMasked, wantAdded int, msgs ...pgproto3.FrontendMessage) {
		t.Helper()
		ts.exchange(t, msgs...)
		ops, masked, added := m.get()
		for _, d := range []string{policy.Allow, policy.Deny, policy.Review} {
			if ops[d] != wantOps[d] {
				t.Errorf("after %s: %s operations = %d, want %d", name, d, ops[d], wantOps[d])
			}
		}
		if masked != wantMasked {
			t.Errorf("after %s: masked = %d, want %d", name, masked, wantMasked)
		}
		if added != wantAdded {
			t.Errorf("after %s: requests timed = %d, want %d", name, added, wantAdded)
		}
	}
	step("an allowed query with a masked column", map[string]int{"allow": 1}, 1, 1,
		&pgproto3.Query{String: "SELECT id, email FROM customers"})
	// The whole query is refused: the SELECT before the DROP never runs.
	step("a multi-statement query with a denied statement", map[string]int{"allow": 1, "deny": 1}, 1, 2,
		&pgproto3.Query{String: "SELECT 1; DROP TABLE customers"})
	step("a statement held for review", map[string]int{"allow": 1, "deny": 1, "review": 1}, 1, 3,
		&pgproto3.Query{String: "DELETE FROM customers"})
	step("an empty query", map[string]int{"allow": 1, "deny": 1, "review": 1}, 1, 4,
		&pgproto3.Query{String: ""})
	// Parse, Bind, Execute, Sync is one request; the statement counts at
	// its Bind, where it runs.
	step("a prepared statement", map[string]int{"allow": 2, "deny": 1, "review": 1}, 2, 5,
		&pgproto3.Parse{Name: "s1", Query: "SELECT id, email FROM customers"},
		&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	step("the prepared statement again", map[string]int{"allow": 3, "deny": 1, "review": 1}, 3, 6,
		&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	// Refused at Parse, it counts once: its Bind does not run it either.
	step("a statement refused at Parse", map[string]int{"allow": 3, "deny": 2, "review": 1}, 3, 7,
		&pgproto3.Parse{Name: "d", Query: "DROP TABLE customers"},
		&pgproto3.Bind{PreparedStatement: "d"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	step("a Bind of a statement never prepared", map[string]int{"allow": 3, "deny": 3, "review": 1}, 3, 8,
		&pgproto3.Bind{PreparedStatement: "elsewhere"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	// Preparing a reviewed statement runs nothing and is not held: it
	// counts when a Bind executes it.
	step("a review at Parse", map[string]int{"allow": 3, "deny": 3, "review": 1}, 3, 9,
		&pgproto3.Parse{Name: "r", Query: "DELETE FROM customers WHERE id = $1"}, &pgproto3.Sync{})
	step("a denied function call", map[string]int{"allow": 3, "deny": 4, "review": 1}, 3, 10,
		&pgproto3.FunctionCall{Function: 1234})
	// A Sync alone carries no operation: nothing to time.
	step("a lone Sync", map[string]int{"allow": 3, "deny": 4, "review": 1}, 3, 10,
		&pgproto3.Sync{})
	ts.finish(t, done, server)
	for _, d := range m.added {
		if d <= 0 || d > time.Minute {
			t.Errorf("added time %v", d)
		}
	}
}
