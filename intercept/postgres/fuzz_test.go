package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/corral-dev/corral/policy"
)

var classifySeeds = []string{
	"", ";", "SELECT 1", "SELECT 1; DELETE FROM t", "SELEC 1",
	"WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
	"COPY t TO PROGRAM 'id'", "COPY (SELECT 1) TO STDOUT",
	"SELECT set_config('role', 'x', false)", "SELECT set_config($1, 'x', false)",
	"EXPLAIN ANALYZE UPDATE t SET a = 1", "PREPARE p AS SELECT pg_read_file('x')",
	"DECLARE c CURSOR FOR SELECT * FROM t", "CREATE FUNCTION f() RETURNS int BEGIN ATOMIC SELECT 1; END",
	"DO $$BEGIN END$$", "RESET ALL", "DISCARD ALL", "LOAD 'x'", "ALTER SYSTEM SET x = 1",
	"SELECT ('/etc/passwd'::text).pg_read_file", "SELECT (c).email FROM customers c",
	"SELECT * FROM (SELECT * FROM (SELECT * FROM (SELECT 1) a) b) c",
	"SELECT $$unterminated", "/* unterminated comment", "SELECT '\xff\xfe'",
	strings.Repeat("(", 200) + "1" + strings.Repeat(")", 200),
}

// FuzzClassify: any input is classified or refused with an error, never a
// panic; what is classified carries only vocabulary words, sorted and
// distinct.
func FuzzClassify(f *testing.F) {
	for _, s := range classifySeeds {
		f.Add(s)
	}
	for _, c := range classifyCases {
		f.Add(c.sql)
	}
	vocab := policy.Vocabulary[policy.KindSQL]
	m := compileMasks(leakMasks)
	strict := compileMasks([]policy.Mask{{Columns: []string{"customers.email"}, Method: "redact", Filters: "equality"}})
	f.Fuzz(func(t *testing.T, sql string) {
		stmts, err := Classify(sql)
		if err != nil {
			return
		}
		for _, s := range stmts {
			if len(s.Ops) == 0 {
				t.Errorf("%q: statement %q has no operations", sql, s.Text)
			}
			if !slices.IsSorted(s.Ops) || len(slices.Compact(slices.Clone(s.Ops))) != len(s.Ops) {
				t.Errorf("%q: Ops %q not sorted and distinct", sql, s.Ops)
			}
			for _, op := range s.Ops {
				if !slices.Contains(vocab, op) {
					t.Errorf("%q: op %q is not a word of the sql vocabulary", sql, op)
				}
			}
			if !strings.Contains(sql, s.Text) {
				t.Errorf("%q: Text %q is not part of the input", sql, s.Text)
			}
			m.leak(&s, lineage{}) // must not panic either
			strict.filtered(&s, lineage{views: map[string]bool{"v": true}})
		}
		// The cache agrees with a fresh classification.
		var c classifier
		for i := 0; i < 2; i++ {
			cached, err := c.classify(context.Background(), sql)
			if err != nil {
				t.Fatalf("%q: classifier: %v (Classify: ok)", sql, err)
			}
			if len(cached) != len(stmts) {
				t.Fatalf("%q: classifier: %d statements, Classify %d", sql, len(cached), len(stmts))
			}
			for j := range cached {
				if !slices.Equal(cached[j].Ops, stmts[j].Ops) {
					t.Errorf("%q: classifier Ops %q, Classify %q", sql, cached[j].Ops, stmts[j].Ops)
				}
			}
		}
	})
}

var scrubDetectors = []string{"credit_card", "email", "ssn", "phone", "iban", "aws_key", "gcp_key", "github_token", "jwt"}

// FuzzScrub: scrubbing never panics, whatever the bytes; with redact the
// output holds nothing the detector would mask again.
func FuzzScrub(f *testing.F) {
	for i, s := range []string{
		"card 4111 1111 1111 1111 ok", "4111111111111111 4111111111111111", "a@b.com,c@d.org",
		"ssn 123-45-6789", "+1 (555) 123-4567", "GB82 WEST 1234 5698 7654 32", "AKIAIOSFODNN7EXAMPLE",
		"AIza" + strings.Repeat("x", 35), "ghp_" + strings.Repeat("a", 36),
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "", "\xff\xfe", "4111111111111111\xff",
		"1234567890123456789012345678901234567890",
	} {
		f.Add(s, uint8(i))
	}
	f.Add("0000000000000 0000000000000", uint8(0)) // two card numbers run together
	f.Fuzz(func(t *testing.T, v string, which uint8) {
		name := scrubDetectors[int(which)%len(scrubDetectors)]
		in := []byte(v)
		orig := slices.Clone(in)
		for _, method := range []string{"redact", "partial", "hash", "null"} {
			out, changed := scrub(in, rules(method, name), testKey)
			if !bytes.Equal(in, orig) {
				t.Fatalf("%s/%s: input modified", name, method)
			}
			if !changed && !bytes.Equal(out, in) {
				t.Errorf("%s/%s: unchanged but output %q differs from %q", name, method, out, in)
			}
			if method == "null" && changed && out != nil {
				t.Errorf("null: %q", out)
			}
			if method == "partial" && utf8.Valid(in) && utf8.RuneCount(out) != utf8.RuneCount(in) {
				t.Errorf("partial changed the length in runes: %q -> %q", in, out)
			}
		}
		out, _ := scrub(in, rules("redact", name), testKey)
		if again, changed := scrub(out, rules("redact", name), testKey); changed {
			t.Errorf("%s: %q -> %q still has a match: %q", name, v, out, again)
		}
	})
}

