//go:build linux

package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/internal/testutil"
)

func init() { testutil.RegisterFunc("pgconn", pgconnClient) }

// pgconnClient is a workload using the extended protocol (pgx's pgconn),
// driven line by line by the test:
//
//	query <format 0|1> <sql>      unnamed statement, text or binary results
//	prepare <name> <sql>          a named prepared statement
//	exec <name> [arg]             execute it
//	fcall <oid> <arg>             the protocol's function call, text argument
func pgconnClient(args []string, in *bufio.Scanner, out io.Writer) error {
	ctx := context.Background()
	tlsParams := "sslmode=disable"
	if len(args) > 1 {
		tlsParams = args[1]
	}
	conn, err := pgconn.Connect(ctx, fmt.Sprintf("host=%s port=5432 user=whoever password=wrong dbname=orders %s connect_timeout=10", args[0], tlsParams))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	fmt.Fprintln(out, "connected")
	print := func(res *pgconn.Result) {
		if res.Err != nil {
			fmt.Fprintln(out, "error:", res.Err)
			return
		}
		var rows []string
		for _, r := range res.Rows {
			var vals []string
			for _, v := range r {
				if v == nil {
					vals = append(vals, "NULL")
				} else {
					vals = append(vals, string(v))
				}
			}
			rows = append(rows, strings.Join(vals, "|"))
		}
		fmt.Fprintln(out, "ok:", strings.Join(rows, ";"), res.CommandTag.String())
	}
	var running chan *pgconn.Result
	for in.Scan() {
		cmd, rest, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "tls": // whether the connection to corral is encrypted
			if tc, ok := conn.Conn().(*tls.Conn); ok {
				fmt.Fprintln(out, "tls:", tc.ConnectionState().NegotiatedProtocol)
			} else {
				fmt.Fprintln(out, "plaintext")
			}
		case "start": // a long query, answered by "wait"
			running = make(chan *pgconn.Result, 1)
			go func() { running <- conn.ExecParams(ctx, rest, nil, nil, nil, nil).Read() }()
			fmt.Fprintln(out, "ok: started")
		case "cancel":
			if err := conn.CancelRequest(ctx); err != nil {
				fmt.Fprintln(out, "error:", err)
			} else {
				fmt.Fprintln(out, "ok: cancel sent")
			}
		case "wait":
			print(<-running)
		case "query":
			format, sql, _ := strings.Cut(rest, " ")
			f := int16(0)
			if format == "1" {
				f = 1
			}
			print(conn.ExecParams(ctx, sql, nil, nil, nil, []int16{f}).Read())
		case "prepare":
			name, sql, _ := strings.Cut(rest, " ")
			if _, err := conn.Prepare(ctx, name, sql, nil); err != nil {
				fmt.Fprintln(out, "error:", err)
			} else {
				fmt.Fprintln(out, "ok: prepared")
			}
		case "exec":
			name, arg, _ := strings.Cut(rest, " ")
			var params [][]byte
			if arg != "" {
				params = [][]byte{[]byte(arg)}
			}
			print(conn.ExecPrepared(ctx, name, params, nil, nil).Read())
		case "fcall":
			oid, arg, _ := strings.Cut(rest, " ")
			n, _ := strconv.ParseUint(oid, 10, 32)
			fe := conn.Frontend()
			fe.Send(&pgproto3.FunctionCall{Function: uint32(n), ArgFormatCodes: []uint16{0}, Arguments: [][]byte{[]byte(arg)}})
			if err := fe.Flush(); err != nil {
				return err
			}
			for done := false; !done; {
				msg, err := fe.Receive()
				if err != nil {
					return err
				}
				switch m := msg.(type) {
				case *pgproto3.ErrorResponse:
					fmt.Fprintln(out, "error:", m.Message)
				case *pgproto3.FunctionCallResponse:
					fmt.Fprintln(out, "ok:", string(m.Result))
				case *pgproto3.ReadyForQuery:
					done = true
				}
			}
		}
	}
	return nil
}

