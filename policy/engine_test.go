package policy

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// --- helpers ---

const testTarget = "orders-db"

func newTestEngine(t testing.TB, p Policy) *Engine {
	t.Helper()
	e := NewEngine(slog.New(slog.DiscardHandler))
	if _, err := e.Load(context.Background(), p); err != nil {
		t.Fatalf("Load: %v", err)
	}
	return e
}

// decide calls Decide and enforces the invariant that an error never comes
// with anything but a Deny.
func decide(t testing.TB, e *Engine, in Input) (Decision, error) {
	t.Helper()
	d, err := e.Decide(context.Background(), in)
	if err != nil && d.Result != Deny {
		t.Fatalf("Decide returned %q together with error %v", d.Result, err)
	}
	return d, err
}

func mustDecide(t testing.TB, e *Engine, in Input) Decision {
	t.Helper()
	d, err := decide(t, e, in)
	if err != nil {
		t.Fatalf("Decide: %v (decision %+v)", err, d)
	}
	return d
}

// sqlIn is a statement on the postgres test target.
func sqlIn(w Workload, ops ...string) Input {
	return Input{
		Workload: w,
		Target:   Target{Name: testTarget, Protocol: "postgres", Address: "10.0.0.5:5432"},
		Action: Action{
			Kind:       KindSQL,
			Operations: ops,
			SQL:        &SQL{Command: strings.ToUpper(strings.Join(ops, " ")), Fingerprint: "fp:" + strings.Join(ops, ",")},
		},
	}
}

func connectIn(w Workload) Input {
	return Input{
		Workload: w,
		Target:   Target{Name: testTarget, Protocol: "postgres"},
		Action:   Action{Kind: KindConnect, Operations: []string{"connect"}},
	}
}

func sl(s ...string) StringList { return StringList(s) }

var anyone = Who{Any: true}

func noRuleReason(target string) string {
	return fmt.Sprintf("no rule lets this workload use target %q", target)
}

// --- who matching ---

func TestWhoMatching(t *testing.T) {
	k8s := func(ns, name, sa string, labels map[string]string) Pod {
		return Pod{UID: "u-1", Namespace: ns, Name: name, ServiceAccount: sa, Labels: labels}
	}
	tok := func(iss, sub, email string, groups ...string) *OIDC {
		return &OIDC{Issuer: iss, Subject: sub, Email: email, Groups: groups}
	}
	tests := []struct {
		name string
		who  Who
		w    Workload
		want bool
	}{
		{"any matches an empty workload", Who{Any: true}, Workload{}, true},
		{"any matches a full workload", Who{Any: true}, Workload{Unit: "a.service", UID: 7, OIDC: tok("https://i", "s", "")}, true},

		// unit: glob without a delimiter
		{"unit exact", Who{Unit: sl("etl.service")}, Workload{Unit: "etl.service"}, true},
		{"unit exact mismatch", Who{Unit: sl("etl.service")}, Workload{Unit: "web.service"}, false},
		{"unit glob", Who{Unit: sl("etl-*.service")}, Workload{Unit: "etl-nightly.service"}, true},
		{"unit glob crosses dots (no delimiter)", Who{Unit: sl("etl*")}, Workload{Unit: "etl.nightly.service"}, true},
		{"unit glob mismatch", Who{Unit: sl("etl-*.service")}, Workload{Unit: "etl.timer"}, false},
		{"unit list is or", Who{Unit: sl("web.service", "etl.service")}, Workload{Unit: "etl.service"}, true},
		{"unit list none", Who{Unit: sl("web.service", "etl.service")}, Workload{Unit: "db.service"}, false},
		{"unit star vs empty unit", Who{Unit: sl("*")}, Workload{Exe: "/bin/sh"}, false},
		{"unit star vs any unit", Who{Unit: sl("*")}, Workload{Unit: "x.scope"}, true},

		// exe: "/" delimiter
		{"exe exact", Who{Exe: sl("/usr/bin/psql")}, Workload{Exe: "/usr/bin/psql"}, true},
		{"exe exact mismatch", Who{Exe: sl("/usr/bin/psql")}, Workload{Exe: "/usr/local/bin/psql"}, false},
		{"exe star in segment", Who{Exe: sl("/usr/bin/*")}, Workload{Exe: "/usr/bin/psql"}, true},
		{"exe star does not cross slash", Who{Exe: sl("/usr/bin/*")}, Workload{Exe: "/usr/bin/sub/psql"}, false},
		{"exe star middle segment", Who{Exe: sl("/opt/*/bin/app")}, Workload{Exe: "/opt/v2/bin/app"}, true},
		{"exe star middle segment too deep", Who{Exe: sl("/opt/*/bin/app")}, Workload{Exe: "/opt/v2/x/bin/app"}, false},
		{"exe double star crosses", Who{Exe: sl("/usr/**")}, Workload{Exe: "/usr/local/lib/app/bin/psql"}, true},
		{"exe double star other root", Who{Exe: sl("/usr/**")}, Workload{Exe: "/opt/psql"}, false},
		{"exe double star vs empty exe", Who{Exe: sl("**")}, Workload{Unit: "a.service"}, false},

		// cgroup: "/" delimiter, against cgroup_path
		{"cgroup double star", Who{Cgroup: sl("/kubepods.slice/**")}, Workload{CgroupPath: "/kubepods.slice/kubepods-burstable.slice/cri-containerd-abc.scope"}, true},
		{"cgroup star one segment", Who{Cgroup: sl("/system.slice/*")}, Workload{CgroupPath: "/system.slice/etl.service"}, true},
		{"cgroup star does not cross slash", Who{Cgroup: sl("/system.slice/*")}, Workload{CgroupPath: "/system.slice/etl.service/child"}, false},
		{"cgroup mismatch", Who{Cgroup: sl("/system.slice/*")}, Workload{CgroupPath: "/user.slice/user-1000.slice"}, false},
		{"cgroup star vs empty path", Who{Cgroup: sl("**")}, Workload{Unit: "etl.service"}, false},

		// user: glob
		{"user exact", Who{User: sl("postgres")}, Workload{User: "postgres"}, true},
		{"user glob", Who{User: sl("svc-*")}, Workload{User: "svc-etl"}, true},
		{"user mismatch", Who{User: sl("svc-*")}, Workload{User: "root"}, false},
		{"user star vs empty user", Who{User: sl("*")}, Workload{UID: 1000}, false},

		// uid: exact list
		{"uid in list", Who{UID: []uint32{1000, 1001}}, Workload{UID: 1001}, true},
		{"uid not in list", Who{UID: []uint32{1000, 1001}}, Workload{UID: 1002}, false},
		{"uid zero", Who{UID: []uint32{0}}, Workload{UID: 0, User: "root"}, true},
		{"uid zero vs non-root", Who{UID: []uint32{0}}, Workload{UID: 1000}, false},

		// kubernetes
		{"namespace exact", Who{Kubernetes: &KubernetesWho{Namespace: sl("etl")}}, Workload{Pod: k8s("etl", "p", "sa", nil)}, true},
		{"namespace glob", Who{Kubernetes: &KubernetesWho{Namespace: sl("prod-*")}}, Workload{Pod: k8s("prod-eu", "p", "sa", nil)}, true},
		{"namespace mismatch", Who{Kubernetes: &KubernetesWho{Namespace: sl("prod-*")}}, Workload{Pod: k8s("dev", "p", "sa", nil)}, false},
		{"namespace star outside kubernetes", Who{Kubernetes: &KubernetesWho{Namespace: sl("*")}}, Workload{Unit: "etl.service"}, false},
		{"pod name glob", Who{Kubernetes: &KubernetesWho{Name: sl("migrator-*")}}, Workload{Pod: k8s("etl", "migrator-7f9c-x2", "sa", nil)}, true},
		{"pod name mismatch", Who{Kubernetes: &KubernetesWho{Name: sl("migrator-*")}}, Workload{Pod: k8s("etl", "web-1", "sa", nil)}, false},
		{"pod name star vs empty", Who{Kubernetes: &KubernetesWho{Name: sl("*")}}, Workload{Pod: Pod{Namespace: "etl"}}, false},
		{"service account exact", Who{Kubernetes: &KubernetesWho{ServiceAccount: sl("migrator")}}, Workload{Pod: k8s("etl", "p", "migrator", nil)}, true},
		{"service account mismatch", Who{Kubernetes: &KubernetesWho{ServiceAccount: sl("migrator")}}, Workload{Pod: k8s("etl", "p", "default", nil)}, false},
		{"service account star vs empty", Who{Kubernetes: &KubernetesWho{ServiceAccount: sl("*")}}, Workload{Pod: Pod{Namespace: "etl", Name: "p"}}, false},
		{"labels subset", Who{Kubernetes: &KubernetesWho{Labels: map[string]string{"app": "etl"}}}, Workload{Pod: k8s("etl", "p", "sa", map[string]string{"app": "etl", "tier": "batch"})}, true},
		{"labels all required", Who{Kubernetes: &KubernetesWho{Labels: map[string]string{"app": "etl", "tier": "batch"}}}, Workload{Pod: k8s("etl", "p", "sa", map[string]string{"app": "etl"})}, false},
		{"labels value differs", Who{Kubernetes: &KubernetesWho{Labels: map[string]string{"app": "etl"}}}, Workload{Pod: k8s("etl", "p", "sa", map[string]string{"app": "web"})}, false},
		{"labels are not globs", Who{Kubernetes: &KubernetesWho{Labels: map[string]string{"app": "*"}}}, Workload{Pod: k8s("etl", "p", "sa", map[string]string{"app": "etl"})}, false},
		{"labels vs no labels", Who{Kubernetes: &KubernetesWho{Labels: map[string]string{"app": "etl"}}}, Workload{Pod: k8s("etl", "p", "sa", nil)}, false},
		{"kubernetes and: namespace and sa", Who{Kubernetes: &KubernetesWho{Namespace: sl("etl"), ServiceAccount: sl("migrator")}}, Workload{Pod: k8s("etl", "p", "migrator", nil)}, true},
		{"kubernetes and: sa differs", Who{Kubernetes: &KubernetesWho{Namespace: sl("etl"), ServiceAccount: sl("migrator")}}, Workload{Pod: k8s("etl", "p", "default", nil)}, false},
		{"kubernetes and: namespace differs", Who{Kubernetes: &KubernetesWho{Namespace: sl("etl"), ServiceAccount: sl("migrator")}}, Workload{Pod: k8s("web", "p", "migrator", nil)}, false},

		// oidc
		{"issuer exact", Who{OIDC: &OIDCWho{Issuer: sl("https://idp.example.com")}}, Workload{OIDC: tok("https://idp.example.com", "s", "")}, true},
		{"issuer glob", Who{OIDC: &OIDCWho{Issuer: sl("https://*.example.com")}}, Workload{OIDC: tok("https://idp.example.com", "s", "")}, true},
		{"issuer mismatch", Who{OIDC: &OIDCWho{Issuer: sl("https://idp.example.com")}}, Workload{OIDC: tok("https://idp.example.org", "s", "")}, false},
		{"issuer without token", Who{OIDC: &OIDCWho{Issuer: sl("https://*")}}, Workload{Unit: "etl.service"}, false},
		{"subject glob", Who{OIDC: &OIDCWho{Subject: sl("system:serviceaccount:etl:*")}}, Workload{OIDC: tok("https://k8s", "system:serviceaccount:etl:migrator", "")}, true},
		{"subject mismatch", Who{OIDC: &OIDCWho{Subject: sl("system:serviceaccount:etl:*")}}, Workload{OIDC: tok("https://k8s", "system:serviceaccount:web:app", "")}, false},
		{"subject star without token", Who{OIDC: &OIDCWho{Subject: sl("*")}}, Workload{User: "alice"}, false},
		{"email glob", Who{OIDC: &OIDCWho{Email: sl("*@example.com")}}, Workload{OIDC: tok("https://i", "s", "alice@example.com")}, true},
		{"email mismatch", Who{OIDC: &OIDCWho{Email: sl("*@example.com")}}, Workload{OIDC: tok("https://i", "s", "eve@evil.test")}, false},
		{"email star vs token without email", Who{OIDC: &OIDCWho{Email: sl("*")}}, Workload{OIDC: tok("https://i", "s", "")}, false},
		{"groups any of", Who{OIDC: &OIDCWho{Groups: sl("dba", "ops")}}, Workload{OIDC: tok("https://i", "s", "", "dev", "ops")}, true},
		{"groups none in common", Who{OIDC: &OIDCWho{Groups: sl("dba")}}, Workload{OIDC: tok("https://i", "s", "", "dev", "ops")}, false},
		{"groups are exact, not globs", Who{OIDC: &OIDCWho{Groups: sl("db*")}}, Workload{OIDC: tok("https://i", "s", "", "dba")}, false},
		{"groups vs token without groups", Who{OIDC: &OIDCWho{Groups: sl("dba")}}, Workload{OIDC: tok("https://i", "s", "")}, false},
		{"groups without token", Who{OIDC: &OIDCWho{Groups: sl("dba")}}, Workload{User: "dba"}, false},
		{"oidc and: issuer and groups", Who{OIDC: &OIDCWho{Issuer: sl("https://idp"), Groups: sl("dba")}}, Workload{OIDC: tok("https://idp", "s", "", "dba")}, true},
		{"oidc and: issuer differs", Who{OIDC: &OIDCWho{Issuer: sl("https://idp"), Groups: sl("dba")}}, Workload{OIDC: tok("https://other", "s", "", "dba")}, false},

		// and across fields
		{"and: unit and user", Who{Unit: sl("etl.service"), User: sl("etl")}, Workload{Unit: "etl.service", User: "etl"}, true},
		{"and: unit matches, user does not", Who{Unit: sl("etl.service"), User: sl("etl")}, Workload{Unit: "etl.service", User: "root"}, false},
		{"and: exe matches, uid does not", Who{Exe: sl("/usr/bin/*"), UID: []uint32{1000}}, Workload{Exe: "/usr/bin/psql", UID: 0}, false},
		{"and: kubernetes and oidc", Who{Kubernetes: &KubernetesWho{Namespace: sl("etl")}, OIDC: &OIDCWho{Groups: sl("dba")}}, Workload{Pod: k8s("etl", "p", "sa", nil), OIDC: tok("https://i", "s", "", "dba")}, true},
		{"and: kubernetes matches, no token", Who{Kubernetes: &KubernetesWho{Namespace: sl("etl")}, OIDC: &OIDCWho{Groups: sl("dba")}}, Workload{Pod: k8s("etl", "p", "sa", nil)}, false},
		{"and: cgroup and exe", Who{Cgroup: sl("/system.slice/**"), Exe: sl("/usr/bin/psql")}, Workload{CgroupPath: "/system.slice/etl.service", Exe: "/usr/bin/psql"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEngine(t, Policy{Rules: []Rule{{Name: "r", Who: tt.who, Targets: sl(testTarget), Allow: sl("select")}}})
			d := mustDecide(t, e, sqlIn(tt.w, "select"))
			if tt.want {
				if d.Result != Allow || d.Rule != "r" {
					t.Fatalf("want allow by rule r, got %+v", d)
				}
				return
			}
			if d.Result != Deny || d.Reason != noRuleReason(testTarget) || d.Rule != "" {
				t.Fatalf("want deny %q with no rule, got %+v", noRuleReason(testTarget), d)
			}
		})
	}
}

