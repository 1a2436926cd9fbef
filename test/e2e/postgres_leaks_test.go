//go:build linux

package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/corral-dev/corral/internal/testutil"
)

func init() { testutil.RegisterFunc("pgconn-steps", pgconnSteps) }

// connectWorkload connects to the orders database at host as a workload
// does: any user, a wrong password.
func connectWorkload(ctx context.Context, host string) (*pgconn.PgConn, error) {
	return pgconn.Connect(ctx, fmt.Sprintf("host=%s port=5432 user=whoever password=wrong dbname=orders sslmode=disable connect_timeout=10", host))
}

// runSteps starts the workload function fn and sends it steps, one line
// each, and returns the transcript: each step and what came back.
func runSteps(t *testing.T, p *pgEnv, fn string, steps []string) string {
	t.Helper()
	cl := testutil.StartFunc(t, p.workCg, fn, p.host.Addr.String())
	if got := cl.Recv(t); got != "connected" {
		t.Fatalf("client: %s", got)
	}
	var transcript []string
	for _, s := range steps {
		cl.Send(t, s)
		transcript = append(transcript, s+" -> "+cl.Recv(t))
	}
	return strings.Join(transcript, "\n")
}

// pgconnSteps is a workload that mixes SQL-level and protocol-level
// statement handling on one connection, driven line by line:
//
//	simple <sql>          a simple query (one or more statements)
//	parse <name> <sql>    a protocol Parse of a named statement
//	close <name>          a protocol Close of a named statement
//	pipeline <name> <sql> Parse, Sync, Bind, Execute, Sync in one write
//	bind <name>           Bind and Execute a statement parsed before
//	position              the position of the last simple query's error
//	typed <oid> <sql>     the unnamed statement, its parameter declared of
//	                      type oid, run with the value 1
//
// It answers each line with one line.
func pgconnSteps(args []string, in *bufio.Scanner, out io.Writer) error {
	ctx := context.Background()
	conn, err := connectWorkload(ctx, args[0])
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	fmt.Fprintln(out, "connected")
	var lastPosition int32
	for in.Scan() {
		cmd, rest, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "simple":
			results, err := conn.Exec(ctx, rest).ReadAll()
			var parts []string
			for _, r := range results {
				var rows []string
				for _, row := range r.Rows {
					var vals []string
					for _, v := range row {
						vals = append(vals, string(v))
					}
					rows = append(rows, strings.Join(vals, "|"))
				}
				parts = append(parts, fmt.Sprintf("%s %s", strings.Join(rows, ";"), r.CommandTag))
			}
			if err != nil {
				parts = append(parts, "error: "+err.Error())
				var pgErr *pgconn.PgError
				if errors.As(err, &pgErr) {
					lastPosition = pgErr.Position
				}
			}
			fmt.Fprintln(out, "ok:", strings.Join(parts, " / "))
		case "parse":
			name, sql, _ := strings.Cut(rest, " ")
			if _, err := conn.Prepare(ctx, name, sql, nil); err != nil {
				fmt.Fprintln(out, "error:", err)
			} else {
				fmt.Fprintln(out, "ok: parsed")
			}
		case "pipeline":
			// Parse, Sync, Bind, Execute, Sync in one write: the Bind
			// reaches corral before the server's answer to the Parse.
			name, sql, _ := strings.Cut(rest, " ")
			pl := conn.StartPipeline(ctx)
			pl.SendPrepare(name, sql, nil)
			pl.Sync()
			pl.SendQueryPrepared(name, nil, nil, nil)
			pl.Sync()
			var parts []string
			for range 16 {
				r, err := pl.GetResults()
				if err != nil {
					parts = append(parts, "error: "+err.Error())
					var pgErr *pgconn.PgError
					if errors.As(err, &pgErr) {
						continue // the server goes on after the next Sync
					}
					break
				}
				if r == nil {
					break
				}
				switch r := r.(type) {
				case *pgconn.StatementDescription:
					parts = append(parts, "parsed")
				case *pgconn.ResultReader:
					res := r.Read()
					if res.Err != nil {
						parts = append(parts, "error: "+res.Err.Error())
					} else {
						parts = append(parts, res.CommandTag.String())
					}
				case *pgconn.PipelineSync:
					parts = append(parts, "sync")
				}
			}
			pl.Close()
			fmt.Fprintln(out, "ok:", strings.Join(parts, " / "))
		case "bind":
			res := conn.ExecPrepared(ctx, rest, nil, nil, nil).Read()
			if res.Err != nil {
				fmt.Fprintln(out, "error:", res.Err)
			} else {
				fmt.Fprintln(out, "ok:", res.CommandTag.String())
			}
		case "position":
			// Where the last error pointed.
			fmt.Fprintln(out, "ok:", lastPosition)
		case "typed":
			oid, sql, _ := strings.Cut(rest, " ")
			n, err := strconv.ParseUint(oid, 10, 32)
			if err != nil {
				return err
			}
			res := conn.ExecParams(ctx, sql, [][]byte{[]byte("1")}, []uint32{uint32(n)}, nil, nil).Read()
			if res.Err != nil {
				fmt.Fprintln(out, "error:", res.Err)
			} else {
				fmt.Fprintln(out, "ok:", res.CommandTag.String())
			}
		case "close":
			if err := conn.Deallocate(ctx, rest); err != nil {
				fmt.Fprintln(out, "error:", err)
			} else {
				fmt.Fprintln(out, "ok: closed")
			}
		default:
			fmt.Fprintln(out, "error: unknown step", cmd)
		}
	}
	return nil
}

// The seeded values of the masked columns, in any case, and fragments of
// them: none may reach the workload, however it asks.
var maskedFragments = []string{
	"ada@example.com", "grace@example.org", "ada@", "grace@", "example.com", "example.org",
	"4111 1111 1111 1111", "5500 0000 0000 0004", "4111 1111", "41111111", "5500 0000", "55000000",
}

// storedSecret matches a masked value (or a fragment) written where it
// does not belong.
const storedSecret = `'(ada@|grace@|example\.(com|org)|4111 ?1111|5500 ?0000)'`

const seedRows = `
DELETE FROM customers;
INSERT INTO customers VALUES
  (1, 'Ada', 'ada@example.com', '4111 1111 1111 1111', 'call 555-123-4567'),
  (2, 'Grace', 'grace@example.org', '5500 0000 0000 0004', 'vip');
DELETE FROM orders;
INSERT INTO orders VALUES (1, 1, 10), (2, 2, 20);
`

// psqlSession runs statements through corral in one psql session, each as
// its own query, going on past errors, with every field of an error
// (detail, hint, context, ...) printed. It fails the test if the session
// never reached the server, so that no output does not pass for no leak.
func (p *pgEnv) psqlSession(t *testing.T, stmts ...string) string {
	t.Helper()
	const opened = "session opened"
	args := []string{"-X", "-w", "-At", "-v", "VERBOSITY=verbose", "-v", "SHOW_CONTEXT=always",
		"-h", p.host.Addr.String(), "-U", "whoever", "-d", "orders", "-c", "SELECT '" + opened + "'"}
	for _, s := range stmts {
		args = append(args, "-c", s)
	}
	out, _ := testutil.Command(t, p.workCg, []string{"PGPASSWORD=not-the-password", "PGCONNECT_TIMEOUT=10", "PGSSLMODE=prefer"}, "psql", args...)
	rest, ok := strings.CutPrefix(out, opened)
	if !ok {
		t.Fatalf("no session through corral:\n%s", out)
	}
	return strings.TrimPrefix(rest, "\n")
}

// assertNoMaskedValue fails if out carries a masked value or part of one.
func assertNoMaskedValue(t *testing.T, what, out string) {
	t.Helper()
	lower := strings.ToLower(out)
	for _, s := range maskedFragments {
		if strings.Contains(lower, s) {
			t.Errorf("%s leaks %q:\n%s", what, s, out)
			return
		}
	}
}

// assertNothingStored fails if a masked value was copied into another
// column or row of customers.
func assertNothingStored(t *testing.T, p *pgEnv) {
	t.Helper()
	rows := p.pg.Exec(t, "orders", `SELECT c::text FROM customers c
  WHERE (CASE WHEN id IN (1, 2) THEN concat_ws('|', name, note) ELSE c::text END) ~* `+storedSecret)
	for _, r := range rows {
		t.Errorf("customers now holds a masked value outside its column: %s", r[0])
	}
}

// assertOrdersIntact fails if orders lost a row.
func assertOrdersIntact(t *testing.T, p *pgEnv) {
	t.Helper()
	if ids := p.pg.Exec(t, "orders", "SELECT string_agg(id::text, ',' ORDER BY id) FROM orders"); ids[0][0] != "1,2" {
		t.Errorf("orders holds %q afterwards, want 1,2: a DELETE ran without approval", ids[0][0])
	}
}

// allowAlso reloads the policy with more operations allowed (and no
// longer denied).
func allowAlso(t *testing.T, p *pgEnv, ops string) {
	t.Helper()
	cfg, _ := os.ReadFile(p.config)
	const allow = "allow: [select, insert, update, copy, transaction, set, show"
	if !strings.Contains(string(cfg), allow) {
		t.Fatal("unexpected policy")
	}
	next := strings.Replace(string(cfg), allow, allow+", "+ops, 1)
	const deny = `deny: [drop, truncate, "copy program", "set role", do, function]`
	if slices.Contains(strings.Split(ops, ", "), "function") {
		next = strings.Replace(next, deny, strings.TrimSuffix(deny, ", function]")+"]", 1)
	}
	from := p.a.Mark()
	writeAtomically(t, p.config, next)
	p.a.WaitLine(t, from, func(l string) bool { return strings.Contains(l, "configuration reloaded") })
}