func TestPostgresExtendedProtocol(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	c := testutil.StartFunc(t, p.workCg, "pgconn", p.host.Addr.String())
	if got := c.Recv(t); got != "connected" {
		t.Fatalf("client: %s", got)
	}
	ask := func(line string) string {
		t.Helper()
		c.Send(t, line)
		return c.Recv(t)
	}

	if got := ask("query 0 SELECT id, email, card_number FROM customers WHERE id = 1"); got != "ok: 1|***********.com|**** SELECT 1" {
		t.Errorf("masked text result: %s", got)
	}
	// A binary value cannot be partially masked: it is withheld.
	if got := ask("query 1 SELECT email FROM customers WHERE id = 1"); got != "ok: NULL SELECT 1" {
		t.Errorf("masked binary result: %s", got)
	}
	if got := ask("prepare d DROP TABLE customers"); !strings.Contains(got, "drop is denied") {
		t.Errorf("prepared DROP: %s", got)
	}
	if got := ask("prepare upd UPDATE orders SET amount = amount + 1 WHERE id = $1"); got != "ok: prepared" {
		t.Fatalf("prepare: %s", got)
	}
	if got := ask("exec upd 1"); got != "ok:  UPDATE 1" {
		t.Fatalf("first execution: %s", got)
	}

	// The policy changes under the prepared statement: its next execution
	// is decided again and refused, and the session goes on.
	cfg, _ := os.ReadFile(p.config)
	from := p.a.Mark()
	writeAtomically(t, p.config, strings.Replace(string(cfg), "allow: [select, insert, update, copy,", "allow: [select, insert, copy,", 1))
	p.a.WaitLine(t, from, func(l string) bool { return strings.Contains(l, "configuration reloaded") })
	if got := ask("exec upd 1"); !strings.Contains(got, "no rule allows update") {
		t.Errorf("execution after the policy change: %s", got)
	}
	if got := ask("query 0 SELECT count(*) FROM orders"); got != "ok: 2 SELECT 1" {
		t.Errorf("session after a denial: %s", got)
	}
	if n := p.pg.Exec(t, "orders", "SELECT amount FROM orders WHERE id = 1")[0][0]; n != "11" {
		t.Errorf("amount is %s: the denied execution ran, or the allowed one did not", n)
	}
}

// Every refusal a client is told of is an audit event, also those the
// policy is never asked about: a statement that does not parse (recorded
// by its length alone: its literals cannot be told from the rest), a name
// already prepared, and the protocol's function call.
func TestPostgresRefusalsAudited(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	from := p.a.Mark()
	if out, err := p.psql(t, "SELECT 'secret-literal"); err == nil {
		t.Fatalf("an unparsable statement ran: %s", out)
	}
	c := testutil.StartFunc(t, p.workCg, "pgconn", p.host.Addr.String())
	if got := c.Recv(t); got != "connected" {
		t.Fatalf("client: %s", got)
	}
	for _, line := range []string{"prepare p1 SELECT 1", "prepare p1 SELECT 2", "fcall 870 ABC"} {
		c.Send(t, line)
		t.Logf("%s: %s", line, c.Recv(t))
	}
	for _, want := range []struct{ text, reason string }{
		{"(not parsed: 22 bytes)", "cannot parse the statement: unterminated quoted string"},
		{"SELECT $1", `prepared statement "p1" already exists`},
		{"FUNCTION CALL pg_catalog.lower (oid 870)", "function"},
	} {
		ev := p.a.WaitEvent(t, from, func(ev intercept.Event) bool {
			return ev.Event == intercept.EventStatement && ev.Statement != nil && ev.Statement.Text == want.text && ev.Statement.Decision == "deny"
		})
		if !strings.Contains(ev.Statement.Reason, want.reason) {
			t.Errorf("%s: %+v", want.text, ev.Statement)
		}
	}
	for _, l := range p.a.Lines() {
		if strings.Contains(l, `"event":"statement"`) && strings.Contains(l, "secret-literal") {
			t.Fatalf("an unparsed statement's text reached the audit log: %s", l)
		}
	}
}

