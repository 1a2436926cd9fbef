package policy

import (
	"context"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

var validationTargets = map[string]TargetInfo{
	"orders-db": {Protocol: "postgres", Credentials: []string{"default", "writer"}},
	"users-db":  {Protocol: "mysql", Credentials: []string{"default"}},
	"bastion":   {Protocol: "ssh", Credentials: []string{"default"}},
	"api":       {Protocol: "http"},
	"cluster":   {Protocol: "kubernetes"},
	"raw":       {Protocol: "tcp"},
}

// validRule passes validation; each case breaks one thing.
func validRule() Rule {
	return Rule{Name: "r", Who: Who{Unit: sl("etl.service")}, Targets: sl("orders-db"), Allow: sl("select")}
}

// want is an expected problem: its exact path and a key part of its message.
type want struct{ path, msg string }

func TestValidateRules(t *testing.T) {
	one := func(edit func(r *Rule)) []Rule {
		r := validRule()
		edit(&r)
		return []Rule{r}
	}
	review := func(edit func(rv *ReviewSet)) []Rule {
		return one(func(r *Rule) {
			r.Review = &ReviewSet{Operations: sl("delete"), Reviewers: sl("group:dba")}
			edit(r.Review)
		})
	}
	tests := []struct {
		name  string
		rules []Rule
		want  []want
	}{
		// valid
		{"minimal", one(func(r *Rule) {}), nil},
		{"no rules", nil, nil},
		{"full", one(func(r *Rule) {
			r.Who = Who{
				Unit: sl("etl-*.service"), Exe: sl("/usr/bin/*", "/opt/**"), UID: []uint32{0, 1000}, User: sl("etl"),
				Cgroup:     sl("/system.slice/**"),
				Kubernetes: &KubernetesWho{Namespace: sl("etl"), Name: sl("migrator-*"), ServiceAccount: sl("migrator"), Labels: map[string]string{"app": "etl"}},
				OIDC:       &OIDCWho{Issuer: sl("https://idp.example.com", "http://dex.local"), Subject: sl("system:serviceaccount:etl:*"), Email: sl("*@example.com"), Groups: sl("dba")},
			}
			r.Targets = sl("orders-db", "users-db")
			r.Allow = sl("select", "insert", "connect")
			r.Review = &ReviewSet{Operations: sl("update", "delete", "ddl"), Reviewers: sl("group:dba", "user:alice"), Grant: "window", Window: "30m", Timeout: "10m"}
			r.Deny = sl("drop", "truncate", "copy program")
			r.Mask = []Mask{
				{Columns: []string{"customers.email", "public.customers.card_number"}, Method: "partial"},
				{Detect: MaskDetectors, Method: "redact"},
				{Columns: []string{"users.password"}, Detect: []string{"jwt"}, Method: "hash"},
				{Columns: []string{"users.ssn"}, Method: "null"},
			}
			r.Credential = "default"
		}), nil},
		{"any", one(func(r *Rule) { r.Who = Who{Any: true} }), nil},
		{"wildcards", one(func(r *Rule) {
			r.Allow, r.Deny = sl("*"), sl("*")
			r.Review = &ReviewSet{Operations: sl("*"), Reviewers: sl("group:dba")}
		}), nil},
		{"grant once", review(func(rv *ReviewSet) { rv.Grant = "once" }), nil},
		{"deny only", one(func(r *Rule) { r.Allow, r.Deny = nil, sl("drop") }), nil},
		{"review only", review(func(rv *ReviewSet) {}), nil},
		{"ssh words on an ssh target", one(func(r *Rule) {
			r.Targets, r.Allow, r.Deny = sl("bastion"), sl("exec", "shell", "sftp"), sl("forward", "agent-forward")
		}), nil},
		{"http words on an http target", one(func(r *Rule) { r.Targets, r.Allow = sl("api"), sl("get", "head", "options") }), nil},
		{"kubernetes words on a kubernetes target", one(func(r *Rule) { r.Targets, r.Allow = sl("cluster"), sl("get", "list", "portforward") }), nil},
		{"connect on every kind", one(func(r *Rule) { r.Targets, r.Allow = sl("orders-db", "bastion", "api", "cluster", "raw"), sl("connect") }), nil},
		{"postgres words on a mysql target", one(func(r *Rule) { r.Targets, r.Allow = sl("users-db"), sl("select", "set role") }), nil},
		{"a word known to one of several kinds", one(func(r *Rule) { r.Targets, r.Allow = sl("orders-db", "bastion"), sl("select", "exec") }), nil},

		// name
		{"missing name", one(func(r *Rule) { r.Name = "" }), []want{{"rules[0].name", "required"}}},
		{"duplicate name", []Rule{validRule(), validRule(), validRule()}, []want{
			{"rules[1].name", `duplicate rule name "r" (also rules[0])`},
			{"rules[2].name", `duplicate rule name "r" (also rules[0])`},
		}},

		// who
		{"who empty", one(func(r *Rule) { r.Who = Who{} }), []want{{"rules[0].who", "matches nobody"}}},
		{"who empty kubernetes", one(func(r *Rule) { r.Who = Who{Kubernetes: &KubernetesWho{Labels: map[string]string{}}} }), []want{{"rules[0].who", "matches nobody"}}},
		{"who empty oidc", one(func(r *Rule) { r.Who = Who{OIDC: &OIDCWho{}} }), []want{{"rules[0].who", "matches nobody"}}},
		{"any with unit", one(func(r *Rule) { r.Who.Any = true }), []want{{"rules[0].who", "any: true matches every workload"}}},
		{"any with uid", one(func(r *Rule) { r.Who = Who{Any: true, UID: []uint32{0}} }), []want{{"rules[0].who", "any: true matches every workload"}}},
		{"any with labels", one(func(r *Rule) { r.Who = Who{Any: true, Kubernetes: &KubernetesWho{Labels: map[string]string{"a": "b"}}} }), []want{{"rules[0].who", "any: true matches every workload"}}},
		{"any with groups", one(func(r *Rule) { r.Who = Who{Any: true, OIDC: &OIDCWho{Groups: sl("dba")}} }), []want{{"rules[0].who", "any: true matches every workload"}}},
		{"empty unit pattern", one(func(r *Rule) { r.Who.Unit = sl("etl.service", "") }), []want{{"rules[0].who.unit[1]", "empty pattern"}}},
		{"empty exe pattern", one(func(r *Rule) { r.Who.Exe = sl("") }), []want{{"rules[0].who.exe[0]", "empty pattern"}}},
		{"empty user pattern", one(func(r *Rule) { r.Who.User = sl("") }), []want{{"rules[0].who.user[0]", "empty pattern"}}},
		{"empty oidc group", one(func(r *Rule) { r.Who.OIDC = &OIDCWho{Groups: sl("dba", "")} }), []want{{"rules[0].who.oidc.groups[1]", "empty group name"}}},
		{"empty cgroup pattern", one(func(r *Rule) { r.Who.Cgroup = sl("/a", "") }), []want{{"rules[0].who.cgroup[1]", "empty pattern"}}},
		{"empty namespace pattern", one(func(r *Rule) { r.Who.Kubernetes = &KubernetesWho{Namespace: sl("")} }), []want{{"rules[0].who.kubernetes.namespace[0]", "empty pattern"}}},
		{"empty pod name pattern", one(func(r *Rule) { r.Who.Kubernetes = &KubernetesWho{Name: sl("")} }), []want{{"rules[0].who.kubernetes.name[0]", "empty pattern"}}},
		{"empty service account pattern", one(func(r *Rule) { r.Who.Kubernetes = &KubernetesWho{ServiceAccount: sl("")} }), []want{{"rules[0].who.kubernetes.service_account[0]", "empty pattern"}}},
		{"empty subject pattern", one(func(r *Rule) { r.Who.OIDC = &OIDCWho{Subject: sl("")} }), []want{{"rules[0].who.oidc.subject[0]", "empty pattern"}}},
		{"empty email pattern", one(func(r *Rule) { r.Who.OIDC = &OIDCWho{Email: sl("a@b", "")} }), []want{{"rules[0].who.oidc.email[1]", "empty pattern"}}},
		{"bad unit pattern", one(func(r *Rule) { r.Who.Unit = sl("etl-[.service") }), []want{{"rules[0].who.unit[0]", `bad pattern "etl-[.service"`}}},
		{"bad exe pattern", one(func(r *Rule) { r.Who.Exe = sl("/usr/bin/*", "/usr/bin/[a-") }), []want{{"rules[0].who.exe[1]", `bad pattern "/usr/bin/[a-"`}}},
		{"bad user pattern", one(func(r *Rule) { r.Who.User = sl(`etl\`) }), []want{{"rules[0].who.user[0]", `bad pattern "etl\\"`}}},
		{"bad cgroup pattern", one(func(r *Rule) { r.Who.Cgroup = sl("/system.slice/[") }), []want{{"rules[0].who.cgroup[0]", "bad pattern"}}},
		{"bad namespace pattern", one(func(r *Rule) { r.Who.Kubernetes = &KubernetesWho{Namespace: sl("[")} }), []want{{"rules[0].who.kubernetes.namespace[0]", "bad pattern"}}},
		{"bad pod name pattern", one(func(r *Rule) { r.Who.Kubernetes = &KubernetesWho{Name: sl("[")} }), []want{{"rules[0].who.kubernetes.name[0]", "bad pattern"}}},
		{"bad service account pattern", one(func(r *Rule) { r.Who.Kubernetes = &KubernetesWho{ServiceAccount: sl("[")} }), []want{{"rules[0].who.kubernetes.service_account[0]", "bad pattern"}}},
		{"bad subject pattern", one(func(r *Rule) { r.Who.OIDC = &OIDCWho{Subject: sl("[")} }), []want{{"rules[0].who.oidc.subject[0]", "bad pattern"}}},
		{"bad email pattern", one(func(r *Rule) { r.Who.OIDC = &OIDCWho{Email: sl("[")} }), []want{{"rules[0].who.oidc.email[0]", "bad pattern"}}},
		{"issuer without scheme", one(func(r *Rule) { r.Who.OIDC = &OIDCWho{Issuer: sl("https://ok", "idp.example.com")} }), []want{{"rules[0].who.oidc.issuer[1]", `"idp.example.com" is not an issuer URL`}}},
		{"issuer with another scheme", one(func(r *Rule) { r.Who.OIDC = &OIDCWho{Issuer: sl("ftp://idp")} }), []want{{"rules[0].who.oidc.issuer[0]", "is not an issuer URL"}}},
		{"empty issuer", one(func(r *Rule) { r.Who.OIDC = &OIDCWho{Issuer: sl("")} }), []want{{"rules[0].who.oidc.issuer[0]", `"" is not an issuer URL`}}},

		// targets and credential
		{"no targets", one(func(r *Rule) { r.Targets = nil }), []want{{"rules[0].targets", "at least one target is required"}}},
		{"unknown target", one(func(r *Rule) { r.Targets = sl("orders-db", "nope") }), []want{{"rules[0].targets[1]", `unknown target "nope"`}}},
		{"credential not on every target", one(func(r *Rule) { r.Targets, r.Credential = sl("orders-db", "bastion"), "writer" }), []want{{"rules[0].credential", `target "bastion" has no credential "writer"`}}},
		{"credential on no target", one(func(r *Rule) { r.Targets, r.Credential = sl("orders-db", "users-db"), "admin" }), []want{
			{"rules[0].credential", `target "orders-db" has no credential "admin"`},
			{"rules[0].credential", `target "users-db" has no credential "admin"`},
		}},
		{"credential on a target without credentials", one(func(r *Rule) { r.Targets, r.Allow, r.Credential = sl("api"), sl("get"), "default" }), []want{{"rules[0].credential", `target "api" has no credential "default"`}}},

		// operations
		{"unknown allow op", one(func(r *Rule) { r.Allow = sl("select", "exec") }), []want{{"rules[0].allow[1]", `unknown operation "exec" for sql targets`}}},
		{"unknown deny op", one(func(r *Rule) { r.Deny = sl("drop", "rm -rf") }), []want{{"rules[0].deny[1]", `unknown operation "rm -rf" for sql targets`}}},
		{"unknown review op", review(func(rv *ReviewSet) { rv.Operations = sl("delete", "shell") }), []want{{"rules[0].review.operations[1]", `unknown operation "shell" for sql targets`}}},
		{"sql op on an ssh target", one(func(r *Rule) { r.Targets = sl("bastion") }), []want{{"rules[0].allow[0]", `unknown operation "select" for ssh targets`}}},
		{"sql op on a plain tcp target", one(func(r *Rule) { r.Targets = sl("raw") }), []want{{"rules[0].allow[0]", `unknown operation "select" for connect targets`}}},
		{"word of neither kind", one(func(r *Rule) { r.Targets, r.Allow = sl("orders-db", "bastion"), sl("select", "exec", "frob") }), []want{{"rules[0].allow[2]", `unknown operation "frob" for sql/ssh targets`}}},
		{"ops are not checked against unknown targets", one(func(r *Rule) { r.Targets, r.Allow = sl("nope"), sl("frob") }), []want{{"rules[0].targets[0]", `unknown target "nope"`}}},
		{"case matters", one(func(r *Rule) { r.Allow = sl("SELECT") }), []want{{"rules[0].allow[0]", `unknown operation "SELECT"`}}},
		{"nothing allowed, reviewed or denied", one(func(r *Rule) { r.Allow = nil }), []want{{"rules[0]", "allows, reviews and denies nothing"}}},
		{"empty lists", one(func(r *Rule) { r.Allow, r.Deny = StringList{}, StringList{} }), []want{{"rules[0]", "allows, reviews and denies nothing"}}},

		// mask
		{"mask method", one(func(r *Rule) { r.Mask = []Mask{{Columns: []string{"a.b"}, Method: "blur"}} }), []want{{"rules[0].mask[0].method", `"blur" is not one of redact, partial, hash, null`}}},
		{"mask without method", one(func(r *Rule) {
			r.Mask = []Mask{{Columns: []string{"a.b"}, Method: "redact"}, {Detect: []string{"email"}}}
		}), []want{{"rules[0].mask[1].method", `"" is not one of`}}},
		{"mask with neither columns nor detect", one(func(r *Rule) { r.Mask = []Mask{{Method: "redact"}} }), []want{{"rules[0].mask[0]", "give columns, detect, or both"}}},
		{"mask filters", one(func(r *Rule) { r.Mask = []Mask{{Columns: []string{"a.b"}, Method: "redact", Filters: "exact"}} }), []want{{"rules[0].mask[0].filters", `"exact" is not one of any, equality, none`}}},
		{"mask filters without columns", one(func(r *Rule) { r.Mask = []Mask{{Detect: []string{"email"}, Method: "redact", Filters: "none"}} }), []want{{"rules[0].mask[0].filters", "applies to columns"}}},
		{"mask columns", one(func(r *Rule) {
			r.Mask = []Mask{{Columns: []string{"email", "t.c", "a.b.c.d", "a..b", ".a", "a.", "s.t.c"}, Method: "redact"}}
		}), []want{
			{"rules[0].mask[0].columns[0]", `"email": want table.column or schema.table.column`},
			{"rules[0].mask[0].columns[2]", `"a.b.c.d": want table.column or schema.table.column`},
			{"rules[0].mask[0].columns[3]", `"a..b": want`},
			{"rules[0].mask[0].columns[4]", `".a": want`},
			{"rules[0].mask[0].columns[5]", `"a.": want`},
		}},
		{"unknown detector", one(func(r *Rule) {
			r.Mask = []Mask{{Columns: []string{"a.b"}, Method: "redact"}, {Detect: []string{"email", "passport"}, Method: "redact"}}
		}), []want{{"rules[0].mask[1].detect[1]", `unknown detector "passport" (known: credit_card, email`}}},

		// review
		{"review without operations", one(func(r *Rule) { r.Allow, r.Review = nil, &ReviewSet{Reviewers: sl("group:dba")} }), []want{
			{"rules[0].review.operations", "required: which operations wait for review"},
			{"rules[0]", "allows, reviews and denies nothing"},
		}},
		{"review without operations, allow given", review(func(rv *ReviewSet) { rv.Operations = nil }), []want{{"rules[0].review.operations", "required: which operations wait for review"}}},
		{"review without reviewers", review(func(rv *ReviewSet) { rv.Reviewers = nil }), []want{{"rules[0].review.reviewers", "required: who may approve"}}},
		{"webhook", review(func(rv *ReviewSet) { rv.Webhook = "https://hooks.example/services/T1" }), nil},
		{"bad webhook", review(func(rv *ReviewSet) { rv.Webhook = "hooks.example/x" }), []want{{"rules[0].review.webhook", "not an http(s) URL"}}},
		{"timeout too long", review(func(rv *ReviewSet) { rv.Timeout = "48h" }), []want{{"rules[0].review.timeout", "longer than 24h0m0s"}}},
		{"bad reviewers", review(func(rv *ReviewSet) { rv.Reviewers = sl("group:dba", "dba", "team:dba", "group:", "user:", ":x") }), []want{
			{"rules[0].review.reviewers[1]", `"dba": want group:NAME or user:NAME`},
			{"rules[0].review.reviewers[2]", `"team:dba": want group:NAME or user:NAME`},
			{"rules[0].review.reviewers[3]", `"group:": want`},
			{"rules[0].review.reviewers[4]", `"user:": want`},
			{"rules[0].review.reviewers[5]", `":x": want`},
		}},
		{"bad grant", review(func(rv *ReviewSet) { rv.Grant = "forever" }), []want{{"rules[0].review.grant", `"forever" is not once or window`}}},
		{"window without a grant", review(func(rv *ReviewSet) { rv.Window = "30m" }), []want{{"rules[0].review.window", "only with grant: window"}}},
		{"window with grant once", review(func(rv *ReviewSet) { rv.Grant, rv.Window = "once", "30m" }), []want{{"rules[0].review.window", "only with grant: window"}}},
		{"window grant without window", review(func(rv *ReviewSet) { rv.Grant = "window" }), []want{{"rules[0].review.window", `"": grant: window needs a positive duration`}}},
		{"window grant with a bad window", review(func(rv *ReviewSet) { rv.Grant, rv.Window = "window", "soon" }), []want{{"rules[0].review.window", `"soon": grant: window needs a positive duration`}}},
		{"window grant with a zero window", review(func(rv *ReviewSet) { rv.Grant, rv.Window = "window", "0s" }), []want{{"rules[0].review.window", "needs a positive duration"}}},
		{"window grant with a negative window", review(func(rv *ReviewSet) { rv.Grant, rv.Window = "window", "-1h" }), []want{{"rules[0].review.window", "needs a positive duration"}}},
		{"bad timeout", review(func(rv *ReviewSet) { rv.Timeout = "soon" }), []want{{"rules[0].review.timeout", `"soon" is not a positive duration`}}},
		{"zero timeout", review(func(rv *ReviewSet) { rv.Timeout = "0s" }), []want{{"rules[0].review.timeout", `"0s" is not a positive duration`}}},
		{"negative timeout", review(func(rv *ReviewSet) { rv.Timeout = "-5m" }), []want{{"rules[0].review.timeout", `"-5m" is not a positive duration`}}},

		// several problems, several rules
		{"problems accumulate", []Rule{
			validRule(),
			{Who: Who{Any: true, Unit: sl("")}, Targets: sl("nope"), Review: &ReviewSet{Operations: sl("delete"), Grant: "forever"}, Mask: []Mask{{Method: "x"}}},
		}, []want{
			{"rules[1].name", "required"},
			{"rules[1].who", "any: true"},
			{"rules[1].who.unit[0]", "empty pattern"},
			{"rules[1].targets[0]", "unknown target"},
			{"rules[1].review.reviewers", "required"},
			{"rules[1].review.grant", "not once or window"},
			{"rules[1].mask[0].method", "not one of"},
			{"rules[1].mask[0]", "give columns, detect, or both"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkProblems(t, ValidateRules("rules", tt.rules, validationTargets), tt.want)
		})
	}
}

func checkProblems(t *testing.T, got []Problem, want []want) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = got[i].Path == want[i].path && strings.Contains(got[i].Msg, want[i].msg)
	}
	if !ok {
		var g []string
		for _, p := range got {
			g = append(g, p.String())
		}
		t.Fatalf("problems:\n  %s\nwant:\n  %+v", strings.Join(g, "\n  "), want)
	}
}

func TestValidateRulesPrefix(t *testing.T) {
	r := validRule()
	r.Name = ""
	r.Review = &ReviewSet{Operations: sl("delete"), Reviewers: sl("dba")}
	got := ValidateRules("spec.rules", []Rule{validRule(), r}, validationTargets)
	checkProblems(t, got, []want{
		{"spec.rules[1].name", "required"},
		{"spec.rules[1].review.reviewers[0]", `"dba": want group:NAME or user:NAME`},
	})
	if s := got[0].String(); s != "spec.rules[1].name: required" {
		t.Fatalf("String() = %q", s)
	}
}

// Every pattern validation accepts must also work in the engine, or one
// rule would turn every decision it is consulted for into an error.
func TestValidatedPatternsWorkInTheEngine(t *testing.T) {
	patterns := []string{"{a", "a}", "{a,b", "a{b,c}d", "[!a]", "[^a]", "[a-z]*", `\*`, "**", "a/**/b", "[]a]", "{,}", "}{"}
	for _, p := range patterns {
		for field, who := range map[string]Who{
			"unit":                 {Unit: sl(p)},
			"exe":                  {Exe: sl(p)},
			"kubernetes.namespace": {Kubernetes: &KubernetesWho{Namespace: sl(p)}},
			"oidc.issuer":          {OIDC: &OIDCWho{Issuer: sl("https://" + p)}},
		} {
			rule := Rule{Name: "r", Who: who, Targets: sl("orders-db"), Allow: sl("select")}
			if ps := ValidateRules("rules", []Rule{rule}, validationTargets); len(ps) > 0 {
				continue // rejected up front: fine
			}
			e := NewEngine(slog.New(slog.DiscardHandler))
			if _, err := e.Load(context.Background(), Policy{Rules: []Rule{rule}}); err != nil {
				t.Errorf("%s %q: valid rule does not load: %v", field, p, err)
				continue
			}
			w := Workload{Unit: "a", Exe: "a", Pod: Pod{Namespace: "a"}, OIDC: &OIDC{Issuer: "https://a", Subject: "s"}}
			if d, err := e.Decide(context.Background(), sqlIn(w, "select")); err != nil {
				t.Errorf("%s pattern %q passes validation, but Decide fails on it: %v (%s)", field, p, err, d.Reason)
			}
		}
	}
}

// --- StringList ---

func TestStringListYAML(t *testing.T) {
	type doc struct {
		L StringList `yaml:"l"`
	}
	tests := []struct {
		src     string
		want    StringList
		wantErr string
	}{
		{"l: select", StringList{"select"}, ""},
		{`l: "copy program"`, StringList{"copy program"}, ""},
		{"l: 5", StringList{"5"}, ""},
		{"l: [select, insert]", StringList{"select", "insert"}, ""},
		{"l:\n  - a\n  - b\n", StringList{"a", "b"}, ""},
		{"l: []", StringList{}, ""},
		{"l: ~", nil, ""},
		{"l:", nil, ""},
		{"x: 1", nil, ""},
		{"l: {a: b}", nil, "want a string or a list of strings"},
		{"l:\n  a: b\n", nil, "line 2: want a string or a list of strings"},
		{"l: [a, {b: c}]", nil, "cannot unmarshal"},
		{"l: [a, [b]]", nil, "cannot unmarshal"},
	}
	for _, tt := range tests {
		var d doc
		err := yaml.Unmarshal([]byte(tt.src), &d)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: error %v, want one containing %q", tt.src, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.src, err)
			continue
		}
		if len(d.L) != len(tt.want) || (len(tt.want) > 0 && !reflect.DeepEqual(d.L, tt.want)) {
			t.Errorf("%q: got %#v, want %#v", tt.src, d.L, tt.want)
		}
	}
}

// A rule as written in corral.yaml, scalars where one value will do.
func TestRuleYAML(t *testing.T) {
	src := `
name: etl-jobs
who:
  kubernetes: { namespace: etl, service_account: migrator, labels: { app: etl } }
  oidc: { issuer: "https://idp.example.com", groups: [dba, ops] }
  unit: etl.service
  uid: [0, 1000]
targets: orders-db
allow: [select, insert]
review: { operations: [update, delete, ddl], reviewers: group:dba, grant: window, window: 30m, timeout: 2m }
deny: [drop, truncate, "copy program"]
mask:
  - { columns: [customers.email, customers.card_number], method: partial }
  - { detect: [credit_card, email, ssn], method: redact }
credential: writer
`
	var r Rule
	if err := yaml.Unmarshal([]byte(src), &r); err != nil {
		t.Fatal(err)
	}
	want := Rule{
		Name: "etl-jobs",
		Who: Who{
			Unit:       sl("etl.service"),
			UID:        []uint32{0, 1000},
			Kubernetes: &KubernetesWho{Namespace: sl("etl"), ServiceAccount: sl("migrator"), Labels: map[string]string{"app": "etl"}},
			OIDC:       &OIDCWho{Issuer: sl("https://idp.example.com"), Groups: sl("dba", "ops")},
		},
		Targets: sl("orders-db"),
		Allow:   sl("select", "insert"),
		Review:  &ReviewSet{Operations: sl("update", "delete", "ddl"), Reviewers: sl("group:dba"), Grant: "window", Window: "30m", Timeout: "2m"},
		Deny:    sl("drop", "truncate", "copy program"),
		Mask: []Mask{
			{Columns: []string{"customers.email", "customers.card_number"}, Method: "partial"},
			{Detect: []string{"credit_card", "email", "ssn"}, Method: "redact"},
		},
		Credential: "writer",
	}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("got  %+v\nwant %+v", r, want)
	}
	if ps := ValidateRules("rules", []Rule{r}, validationTargets); len(ps) > 0 {
		t.Fatalf("problems: %v", ps)
	}
	var bad Rule
	if err := yaml.Unmarshal([]byte("name: x\nallow: {select: true}\n"), &bad); err == nil {
		t.Fatal("a mapping decoded as a list of operations")
	}
}
