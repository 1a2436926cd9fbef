package policy

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gobwas/glob"
	"gopkg.in/yaml.v3"
)

// Rule is one declarative rule: who, on which targets, may do what. The
// same schema is the `rules` of the configuration file and, on Kubernetes,
// an AccessRule resource.
type Rule struct {
	Name       string     `yaml:"name" json:"name"`
	Who        Who        `yaml:"who" json:"who"`
	Targets    StringList `yaml:"targets" json:"targets"`
	Allow      StringList `yaml:"allow" json:"allow"`
	Review     *ReviewSet `yaml:"review" json:"review,omitempty"`
	Deny       StringList `yaml:"deny" json:"deny"`
	Mask       []Mask     `yaml:"mask" json:"mask,omitempty"`
	Credential string     `yaml:"credential" json:"credential,omitempty"`
	// Commands refine what the rule says of SSH exec, command by command.
	Commands *CommandSet `yaml:"commands" json:"commands,omitempty"`
	// Cluster marks a rule from the cluster (an AccessRule), which the
	// users of a namespace may write: where a rule of the configuration
	// file holds an operation for review, the reviewers a cluster rule
	// names do not join its reviewers.
	Cluster bool `yaml:"-" json:"-"`
}

// CommandSet matches the commands of an SSH exec against globs (`*`
// matches anything, spaces included). Every simple command the exec would
// run is put to the policy on its own: in a pipeline, a list, a
// subshell, a command substitution, a `bash -c` string, behind sudo or
// xargs. A command matches a pattern written with its program's path
// (`/usr/bin/rm *`) or with its base name (`rm *`).
type CommandSet struct {
	// Allow: when given, the rule allows exec of these commands only
	// (without it, `exec` in allow allows any command it does not deny
	// or review).
	Allow StringList `yaml:"allow" json:"allow"`
	// Review: these wait for approval (the rule's review says by whom).
	Review StringList `yaml:"review" json:"review"`
	// Deny: these are refused, whatever any rule allows.
	Deny StringList `yaml:"deny" json:"deny"`
}

// Who matches workloads. Every field given must match (and); a list
// matches when any entry does (or). Patterns are globs: `*` stays within a
// path segment, `**` crosses them.
type Who struct {
	Any        bool           `yaml:"any" json:"any"` // every workload; must be explicit
	Unit       StringList     `yaml:"unit" json:"unit"`
	Exe        StringList     `yaml:"exe" json:"exe"`
	UID        []uint32       `yaml:"uid" json:"uid"`
	User       StringList     `yaml:"user" json:"user"`
	Cgroup     StringList     `yaml:"cgroup" json:"cgroup"`
	Kubernetes *KubernetesWho `yaml:"kubernetes" json:"kubernetes,omitempty"`
	OIDC       *OIDCWho       `yaml:"oidc" json:"oidc,omitempty"`
}

// KubernetesWho matches pod facts.
type KubernetesWho struct {
	Namespace      StringList        `yaml:"namespace" json:"namespace"`
	Name           StringList        `yaml:"name" json:"name"`
	ServiceAccount StringList        `yaml:"service_account" json:"service_account"`
	Labels         map[string]string `yaml:"labels" json:"labels"`
}

// OIDCWho matches the claims of a verified token.
type OIDCWho struct {
	Issuer  StringList `yaml:"issuer" json:"issuer"`
	Subject StringList `yaml:"subject" json:"subject"`
	Email   StringList `yaml:"email" json:"email"`
	Groups  StringList `yaml:"groups" json:"groups"` // any of
}

// ReviewSet says which operations wait for a human, and who may approve.
type ReviewSet struct {
	Operations StringList `yaml:"operations" json:"operations"`
	Reviewers  StringList `yaml:"reviewers" json:"reviewers"` // group:NAME or user:NAME
	Grant      string     `yaml:"grant" json:"grant"`         // once (default) or window
	Window     string     `yaml:"window" json:"window,omitempty"`
	Timeout    string     `yaml:"timeout" json:"timeout,omitempty"` // default 5m
	// Webhook, when set, is notified of every request the rule creates
	// (Slack-compatible JSON). A failed notification approves nothing.
	Webhook string `yaml:"webhook" json:"webhook,omitempty"`
}

// DefaultReviewTimeout is how long an operation waits for a reviewer when
// the rule does not say.
const DefaultReviewTimeout = 5 * time.Minute

// MaxReviewTimeout bounds how long an operation may be held: a client
// waits that long with its connection open.
const MaxReviewTimeout = 24 * time.Hour

// StringList is a list that may be written as a single string.
type StringList []string

// UnmarshalYAML accepts a scalar or a sequence of scalars.
func (s *StringList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*s = StringList{n.Value}
		return nil
	case yaml.SequenceNode:
		var v []string
		if err := n.Decode(&v); err != nil {
			return err
		}
		*s = v
		return nil
	}
	return fmt.Errorf("line %d: want a string or a list of strings", n.Line)
}

