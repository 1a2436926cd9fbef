package postgres

import (
	"fmt"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"
)

func TestZZFP(t *testing.T) {
	pairs := [][2]string{
		{"PREPARE a AS SELECT 1", "PREPARE b AS SELECT 1"},
		{"EXECUTE a", "EXECUTE b"},
		{"DEALLOCATE a", "DEALLOCATE b"},
		{"DEALLOCATE a", "DEALLOCATE ALL"},
		{"SELECT lower(c.email) FROM customers x, other c", "SELECT lower(c.email) FROM customers c, other x"},
		{"SELECT lower(c.email) FROM customers c", "SELECT lower(x.email) FROM customers x"},
		{"SELECT email AS a FROM customers", "SELECT email AS b FROM customers"},
		{"SELECT lower(e) FROM customers AS c(i, e)", "SELECT lower(e) FROM customers AS c(e, i)"},
		{"SELECT (SELECT c.email FROM customers c) FROM other x", "SELECT (SELECT c.email FROM customers x) FROM other c"},
		{"DECLARE a CURSOR FOR SELECT 1", "DECLARE b CURSOR FOR SELECT 1"},
		{"SET search_path = a", "SET role = a"},
		{"SELECT set_config('a','b',false)", "SELECT set_config('role','b',false)"},
		{"SELECT 1", "select   1 -- x"},
		{"SELECT a FROM t", "SELECT a FROM T"},
		{"SELECT 1 FROM t WHERE a IN (1,2)", "SELECT 1 FROM t WHERE a IN (1,2,3)"},
		{"SELECT t FROM customers t", "SELECT x FROM customers t"},
		{"SELECT (x).pg_read_file FROM (SELECT 'a'::text AS x) s", "SELECT (x).upper FROM (SELECT 'a'::text AS x) s"},
		{"SELECT x.email FROM customers x", "SELECT customers.email FROM customers x"},
		{"COPY t TO STDOUT", "COPY t TO '/x'"},
		{"SAVEPOINT a", "SAVEPOINT b"},
		{"LISTEN a", "LISTEN b"},
		{"SELECT * FROM (SELECT email FROM customers) a", "SELECT * FROM (SELECT email FROM customers) b"},
		{"WITH a AS (SELECT email FROM customers) SELECT 1 FROM a", "WITH b AS (SELECT email FROM customers) SELECT 1 FROM b"},
	}
	for _, p := range pairs {
		a, _ := pg.Fingerprint(p[0])
		b, _ := pg.Fingerprint(p[1])
		fmt.Printf("%v  %q | %q\n", a == b, p[0], p[1])
	}
}
