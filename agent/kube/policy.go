package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/corral-dev/corral/agent/config"
	"github.com/corral-dev/corral/policy"
)

// InvalidError lists what is wrong with a set of resources, each problem
// naming its object and field: `AccessRule etl/etl-jobs: spec.allow[0]:
// unknown operation "selekt" for sql targets`.
type InvalidError struct {
	Problems []string
	// Quarantined: only AccessRules were invalid, and Apply returned a
	// configuration in which each of them denies its namespace's pods
	// every target (see Apply).
	Quarantined bool
}

func (e *InvalidError) Error() string {
	return "invalid policy:\n  " + strings.Join(e.Problems, "\n  ")
}

// RuleName is the name an AccessRule's rule has in decisions and in the
// audit log: rules of different namespaces may share a name.
func RuleName(r *AccessRule) string { return r.Namespace + "/" + r.Name }

// Apply returns a copy of base whose targets and rules are base's followed
// by those of the resources, validated exactly as the configuration file is
// (config.Config.Validate: the one definition of what is valid). On a
// problem it returns an *InvalidError and no configuration: a policy is
// taken whole or not at all. But for AccessRules: each belongs to its
// namespace (see confine), so one that does not validate is taken as a
// rule denying its namespace's pods every target, until it is fixed, and
// the rest of the cluster's policy still applies (a rule removed is
// removed, a namespace's mistake stops no other). The configuration then
// comes with an *InvalidError marked Quarantined, naming the problems.
func Apply(base *config.Config, targets []ProtectedTarget, rules []AccessRule) (*config.Config, error) {
	return applyAll(base, targets, rules, nil)
}

// applyAll is Apply with AccessRules that did not decode (broken, by
// RuleName, each with its problem): they are quarantined from the start,
// like rules that do not validate, since what one says cannot be known.
func applyAll(base *config.Config, targets []ProtectedTarget, rules []AccessRule, broken map[string]string) (*config.Config, error) {
	quarantine := map[string]bool{}
	var problems []string
	for name, p := range broken {
		quarantine[name] = true
		problems = append(problems, p)
	}
	slices.Sort(problems)
	c, bad, err := apply(base, targets, rules, quarantine)
	var inv *InvalidError
	if err != nil {
		inv = err.(*InvalidError)
		problems = append(problems, inv.Problems...)
		if len(bad) == 0 {
			inv.Problems = problems
			return nil, inv
		}
		for name := range bad {
			quarantine[name] = true
		}
		var again error
		if c, _, again = apply(base, targets, rules, quarantine); again != nil {
			inv.Problems = problems
			return nil, inv
		}
	}
	if len(problems) == 0 {
		return c, nil
	}
	return c, &InvalidError{Problems: problems, Quarantined: true}
}