// A rule only applies to the targets it names.
func TestRuleAppliesOnlyToItsTargets(t *testing.T) {
	e := newTestEngine(t, Policy{Rules: []Rule{{Name: "r", Who: anyone, Targets: sl("other-db"), Allow: sl("*")}}})
	d := mustDecide(t, e, sqlIn(Workload{Unit: "a.service"}, "select"))
	if d.Result != Deny || d.Reason != noRuleReason(testTarget) || d.Rule != "" {
		t.Fatalf("got %+v", d)
	}
	in := sqlIn(Workload{Unit: "a.service"}, "select")
	in.Target.Name = "other-db"
	if d := mustDecide(t, e, in); d.Result != Allow {
		t.Fatalf("other-db: got %+v", d)
	}
}

// Validation says a who without matchers "matches nobody"; the engine must
// agree, so that a rule whose matchers were lost (a typo, a field the
// decoder dropped) never opens the target to every workload.
func TestEmptyWhoMatchesNobody(t *testing.T) {
	for _, who := range []Who{{}, {Kubernetes: &KubernetesWho{}}, {OIDC: &OIDCWho{}}} {
		e := newTestEngine(t, Policy{Rules: []Rule{{Name: "r", Who: who, Targets: sl(testTarget), Allow: sl("select")}}})
		d := mustDecide(t, e, sqlIn(Workload{Unit: "a.service", User: "root"}, "select"))
		if d.Result != Deny {
			t.Errorf("who %+v: got %s (%s), want deny", who, d.Result, d.Reason)
		}
	}
}

// --- precedence ---

func TestPrecedence(t *testing.T) {
	readers := Rule{
		Name:    "readers",
		Who:     anyone,
		Targets: sl(testTarget),
		Allow:   sl("select", "insert"),
		Review:  &ReviewSet{Operations: sl("update", "delete"), Reviewers: sl("group:dba")},
		Deny:    sl("drop"),
	}
	admins := Rule{Name: "admins", Who: Who{Unit: sl("admin.service")}, Targets: sl(testTarget), Allow: sl("*")}
	lockdown := Rule{Name: "lockdown", Who: Who{Unit: sl("intern.service")}, Targets: sl(testTarget), Deny: sl("*")}
	user := Workload{Unit: "app.service"}
	admin := Workload{Unit: "admin.service"}
	intern := Workload{Unit: "intern.service"}

	allow := func(rule string) Decision {
		return Decision{Result: Allow, Reason: fmt.Sprintf("allowed by rule %q", rule), Rule: rule, Credential: "default", Record: true}
	}
	deny := func(reason, rule string) Decision {
		return Decision{Result: Deny, Reason: reason, Rule: rule, Record: true}
	}
	review := func(op, rule string, reviewers ...string) Decision {
		return Decision{Result: Review, Reason: fmt.Sprintf("%s needs review under rule %q", op, rule), Rule: rule,
			Reviewers: reviewers, Grant: "once", Timeout: DefaultReviewTimeout, Credential: "default", Record: true}
	}

	tests := []struct {
		name  string
		rules []Rule
		w     Workload
		ops   []string
		want  Decision
	}{
		{"allowed op", []Rule{readers}, user, []string{"select"}, allow("readers")},
		{"all ops allowed", []Rule{readers}, user, []string{"select", "insert"}, allow("readers")},
		{"reviewed op", []Rule{readers}, user, []string{"delete"}, review("delete", "readers", "group:dba")},
		{"select+delete: delete reviewed", []Rule{readers}, user, []string{"select", "delete"}, review("delete", "readers", "group:dba")},
		{"one op uncovered", []Rule{readers}, user, []string{"select", "truncate"}, deny("no rule allows truncate", "readers")},
		{"uncovered beats review", []Rule{readers}, user, []string{"delete", "truncate"}, deny("no rule allows truncate", "readers")},
		{"denied op", []Rule{readers}, user, []string{"drop"}, deny(`drop is denied by rule "readers"`, "readers")},
		{"deny beats allow in a multi-op statement", []Rule{readers}, user, []string{"select", "drop"}, deny(`drop is denied by rule "readers"`, "readers")},
		{"deny beats review", []Rule{readers}, user, []string{"delete", "drop"}, deny(`drop is denied by rule "readers"`, "readers")},
		{"unknown op", []Rule{readers}, user, []string{"frobnicate"}, deny(`unknown operation "frobnicate"`, "readers")},
		{"unknown beats deny", []Rule{readers}, user, []string{"drop", "frobnicate"}, deny(`unknown operation "frobnicate"`, "readers")},
		{"ssh word on a sql action is unknown", []Rule{admins}, admin, []string{"shell"}, deny(`unknown operation "shell"`, "admins")},
		{"wildcard allow", []Rule{admins}, admin, []string{"truncate", "copy program", "ddl"}, allow("admins")},
		{"wildcard does not make a word known", []Rule{admins}, admin, []string{"frobnicate"}, deny(`unknown operation "frobnicate"`, "admins")},
		{"deny of another rule beats wildcard allow", []Rule{readers, admins}, admin, []string{"drop"}, deny(`drop is denied by rule "readers"`, "readers")},
		{"review of another rule beats wildcard allow", []Rule{readers, admins}, admin, []string{"delete"}, review("delete", "readers", "group:dba")},
		{"wildcard allow covers what another rule leaves out", []Rule{readers, admins}, admin, []string{"truncate"}, allow("admins")},
		{"lowest-index allowing rule", []Rule{readers, admins}, admin, []string{"select"}, allow("readers")},
		{"lowest-index allowing rule, reversed", []Rule{admins, readers}, admin, []string{"select"}, allow("admins")},
		{"wildcard deny", []Rule{readers, lockdown}, intern, []string{"select"}, deny(`select is denied by rule "lockdown"`, "lockdown")},
		{"wildcard deny covers connect", []Rule{readers, lockdown}, intern, []string{"connect"}, deny(`connect is denied by rule "lockdown"`, "lockdown")},
		{"rule not applicable to workload", []Rule{admins}, user, []string{"select"}, deny(noRuleReason(testTarget), "")},
		{"no rules", nil, user, []string{"select"}, deny(noRuleReason(testTarget), "")},
		{"connect op in a sql action is always known", []Rule{readers}, user, []string{"connect"}, allow("readers")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEngine(t, Policy{Rules: tt.rules})
			got := mustDecide(t, e, sqlIn(tt.w, tt.ops...))
			tt.want.PolicyVersion = 1
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ops %v:\n got  %+v\n want %+v", tt.ops, got, tt.want)
			}
		})
	}
}