type leakCase struct {
	name  string
	setup string   // superuser SQL run first
	undo  string   // superuser SQL that reverts setup
	stmts []string // one session, each its own query
}

// runLeakCases runs each case from the seeded rows and checks that no
// masked value reaches the workload or is written elsewhere in the table.
func runLeakCases(t *testing.T, p *pgEnv, cases []leakCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p.pg.Exec(t, "orders", seedRows)
			if c.setup != "" {
				p.pg.Exec(t, "orders", c.setup)
				t.Cleanup(func() { p.pg.Exec(t, "orders", c.undo) })
			}
			out := p.psqlSession(t, c.stmts...)
			t.Logf("%s", out)
			assertNoMaskedValue(t, strings.Join(c.stmts, " ; "), out)
			assertNothingStored(t, p)
		})
	}
}

// Objects of the database's own that several cases need: a function that
// reads a masked column, a child of the masked table, a parent of it.
const (
	emailOf     = "CREATE FUNCTION email_of(int) RETURNS text STABLE LANGUAGE sql AS 'SELECT email FROM customers WHERE id = $1'; GRANT EXECUTE ON FUNCTION email_of(int) TO app"
	dropEmailOf = "DROP FUNCTION email_of(int)"
	archive     = "CREATE TABLE customers_archive () INHERITS (customers); INSERT INTO customers_archive SELECT * FROM ONLY customers; GRANT SELECT ON customers_archive TO app"
	people      = "CREATE TABLE people (email text); ALTER TABLE customers INHERIT people; GRANT SELECT ON people TO app"
	dropPeople  = "ALTER TABLE customers NO INHERIT people; DROP TABLE people"
)

func TestPostgresLeakMaskedColumns(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	const join = "(customers CROSS JOIN (SELECT 1) z)"
	runLeakCases(t, p, []leakCase{
		// A join alias hides which table a column comes from.
		{name: "join alias into INSERT", stmts: []string{
			"INSERT INTO customers (id, name) SELECT j.id + 100, j.email FROM " + join + " AS j RETURNING id, name"}},
		{name: "join alias into UPDATE", stmts: []string{
			"UPDATE customers SET note = j.card_number FROM " + join + " AS j WHERE j.id = customers.id AND customers.id = 1 RETURNING customers.id, customers.note"}},
		{name: "join alias into rolled back UPDATE", stmts: []string{
			"BEGIN; UPDATE customers SET name = j.email FROM " + join + " AS j WHERE j.id = customers.id RETURNING customers.name; ROLLBACK"}},
		{name: "join alias whole row into INSERT", stmts: []string{
			"INSERT INTO customers (id, name) SELECT 300, j::text FROM " + join + " AS j WHERE j.id = 1 RETURNING name"}},
		{name: "join alias in an expression", stmts: []string{
			"SELECT j.email || '' FROM " + join + " AS j"}},
		{name: "join alias with column aliases", stmts: []string{
			"SELECT j.c, j.d FROM " + join + " AS j(a, b, c, d)"}},
		{name: "join alias with column aliases in an expression", stmts: []string{
			"SELECT j.c || '', j.d || '' FROM " + join + " AS j(a, b, c, d)"}},

		// c.to_jsonb is to_jsonb(c): the whole row, by attribute notation.
		{name: "attribute notation into UPDATE", stmts: []string{
			"UPDATE customers c SET note = c.to_jsonb WHERE id = 1 RETURNING note"}},
		// Asked again, the catalog's answer comes from its cache.
		{name: "attribute notation into UPDATE, twice", stmts: []string{
			"UPDATE customers c SET note = c.jsonb_agg WHERE id = 1 RETURNING note",
			"UPDATE customers c SET note = c.jsonb_agg WHERE id = 1 RETURNING note",
			"UPDATE customers c SET note = c.to_jsonb WHERE id = 2 RETURNING note",
			"UPDATE customers c SET note = c.to_jsonb WHERE id = 2 RETURNING note"}},
		{name: "attribute notation into INSERT", stmts: []string{
			"INSERT INTO customers (id, name) SELECT 930 + id, c.row_to_json FROM customers c RETURNING name"}},
		{name: "attribute notation into INSERT, read back", stmts: []string{
			"INSERT INTO customers (id, name) SELECT 950 + id, c.to_json FROM customers c", "SELECT name FROM customers WHERE id > 950"}},
		{name: "attribute notation of a variadic function", stmts: []string{
			"INSERT INTO customers (id, name) SELECT 960 + id, c.concat FROM customers c RETURNING name"}},
		{name: "attribute notation in an expression", stmts: []string{
			"SELECT c.to_jsonb->>'email', c.to_jsonb::text FROM customers c"}},

		// A view's masked column written or stored, not returned.
		{name: "view into INSERT", stmts: []string{
			"INSERT INTO customers (id, name) SELECT 200 + row_number() OVER (), contact FROM customer_contacts RETURNING id, name"}},
		{name: "view into a setting, one query", stmts: []string{
			"SELECT set_config('corral.x', string_agg(contact, ','), false) IS NOT NULL FROM customer_contacts; SELECT current_setting('corral.x')"}},
		{name: "view into a setting, two queries", stmts: []string{
			"SELECT set_config('corral.x', string_agg(contact, ','), false) IS NOT NULL FROM customer_contacts",
			"SELECT current_setting('corral.x')"}},
		{name: "view into application_name, one query", stmts: []string{
			"SELECT set_config('application_name', string_agg(contact, ','), false) IS NOT NULL FROM customer_contacts; SELECT current_setting('application_name')"}},
		{name: "view into application_name, two queries", stmts: []string{
			"SELECT set_config('application_name', string_agg(contact, ','), false) IS NOT NULL FROM customer_contacts",
			"SELECT current_setting('application_name')"}},

		// The server quotes the offending value in its error.
		{name: "email in an integer cast error", stmts: []string{
			`SELECT id FROM customers WHERE ('"' || email)::int = 0`}},
		{name: "card in an integer cast error", stmts: []string{
			`SELECT id FROM customers WHERE ('"' || card_number)::int = 0`}},
		{name: "view column in an integer cast error", stmts: []string{
			`SELECT 1 FROM customer_contacts WHERE ('"' || contact)::int = 0`}},
		{name: "email in a JSON error's context", stmts: []string{
			`SELECT id FROM customers WHERE ('"' || email)::json IS NULL`}},

		// Tables read inside a function or through a parent table carry
		// no attribution to the masked table.
		{name: "scalar function reading the table",
			setup: emailOf, undo: dropEmailOf,
			stmts: []string{"SELECT email_of(1)", "SELECT email_of(2)"}},
		{name: "USING join alias into INSERT", stmts: []string{
			"INSERT INTO customers (id, name) SELECT a.id + 100, j.email FROM customers a JOIN customers b USING (email) AS j RETURNING id, name"}},
		{name: "USING join alias into UPDATE", stmts: []string{
			"UPDATE customers c SET note = j.card_number FROM customers a JOIN customers b USING (card_number) AS j WHERE c.id = a.id RETURNING c.id, c.note"}},
		{name: "view into a data-modifying CTE", stmts: []string{
			"WITH w AS (INSERT INTO customers (id, name) SELECT 200 + row_number() OVER (), contact FROM customer_contacts RETURNING id, name) SELECT * FROM w"}},
		{name: "function into a data-modifying CTE",
			setup: emailOf, undo: dropEmailOf,
			stmts: []string{"WITH w AS (INSERT INTO customers (id, name) SELECT 501, email_of(1) RETURNING id, name) SELECT * FROM w"}},
		{name: "child table into INSERT",
			setup: archive, undo: "DROP TABLE customers_archive",
			stmts: []string{"INSERT INTO customers (id, name) SELECT 600, lower(email) || ' ' || card_number FROM customers_archive WHERE id = 1 RETURNING name"}},
		{name: "child table into a setting",
			setup: archive, undo: "DROP TABLE customers_archive",
			stmts: []string{"SELECT set_config('corral.y', string_agg(email, ','), false) IS NOT NULL FROM customers_archive", "SELECT current_setting('corral.y')"}},
		{name: "a trigger's notice",
			setup: "CREATE FUNCTION audit_note() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE NOTICE 'changed (%)', OLD.email; RETURN NEW; END$$; CREATE TRIGGER audit BEFORE UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION audit_note()",
			undo:  "DROP TRIGGER audit ON customers; DROP FUNCTION audit_note()",
			stmts: []string{"UPDATE customers SET note = note WHERE id = 1"}},
		{name: "a function's inner query",
			setup: "CREATE FUNCTION as_int(v text) RETURNS int LANGUAGE plpgsql AS $$DECLARE r int; BEGIN EXECUTE 'SELECT ' || quote_literal(v) || '::int' INTO r; RETURN r; END$$; GRANT EXECUTE ON FUNCTION as_int(text) TO app",
			undo:  "DROP FUNCTION as_int(text)",
			stmts: []string{"SELECT id FROM customers WHERE as_int(email) = 0"}},
		{name: "view over a parent",
			setup: people + "; CREATE VIEW people_v AS SELECT email FROM people; GRANT SELECT ON people_v TO app",
			undo:  "DROP VIEW people_v; " + dropPeople,
			stmts: []string{"SELECT email FROM people_v"}},
		{name: "view calling a function",
			setup: emailOf + "; CREATE VIEW order_emails AS SELECT id, email_of(customer_id) AS e FROM orders; GRANT SELECT ON order_emails TO app",
			undo:  "DROP VIEW order_emails; " + dropEmailOf,
			stmts: []string{"SELECT e FROM order_emails", "INSERT INTO customers (id, name) SELECT 700, e FROM order_emails WHERE id = 1"}},
		{name: "cast through a function",
			setup: "CREATE TYPE ebox AS (e text); CREATE FUNCTION to_ebox(int) RETURNS ebox LANGUAGE sql AS 'SELECT ROW(email)::ebox FROM customers WHERE id = $1'; CREATE CAST (int AS ebox) WITH FUNCTION to_ebox(int)",
			undo:  "DROP CAST (int AS ebox); DROP FUNCTION to_ebox(int); DROP TYPE ebox",
			stmts: []string{"SELECT (1::ebox)::text", "SELECT (2::ebox).e", "INSERT INTO customers (id, name) SELECT 901, (2::ebox).e"}},
		{name: "view using an operator",
			setup: "CREATE FUNCTION email_op(int, int) RETURNS text STABLE LANGUAGE sql AS 'SELECT email FROM customers WHERE id = $1'; CREATE OPERATOR ##> (LEFTARG = int, RIGHTARG = int, FUNCTION = email_op); CREATE VIEW op_view AS SELECT id, customer_id ##> 0 AS e FROM orders; GRANT SELECT ON op_view TO app",
			undo:  "DROP VIEW op_view; DROP OPERATOR ##> (int, int); DROP FUNCTION email_op(int, int)",
			stmts: []string{"SELECT e FROM op_view", "INSERT INTO customers (id, name) SELECT 902, e FROM op_view WHERE id = 1"}},
		{name: "view over column statistics",
			setup: "ANALYZE customers; CREATE VIEW column_stats AS SELECT tablename, attname, histogram_bounds::text AS hb FROM pg_stats; GRANT SELECT ON column_stats TO app",
			undo:  "DROP VIEW column_stats",
			stmts: []string{"SELECT attname, hb FROM column_stats WHERE tablename = 'customers'"}},
		{name: "view running SQL from text",
			setup: "CREATE VIEW xml_report AS SELECT query_to_xml('SELECT email, card_number FROM customers', true, false, '')::text AS x; GRANT SELECT ON xml_report TO app",
			undo:  "DROP VIEW xml_report",
			stmts: []string{"SELECT x FROM xml_report"}},
		{name: "operator qualified like PostgreSQL's",
			setup: "CREATE SCHEMA zz; GRANT USAGE ON SCHEMA zz TO app; CREATE TABLE public.zlog (e text); GRANT SELECT ON zlog TO app; " +
				"CREATE FUNCTION zz.keep(a text, b text) RETURNS bool LANGUAGE sql AS 'INSERT INTO public.zlog VALUES (a) RETURNING false'; " +
				"CREATE OPERATOR zz.= (LEFTARG = text, RIGHTARG = text, FUNCTION = zz.keep)",
			undo:  "DROP SCHEMA zz CASCADE; DROP TABLE zlog",
			stmts: []string{"SELECT id FROM customers WHERE email OPERATOR(zz.=) 'x'", "SELECT e FROM zlog"}},
		{name: "scalar function copied into a table",
			setup: emailOf, undo: dropEmailOf,
			stmts: []string{"INSERT INTO customers (id, name) SELECT 500, email_of(1) RETURNING id", "SELECT name FROM customers WHERE id = 500"}},
		{name: "scalar function into a setting",
			setup: emailOf, undo: dropEmailOf,
			stmts: []string{"SELECT set_config('corral.f', email_of(1), false) IS NOT NULL", "SELECT current_setting('corral.f')"}},
		{name: "inheritance parent",
			setup: people, undo: dropPeople,
			stmts: []string{"SELECT email FROM people"}},
		{name: "inheritance parent in an expression",
			setup: people, undo: dropPeople,
			stmts: []string{"SELECT lower(email) FROM people"}},
	})
}