// apply is Apply with the rules in quarantine (by RuleName) replaced. It
// also returns, when every problem is an AccessRule's, those rules.
func apply(base *config.Config, targets []ProtectedTarget, rules []AccessRule, quarantine map[string]bool) (*config.Config, map[string]bool, error) {
	c := *base
	// A copy through JSON: validation writes parsed values and defaults
	// into targets, and base may be serving.
	if err := cloneJSON(base.Targets, &c.Targets); err != nil {
		return nil, nil, err
	}
	if err := cloneJSON(base.Rules, &c.Rules); err != nil {
		return nil, nil, err
	}
	nt, nr := len(c.Targets), len(c.Rules)
	var own []string
	for i := range targets {
		t := targets[i].DeepCopy()
		if t.Spec.Name != "" && t.Spec.Name != t.Name {
			own = append(own, fmt.Sprintf("%s: spec.name: %q differs from metadata.name; leave it out", describeTarget(t.Name), t.Spec.Name))
		}
		t.Spec.Name = t.Name
		own = append(own, nodeSecrets(t)...)
		c.Targets = append(c.Targets, t.Spec)
	}
	for i := range rules {
		r := rules[i].DeepCopy()
		if quarantine[RuleName(r)] {
			r.Spec = policy.Rule{Deny: policy.StringList{policy.Wildcard}}
		}
		if r.Spec.Name != "" && r.Spec.Name != r.Name {
			own = append(own, fmt.Sprintf("%s: spec.name: %q differs from metadata.name; leave it out", describeRule(r.Namespace, r.Name), r.Spec.Name))
		}
		r.Spec.Name = RuleName(r)
		own = append(own, confine(r)...)
		r.Spec.Cluster = true
		c.Rules = append(c.Rules, r.Spec)
	}
	if len(quarantine) > 0 {
		for i := nr; i < len(c.Rules); i++ {
			if quarantine[c.Rules[i].Name] {
				for _, t := range c.Targets {
					c.Rules[i].Targets = append(c.Rules[i].Targets, t.Name)
				}
			}
		}
	}
	name := func(list string, i int) (string, bool) {
		switch {
		case list == "targets" && i >= nt && i-nt < len(targets):
			return describeTarget(targets[i-nt].Name), true
		case list == "rules" && i >= nr && i-nr < len(rules):
			r := &rules[i-nr]
			return describeRule(r.Namespace, r.Name), true
		}
		return "", false
	}
	problems := own
	for _, p := range c.Validate() {
		problems = append(problems, attribute(p, name))
	}
	if len(problems) > 0 {
		return nil, ruleProblems(problems, rules), &InvalidError{Problems: problems}
	}
	return &c, nil, nil
}

// ruleProblems returns the AccessRules the problems are about, by
// RuleName, or nil when any problem is about something else.
func ruleProblems(problems []string, rules []AccessRule) map[string]bool {
	bad := map[string]bool{}
	for _, p := range problems {
		found := false
		for i := range rules {
			if strings.HasPrefix(p, describeRule(rules[i].Namespace, rules[i].Name)+":") {
				bad[RuleName(&rules[i])], found = true, true
				break
			}
		}
		if !found {
			return nil
		}
	}
	return bad
}

// nodeSecrets refuses credentials a ProtectedTarget would read from the
// node: a file or the agent's environment. The agent reads them as root,
// and a target's author picks where the credential is sent (a server of
// theirs asking for the password in clear), so a file of the node's (a
// kubelet key, a service account token) would go with it. A Secret the
// agent was given access to is the cluster's way.
func nodeSecrets(t *ProtectedTarget) []string {
	var out []string
	aliases := make([]string, 0, len(t.Spec.Credentials))
	for a := range t.Spec.Credentials {
		aliases = append(aliases, a)
	}
	slices.Sort(aliases)
	for _, a := range aliases {
		c := t.Spec.Credentials[a]
		for _, f := range []struct{ field, value string }{
			{"password_file", c.PasswordFile}, {"password_env", c.PasswordEnv}, {"private_key_file", c.PrivateKeyFile},
		} {
			if f.value != "" {
				out = append(out, fmt.Sprintf("%s: spec.credentials.%s.%s: a ProtectedTarget takes its credentials from a Secret (secret: {namespace, name, key}), not from the node", describeTarget(t.Name), a, f.field))
			}
		}
	}
	return out
}

// confine holds an AccessRule to the pods of its own namespace: the
// users who may write AccessRules in a namespace are its team, and a rule
// of theirs must not let, route or hold other namespaces' workloads, nor
// the node's own (a rule with any: true matches every pod of the
// namespace). It returns what it cannot confine.
func confine(r *AccessRule) []string {
	w := &r.Spec.Who
	if w.Any {
		*w = policy.Who{}
	}
	if w.Kubernetes == nil {
		w.Kubernetes = &policy.KubernetesWho{}
	}
	switch ns := w.Kubernetes.Namespace; {
	case len(ns) == 0:
		w.Kubernetes.Namespace = policy.StringList{r.Namespace}
	case len(ns) != 1 || ns[0] != r.Namespace:
		return []string{fmt.Sprintf("%s: spec.who.kubernetes.namespace: an AccessRule applies to the pods of its own namespace only; give %q or leave it out", describeRule(r.Namespace, r.Name), r.Namespace)}
	}
	return nil
}