// When several rules deny, the decision names the lowest-index one.
func TestDenyNamesLowestIndexRule(t *testing.T) {
	e := newTestEngine(t, Policy{Rules: []Rule{
		{Name: "a", Who: anyone, Targets: sl(testTarget), Allow: sl("*"), Deny: sl("truncate")},
		{Name: "b", Who: anyone, Targets: sl(testTarget), Deny: sl("drop", "truncate")},
	}})
	d := mustDecide(t, e, sqlIn(Workload{Unit: "x"}, "select", "drop", "truncate"))
	if d.Result != Deny || d.Rule != "a" || d.Reason != `truncate is denied by rule "a"` {
		t.Fatalf("got %+v", d)
	}
	d = mustDecide(t, e, sqlIn(Workload{Unit: "x"}, "drop"))
	if d.Result != Deny || d.Rule != "b" || d.Reason != `drop is denied by rule "b"` {
		t.Fatalf("got %+v", d)
	}
}

func TestReviewMerging(t *testing.T) {
	rules := []Rule{
		{Name: "base", Who: anyone, Targets: sl(testTarget), Allow: sl("select")},
		{Name: "windowed", Who: anyone, Targets: sl(testTarget),
			Review: &ReviewSet{Operations: sl("delete"), Reviewers: sl("user:bob", "group:dba"), Grant: "window", Window: "30m", Timeout: "2m", Webhook: "https://hooks.example/T1"}},
		{Name: "second", Who: anyone, Targets: sl(testTarget),
			Review: &ReviewSet{Operations: sl("update", "delete"), Reviewers: sl("group:dba", "group:sre"), Timeout: "1h"}},
		{Name: "other-workload", Who: Who{Unit: sl("nobody.service")}, Targets: sl(testTarget),
			Review: &ReviewSet{Operations: sl("*"), Reviewers: sl("group:never")}},
	}
	e := newTestEngine(t, Policy{Rules: rules})
	w := Workload{Unit: "app.service"}

	d := mustDecide(t, e, sqlIn(w, "select", "delete"))
	want := Decision{Result: Review, Reason: `delete needs review under rule "windowed"`, Rule: "windowed",
		Reviewers: []string{"group:dba", "group:sre", "user:bob"}, Grant: "window", Window: 30 * time.Minute,
		Timeout: 2 * time.Minute, Webhook: "https://hooks.example/T1", Credential: "default", Record: true, PolicyVersion: 1}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("select+delete:\n got  %+v\n want %+v", d, want)
	}

	// Only the second rule reviews update: its settings, the default grant.
	d = mustDecide(t, e, sqlIn(w, "update"))
	want = Decision{Result: Review, Reason: `update needs review under rule "second"`, Rule: "second",
		Reviewers: []string{"group:dba", "group:sre"}, Grant: "once", Timeout: time.Hour, Credential: "default", Record: true, PolicyVersion: 1}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("update:\n got  %+v\n want %+v", d, want)
	}
}

// A rule from the cluster (an AccessRule, which a namespace's users may
// write) does not add reviewers to an operation a rule of the file holds:
// its team could otherwise approve what the file holds for others. Where
// no file rule reviews the operation, its reviewers are the ones.
func TestClusterRuleReviewers(t *testing.T) {
	rules := []Rule{
		{Name: "file", Who: anyone, Targets: sl(testTarget), Allow: sl("select"),
			Review: &ReviewSet{Operations: sl("delete"), Reviewers: sl("group:dba")}},
		{Name: "etl/own", Who: anyone, Targets: sl(testTarget), Cluster: true,
			Review: &ReviewSet{Operations: sl("delete", "update"), Reviewers: sl("user:mallory")}},
	}
	e := newTestEngine(t, Policy{Rules: rules})
	w := Workload{Unit: "app.service"}
	if d := mustDecide(t, e, sqlIn(w, "delete")); d.Result != Review || !reflect.DeepEqual(d.Reviewers, []string{"group:dba"}) {
		t.Errorf("delete: %s by %v, want review by group:dba only", d.Result, d.Reviewers)
	}
	if d := mustDecide(t, e, sqlIn(w, "update")); d.Result != Review || !reflect.DeepEqual(d.Reviewers, []string{"user:mallory"}) {
		t.Errorf("update: %s by %v, want review by user:mallory", d.Result, d.Reviewers)
	}
	if d := mustDecide(t, e, sqlIn(w, "update", "delete")); !reflect.DeepEqual(d.Reviewers, []string{"group:dba"}) {
		t.Errorf("update and delete: reviewers %v, want group:dba only", d.Reviewers)
	}
}

func TestReviewDefaults(t *testing.T) {
	e := newTestEngine(t, Policy{Rules: []Rule{{Name: "r", Who: anyone, Targets: sl(testTarget),
		Review: &ReviewSet{Operations: sl("*"), Reviewers: sl("group:dba")}}}})
	d := mustDecide(t, e, sqlIn(Workload{Unit: "a"}, "truncate"))
	if d.Result != Review || d.Grant != "once" || d.Window != 0 || d.Timeout != 5*time.Minute || !reflect.DeepEqual(d.Reviewers, []string{"group:dba"}) {
		t.Fatalf("got %+v", d)
	}
	if d.Allowed() {
		t.Fatal("a review is not allowed")
	}
}

// --- connect ---

func TestConnect(t *testing.T) {
	w := Workload{Unit: "app.service"}
	tests := []struct {
		name   string
		rules  []Rule
		result string
		reason string
		rule   string
	}{
		{"any applicable rule lets in", []Rule{{Name: "r", Who: anyone, Targets: sl(testTarget), Allow: sl("select")}}, Allow, `allowed by rule "r"`, "r"},
		{"even a rule that only denies", []Rule{{Name: "r", Who: anyone, Targets: sl(testTarget), Deny: sl("drop")}}, Allow, `allowed by rule "r"`, "r"},
		{"even a rule that only reviews", []Rule{{Name: "r", Who: anyone, Targets: sl(testTarget), Review: &ReviewSet{Operations: sl("delete"), Reviewers: sl("group:dba")}}}, Allow, `allowed by rule "r"`, "r"},
		{"lowest-index applicable rule", []Rule{
			{Name: "other", Who: Who{Unit: sl("x.service")}, Targets: sl(testTarget), Allow: sl("*")},
			{Name: "first", Who: anyone, Targets: sl(testTarget), Allow: sl("select")},
			{Name: "second", Who: Who{Unit: sl("app.service")}, Targets: sl(testTarget), Allow: sl("*")},
		}, Allow, `allowed by rule "first"`, "first"},
		{"denied connect", []Rule{
			{Name: "r", Who: anyone, Targets: sl(testTarget), Allow: sl("*")},
			{Name: "no-connect", Who: Who{Unit: sl("app.service")}, Targets: sl(testTarget), Deny: sl("connect")},
		}, Deny, `connect is denied by rule "no-connect"`, "no-connect"},
		{"wildcard deny", []Rule{{Name: "r", Who: anyone, Targets: sl(testTarget), Deny: sl("*")}}, Deny, `connect is denied by rule "r"`, "r"},
		{"reviewed connect", []Rule{{Name: "r", Who: anyone, Targets: sl(testTarget), Review: &ReviewSet{Operations: sl("connect"), Reviewers: sl("group:dba")}}}, Review, `connect needs review under rule "r"`, "r"},
		{"wildcard review", []Rule{{Name: "r", Who: anyone, Targets: sl(testTarget), Allow: sl("select"), Review: &ReviewSet{Operations: sl("*"), Reviewers: sl("group:dba")}}}, Review, `connect needs review under rule "r"`, "r"},
		{"no applicable rule", []Rule{{Name: "r", Who: Who{Unit: sl("x.service")}, Targets: sl(testTarget), Allow: sl("*")}}, Deny, noRuleReason(testTarget), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEngine(t, Policy{Rules: tt.rules})
			d := mustDecide(t, e, connectIn(w))
			if d.Result != tt.result || d.Reason != tt.reason || d.Rule != tt.rule {
				t.Fatalf("got %s %q rule %q, want %s %q rule %q", d.Result, d.Reason, d.Rule, tt.result, tt.reason, tt.rule)
			}
		})
	}
	// The connect kind knows no other word.
	e := newTestEngine(t, Policy{Rules: []Rule{{Name: "r", Who: anyone, Targets: sl(testTarget), Allow: sl("*")}}})
	in := connectIn(w)
	in.Action.Operations = []string{"select"}
	if d := mustDecide(t, e, in); d.Result != Deny || d.Reason != `unknown operation "select"` {
		t.Fatalf("select in a connect action: %+v", d)
	}
}

