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
	ts := newTestSession(b, maskingPolicy(customersMasks), policy.Decision{Result: policy.Allow, Mask: customersMasks})
	go func() {
		rd := &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("abalance"), TableOID: 16390, TableAttributeNumber: 3, DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1}}}
		for {
			msg, err := ts.server.Receive()
			if err != nil {
				return
			}
			if _, ok := msg.(*pgproto3.Query); !ok {
				continue
			}
			ts.server.Send(rd)
			ts.server.Send(&pgproto3.DataRow{Values: [][]byte{[]byte("0")}})
			ts.server.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
			ts.server.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
			if ts.server.Flush() != nil {
				return
			}
		}
	}()
	ts.s.cat.rels[16390] = &relation{schema: "public", name: "pgbench_accounts", kind: 'r', columns: map[int16]string{1: "aid", 2: "bid", 3: "abalance", 4: "filler"}, fetched: time.Now()}
	ts.s.cat.names["pgbench_accounts"] = byName{kinds: "r", fetched: time.Now()}
	done := ts.run()
	defer func() { ts.cliConn.Close(); <-done }()
	q := &pgproto3.Query{String: "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;"}
	for b.Loop() {
		ts.client.Send(q)
		if err := ts.client.Flush(); err != nil {
			b.Fatal(err)
		}
		for {
			msg, err := ts.client.Receive()
			if err != nil {
				b.Fatal(err)
			}
			if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
				break
			}
		}
	}
}