// pgbench drives the extended protocol hard (prepared statements, many
// round trips) through corral with masking on.
func TestPostgresPgbenchPrepared(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	bin := testutil.PostgresBin(t)
	if out, err := testutil.Command(t, p.agentCg, nil, filepath.Join(bin, "pgbench"), "-i", "-s", "1", "-q", "-h", p.pg.Dir, "-U", "postgres", "orders"); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	p.pg.Exec(t, "orders", "GRANT SELECT ON ALL TABLES IN SCHEMA public TO app")
	for _, mode := range []string{"simple", "extended", "prepared"} {
		out, err := testutil.Command(t, p.workCg, []string{"PGPASSWORD=x"}, filepath.Join(bin, "pgbench"),
			"-n", "-S", "-M", mode, "-c", "4", "-t", "200", "-h", p.host.Addr.String(), "-U", "whoever", "orders")
		if err != nil || !strings.Contains(out, "number of failed transactions: 0") {
			t.Fatalf("pgbench -M %s through corral: %v\n%s", mode, err, out)
		}
	}
}

// A cancel request arrives on a connection of its own, redirected to corral
// like any other; corral maps its key to the server's and passes it on.
func TestPostgresCancelRequest(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	from := p.a.Mark()
	cancelLongQuery(t, p)
	p.a.WaitLine(t, from, func(l string) bool {
		return strings.Contains(l, "cancel request passed on") && strings.Contains(l, "tls=false")
	})
}

// Where the session's upstream connection is encrypted, so is its cancel
// request: the key does not cross the network in the clear.
func TestPostgresCancelRequestTLSUpstream(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{TLSOnly: true, ServerName: "orders.test"}, "app", "app-secret-pw",
		"upstream_tls: {mode: verify-full, ca_file: CAFILE, server_name: orders.test}")
	from := p.a.Mark()
	cancelLongQuery(t, p)
	p.a.WaitLine(t, from, func(l string) bool {
		return strings.Contains(l, "cancel request passed on") && strings.Contains(l, "tls=true")
	})
}