// Actions of the other kinds are judged against their own vocabulary.
func TestOtherKinds(t *testing.T) {
	rules := []Rule{
		{Name: "ssh", Who: anyone, Targets: sl("bastion"), Allow: sl("exec"), Review: &ReviewSet{Operations: sl("shell"), Reviewers: sl("group:ops")}, Deny: sl("forward")},
		{Name: "api", Who: anyone, Targets: sl("api"), Allow: sl("get", "head")},
		{Name: "k8s", Who: anyone, Targets: sl("cluster"), Allow: sl("get", "list", "watch"), Deny: sl("exec")},
	}
	e := newTestEngine(t, Policy{Rules: rules})
	w := Workload{Unit: "a"}
	tests := []struct {
		target, protocol, kind string
		ops                    []string
		result, reason         string
	}{
		{"bastion", "ssh", KindSSH, []string{"exec"}, Allow, `allowed by rule "ssh"`},
		{"bastion", "ssh", KindSSH, []string{"shell"}, Review, `shell needs review under rule "ssh"`},
		{"bastion", "ssh", KindSSH, []string{"forward"}, Deny, `forward is denied by rule "ssh"`},
		{"bastion", "ssh", KindSSH, []string{"sftp"}, Deny, "no rule allows sftp"},
		{"bastion", "ssh", KindSSH, []string{"select"}, Deny, `unknown operation "select"`},
		{"api", "http", KindHTTP, []string{"get"}, Allow, `allowed by rule "api"`},
		{"api", "http", KindHTTP, []string{"delete"}, Deny, "no rule allows delete"},
		{"api", "http", KindHTTP, []string{"list"}, Deny, `unknown operation "list"`},
		{"cluster", "kubernetes", KindKubernetes, []string{"list"}, Allow, `allowed by rule "k8s"`},
		{"cluster", "kubernetes", KindKubernetes, []string{"exec"}, Deny, `exec is denied by rule "k8s"`},
		{"cluster", "kubernetes", "bogus-kind", []string{"get"}, Deny, `unknown operation "get"`},
		{"cluster", "kubernetes", "", []string{"get"}, Deny, `unknown operation "get"`},
	}
	for _, tt := range tests {
		in := Input{Workload: w, Target: Target{Name: tt.target, Protocol: tt.protocol}, Action: Action{Kind: tt.kind, Operations: tt.ops}}
		d := mustDecide(t, e, in)
		if d.Result != tt.result || d.Reason != tt.reason {
			t.Errorf("%s %s %v: got %s %q, want %s %q", tt.target, tt.kind, tt.ops, d.Result, d.Reason, tt.result, tt.reason)
		}
	}
}

// A statement that carries no operation is not allowed.
func TestNoOperations(t *testing.T) {
	e := newTestEngine(t, Policy{Rules: []Rule{{Name: "r", Who: anyone, Targets: sl(testTarget), Allow: sl("*")}}})
	for _, ops := range [][]string{nil, {}} {
		in := sqlIn(Workload{Unit: "a"})
		in.Action.Operations = ops
		d, _ := decide(t, e, in)
		if d.Result != Deny {
			t.Fatalf("ops %#v: got %+v", ops, d)
		}
	}
}

// --- mask, credential, version ---

func TestMaskAndCredential(t *testing.T) {
	maskA := Mask{Columns: []string{"customers.email"}, Method: "partial"}
	maskB := Mask{Detect: []string{"credit_card", "ssn"}, Method: "redact"}
	maskC := Mask{Columns: []string{"public.users.password"}, Method: "hash"}
	maskD := Mask{Columns: []string{"secrets.value"}, Method: "null"}
	rules := []Rule{
		{Name: "writer", Who: Who{Unit: sl("etl.service")}, Targets: sl(testTarget), Allow: sl("insert"), Deny: sl("drop"),
			Review: &ReviewSet{Operations: sl("delete"), Reviewers: sl("group:dba")}, Mask: []Mask{maskA, maskB}, Credential: "writer"},
		{Name: "not-applicable", Who: Who{Unit: sl("web.service")}, Targets: sl(testTarget), Allow: sl("*"), Mask: []Mask{maskD}, Credential: "web"},
		{Name: "reader", Who: anyone, Targets: sl(testTarget), Allow: sl("select"), Mask: []Mask{maskC}},
		{Name: "other-target", Who: anyone, Targets: sl("other"), Allow: sl("*"), Mask: []Mask{maskD}, Credential: "x"},
	}
	e := newTestEngine(t, Policy{Rules: rules})
	etl := Workload{Unit: "etl.service"}

	// The credential is the lowest-index applicable rule's even when a
	// later rule is the one that allows; masks come from every applicable
	// rule, in rule order.
	d := mustDecide(t, e, sqlIn(etl, "select"))
	if d.Result != Allow || d.Rule != "reader" || d.Credential != "writer" {
		t.Fatalf("select: %+v", d)
	}
	if want := []Mask{maskA, maskB, maskC}; !reflect.DeepEqual(d.Mask, want) {
		t.Fatalf("mask = %+v, want %+v", d.Mask, want)
	}
	if !d.Record {
		t.Fatal("record = false")
	}

	// A review keeps the mask and credential for when the operation runs.
	d = mustDecide(t, e, sqlIn(etl, "delete"))
	if d.Result != Review || d.Credential != "writer" || !reflect.DeepEqual(d.Mask, []Mask{maskA, maskB, maskC}) {
		t.Fatalf("delete: %+v", d)
	}

	// A deny carries neither.
	for _, ops := range [][]string{{"drop"}, {"truncate"}, {"frobnicate"}} {
		d = mustDecide(t, e, sqlIn(etl, ops...))
		if d.Result != Deny || d.Credential != "" || d.Mask != nil {
			t.Fatalf("%v: %+v", ops, d)
		}
	}
	d2 := mustDecide(t, e, connectIn(Workload{Unit: "nobody"}))
	if d2.Result != Allow || d2.Credential != "default" || !reflect.DeepEqual(d2.Mask, []Mask{maskC}) {
		t.Fatalf("connect from another workload: %+v", d2)
	}

	// A rule that names no credential uses "default"; no masks is nil.
	e = newTestEngine(t, Policy{Rules: []Rule{{Name: "r", Who: anyone, Targets: sl(testTarget), Allow: sl("select")}}})
	d = mustDecide(t, e, sqlIn(etl, "select"))
	if d.Credential != "default" || d.Mask != nil {
		t.Fatalf("plain rule: %+v", d)
	}
}

func TestPolicyVersion(t *testing.T) {
	ctx := context.Background()
	e := NewEngine(slog.New(slog.DiscardHandler))
	if e.Version() != 0 {
		t.Fatalf("fresh engine version %d", e.Version())
	}
	p := Policy{Rules: []Rule{{Name: "r", Who: anyone, Targets: sl(testTarget), Allow: sl("select")}}}
	for want := uint64(1); want <= 3; want++ {
		v, err := e.Load(ctx, p)
		if err != nil || v != want || e.Version() != want {
			t.Fatalf("Load = %d, %v; Version %d; want %d", v, err, e.Version(), want)
		}
		for _, in := range []Input{sqlIn(Workload{Unit: "a"}, "select"), sqlIn(Workload{Unit: "a"}, "drop"), connectIn(Workload{})} {
			if d, _ := decide(t, e, in); d.PolicyVersion != want {
				t.Fatalf("decision version %d, want %d: %+v", d.PolicyVersion, want, d)
			}
		}
	}
	// A failed load keeps the version.
	v, err := e.Load(ctx, Policy{Modules: map[string]string{"bad.rego": "package corral.custom\nx :="}})
	if err == nil || v != 3 || e.Version() != 3 {
		t.Fatalf("bad load = %d, %v; version %d", v, err, e.Version())
	}
}

// --- custom modules ---

const customPrefix = "package corral.custom\n\nimport rego.v1\n\n"

func custom(src string) map[string]string {
	return map[string]string{"custom.rego": customPrefix + src}
}

