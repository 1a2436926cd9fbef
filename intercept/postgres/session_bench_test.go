package postgres

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/corral-dev/corral/policy"
)

// BenchmarkSessionSimpleQuery is one pgbench -S transaction through a
// session, over in-memory pipes to a canned server: corral's own work per
// query, without the system calls.
func BenchmarkSessionSimpleQuery(b *testing.B) {
	ts := benchSession(b)
	result := []pgproto3.BackendMessage{benchColumns, benchRow, benchComplete, &pgproto3.ReadyForQuery{TxStatus: 'I'}}
	ts.serve(func(msg pgproto3.FrontendMessage) []pgproto3.BackendMessage {
		if _, ok := msg.(*pgproto3.Query); ok {
			return result
		}
		return nil
	})
	done := ts.run()
	defer func() { ts.cliConn.Close(); <-done }()
	q := &pgproto3.Query{String: "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;"}
	for b.Loop() {
		ts.roundTrip(b, q)
	}
}

// BenchmarkSessionPrepared is one pgbench -S -M prepared transaction
// (Bind, Describe, Execute, Sync of a statement prepared once), as
// BenchmarkSessionSimpleQuery.
func BenchmarkSessionPrepared(b *testing.B) {
	ts := benchSession(b)
	parsed, bound := []pgproto3.BackendMessage{&pgproto3.ParseComplete{}}, []pgproto3.BackendMessage{&pgproto3.BindComplete{}}
	described, executed := []pgproto3.BackendMessage{benchColumns}, []pgproto3.BackendMessage{benchRow, benchComplete}
	synced := []pgproto3.BackendMessage{&pgproto3.ReadyForQuery{TxStatus: 'I'}}
	ts.serve(func(msg pgproto3.FrontendMessage) []pgproto3.BackendMessage {
		switch msg.(type) {
		case *pgproto3.Parse:
			return parsed
		case *pgproto3.Bind:
			return bound
		case *pgproto3.Describe:
			return described
		case *pgproto3.Execute:
			return executed
		case *pgproto3.Sync:
			return synced
		}
		return nil
	})
	done := ts.run()
	defer func() { ts.cliConn.Close(); <-done }()
	ts.roundTrip(b, &pgproto3.Parse{Name: "P0_1", Query: "SELECT abalance FROM pgbench_accounts WHERE aid = $1;"}, &pgproto3.Sync{})
	bind := &pgproto3.Bind{PreparedStatement: "P0_1", Parameters: [][]byte{[]byte("12345")}}
	desc, exec, sync := &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{}
	for b.Loop() {
		ts.roundTrip(b, bind, desc, exec, sync)
	}
}

// What the canned server answers pgbench's query with.
var (
	benchColumns  = &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("abalance"), TableOID: 16390, TableAttributeNumber: 3, DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1}}}
	benchRow      = &pgproto3.DataRow{Values: [][]byte{[]byte("0")}}
	benchComplete = &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}
)

func benchSession(b *testing.B) *testSession {
	ts := newTestSession(b, maskingPolicy(customersMasks), policy.Decision{Result: policy.Allow, Mask: customersMasks})
	ts.s.cat.rels[16390] = &relation{schema: "public", name: "pgbench_accounts", kind: 'r', columns: map[int16]string{1: "aid", 2: "bid", 3: "abalance", 4: "filler"}, fetched: time.Now()}
	ts.s.cat.names["pgbench_accounts"] = byName{kinds: "r", fetched: time.Now()}
	return ts
}

// roundTrip sends msgs as the workload and reads up to ReadyForQuery; an
// error ends the benchmark.
func (ts *testSession) roundTrip(b *testing.B, msgs ...pgproto3.FrontendMessage) {
	for _, m := range msgs {
		ts.client.Send(m)
	}
	if err := ts.client.Flush(); err != nil {
		b.Fatal(err)
	}
	for {
		msg, err := ts.client.Receive()
		if err != nil {
			b.Fatal(err)
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			b.Fatal(m.Message)
		case *pgproto3.ReadyForQuery:
			return
		}
	}
}
