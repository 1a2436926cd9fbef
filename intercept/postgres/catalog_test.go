package postgres

import "testing"

// The planner folds an immutable call whose arguments hold no column: such
// a call of the database's own function, in a stored expression, runs
// under any statement on the table; one over a column does not, unless it
// is an SQL function inlined first.
func TestFoldsOwn(t *testing.T) {
	fold := map[string]bool{"16390": true, "16400": true}
	inline := map[string]bool{"16400": true}
	const k = `{FUNCEXPR :funcid 16390 :funcresulttype 23 :funcretset false :funcvariadic false :funcformat 0 :funccollid 0 :inputcollid 0 :args <> :location 33}`
	const normName = `{FUNCEXPR :funcid 16390 :funcresulttype 25 :funcretset false :funcvariadic false :funcformat 0 :funccollid 100 :inputcollid 100 :args ({VAR :varno 1 :varattno 2 :vartype 25 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 1 :varattnosyn 2 :location 40}) :location 35}`
	const lower = `{FUNCEXPR :funcid 870 :funcresulttype 25 :funcretset false :funcvariadic false :funcformat 0 :funccollid 100 :inputcollid 100 :args ({VAR :varno 1 :varattno 2 :vartype 25 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 1 :varattnosyn 2 :location 40}) :location 35}`
	for _, c := range []struct {
		name, tree string
		want       bool
	}{
		{"a call without arguments", "(" + k + ")", true},
		{"inside an operator over a column", `({OPEXPR :opno 551 :opfuncid 177 :opresulttype 23 :opretset false :opcollid 0 :inputcollid 0 :args ({VAR :varno 1 :varattno 1 :vartype 23 :vartypmod -1 :varcollid 0 :varlevelsup 0 :varnosyn 1 :varattnosyn 1 :location 31} ` + k + `) :location 34})`, true},
		{"over a column", "(" + normName + ")", false},
		{"PostgreSQL's own over a column", "(" + lower + ")", false},
		{"with a constant argument", `({FUNCEXPR :funcid 16390 :funcresulttype 23 :funcretset false :funcvariadic false :funcformat 0 :funccollid 0 :inputcollid 0 :args ({CONST :consttype 23 :consttypmod -1 :constcollid 0 :constlen 4 :constbyval true :constisnull false :location 35 :constvalue 4 [ 1 0 0 0 0 0 0 0 ]}) :location 33})`, true},
		{"an operator whose function is the database's", `{OPEXPR :opno 16401 :opfuncid 16390 :opresulttype 16 :opretset false :opcollid 0 :inputcollid 0 :args ({CONST :consttype 23 :consttypmod -1 :constcollid 0 :constlen 4 :constbyval true :constisnull false :location 35 :constvalue 4 [ 1 0 0 0 0 0 0 0 ]} {CONST :consttype 23 :consttypmod -1 :constcollid 0 :constlen 4 :constbyval true :constisnull false :location 38 :constvalue 4 [ 2 0 0 0 0 0 0 0 ]}) :location 37}`, true},
		{"an inlined SQL function over a column", `({FUNCEXPR :funcid 16400 :funcresulttype 25 :funcretset false :funcvariadic false :funcformat 0 :funccollid 100 :inputcollid 100 :args ({VAR :varno 1 :varattno 2 :vartype 25 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 1 :varattnosyn 2 :location 40}) :location 35})`, true},
		{"a column the planner drops (coalesce('k', name))", `({FUNCEXPR :funcid 16390 :funcresulttype 25 :funcretset false :funcvariadic false :funcformat 0 :funccollid 0 :inputcollid 0 :args ({COALESCEEXPR :coalescetype 25 :coalescecollid 100 :args ({CONST :consttype 25 :consttypmod -1 :constcollid 100 :constlen -1 :constbyval false :constisnull false :location 40 :constvalue 5 [ 20 0 0 0 107 ]} {VAR :varno 1 :varattno 2 :vartype 25 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 1 :varattnosyn 2 :location 45}) :location 31}) :location 35})`, true},
		{"a column under PostgreSQL's own function", `({FUNCEXPR :funcid 16390 :funcresulttype 25 :funcretset false :funcvariadic false :funcformat 0 :funccollid 0 :inputcollid 0 :args (` + lower + `) :location 35})`, false},
		{"escaped braces in a name", `({FUNCEXPR :funcid 16390 :funcresulttype 25 :funcretset false :funcvariadic false :funcformat 0 :funccollid 0 :inputcollid 0 :args ({VAR :varno 1 :varattno 2 :vartype 25 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 1 :varattnosyn 2 :location 40} {ALIAS :aliasname a\}\) :colnames <>}) :location 35})`, false},
	} {
		if got := foldsOwn(c.tree, fold, inline, map[string]bool{"16400": true}); got != c.want {
			t.Errorf("%s: foldsOwn = %v", c.name, got)
		}
	}
}

// An SQL function is inlined before folding: one whose body calls the
// database's own with constant arguments, or another such function with
// any, folds wherever it is called.
func TestInlined(t *testing.T) {
	own := ownCode{fold: map[string]bool{"1": true, "2": true, "3": true, "4": true, "5": true, "6": true},
		names: map[string]bool{"k": true, "inner_ok": true, "wrap": true, "outer": true, "plain": true, "guard": true},
		ops:   map[string]bool{"###": true}}
	bodies := [][]string{
		{"sql:3", "wrap", "SELECT $1 || k()"},
		{"sql:4", "outer", "SELECT wrap(n)"},
		{"sql:5", "plain", "SELECT lower($1) OR inner_ok(n)"},
		{"sql:6", "guard", "SELECT n ### 1"},
		{"sql:7", "opconst", "SELECT 1 ### 2"},
		{"sql:8", "broken", "SELECT ((("},
		{"sql:9", "dropped", "SELECT k(coalesce('c', $1))"},
		{"sql:10", "attr", "SELECT $1 || ('x'::text).k"},
		{"sql:11", "ownarg", "SELECT k(lower($1))"},
	}
	got := inlined(bodies, own)
	for oid, want := range map[string]bool{"3": true, "4": true, "5": false, "6": false, "7": true, "8": true, "9": true, "10": true, "11": false} {
		if got[oid] != want {
			t.Errorf("function %s inlined folds: %v, want %v", oid, got[oid], want)
		}
	}
}