func TestCustomDeny(t *testing.T) {
	rules := []Rule{
		{Name: "r", Who: anyone, Targets: sl(testTarget), Allow: sl("select"), Review: &ReviewSet{Operations: sl("delete"), Reviewers: sl("group:dba")}, Mask: []Mask{{Detect: []string{"email"}, Method: "redact"}}},
	}
	e := newTestEngine(t, Policy{Rules: rules, Modules: custom(`
deny contains "interns may not read customers" if {
	input.workload.user == "intern"
	"customers" in input.action.sql.tables
}

deny contains "b: no statements without WHERE" if {
	input.workload.user == "intern"
	input.action.sql.has_where == false
	not "select" in input.action.operations
}

deny contains "a: interns never delete" if {
	input.workload.user == "intern"
	"delete" in input.action.operations
}

deny contains "after hours" if input.workload.user == "night"
`)})
	in := sqlIn(Workload{User: "intern"}, "select")
	in.Action.SQL.Tables = []string{"customers"}
	d := mustDecide(t, e, in)
	if d.Result != Deny || d.Reason != "interns may not read customers" || d.Rule != "custom" || d.Mask != nil || d.Credential != "" {
		t.Fatalf("custom deny over allow: %+v", d)
	}

	// Beats a review; with several reasons, the first in sort order.
	d = mustDecide(t, e, sqlIn(Workload{User: "intern"}, "delete"))
	if d.Result != Deny || d.Reason != "a: interns never delete" || d.Rule != "custom" {
		t.Fatalf("custom deny over review: %+v", d)
	}

	// Applies where no rule does.
	in = sqlIn(Workload{User: "night"}, "select")
	in.Target.Name = "unruled"
	d = mustDecide(t, e, in)
	if d.Result != Deny || d.Reason != "after hours" || d.Rule != "custom" {
		t.Fatalf("custom deny, no rule: %+v", d)
	}

	// Otherwise the built-in decision stands.
	in = sqlIn(Workload{User: "alice"}, "select")
	in.Action.SQL.Tables = []string{"customers"}
	d = mustDecide(t, e, in)
	if d.Result != Allow || d.Rule != "r" || len(d.Mask) != 1 {
		t.Fatalf("no custom deny: %+v", d)
	}
}

func TestCustomDecision(t *testing.T) {
	rules := []Rule{{Name: "r", Who: anyone, Targets: sl(testTarget), Allow: sl("select"), Deny: sl("drop")}}
	e := newTestEngine(t, Policy{Rules: rules, Modules: custom(`
decision := {
	"result": "allow",
	"reason": "break-glass",
	"rule": "break-glass",
	"credential": "admin",
	"mask": [{"columns": ["customers.email"], "method": "hash"}],
	"record": true,
} if input.workload.unit == "breakglass.service"

decision := {
	"result": "review",
	"reason": "two-person rule",
	"reviewers": ["group:sre", "user:carol"],
	"grant": "window",
	"window": "1h",
	"timeout": "30s",
} if input.workload.unit == "twoperson.service"

decision := {"result": "deny", "reason": "quarantined", "credential": "x", "mask": [{"detect": ["email"], "method": "redact"}]} if input.workload.unit == "quarantine.service"

decision := {"result": "allow", "record": false} if input.workload.unit == "quiet.service"

# Extending rather than replacing: the built-in decision is data.corral.builtin.
decision := object.union(data.corral.builtin, {"reason": concat("", ["audited: ", data.corral.builtin.reason])}) if {
	input.workload.unit == "wrapped.service"
}
`)})

	// Replaces even a built-in deny.
	d := mustDecide(t, e, sqlIn(Workload{Unit: "breakglass.service"}, "drop"))
	want := Decision{Result: Allow, Reason: "break-glass", Rule: "break-glass", Credential: "admin",
		Mask: []Mask{{Columns: []string{"customers.email"}, Method: "hash"}}, Record: true, PolicyVersion: 1}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("break-glass:\n got  %+v\n want %+v", d, want)
	}

	d = mustDecide(t, e, sqlIn(Workload{Unit: "twoperson.service"}, "select"))
	want = Decision{Result: Review, Reason: "two-person rule", Reviewers: []string{"group:sre", "user:carol"},
		Grant: "window", Window: time.Hour, Timeout: 30 * time.Second, Record: true, PolicyVersion: 1}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("two-person:\n got  %+v\n want %+v", d, want)
	}

	// A custom deny drops credential and mask.
	d = mustDecide(t, e, sqlIn(Workload{Unit: "quarantine.service"}, "select"))
	want = Decision{Result: Deny, Reason: "quarantined", Record: true, PolicyVersion: 1}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("quarantine:\n got  %+v\n want %+v", d, want)
	}

	// Defaults: reason is the result; record may be turned off.
	d = mustDecide(t, e, sqlIn(Workload{Unit: "quiet.service"}, "select"))
	if d.Result != Allow || d.Reason != Allow || d.Record {
		t.Fatalf("quiet: %+v", d)
	}

	d = mustDecide(t, e, sqlIn(Workload{Unit: "wrapped.service"}, "drop"))
	if d.Result != Deny || d.Rule != "r" || d.Reason != `audited: drop is denied by rule "r"` {
		t.Fatalf("wrapped: %+v", d)
	}

	// Anyone else: the built-in decision.
	d = mustDecide(t, e, sqlIn(Workload{Unit: "app.service"}, "drop"))
	if d.Result != Deny || d.Rule != "r" || d.Reason != `drop is denied by rule "r"` {
		t.Fatalf("built-in: %+v", d)
	}
}

// A custom deny "always wins" (corral.rego's header): a custom decision
// must not turn it into an allow.
func TestCustomDenyBeatsCustomDecision(t *testing.T) {
	e := newTestEngine(t, Policy{
		Rules: []Rule{{Name: "r", Who: anyone, Targets: sl(testTarget), Allow: sl("select")}},
		Modules: map[string]string{
			"a.rego": customPrefix + `decision := {"result": "allow", "reason": "custom allow"} if input.workload.unit == "app.service"` + "\n",
			"b.rego": customPrefix + `deny contains "frozen" if input.workload.unit == "app.service"` + "\n",
		},
	})
	d := mustDecide(t, e, sqlIn(Workload{Unit: "app.service"}, "select"))
	if d.Result != Deny || d.Reason != "frozen" || d.Rule != "custom" {
		t.Fatalf("got %+v, want deny %q by rule custom", d, "frozen")
	}
}

// --- fail closed ---

func TestFailClosedDecisions(t *testing.T) {
	rules := []Rule{{Name: "r", Who: anyone, Targets: sl(testTarget), Allow: sl("*")}}
	tests := []struct {
		name   string
		module string
		reason string // a part of the client-facing reason
	}{
		{"invalid result", `decision := {"result": "maybe"}`, "invalid decision"},
		{"missing result", `decision := {"reason": "no result"}`, "invalid decision"},
		{"result is not a string", `decision := {"result": true}`, "invalid decision"},
		{"decision is not an object", `decision := "allow"`, "invalid decision"},
		{"decision is a set", `decision contains "allow" if true`, "invalid decision"},
		{"review without reviewers", `decision := {"result": "review", "reason": "r"}`, "names no reviewer"},
		{"review with empty reviewers", `decision := {"result": "review", "reviewers": []}`, "names no reviewer"},
		{"review with non-string reviewers", `decision := {"result": "review", "reviewers": [1, true]}`, "names no reviewer"},
		{"review with a bad window", `decision := {"result": "review", "reviewers": ["group:a"], "grant": "window", "window": "soon"}`, "grant window"},
		{"review with a window grant and no window", `decision := {"result": "review", "reviewers": ["group:a"], "grant": "window"}`, "grant window"},
		{"review with a bad timeout", `decision := {"result": "review", "reviewers": ["group:a"], "timeout": "later"}`, "timeout"},
		{"review with a negative timeout", `decision := {"result": "review", "reviewers": ["group:a"], "timeout": "-5m"}`, "timeout"},
		{"review with an unknown grant", `decision := {"result": "review", "reviewers": ["group:a"], "grant": "forever"}`, "grant"},
		{"mask entry of the wrong shape", `decision := {"result": "allow", "mask": [{"columns": "customers.email", "method": "redact"}]}`, "mask"},
		{"mask that is not a list", `decision := {"result": "allow", "mask": {"columns": ["customers.email"], "method": "redact"}}`, "mask"},
		{"mask with an unknown method", `decision := {"result": "allow", "mask": [{"columns": ["customers.email"], "method": "blur"}]}`, "mask"},
		{"mask with unknown filters", `decision := {"result": "allow", "mask": [{"columns": ["customers.email"], "method": "redact", "filters": "exact"}]}`, "mask"},
		{"conflicting complete rule", `
decision := {"result": "allow"} if input.workload.unit != ""
decision := {"result": "deny"} if input.workload.user != ""`, "could not be evaluated"},
		{"conflicting helper", `
level := 1 if input.workload.unit != ""
level := 2 if input.workload.user != ""
decision := {"result": "allow", "reason": sprintf("%d", [level])}`, "could not be evaluated"},
		{"builtin error", `decision := {"result": "allow", "reason": sprintf("%v", [to_number(input.workload.user)])}`, "could not be evaluated"},
		{"builtin error in a deny", `deny contains sprintf("%v", [to_number(input.workload.user)]) if true`, "could not be evaluated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewEngine(slog.New(slog.DiscardHandler))
			if _, err := e.Load(context.Background(), Policy{Rules: rules, Modules: custom(tt.module)}); err != nil {
				// Failing to compile is also closed; these cases are meant to
				// reach evaluation, so say so.
				t.Fatalf("Load: %v", err)
			}
			in := sqlIn(Workload{Unit: "app.service", User: "alice"}, "select")
			for i := range 2 { // an error is never cached
				d, err := decide(t, e, in)
				if err == nil {
					t.Fatalf("call %d: no error; decision %+v", i, d)
				}
				if d.Result != Deny || d.Credential != "" || d.Mask != nil || d.PolicyVersion != 1 || !d.Record {
					t.Fatalf("call %d: decision %+v", i, d)
				}
				if !strings.Contains(d.Reason, tt.reason) {
					t.Fatalf("call %d: reason %q does not contain %q", i, d.Reason, tt.reason)
				}
			}
		})
	}
}

func TestNothingLoaded(t *testing.T) {
	e := NewEngine(slog.New(slog.DiscardHandler))
	for _, in := range []Input{sqlIn(Workload{Unit: "a"}, "select"), connectIn(Workload{})} {
		d, err := decide(t, e, in)
		if err == nil || d.Result != Deny || d.Reason == "" || d.PolicyVersion != 0 {
			t.Fatalf("got %+v, %v", d, err)
		}
	}
}