// Functions echo their input unquoted in their errors, and other
// sessions' statements hold their literals: such texts are withheld, and
// a sequence set from a masked value is refused.
func TestPostgresLeakErrorTexts(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	p.pg.Exec(t, "orders", seedRows+"CREATE SEQUENCE leak_seq; GRANT USAGE, SELECT, UPDATE ON SEQUENCE leak_seq TO app;")
	for _, c := range []struct{ sql, want string }{
		{`SELECT id FROM customers WHERE id = 1 AND convert_from('\xf0'::bytea || substr(convert_to(email, 'UTF8'), 1, 3), 'UTF8') = ''`, "withheld while masks apply"},
		{"SELECT id FROM customers WHERE id = 1 AND make_date(1, 13 + ascii(email), 1) IS NULL", "withheld while masks apply"},
		{"SELECT id FROM customers WHERE id = 1 AND chr(1114112 + ascii(email)) = ''", "withheld while masks apply"},
		{"SELECT query FROM pg_stat_activity", "other sessions' statements"},
		{"SELECT pg_stat_get_backend_activity(1)", "out of reach of masking"},
		{"SELECT id FROM customers WHERE id = 1 AND replace(email, '.', '_')::regoper IS NULL", "withheld while masks apply"},
		{"SELECT id FROM customers WHERE id = 1 AND (replace(email, '.', '_') || '.a.b.c')::regclass IS NULL", "withheld while masks apply"},
		{"SELECT id FROM customers WHERE id = 1 AND (replace(email, '.', '_') || '.a.b')::regproc IS NULL", "withheld while masks apply"},
		{"SELECT id FROM customers WHERE id = 1 AND (replace(email, '.', '_') || '.a.b.c')::regconfig IS NULL", "withheld while masks apply"},
		{"SELECT 1 FROM customers WHERE id = 1 AND setval('leak_seq', ascii(email)) > 0", "setval"},
	} {
		out := p.psqlSession(t, c.sql)
		if !strings.Contains(out, c.want) {
			t.Errorf("%s: want %q in\n%s", c.sql, c.want, out)
		}
		for _, leak := range []string{"0x61 0x64", "1114209", "-110-", "example_com"} { // "ad", 'a' + 1114112, 13 + 'a'
			if strings.Contains(out, leak) {
				t.Errorf("%s leaks %q:\n%s", c.sql, leak, out)
			}
		}
	}
	if v := p.pg.Exec(t, "orders", "SELECT last_value FROM leak_seq")[0][0]; v != "1" {
		t.Errorf("the sequence was set to %s", v)
	}
	// A type name parsed as the statement runs: the syntax error's
	// position lies within text built from the masked value.
	out := runSteps(t, p, "pgconn-steps", []string{
		"simple SELECT 1 FROM customers WHERE id = 1 AND (repeat(' ', ascii(substr(email, 1, 1))) || '(')::regtype IS NULL",
		"position",
	})
	if !strings.HasSuffix(out, "position -> ok: 0") {
		t.Errorf("the error's position reached the client:\n%s", out)
	}
	// Functions that read a table's rows by its name.
	allowAlso(t, p, "function")
	p.pg.Exec(t, "orders", "CREATE EXTENSION dblink")
	for _, sql := range []string{
		"SELECT dblink_build_sql_insert('customers', '1', 1, '{1}', '{1}')",
		"SELECT dblink_build_sql_update('customers', '1', 1, '{2}', '{2}')",
	} {
		out := p.psqlSession(t, sql)
		if !strings.Contains(out, "reads a table by its name") {
			t.Errorf("%s: not refused:\n%s", sql, out)
		}
		assertNoMaskedValue(t, sql, out)
	}
}

func TestPostgresLeakCursorsAndPreparedStatements(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	allowAlso(t, p, "prepare, cursor, listen, notify")
	const join = "(customers CROSS JOIN (SELECT 1) z)"
	runLeakCases(t, p, []leakCase{
		// What a cursor or a prepared statement returns is masked like a
		// plain SELECT's result.
		{name: "cursor over a join alias", stmts: []string{
			"BEGIN; DECLARE c CURSOR FOR SELECT j.email || '' FROM " + join + " AS j; FETCH ALL c; COMMIT"}},
		{name: "cursor over a join alias, one query each", stmts: []string{
			"BEGIN", "DECLARE c CURSOR FOR SELECT j.email || '' FROM " + join + " AS j", "FETCH ALL c", "COMMIT"}},
		{name: "cursor over a view", stmts: []string{
			"BEGIN; DECLARE c2 CURSOR FOR SELECT lower(contact) FROM customer_contacts; FETCH ALL c2; COMMIT"}},
		{name: "cursor over a view, one query each", stmts: []string{
			"BEGIN", "DECLARE c2 CURSOR FOR SELECT lower(contact) FROM customer_contacts", "FETCH ALL c2", "COMMIT"}},
		{name: "prepared statement over a view", stmts: []string{
			"PREPARE p AS SELECT lower(contact) FROM customer_contacts; EXECUTE p"}},
		{name: "prepared statement over a view, one query each", stmts: []string{
			"PREPARE p AS SELECT lower(contact) FROM customer_contacts", "EXECUTE p"}},
		{name: "prepared statement over the table", stmts: []string{
			"PREPARE q AS SELECT lower(email) FROM customers; EXECUTE q"}},
		{name: "prepared statement over the table, one query each", stmts: []string{
			"PREPARE q AS SELECT lower(email) FROM customers", "EXECUTE q"}},

		// The server refuses a name already in use, and keeps what it
		// holds: corral decides by what every statement given the name
		// could do.
		{name: "cursor name declared again", stmts: []string{
			"DECLARE c3 CURSOR WITH HOLD FOR SELECT lower(contact) FROM customer_contacts", "DECLARE c3 CURSOR WITH HOLD FOR SELECT 'x'::text", "FETCH ALL c3"}},
		{name: "prepared name prepared again", stmts: []string{
			"PREPARE p4 AS SELECT lower(contact) FROM customer_contacts", "PREPARE p4 AS SELECT 'x'::text", "EXECUTE p4"}},

		// A notification's payload goes to the workload as it is.
		{name: "masked column as a notification payload", stmts: []string{
			"LISTEN ch", "SELECT count(*) FROM customers WHERE pg_notify('ch', email)::text = ''"}},
		{name: "view column as a notification payload", stmts: []string{
			"LISTEN ch", "SELECT count(*) FROM customer_contacts WHERE pg_notify('ch', contact)::text = ''"}},
	})
}

