package postgres

import (
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/corral-dev/corral/policy"
)

// What a session counts (intercept.SessionMetrics):
//
//   - operations, by the outcome of each attempt to run one: every
//     statement of a simple query (all allowed, or the one refused), every
//     Bind of a prepared statement (it is decided again there), a Parse
//     only when it is refused (an allowed one is counted at its Binds, a
//     refused one never runs), every fast-path function call;
//   - masked values, as rows are rewritten;
//   - the time corral adds to each request: a simple query, a function
//     call, or an extended-protocol batch up to its Sync or Flush, summed
//     over its messages from the moment each was read to the moment it was
//     queued for the server.

// countOps counts the outcome of a request that carried n statements:
// all of them allowed when reason is "", else the one refused.
func (s *session) countOps(reason string, n int) {
	m := s.c.Metrics()
	switch {
	case reason == "":
		if n > 0 {
			m.Operations(policy.Allow, n)
		}
	case s.reviewed:
		m.Operations(policy.Review, 1)
	default:
		m.Operations(policy.Deny, 1)
	}
	s.reviewed = false
}

// countParse counts a Parse: only a refusal; an allowed statement counts
// at each Bind that runs it.
func (s *session) countParse(reason string) {
	if reason != "" {
		s.countOps(reason, 1)
	}
}

// countBind counts a Bind, unless its statement was refused at Parse
// (counted there: it never ran).
func (s *session) countBind(p *prepared, reason string) {
	if p != nil && p.denied != "" {
		return
	}
	n := 0
	if p != nil {
		n = len(p.stmt)
	}
	s.countOps(reason, n)
}

// clock starts timing a client message, unless it is data (COPY) or the
// end of the session, or nothing is counted.
func (s *session) clock(msg pgproto3.FrontendMessage) time.Time {
	if !s.c.Counting() {
		return time.Time{}
	}
	switch msg.(type) {
	case *pgproto3.CopyData, *pgproto3.CopyDone, *pgproto3.CopyFail, *pgproto3.Terminate:
		return time.Time{}
	}
	return time.Now()
}

// added adds the time spent on msg, handled since start, to the request it
// belongs to, and observes the request's total once it is passed on.
func (s *session) added(msg pgproto3.FrontendMessage, start time.Time) {
	if start.IsZero() {
		return
	}
	s.spent += time.Since(start)
	end := false
	switch msg.(type) {
	case *pgproto3.Parse, *pgproto3.Bind, *pgproto3.Execute:
		s.spentOps = true
	case *pgproto3.Query, *pgproto3.FunctionCall:
		s.spentOps, end = true, true
	case *pgproto3.Sync, *pgproto3.Flush:
		end = true
	}
	if end {
		if s.spentOps {
			s.c.Metrics().Added(s.spent)
		}
		s.spent, s.spentOps = 0, false
	}
}