func TestLoadErrorKeepsPreviousPolicy(t *testing.T) {
	ctx := context.Background()
	good := Policy{Rules: []Rule{{Name: "r", Who: anyone, Targets: sl(testTarget), Allow: sl("select")}}}
	e := newTestEngine(t, good)
	in := sqlIn(Workload{Unit: "a"}, "select")
	mustDecide(t, e, in)
	bad := map[string]string{
		"syntax error":        customPrefix + "decision := {",
		"unsafe variable":     customPrefix + "decision := x if { y := 1 }",
		"undefined function":  customPrefix + "decision := no_such_function(1)",
		"wrong builtin arity": customPrefix + "decision := {\"result\": count(1, 2)}",
		"recursion":           customPrefix + "decision := data.corral.decision",
		"rego v0 syntax":      "package corral.custom\n\ndeny[msg] { msg := \"x\" }\n",
		"deny is not a set":   customPrefix + "deny := true",
	}
	for name, src := range bad {
		v, err := e.Load(ctx, Policy{Rules: []Rule{{Name: "r2", Who: anyone, Targets: sl(testTarget), Deny: sl("*")}}, Modules: map[string]string{"custom.rego": src}})
		if err == nil {
			t.Errorf("%s: Load succeeded", name)
			continue
		}
		if v != 1 || e.Version() != 1 {
			t.Errorf("%s: version %d/%d after a failed load", name, v, e.Version())
		}
		if d := mustDecide(t, e, in); d.Result != Allow || d.Rule != "r" || d.PolicyVersion != 1 {
			t.Errorf("%s: previous policy not in force: %+v", name, d)
		}
	}
	// A compile error names the module.
	_, err := e.Load(ctx, Policy{Modules: map[string]string{"policies/broken.rego": customPrefix + "decision := {"}})
	if err == nil || !strings.Contains(err.Error(), "policies/broken.rego") {
		t.Fatalf("error %v does not name the module", err)
	}
}

