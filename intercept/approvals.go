package intercept

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/corral-dev/corral/policy"
	"github.com/corral-dev/corral/policy/approval"
	"github.com/corral-dev/corral/recorder"
)

// Approvals holds the operations the policy sent to review until a person
// decides (approval.Broker). Every protocol handler goes through it the
// same way: Conn.Review, then Review.Wait.
type Approvals interface {
	// Request makes an access request, or returns the approved request
	// whose window grant already covers the operation.
	Request(ctx context.Context, r approval.Request) (*approval.Request, error)
	// Wait blocks until the request is decided or expires; when ctx ends
	// first the request is cancelled, with context.Cause(ctx) as reason.
	Wait(ctx context.Context, id string) (approval.Outcome, error)
	// Cancel cancels a pending request whose operation will not run.
	Cancel(id, reason string)
}

// ApprovalInfo describes one step of an access request (approval events).
type ApprovalInfo struct {
	Request string `json:"request"`
	// Step is requested, approved, denied, expired, cancelled, or covered
	// (an operation ran under the request's window grant).
	Step       string   `json:"step"`
	Kind       string   `json:"kind,omitempty"`
	Operations []string `json:"operations,omitempty"`
	Text       string   `json:"text,omitempty"`
	// Reason and Rule are the policy's; Reviewers who may decide.
	Reason    string    `json:"reason,omitempty"`
	Rule      string    `json:"rule,omitempty"`
	Reviewers []string  `json:"reviewers,omitempty"`
	Grant     string    `json:"grant,omitempty"`
	Expires   time.Time `json:"expires"`
	// The decision: who (and how they authenticated: unix, oidc), why.
	DecidedBy      string     `json:"decided_by,omitempty"`
	Via            string     `json:"via,omitempty"`
	DecisionReason string     `json:"decision_reason,omitempty"`
	GrantExpires   *time.Time `json:"grant_expires,omitempty"`
}

// errClientGone is why a request is cancelled when its client hangs up.
var errClientGone = errors.New("the client disconnected while the operation waited")

// Review is an operation held for approval.
type Review struct {
	c       *Conn
	req     *approval.Request // nil when no request could be made
	refusal string
	err     error
	outcome approval.Outcome
	// decision and action: what was put to review, and why, to be
	// decided again once approved (see recheck).
	decision policy.Decision
	action   policy.Action
	// Redecide, when a handler sets it before Wait, decides the operation
	// again in place of the action alone (an SSH command line is decided
	// command by command).
	Redecide func(ctx context.Context) policy.Decision
}

// Review asks for approval of an operation the policy sent to review with
// d: a is the action put to the policy (decided again once approved),
// text the operation as recorded (normalised), statement as the workload
// sent it, for reviewers ("" when it is text, or must not be shown). The
// request exists when Review returns (or the earlier window grant that
// covers the operation: Covered); when none could be made, Refusal says
// why the operation may not run, fit for the client, and Err what went
// wrong, for the log. A Review that is not waited for must be abandoned.
func (c *Conn) Review(ctx context.Context, d policy.Decision, a policy.Action, text, statement string) *Review {
	r := &Review{c: c, decision: d, action: a}
	if c.Approvals == nil {
		r.refusal = d.Reason + " (approvals are not configured on this agent: denied)"
		return r
	}
	req, err := c.Approvals.Request(ctx, approval.Request{
		Requester: c.input.Workload, SessionID: c.SessionID,
		Target: c.Meta.Target.Name, Protocol: c.Meta.Target.Protocol, Database: c.database,
		Kind: a.Kind, Operations: a.Operations, Text: text, Statement: statement,
		Reason: d.Reason, Rule: d.Rule, Reviewers: d.Reviewers,
		Grant: d.Grant, Window: approval.Duration(d.Window), Timeout: approval.Duration(d.Timeout), Webhook: d.Webhook,
	})
	if err != nil {
		r.err = err
		r.refusal = d.Reason + " (corral could not make an approval request: denied)"
		return r
	}
	r.req = req
	return r
}

// ID is the request's id ("" when none was made, or r is nil).
func (r *Review) ID() string {
	if r == nil || r.req == nil {
		return ""
	}
	return r.req.ID
}

// Reviewers are who may decide the request.
func (r *Review) Reviewers() []string {
	if r.req == nil {
		return nil
	}
	return r.req.Reviewers
}

// Covered reports whether an earlier window grant lets the operation run
// without waiting.
func (r *Review) Covered() bool { return r.req != nil && r.req.State == approval.Approved }

// Refusal is why no request could be made ("" when one was).
func (r *Review) Refusal() string { return r.refusal }

// Err is what went wrong making the request, for the log.
func (r *Review) Err() error { return r.err }

// Outcome is how the request ended, once Wait returned.
func (r *Review) Outcome() approval.Outcome { return r.outcome }

// Abandon cancels the request of an operation that will not run after
// all (its statement could not be recorded, say).
func (r *Review) Abandon(reason string) {
	if r.req != nil && r.req.State == approval.Pending && r.c.Approvals != nil {
		r.c.Approvals.Cancel(r.req.ID, reason)
	}
}