// clientSeeds are frontend message streams, as a client sends them after
// startup.
func clientSeeds() [][]byte {
	enc := func(msgs ...pgproto3.FrontendMessage) []byte {
		var b []byte
		for _, m := range msgs {
			var err error
			if b, err = m.Encode(b); err != nil {
				panic(err)
			}
		}
		return b
	}
	return [][]byte{
		enc(&pgproto3.Query{String: "SELECT 1"}, &pgproto3.Terminate{}),
		enc(&pgproto3.Query{String: "SELECT 1; DROP TABLE t"}, &pgproto3.Query{String: "SELEC"}),
		enc(&pgproto3.Query{String: "PREPARE p AS SELECT 1"}, &pgproto3.Query{String: "EXECUTE p"}, &pgproto3.Query{String: "EXECUTE q"},
			&pgproto3.Query{String: "DEALLOCATE ALL"}),
		enc(&pgproto3.Parse{Name: "s", Query: "SELECT $1::int"}, &pgproto3.Describe{ObjectType: 'S', Name: "s"},
			&pgproto3.Bind{PreparedStatement: "s", Parameters: [][]byte{[]byte("1")}}, &pgproto3.Describe{ObjectType: 'P'},
			&pgproto3.Execute{MaxRows: 1}, &pgproto3.Close{ObjectType: 'P'}, &pgproto3.Close{ObjectType: 'S', Name: "s"}, &pgproto3.Sync{}),
		enc(&pgproto3.Parse{Query: "SELECT 1; SELECT 2"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{}, &pgproto3.Sync{}),
		enc(&pgproto3.Bind{PreparedStatement: "never"}, &pgproto3.Execute{Portal: "x"}, &pgproto3.Sync{}),
		enc(&pgproto3.Query{String: "COPY t FROM STDIN"}, &pgproto3.CopyData{Data: []byte("1\n")}, &pgproto3.CopyDone{},
			&pgproto3.CopyFail{Message: "no"}),
		enc(&pgproto3.FunctionCall{Function: 1234, Arguments: [][]byte{[]byte("x")}, ResultFormatCode: 1}),
		enc(&pgproto3.Query{String: "SELECT 1"}, &pgproto3.Terminate{}, &pgproto3.Query{String: "SELECT 2"}),
		{'Q', 0, 0, 0, 4},                      // empty body
		{'Q', 0, 0, 0, 9, 'a', 'b', 0, 'c', 0}, // NUL inside the query
		{'Q', 0xff, 0xff, 0xff, 0xff},          // negative length
		{'Q', 0, 0, 0, 3},                      // length shorter than itself
		{'Q', 0x05, 0, 0, 0, 'S'},              // beyond the maximum message size
		{'z', 0, 0, 0, 4},                      // unknown type
		{'B', 0, 0, 0, 6, 0, 0},                // truncated Bind
		{'P', 0, 0, 0, 8, 0, 'x', 0, 0},        // truncated Parse
		{'E', 0, 0, 0, 5, 0},                   // Execute without MaxRows
		{'F', 0, 0, 0, 6, 0, 0},                // truncated FunctionCall
		{},
	}
}

// FuzzClientMessages: whatever a client sends after startup, fromClient
// neither panics nor hangs; it ends with an error or at Terminate.
func FuzzClientMessages(f *testing.F) {
	for _, s := range clientSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		endsWithin(t, data, 10*time.Second)
	})
}

// endsWithin runs a session against the fake server with data as all the
// client sends, and fails if the session is still running after d: a
// statement held behind a barrier waits for the server's answer, so the
// server side must run too.
func endsWithin(t *testing.T, data []byte, d time.Duration) {
	t.Helper()
	ts := newTestSession(t, stubDecider(allowAll), policy.Decision{Result: policy.Allow})
	server := ts.fakeServer()
	done := ts.run()
	go func() {
		ts.cliConn.Write(data)
		ts.cliConn.Close()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("the session hung on %q", data)
	}
	<-server
}

// The seeds above exercise what they claim to.
func TestClientSeedsEndFromClient(t *testing.T) {
	for _, data := range clientSeeds() {
		endsWithin(t, data, 10*time.Second)
	}
	// A length field beyond maxMessage is refused at once.
	ts := newTestSession(t, stubDecider(allowAll), policy.Decision{Result: policy.Allow})
	go io.Copy(io.Discard, ts.upConn)
	big := []byte{'Q', 0, 0, 0, 0}
	binary.BigEndian.PutUint32(big[1:], maxMessage+5)
	go ts.cliConn.Write(big)
	if err := ts.s.fromClient(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("oversized message: %v", err)
	}
}
