package policy

import (
	"context"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestRegoUnitTests runs the embedded *_test.rego files with OPA's tester,
// as `corral policy test` does.
func TestRegoUnitTests(t *testing.T) {
	ctx := context.Background()
	sources, err := BuiltinModules(true)
	if err != nil {
		t.Fatal(err)
	}
	modules := map[string]*ast.Module{}
	nTestFiles := 0
	for name, src := range sources {
		m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		modules[name] = m
		if strings.HasSuffix(name, "_test.rego") {
			nTestFiles++
		}
	}
	if nTestFiles == 0 {
		t.Fatal("no *_test.rego embedded")
	}
	store := inmem.New()
	txn := storage.NewTransactionOrDie(ctx, store)
	defer store.Abort(ctx, txn)
	ch, err := tester.NewRunner().SetModules(modules).SetStore(store).EnableTracing(false).RunTests(ctx, txn)
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for r := range ch {
		ran++
		switch {
		case r.Error != nil:
			t.Errorf("%s.%s: error: %v", r.Package, r.Name, r.Error)
		case r.Fail:
			t.Errorf("%s.%s: FAIL (%s)", r.Package, r.Name, r.Location)
		case r.Skip:
			t.Logf("%s.%s: skipped", r.Package, r.Name)
		}
	}
	t.Logf("%d Rego tests ran", ran)
	if ran < 12 {
		t.Fatalf("only %d Rego tests ran, want at least 12", ran)
	}
}
