package postgres

import (
	"fmt"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"
)

func TestZZFP2(t *testing.T) {
	for _, q := range []string{"SELECT 1", "SELECT 1;", "SELECT 1; SELECT 1", "SELECT 1; SELECT 2", "SELECT 1; DELETE FROM t", "DELETE FROM t; SELECT 1", "SELECT 1;;", ";SELECT 1", "SELECT 1; ROLLBACK", "ROLLBACK", "SELECT 1; DISCARD ALL"} {
		f, err := pg.Fingerprint(q)
		fmt.Printf("%-30q %s %v\n", q, f, err)
	}
}
