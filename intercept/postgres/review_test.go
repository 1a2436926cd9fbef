package postgres

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgproto3"
	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/corral-dev/corral/policy"
	"github.com/corral-dev/corral/policy/approval"
)

// reviewPolicy sends deletes to review by group:dba, with the customers
// masks, and allows the rest.
func reviewPolicy(in policy.Input) policy.Decision {
	if slices.Contains(in.Action.Operations, "delete") {
		return policy.Decision{Result: policy.Review, Reason: `delete needs review under rule "app"`, Rule: "app",
			Reviewers: []string{"group:dba"}, Grant: "once", Timeout: time.Minute, Mask: customersMasks}
	}
	return policy.Decision{Result: policy.Allow, Mask: customersMasks}
}

var dba = approval.Approver{Name: "alice", Via: approval.ViaUnix, UID: new(uint32(1001)), Groups: []string{"dba"}}

func reviewSession(t *testing.T) (*testSession, *approval.Broker, chan approval.Event) {
	t.Helper()
	store, err := approval.OpenStore(filepath.Join(t.TempDir(), "approvals.db"))
	if err != nil {
		t.Fatal(err)
	}
	evs := make(chan approval.Event, 64)
	b, err := approval.NewBroker(context.Background(), store, approval.Options{Events: func(e approval.Event) { evs <- e }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(); store.Close() })
	ts := newTestSession(t, stubDecider(reviewPolicy), policy.Decision{Result: policy.Allow, Mask: customersMasks})
	ts.s.c.Approvals = b
	return ts, b, evs
}

// notice reads the client's next message, which must be corral's notice
// that the statement waits, and returns the request id it names.
func (ts *testSession) waitingNotice(t *testing.T) string {
	t.Helper()
	msg, err := ts.client.Receive()
	if err != nil {
		t.Fatal(err)
	}
	n, ok := msg.(*pgproto3.NoticeResponse)
	if !ok {
		t.Fatalf("got %T, want the waiting notice", msg)
	}
	id, rest, ok := strings.Cut(strings.TrimPrefix(n.Message, "corral: waiting for approval "), " ")
	if !ok || !strings.HasPrefix(id, "r-") || rest != "(reviewers: group:dba)" || n.Severity != "NOTICE" || !strings.Contains(n.Detail, "corral approve "+id) {
		t.Fatalf("notice %+v", n)
	}
	return id
}

// receive reads up to ReadyForQuery.
func (ts *testSession) receive(t *testing.T) []pgproto3.BackendMessage {
	t.Helper()
	var got []pgproto3.BackendMessage
	for {
		msg, err := ts.client.Receive()
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		b, _ := msg.Encode(nil)
		kept, _ := pgproto3.NewFrontend(strings.NewReader(string(b)), nil).Receive()
		got = append(got, kept)
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			return got
		}
	}
}

func (ts *testSession) send(t *testing.T, msgs ...pgproto3.FrontendMessage) {
	t.Helper()
	for _, m := range msgs {
		ts.client.Send(m)
	}
	if err := ts.client.Flush(); err != nil {
		t.Fatal(err)
	}
}

func TestSessionReviewApproved(t *testing.T) {
	ts, b, _ := reviewSession(t)
	server := ts.fakeServer()
	done := ts.run()
	ts.send(t, &pgproto3.Query{String: "DELETE FROM customers WHERE id = 1"})
	id := ts.waitingNotice(t)
	r, err := b.Get(context.Background(), id)
	if err != nil || r.State != approval.Pending || r.Text != "DELETE FROM customers WHERE id = $1" || r.SessionID != "test" || r.Kind != policy.KindSQL ||
		r.Statement != "DELETE FROM customers WHERE id = 1" {
		t.Fatalf("request %v %+v", err, r)
	}
	if _, err := b.Decide(context.Background(), id, dba, true, ""); err != nil {
		t.Fatal(err)
	}
	got := ts.receive(t)
	if !slices.Equal(types(got), []string{"CommandComplete", "ReadyForQuery"}) {
		t.Fatalf("after approval: %v", types(got))
	}
	// The masks of the decision apply after approval too.
	got = ts.exchange(t, &pgproto3.Query{String: "SELECT id, email FROM customers"})
	if rows := dataRows(got); len(rows) != 1 || rows[0][1] != "****" {
		t.Errorf("rows %q", rows)
	}
	sent := ts.finish(t, done, server)
	if q, ok := sent[0].(*pgproto3.Query); !ok || q.String != "DELETE FROM customers WHERE id = 1" {
		t.Fatalf("server received %#v", sent[0])
	}
}

