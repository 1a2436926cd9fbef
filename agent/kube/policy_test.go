package kube

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"sigs.k8s.io/yaml"

	"github.com/corral-dev/corral/agent/config"
	"github.com/corral-dev/corral/policy"
)

func base(t *testing.T) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(`
targets:
  - name: billing
    protocol: tcp
    endpoints: ["10.9.0.1:443"]
rules:
  - name: billing-any
    who: {any: true}
    targets: [billing]
    allow: [connect]
`))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// decodeObjects reads resources as kubectl would send them.
func decodeObject[T any](t *testing.T, doc string) T {
	t.Helper()
	var v T
	if err := yaml.UnmarshalStrict([]byte(doc), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

const ordersDB = `
apiVersion: corral.dev/v1alpha1
kind: ProtectedTarget
metadata: {name: orders-db}
spec:
  protocol: postgres
  endpoints: ["10.0.0.5:5432", "orders.internal:5432"]
  credentials:
    default: {username: app_ro, secret: {namespace: db, name: orders, key: ro}}
    writer: {username: app_rw, secret: {namespace: db, name: orders, key: rw}}
  upstream_tls: {mode: verify-full}
`

const etlJobs = `
apiVersion: corral.dev/v1alpha1
kind: AccessRule
metadata: {name: etl-jobs, namespace: etl}
spec:
  who: {kubernetes: {namespace: [etl], service_account: [migrator]}}
  targets: [orders-db]
  allow: [select, insert]
  review: {operations: [update, delete, ddl], reviewers: ["group:dba"], grant: once}
  deny: [drop, truncate]
  mask:
    - {columns: [customers.email], method: partial}
  credential: writer
`

func TestApply(t *testing.T) {
	b := base(t)
	c, err := Apply(b, []ProtectedTarget{decodeObject[ProtectedTarget](t, ordersDB)}, []AccessRule{decodeObject[AccessRule](t, etlJobs)})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Targets) != 2 || c.Targets[1].Name != "orders-db" || len(c.Targets[1].Parsed) != 2 || c.Targets[1].ClientAuth != config.ClientAuthKernel {
		t.Fatalf("targets: %+v", c.Targets)
	}
	if len(c.Rules) != 2 || c.Rules[1].Name != "etl/etl-jobs" || c.Rules[1].Credential != "writer" {
		t.Fatalf("rules: %+v", c.Rules)
	}
	if len(b.Targets) != 1 || len(b.Rules) != 1 {
		t.Fatal("Apply changed its base")
	}
}

func TestApplyRefusesInvalidObjects(t *testing.T) {
	target := decodeObject[ProtectedTarget](t, ordersDB)
	rule := decodeObject[AccessRule](t, etlJobs)
	rule.Spec.Allow = append(rule.Spec.Allow, "selekt")
	rule.Spec.Credential = "admin"
	other := decodeObject[ProtectedTarget](t, ordersDB)
	other.ObjectMeta = metav1.ObjectMeta{Name: "orders-replica"}
	other.Spec.Endpoints = []string{"10.0.0.5:5432"}
	other.Spec.Name = "orders-db"

	_, err := Apply(base(t), []ProtectedTarget{target, other}, []AccessRule{rule})
	var inv *InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("want *InvalidError, got %v", err)
	}
	for _, want := range []string{
		`AccessRule etl/etl-jobs: spec.allow[2]: unknown operation "selekt" for sql targets`,
		`AccessRule etl/etl-jobs: spec.credential: target "orders-db" has no credential "admin"`,
		`ProtectedTarget orders-replica: spec.endpoints[0]: "10.0.0.5:5432" is already an endpoint of ProtectedTarget orders-db`,
		`ProtectedTarget orders-replica: spec.name: "orders-db" differs from metadata.name; leave it out`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing problem %q in:\n%v", want, err)
		}
	}
	if len(inv.Problems) != 4 {
		t.Errorf("problems: %q", inv.Problems)
	}
}

