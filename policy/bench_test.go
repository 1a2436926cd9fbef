package policy

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// benchPolicy is a realistic fleet policy: twenty rules over a few
// databases, a bastion and a cluster, matching on pods, units and tokens,
// with masks and reviews.
func benchPolicy() Policy {
	dba := &ReviewSet{Operations: sl("update", "delete", "ddl"), Reviewers: sl("group:dba"), Timeout: "10m"}
	pii := []Mask{
		{Columns: []string{"customers.email", "customers.card_number"}, Method: "partial"},
		{Detect: []string{"credit_card", "email", "ssn"}, Method: "redact"},
	}
	var rules []Rule
	for i, team := range []string{"billing", "search", "ml", "growth", "ads", "identity"} {
		rules = append(rules, Rule{
			Name:    team + "-services",
			Who:     Who{Kubernetes: &KubernetesWho{Namespace: sl(team, team+"-*"), ServiceAccount: sl(team + "-api"), Labels: map[string]string{"team": team}}},
			Targets: sl(fmt.Sprintf("%s-db", team), "orders-db"),
			Allow:   sl("select", "insert", "transaction", "set", "show", "prepare", "cursor"),
			Review:  dba,
			Deny:    sl("drop", "truncate", "copy program", "function"),
			Mask:    pii[:1+i%2],
		})
	}
	for _, unit := range []string{"etl-*.service", "backup.service", "reporting.service", "cron-*.service"} {
		rules = append(rules, Rule{
			Name:       "unit-" + unit,
			Who:        Who{Unit: sl(unit), Exe: sl("/usr/bin/*", "/opt/**"), User: sl("svc-*")},
			Targets:    sl("orders-db", "warehouse-db"),
			Allow:      sl("select", "copy", "transaction", "set"),
			Deny:       sl("copy program"),
			Mask:       pii,
			Credential: "reporting",
		})
	}
	for _, group := range []string{"dba", "sre", "data-eng", "support"} {
		rules = append(rules, Rule{
			Name:    "humans-" + group,
			Who:     Who{OIDC: &OIDCWho{Issuer: sl("https://login.example.com"), Email: sl("*@example.com"), Groups: sl(group, group+"-oncall")}},
			Targets: sl("orders-db", "warehouse-db", "bastion"),
			Allow:   sl("select", "show", "explain", "exec"),
			Review:  &ReviewSet{Operations: sl("*"), Reviewers: sl("group:"+group+"-leads", "group:security"), Grant: "window", Window: "1h"},
			Deny:    sl("drop", "copy program"),
			Mask:    pii,
		})
	}
	rules = append(rules,
		Rule{Name: "kube-system", Who: Who{Kubernetes: &KubernetesWho{Namespace: sl("kube-system")}}, Targets: sl("cluster"), Allow: sl("get", "list", "watch")},
		Rule{Name: "migrations", Who: Who{Kubernetes: &KubernetesWho{Namespace: sl("*"), Name: sl("migrate-*")}, OIDC: &OIDCWho{Subject: sl("system:serviceaccount:*:migrator")}},
			Targets: sl("orders-db"), Allow: sl("*"), Deny: sl("drop"), Review: &ReviewSet{Operations: sl("truncate"), Reviewers: sl("group:dba")}},
		Rule{Name: "monitoring", Who: Who{Cgroup: sl("/system.slice/prometheus*.service", "/kubepods.slice/**"), UID: []uint32{65534}}, Targets: sl("orders-db", "warehouse-db"), Allow: sl("select", "show")},
		Rule{Name: "breakglass", Who: Who{OIDC: &OIDCWho{Groups: sl("breakglass")}}, Targets: sl("orders-db", "warehouse-db", "bastion", "cluster"), Review: &ReviewSet{Operations: sl("*"), Reviewers: sl("group:security")}},
		Rule{Name: "deny-interns", Who: Who{OIDC: &OIDCWho{Groups: sl("interns")}}, Targets: sl("orders-db"), Deny: sl("*")},
		Rule{Name: "ssh-ops", Who: Who{Unit: sl("ansible*.service")}, Targets: sl("bastion"), Allow: sl("exec", "sftp"), Deny: sl("forward", "agent-forward")},
	)
	return Policy{Rules: rules}
}