func TestSessionReviewDenied(t *testing.T) {
	ts, b, _ := reviewSession(t)
	server := ts.fakeServer()
	done := ts.run()
	ts.send(t, &pgproto3.Query{String: "DELETE FROM customers"})
	id := ts.waitingNotice(t)
	if _, err := b.Decide(context.Background(), id, dba, false, "not during business hours"); err != nil {
		t.Fatal(err)
	}
	got := ts.receive(t)
	if !slices.Equal(types(got), []string{"ErrorResponse", "ReadyForQuery"}) {
		t.Fatalf("after denial: %v", types(got))
	}
	if e := got[0].(*pgproto3.ErrorResponse); e.Message != "corral: request "+id+" denied by alice: not during business hours" || e.Code != "42501" {
		t.Fatalf("error %q %q", e.Code, e.Message)
	}
	sent := ts.finish(t, done, server)
	if q, ok := sent[0].(*pgproto3.Query); !ok || !isRefusal(q.String) {
		t.Fatalf("server received %#v", sent[0])
	}
}

// Preparing a reviewed statement is not held; executing it is.
func TestSessionReviewExtended(t *testing.T) {
	ts, b, evs := reviewSession(t)
	server := ts.fakeServer()
	done := ts.run()
	ts.send(t,
		&pgproto3.Parse{Name: "del", Query: "DELETE FROM customers WHERE id = $1"},
		&pgproto3.Bind{PreparedStatement: "del", Parameters: [][]byte{[]byte("1")}},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
	)
	ev := <-evs
	if ev.Type != approval.EventRequested {
		t.Fatalf("event %+v", ev)
	}
	// Until the decision only the Parse may be answered.
	var got []pgproto3.BackendMessage
	for {
		msg, err := ts.client.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if n, ok := msg.(*pgproto3.NoticeResponse); ok {
			if !strings.Contains(n.Message, ev.Request.ID) {
				t.Fatalf("notice %q", n.Message)
			}
			break
		}
		got = append(got, msg)
	}
	if len(got) > 1 {
		t.Fatalf("before the decision: %v", types(got))
	}
	if _, err := b.Decide(context.Background(), ev.Request.ID, dba, true, ""); err != nil {
		t.Fatal(err)
	}
	rest := ts.receive(t)
	all := append(types(got), types(rest)...)
	if !slices.Equal(all, []string{"ParseComplete", "BindComplete", "CommandComplete", "ReadyForQuery"}) {
		t.Fatalf("messages %v", all)
	}
	ts.finish(t, done, server)
}

func TestSessionReviewWithoutApprovals(t *testing.T) {
	ts := newTestSession(t, stubDecider(reviewPolicy), policy.Decision{Result: policy.Allow})
	server := ts.fakeServer()
	done := ts.run()
	got := ts.exchange(t, &pgproto3.Query{String: "DELETE FROM customers"})
	if e, ok := got[0].(*pgproto3.ErrorResponse); !ok || e.Message != `corral: delete needs review under rule "app" (approvals are not configured on this agent: denied)` {
		t.Fatalf("messages %v %+v", types(got), got[0])
	}
	ts.finish(t, done, server)
}