// deleteTag is the server's word that a DELETE ran.
var deleteTag = regexp.MustCompile(`\bDELETE \d+`)

// A prepared statement executed by SQL EXECUTE is the statement the server
// holds under that name, whatever was prepared under it before or failed to
// be: its DELETE waits for approval, and nobody approves here.
func TestPostgresLeakDeleteWithoutApproval(t *testing.T) {
	long := strings.Repeat("n", 63)
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	allowAlso(t, p, "prepare")
	for _, c := range []struct {
		name  string
		steps []string
	}{
		{"protocol Close and Parse replace a SQL PREPARE", []string{
			"simple PREPARE p AS SELECT 1",
			"close p",
			"parse p DELETE FROM orders",
			"simple EXECUTE p",
		}},
		{"SQL PREPARE refused in a failed transaction", []string{
			"simple BEGIN; SELECT 1/0;",
			"simple PREPARE p2 AS SELECT 1",
			"simple ROLLBACK",
			"parse p2 DELETE FROM orders",
			"simple EXECUTE p2",
		}},
		{"SQL PREPARE refused over a protocol Parse", []string{
			"parse p3 DELETE FROM orders",
			"simple PREPARE p3 AS SELECT 1",
			"simple EXECUTE p3",
		}},
		// The server keeps a statement whose name is parsed again, and
		// runs it at the next Bind; corral must decide that Bind by it.
		{"protocol Parse of a name in use, then pipelined Bind", []string{
			"parse s4 DELETE FROM orders",
			"parse s4 SELECT 1",
			"pipeline s4 SELECT 1",
		}},
		// The server keys statements by the first 63 bytes of their name:
		// two names corral told apart were one statement to the server.
		{"names alike in their first 63 bytes", []string{
			"parse " + long + "a SELECT 1",
			"close " + long + "b",
			"parse " + long + "b DELETE FROM orders",
			"bind " + long + "a",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p.pg.Exec(t, "orders", seedRows)
			if transcript := runSteps(t, p, "pgconn-steps", c.steps); deleteTag.MatchString(transcript) {
				t.Errorf("a DELETE ran:\n%s", transcript)
			}
			assertOrdersIntact(t, p)
		})
	}
}

// Volatile functions of the database's own may write whatever the
// statement around them; the policy does not allow "function".
func TestPostgresLeakVolatileFunctions(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	p.pg.Exec(t, "orders", `
CREATE FUNCTION "PurgeOrders"() RETURNS int LANGUAGE sql AS 'DELETE FROM orders RETURNING 1';
CREATE FUNCTION wipe(orders) RETURNS int LANGUAGE sql AS 'DELETE FROM orders WHERE id = $1.id RETURNING 1';
GRANT EXECUTE ON FUNCTION "PurgeOrders"(), wipe(orders) TO app;
`)
	for _, c := range []struct{ name, sql string }{
		{"quoted mixed-case name", `SELECT "PurgeOrders"()`},
		{"attribute notation", "SELECT o.wipe FROM orders o WHERE o.id = 2"},
		{"attribute notation on a parenthesized row", "SELECT (o).wipe FROM orders o WHERE o.id = 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p.pg.Exec(t, "orders", seedRows)
			t.Logf("%s: %s", c.sql, p.psqlSession(t, c.sql))
			assertOrdersIntact(t, p)
		})
	}
}

// An operator, like a trigger or a column's default, runs its function
// under statements that name only the operator: one made over
// pg_read_file or lo_from_bytea is that function, whatever schema the
// function is in. The role may read server files; the policy allows ddl
// and not "function".
func TestPostgresFunctionsBoundIntoOperators(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	p.pg.Exec(t, "orders", `GRANT CREATE ON SCHEMA public TO app; GRANT pg_read_server_files TO app;
GRANT EXECUTE ON FUNCTION pg_read_file(text) TO app;
CREATE OPERATOR ### (RIGHTARG = text, FUNCTION = pg_read_file);
CREATE OPERATOR #<< (LEFTARG = oid, RIGHTARG = bytea, FUNCTION = lo_from_bytea);
GRANT EXECUTE ON FUNCTION lo_from_bytea(oid, bytea) TO app`)
	allowAlso(t, p, "ddl")
	largeObjects := func() string {
		return p.pg.Exec(t, "orders", "SELECT count(*) FROM pg_largeobject_metadata")[0][0]
	}
	before := largeObjects()
	for _, c := range []struct {
		name  string
		stmts []string
	}{
		{"an operator the database has", []string{"SELECT ### '/etc/passwd'"}},
		{"one that writes", []string{`SELECT 0::oid #<< '\x4142'::bytea`}},
		{"one made through corral", []string{"CREATE OPERATOR #### (RIGHTARG = text, FUNCTION = pg_read_file)", "SELECT #### '/etc/passwd'"}},
		{"an aggregate made through corral", []string{
			"CREATE AGGREGATE slurp(text) (SFUNC = pg_catalog.pg_read_file, STYPE = text)"}},
		{"a column's default", []string{"CREATE TABLE loot (id int, body text DEFAULT ### '/etc/passwd')",
			"INSERT INTO loot (id) VALUES (1)", "SELECT body FROM loot"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := p.psqlSession(t, c.stmts...)
			t.Logf("%s", out)
			if strings.Contains(out, "root:") {
				t.Fatalf("a server file was read:\n%s", out)
			}
			if !strings.Contains(out, "function is denied") {
				t.Fatalf("not refused as a function call:\n%s", out)
			}
			if after := largeObjects(); after != before {
				t.Fatalf("a large object was made: %s, then %s", before, after)
			}
		})
	}
	if n := p.pg.Exec(t, "orders", "SELECT count(*) FROM pg_operator WHERE oprname = '####'")[0][0]; n != "0" {
		t.Errorf("the operator over pg_read_file was made")
	}
}

func init() { testutil.RegisterFunc("pg-raw", pgRaw) }

// pgRaw is a workload that speaks the protocol itself. Each input line is
// "N msg | msg | ...": the messages go out in one write, then the answers
// are read up to the N-th ReadyForQuery or CopyInResponse and printed on
// one line. Messages:
//
//	Parse name:sql    Bind portal:statement    Execute portal
//	Close name        Query sql                Sync    CopyDone    CopyFail    Flush
//	CopyData row
//
// In a line without Sync or Query, an error ends the wait too.
func pgRaw(args []string, in *bufio.Scanner, out io.Writer) error {
	ctx := context.Background()
	conn, err := connectWorkload(ctx, args[0])
	if err != nil {
		return err
	}
	hc, err := conn.Hijack()
	if err != nil {
		return err
	}
	defer hc.Conn.Close()
	fe := hc.Frontend
	fmt.Fprintln(out, "connected")
	for in.Scan() {
		n, line, _ := strings.Cut(in.Text(), " ")
		for _, m := range strings.Split(line, " | ") {
			kind, arg, _ := strings.Cut(m, " ")
			a, b, _ := strings.Cut(arg, ":")
			switch kind {
			case "Parse":
				fe.Send(&pgproto3.Parse{Name: a, Query: b})
			case "Bind":
				fe.Send(&pgproto3.Bind{DestinationPortal: a, PreparedStatement: b})
			case "Execute":
				fe.Send(&pgproto3.Execute{Portal: arg})
			case "Close":
				fe.Send(&pgproto3.Close{ObjectType: 'S', Name: arg})
			case "Query":
				fe.Send(&pgproto3.Query{String: arg})
			case "Sync":
				fe.Send(&pgproto3.Sync{})
			case "CopyData":
				fe.Send(&pgproto3.CopyData{Data: []byte(arg + "\n")})
			case "CopyDone":
				fe.Send(&pgproto3.CopyDone{})
			case "CopyFail":
				fe.Send(&pgproto3.CopyFail{Message: "stop"})
			case "Flush":
				fe.Send(&pgproto3.Flush{})
			default:
				return fmt.Errorf("unknown message %q", kind)
			}
		}
		if err := fe.Flush(); err != nil {
			return err
		}
		var got []string
		want, err := strconv.Atoi(n)
		if err != nil {
			return fmt.Errorf("step %q: want a count first", in.Text())
		}
		for ready := 0; ready < want; {
			msg, err := fe.Receive()
			if err != nil {
				return err
			}
			switch m := msg.(type) {
			case *pgproto3.ReadyForQuery:
				ready++
				got = append(got, "Z")
			case *pgproto3.CopyInResponse:
				ready++
				got = append(got, "CopyInResponse")
			case *pgproto3.CommandComplete:
				got = append(got, string(m.CommandTag))
			case *pgproto3.DataRow:
				var vals []string
				for _, v := range m.Values {
					vals = append(vals, string(v))
				}
				got = append(got, "D["+strings.Join(vals, "|")+"]")
			case *pgproto3.NoticeResponse:
				got = append(got, "N "+m.Code+" "+m.Message)
			case *pgproto3.ErrorResponse:
				got = append(got, "E "+m.Code+" "+m.Message)
				if !strings.Contains(line, "Sync") && !strings.Contains(line, "Query") {
					ready++ // a batch without a Sync ends at its error
				}
				if m.Severity == "FATAL" {
					ready = want // the session is over
				}
			default:
				got = append(got, strings.TrimPrefix(fmt.Sprintf("%T", m), "*pgproto3."))
			}
		}
		fmt.Fprintln(out, strings.Join(got, ", "))
	}
	return nil
}