// cancelLongQuery runs a long query through corral and cancels it.
func cancelLongQuery(t *testing.T, p *pgEnv) {
	t.Helper()
	c := testutil.StartFunc(t, p.workCg, "pgconn", p.host.Addr.String())
	if got := c.Recv(t); got != "connected" {
		t.Fatalf("client: %s", got)
	}
	c.Send(t, "start SELECT count(*) FROM generate_series(1, 200000000)")
	if got := c.Recv(t); got != "ok: started" {
		t.Fatal(got)
	}
	// Cancel only once the server is executing it (a cancel that arrives
	// while a backend reads the next protocol message is dropped by
	// PostgreSQL): it reports its activity, no event reaches the test, so
	// ask until the query has run a while, within a bound.
	deadline := time.Now().Add(20 * time.Second)
	for p.pg.Exec(t, "orders", "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%generate_series%' AND pid <> pg_backend_pid() AND now() - query_start > interval '300 ms'")[0][0] != "1" {
		if time.Now().After(deadline) {
			t.Fatal("the query never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.Send(t, "cancel")
	if got := c.Recv(t); got != "ok: cancel sent" {
		t.Fatal(got)
	}
	c.Send(t, "wait")
	if got := c.Recv(t); !strings.Contains(got, "canceling statement due to user request") {
		t.Fatalf("the long query was not cancelled: %s", got)
	}
}

// A driver may Close a named statement and Parse it again in one batch.
// The server carries out the Parse after the Close, or skips both after an
// error before them; corral's record of the name follows whichever
// happened. (corral hides what the server's errors quote.)
func TestPostgresStatementPreparedAgainInOneBatch(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	p.pg.Exec(t, "orders", seedRows)
	cases := []struct{ step, want string }{
		{"1 Parse n1:SELECT 1 | Sync", "ParseComplete, Z"},
		{"1 Close n1 | Parse n1:SELECT 2 | Bind :n1 | Execute  | Sync", "CloseComplete, ParseComplete, BindComplete, D[2], SELECT 1, Z"},
		// Skipped with its Close: the server keeps SELECT 2.
		{"1 Parse e1:SELECT * FROM no_such_table | Close n1 | Parse n1:SELECT 3 | Sync", `E 42P01 relation "****" does not exist, Z`},
		{"1 Bind :n1 | Execute  | Sync", "BindComplete, D[2], SELECT 1, Z"},
		{"1 Parse n1:SELECT 4 | Sync", `E 42501 corral: prepared statement "n1" already exists, Z`},
		// Closed, then skipped: the name holds nothing.
		{"1 Close n1 | Parse e2:SELECT * FROM no_such_table | Parse n1:SELECT 5 | Sync", `CloseComplete, E 42P01 relation "****" does not exist, Z`},
		{"1 Parse n1:SELECT 6 | Bind :n1 | Execute  | Sync", "ParseComplete, BindComplete, D[6], SELECT 1, Z"},
		// Twice in one batch, the second without a Close: the server refuses it.
		{"1 Close n1 | Parse n1:SELECT 7 | Parse n1:SELECT 8 | Sync", `CloseComplete, ParseComplete, E 42501 corral: prepared statement "n1" already exists, Z`},
		{"1 Bind :n1 | Execute  | Sync", "BindComplete, D[7], SELECT 1, Z"},
		// What is prepared again is decided as any Parse.
		{"1 Close n1 | Parse n1:DELETE FROM orders | Bind :n1 | Execute  | Sync", ""},
		// A refusal skipped with its Close leaves the server holding the
		// DELETE (held for review at Bind): no name may be given it again.
		{"1 Parse s:DELETE FROM orders | Sync", "ParseComplete, Z"},
		{"1 Parse e3:SELECT * FROM no_such_table | Close s | Parse s:DROP TABLE orders | Sync", `E 42P01 relation "****" does not exist, Z`},
		{"1 Parse s:SELECT 1 | Sync", `E 42501 corral: prepared statement "s" already exists, Z`},
		{"1 Query PREPARE s AS SELECT 1", `E 42501 corral: a statement named "s" is already prepared, Z`},
		{"1 Query EXECUTE s", `E 42501 corral: EXECUTE of "s", which was not prepared in this session, Z`},
		// Pipelined: the first batch is skipped, the second closes the
		// name and fails to prepare it again: the server holds nothing.
		{"1 Parse n2:SELECT 1 | Sync", "ParseComplete, Z"},
		{"2 Parse e4:SELECT * FROM no_such_table | Close n2 | Parse n2:SELECT 2 | Sync | Close n2 | Parse n2:SELECT no_such_column | Sync",
			`E 42P01 relation "****" does not exist, Z, CloseComplete, E 42703 column "****" does not exist, Z`},
		{"1 Parse n2:SELECT 3 | Bind :n2 | Execute  | Sync", "ParseComplete, BindComplete, D[3], SELECT 1, Z"},
	}
	var steps []string
	for _, c := range cases {
		steps = append(steps, c.step)
	}
	transcript := runSteps(t, p, "pg-raw", steps)
	t.Logf("%s", transcript)
	for i, line := range strings.Split(transcript, "\n") {
		_, got, _ := strings.Cut(line, " -> ")
		if want := cases[i].want; want != "" && got != want {
			t.Errorf("%s\n got: %s\nwant: %s", cases[i].step, got, want)
		}
	}
	if deleteTag.MatchString(transcript) {
		t.Errorf("a DELETE ran")
	}
	assertOrdersIntact(t, p)
}
