package policy

import (
	"encoding/json"
	"time"
)

// Results a Decision can carry.
const (
	Allow  = "allow"
	Deny   = "deny"
	Review = "review"
)

// Action kinds.
const (
	KindConnect    = "connect"
	KindSQL        = "sql"
	KindSSH        = "ssh"
	KindHTTP       = "http"
	KindKubernetes = "kubernetes"
)

// Input is the one question every handler asks: may this workload do this
// to this target? Its JSON form is what Rego sees as `input` (documented in
// policy/README.md).
type Input struct {
	Workload Workload `json:"workload"`
	Target   Target   `json:"target"`
	Action   Action   `json:"action"`
	// Grants are approvals the requester already holds for this target.
	Grants []Grant `json:"grants,omitempty"`
	// IdentityKey, when set, is IdentityKey(&Workload), computed once by
	// the caller for a session instead of at every decision.
	IdentityKey string `json:"-"`
}

// Workload is who is asking: kernel facts first, an OIDC identity when one
// was presented and verified.
type Workload struct {
	CgroupID    uint64 `json:"cgroup_id"`
	CgroupPath  string `json:"cgroup_path"`
	PID         uint32 `json:"pid"`
	Exe         string `json:"exe"`
	UID         uint32 `json:"uid"`
	User        string `json:"user"`
	Unit        string `json:"unit"`
	Pod         Pod    `json:"pod"`
	ContainerID string `json:"container_id"`
	OIDC        *OIDC  `json:"oidc,omitempty"`
}

// Pod is the Kubernetes pod a workload runs in (empty outside Kubernetes).
type Pod struct {
	UID            string            `json:"uid"`
	Namespace      string            `json:"namespace"`
	Name           string            `json:"name"`
	ServiceAccount string            `json:"service_account"`
	Labels         map[string]string `json:"labels,omitempty"`
	// Container and Image are those of the connecting container, where the
	// pod's status names it.
	Container string `json:"container,omitempty"`
	Image     string `json:"image,omitempty"`
}

// OIDC holds the verified claims of a token the workload presented.
type OIDC struct {
	Issuer  string   `json:"issuer"`
	Subject string   `json:"subject"`
	Email   string   `json:"email,omitempty"`
	Groups  []string `json:"groups,omitempty"`
}

// Target is the protected destination.
type Target struct {
	Name     string `json:"name"`
	Protocol string `json:"protocol"`
	Address  string `json:"address,omitempty"` // the original destination, ip:port
	// Database is the database a PostgreSQL session opened (as the
	// client named it in its startup), for every decision after that.
	Database string `json:"database,omitempty"`
}

// Action is what the workload is doing. Operations are words from the
// shared vocabulary (see Vocabulary); one statement can carry several (a
// CTE that deletes and selects is both delete and select). The
// protocol-specific part gives custom policies the detail.
type Action struct {
	Kind       string      `json:"kind"`
	Operations []string    `json:"operations"`
	SQL        *SQL        `json:"sql,omitempty"`
	SSH        *SSH        `json:"ssh,omitempty"`
	HTTP       *HTTP       `json:"http,omitempty"`
	Kubernetes *Kubernetes `json:"kubernetes,omitempty"`
}

// SQL describes one statement (PostgreSQL, MySQL).
type SQL struct {
	Command     string   `json:"command"` // e.g. SELECT, DROP TABLE
	Tables      []string `json:"tables,omitempty"`
	Functions   []string `json:"functions,omitempty"`
	HasWhere    bool     `json:"has_where"`
	Text        string   `json:"text,omitempty"`
	Fingerprint string   `json:"fingerprint,omitempty"` // same for statements that differ only in literals
}