// What the database's own code raises (a trigger's, a default's, a
// deferred trigger's at COMMIT) may carry masked values in its text, its
// hint and its name fields, under any SQLSTATE it chooses: while masks
// apply, all of it is withheld.
func TestPostgresLeakRaisedMessages(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	runLeakCases(t, p, []leakCase{
		// RAISE WARNING's default SQLSTATE is 01000, not P0001 or 00000.
		{name: "a trigger on another table raises a WARNING",
			setup: "CREATE FUNCTION warn_owner() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE WARNING 'owner %', (SELECT email FROM customers WHERE id = NEW.customer_id); RETURN NEW; END$$; CREATE TRIGGER warn BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION warn_owner()",
			undo:  "DROP TRIGGER warn ON orders; DROP FUNCTION warn_owner()",
			stmts: []string{"UPDATE orders SET amount = amount WHERE id = 1"}},
		{name: "a trigger on the masked table raises a WARNING",
			setup: "CREATE FUNCTION warn_self() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE WARNING 'changed %', OLD.email; RETURN NEW; END$$; CREATE TRIGGER warn2 BEFORE UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION warn_self()",
			undo:  "DROP TRIGGER warn2 ON customers; DROP FUNCTION warn_self()",
			stmts: []string{"UPDATE customers SET note = note WHERE id = 1"}},
		// RAISE ... USING fills the name fields with anything.
		{name: "a trigger's notice with name fields",
			setup: "CREATE FUNCTION note_fields() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE NOTICE 'changed' USING COLUMN = OLD.email, CONSTRAINT = OLD.card_number, DATATYPE = NEW.email, TABLE = OLD.email, SCHEMA = OLD.card_number; RETURN NEW; END$$; CREATE TRIGGER notef BEFORE UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION note_fields()",
			undo:  "DROP TRIGGER notef ON customers; DROP FUNCTION note_fields()",
			stmts: []string{"UPDATE customers SET note = note WHERE id = 1"}},
		{name: "a trigger's error with name fields",
			setup: "CREATE FUNCTION err_fields() RETURNS trigger LANGUAGE plpgsql AS $$DECLARE c customers; BEGIN SELECT * INTO c FROM customers WHERE id = NEW.customer_id; RAISE EXCEPTION 'refused' USING COLUMN = c.email, CONSTRAINT = c.card_number; RETURN NEW; END$$; CREATE TRIGGER errf BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION err_fields()",
			undo:  "DROP TRIGGER errf ON orders; DROP FUNCTION err_fields()",
			stmts: []string{"UPDATE orders SET amount = amount WHERE id = 1"}},
		// RAISE may choose a SQLSTATE of the statement's own classes.
		{name: "a trigger's error with a class 42 code",
			setup: "CREATE FUNCTION err42() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'not for ' || OLD.email, HINT = OLD.card_number; RETURN NEW; END$$; CREATE TRIGGER e42 BEFORE UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION err42()",
			undo:  "DROP TRIGGER e42 ON customers; DROP FUNCTION err42()",
			stmts: []string{"UPDATE customers SET note = note WHERE id = 1"}},
		{name: "a trigger's notice with a class 42 code",
			setup: "CREATE FUNCTION note42() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE NOTICE USING ERRCODE = '42000', MESSAGE = OLD.email; RETURN NEW; END$$; CREATE TRIGGER n42 BEFORE UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION note42()",
			undo:  "DROP TRIGGER n42 ON customers; DROP FUNCTION note42()",
			stmts: []string{"UPDATE customers SET note = note WHERE id = 1"}},
		{name: "a deferred trigger's warning at COMMIT",
			setup: "CREATE FUNCTION warn_late() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE WARNING 'owner %', (SELECT card_number FROM customers WHERE id = NEW.customer_id); RETURN NEW; END$$; CREATE CONSTRAINT TRIGGER late AFTER UPDATE ON orders DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION warn_late()",
			undo:  "DROP TRIGGER late ON orders; DROP FUNCTION warn_late()",
			stmts: []string{"BEGIN", "UPDATE orders SET amount = amount WHERE id = 1", "COMMIT"}},
		{name: "a column default's warning",
			setup: "CREATE FUNCTION next_note() RETURNS text LANGUAGE plpgsql AS $$BEGIN RAISE WARNING 'last %', (SELECT email FROM customers WHERE id = 2); RETURN 'n'; END$$; CREATE TABLE notes (id int, n text DEFAULT next_note()); GRANT INSERT, SELECT ON notes TO app",
			undo:  "DROP TABLE notes; DROP FUNCTION next_note()",
			stmts: []string{"INSERT INTO notes (id) VALUES (1)"}},
	})
}

// A WITH HOLD cursor's query runs to its end at COMMIT, which reads no
// table: an XML parser's warning quoting what its filter computed from a
// masked column (outside double quotes) came back with COMMIT.
func TestPostgresLeakWarningAtCommit(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	allowAlso(t, p, "cursor")
	p.pg.Exec(t, "orders", seedRows)
	out := p.psqlSession(t, "BEGIN",
		`DECLARE zc CURSOR WITH HOLD FOR SELECT id FROM customers WHERE xmlparse(document '<?xml version="1.' || replace(card_number, ' ', '') || '"?><a/>') IS NOT NULL`,
		"COMMIT", "CLOSE zc")
	for _, card := range []string{"4111111111111111", "5500000000000004"} {
		if strings.Contains(out, card) {
			t.Errorf("the card number reached the workload at COMMIT:\n%s", out)
		}
	}
}

// With the function operation allowed, large-object functions keep a
// value where a later statement reads it back: a descriptor's position,
// an object's number, its length.
func TestPostgresLeakLargeObjectSideChannels(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	allowAlso(t, p, "function")
	const five = `ascii(substr(email, 1, 1))::int8 * 4294967296 + ascii(substr(email, 2, 1)) * 16777216 + ascii(substr(email, 3, 1)) * 65536 + ascii(substr(email, 4, 1)) * 256 + ascii(substr(email, 5, 1))`
	const four = `ascii(substr(email, 1, 1)) * 16777216 + ascii(substr(email, 2, 1)) * 65536 + ascii(substr(email, 3, 1)) * 256 + ascii(substr(email, 4, 1))`
	unlink := "SELECT lo_unlink(oid) FROM pg_largeobject_metadata"
	runLeakCases(t, p, []leakCase{
		{name: "descriptor position", setup: "SELECT 1", undo: unlink, stmts: []string{
			"BEGIN", "SELECT lo_open(lo_creat(-1), 393216)",
			"SELECT id FROM customers WHERE id = 1 AND lo_lseek64(0, " + five + ", 0) >= 0",
			"SELECT convert_from(substr(int8send(lo_tell64(0)), 4, 5), 'SQL_ASCII')", "ROLLBACK"}},
		{name: "large object number", setup: "SELECT 1", undo: unlink, stmts: []string{
			"SELECT id FROM customers WHERE id = 1 AND lo_create(" + four + ") > 0",
			"SELECT convert_from(substr(int8send(oid::int8), 5, 4), 'SQL_ASCII') FROM pg_largeobject_metadata"}},
		{name: "large object length", setup: "SELECT 1", undo: unlink, stmts: []string{
			"BEGIN", "SELECT lo_open(lo_creat(-1), 393216)",
			"SELECT id FROM customers WHERE id = 1 AND lo_truncate64(0, " + five + ") = 0",
			"SELECT convert_from(substr(int8send(lo_lseek64(0, 0, 2)), 4, 5), 'SQL_ASCII')", "ROLLBACK"}},
	})
}

