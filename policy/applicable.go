package policy

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gobwas/glob"
	"github.com/open-policy-agent/opa/v1/ast"
)

// Which declared rules apply to a question (its target is in the rule's
// targets and its who matches) is worked out here and handed to the module
// as input.applicable. Matching every rule's who in Rego was most of an
// uncached decision's time: about 20 µs a rule on these machines, against
// well under one here. Precedence, operations, masks and reviews stay in
// Rego.
//
// The matchers are built from the same checks the module reads
// (whoChecks), and the globs with the library OPA's glob.match uses, with
// the same delimiters, so the two cannot mean different things by a
// pattern. The module still matches by itself when input.applicable is
// absent (its own tests, hand-written inputs); TestApplicableAgreesWithRego
// holds both to the same answer.

type ruleMatcher struct {
	targets []string
	any     bool
	checks  []checkMatcher
}

type checkMatcher struct {
	kind   string
	fact   func(*Workload) string
	globs  []*glob.Pattern
	uids   []uint32
	labels map[string]string
	groups []string
}

// facts are the workload facts a glob check may name, by the path the
// module reads them at.
var facts = map[string]func(*Workload) string{
	"unit":                func(w *Workload) string { return w.Unit },
	"exe":                 func(w *Workload) string { return w.Exe },
	"cgroup_path":         func(w *Workload) string { return w.CgroupPath },
	"user":                func(w *Workload) string { return w.User },
	"pod.namespace":       func(w *Workload) string { return w.Pod.Namespace },
	"pod.name":            func(w *Workload) string { return w.Pod.Name },
	"pod.service_account": func(w *Workload) string { return w.Pod.ServiceAccount },
	"oidc.issuer":         func(w *Workload) string { return oidcOf(w).Issuer },
	"oidc.subject":        func(w *Workload) string { return oidcOf(w).Subject },
	"oidc.email":          func(w *Workload) string { return oidcOf(w).Email },
}

func oidcOf(w *Workload) *OIDC {
	if w.OIDC == nil {
		return &OIDC{}
	}
	return w.OIDC
}

// compileMatchers prepares the applicability of every rule, in order. A
// check it does not know is an error: the policy is not loaded, rather than
// a rule that matches more or less than it says.
func compileMatchers(rules []Rule) ([]ruleMatcher, error) {
	out := make([]ruleMatcher, 0, len(rules))
	for i, r := range rules {
		m := ruleMatcher{targets: jsonStrings(r.Targets), any: r.Who.Any}
		for _, c := range whoChecks(r.Who) {
			cm := checkMatcher{kind: c.Kind}
			switch c.Kind {
			case "glob":
				path := strings.Join(c.Fact, ".")
				cm.fact = facts[path]
				if cm.fact == nil {
					return nil, fmt.Errorf("rules[%d]: no workload fact %q to match", i, path)
				}
				// As OPA's glob.match: null delimiters are none, and
				// each delimiter is one character.
				var delims []rune
				for _, d := range c.Delims {
					r := []rune(d)
					if len(r) != 1 {
						return nil, fmt.Errorf("rules[%d]: delimiter %q is not one character", i, d)
					}
					delims = append(delims, r[0])
				}
				if c.Delims != nil && len(delims) == 0 {
					delims = []rune{'.'}
				}
				for _, p := range c.Patterns {
					g, err := glob.Compile(asJSON(p), delims...)
					if err != nil {
						return nil, fmt.Errorf("rules[%d] (%s): pattern %q: %w", i, r.Name, p, err)
					}
					cm.globs = append(cm.globs, g)
				}
			case "uid":
				cm.uids = c.UIDs
			case "labels":
				cm.labels = map[string]string{}
				for k, v := range c.Labels {
					cm.labels[asJSON(k)] = asJSON(v)
				}
			case "groups":
				cm.groups = jsonStrings(c.Patterns)
			default:
				return nil, fmt.Errorf("rules[%d]: unknown who check %q", i, c.Kind)
			}
			m.checks = append(m.checks, cm)
		}
		out = append(out, m)
	}
	return out, nil
}

func (m *ruleMatcher) applies(in *Input) bool {
	if !slices.Contains(m.targets, asJSON(in.Target.Name)) {
		return false
	}
	if m.any {
		return true
	}
	if len(m.checks) == 0 {
		return false // a who without matchers matches nobody
	}
	for i := range m.checks {
		if !m.checks[i].matches(&in.Workload) {
			return false
		}
	}
	return true
}

func (c *checkMatcher) matches(w *Workload) bool {
	switch c.kind {
	case "glob":
		v := asJSON(c.fact(w))
		if v == "" {
			return false // a fact the workload does not have matches nothing
		}
		for _, g := range c.globs {
			if g.Match(v) {
				return true
			}
		}
		return false
	case "uid":
		return slices.Contains(c.uids, w.UID)
	case "labels":
		have := w.Pod.Labels
		if !allJSON(have) {
			have = map[string]string{}
			for k, v := range w.Pod.Labels {
				have[asJSON(k)] = asJSON(v)
			}
		}
		for k, v := range c.labels {
			if h, ok := have[k]; !ok || h != v {
				return false
			}
		}
		return true
	case "groups":
		have := jsonStrings(oidcOf(w).Groups)
		for _, g := range c.groups {
			if slices.Contains(have, g) {
				return true
			}
		}
		return false
	}
	return false
}

// asJSON is s as the module sees it, through encoding/json: every byte
// that is not part of valid UTF-8 becomes U+FFFD. A process may name its
// binary with any bytes; a pattern must match what Rego would match. Rules
// reach the module through JSON too, so their strings are taken the same
// way.
func asJSON(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func jsonStrings(ss []string) []string {
	for i, s := range ss {
		if !utf8.ValidString(s) {
			out := slices.Clone(ss[:i])
			for _, s := range ss[i:] {
				out = append(out, asJSON(s))
			}
			return out
		}
	}
	return ss
}

func allJSON(m map[string]string) bool {
	for k, v := range m {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return false
		}
	}
	return true
}

// applicableTerm is input.applicable: the indexes of the rules that apply,
// ascending; an empty array when none does.
func applicableTerm(ms []ruleMatcher, in *Input) *ast.Term {
	var idx []*ast.Term
	for i := range ms {
		if ms[i].applies(in) {
			idx = append(idx, ast.IntNumberTerm(i))
		}
	}
	return ast.ArrayTerm(idx...)
}
