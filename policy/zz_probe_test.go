package policy

import (
	"context"
	"fmt"
	"testing"
)

func TestZZProbe(t *testing.T) {
	ctx := context.Background()
	run := func(name string, p Policy, in Input) {
		e := NewEngine(nil)
		_, err := e.Load(ctx, p)
		if err != nil {
			fmt.Println(name, "LOAD ERR", err)
			return
		}
		d, err := e.Decide(ctx, in)
		fmt.Printf("%s: %+v err=%v\n", name, d, err)
	}
	in := Input{Workload: Workload{Unit: "a.service", Exe: "/usr/bin/x"}, Target: Target{Name: "db", Protocol: "postgres"}, Action: Action{Kind: KindSQL, Operations: []string{"select"}}}
	fmt.Println(ValidateRules("rules", []Rule{{Name: "r", Who: Who{Unit: StringList{"{a"}}, Targets: StringList{"db"}, Allow: StringList{"select"}}}, map[string]TargetInfo{"db": {Protocol: "postgres"}}))
	run("badglob", Policy{Rules: []Rule{{Name: "r", Who: Who{Unit: StringList{"{a"}}, Targets: StringList{"db"}, Allow: StringList{"select"}}}}, in)
	run("badglob-other-rule", Policy{Rules: []Rule{{Name: "ok", Who: Who{Any: true}, Targets: StringList{"db"}, Allow: StringList{"select"}}, {Name: "r", Who: Who{Unit: StringList{"{a"}}, Targets: StringList{"db"}, Allow: StringList{"select"}}}}, in)
	run("emptywho", Policy{Rules: []Rule{{Name: "r", Targets: StringList{"db"}, Allow: StringList{"select"}}}}, in)
	run("custom both", Policy{Rules: []Rule{{Name: "r", Who: Who{Any: true}, Targets: StringList{"db"}, Allow: StringList{"select"}}}, Modules: map[string]string{"c.rego": "package corral.custom\nimport rego.v1\ndeny contains \"no\"\ndecision := {\"result\":\"allow\"}\n"}}, in)
	run("custom mask obj", Policy{Rules: []Rule{{Name: "r", Who: Who{Any: true}, Targets: StringList{"db"}, Allow: StringList{"select"}}}, Modules: map[string]string{"c.rego": "package corral.custom\nimport rego.v1\ndecision := {\"result\":\"allow\", \"mask\": {\"columns\":[\"a.b\"],\"method\":\"redact\"}}\n"}}, in)
	in2 := in
	in2.Action.Operations = nil
	run("noops", Policy{Rules: []Rule{{Name: "r", Who: Who{Any: true}, Targets: StringList{"db"}, Allow: StringList{"select"}}}}, in2)
	run("override builtin", Policy{Rules: []Rule{{Name: "r", Who: Who{Any: true}, Targets: StringList{"db"}, Deny: StringList{"select"}}}, Modules: map[string]string{"corral/corral.rego": "package corral\nimport rego.v1\ndecision := {\"result\":\"allow\"}\n"}}, in)
	run("pkg corral", Policy{Rules: []Rule{{Name: "r", Who: Who{Any: true}, Targets: StringList{"db"}, Allow: StringList{"select"}}}, Modules: map[string]string{"x.rego": "package corral\nimport rego.v1\nallowed contains [0, \"drop\"]\n"}}, Input{Workload: in.Workload, Target: in.Target, Action: Action{Kind: KindSQL, Operations: []string{"drop"}}})
	run("neg timeout", Policy{Rules: []Rule{{Name: "r", Who: Who{Any: true}, Targets: StringList{"db"}, Review: &ReviewSet{Operations: StringList{"select"}, Reviewers: StringList{"group:x"}, Timeout: "-5m"}}}}, in)
	run("issuer glob", Policy{Rules: []Rule{{Name: "r", Who: Who{OIDC: &OIDCWho{Issuer: StringList{"https://*.example.com"}}}, Targets: StringList{"db"}, Allow: StringList{"select"}}}}, Input{Workload: Workload{OIDC: &OIDC{Issuer: "https://evil.io/x.example.com"}}, Target: in.Target, Action: in.Action})
}
