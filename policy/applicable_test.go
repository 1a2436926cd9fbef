package policy

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// TestApplicableAgreesWithRego holds the engine's applicability (Go) to the
// module's own (Rego, used when input.applicable is absent) over random
// rules and workloads: patterns with every glob form, facts with and
// without delimiters, missing facts, facts that are not valid UTF-8, uids,
// labels and groups.
func TestApplicableAgreesWithRego(t *testing.T) {
	ctx := context.Background()
	rnd := rand.New(rand.NewPCG(7, 11))
	pick := func(pool []string) string { return pool[rnd.IntN(len(pool))] }
	some := func(pool []string) StringList {
		if rnd.IntN(3) == 0 {
			return nil
		}
		out := StringList{pick(pool)}
		if rnd.IntN(3) == 0 {
			out = append(out, pick(pool))
		}
		return out
	}
	patterns := []string{"*", "**", "?", "a*", "*b", "a?c", "[ab]*", "[!a]*", "{x,y}*", "a.b", "a*b", "*.service", "etl-*.service",
		"/usr/bin/*", "/usr/**", "/opt/*/run", "/kubepods.slice/**", "/system.slice/*.service", "team-*", "*@example.com", "abc", "x/y", "x*", "/usr/bin/??", "/usr/bin/\ufffd\ufffd", "/usr/bin/\ufffd", "/usr/bin/\xff*"}
	values := []string{"", "", "", "a", "abc", "ab", "a.b", "a/b", "b", "xyz", "y.z", "etl-1.service", "etl-1.x.service", "cron.service",
		"/usr/bin/psql", "/usr/local/bin/psql", "/usr/bin", "/opt/app/run", "/opt/a/b/run", "/kubepods.slice/pod1/c",
		"/system.slice/backup.service", "team-a", "team-", "me@example.com", "me@example.org", "x/y", "x",
		"/usr/bin/\xff\xfe", "/usr/bin/\xff", "/usr/bin/\ufffd"}
	targets := []string{"db", "bastion", "cluster", "c\xff", "c\ufffd"}
	groups := []string{"dba", "sre", "a*", "interns", "x\xff", "x\ufffd"}
	labelKeys, labelValues := []string{"team", "app", "k\xfe", "k\ufffd"}, []string{"a", "b", "", "v\xff", "v\ufffd"}
	uids := []uint32{0, 1000, 65534}

	// One to three matchers a rule, so that each one often decides.
	randomWho := func() Who {
		if rnd.IntN(20) == 0 {
			return Who{Any: true}
		}
		var w Who
		kube := func() *KubernetesWho {
			if w.Kubernetes == nil {
				w.Kubernetes = &KubernetesWho{}
			}
			return w.Kubernetes
		}
		oidc := func() *OIDCWho {
			if w.OIDC == nil {
				w.OIDC = &OIDCWho{}
			}
			return w.OIDC
		}
		for range 1 + rnd.IntN(3) {
			p := StringList{pick(patterns)}
			switch rnd.IntN(12) {
			case 0:
				w.Unit = p
			case 1:
				w.Exe = p
			case 2:
				w.Cgroup = p
			case 3:
				w.User = p
			case 4:
				w.UID = []uint32{uids[rnd.IntN(len(uids))]}
			case 5:
				kube().Namespace = p
			case 6:
				kube().Name = p
			case 7:
				kube().ServiceAccount = p
			case 8:
				kube().Labels = map[string]string{pick(labelKeys): pick(labelValues)}
			case 9:
				oidc().Issuer = p
			case 10:
				oidc().Subject, oidc().Email = some(patterns), some(patterns)
			case 11:
				oidc().Groups = StringList{pick(groups)}
			}
		}
		return w
	}
	randomWorkload := func() Workload {
		w := Workload{Unit: pick(values), Exe: pick(values), CgroupPath: pick(values), User: pick(values), UID: uids[rnd.IntN(len(uids))],
			Pod: Pod{Namespace: pick(values), Name: pick(values), ServiceAccount: pick(values)}}
		if rnd.IntN(2) == 0 {
			w.Pod.Labels = map[string]string{pick(labelKeys): pick(labelValues)}
		}
		if rnd.IntN(2) == 0 {
			w.OIDC = &OIDC{Issuer: pick(values), Subject: pick(values), Email: pick(values)}
			if rnd.IntN(2) == 0 {
				w.OIDC.Groups = []string{pick(groups), pick(groups)}
			}
		}
		return w
	}

	mods, err := BuiltinModules(false)
	if err != nil {
		t.Fatal(err)
	}
	agreed, applied := 0, 0
	for round := range 4 {
		var rules []Rule
		for i := range 40 {
			rules = append(rules, Rule{Name: "r" + string(rune('a'+i%26)), Who: randomWho(), Targets: some(targets), Allow: sl("*")})
		}
		matchers, err := compileMatchers(rules)
		if err != nil {
			t.Fatal(err)
		}
		opts := []func(*rego.Rego){
			rego.Query("x := [i | some i in data.corral.applicable]"),
			rego.Store(inmem.NewFromObjectWithOpts(map[string]any{"declared": Data(rules)}, inmem.OptReturnASTValuesOnRead(true))),
			rego.StoreReadAST(true),
			rego.StrictBuiltinErrors(true),
		}
		for name, src := range mods {
			opts = append(opts, rego.Module(name, src))
		}
		pq, err := rego.New(opts...).PrepareForEval(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for range 250 {
			in := Input{Workload: randomWorkload(), Target: Target{Name: pick(targets)}, Action: Action{Kind: KindConnect, Operations: []string{"connect"}}}
			// The module's own matching: an input without applicable,
			// through JSON as the reference has it.
			value, err := inputValueJSON(&in)
			if err != nil {
				t.Fatal(err)
			}
			rs, err := pq.Eval(ctx, rego.EvalParsedInput(value))
			if err != nil {
				t.Fatal(err)
			}
			var fromRego []int
			for _, v := range rs[0].Bindings["x"].([]any) {
				n, _ := v.(json.Number).Int64()
				fromRego = append(fromRego, int(n))
			}
			slices.Sort(fromRego)
			var fromGo []int
			for i := range matchers {
				if matchers[i].applies(&in) {
					fromGo = append(fromGo, i)
				}
			}
			if !slices.Equal(fromGo, fromRego) {
				w, _ := json.Marshal(in.Workload)
				var diff []string
				for _, i := range symmetricDifference(fromGo, fromRego) {
					r, _ := json.Marshal(rules[i].Who)
					diff = append(diff, string(r)+" targets "+strings.Join(rules[i].Targets, ","))
				}
				t.Fatalf("round %d: target %s, workload %s:\nGo says %v, Rego says %v; rules in dispute:\n%s",
					round, in.Target.Name, w, fromGo, fromRego, strings.Join(diff, "\n"))
			}
			agreed++
			applied += len(fromGo)
		}
	}
	// The comparison means something only if rules do apply, and not all.
	if applied == 0 || applied == agreed*40 {
		t.Fatalf("degenerate sample: %d rules applied over %d questions", applied, agreed)
	}
	t.Logf("%d questions agreed, %d rule applications", agreed, applied)
}

func symmetricDifference(a, b []int) []int {
	var out []int
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			out = append(out, x)
		}
	}
	return out
}