// Whatever a client pipelines, a DELETE runs only with its review: the
// unnamed statement the server keeps when it skips a Parse, and a Sync
// sent where the server is copying, must not make corral decide by
// another statement than the server runs.
func TestPostgresLeakPipelines(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	p.pg.Exec(t, "orders", "CREATE TABLE scratch (x int); GRANT INSERT ON scratch TO app")
	for _, c := range []struct {
		name  string
		steps []string
	}{
		{"unnamed statement kept by a skipped Parse", []string{
			"1 Parse :DELETE FROM orders | Sync",
			"2 Parse e1:SELECT * FROM no_such_table | Parse :SELECT 1 | Sync | Bind : | Execute  | Sync",
		}},
		{"unnamed statement kept by a skipped Parse, in the next batch", []string{
			"1 Parse :DELETE FROM orders | Sync",
			"1 Parse e2:SELECT * FROM no_such_table | Parse :SELECT 1 | Sync",
			"1 Bind : | Execute  | Sync",
		}},
		{"a Sync dropped during a copy ends no batch", []string{
			"1 Parse :DELETE FROM orders | Sync",
			"3 Parse c:COPY scratch FROM STDIN | Bind :c | Execute  | Sync | CopyFail | Parse :SELECT 1 | Sync | Bind : | Execute  | Sync",
		}},
		{"a copy the server may still hold as the unnamed statement", []string{
			"1 Parse :COPY scratch FROM STDIN | Sync",
			"2 Parse e4:SELECT * FROM no_such_table | Parse :SELECT 1 | Sync | Bind : | Execute  | Sync",
			"1 CopyDone | Sync",
			"1 Parse :DELETE FROM orders | Sync",
			"1 Parse e5:SELECT * FROM no_such_table | Parse :SELECT 1 | Sync",
			"1 Parse n1:SELECT 1 | Parse n2:SELECT 2 | Sync",
			"1 Bind : | Execute  | Sync",
		}},
		{"a Close answered after a Parse behind it", []string{
			"1 Close  | Parse :DELETE FROM orders | Sync",
			"1 Parse e6:SELECT * FROM no_such_table | Flush",
			"1 Parse :SELECT 1 | Sync",
			"1 Bind : | Execute  | Sync",
		}},
		{"a skipped Parse of the unnamed statement in a batch known to fail", []string{
			"1 Parse :DELETE FROM orders | Sync",
			"1 Parse e7:SELECT * FROM no_such_table | Parse :SELECT 1 | Sync",
			"1 Parse e8:SELECT * FROM no_such_table | Flush",
			"1 Parse :SELECT 2 | Sync",
			"1 Bind : | Execute  | Sync",
		}},
		{"a copy portal kept by a savepoint", []string{
			"1 Query BEGIN",
			"1 Parse c9:COPY scratch FROM STDIN | Parse s9:SELECT 1 | Bind p9:c9 | Sync",
			"1 Query SAVEPOINT a",
			"1 Bind p9:s9 | Sync",
			"1 Query ROLLBACK TO SAVEPOINT a",
			"1 Execute p9 | Sync",
			"1 CopyDone | Sync",
			"1 Query ROLLBACK",
			"1 Query DROP TABLE customers",
			"1 Query SELECT email, card_number FROM customers",
		}},
		{"a Close confirmed ahead of more Parses than corral chains", []string{
			"1 Close  | Parse :SELECT 1 AS v | Parse :SELECT 1 AS v | Parse :SELECT 1 AS v | Parse :SELECT 1 AS v | Parse :DELETE FROM orders | Parse e11:SELECT * FROM no_such_table" +
				strings.Repeat(" | Parse :SELECT 1 AS v", 13) + " | Sync",
			"1 Bind : | Execute  | Sync",
		}},
		{"a ROLLBACK TO executed after Binds the server skipped", []string{
			"1 Query BEGIN",
			"1 Parse r:ROLLBACK TO SAVEPOINT a | Bind pr:r | Parse sp:SAVEPOINT a | Bind psp:sp | Parse s1:SELECT lower(contact) AS x FROM customer_contacts | Bind :s1 | Parse s2:SELECT 'x'::text AS x | Execute psp | Sync",
			"1 Parse e10:SELECT * FROM no_such_table | Bind :s2 | Sync",
			"1 Execute pr | Sync",
			"1 Execute  | Sync",
			"1 Query ROLLBACK",
		}},
		{"Sync sent while the server copies", []string{
			"2 Query COPY scratch FROM STDIN | Sync | CopyDone",
			"1 Parse :DELETE FROM orders | Sync",
			"1 Parse e3:SELECT * FROM no_such_table | Parse :SELECT 1 | Sync",
			"1 Bind : | Execute  | Sync",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p.pg.Exec(t, "orders", seedRows)
			transcript := runSteps(t, p, "pg-raw", c.steps)
			t.Logf("%s", transcript)
			if deleteTag.MatchString(transcript) {
				t.Errorf("a DELETE ran:\n%s", transcript)
			}
			assertNoMaskedValue(t, c.name, transcript)
			assertOrdersIntact(t, p)
		})
	}
}

// A migration outside corral redefines a view to read a masked column.
// corral's cached catalog answers said the view read none; within a
// second (the catalog's check of the rows behind its answers: time is all
// there is to wait for) every session sees the view as it is now.
func TestPostgresLeakMigrationOutsideCorral(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	p.pg.Exec(t, "orders", "CREATE VIEW directory AS SELECT id, name AS contact FROM customers; GRANT SELECT ON directory TO app")
	if out := p.psqlSession(t, "SELECT * FROM directory ORDER BY id"); out != "1|Ada\n2|Grace" {
		t.Fatalf("before the migration: %q", out)
	}
	p.pg.Exec(t, "orders", "CREATE OR REPLACE VIEW directory AS SELECT id, email AS contact FROM customers")
	time.Sleep(time.Second)
	out := p.psqlSession(t, "SELECT * FROM directory ORDER BY id")
	assertNoMaskedValue(t, "the view after the migration", out)
	if !strings.Contains(out, "***") {
		t.Errorf("the view after the migration: %q, want its columns masked", out)
	}
}

// A cursor and a protocol portal share one name space, and the server may
// not run a CLOSE or a Bind corral saw: what a name could return only
// grows. A deferred trigger's notice at Sync is scrubbed like any other.
func TestPostgresLeakCursorNames(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	allowAlso(t, p, "cursor")
	p.pg.Exec(t, "orders", `
CREATE FUNCTION audit_note() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE NOTICE 'changed (%)', OLD.email; RETURN NEW; END$$;
CREATE CONSTRAINT TRIGGER audit AFTER UPDATE ON customers DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_note();
`)
	for _, c := range []struct {
		name  string
		steps []string
	}{
		{"a cursor declared over a bound portal's name", []string{
			"1 Parse s1:SELECT 'x'::text AS x | Bind p1:s1 | Sync",
			"1 Query DECLARE p1 CURSOR WITH HOLD FOR SELECT contact || '' AS x FROM customer_contacts",
			"1 Execute p1 | Sync",
		}},
		{"a Bind the server refuses over a cursor", []string{
			"1 Query DECLARE p2 CURSOR WITH HOLD FOR SELECT contact || '' AS x FROM customer_contacts",
			"1 Parse s2:SELECT 'x'::text AS x | Bind p2:s2 | Sync",
			"1 Execute p2 | Sync",
		}},
		{"a CLOSE the server does not run", []string{
			"1 Query DECLARE p3 CURSOR WITH HOLD FOR SELECT contact || '' AS x FROM customer_contacts",
			"1 Query SELECT 1/0; CLOSE p3",
			"1 Query DECLARE p3 CURSOR WITH HOLD FOR SELECT 'x'::text AS x",
			"1 Query FETCH ALL p3",
		}},
		{"a deferred trigger's notice at Sync", []string{
			"1 Parse :UPDATE customers SET name = name WHERE id = 1 | Bind : | Execute  | Sync",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p.pg.Exec(t, "orders", seedRows)
			transcript := runSteps(t, p, "pg-raw", c.steps)
			t.Logf("%s", transcript)
			assertNoMaskedValue(t, c.name, transcript)
		})
	}
}

// A mask's filters setting closes the filter oracle: with equality, a
// masked column can only be looked up by a whole value (simple and
// extended protocol); with none, not filtered by at all. The refusal
// names the column and the setting, and the session goes on.
func TestPostgresMaskFilters(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	cfg, _ := os.ReadFile(p.config)
	strict := strings.NewReplacer(
		"{columns: [customers.email], method: partial}", "{columns: [customers.email], method: partial, filters: equality}",
		"{columns: [customers.card_number], method: redact}", "{columns: [customers.card_number], method: redact, filters: none}",
	).Replace(string(cfg))
	if strict == string(cfg) {
		t.Fatal("unexpected policy")
	}
	// A session that changed a planner setting before the reload.
	early := testutil.StartFunc(t, p.workCg, "pgconn", p.host.Addr.String())
	if got := early.Recv(t); got != "connected" {
		t.Fatalf("client: %s", got)
	}
	early.Send(t, "query 0 SET enable_seqscan = off")
	if got := early.Recv(t); !strings.HasPrefix(got, "ok:") {
		t.Fatalf("SET before the reload: %s", got)
	}
	from := p.a.Mark()
	writeAtomically(t, p.config, strict)
	p.a.WaitLine(t, from, func(l string) bool { return strings.Contains(l, "configuration reloaded") })

	out := p.psqlSession(t,
		"SELECT id, email FROM customers WHERE email = 'ada@example.com'",
		"SELECT id FROM customers WHERE email LIKE 'a%'",
		"SELECT id FROM customers ORDER BY email",
		"SELECT id, email FROM customers ORDER BY 2 DESC",
		"SELECT * FROM customers ORDER BY 3",
		"SET enable_seqscan = off",
		"SELECT id FROM customers WHERE card_number IS NOT NULL",
		"SELECT id FROM customers c WHERE c.to_jsonb->>'card_number' LIKE '4111 1%'",
		"SELECT id FROM customers WHERE email IN ('grace@example.org', 'x') AND id > 0",
	)
	lines := strings.Split(out, "\n")
	if len(lines) < 5 || lines[0] != "1|***********.com" {
		t.Fatalf("lookup by a whole value:\n%s", out)
	}
	for _, want := range []string{
		"ERROR:  42501: corral: the statement filters, sorts or groups by the masked column customers.email other than comparing it whole",
		"filters, sorts or groups by the masked column customers.card_number, which its mask does not allow (filters: none)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no refusal %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "42501"); n != 7 {
		t.Errorf("%d refusals, want 7 (LIKE, ORDER BY three ways, a planner setting, card_number, a whole row by attribute notation):\n%s", n, out)
	}
	if !strings.Contains(out, "customers (whole row, as c.to_jsonb passes it to to_jsonb())") {
		t.Errorf("the filter by c.to_jsonb is not refused as a whole row:\n%s", out)
	}
	if !strings.HasSuffix(strings.TrimSpace(out), "\n2") {
		t.Errorf("the session did not go on to the IN lookup:\n%s", out)
	}

	// The setting may still hold: that session reads no masked table.
	early.Send(t, "query 0 SELECT id FROM customers WHERE email IS NOT NULL")
	if got := early.Recv(t); !strings.Contains(got, "changed planner settings before its masks restricted filters") {
		t.Errorf("a session with a planner setting from before the reload: %s", got)
	}
	early.Send(t, "query 0 SELECT 1")
	if got := early.Recv(t); got != "ok: 1 SELECT 1" {
		t.Errorf("that session, reading no masked table: %s", got)
	}

	transcript := runSteps(t, p, "pgconn", []string{
		"prepare byemail SELECT id FROM customers WHERE email = $1",
		"exec byemail grace@example.org",
		"prepare prefix SELECT id FROM customers WHERE email LIKE $1",
	})
	if !strings.Contains(transcript, "exec byemail grace@example.org -> ok: 2 SELECT 1") {
		t.Errorf("a lookup by parameter:\n%s", transcript)
	}
	if !strings.Contains(transcript, "prefix SELECT id FROM customers WHERE email LIKE $1 -> error:") || !strings.Contains(transcript, "(filters: equality") {
		t.Errorf("a LIKE by parameter was not refused:\n%s", transcript)
	}
}