func describeTarget(name string) string   { return "ProtectedTarget " + name }
func describeRule(ns, name string) string { return "AccessRule " + ns + "/" + name }

var (
	leadingItem = regexp.MustCompile(`^(targets|rules)\[(\d+)\](\S*): `)
	anyItem     = regexp.MustCompile(`\b(targets|rules)\[(\d+)\]`)
)

// attribute rewrites a problem of the assembled configuration so that it
// names the resource it is about ("rules[3].allow[0]: ..." becomes
// "AccessRule etl/etl-jobs: spec.allow[0]: ..."), and so do references to
// other items in its message.
func attribute(p string, name func(list string, i int) (string, bool)) string {
	if m := leadingItem.FindStringSubmatch(p); m != nil {
		i, _ := strconv.Atoi(m[2])
		if obj, ok := name(m[1], i); ok {
			field := "spec" + m[3]
			p = obj + ": " + field + ": " + p[len(m[0]):]
		}
	}
	return anyItem.ReplaceAllStringFunc(p, func(s string) string {
		m := anyItem.FindStringSubmatch(s)
		i, _ := strconv.Atoi(m[2])
		if obj, ok := name(m[1], i); ok {
			return obj
		}
		return s
	})
}

func cloneJSON[T any](in T, out *T) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// LoadPolicy lists the ProtectedTargets and the AccessRules of every
// namespace and applies them to base (see Apply).
func LoadPolicy(ctx context.Context, client dynamic.Interface, base *config.Config) (*config.Config, error) {
	var targets []ProtectedTarget
	if err := listInto(ctx, client.Resource(ProtectedTargets), &targets, decodeTarget); err != nil {
		return nil, fmt.Errorf("list ProtectedTargets: %w", err)
	}
	var rules []AccessRule
	broken := map[string]string{}
	// An AccessRule that does not decode (a field the API server's schema
	// lets through and this agent's types refuse, as after an upgrade of
	// the CRD alone) is its namespace's mistake: it is quarantined like
	// one that does not validate, and stops no other namespace.
	rule := func(u *unstructured.Unstructured) (AccessRule, error) {
		var r AccessRule
		if err := decodeSpec(u, &r, &r.Spec); err != nil {
			r = AccessRule{ObjectMeta: metav1.ObjectMeta{Namespace: u.GetNamespace(), Name: u.GetName()}}
			broken[RuleName(&r)] = fmt.Sprintf("%s: does not decode: %v", describeRule(r.Namespace, r.Name), err)
		}
		return r, nil
	}
	if err := listInto(ctx, client.Resource(AccessRules), &rules, rule); err != nil {
		return nil, fmt.Errorf("list AccessRules: %w", err)
	}
	return applyAll(base, targets, rules, broken)
}

// decodeTarget is listInto's decoding for ProtectedTargets: one that does
// not decode refuses the whole set, as one that does not validate.
func decodeTarget(u *unstructured.Unstructured) (ProtectedTarget, error) {
	var t ProtectedTarget
	if err := decodeSpec(u, &t, &t.Spec); err != nil {
		return t, fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
	}
	return t, nil
}

// decodeSpec decodes an object into obj, its spec strictly into spec: a
// field this agent does not know (a newer CRD's, say a restriction) must
// not be dropped in silence.
func decodeSpec(u *unstructured.Unstructured, obj, spec any) error {
	if err := fromUnstructured(u.Object, obj); err != nil {
		return err
	}
	b, err := json.Marshal(u.Object["spec"])
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(spec); err != nil {
		return fmt.Errorf("spec: %w", err)
	}
	return nil
}

func listInto[T any](ctx context.Context, res dynamic.ResourceInterface, out *[]T, decode func(*unstructured.Unstructured) (T, error)) error {
	opts := metav1.ListOptions{Limit: 500}
	for {
		l, err := res.List(ctx, opts)
		if err != nil {
			return err
		}
		for i := range l.Items {
			v, err := decode(&l.Items[i])
			if err != nil {
				return err
			}
			*out = append(*out, v)
		}
		if opts.Continue = l.GetContinue(); opts.Continue == "" {
			return nil
		}
	}
}
