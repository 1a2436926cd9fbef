package agent

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"sigs.k8s.io/yaml"

	"github.com/corral-dev/corral/agent/config"
	"github.com/corral-dev/corral/agent/kube"
	"github.com/corral-dev/corral/policy"
)

// inOps is connectAs from a pod of the namespace ops.
func inOps(unit string) policy.Input {
	in := connectAs(unit)
	in.Workload.Pod = policy.Pod{Namespace: "ops", Name: "batch-0"}
	return in
}

func accessRule(t *testing.T, unit string) *unstructured.Unstructured {
	t.Helper()
	var m map[string]any
	doc := `apiVersion: corral.dev/v1alpha1
kind: AccessRule
metadata: {name: batch-two, namespace: ops}
spec:
  who: {unit: ["` + unit + `"]}
  targets: [db]
  allow: [connect]
`
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}

// An AccessRule created in the cluster reloads the policy (through the
// watch, no polling); one that does not validate denies its namespace's
// pods, and the rest of the policy applies.
func TestClusterRulesReload(t *testing.T) {
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), kube.ListKinds)
	dir := t.TempDir()
	path := filepath.Join(dir, "corral.yaml")
	os.WriteFile(path, []byte(strings.Replace(reloadBase, "%s", "one.service", 1)), 0o600)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cp := newClusterPolicy(dyn, log)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err = cp.initial(context.Background(), cfg, 0); err != nil {
		t.Fatal(err)
	}
	engine := policy.NewEngine(log)
	engine.Load(context.Background(), cfg.Policy())
	outcomes := make(chan outcome, 16)
	r := &reloader{path: path, engine: engine, log: log, current: cfg, apply: func(*config.Config) {},
		reloaded: func(v uint64, err error) { outcomes <- outcome{v, err} }, extend: cp.extend, kick: cp.kick}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watching := make(chan struct{})
	r.watching = func() { close(watching) }
	go r.run(ctx, nil)
	<-watching
	cp.watch(ctx)

	if d, _ := engine.Decide(ctx, inOps("two.service")); d.Allowed() {
		t.Fatal("two.service allowed before any AccessRule")
	}
	res := dyn.Resource(kube.AccessRules).Namespace("ops")
	// The fake's watch starts when its Watch call is made; create until a
	// reload follows (the first create may precede the watch).
	for i := 0; ; i++ {
		u := accessRule(t, "two.service")
		u.SetName("batch-two-" + string(rune('a'+i)))
		if _, err := res.Create(ctx, u, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if o := next(t, outcomes); o.err != nil {
			t.Fatal(o.err)
		}
		if d, _ := engine.Decide(ctx, inOps("two.service")); d.Allowed() {
			if !strings.HasPrefix(d.Rule, "ops/batch-two-") {
				t.Errorf("decided by %q", d.Rule)
			}
			// An AccessRule is its namespace's: the same unit outside
			// a pod of ops is not let in.
			if d, _ := engine.Decide(ctx, connectAs("two.service")); d.Allowed() {
				t.Errorf("an AccessRule of ops let in a workload outside ops: %s", d.Rule)
			}
			break
		}
		if i > 3 {
			t.Fatal("the AccessRule never took effect")
		}
	}

	bad := accessRule(t, "three.service")
	bad.SetName("broken")
	unstructured.SetNestedStringSlice(bad.Object, []string{"nosuch"}, "spec", "targets")
	if _, err := res.Create(ctx, bad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The namespace of a rule that does not validate is cut off; the rest
	// of the policy goes on.
	if o := next(t, outcomes); o.err != nil {
		t.Fatalf("a reload with an invalid AccessRule: %v", o.err)
	}
	if d, _ := engine.Decide(ctx, inOps("two.service")); d.Allowed() || d.Rule != "ops/broken" {
		t.Errorf("a pod of ops after its invalid AccessRule: %s by %q", d.Result, d.Rule)
	}
	if d, _ := engine.Decide(ctx, connectAs("one.service")); !d.Allowed() {
		t.Errorf("the file's rule after an invalid AccessRule: %s", d.Result)
	}
}