// TargetInfo is what rule validation needs to know of a declared target.
type TargetInfo struct {
	Protocol    string
	Credentials []string // aliases
}

// Problem is one validation error, with the path of its field.
type Problem struct {
	Path string
	Msg  string
}

func (p Problem) String() string { return p.Path + ": " + p.Msg }

// Mask methods and value detectors the masking code implements.
var (
	MaskMethods   = []string{"redact", "partial", "hash", "null"}
	MaskDetectors = []string{"credit_card", "email", "ssn", "phone", "iban", "aws_key", "gcp_key", "github_token", "jwt"}
	MaskFilters   = []string{"any", "equality", "none"}
)

// ValidateRules checks rules against the declared targets; prefix is the
// path of the rules list ("rules").
func ValidateRules(prefix string, rules []Rule, targets map[string]TargetInfo) []Problem {
	var ps []Problem
	add := func(p, format string, args ...any) {
		ps = append(ps, Problem{p, fmt.Sprintf(format, args...)})
	}
	names := map[string]int{}
	for i, r := range rules {
		rp := fmt.Sprintf("%s[%d]", prefix, i)
		if r.Name == "" {
			add(rp+".name", "required")
		} else if j, dup := names[r.Name]; dup {
			add(rp+".name", "duplicate rule name %q (also %s[%d])", r.Name, prefix, j)
		} else {
			names[r.Name] = i
		}
		validateWho(rp+".who", r.Who, add)

		kinds := map[string]bool{}
		if len(r.Targets) == 0 {
			add(rp+".targets", "at least one target is required")
		}
		for j, t := range r.Targets {
			info, ok := targets[t]
			if !ok {
				add(fmt.Sprintf("%s.targets[%d]", rp, j), "unknown target %q", t)
				continue
			}
			kinds[KindOf(info.Protocol)] = true
			if r.Credential != "" && !slices.Contains(info.Credentials, r.Credential) {
				add(rp+".credential", "target %q has no credential %q", t, r.Credential)
			}
		}
		ops := func(field string, list StringList) {
			for j, op := range list {
				if op == Wildcard {
					continue
				}
				known := false
				for k := range kinds {
					known = known || Known(k, op)
				}
				if !known && len(kinds) > 0 {
					add(fmt.Sprintf("%s.%s[%d]", rp, field, j), "unknown operation %q for %s", op, describeKinds(kinds))
				}
			}
		}
		ops("allow", r.Allow)
		ops("deny", r.Deny)
		if r.Review != nil {
			ops("review.operations", r.Review.Operations)
			validateReview(rp+".review", r.Review, r.Commands != nil && len(r.Commands.Review) > 0, add)
		}
		if cs := r.Commands; cs != nil {
			validateCommands(rp+".commands", cs, r, kinds, add)
		}
		if len(r.Allow) == 0 && len(r.Deny) == 0 && (r.Review == nil || len(r.Review.Operations) == 0) && !r.Commands.given() {
			add(rp, "allows, reviews and denies nothing: give at least one of allow, review.operations, deny, commands")
		}
		for j, m := range r.Mask {
			mp := fmt.Sprintf("%s.mask[%d]", rp, j)
			if !slices.Contains(MaskMethods, m.Method) {
				add(mp+".method", "%q is not one of %s", m.Method, strings.Join(MaskMethods, ", "))
			}
			if len(m.Columns) == 0 && len(m.Detect) == 0 {
				add(mp, "give columns, detect, or both")
			}
			if m.Filters != "" && !slices.Contains(MaskFilters, m.Filters) {
				add(mp+".filters", "%q is not one of %s", m.Filters, strings.Join(MaskFilters, ", "))
			} else if m.Filters != "" && m.Filters != "any" && len(m.Columns) == 0 {
				add(mp+".filters", "applies to columns: give columns (detectors find values in results, not in filters)")
			}
			for k, c := range m.Columns {
				parts := strings.Split(c, ".")
				if len(parts) < 2 || len(parts) > 3 || slices.Contains(parts, "") {
					add(fmt.Sprintf("%s.columns[%d]", mp, k), "%q: want table.column or schema.table.column", c)
				}
			}
			for k, d := range m.Detect {
				if !slices.Contains(MaskDetectors, d) {
					add(fmt.Sprintf("%s.detect[%d]", mp, k), "unknown detector %q (known: %s)", d, strings.Join(MaskDetectors, ", "))
				}
			}
		}
	}
	return ps
}