// A copy the server fails (a row that does not parse) ends there: the
// client goes on with its next query without a CopyDone or CopyFail, as
// the protocol lets it, and the session serves it.
func TestPostgresCopyFailedByTheServer(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	p.pg.Exec(t, "orders", "CREATE TABLE scratch (x int); GRANT INSERT ON scratch TO app")
	out := runSteps(t, p, "pg-raw", []string{
		"1 Query COPY scratch FROM STDIN",
		"1 CopyData not-an-int",
		"2 Query SELECT 41 + 1",
	})
	t.Logf("%s", out)
	if !strings.Contains(out, "E 22P02") || !strings.Contains(out, "D[42]") {
		t.Errorf("after a copy the server failed:\n%s", out)
	}
}

// What a session makes in a transaction that has not ended, the catalog's
// own connection cannot see: a function it cannot find is taken as the
// database's own (the function operation), a relation it does not know or
// a view as one that may read masked columns, and a view's columns are
// withheld, until the transaction ends.
func TestPostgresLeakUncommittedObjects(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	allowAlso(t, p, "ddl, lock, do, cursor")
	const leak = `CREATE FUNCTION pg_temp.NAME(int) RETURNS text LANGUAGE sql AS $$SELECT email || ' ' || card_number FROM customers WHERE id = $1$$`
	fn := func(name string) string { return strings.Replace(leak, "NAME", name, 1) }
	runLeakCases(t, p, []leakCase{
		{name: "a function made in the open transaction", stmts: []string{"BEGIN", fn("f1"), "SELECT pg_temp.f1(2)", "ROLLBACK"}},
		{name: "a function made earlier in the query", stmts: []string{fn("f2") + "; SELECT pg_temp.f2(1)"}},
		{name: "a view made anew in the open transaction", stmts: []string{
			"CREATE TEMP VIEW tv AS SELECT name, name AS c FROM customers", "SELECT c FROM tv",
			"BEGIN", "CREATE OR REPLACE TEMP VIEW tv AS SELECT name, contact AS c FROM customer_contacts", "SELECT c FROM tv", "ROLLBACK"}},
		{name: "a view made anew earlier in the query", stmts: []string{
			"CREATE TEMP VIEW tw AS SELECT name, name AS c FROM customers", "SELECT c FROM tw",
			"CREATE OR REPLACE TEMP VIEW tw AS SELECT name, contact AS c FROM customer_contacts; SELECT c FROM tw"}},
		{name: "a view made in the open transaction, copied into a table", stmts: []string{
			"BEGIN", "CREATE TEMP VIEW cv AS SELECT name AS n, contact AS c FROM customer_contacts",
			"INSERT INTO customers (id, name) SELECT 900 + row_number() OVER (), c FROM cv", "COMMIT",
			"SELECT name FROM customers WHERE id > 900"}},
		// Named like PostgreSQL's own, the catalog knows the name: what
		// the session made counts all the same.
		{name: "a function named like PostgreSQL's, made in the open transaction", stmts: []string{
			"BEGIN", strings.Replace(leak, "NAME", "lower", 1), "SELECT pg_temp.lower(1)", "ROLLBACK"}},
		{name: "an operator named like PostgreSQL's, made in the open transaction", stmts: []string{
			"BEGIN", "CREATE FUNCTION pg_temp.op(int, int) RETURNS text LANGUAGE sql AS $$SELECT email FROM customers WHERE id = $1$$",
			"CREATE OPERATOR pg_temp.+ (LEFTARG = int, RIGHTARG = int, FUNCTION = pg_temp.op)", "SELECT 1 OPERATOR(pg_temp.+) 2", "ROLLBACK"}},
		{name: "a cast to a type made in the open transaction", stmts: []string{
			"BEGIN", "CREATE TYPE pg_temp.em AS (v text)",
			"CREATE FUNCTION pg_temp.cast_em(int) RETURNS pg_temp.em LANGUAGE sql AS $$SELECT ROW(email)::pg_temp.em FROM customers WHERE id = $1$$",
			"CREATE CAST (int AS pg_temp.em) WITH FUNCTION pg_temp.cast_em(int)", "SELECT (1::pg_temp.em).v", "ROLLBACK"}},
		{name: "attribute notation of a function made in the open transaction",
			setup: "GRANT CREATE ON SCHEMA public TO app", undo: "REVOKE CREATE ON SCHEMA public FROM app",
			stmts: []string{"BEGIN",
				"CREATE FUNCTION public.attr_email(orders) RETURNS text LANGUAGE sql AS $$SELECT email FROM customers WHERE id = $1.customer_id$$",
				"SELECT o.attr_email FROM orders o", "ROLLBACK"}},
		{name: "a table made a view by a rule in the open transaction", stmts: []string{
			"CREATE TEMP TABLE tt (n text, c text)", "BEGIN",
			`CREATE RULE "_RETURN" AS ON SELECT TO tt DO INSTEAD SELECT name AS n, contact AS c FROM customer_contacts`,
			"SELECT n, c FROM tt", "ROLLBACK"}},
		// Committed or not, a trigger runs its function under statements
		// that name it nowhere.
		{name: "a trigger of the session's own function", stmts: []string{
			"CREATE TEMP TABLE trig (x text, c text)",
			"CREATE FUNCTION pg_temp.copy_emails() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.c := (SELECT string_agg(email, ',') FROM customers); RETURN NEW; END$$",
			"CREATE TRIGGER copy BEFORE INSERT ON trig FOR EACH ROW EXECUTE FUNCTION pg_temp.copy_emails()",
			"INSERT INTO trig VALUES ('x', 'y')", "SELECT c FROM trig"}},
		// What a DO block made is checked for once it is committed.
		{name: "a function a DO block made, called after the commit", stmts: []string{
			"BEGIN", "DO $$BEGIN EXECUTE $f$" + fn("g") + "$f$; END$$", "COMMIT", "SELECT pg_temp.g(1)"}},
		// Code the statement does not show reads masked values for an
		// error to echo: a rule on the session's own table, a WITH HOLD
		// cursor run at COMMIT.
		{name: "an error of a rule's action", stmts: []string{
			"CREATE TEMP TABLE tr (id int)",
			"CREATE RULE r AS ON INSERT TO tr DO ALSO SELECT c.id FROM customers c WHERE c.id = new.id AND (c.email || '.a.b.c')::regclass IS NOT NULL",
			"INSERT INTO tr VALUES (1)"}},
		{name: "an error of a WITH HOLD cursor at COMMIT", stmts: []string{
			"BEGIN", "DECLARE h CURSOR WITH HOLD FOR SELECT id FROM customers WHERE (email || '.a.b.c')::regclass IS NOT NULL", "COMMIT"}},
		// An advisory lock's key shows in pg_locks.
		{name: "an advisory lock keyed by a masked value", stmts: []string{
			"SELECT id FROM customers WHERE pg_try_advisory_lock(('x' || encode(substr(convert_to(email, 'UTF8'), 1, 8), 'hex'))::bit(64)::bigint)",
			`SELECT convert_from(decode(lpad(to_hex(classid::bigint), 8, '0') || lpad(to_hex(objid::bigint), 8, '0'), 'hex'), 'UTF8') FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()`}},
	})

	// The function operation is denied and a delete held for review: a
	// function made in the transaction does neither.
	p.pg.Exec(t, "orders", seedRows)
	out := p.psqlSession(t, "BEGIN",
		"CREATE FUNCTION pg_temp.wipe() RETURNS bigint LANGUAGE sql AS $$WITH d AS (DELETE FROM orders RETURNING 1) SELECT count(*) FROM d$$",
		"SELECT pg_temp.wipe()", "COMMIT")
	if !strings.Contains(out, `function is denied by rule "app"`) {
		t.Errorf("calling a function made in the transaction:\n%s", out)
	}
	assertOrdersIntact(t, p)

	// What PostgreSQL names an operator or a cast is no function of the
	// session's own, in the transaction too.
	out = p.psqlSession(t, "BEGIN", "CREATE TEMP TABLE t9 (id int)",
		"SELECT 'ok', id FROM orders WHERE id BETWEEN 1 AND 1 AND uuid('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11') IS NOT NULL", "ROLLBACK")
	if !strings.Contains(out, "ok|1") {
		t.Errorf("BETWEEN and a cast written as a call, in a transaction that made a table:\n%s", out)
	}
}