// The server keeps SQL and protocol prepared statements under one name
// space. A name closed through the protocol is no longer the statement
// corral decided for an SQL PREPARE; a protocol Parse of a name an SQL
// PREPARE holds is refused, as the server refuses it, and the name stays
// the SQL one; and an SQL PREPARE may not take a name the protocol holds:
// otherwise an EXECUTE would run a DELETE that no reviewer saw.
func TestSessionPreparedNameSpace(t *testing.T) {
	ts, _, _ := reviewSession(t)
	server := ts.fakeServer()
	done := ts.run()
	refused := func(got []pgproto3.BackendMessage, want string) {
		t.Helper()
		if msg, ok := errorOf(got); !ok || !strings.Contains(msg, want) {
			t.Errorf("got %v, want a refusal saying %q", types(got), want)
		}
	}
	ts.exchange(t, &pgproto3.Query{String: "PREPARE p AS SELECT 1"})
	ts.exchange(t, &pgproto3.Close{ObjectType: 'S', Name: "p"}, &pgproto3.Sync{})
	// Reviews wait for Execute: a Parse alone is answered.
	ts.exchange(t, &pgproto3.Parse{Name: "p", Query: "DELETE FROM customers"}, &pgproto3.Sync{})
	refused(ts.exchange(t, &pgproto3.Query{String: "EXECUTE p"}), `EXECUTE of "p", which was not prepared in this session`)

	ts.exchange(t, &pgproto3.Query{String: "PREPARE q AS SELECT 1"})
	refused(ts.exchange(t, &pgproto3.Parse{Name: "q", Query: "DELETE FROM customers"}, &pgproto3.Sync{}), `prepared statement "q" already exists`)
	if got := ts.exchange(t, &pgproto3.Query{String: "EXECUTE q"}); slices.Contains(types(got), "ErrorResponse") {
		t.Errorf("EXECUTE of the SQL-prepared SELECT: %v", types(got))
	}

	ts.exchange(t, &pgproto3.Parse{Name: "r", Query: "DELETE FROM customers"}, &pgproto3.Sync{})
	refused(ts.exchange(t, &pgproto3.Query{String: "PREPARE r AS SELECT 1"}), `a statement named "r" is already prepared`)
	refused(ts.exchange(t, &pgproto3.Query{String: "EXECUTE r"}), `EXECUTE of "r", which was not prepared in this session`)

	for _, m := range ts.finish(t, done, server) {
		if q, ok := m.(*pgproto3.Query); ok && strings.HasPrefix(q.String, "EXECUTE") && q.String != "EXECUTE q" {
			t.Errorf("the server received %q", q.String)
		}
	}
}

// FETCH names no table: its rows are those of the cursor's query, decided
// at DECLARE. Columns no table vouches for are withheld from a cursor
// that reads masked data, and from one corral did not see declared; not
// from one that reads none.
func TestSessionCursorRowsWithheld(t *testing.T) {
	ts := newTestSession(t, maskingPolicy(customersMasks), policy.Decision{Result: policy.Allow, Mask: customersMasks})
	server := ts.fakeServer()
	done := ts.run()
	for _, q := range []string{
		"DECLARE risky CURSOR WITH HOLD FOR SELECT id, id::text FROM customers",
		"DECLARE plain CURSOR WITH HOLD FOR SELECT 1, 'x'",
	} {
		if got := ts.exchange(t, &pgproto3.Query{String: q}); types(got)[0] != "CommandComplete" {
			t.Fatalf("%s: %v", q, types(got))
		}
	}
	// A portal bound through the protocol is FETCHed by its name too.
	ts.exchange(t,
		&pgproto3.Parse{Name: "s", Query: "SELECT id, id::text FROM customers"},
		&pgproto3.Bind{PreparedStatement: "s", DestinationPortal: "bound"},
		&pgproto3.Sync{})
	for cursor, withheld := range map[string]bool{"risky": true, "plain": false, "unseen": true, "bound": true} {
		// The fake server answers a FETCH with a computed second column.
		rows := dataRows(ts.exchange(t, &pgproto3.Query{String: "FETCH ALL FROM " + cursor}))
		if len(rows) != 1 || (rows[0][1] == "") != withheld {
			t.Errorf("FETCH from %s: rows %q, want the second column withheld: %v", cursor, rows, withheld)
		}
	}
	// A cursor closed is forgotten; if the server skipped the CLOSE, its
	// rows are withheld like those of any cursor corral knows nothing of.
	ts.exchange(t, &pgproto3.Query{String: "CLOSE plain"})
	if rows := dataRows(ts.exchange(t, &pgproto3.Query{String: "FETCH ALL FROM plain"})); len(rows) != 1 || rows[0][1] != "" {
		t.Errorf("FETCH from a closed cursor: rows %q, want the second column withheld", rows)
	}
	ts.finish(t, done, server)
}