// An AccessRule that names a target no ProtectedTarget declares is
// refused. One is its namespace's: it applies to the pods of its own
// namespace only, whatever its who says (any: true included), and one
// naming another namespace is refused.
func TestApplyUnknownTargetAndConfinedWho(t *testing.T) {
	rule := decodeObject[AccessRule](t, etlJobs)
	rule.Spec.Targets = policy.StringList{"nosuch"}
	if _, err := Apply(base(t), nil, []AccessRule{rule}); err == nil || !strings.Contains(err.Error(), `AccessRule etl/etl-jobs: spec.targets[0]: unknown target "nosuch"`) {
		t.Errorf("unknown target: %v", err)
	}
	for _, c := range []struct {
		name string
		who  policy.Who
		want string // a problem; "" when the rule is confined to etl
	}{
		{"no pod matchers", policy.Who{Unit: policy.StringList{"etl.service"}}, ""},
		{"any", policy.Who{Any: true}, ""},
		{"its namespace", policy.Who{Kubernetes: &policy.KubernetesWho{Namespace: policy.StringList{"etl"}}}, ""},
		{"another namespace", policy.Who{Kubernetes: &policy.KubernetesWho{Namespace: policy.StringList{"payments"}}}, "spec.who.kubernetes.namespace: an AccessRule applies to the pods of its own namespace only"},
		{"a pattern", policy.Who{Kubernetes: &policy.KubernetesWho{Namespace: policy.StringList{"*"}}}, "spec.who.kubernetes.namespace"},
	} {
		rule := decodeObject[AccessRule](t, etlJobs)
		rule.Spec.Who = c.who
		cfg, err := Apply(base(t), []ProtectedTarget{decodeObject[ProtectedTarget](t, ordersDB)}, []AccessRule{rule})
		if c.want != "" {
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v, want %q", c.name, err, c.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		got := cfg.Rules[len(cfg.Rules)-1]
		if k := got.Who.Kubernetes; got.Who.Any || k == nil || !slices.Equal(k.Namespace, policy.StringList{"etl"}) || !got.Cluster {
			t.Errorf("%s: who %+v (cluster %v), want confined to etl", c.name, got.Who, got.Cluster)
		}
	}
}

// A ProtectedTarget's author picks where its credentials are sent: they
// come from Secrets, never from the node's files or the agent's
// environment, which the agent reads as root.
func TestApplyRefusesNodeSecrets(t *testing.T) {
	target := decodeObject[ProtectedTarget](t, ordersDB)
	target.Spec.Credentials = map[string]config.Credential{
		"file": {Username: "u", PasswordFile: "/proc/1/root/var/lib/kubelet/pki/kubelet-client-current.pem"},
		"env":  {Username: "u", PasswordEnv: "ORDERS_RW"},
		"key":  {Username: "u", PrivateKeyFile: "/etc/ssh/ssh_host_ed25519_key"},
	}
	_, err := Apply(base(t), []ProtectedTarget{target}, nil)
	for _, field := range []string{"env.password_env", "file.password_file", "key.private_key_file"} {
		want := "ProtectedTarget orders-db: spec.credentials." + field + ": a ProtectedTarget takes its credentials from a Secret"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing problem %q in:\n%v", want, err)
		}
	}
}

// An AccessRule that does not validate stops its own namespace only: it
// is taken as a rule denying the namespace's pods every target, and the
// problems come with the configuration. A ProtectedTarget that does not
// validate still stops the whole set.
func TestApplyQuarantinesInvalidRules(t *testing.T) {
	good := decodeObject[AccessRule](t, etlJobs)
	bad := decodeObject[AccessRule](t, etlJobs)
	bad.Name, bad.Namespace = "typo", "web"
	bad.Spec.Allow = policy.StringList{"selekt"}
	target := decodeObject[ProtectedTarget](t, ordersDB)
	cfg, err := Apply(base(t), []ProtectedTarget{target}, []AccessRule{good, bad})
	var inv *InvalidError
	if cfg == nil || !errors.As(err, &inv) || !inv.Quarantined || !strings.Contains(err.Error(), `AccessRule web/typo: spec.allow[0]: unknown operation "selekt"`) {
		t.Fatalf("Apply = %v, %v", cfg != nil, err)
	}
	var names []string
	for _, r := range cfg.Rules {
		names = append(names, r.Name)
		if r.Name == "web/typo" && (!slices.Equal(r.Deny, policy.StringList{"*"}) || len(r.Allow) > 0 || !slices.Equal(r.Who.Kubernetes.Namespace, policy.StringList{"web"}) || len(r.Targets) == 0) {
			t.Errorf("quarantined rule %+v", r)
		}
	}
	if !slices.Contains(names, "etl/etl-jobs") || !slices.Contains(names, "web/typo") {
		t.Errorf("rules %v", names)
	}

	target.Spec.Endpoints = []string{"not an endpoint"}
	if cfg, err := Apply(base(t), []ProtectedTarget{target}, []AccessRule{good}); cfg != nil || !errors.As(err, &inv) || inv.Quarantined {
		t.Errorf("an invalid ProtectedTarget: %v, %v", cfg != nil, err)
	}
}