func TestCancelledContextNeverAllows(t *testing.T) {
	e := newTestEngine(t, Policy{Rules: []Rule{{Name: "r", Who: anyone, Targets: sl(testTarget), Allow: sl("select")}}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 20 {
		in := sqlIn(Workload{Unit: fmt.Sprint("u", i)}, "select")
		d, err := e.Decide(ctx, in)
		if err != nil && d.Result != Deny {
			t.Fatalf("%s with error %v", d.Result, err)
		}
	}
}

// --- cache ---

// echo is a custom policy whose allow reason shows the facts it saw, so a
// cached decision is recognisable.
const echo = `decision := {"result": "allow", "reason": json.marshal(input)} if input.workload.unit != "nocache.service"

decision := {"result": "allow", "reason": json.marshal(input), "cache": false} if input.workload.unit == "nocache.service"
`

func TestCacheIgnoresPID(t *testing.T) {
	e := newTestEngine(t, Policy{Modules: custom(echo)})
	a := sqlIn(Workload{Unit: "app.service", PID: 100}, "select")
	b := a
	b.Workload.PID = 200
	da, db := mustDecide(t, e, a), mustDecide(t, e, b)
	if da.Reason != db.Reason || !strings.Contains(db.Reason, `"pid":100`) {
		t.Fatalf("pid 200 was not served pid 100's cached decision:\n%s\n%s", da.Reason, db.Reason)
	}
}

func TestCacheFalseIsNotCached(t *testing.T) {
	e := newTestEngine(t, Policy{Modules: custom(echo)})
	a := sqlIn(Workload{Unit: "nocache.service", PID: 100}, "select")
	b := a
	b.Workload.PID = 200
	da, db := mustDecide(t, e, a), mustDecide(t, e, b)
	if !strings.Contains(da.Reason, `"pid":100`) || !strings.Contains(db.Reason, `"pid":200`) {
		t.Fatalf("cache: false decision was cached:\n%s\n%s", da.Reason, db.Reason)
	}
}

// A custom module that sets `cache := false` is asked every time; one that
// does not gets its first answer cached (the pid is not in the key).
func TestCustomModuleCacheSetting(t *testing.T) {
	rules := []Rule{{Name: "r", Who: anyone, Targets: sl(testTarget), Allow: sl("select")}}
	const odd = `deny contains "odd pid" if input.workload.pid % 2 == 1` + "\n"
	for _, tt := range []struct {
		src    string
		second string // result for pid 2 after pid 1 was denied
	}{
		{"cache := false\n" + odd, Allow},
		{"cache := true\n" + odd, Deny},
		{odd, Deny},
		// Anything but true keeps decisions out of the cache.
		{`cache := "false"` + "\n" + odd, Allow},
		{"cache := 0\n" + odd, Allow},
		// The setting holds for a decision the module returns too.
		{"cache := false\n" + `decision := {"result": "deny", "reason": "odd pid"} if input.workload.pid % 2 == 1
decision := {"result": "allow", "reason": "even"} if input.workload.pid % 2 == 0`, Allow},
		{`decision := {"result": "deny", "reason": "odd pid", "cache": "false"} if input.workload.pid % 2 == 1
decision := {"result": "allow", "reason": "even"} if input.workload.pid % 2 == 0`, Allow},
	} {
		e := newTestEngine(t, Policy{Rules: rules, Modules: custom(tt.src)})
		if d := mustDecide(t, e, sqlIn(Workload{Unit: "a", PID: 1}, "select")); d.Result != Deny || d.Reason != "odd pid" {
			t.Fatalf("%q, pid 1: %+v", tt.src, d)
		}
		if d := mustDecide(t, e, sqlIn(Workload{Unit: "a", PID: 2}, "select")); d.Result != tt.second {
			t.Fatalf("%q, pid 2: %+v, want %s", tt.src, d, tt.second)
		}
	}
}

// A module's decision is held to what the configuration would be: a mask
// that masks nothing (a misspelt key, no column) is refused, not taken
// as no mask. A module runs within a time bound, and only in package
// corral.custom.
func TestCustomModuleHeldToTheSchema(t *testing.T) {
	rules := []Rule{{Name: "r", Who: anyone, Targets: sl(testTarget), Allow: sl("select")}}
	for _, mask := range []string{
		`[{"column": ["customers.email"], "method": "redact"}]`,
		`[{"method": "redact"}]`,
		`[{"columns": [], "method": "redact"}]`,
		`[{"columns": [".email"], "method": "redact"}]`,
		`[{"columns": ["."], "method": "redact"}]`,
	} {
		e := newTestEngine(t, Policy{Rules: rules, Modules: custom(`decision := {"result": "allow", "mask": ` + mask + `}`)})
		if d, _ := decide(t, e, sqlIn(Workload{Unit: "a"}, "select")); d.Result != Deny {
			t.Errorf("mask %s: %s, want deny", mask, d.Result)
		}
	}

	defer func(d time.Duration) { evalTimeout = d }(evalTimeout)
	evalTimeout = 100 * time.Millisecond
	e := newTestEngine(t, Policy{Rules: rules, Modules: custom(`deny contains "x" if count([x | some x in numbers.range(1, 300000000)]) < 0`)})
	start := time.Now()
	if d, err := decide(t, e, sqlIn(Workload{Unit: "a"}, "select")); d.Result != Deny || err == nil {
		t.Errorf("a module past the time bound: %s, %v", d.Result, err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a module past the time bound ran %v", took)
	}

	_, err := Compile(context.Background(), Policy{Rules: rules, Modules: map[string]string{"x.rego": "package corral\n\nimport rego.v1\n\napplicable contains 0 if true\n"}})
	if err == nil || !strings.Contains(err.Error(), "package corral.custom") {
		t.Errorf("a module of package corral: %v", err)
	}
}

func TestCacheHit(t *testing.T) {
	e := newTestEngine(t, Policy{Modules: custom(echo)})
	in := sqlIn(Workload{Unit: "app.service", PID: 1, CgroupPath: "/a", Exe: "/bin/x", UID: 5, User: "u",
		Pod:  Pod{Namespace: "n", Name: "p", ServiceAccount: "s", Labels: map[string]string{"a": "1", "b": "2"}},
		OIDC: &OIDC{Issuer: "https://i", Subject: "s", Email: "e@x", Groups: []string{"g"}}}, "select", "delete")
	in.Action.SQL.Text = "SELECT 1"
	in.Grants = []Grant{{ID: "g1", Operations: []string{"delete"}, Expires: time.Unix(2000000000, 0)}}
	first := mustDecide(t, e, in)
	// Same facts in fresh values (labels in another map): still a hit.
	again := in
	again.Workload.Pod.Labels = map[string]string{"b": "2", "a": "1"}
	again.Workload.PID = 2
	sql := *in.Action.SQL // the same statement but for its literals
	sql.Text = "SELECT 2"
	again.Action.SQL = &sql
	if d := mustDecide(t, e, again); d.Reason != first.Reason {
		t.Fatalf("same facts, same fingerprint, different text: not a cache hit")
	}
}

// Every fact a decision can depend on is part of the cache key.
func TestCacheKeyFacts(t *testing.T) {
	base := func() Input {
		in := Input{
			Workload: Workload{Unit: "app.service", Exe: "/bin/app", CgroupPath: "/system.slice/app.service", UID: 1000, User: "app",
				Pod:  Pod{Namespace: "ns", Name: "pod", ServiceAccount: "sa", Labels: map[string]string{"app": "x"}},
				OIDC: &OIDC{Issuer: "https://idp", Subject: "sub", Email: "a@b.c", Groups: []string{"g1", "g2"}}},
			Target: Target{Name: testTarget, Protocol: "postgres"},
			Action: Action{Kind: KindSQL, Operations: []string{"select"}, SQL: &SQL{Command: "SELECT", Fingerprint: "fp1", Text: "select 1"}},
			Grants: []Grant{{ID: "g", Operations: []string{"delete"}, Expires: time.Unix(2000000000, 0)}},
		}
		return in
	}
	variants := map[string]func(*Input){
		"unit":            func(in *Input) { in.Workload.Unit = "other.service" },
		"exe":             func(in *Input) { in.Workload.Exe = "/bin/other" },
		"cgroup":          func(in *Input) { in.Workload.CgroupPath = "/system.slice/other.service" },
		"uid":             func(in *Input) { in.Workload.UID = 0 },
		"user":            func(in *Input) { in.Workload.User = "root" },
		"namespace":       func(in *Input) { in.Workload.Pod.Namespace = "ns2" },
		"pod name":        func(in *Input) { in.Workload.Pod.Name = "pod2" },
		"service account": func(in *Input) { in.Workload.Pod.ServiceAccount = "sa2" },
		"label value":     func(in *Input) { in.Workload.Pod.Labels = map[string]string{"app": "y"} },
		"extra label":     func(in *Input) { in.Workload.Pod.Labels = map[string]string{"app": "x", "tier": "t"} },
		"no labels":       func(in *Input) { in.Workload.Pod.Labels = nil },
		"no token":        func(in *Input) { in.Workload.OIDC = nil },
		"issuer":          func(in *Input) { in.Workload.OIDC.Issuer = "https://idp2" },
		"subject":         func(in *Input) { in.Workload.OIDC.Subject = "sub2" },
		"email":           func(in *Input) { in.Workload.OIDC.Email = "z@b.c" },
		"groups":          func(in *Input) { in.Workload.OIDC.Groups = []string{"g1"} },
		"target":          func(in *Input) { in.Target.Name = "other-db" },
		"protocol":        func(in *Input) { in.Target.Protocol = "mysql" },
		// Not matched by the built-in module; a custom one may read them.
		"address":      func(in *Input) { in.Target.Address = "10.0.0.5:5432" },
		"container id": func(in *Input) { in.Workload.ContainerID = "c0ffee" },
		"pod uid":      func(in *Input) { in.Workload.Pod.UID = "1111-2222" },
		"cgroup id":    func(in *Input) { in.Workload.CgroupID = 4242 },
		"kind":         func(in *Input) { in.Action.Kind = KindConnect },
		"function by oid": func(in *Input) {
			in.Action.SQL = &SQL{Command: "FUNCTION CALL", Functions: []string{"oid:2624"}}
		},
		"no operations":    func(in *Input) { in.Action.Operations = nil },
		"grant operations": func(in *Input) { in.Grants[0].Operations = []string{"select"} },
		"operations":       func(in *Input) { in.Action.Operations = []string{"select", "delete"} },
		"fingerprint":      func(in *Input) { in.Action.SQL.Fingerprint = "fp2" },
		"text w/o finger":  func(in *Input) { in.Action.SQL.Fingerprint = "" },
		"ssh detail":       func(in *Input) { in.Action.SQL = nil; in.Action.SSH = &SSH{Command: "ls"} },
		"http detail":      func(in *Input) { in.Action.SQL = nil; in.Action.HTTP = &HTTP{Method: "GET", Path: "/"} },
		"kubernetes detail": func(in *Input) {
			in.Action.SQL = nil
			in.Action.Kubernetes = &Kubernetes{Verb: "get", Resource: "pods"}
		},
		"no grants":     func(in *Input) { in.Grants = nil },
		"another grant": func(in *Input) { in.Grants = append(in.Grants, Grant{ID: "h", Expires: time.Unix(2000000000, 0)}) },
		"grant expiry":  func(in *Input) { in.Grants[0].Expires = time.Unix(2000000001, 0) },
		"grant id":      func(in *Input) { in.Grants[0].ID = "g2" },
	}
	e := newTestEngine(t, Policy{Modules: custom(echo)})
	ref := mustDecide(t, e, base())
	for name, vary := range variants {
		in := base()
		vary(&in)
		d := mustDecide(t, e, in)
		if d.Reason == ref.Reason {
			t.Errorf("%s: served the cached decision of different facts", name)
		}
		// And the variant itself is now cached.
		if d2 := mustDecide(t, e, in); d2.Reason != d.Reason {
			t.Errorf("%s: not cached", name)
		}
	}
	// Varying texts without a fingerprint are distinct statements.
	a, b := base(), base()
	a.Action.SQL = &SQL{Command: "SELECT", Text: "select 1"}
	b.Action.SQL = &SQL{Command: "SELECT", Text: "select 2"}
	if mustDecide(t, e, a).Reason == mustDecide(t, e, b).Reason {
		t.Error("texts without fingerprints shared a decision")
	}
}

// Load drops every cached decision: new rules take effect at once.
func TestLoadClearsCache(t *testing.T) {
	ctx := context.Background()
	allow := Policy{Rules: []Rule{{Name: "allow", Who: anyone, Targets: sl(testTarget), Allow: sl("select")}}}
	deny := Policy{Rules: []Rule{{Name: "deny", Who: anyone, Targets: sl(testTarget), Deny: sl("select")}}}
	e := newTestEngine(t, allow)
	in := sqlIn(Workload{Unit: "a"}, "select")
	for i := range 3 {
		if d := mustDecide(t, e, in); d.Result != Allow || d.PolicyVersion != uint64(2*i+1) {
			t.Fatalf("round %d: %+v", i, d)
		}
		if _, err := e.Load(ctx, deny); err != nil {
			t.Fatal(err)
		}
		if d := mustDecide(t, e, in); d.Result != Deny || d.Rule != "deny" || d.PolicyVersion != uint64(2*i+2) {
			t.Fatalf("round %d after load: %+v", i, d)
		}
		if _, err := e.Load(ctx, allow); err != nil {
			t.Fatal(err)
		}
	}
	if len(e.cache.m) > 0 {
		t.Fatalf("cache holds %d entries right after Load", len(e.cache.m))
	}
}

// A full cache starts over and keeps answering correctly.
func TestCacheBound(t *testing.T) {
	e := newTestEngine(t, Policy{Modules: custom(echo)})
	e.maxSize = 4
	var ins []Input
	for i := range 20 {
		in := sqlIn(Workload{Unit: "a"}, "select")
		in.Action.SQL.Fingerprint = fmt.Sprint("fp", i)
		ins = append(ins, in)
	}
	for round := range 2 {
		for i, in := range ins {
			d := mustDecide(t, e, in)
			if !strings.Contains(d.Reason, fmt.Sprintf(`"fingerprint":"fp%d"`, i)) {
				t.Fatalf("round %d, statement %d: %s", round, i, d.Reason)
			}
		}
		e.cache.mu.RLock()
		n := len(e.cache.m)
		e.cache.mu.RUnlock()
		if n > e.maxSize {
			t.Fatalf("cache grew to %d entries (max %d)", n, e.maxSize)
		}
	}
}

// --- concurrency ---

// Many goroutines decide while Load swaps between two policies (and fails
// to load a broken one now and then). Every decision must come whole from
// one version: odd versions are policy A, even ones policy B.
func TestConcurrentDecideAndLoad(t *testing.T) {
	ctx := context.Background()
	polA := Policy{Rules: []Rule{
		{Name: "a-allow", Who: anyone, Targets: sl(testTarget), Allow: sl("select"), Credential: "a", Mask: []Mask{{Detect: []string{"email"}, Method: "redact"}}},
	}}
	polB := Policy{Rules: []Rule{
		{Name: "b-review", Who: anyone, Targets: sl(testTarget), Review: &ReviewSet{Operations: sl("select"), Reviewers: sl("group:b")}, Credential: "b"},
	}}
	broken := Policy{Rules: polA.Rules, Modules: custom("decision := {")}
	check := func(d Decision) error {
		switch {
		case d.PolicyVersion == 0:
			return fmt.Errorf("version 0: %+v", d)
		case d.PolicyVersion%2 == 1:
			if d.Result != Allow || d.Rule != "a-allow" || d.Credential != "a" || len(d.Mask) != 1 {
				return fmt.Errorf("version %d is policy A, got %+v", d.PolicyVersion, d)
			}
		default:
			if d.Result != Review || d.Rule != "b-review" || d.Credential != "b" || !reflect.DeepEqual(d.Reviewers, []string{"group:b"}) || d.Mask != nil {
				return fmt.Errorf("version %d is policy B, got %+v", d.PolicyVersion, d)
			}
		}
		return nil
	}

	e := newTestEngine(t, polA)
	const (
		workers = 16
		loads   = 40
	)
	var (
		done     atomic.Bool
		failures atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		failures.Add(1)
		errOnce.Do(func() { firstErr = err })
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			for i := 0; !done.Load() || i < 50; i++ {
				in := sqlIn(Workload{Unit: fmt.Sprintf("w%d.service", i%5), PID: uint32(w)}, "select")
				d, err := e.Decide(ctx, in)
				if err != nil {
					fail(fmt.Errorf("Decide: %v (%+v)", err, d))
					return
				}
				if err := check(d); err != nil {
					fail(err)
					return
				}
				if d.PolicyVersion < last {
					fail(fmt.Errorf("version went back from %d to %d", last, d.PolicyVersion))
					return
				}
				last = d.PolicyVersion
			}
		}()
	}
	for i := range loads {
		p := polB
		if i%2 == 1 {
			p = polA
		}
		if i%7 == 3 {
			if _, err := e.Load(ctx, broken); err == nil {
				t.Error("broken policy loaded")
			}
		}
		if _, err := e.Load(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	done.Store(true)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d goroutines failed; first: %v", n, firstErr)
	}
	if got, want := e.Version(), uint64(loads+1); got != want {
		t.Fatalf("version %d, want %d", got, want)
	}
}

// Without custom modules the cache key leaves out an SQL statement's
// details (text, tables, fingerprint): statements of the same operations
// share one decision, and a workload sending new statements is not
// evaluated again for each.
func TestBuiltinDecisionsSharedAcrossStatements(t *testing.T) {
	rules := []Rule{{Name: "r", Who: anyone, Targets: sl(testTarget), Allow: sl("select")}}
	e := newTestEngine(t, Policy{Rules: rules})
	for i := range 50 {
		in := sqlIn(Workload{Unit: "app.service"}, "select")
		in.Action.SQL = &SQL{Command: "SELECT", Text: fmt.Sprintf("SELECT %d", i), Fingerprint: fmt.Sprintf("fp%d", i), Tables: []string{fmt.Sprintf("public.t%d", i)}}
		if d := mustDecide(t, e, in); d.Result != Allow {
			t.Fatalf("statement %d: %+v", i, d)
		}
	}
	if n := len(e.cache.m); n != 1 {
		t.Fatalf("%d cached decisions for one workload, target and operation set", n)
	}
	// A custom module may read the statement: its details are keyed again.
	e = newTestEngine(t, Policy{Rules: rules, Modules: custom(`deny contains "no t1" if "public.t1" in input.action.sql.tables`)})
	for i := range 3 {
		in := sqlIn(Workload{Unit: "app.service"}, "select")
		in.Action.SQL = &SQL{Command: "SELECT", Text: fmt.Sprintf("SELECT %d", i), Fingerprint: fmt.Sprintf("fp%d", i), Tables: []string{fmt.Sprintf("public.t%d", i)}}
		want := Allow
		if i == 1 {
			want = Deny
		}
		if d := mustDecide(t, e, in); d.Result != want {
			t.Fatalf("custom, statement %d: %+v, want %s", i, d, want)
		}
	}
}

// The guard of the above: the built-in module reads nothing of an action
// but its kind, operations and protocol details, never an SQL statement's.
// A reference to the whole input (or input.action) is allowed only as
// object.get's document with a constant path that does not lead to sql.
func TestBuiltinModuleReadsNoStatementDetail(t *testing.T) {
	mods, err := BuiltinModules(false)
	if err != nil {
		t.Fatal(err)
	}
	constPath := func(t *ast.Term) ([]string, bool) {
		arr, ok := t.Value.(*ast.Array)
		if !ok {
			return nil, false
		}
		var out []string
		ok = true
		arr.Foreach(func(e *ast.Term) {
			s, isStr := e.Value.(ast.String)
			ok = ok && isStr
			out = append(out, string(s))
		})
		return out, ok
	}
	for name, src := range mods {
		m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatal(err)
		}
		viaGet := map[*ast.Term][]string{} // object.get's document -> its constant path
		noteGet := func(terms []*ast.Term) {
			if len(terms) == 4 && terms[0].String() == "object.get" {
				if p, ok := constPath(terms[2]); ok {
					viaGet[terms[1]] = p
				}
			}
		}
		ast.WalkExprs(m, func(e *ast.Expr) bool {
			if terms, ok := e.Terms.([]*ast.Term); ok {
				noteGet(terms)
			}
			return false
		})
		ast.WalkTerms(m, func(t *ast.Term) bool {
			if c, ok := t.Value.(ast.Call); ok {
				noteGet(c)
			}
			return false
		})
		ast.WalkTerms(m, func(term *ast.Term) bool {
			r, ok := term.Value.(ast.Ref)
			if !ok || !r[0].Equal(ast.InputRootDocument) {
				return false
			}
			var path []string
			for _, e := range r[1:] {
				s, ok := e.Value.(ast.String)
				if !ok {
					t.Errorf("%s: %v reads input by a computed key", name, r)
					return false
				}
				path = append(path, string(s))
			}
			if len(path) == 0 || len(path) == 1 && path[0] == "action" {
				rest, ok := viaGet[term]
				if !ok {
					t.Errorf("%s: %v is used whole", name, r)
					return false
				}
				path = append(path, rest...)
			}
			if len(path) >= 2 && path[0] == "action" && path[1] == "sql" {
				t.Errorf("%s: %v reads an SQL statement's details; the decision cache key must then carry them (cacheKeyOf)", name, r)
			}
			return false
		})
	}
}

// A value that holds a separator must not pass for two fields, or two for
// one, and share a decision made for somebody else. Each pair here shared a
// cache key when fields were joined with NUL.
func TestCacheKeysCannotBeForged(t *testing.T) {
	oidc := func(subject string, groups ...string) Workload {
		return Workload{OIDC: &OIDC{Issuer: "https://idp", Subject: subject, Groups: groups}}
	}
	ssh := func(command string, argv ...string) Input {
		in := sqlIn(Workload{})
		in.Action = Action{Kind: KindSSH, Operations: []string{"exec"}, SSH: &SSH{Command: command, Argv: argv}}
		return in
	}
	pairs := []struct {
		name string
		a, b Input
	}{
		{"groups", sqlIn(oidc("s", "dba", "x"), "select"), sqlIn(oidc("s", "dba\x00x"), "select")},
		{"subject and groups", sqlIn(oidc("s\x00\x00dba"), "select"), sqlIn(oidc("s", "dba"), "select")},
		{"exe and cgroup", sqlIn(Workload{Exe: "/bin/a\x00b", CgroupPath: "c"}, "select"), sqlIn(Workload{Exe: "/bin/a", CgroupPath: "b\x00c"}, "select")},
		{"labels", sqlIn(Workload{Pod: Pod{Labels: map[string]string{"a": "b\x00c=d"}}}, "select"), sqlIn(Workload{Pod: Pod{Labels: map[string]string{"a": "b", "c": "d"}}}, "select")},
		{"operations", sqlIn(Workload{}, "select\x00drop"), sqlIn(Workload{}, "select", "drop")},
		{"ssh command", ssh("ls\x00x", "ls"), ssh("ls", "x\x00ls")},
	}
	target := sqlIn(Workload{})
	target.Target.Name, target.Target.Protocol = "db\x00postgres", ""
	other := sqlIn(Workload{})
	other.Target.Name, other.Target.Protocol = "db", "postgres"
	pairs = append(pairs, struct {
		name string
		a, b Input
	}{"target", target, other})
	for _, p := range pairs {
		if cacheKeyOf(1, &p.a, true) == cacheKeyOf(1, &p.b, true) {
			t.Errorf("%s: two questions share a cache key", p.name)
		}
	}

	// And through the engine: a token whose one group is "dba\x00x" does
	// not get the answer cached for one holding dba and x.
	e := newTestEngine(t, Policy{Rules: []Rule{{Name: "dba", Who: Who{OIDC: &OIDCWho{Groups: sl("dba")}}, Targets: sl(testTarget), Allow: sl("select")}}})
	if d := mustDecide(t, e, sqlIn(oidc("s", "dba", "x"), "select")); d.Result != Allow {
		t.Fatalf("dba member: %+v", d)
	}
	if d := mustDecide(t, e, sqlIn(oidc("s", "dba\x00x"), "select")); d.Result != Deny {
		t.Fatalf("forged group got %+v", d)
	}
}

// Command patterns apply to a command some of whose words are only known
// at run time when some value of them could match; an allow pattern then
// has to allow whatever they turn out to be.
func TestCommandPatternsUnknownWords(t *testing.T) {
	e := newTestEngine(t, Policy{Rules: []Rule{
		{Name: "guarded", Who: Who{Unit: sl("guarded.service")}, Targets: sl("web"), Allow: sl("exec"),
			Commands: &CommandSet{Deny: sl("rm *"), Review: sl("touch *approved*")}, Review: &ReviewSet{Reviewers: sl("user:root")}},
		{Name: "listed", Who: Who{Unit: sl("listed.service")}, Targets: sl("web"), Allow: sl("exec"),
			Commands: &CommandSet{Allow: sl("cat *", "wc")}},
	}})
	exec := func(unit string, s SSH) string {
		in := Input{Workload: Workload{Unit: unit}, Target: Target{Name: "web", Protocol: "ssh", Address: "10.0.0.7:22"},
			Action: Action{Kind: KindSSH, Operations: []string{"exec"}, SSH: &s}}
		in.Action.SSH.Command = strings.Join(s.Argv, " ")
		return mustDecide(t, e, in).Result
	}
	for _, c := range []struct {
		name string
		unit string
		ssh  SSH
		want string
	}{
		{"a path with a newline in it", "guarded.service", SSH{Argv: []string{"/tmp/a\n/../../bin/rm", "-f", "x"}, Known: 3}, Deny},
		{"words from xargs", "guarded.service", SSH{Argv: []string{"touch"}, Known: 1, Appends: true}, Review},
		{"a variable", "guarded.service", SSH{Argv: []string{"touch", "$F"}, Known: 1}, Review},
		{"a known word that cannot match", "guarded.service", SSH{Argv: []string{"touch", "plain"}, Known: 2}, Allow},
		{"a variable no pattern could match", "guarded.service", SSH{Argv: []string{"echo", "$HOME"}, Known: 1}, Allow},
		{"xargs under a pattern allowing any words", "listed.service", SSH{Argv: []string{"cat"}, Known: 1, Appends: true}, Allow},
		{"xargs under an exact pattern", "listed.service", SSH{Argv: []string{"wc"}, Known: 1, Appends: true}, Deny},
		{"an exact pattern", "listed.service", SSH{Argv: []string{"wc"}, Known: 1}, Allow},
	} {
		if got := exec(c.unit, c.ssh); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// A long question is cached under its digest: the cache's size bounds its
// memory, and two long questions still differ.
func TestCacheKeysOfLongCommands(t *testing.T) {
	long := func(tail string) Input {
		in := sqlIn(Workload{})
		cmd := strings.Repeat("A", 60<<10) + tail
		in.Action = Action{Kind: KindSSH, Operations: []string{"exec"}, SSH: &SSH{Command: cmd, Argv: []string{"rm", cmd}}}
		return in
	}
	a, b := long("1"), long("2")
	ka, kb := cacheKeyOf(1, &a, true), cacheKeyOf(1, &b, true)
	if ka == kb {
		t.Error("two long commands share a cache key")
	}
	if len(ka.action) > 64 {
		t.Errorf("a long command's key holds %d bytes", len(ka.action))
	}
}
