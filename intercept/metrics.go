package intercept

import "time"

// Connection outcomes, as Metrics.Connection counts them.
const (
	// ConnAllowed: the admission allowed the connection and its session
	// started.
	ConnAllowed = "allowed"
	// ConnDenied: the policy did not let the workload connect (or a token
	// it presented at login did not verify).
	ConnDenied = "denied"
	// ConnRejected: closed before it became a session: the kernel had no
	// record of where it was going, or no handler speaks its protocol.
	ConnRejected = "rejected"
	// ConnError: denied because the policy could not be evaluated (fail
	// closed).
	ConnError = "error"
)

// Metrics counts what the server sees of connections, and hands each
// session the counters its handler reports to. Implementations must be
// safe for concurrent use and cheap: they are called on the data path.
// The label values passed are bounded (configured target names, protocol
// names, outcomes): never a statement, a user or a session id.
type Metrics interface {
	// Connection counts one intercepted connection by its outcome
	// (ConnAllowed, ...). target and protocol are "" when the connection's
	// origin is unknown.
	Connection(target, protocol, result string)
	// Session is called when a session starts being served, and returns
	// its counters; the server calls their End when it is over.
	Session(target, protocol string) SessionMetrics
}

// SessionMetrics are the counters of one session, resolved once when it
// starts so that counting an operation costs an atomic add. A handler may
// call them from the goroutines serving the session.
type SessionMetrics interface {
	// Operations counts n operations (statements, commands) with the
	// decision they met: policy.Allow (passed on to the target),
	// policy.Deny (refused, for whatever reason) or policy.Review (held
	// for approval; refused while approvals are not available).
	Operations(decision string, n int)
	// Masked counts n values masked in responses.
	Masked(n int)
	// Added observes the time corral spent on one client message that
	// carries an operation: from the moment it was read from the client to
	// the moment it, or corral's refusal in its place, was queued for the
	// target (parsing, classification, policy, bookkeeping).
	Added(d time.Duration)
	// ApprovalWait observes how long an operation held for review waited
	// for its decision.
	ApprovalWait(d time.Duration)
	// End is called once when the session is over.
	End()
}

// noMetrics counts nothing.
type noMetrics struct{}

func (noMetrics) Operations(string, int)     {}
func (noMetrics) Masked(int)                 {}
func (noMetrics) Added(time.Duration)        {}
func (noMetrics) ApprovalWait(time.Duration) {}
func (noMetrics) End()                       {}

// Metrics returns the counters of the session; they count nothing when the
// server has no Metrics.
func (c *Conn) Metrics() SessionMetrics {
	if c.sm == nil {
		return noMetrics{}
	}
	return c.sm
}

// Counting reports whether the session's counters count: a handler can
// skip work (reading the clock) whose only use is a metric.
func (c *Conn) Counting() bool { return c.sm != nil }

// SetMetrics gives the session its counters. The server does so when the
// session starts; a handler serving a Conn of its own (a test) may too.
func (c *Conn) SetMetrics(m SessionMetrics) { c.sm = m }

// countConnection counts the connection's outcome, once it is known.
func (c *Conn) countConnection(result string) {
	if c.metrics != nil {
		c.metrics.Connection(c.Meta.Target.Name, c.Meta.Target.Protocol, result)
	}
}

// denial is how a denied connection is counted: an engine failure is an
// error, anything else a denial.
func (c *Conn) denial() string {
	if c.policyFailed {
		return ConnError
	}
	return ConnDenied
}

// startSession hands the session its counters (active sessions count from
// here) or, with start false, ends them.
func (s *Server) startSession(c *Conn, start bool) {
	if s.Metrics == nil {
		return
	}
	if start {
		c.sm = s.Metrics.Session(c.Meta.Target.Name, c.Meta.Target.Protocol)
	} else if c.sm != nil {
		// Kept: a late call from the handler counts, and races nothing.
		c.sm.End()
	}
}