// TestEngineUsesApplicable checks that a decision goes by input.applicable
// when the engine supplies it: a module that sees an input claiming no rule
// applies must deny, one the engine hands the true set must allow.
func TestEngineUsesApplicable(t *testing.T) {
	ctx := context.Background()
	p := Policy{Rules: []Rule{{Name: "pods", Who: Who{Kubernetes: &KubernetesWho{Namespace: sl("team-*")}}, Targets: sl(testTarget), Allow: sl("select")}}}
	c, err := Compile(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	in := sqlIn(Workload{Pod: Pod{Namespace: "team-a"}}, "select")
	d, err := c.Eval(ctx, in)
	if err != nil || d.Result != Allow {
		t.Fatalf("want allow, got %+v, %v", d, err)
	}
	// The same question with the engine's matchers emptied: the module
	// believes input.applicable and denies.
	c.matchers = []ruleMatcher{{}}
	d, err = c.Eval(ctx, in)
	if err != nil || d.Result != Deny || d.Reason != noRuleReason(testTarget) {
		t.Fatalf("want deny for no applicable rule, got %+v, %v", d, err)
	}
}

// TestCompileRefusesBadPattern: a pattern that does not compile keeps the
// policy from loading (validation reports it first; this is the engine's
// own guard for a policy that skipped it).
func TestCompileRefusesBadPattern(t *testing.T) {
	_, err := Compile(context.Background(), Policy{Rules: []Rule{{Name: "bad", Who: Who{Unit: sl("[")}, Targets: sl(testTarget), Allow: sl("select")}}})
	if err == nil || !strings.Contains(err.Error(), `pattern "["`) {
		t.Fatalf("want a compile error naming the pattern, got %v", err)
	}
}