// Wait holds the operation until its request is decided, expires, or the
// client hangs up (which cancels it), and records each step in the
// session. announce, when given, is called once the operation waits, so
// the protocol can tell its client; an error from it (the client cannot
// be written to) cancels the request. Wait returns "" when the operation
// may run, or why it may not, fit for the client: "request r-… denied by
// alice: not during business hours".
func (r *Review) Wait(ctx context.Context, announce func() error) string {
	if r.refusal != "" {
		return r.refusal
	}
	c, id, started := r.c, r.req.ID, time.Now()
	if r.Covered() {
		o, err := c.Approvals.Wait(ctx, id)
		if err != nil {
			r.err = err
			return fmt.Sprintf("corral could not check the grant of request %s: denied", id)
		}
		r.outcome = o
		if err := c.Approval(recorder.Approval{Request: id, State: o.State, Reviewer: o.By, Reason: o.Message()}); err != nil {
			return err.Error()
		}
		if !o.Approved() {
			return o.Message()
		}
		return ""
	}
	if err := c.Approval(recorder.Approval{Request: id, State: approval.Pending}); err != nil {
		r.Abandon("the session could not record the request")
		return err.Error()
	}
	if announce != nil {
		if err := announce(); err != nil {
			r.Abandon(errClientGone.Error())
			return fmt.Sprintf("request %s cancelled: %s", id, errClientGone)
		}
	}
	// The wait ends early for two reasons: the client hangs up (the
	// request is cancelled), or the server stops (it stays pending, and
	// the next agent settles it).
	wctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stopping := context.AfterFunc(ctx, func() { cancel(approval.ErrClosed) })
	var stop func()
	if c.Hangup != nil {
		stop = watchClosed(c.Hangup, func() { cancel(errClientGone) })
	} else {
		stop = watchHangup(c.Conn, func() { cancel(errClientGone) })
	}
	o, err := c.Approvals.Wait(wctx, id)
	stop()
	stopping()
	cancel(nil)
	if err != nil {
		r.err = err
		if errors.Is(err, approval.ErrClosed) {
			return fmt.Sprintf("the agent is stopping: request %s was not decided, and the operation did not run", id)
		}
		return fmt.Sprintf("corral could not wait for request %s: denied", id)
	}
	r.outcome = o
	waited := time.Since(started)
	c.Metrics().ApprovalWait(waited)
	rec := recorder.Approval{Request: id, State: o.State, Reviewer: o.By, Reason: o.Reason, WaitMS: float64(waited.Microseconds()) / 1000}
	if err := c.Approval(rec); err != nil && o.Approved() {
		// Strict recording: what cannot be recorded does not run.
		return err.Error()
	}
	if !o.Approved() {
		return o.Message()
	}
	return r.recheck(ctx)
}

// recheck decides the operation again once it is approved: the policy
// may have been reloaded while it waited, and a person's approval is of
// the operation under the terms it was held on. Run only if the policy
// still holds it on the same terms (rule, reviewers, grant, masks,
// credential); a policy that now denies it, holds it for other reviewers,
// or masks more, refuses it, and the client may send it again.
func (r *Review) recheck(ctx context.Context) string {
	c := r.c
	var d policy.Decision
	switch {
	case r.Redecide != nil:
		d = r.Redecide(ctx)
	case c.policy == nil:
		return "" // no engine to have been reloaded (tests)
	default:
		var err error
		if d, err = c.policy.Decide(ctx, c.Input(r.action)); err != nil {
			return fmt.Sprintf("request %s was approved, but the policy could not be evaluated again: denied", r.req.ID)
		}
	}
	if sameTerms(d, r.decision) {
		return ""
	}
	now := "holds it on other terms"
	switch d.Result {
	case policy.Deny:
		now = "denies it: " + d.Reason
	case policy.Allow:
		now = "allows it on other terms"
	}
	return fmt.Sprintf("request %s was approved, but the policy changed while it waited and now %s; the operation did not run (send it again)", r.req.ID, now)
}

// sameTerms reports whether two decisions hold an operation on the same
// terms: what a reviewer approved under one still stands under the other.
func sameTerms(a, b policy.Decision) bool {
	return a.Result == b.Result && a.Rule == b.Rule && a.Grant == b.Grant && a.Window == b.Window &&
		a.Credential == b.Credential && a.Record == b.Record &&
		slices.Equal(sorted(a.Reviewers), sorted(b.Reviewers)) && reflect.DeepEqual(a.Mask, b.Mask)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// SettleAdmission holds a connection whose admission the policy sent to
// review until a person decides. Approved, the connection is let in
// (with the decision's credential and masks); otherwise the admission is
// a deny naming the request and who decided. Any other admission is left
// as it is. The server settles the admission of connections; an
// Authenticator calls this once the client's identity is settled.
func (c *Conn) SettleAdmission(ctx context.Context) {
	d := c.Admission
	if d.Result != policy.Review {
		return
	}
	a := policy.Action{Kind: policy.KindConnect, Operations: []string{"connect"}}
	rv := c.Review(ctx, d, a, "connect to "+c.Meta.Target.Name, "")
	if reason := rv.Wait(ctx, nil); reason != "" {
		c.Admission = policy.Decision{Result: policy.Deny, Reason: reason, Rule: d.Rule, Record: true, PolicyVersion: d.PolicyVersion}
		return
	}
	d.Result, d.Reason = policy.Allow, rv.Outcome().Message()
	c.Admission = d
}

// watchClosed calls gone when ch is closed, until stop is called.
func watchClosed(ch <-chan struct{}, gone func()) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-ch:
			gone()
		case <-quit:
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}
