package approval

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/corral-dev/corral/internal/termsafe"
	"github.com/corral-dev/corral/policy"
)

// Request states.
const (
	Pending   = "pending"
	Approved  = "approved"
	Denied    = "denied"
	Expired   = "expired"
	Cancelled = "cancelled"
)

// States lists every request state.
var States = []string{Pending, Approved, Denied, Expired, Cancelled}

// Grant kinds.
const (
	GrantOnce   = "once"
	GrantWindow = "window"
)

// Request is one access request. Its JSON form is what the admin API
// serves.
type Request struct {
	ID    string `json:"id"`
	State string `json:"state"`

	// Requester is the workload that asked, as the policy saw it.
	Requester policy.Workload `json:"requester"`
	// SessionID is the session the operation waits in.
	SessionID string `json:"session_id,omitempty"`
	Target    string `json:"target"`
	Protocol  string `json:"protocol,omitempty"`
	// Database is the one the session opened (PostgreSQL), if any.
	Database string `json:"database,omitempty"`
	// Kind is the action kind (connect, sql, ...); Operations its
	// operation words; Text the operation as recorded (normalised: no
	// literal values).
	Kind       string   `json:"kind"`
	Operations []string `json:"operations"`
	Text       string   `json:"text,omitempty"`
	// Statement is the operation as the workload sent it, literal values
	// included, for reviewers: a normalised DO $1 or WHERE $1 cannot be
	// judged. Empty when it is Text, or when it holds a password (CREATE
	// or ALTER ROLE). It goes nowhere else: not to webhooks, not to the
	// audit log.
	Statement string `json:"statement,omitempty"`
	// Reason and Rule are the policy's.
	Reason    string   `json:"reason"`
	Rule      string   `json:"rule,omitempty"`
	Reviewers []string `json:"reviewers"`
	Grant     string   `json:"grant"`
	// Window is how long an approved window grant lasts.
	Window Duration `json:"window,omitempty"`
	// Timeout is how long the operation may wait; Expires is when it stops.
	Timeout Duration  `json:"timeout"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// Webhook is notified of the request; it is not shown (a webhook URL
	// is often a secret).
	Webhook string `json:"-"`

	// The decision, once there is one. DecidedBy is empty when no person
	// decided (expired, cancelled).
	Decided        *time.Time `json:"decided,omitempty"`
	DecidedBy      *Approver  `json:"decided_by,omitempty"`
	DecisionReason string     `json:"decision_reason,omitempty"`
	// GrantExpires is when an approved window grant ends.
	GrantExpires *time.Time `json:"grant_expires,omitempty"`
}

// Duration is a time.Duration written as Go writes durations ("5m0s").
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

func (r *Request) clone() *Request {
	c := *r
	c.Operations = slices.Clone(r.Operations)
	c.Reviewers = slices.Clone(r.Reviewers)
	if r.Requester.OIDC != nil {
		o := *r.Requester.OIDC
		o.Groups = slices.Clone(o.Groups)
		c.Requester.OIDC = &o
	}
	if r.DecidedBy != nil {
		a := *r.DecidedBy
		a.Groups = slices.Clone(a.Groups)
		c.DecidedBy = &a
	}
	return &c
}

// identity is the key window grants are held under: the workload facts
// rules can match (policy.IdentityKey), hashed.
func identity(w *policy.Workload) string {
	sum := sha256.Sum256([]byte(policy.IdentityKey(w)))
	return hex.EncodeToString(sum[:])
}

// Summary is the request in one line, for people: what, where, who.
func (r *Request) Summary() string {
	what := r.Text
	if what == "" {
		what = strings.Join(r.Operations, ", ")
	}
	// One line, whole characters: text a workload chose must not start a
	// line that passes for corral's own in a chat, nor end mid-character.
	what = termsafe.Cut(termsafe.Line(what), 200)
	return termsafe.Line(fmt.Sprintf("%s on %s by %s", what, r.Target, Describe(&r.Requester)))
}

// Describe names a workload for people: its token's identity when it
// presented one, then its pod, unit, executable and user.
func Describe(w *policy.Workload) string {
	var parts []string
	if o := w.OIDC; o != nil {
		if o.Email != "" {
			parts = append(parts, o.Email)
		} else {
			parts = append(parts, o.Subject)
		}
	}
	switch {
	case w.Pod.Name != "":
		parts = append(parts, "pod "+w.Pod.Namespace+"/"+w.Pod.Name)
	case w.Unit != "":
		parts = append(parts, w.Unit)
	case w.Exe != "":
		parts = append(parts, w.Exe)
	}
	user := w.User
	if user == "" {
		user = fmt.Sprintf("uid %d", w.UID)
	}
	parts = append(parts, "("+user+")")
	return strings.Join(parts, " ")
}

// Approver is a person deciding a request: a local user over the admin
// socket (identified by the kernel: SO_PEERCRED), or the holder of a
// verified OIDC ID token over HTTPS.
type Approver struct {
	// Name is how the approver is shown: the unix user name, or the
	// token's email (subject when it has none).
	Name string `json:"name"`
	// Via is how the approver authenticated: "unix" or "oidc".
	Via     string   `json:"via"`
	UID     *uint32  `json:"uid,omitempty"`
	Issuer  string   `json:"issuer,omitempty"`
	Subject string   `json:"subject,omitempty"`
	Email   string   `json:"email,omitempty"`
	Groups  []string `json:"groups,omitempty"`
}

// Approver kinds (Approver.Via).
const (
	ViaUnix = "unix"
	ViaOIDC = "oidc"
)

// Holds reports whether a is one of reviewers: group:NAME when a is in
// group NAME, user:NAME when NAME is a's user name, OIDC subject or email.
func (a Approver) Holds(reviewers []string) bool {
	for _, rv := range reviewers {
		kind, name, _ := strings.Cut(rv, ":")
		if name == "" {
			continue
		}
		switch kind {
		case "group":
			if slices.Contains(a.Groups, name) {
				return true
			}
		case "user":
			if name == a.Name || (a.Subject != "" && name == a.Subject) || (a.Email != "" && name == a.Email) {
				return true
			}
		}
	}
	return false
}

// IsRequester reports whether a is the workload that made r: a local
// approver with the workload's uid, or one known by any name the workload
// goes by, in the name space Holds matches reviewers in (an approver's
// user name, OIDC subject or email against the workload's user name, the
// OIDC subject or email it presented, or its pod's service account, a
// Kubernetes user of that name and the subject of its tokens). A person
// who made a request under one name cannot approve it under another.
func (a Approver) IsRequester(r *Request) bool {
	if a.UID != nil && *a.UID == r.Requester.UID {
		return true
	}
	theirs := []string{r.Requester.User}
	if p := r.Requester.Pod; p.ServiceAccount != "" {
		theirs = append(theirs, "system:serviceaccount:"+p.Namespace+":"+p.ServiceAccount)
	}
	if o := r.Requester.OIDC; o != nil {
		theirs = append(theirs, o.Subject, o.Email)
	}
	// Names are compared without case: an email's domain has none, and
	// most providers take its local part without it too, so ALICE and
	// alice from two issuers are counted as one person. This errs on the
	// side of refusing a reviewer.
	for _, name := range []string{a.Name, a.Subject, a.Email} {
		if name == "" {
			continue
		}
		for _, t := range theirs {
			if strings.EqualFold(name, t) {
				return true
			}
		}
	}
	return false
}

// MayView reports whether a may see r: local approvers (who reached the
// admin socket) see every request; others see the requests they may
// decide and the ones they made.
func (a Approver) MayView(r *Request) bool {
	return a.Via == ViaUnix || a.Holds(r.Reviewers) || a.IsRequester(r)
}

// Outcome is how a request ended, for the operation that waited.
type Outcome struct {
	ID    string
	State string
	// By names who decided ("" when nobody did), Reason why.
	By     string
	Reason string
	// Grant is set when the operation was let through by an earlier
	// window grant rather than a decision of its own.
	Grant        bool
	GrantExpires time.Time
	Request      *Request
}

// Approved reports whether the operation may run.
func (o Outcome) Approved() bool { return o.State == Approved }

// Message says how the request ended, in words for the client:
// "request r-… denied by alice: not during business hours".
func (o Outcome) Message() string {
	switch o.State {
	case Approved:
		if o.Grant {
			return fmt.Sprintf("covered by the window grant of request %s (approved by %s, until %s)", o.ID, o.By, o.GrantExpires.UTC().Format(time.RFC3339))
		}
		return fmt.Sprintf("request %s approved by %s", o.ID, o.By)
	case Denied:
		return fmt.Sprintf("request %s denied by %s: %s", o.ID, o.By, o.Reason)
	case Expired:
		return fmt.Sprintf("request %s expired: %s", o.ID, o.Reason)
	case Cancelled:
		return fmt.Sprintf("request %s cancelled: %s", o.ID, o.Reason)
	}
	return fmt.Sprintf("request %s is %s", o.ID, o.State)
}

func outcomeOf(r *Request) Outcome {
	o := Outcome{ID: r.ID, State: r.State, Reason: r.DecisionReason, Request: r}
	if r.DecidedBy != nil {
		o.By = r.DecidedBy.Name
	}
	if r.GrantExpires != nil {
		o.GrantExpires = *r.GrantExpires
	}
	return o
}