// A session keeps a record of every name it gives the server; one workload
// must not grow the node's agent without end. Past the bounds new names
// are refused with the reason, and names given back make room again.
func TestSessionNamesBounded(t *testing.T) {
	ts := newTestSession(t, maskingPolicy(nil), policy.Decision{Result: policy.Allow})
	server := ts.fakeServer()
	done := ts.run()
	refused := func(got []pgproto3.BackendMessage, want string) {
		t.Helper()
		if msg, ok := errorOf(got); !ok || !strings.Contains(msg, want) {
			t.Fatalf("got %v, want a refusal saying %q", types(got), want)
		}
	}
	accepted := func(got []pgproto3.BackendMessage) {
		t.Helper()
		if msg, ok := errorOf(got); ok {
			t.Fatalf("got %v, want it accepted: %s", types(got), msg)
		}
	}
	for i := range maxNames {
		accepted(ts.exchange(t, &pgproto3.Parse{Name: fmt.Sprint("s", i), Query: "SELECT 1"}, &pgproto3.Sync{}))
	}
	refused(ts.exchange(t, &pgproto3.Parse{Name: "one more", Query: "SELECT 1"}, &pgproto3.Sync{}), "at most 4096 prepared statements")
	accepted(ts.exchange(t, &pgproto3.Parse{Query: "SELECT 2"}, &pgproto3.Sync{})) // the unnamed statement is always there
	accepted(ts.exchange(t, &pgproto3.Close{ObjectType: 'S', Name: "s1"}, &pgproto3.Sync{}))
	accepted(ts.exchange(t, &pgproto3.Parse{Name: "one more", Query: "SELECT 1"}, &pgproto3.Sync{}))
	if got := ts.exchange(t, &pgproto3.Bind{PreparedStatement: "one more"}, &pgproto3.Execute{}, &pgproto3.Sync{}); types(got)[0] != "BindComplete" {
		t.Errorf("Bind of the statement parsed after a Close: %v", types(got))
	}

	for i := range maxNames {
		accepted(ts.exchange(t, &pgproto3.Query{String: fmt.Sprint("PREPARE p", i, " AS SELECT 1")}))
	}
	refused(ts.exchange(t, &pgproto3.Query{String: "PREPARE px AS SELECT 1"}), "at most 4096 SQL prepared statement names")

	for i := range maxNames {
		accepted(ts.exchange(t, &pgproto3.Query{String: fmt.Sprint("DECLARE c", i, " CURSOR WITH HOLD FOR SELECT 1")}))
	}
	refused(ts.exchange(t, &pgproto3.Query{String: "DECLARE cx CURSOR WITH HOLD FOR SELECT 1"}), "at most 4096 cursors and portals")
	refused(ts.exchange(t, &pgproto3.Bind{PreparedStatement: "s2", DestinationPortal: "px"}, &pgproto3.Sync{}), "at most 4096 cursors and portals")
	accepted(ts.exchange(t, &pgproto3.Query{String: "CLOSE c7"}))
	accepted(ts.exchange(t, &pgproto3.Query{String: "DECLARE cx CURSOR WITH HOLD FOR SELECT 1"}))
	accepted(ts.exchange(t, &pgproto3.Query{String: "CLOSE ALL"}))
	accepted(ts.exchange(t, &pgproto3.Bind{PreparedStatement: "s2", DestinationPortal: "px"}, &pgproto3.Sync{}))
	ts.finish(t, done, server)
}

// The statement text a session keeps is bounded as well as its names.
func TestSessionStatementTextBounded(t *testing.T) {
	ts := newTestSession(t, maskingPolicy(nil), policy.Decision{Result: policy.Allow})
	server := ts.fakeServer()
	done := ts.run()
	// Statements of 1 MiB, each kept with its normalized form.
	big := "SELECT '" + strings.Repeat("x", maxSQL-16) + "'"
	for i := 0; ; i++ {
		got := ts.exchange(t, &pgproto3.Parse{Name: fmt.Sprint("big", i), Query: big}, &pgproto3.Sync{})
		if e, ok := got[0].(*pgproto3.ErrorResponse); ok {
			if !strings.Contains(e.Message, "at most 64 MiB of prepared statement text") {
				t.Fatalf("Parse %d: %s", i, e.Message)
			}
			if i < 16 {
				t.Fatalf("refused after %d statements of 1 MiB", i)
			}
			break
		}
	}
	ts.finish(t, done, server)
}