// benchInput is a pod of the identity team, with a token, running a
// statement that touches two operations.
func benchInput() Input {
	return Input{
		Workload: Workload{
			CgroupID: 91234, CgroupPath: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c.slice/cri-containerd-9f8e.scope",
			PID: 4242, Exe: "/app/identity-api", UID: 1000, User: "app",
			Pod: Pod{UID: "1b2c3d4e", Namespace: "identity-prod", Name: "identity-api-7d9f-x2x", ServiceAccount: "identity-api",
				Labels: map[string]string{"team": "identity", "app": "identity-api", "pod-template-hash": "7d9f"}},
			ContainerID: "9f8e7d6c",
			OIDC: &OIDC{Issuer: "https://kubernetes.default.svc", Subject: "system:serviceaccount:identity-prod:identity-api",
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:identity-prod"}},
		},
		Target: Target{Name: "orders-db", Protocol: "postgres", Address: "10.0.0.5:5432"},
		Action: Action{Kind: KindSQL, Operations: []string{"select", "insert"}, SQL: &SQL{
			Command: "INSERT", Tables: []string{"public.sessions", "public.users"}, HasWhere: true,
			Text: "INSERT INTO sessions SELECT * FROM users WHERE id = 42", Fingerprint: "c0ffee",
		}},
	}
}

func BenchmarkDecide(b *testing.B) {
	ctx := context.Background()
	newEngine := func(b *testing.B) *Engine {
		e := NewEngine(slog.New(slog.DiscardHandler))
		if _, err := e.Load(ctx, benchPolicy()); err != nil {
			b.Fatal(err)
		}
		if ps := ValidateRules("rules", benchPolicy().Rules, map[string]TargetInfo{
			"orders-db": {Protocol: "postgres", Credentials: []string{"default", "reporting"}}, "warehouse-db": {Protocol: "postgres", Credentials: []string{"default", "reporting"}},
			"billing-db": {Protocol: "postgres"}, "search-db": {Protocol: "postgres"}, "ml-db": {Protocol: "postgres"}, "growth-db": {Protocol: "postgres"},
			"ads-db": {Protocol: "postgres"}, "identity-db": {Protocol: "postgres"}, "bastion": {Protocol: "ssh", Credentials: []string{"default", "reporting"}},
			"cluster": {Protocol: "kubernetes"},
		}); len(ps) > 0 {
			b.Fatalf("benchmark policy does not validate: %v", ps)
		}
		d, err := e.Decide(ctx, benchInput())
		if err != nil || d.Result != Allow || d.Rule != "identity-services" || len(d.Mask) != 2 {
			b.Fatalf("unexpected decision %+v, %v", d, err)
		}
		return e
	}

	b.Run("cached", func(b *testing.B) {
		e := newEngine(b)
		in := benchInput()
		runtime.GC() // not the garbage of compiling the policy
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := e.Decide(ctx, in); err != nil {
				b.Fatal(err)
			}
		}
	})

	// As handlers ask: the workload's part of the key computed once per
	// session (intercept.Conn does this).
	b.Run("cached-session", func(b *testing.B) {
		e := newEngine(b)
		in := benchInput()
		in.IdentityKey = IdentityKey(&in.Workload)
		runtime.GC()
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := e.Decide(ctx, in); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("uncached", func(b *testing.B) {
		e := newEngine(b)
		// A workload never seen (another pod each time): the policy is
		// evaluated for every decision.
		ins := make([]Input, b.N)
		for i := range ins {
			ins[i] = benchInput()
			ins[i].Workload.Pod.Name = fmt.Sprintf("pod-%d", i)
		}
		runtime.GC() // not the garbage of compiling the policy
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if _, err := e.Decide(ctx, ins[i]); err != nil {
				b.Fatal(err)
			}
		}
	})

	// A statement never seen from a known workload: with the built-in
	// module alone the statement's details are not part of the key.
	b.Run("new-statement", func(b *testing.B) {
		e := newEngine(b)
		ins := make([]Input, b.N)
		for i := range ins {
			ins[i] = benchInput()
			ins[i].IdentityKey = IdentityKey(&ins[i].Workload)
			ins[i].Action.SQL = &SQL{Command: "INSERT", Tables: []string{"public.sessions"}, HasWhere: true, Fingerprint: fmt.Sprintf("fp-%d", i)}
		}
		runtime.GC()
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if _, err := e.Decide(ctx, ins[i]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkInputValue: the input built directly, against the reference it
// is held to (encoding/json, then OPA's parser).
func BenchmarkInputValue(b *testing.B) {
	in := benchInput()
	for _, c := range []struct {
		name string
		f    func(*Input) (ast.Object, error)
	}{{"direct", inputValue}, {"json", inputValueJSON}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := c.f(&in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
