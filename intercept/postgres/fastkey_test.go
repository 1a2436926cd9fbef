package postgres

import (
	"strings"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"
)

func TestFastKeyAcceptsPlainLiteralsOnly(t *testing.T) {
	same := [][2]string{
		{"SELECT abalance FROM pgbench_accounts WHERE aid = 1;", "SELECT abalance FROM pgbench_accounts WHERE aid = 9876543;"},
		{"SELECT * FROM t WHERE a = 'x' AND b = 1.5e3", "SELECT * FROM t WHERE a = 'it''s' AND b = 2"},
		{"INSERT INTO t1 (a, b) VALUES (1, 'a\\b')", "INSERT INTO t1 (a, b) VALUES (22, '')"},
		{"UPDATE t SET a = a + 1 WHERE id=3", "UPDATE t SET a = a + 100 WHERE id=4"},
		{"SELECT 'é', 'a' FROM t\nWHERE b = 'c'", "SELECT 'x', 'y' FROM t\nWHERE b = 'z'"},
		{"SELECT x::int FROM t LIMIT 10", "SELECT x::int FROM t LIMIT 20"},
	}
	for _, p := range same {
		a, okA := fastKey(p[0])
		b, okB := fastKey(p[1])
		if !okA || !okB || a != b {
			t.Errorf("fastKey(%q) = %q, %v; fastKey(%q) = %q, %v; want the same key", p[0], a, okA, p[1], b, okB)
		}
	}
	differ := [][2]string{
		{"SELECT a FROM t WHERE id = 1", "SELECT b FROM t WHERE id = 1"},
		{"SELECT a FROM t1", "SELECT a FROM t2"},
		{"SELECT a FROM t", "select a from t"},
		{"SELECT 1", "SELECT 1; DROP TABLE t"},
	}
	for _, p := range differ {
		a, okA := fastKey(p[0])
		b, okB := fastKey(p[1])
		if okA && okB && a == b {
			t.Errorf("%q and %q share the key %q", p[0], p[1], a)
		}
	}
	for _, sql := range []string{
		"SELECT 1 -- DROP",
		"SELECT /* x */ 1",
		`SELECT "a" FROM t`,
		"SELECT $1",
		"SELECT $$x$$",
		"SELECT E'\\x'",
		"SELECT B'101'",
		"SELECT X'1F'",
		"SELECT U&'d\\0061t'",
		"SELECT N'x'",
		"SELECT 'a'\n'b'",
		"SELECT 'a'  \n  'b'",
		"SELECT 'a\nb'",
		"SELECT 'unterminated",
		"SELECT 1x",
		"SELECT 0x1F",
		"SELECT 1.2.3",
		"SELECT .5",
		"SELECT 1e",
		"SELECT a[1] FROM t",
		"SELECT a ~ 'x' FROM t",
		"SELECT 1 \\g",
		"SELECT 'a''b''",
		"SELECT 'x'y",
	} {
		if k, ok := fastKey(sql); ok {
			t.Errorf("fastKey(%q) = %q, want no key", sql, k)
		}
	}
}

// The fast path answers from the parsed classification of a statement of
// the same shape, never for statements it must leave to the parser.
func TestClassifierFastPath(t *testing.T) {
	var c classifier
	classifyVia(t, &c, "SELECT a FROM t WHERE id = 1")
	if len(c.fast) != 1 {
		t.Fatalf("fast cache: %v", c.fast)
	}
	for k, e := range c.fast {
		e.Command = "FAST"
		c.fast[k] = e
	}
	if got := classifyVia(t, &c, "SELECT a FROM t WHERE id = 77"); got[0].Command != "FAST" || got[0].Text != "SELECT a FROM t WHERE id = 77" || got[0].normalized != "SELECT a FROM t WHERE id = $1" {
		t.Fatalf("second: %+v", got[0])
	}
	for _, sql := range []string{"SET search_path = x", "SHOW work_mem", "DROP TABLE t", "SELECT set_config('role', 'x', false)"} {
		classifyVia(t, &c, sql)
	}
	if len(c.fast) != 1 {
		t.Fatalf("statements other than plain DML entered the fast cache: %d", len(c.fast))
	}
}

// FuzzFastKey checks the scan against PostgreSQL's own lexer: whatever the
// scan calls a literal, the parser must too. Replacing every literal the
// scan found by another value must leave pg.Normalize's result (which
// replaces exactly the parser's constants) unchanged.
func FuzzFastKey(f *testing.F) {
	for _, s := range []string{
		"SELECT abalance FROM pgbench_accounts WHERE aid = 12345;",
		"SELECT * FROM t WHERE a = 'x' AND b = 1.5e3",
		"INSERT INTO t1 (a, b) VALUES (1, 'a''b')",
		"UPDATE t SET a = a + 1 WHERE id = 3 RETURNING a",
		"SELECT x::int, 2.5, 'q' || 'r' FROM t LIMIT 10 OFFSET 5",
		"DELETE FROM t WHERE a IN (1, 2, 3) AND b <> 'z'",
		"SELECT 1e+5, 3.e2, 7. FROM t",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		key, ok := fastKey(sql)
		if !ok {
			return
		}
		other := relit(t, key)
		want, errA := pg.Normalize(sql)
		got, errB := pg.Normalize(other)
		if (errA == nil) != (errB == nil) {
			t.Fatalf("%q parses: %v; with other literals %q: %v", sql, errA, other, errB)
		}
		if errA == nil && strings.TrimSpace(want) != strings.TrimSpace(got) {
			t.Fatalf("%q normalizes to %q; with other literals %q to %q", sql, want, other, got)
		}
	})
}

// relit rebuilds a statement from its fast key with fresh literal values.
func relit(t *testing.T, key string) string {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		if key[i] != 0 {
			b.WriteByte(key[i])
			continue
		}
		i++
		switch key[i] {
		case 'N':
			b.WriteString("4711")
		case 'S':
			b.WriteString("'other'")
		default:
			t.Fatalf("bad marker in %q", key)
		}
	}
	return b.String()
}
