package intercept

import (
	"time"
)

// Event kinds in the audit log.
const (
	EventOpen   = "open"   // a session started
	EventClose  = "close"  // a session ended
	EventReject = "reject" // a connection was closed before it became a session
	EventDeny   = "deny"   // the policy did not let the workload connect
	// EventStatement is one operation inside a session (a SQL statement)
	// and the decision on it.
	EventStatement = "statement"
	// EventApproval is a step of an access request (see Approvals).
	EventApproval = "approval"
)

// StatementInfo describes one operation of a session and its decision.
// Text is normalised (literals replaced by $n): values never reach the log.
type StatementInfo struct {
	Text          string   `json:"text"`
	Operations    []string `json:"operations"`
	Decision      string   `json:"decision"`
	Reason        string   `json:"reason,omitempty"`
	Rule          string   `json:"rule,omitempty"`
	PolicyVersion uint64   `json:"policy_version,omitempty"`
	// Request is the access request of a reviewed operation.
	Request string `json:"request,omitempty"`
}

// Event is one line of the audit log. The JSON names are a contract that
// tooling reads; add fields, never rename or remove them.
type Event struct {
	Time      time.Time `json:"time"`
	Event     string    `json:"event"`
	SessionID string    `json:"session_id"`
	Target    string    `json:"target"`
	Protocol  string    `json:"protocol"`
	OrigDst   string    `json:"orig_dst"`
	Client    string    `json:"client"`
	// Database is the database a PostgreSQL session opened.
	Database   string    `json:"database,omitempty"`
	Workload   *Identity `json:"workload,omitempty"`
	BytesUp    uint64    `json:"bytes_up"`
	BytesDown  uint64    `json:"bytes_down"`
	DurationMS *float64  `json:"duration_ms,omitempty"`
	Error      string    `json:"error,omitempty"`
	// The admission decision (open and deny events).
	Decision      string `json:"decision,omitempty"`
	Reason        string `json:"reason,omitempty"`
	Rule          string `json:"rule,omitempty"`
	PolicyVersion uint64 `json:"policy_version,omitempty"`
	// The operation (statement events).
	Statement *StatementInfo `json:"statement,omitempty"`
	// The access request step (approval events).
	Approval *ApprovalInfo `json:"approval,omitempty"`
}

func (c *Conn) event(kind string, at time.Time, err error) Event {
	w := c.Meta.Workload
	e := Event{
		Time:      at,
		Event:     kind,
		SessionID: c.SessionID,
		Target:    c.Meta.Target.Name,
		Protocol:  c.Meta.Target.Protocol,
		OrigDst:   c.input.Target.Address,
		Client:    c.client,
		Database:  c.database,
		Workload:  &w,
		BytesUp:   c.BytesUp(),
		BytesDown: c.BytesDown(),
	}
	if e.OrigDst == "" || e.Client == "" {
		e.OrigDst, e.Client = c.Meta.OrigDst.String(), c.Client.String()
	}
	if kind == EventOpen || kind == EventDeny {
		a := c.Admission
		e.Decision, e.Reason, e.Rule, e.PolicyVersion = a.Result, a.Reason, a.Rule, a.PolicyVersion
	}
	if kind == EventClose {
		ms := float64(at.Sub(c.Started).Microseconds()) / 1000
		e.DurationMS = &ms
	}
	if err != nil {
		e.Error = err.Error()
	}
	return e
}