// SSH describes one SSH request.
type SSH struct {
	Command string   `json:"command,omitempty"`
	Argv    []string `json:"argv,omitempty"`
	// Known counts the words of Argv, from the first, known before the
	// command runs (the rest expand at run time); Appends: it gets more
	// words at run time (xargs). Command patterns that some such command
	// could match apply to it.
	Known       int    `json:"known"`
	Appends     bool   `json:"appends,omitempty"`
	Interactive bool   `json:"interactive"`
	Subsystem   string `json:"subsystem,omitempty"`
	Forward     string `json:"forward,omitempty"` // host:port
	// Env is the name of an environment variable the client asks to set
	// (its value is not put to the policy: it may be a secret).
	Env string `json:"env,omitempty"`
	// User is the login name the client asked for; corral logs in as its
	// credential's user whatever it is.
	User string `json:"user,omitempty"`
	// Via lists the wrappers and interpreters a command was found inside,
	// outermost first ("bash -c", "sudo").
	Via []string `json:"via,omitempty"`
}

// HTTP describes one HTTP request.
type HTTP struct {
	Method string `json:"method"`
	Host   string `json:"host,omitempty"`
	Path   string `json:"path"`
}

// Kubernetes describes one Kubernetes API request.
type Kubernetes struct {
	Verb        string `json:"verb"`
	APIGroup    string `json:"api_group,omitempty"`
	Resource    string `json:"resource"`
	Subresource string `json:"subresource,omitempty"`
	Namespace   string `json:"namespace,omitempty"`
	Name        string `json:"name,omitempty"`
}

// Grant is an approval already given (see DESIGN §7): operations of a kind
// on a target, until Expires.
type Grant struct {
	ID         string    `json:"id"`
	Operations []string  `json:"operations"`
	Expires    time.Time `json:"expires"`
}

// Decision is the answer. Anything but Allow stops the operation; Review
// holds it for a human.
type Decision struct {
	Result    string   `json:"result"`
	Reason    string   `json:"reason"`
	Rule      string   `json:"rule,omitempty"` // the rule that decided, "" when none applied
	Reviewers []string `json:"reviewers,omitempty"`
	// Grant is "once" or "window"; Window is the window's length and
	// Timeout how long the operation may wait for a reviewer.
	Grant   string        `json:"grant,omitempty"`
	Window  time.Duration `json:"window,omitempty"`
	Timeout time.Duration `json:"timeout,omitempty"`
	// Webhook is notified of the approval request a review creates.
	Webhook    string `json:"webhook,omitempty"`
	Mask       []Mask `json:"mask,omitempty"`
	Credential string `json:"credential,omitempty"`
	Record     bool   `json:"record"`
	// PolicyVersion identifies the policy that decided, so a handler that
	// decided once (a prepared statement) knows when to decide again.
	PolicyVersion uint64 `json:"policy_version"`
}

// Mask is one masking instruction.
type Mask struct {
	Columns []string `json:"columns,omitempty" yaml:"columns"` // schema.table.column or table.column
	Detect  []string `json:"detect,omitempty" yaml:"detect"`   // value detectors: credit_card, email, ...
	Method  string   `json:"method" yaml:"method"`             // redact, partial, hash, null
	// Filters says how statements may filter, sort or group by the
	// columns: "any" (the default, also ""), "equality" (only compared
	// whole with values the statement gives: col = $1, col IN (...)), or
	// "none". A filter is an oracle: WHERE email LIKE 'a%' tells a
	// character of every masked value.
	Filters string `json:"filters,omitempty" yaml:"filters"`
}

// MarshalJSON writes the durations as Go duration strings ("5m0s").
func (d Decision) MarshalJSON() ([]byte, error) {
	type plain Decision
	out := struct {
		plain
		Window  string `json:"window,omitempty"`
		Timeout string `json:"timeout,omitempty"`
	}{plain: plain(d)}
	if d.Window > 0 {
		out.Window = d.Window.String()
	}
	if d.Timeout > 0 {
		out.Timeout = d.Timeout.String()
	}
	return json.Marshal(out)
}

// Allowed reports whether the operation may proceed now.
func (d Decision) Allowed() bool { return d.Result == Allow }
