package recorder_test

import (
	"testing"
	"time"

	"github.com/corral-dev/corral/recorder"
)

// BenchmarkRecordStatement is what recording costs a statement: its
// statement record and its result record.
func BenchmarkRecordStatement(b *testing.B) {
	dir := b.TempDir()
	e := newEnvB(b, dir)
	s, err := e.rec.Start(header("s-bench"), time.Now(), recorder.Strict, nil)
	if err != nil {
		b.Fatal(err)
	}
	st := &recorder.Statement{Text: "SELECT abalance FROM pgbench_accounts WHERE aid = $1", Operations: []string{"select"}, Decision: "allow", Rule: "pgbench", PolicyVersion: 1}
	b.ReportAllocs()
	for b.Loop() {
		seq, err := s.Record(recorder.Record{Type: recorder.TypeStatement, Statement: st})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Record(recorder.Record{Type: recorder.TypeResult, Result: &recorder.Result{Of: seq, Command: "SELECT 1", Rows: 1, Bytes: 4, DurationMS: 0.05}}); err != nil {
			b.Fatal(err)
		}
	}
	s.End(recorder.End{})
}