// After an error the server skips the rest of the batch without a word;
// messages a client keeps sending then are not queued for answers that
// will never come, and a Parse among them leaves no record.
func TestSessionSkippedBatchNotQueued(t *testing.T) {
	ts := newTestSession(t, maskingPolicy(nil), policy.Decision{Result: policy.Allow})
	s := ts.s
	s.expect(expectation{kind: expParse, name: "bad"})
	s.skipBatch(s.batch)
	rec := &prepared{}
	s.setStmt("p", rec)
	answered := make(chan struct{})
	for range 1000 {
		s.expect(expectation{kind: expClose})
	}
	s.expect(expectation{kind: expParse, name: "p", rec: rec}, expectation{kind: expExecute, answered: answered})
	if len(s.q) != 1 {
		t.Errorf("%d expectations queued, want only the failed Parse's", len(s.q))
	}
	if _, ok := s.stmt("p"); ok {
		t.Error("a skipped Parse left its record")
	}
	select {
	case <-answered:
	default:
		t.Error("a skipped Execute's waiter was not released")
	}
	s.expect(expectation{kind: expSync})
	if len(s.q) != 2 {
		t.Errorf("the Sync was not queued: %d expectations", len(s.q))
	}
}

// Masks name tables and columns; renaming either would take the data out
// of their reach, so it is refused while they apply. Other renames are not.
func TestSessionRenameOfMaskedTableRefused(t *testing.T) {
	ts := newTestSession(t, maskingPolicy(customersMasks), policy.Decision{Result: policy.Allow, Mask: customersMasks})
	server := ts.fakeServer()
	done := ts.run()
	for _, q := range []string{
		"ALTER TABLE customers RENAME COLUMN email TO e2",
		"ALTER TABLE public.customers RENAME TO c2",
		"ALTER TABLE customers SET SCHEMA archive",
		"ALTER SCHEMA public RENAME TO p2",
	} {
		got := ts.exchange(t, &pgproto3.Query{String: q})
		if e, ok := got[0].(*pgproto3.ErrorResponse); !ok || !strings.Contains(e.Message, "masks") {
			t.Errorf("%s: %v, want it refused", q, types(got))
		}
	}
	if got := ts.exchange(t, &pgproto3.Query{String: "ALTER TABLE orders RENAME COLUMN total TO amount"}); types(got)[0] != "CommandComplete" {
		t.Errorf("a rename of a table without masks: %v", types(got))
	}
	ts.finish(t, done, server)
}

// A reload that brings masks reaches what the session prepared, declared
// or bound before it: their unattributed columns are withheld or refused.
func TestSessionMasksReachEarlierNames(t *testing.T) {
	var masked atomic.Bool
	dec := stubDecider(func(in policy.Input) policy.Decision {
		if masked.Load() {
			return policy.Decision{Result: policy.Allow, Mask: customersMasks}
		}
		return policy.Decision{Result: policy.Allow}
	})
	ts := newTestSession(t, dec, policy.Decision{Result: policy.Allow})
	server := ts.fakeServer()
	done := ts.run()
	ts.exchange(t, &pgproto3.Query{String: "PREPARE q AS SELECT id, lower(email) FROM customers"})
	ts.exchange(t, &pgproto3.Query{String: "DECLARE cur CURSOR WITH HOLD FOR SELECT id, lower(email) FROM customers"})
	masked.Store(true) // the reload
	got := ts.exchange(t, &pgproto3.Query{String: "EXECUTE q"})
	if e, ok := got[0].(*pgproto3.ErrorResponse); !ok || !strings.Contains(e.Message, "out of reach of masking") {
		t.Errorf("EXECUTE after masks came: %v", types(got))
	}
	if rows := dataRows(ts.exchange(t, &pgproto3.Query{String: "FETCH ALL FROM cur"})); len(rows) != 1 || rows[0][1] != "" {
		t.Errorf("FETCH after masks came: rows %q, want the computed column withheld", rows)
	}
	ts.finish(t, done, server)
}

