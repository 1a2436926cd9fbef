package intercept

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/corral-dev/corral/recorder"
)

// Recorder starts the recording of a session (recorder.Recorder).
type Recorder interface {
	Start(h recorder.Header, started time.Time, mode recorder.Mode, cut func()) (*recorder.Session, error)
}

// startRecording writes the session's header. In strict mode an error
// means the session must not start.
func (c *Conn) startRecording() error {
	if c.recorder == nil || c.recMode == recorder.Off || c.recMode == "" {
		return nil
	}
	w, _ := json.Marshal(&c.Meta.Workload)
	a := c.Admission
	h := recorder.Header{
		SessionID: c.SessionID, Target: c.Meta.Target.Name, Protocol: c.Meta.Target.Protocol,
		Client: c.Client.String(), OrigDst: c.Meta.OrigDst.String(), Database: c.database, Workload: w,
		Decision: a.Result, Rule: a.Rule, Reason: a.Reason, PolicyVersion: a.PolicyVersion, Credential: a.Credential,
	}
	rec, err := c.recorder.Start(h, c.Started, c.recMode, func() { c.Conn.Close() })
	if err != nil {
		if c.recMode == recorder.Strict {
			return err
		}
		return nil // best effort: logged and counted by the recorder
	}
	c.rec = rec
	return nil
}

// Recording reports whether operations of this session are recorded.
func (c *Conn) Recording() bool { return c.rec != nil }

// Emit audits and records one operation of this session. In strict mode
// an error means it could not be recorded, and must not go ahead; seq
// numbers the record, for the result that follows.
func (c *Conn) Emit(e Event) (seq uint64, err error) {
	if c.auditor != nil {
		full := c.event(e.Event, time.Now(), nil)
		full.Statement = e.Statement
		full.Workload = nil // on open and close; statements refer to them by session id
		c.auditor.Audit(full)
	}
	if c.rec == nil || e.Statement == nil {
		return 0, nil
	}
	st := e.Statement
	seq, err = c.rec.Record(recorder.Record{Type: recorder.TypeStatement, Statement: &recorder.Statement{
		Text: st.Text, Operations: st.Operations, Decision: st.Decision, Reason: st.Reason, Rule: st.Rule, PolicyVersion: st.PolicyVersion,
		Request: st.Request,
	}})
	if err != nil {
		return 0, fmt.Errorf("corral cannot record this session: %w", err)
	}
	return seq, nil
}

// Result records the response to an operation recorded with Emit.
func (c *Conn) Result(r recorder.Result) error {
	if c.rec == nil {
		return nil
	}
	_, err := c.rec.Record(recorder.Record{Type: recorder.TypeResult, Result: &r})
	return err
}

// Approval records a step of the review of an operation (see Review). In
// strict mode an error means it could not be recorded.
func (c *Conn) Approval(a recorder.Approval) error {
	if c.rec == nil {
		return nil
	}
	if _, err := c.rec.Record(recorder.Record{Type: recorder.TypeApproval, Approval: &a}); err != nil {
		return fmt.Errorf("corral cannot record this session: %w", err)
	}
	return nil
}

// endRecording seals the recording.
func (c *Conn) endRecording(at time.Time, err error) {
	if c.rec == nil {
		return
	}
	e := recorder.End{BytesUp: c.BytesUp(), BytesDown: c.BytesDown(), DurationMS: float64(at.Sub(c.Started).Microseconds()) / 1000, Reason: "closed"}
	if err != nil {
		e.Error = err.Error()
	}
	c.rec.End(e)
}

// Terminal starts a terminal recording of this session, timed from start;
// nil, nil when the session is not recorded. In strict mode an error
// means the terminal must not be served.
func (c *Conn) Terminal(h recorder.CastHeader, start time.Time) (*recorder.Cast, error) {
	if c.rec == nil {
		return nil, nil
	}
	cast, err := c.rec.Terminal(h, start)
	if err != nil && c.recMode == recorder.Strict {
		return nil, fmt.Errorf("corral cannot record this session: %w", err)
	}
	return cast, nil
}

// EndTerminal records the result of what a terminal served, with the
// seal of its recording t (see recorder.Session.EndTerminal); with no
// terminal recording it records the result alone.
func (c *Conn) EndTerminal(t *recorder.Cast, r recorder.Result) error {
	if c.rec == nil {
		return nil
	}
	if t == nil {
		return c.Result(r)
	}
	return c.rec.EndTerminal(t, r)
}

// RecordingStrict reports whether a failure to record must stop the
// session.
func (c *Conn) RecordingStrict() bool { return c.rec != nil && c.recMode == recorder.Strict }