// While masks restrict filters, a view's column over masked columns is
// not filtered by at all: it may be any function of them, and comparing
// left(email, 3) whole with 'ada' tells three letters.
func TestPostgresLeakViewColumnOracle(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	cfg, _ := os.ReadFile(p.config)
	from := p.a.Mark()
	writeAtomically(t, p.config, strings.NewReplacer(
		"{columns: [customers.email], method: partial}", "{columns: [customers.email], method: partial, filters: equality}",
		"allow: [select, insert, update, copy, transaction, set, show", "allow: [select, insert, update, copy, transaction, set, show, ddl",
	).Replace(string(cfg)))
	p.a.WaitLine(t, from, func(l string) bool { return strings.Contains(l, "configuration reloaded") })
	p.pg.Exec(t, "orders", seedRows)
	out := p.psqlSession(t,
		"CREATE TEMP VIEW pv AS SELECT name, left(contact, 3) AS p3 FROM customer_contacts",
		"SELECT 'hit', name FROM pv WHERE p3 = 'ADA'",
		"SELECT 'hit', name FROM customer_contacts WHERE contact = 'ADA@EXAMPLE.COM'")
	if strings.Contains(out, "hit|") || strings.Count(out, "a column of a view over masked columns") != 2 {
		t.Errorf("filters by a view's columns:\n%s", out)
	}
}

// Detectors read a value whatever type it comes back as (a row, an array
// of rows, bytea in escape format, a tsvector, ...), and withhold what
// they cannot mask inside; a number run together with other text is
// found too.
func TestPostgresDetectorsReadEveryType(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	p.pg.Exec(t, "orders", "CREATE TABLE tickets (id int, body text); INSERT INTO tickets VALUES (1, 'call 555-123-4567'); GRANT SELECT ON tickets TO app")
	out := p.psqlSession(t,
		"SELECT 'plain', body FROM tickets",
		"SELECT 'record', ROW(id, body) FROM tickets",
		"SELECT 'whole row', t FROM tickets t",
		"SELECT 'rows', array_agg(t) FROM tickets t",
		"SET bytea_output = escape",
		"SELECT 'bytea', body::bytea FROM tickets",
		"SELECT 'refcursor', body::refcursor FROM tickets",
		"SELECT 'tsvector', array_to_tsvector(ARRAY[body]) FROM tickets",
		"SELECT 'cstring', textout(body) FROM tickets",
		"SELECT 'together', body || 'x' FROM tickets")
	t.Logf("%s", out)
	if strings.Contains(out, "555-123-4567") {
		t.Errorf("a phone number came back:\n%s", out)
	}
	for _, want := range []string{"plain|call ****", "whole row|\n", "together|call ****x"} {
		if !strings.Contains(out+"\n", want) {
			t.Errorf("want %q in:\n%s", want, out)
		}
	}
}

// A protocol Parse of a name an SQL PREPARE holds is refused by the server;
// a Bind pipelined behind it runs the SQL-prepared statement, and is
// decided as that one.
//
// A DEALLOCATE or Close of the name corral saw sent may be skipped or
// refused by the server: a name once SQL PREPAREd is not given to a Parse.
func TestPostgresLeakParseOverSQLPrepare(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	allowAlso(t, p, "prepare")
	for _, c := range []struct{ name, refusal string }{
		{"held", `corral: prepared statement "x" already exists`},
		{"Close skipped after an error", `corral: a statement named "x" was SQL PREPAREd in this session`},
		{"DEALLOCATE skipped in a failing query", `corral: a statement named "x" was SQL PREPAREd in this session`},
		{"DEALLOCATE in an aborted transaction", `corral: a statement named "x" was SQL PREPAREd in this session`},
	} {
		t.Run(c.name, func(t *testing.T) {
			steps := []string{"1 Query PREPARE x AS SELECT lower(contact) AS v FROM customer_contacts"}
			switch c.name {
			case "Close skipped after an error":
				steps = append(steps, "1 Parse e:SELECT * FROM no_such_table | Close x | Sync")
			case "DEALLOCATE skipped in a failing query":
				steps = append(steps, "1 Query SELECT 1/0; DEALLOCATE x")
			case "DEALLOCATE in an aborted transaction":
				steps = append(steps, "1 Query BEGIN; SELECT 1/0", "1 Query DEALLOCATE x", "1 Query ROLLBACK")
			}
			steps = append(steps, "2 Parse x:SELECT 'x'::text AS v | Sync | Bind px:x | Execute px | Sync")
			transcript := runSteps(t, p, "pg-raw", steps)
			t.Logf("%s", transcript)
			assertNoMaskedValue(t, "a Bind behind a Parse over an SQL PREPARE", transcript)
			if !strings.Contains(transcript, c.refusal) {
				t.Errorf("the Parse was not refused, want %q:\n%s", c.refusal, transcript)
			}
		})
	}
}

// A filter matching part of a masked column against another row source's
// values keeps the rows that spell the value out: returned (from a table
// of candidates), or written into a table, in one statement. Filters by
// the masked row alone still work.
func TestPostgresLeakCorrelatedFilters(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	p.pg.Exec(t, "orders", seedRows)
	// A grid of (position, character code) any workload with insert
	// could have made.
	p.pg.Exec(t, "orders", `CREATE TABLE grid AS SELECT i, g FROM generate_series(1, 20) i, generate_series(32, 126) g; GRANT SELECT ON grid TO app;
CREATE TABLE seen (id int, email text); INSERT INTO seen VALUES (7, 'grace@example.org'), (8, 'nobody@example.org'); GRANT SELECT ON seen TO app`)
	out := p.psqlSession(t,
		"INSERT INTO orders (id, customer_id, amount) SELECT 1000 + i, g, 0 FROM customers, generate_series(1, 40) i, generate_series(32, 126) g WHERE customers.id = 1 AND ascii(substr(customers.email, i, 1)) = g",
		"INSERT INTO orders (id, customer_id, amount) SELECT 2000 + i, 0, 0 FROM generate_series(1, 19) i",
		"UPDATE orders SET amount = g FROM customers, generate_series(32, 126) g WHERE customers.id = 2 AND orders.id > 2000 AND ascii(substr(customers.card_number, orders.id - 2000, 1)) = g",
		"SELECT string_agg(chr(g), '' ORDER BY i) FROM grid, customers c WHERE c.id = 1 AND ascii(substr(c.email, grid.i, 1)) = grid.g",
		"SELECT grid.i, grid.g FROM grid WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = 1 AND ascii(substr(c.email, grid.i, 1)) = grid.g)",
		"SELECT i, g FROM (SELECT i, g, rank() OVER (PARTITION BY i ORDER BY ascii(substr(email, i, 1)) = g DESC) r FROM customers, grid WHERE customers.id = 1) x WHERE r = 1",
		// Rows stood for by a set-returning function, or a group's size.
		"INSERT INTO orders (id, customer_id, amount) SELECT 1000 + generate_series(1, 3800), 0, 0 FROM customers WHERE id = 1 ORDER BY ascii(substr(email, (generate_series(1, 3800) - 1) / 95 + 1, 1)) = (generate_series(1, 3800) - 1) % 95 + 32 DESC LIMIT 15",
		"INSERT INTO orders (id, customer_id, amount) SELECT 1000 + s, 0, 0 FROM (SELECT s FROM generate_series(1, 1900) s, generate_series(1, s) j) t, customers c WHERE c.id = 2 GROUP BY s HAVING ascii(substr(max(c.card_number), (count(1) - 1)::int / 95 + 1, 1)) = (count(1) - 1)::int % 95 + 32",
	)
	t.Logf("%s", out)
	assertNoMaskedValue(t, "correlated filters", out)
	if n := strings.Count(out, "ERROR:  42501"); n != 7 || strings.Count(out, "another row source") < 4 || strings.Count(out, "stand for other rows") != 2 {
		t.Errorf("want the 7 correlated statements refused:\n%s", out)
	}
	if got := p.pg.Exec(t, "orders", "SELECT count(*) FROM orders WHERE id > 1000 AND id < 2000")[0][0]; got != "0" {
		t.Errorf("%s rows written by statements a masked filter chose", got)
	}
	if got := p.pg.Exec(t, "orders", "SELECT coalesce(string_agg(chr(customer_id), '' ORDER BY id), '') FROM orders WHERE id > 1000 AND id < 2000")[0][0]; got != "" {
		t.Errorf("orders spells %q: a statement wrote rows its masked filter chose", got)
	}
	if got := p.pg.Exec(t, "orders", "SELECT coalesce(string_agg(chr(amount::int), '' ORDER BY id), '') FROM orders WHERE id > 2000 AND amount > 0")[0][0]; got != "" {
		t.Errorf("orders.amount spells %q", got)
	}
	// Filters by the masked row alone, and whole comparisons, still run.
	for sql, want := range map[string]string{
		"SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE lower(c.email) = lower('ADA@example.com')": "1",
		"SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.email LIKE 'grace%'":                     "2",
		"SELECT s.id FROM seen s JOIN customers c ON c.email = s.email":                                                      "7",
	} {
		if got, err := p.psql(t, sql); err != nil || strings.TrimSpace(got) != want {
			t.Errorf("%s: %q, %v; want %s", sql, got, err, want)
		}
	}
}