// Parses of the unnamed statement the server has not confirmed are kept
// as a chain, not copied into each other, and a Bind behind too many of
// them is refused.
func TestSessionUnnamedParsesBounded(t *testing.T) {
	ts := newTestSession(t, maskingPolicy(nil), policy.Decision{Result: policy.Allow})
	msgs := []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "x", Query: "SELECT 0"}}
	for i := range 100 {
		msgs = append(msgs, &pgproto3.Parse{Query: fmt.Sprint("SELECT ", i)})
	}
	// No server: the records are made as the Parses are read.
	for _, m := range msgs {
		if err := ts.s.onParse(m.(*pgproto3.Parse)); err != nil {
			t.Fatal(err)
		}
		ts.s.inBatch++
	}
	p, _ := ts.s.stmt("")
	if _, denied, ok := p.candidates(); ok && denied == "" {
		t.Error("a Bind behind 100 unconfirmed Parses would be decided")
	}
	n := 0
	for q := p; q != nil; q = q.prev.Load() {
		n++
	}
	if n > maxPending+2 {
		t.Errorf("the chain holds %d records", n)
	}
	if n := len(p.stmt); n != 1 {
		t.Errorf("the last record holds %d statements of its own", n)
	}
}

// errorOf is the message of an exchange's answer when that is an error.
func errorOf(got []pgproto3.BackendMessage) (string, bool) {
	e, ok := got[0].(*pgproto3.ErrorResponse)
	if !ok {
		return "", false
	}
	return e.Message, true
}

// Reviewers see a statement as sent, where its normalised form says too
// little (DO $1, WHERE $1), but for a password.
func TestForReviewers(t *testing.T) {
	for _, c := range []struct{ sql, want string }{
		{"DO $$BEGIN DELETE FROM orders; END$$", "DO $$BEGIN DELETE FROM orders; END$$"},
		{"DELETE FROM orders WHERE true", "DELETE FROM orders WHERE true"},
		{"DELETE FROM orders", ""}, // the same as its normalised form
		{"ALTER ROLE app PASSWORD 'hunter2'", ""},
		{"CREATE USER bob WITH PASSWORD 'hunter2'", ""},
		{"CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'u', password 'hunter2')", ""},
		{"SELECT dblink_exec('dbname=x PassWord=hunter2', 'DELETE FROM t')", ""},
	} {
		st := classifyOne(t, c.sql)
		text, err := pg.Normalize(st.Text)
		if err != nil {
			t.Fatal(err)
		}
		if got := forReviewers(&st, text, nil); got != c.want {
			t.Errorf("%s: %q, want %q", c.sql, got, c.want)
		}
	}
	long := classifyOne(t, "DELETE FROM orders WHERE note = '"+strings.Repeat("é", maxStatementShown)+"'")
	if got := forReviewers(&long, "x", nil); len(got) > maxStatementShown+len("…") || !strings.HasSuffix(got, "…") || !utf8.ValidString(got) {
		t.Errorf("a long statement: %d bytes", len(got))
	}
	// A prepared statement's values are in its Bind.
	st := classifyOne(t, "DELETE FROM customers WHERE id = $1 OR $2 OR note = $3 OR $4")
	bind := &pgproto3.Bind{ParameterFormatCodes: []int16{0, 0, 0, 1}, Parameters: [][]byte{[]byte("1"), []byte("true"), []byte("it's"), {0, 1}}}
	want := "DELETE FROM customers WHERE id = $1 OR $2 OR note = $3 OR $4\n-- $1 = '1'\n-- $2 = 'true'\n-- $3 = 'it''s'\n-- $4 = (2 bytes, binary)"
	if got := forReviewers(&st, st.Text, bind); got != want {
		t.Errorf("bound values: %q, want %q", got, want)
	}
	// A value on one line, whatever it holds; its first KiB only; none
	// that says password.
	bind.Parameters = [][]byte{[]byte("12\n-- $2 = false"), []byte("true"), []byte(strings.Repeat(" ", 20000)), nil}
	got := forReviewers(&st, st.Text, bind)
	if lines := strings.Split(got, "\n"); len(lines) != 5 || lines[1] != `-- $1 = E'12\x0a-- $2 = false'` || lines[2] != "-- $2 = 'true'" ||
		!strings.HasSuffix(lines[3], "' (20000 bytes in all)") || lines[4] != "-- $4 = NULL" {
		t.Errorf("values: %q", got)
	}
	dblink := classifyOne(t, "SELECT dblink_exec($1, $2)")
	bind = &pgproto3.Bind{Parameters: [][]byte{[]byte("dbname=x PassWord=hunter2"), []byte("DELETE FROM t")}}
	if got := forReviewers(&dblink, dblink.Text, bind); got != "" {
		t.Errorf("a value that says password: %q", got)
	}
}