// An AccessRule the agent's types cannot decode (what a schema of a newer
// CRD lets through) denies its namespace's pods, like one that does not
// validate: the rest of the cluster's policy still loads.
func TestLoadPolicyQuarantinesRulesThatDoNotDecode(t *testing.T) {
	object := func(doc string) *unstructured.Unstructured {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatal(err)
		}
		return &unstructured.Unstructured{Object: m}
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), ListKinds,
		object(ordersDB), object(etlJobs), object(`
apiVersion: corral.dev/v1alpha1
kind: AccessRule
metadata: {name: newer, namespace: web}
spec:
  who: {kubernetes: {service_account: [site]}}
  targets: [orders-db]
  allow: {operations: [select]}
`), object(`
apiVersion: corral.dev/v1alpha1
kind: AccessRule
metadata: {name: stricter, namespace: shop}
spec:
  who: {kubernetes: {service_account: [site]}}
  targets: [orders-db]
  allow: [select]
  deny_after_hours: [delete]
`))
	cfg, err := LoadPolicy(context.Background(), dyn, base(t))
	var inv *InvalidError
	if cfg == nil || !errors.As(err, &inv) || !inv.Quarantined || len(inv.Problems) != 2 ||
		!strings.HasPrefix(inv.Problems[0], "AccessRule shop/stricter: does not decode: ") || !strings.Contains(inv.Problems[0], "deny_after_hours") ||
		!strings.HasPrefix(inv.Problems[1], "AccessRule web/newer: does not decode: ") {
		t.Fatalf("LoadPolicy = %v, %v", cfg != nil, err)
	}
	rules := map[string]policy.Rule{}
	for _, r := range cfg.Rules {
		rules[r.Name] = r
	}
	if r, ok := rules["web/newer"]; !ok || !slices.Equal(r.Deny, policy.StringList{"*"}) || len(r.Allow) > 0 || !slices.Equal(r.Who.Kubernetes.Namespace, policy.StringList{"web"}) || !slices.Contains(r.Targets, "orders-db") {
		t.Errorf("the rule that does not decode: %+v", r)
	}
	if r, ok := rules["shop/stricter"]; !ok || !slices.Equal(r.Deny, policy.StringList{"*"}) || len(r.Allow) > 0 {
		t.Errorf("the rule with a field this agent does not know: %+v", r)
	}
	if r, ok := rules["etl/etl-jobs"]; !ok || !slices.Equal(r.Allow, policy.StringList{"select", "insert"}) {
		t.Errorf("the other namespace's rule: %+v", r)
	}

	// A ProtectedTarget that does not decode still refuses the whole set.
	dyn = dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), ListKinds, object(`
apiVersion: corral.dev/v1alpha1
kind: ProtectedTarget
metadata: {name: orders-db}
spec: {protocol: postgres, endpoints: {a: 1}}
`))
	if cfg, err := LoadPolicy(context.Background(), dyn, base(t)); cfg != nil || err == nil || !strings.Contains(err.Error(), "ProtectedTarget orders-db") {
		t.Errorf("a ProtectedTarget that does not decode: %v, %v", cfg != nil, err)
	}
}
