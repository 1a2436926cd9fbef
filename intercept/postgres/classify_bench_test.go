package postgres

import (
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"
)

const benchQuery = "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;"

func BenchmarkClassify(b *testing.B) {
	b.Run("Classify", func(b *testing.B) {
		for b.Loop() {
			Classify(benchQuery)
		}
	})
	b.Run("pg.Parse", func(b *testing.B) {
		for b.Loop() {
			pg.Parse(benchQuery)
		}
	})
	b.Run("pg.Fingerprint", func(b *testing.B) {
		for b.Loop() {
			pg.Fingerprint(benchQuery)
		}
	})
	b.Run("pg.Normalize", func(b *testing.B) {
		for b.Loop() {
			pg.Normalize(benchQuery)
		}
	})
}