func describeKinds(kinds map[string]bool) string {
	var ks []string
	for k := range kinds {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return strings.Join(ks, "/") + " targets"
}

func validateWho(wp string, w Who, add func(string, string, ...any)) {
	k, o := w.Kubernetes, w.OIDC
	given := len(w.Unit)+len(w.Exe)+len(w.UID)+len(w.User)+len(w.Cgroup) > 0 ||
		(k != nil && len(k.Namespace)+len(k.Name)+len(k.ServiceAccount)+len(k.Labels) > 0) ||
		(o != nil && len(o.Issuer)+len(o.Subject)+len(o.Email)+len(o.Groups) > 0)
	switch {
	case w.Any && given:
		add(wp, "any: true matches every workload; remove it or the other matchers")
	case !w.Any && !given:
		add(wp, "matches nobody: give at least one matcher, or any: true for every workload")
	}
	// Patterns are compiled as the engine will (OPA's glob.match), so one
	// that validates is one that evaluates.
	globs := func(field string, list StringList, delims ...rune) {
		for i, g := range list {
			if g == "" {
				add(fmt.Sprintf("%s.%s[%d]", wp, field, i), "empty pattern")
			} else if _, err := glob.Compile(g, delims...); err != nil {
				add(fmt.Sprintf("%s.%s[%d]", wp, field, i), "bad pattern %q: %v", g, err)
			}
		}
	}
	globs("unit", w.Unit)
	globs("exe", w.Exe, '/')
	globs("user", w.User)
	globs("cgroup", w.Cgroup, '/')
	if k != nil {
		globs("kubernetes.namespace", k.Namespace)
		globs("kubernetes.name", k.Name)
		globs("kubernetes.service_account", k.ServiceAccount)
	}
	if o != nil {
		var urls StringList
		for i, iss := range o.Issuer {
			if !strings.HasPrefix(iss, "https://") && !strings.HasPrefix(iss, "http://") {
				add(fmt.Sprintf("%s.oidc.issuer[%d]", wp, i), "%q is not an issuer URL", iss)
				urls = append(urls, "x") // keeps indexes aligned; already reported
			} else {
				urls = append(urls, iss)
			}
		}
		globs("oidc.issuer", urls)
		globs("oidc.subject", o.Subject)
		globs("oidc.email", o.Email)
		for i, g := range o.Groups { // names, matched whole
			if g == "" {
				add(fmt.Sprintf("%s.oidc.groups[%d]", wp, i), "empty group name")
			}
		}
	}
}

func (cs *CommandSet) given() bool {
	return cs != nil && len(cs.Allow)+len(cs.Review)+len(cs.Deny) > 0
}

func validateCommands(cp string, cs *CommandSet, r Rule, kinds map[string]bool, add func(string, string, ...any)) {
	if !kinds[KindSSH] && len(kinds) > 0 {
		add(cp, "commands apply to ssh targets only; this rule names %s", describeKinds(kinds))
	}
	if !cs.given() {
		add(cp, "empty: give allow, review or deny patterns, or remove it")
	}
	if len(cs.Review) > 0 && (r.Review == nil || len(r.Review.Reviewers) == 0) {
		add(cp+".review", "needs review.reviewers: who may approve these commands")
	}
	// The engine matches with OPA's glob.match without delimiters; the
	// same library compiles them here, so a pattern that validates is one
	// that evaluates.
	for _, f := range []struct {
		field string
		list  StringList
	}{{"allow", cs.Allow}, {"review", cs.Review}, {"deny", cs.Deny}} {
		field := f.field
		for i, g := range f.list {
			if strings.TrimSpace(g) == "" {
				add(fmt.Sprintf("%s.%s[%d]", cp, field, i), "empty pattern")
			} else if _, err := glob.Compile(g); err != nil {
				add(fmt.Sprintf("%s.%s[%d]", cp, field, i), "bad pattern %q: %v", g, err)
			}
		}
	}
}

func validateReview(rp string, r *ReviewSet, commands bool, add func(string, string, ...any)) {
	if len(r.Operations) == 0 && !commands {
		add(rp+".operations", "required: which operations wait for review")
	}
	if len(r.Reviewers) == 0 {
		add(rp+".reviewers", "required: who may approve (group:NAME or user:NAME)")
	}
	for i, rv := range r.Reviewers {
		kind, name, ok := strings.Cut(rv, ":")
		if !ok || (kind != "group" && kind != "user") || name == "" {
			add(fmt.Sprintf("%s.reviewers[%d]", rp, i), "%q: want group:NAME or user:NAME", rv)
		}
	}
	switch r.Grant {
	case "", "once":
		if r.Window != "" {
			add(rp+".window", "only with grant: window")
		}
	case "window":
		if d, err := time.ParseDuration(r.Window); err != nil || d <= 0 {
			add(rp+".window", "%q: grant: window needs a positive duration (like 30m)", r.Window)
		}
	default:
		add(rp+".grant", "%q is not once or window", r.Grant)
	}
	if r.Timeout != "" {
		if d, err := time.ParseDuration(r.Timeout); err != nil || d <= 0 {
			add(rp+".timeout", "%q is not a positive duration", r.Timeout)
		} else if d > MaxReviewTimeout {
			add(rp+".timeout", "%q is longer than %v: an operation cannot wait that long", r.Timeout, MaxReviewTimeout)
		}
	}
	if r.Webhook != "" {
		if u, err := url.Parse(r.Webhook); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			add(rp+".webhook", "not an http(s) URL")
		}
	}
}
