package postgres

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/internal/termsafe"
	"github.com/corral-dev/corral/policy"
)

// A statement the policy sends to review waits in decide, on the
// client-to-server goroutine, while the server-to-client one goes on
// passing whatever the server still sends: the client is told with a
// NoticeResponse (which PostgreSQL may send at any time) that its
// statement waits, the connection stays open, and the statement runs once
// approved, with the masks of the decision that sent it to review. A
// statement that is only prepared (Parse) is not held: it runs nothing,
// and each execution (Bind) is reviewed.

// requestApproval makes the access request of a statement sent to review.
// The reason is non-empty when none could be made: the statement is then
// refused with it.
func (s *session) requestApproval(d policy.Decision, a policy.Action, text string, st *Statement) (*intercept.Review, string) {
	rv := s.c.Review(s.ctx, d, a, text, forReviewers(st, text, s.bound))
	rv.Redecide = func(ctx context.Context) policy.Decision {
		d, err := s.h.Policy.Decide(ctx, s.c.Input(a))
		if err != nil {
			return policy.Decision{Result: policy.Deny, Reason: "the policy could not be evaluated", PolicyVersion: d.PolicyVersion}
		}
		return d
	}
	if err := rv.Err(); err != nil {
		s.h.Log.Error("approval request failed; statement denied", "session_id", s.c.SessionID, "err", err)
	}
	return rv, rv.Refusal()
}

// maxStatementShown bounds the statement a request carries for reviewers.
const maxStatementShown = 16 << 10

// forReviewers is a statement as the workload sent it, for the reviewers
// of its request: normalised, DO $1 or WHERE $1 says too little to judge.
// But for a password (CREATE or ALTER ROLE, a user mapping's options, a
// connection string), which no reviewer need see and the request store
// would keep: a statement about roles or users, or that says password
// anywhere, is shown normalised only.
// A prepared statement's Bind carries its values apart (bound): they
// follow it, one line each, as `-- $1 = '...'`, and a value that says
// password withholds the statement as the text does.
func forReviewers(st *Statement, text string, bound *pgproto3.Bind) string {
	if strings.Contains(st.Command, "ROLE") || strings.Contains(st.Command, "USER") || strings.Contains(st.Command, "GROUP") ||
		strings.Contains(strings.ToLower(st.Text), "password") {
		return ""
	}
	shown := st.Text
	if bound != nil && len(bound.Parameters) > 0 {
		var b strings.Builder
		b.WriteString(termsafe.Cut(shown, maxStatementShown/2))
		for i, v := range bound.Parameters {
			if bytes.Contains(bytes.ToLower(v[:min(len(v), maxValueShown)]), []byte("password")) {
				return "" // what is shown of it says password
			}
			if b.Len() >= maxStatementShown {
				fmt.Fprintf(&b, "\n-- (%d more values not shown)", len(bound.Parameters)-i)
				break
			}
			fmt.Fprintf(&b, "\n-- $%d = %s", i+1, boundValue(bound, i, v))
		}
		return b.String()
	}
	if shown == text {
		return "" // the normalised text says as much
	}
	return termsafe.Cut(shown, maxStatementShown)
}

// maxValueShown bounds each value a reviewer is shown of a Bind.
const maxValueShown = 1 << 10

// boundValue is the i-th value of a Bind as a reviewer reads it, on one
// line: a text value as an SQL literal (E'...' when it holds a control
// character or a backslash, so that a newline in it cannot write a line
// of its own), its first KiB only; a binary one by its size.
func boundValue(b *pgproto3.Bind, i int, v []byte) string {
	format := int16(0)
	switch {
	case len(b.ParameterFormatCodes) == 1:
		format = b.ParameterFormatCodes[0]
	case i < len(b.ParameterFormatCodes):
		format = b.ParameterFormatCodes[i]
	}
	switch {
	case v == nil:
		return "NULL"
	case format != 0:
		return fmt.Sprintf("(%d bytes, binary)", len(v))
	}
	more := ""
	if len(v) > maxValueShown {
		more = fmt.Sprintf(" (%d bytes in all)", len(v))
		v = v[:maxValueShown]
	}
	var q strings.Builder
	escaped := false
	for _, r := range string(v) {
		switch {
		case r == '\'':
			q.WriteString("''")
		case r == '\\':
			q.WriteString(`\\`)
			escaped = true
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&q, `\x%02x`, r)
			escaped = true
		default:
			q.WriteRune(r)
		}
	}
	if escaped {
		return "E'" + q.String() + "'" + more
	}
	return "'" + q.String() + "'" + more
}

// awaitApproval holds a reviewed statement until its request is decided
// and returns "" when it may run, or why it may not. reason and emitErr
// are what became of the statement before: a statement already refused,
// or whose decision could not be recorded, does not wait, and its request
// is cancelled.
func (s *session) awaitApproval(rv *intercept.Review, reason string, emitErr error) string {
	switch {
	case rv.Refusal() != "":
		return reason
	case reason != "":
		rv.Abandon("the statement was refused: " + reason)
		return reason
	case emitErr != nil:
		rv.Abandon("the statement could not be recorded")
		return ""
	}
	if rv.Covered() {
		s.h.Log.Debug("statement covered by a window grant", "session_id", s.c.SessionID, "request", rv.ID())
	}
	reason = rv.Wait(s.ctx, func() error {
		return s.notice(fmt.Sprintf("corral: waiting for approval %s (reviewers: %s)", rv.ID(), strings.Join(rv.Reviewers(), ", ")),
			fmt.Sprintf("A reviewer decides with: corral approve %s, or corral deny %s --reason REASON.", rv.ID(), rv.ID()))
	})
	if err := rv.Err(); err != nil {
		s.h.Log.Warn("approval wait failed; statement not run", "session_id", s.c.SessionID, "request", rv.ID(), "err", err)
	}
	if reason == "" {
		s.h.Log.Debug("statement approved", "session_id", s.c.SessionID, "request", rv.ID())
	}
	return reason
}

// notice sends the client a NoticeResponse at once: the client waits for
// an answer, so it must not sit in the buffer.
func (s *session) notice(msg, detail string) error {
	b, err := (&pgproto3.NoticeResponse{Severity: "NOTICE", SeverityUnlocalized: "NOTICE", Code: "00000", Message: msg, Detail: detail}).Encode(nil)
	if err != nil {
		return err
	}
	s.cliMu.Lock()
	defer s.cliMu.Unlock()
	if _, err := s.cliW.Write(b); err != nil {
		return err
	}
	return s.cliW.Flush()
}
