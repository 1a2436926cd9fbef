//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/internal/testutil"
)

const ordersSchema = `
CREATE TABLE customers (id int PRIMARY KEY, name text, email text, card_number text, note text);
INSERT INTO customers VALUES
  (1, 'Ada', 'ada@example.com', '4111 1111 1111 1111', 'call 555-123-4567'),
  (2, 'Grace', 'grace@example.org', '5500 0000 0000 0004', 'vip');
CREATE TABLE orders (id int PRIMARY KEY, customer_id int, amount numeric);
INSERT INTO orders VALUES (1, 1, 10), (2, 2, 20);
CREATE VIEW customer_contacts AS SELECT name, upper(email) AS contact FROM customers;
CREATE FUNCTION purge_orders() RETURNS void LANGUAGE sql AS $$DELETE FROM orders$$;
CREATE FUNCTION order_total() RETURNS numeric LANGUAGE sql STABLE AS $$SELECT sum(amount) FROM orders$$;
CREATE FUNCTION amount(numeric) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$SELECT round($1, 2)$$;
CREATE ROLE app LOGIN PASSWORD 'app-secret-pw';
CREATE ROLE clearuser LOGIN PASSWORD 'clear-secret-pw';
GRANT SELECT ON orders TO clearuser;
SET password_encryption = 'md5';
CREATE ROLE md5user LOGIN PASSWORD 'md5-secret-pw';
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO app, md5user;
`

type pgEnv struct {
	*env
	pg *testutil.Postgres
	a  *testutil.Agent
}

// newPGEnv starts PostgreSQL on a test host and corral protecting it, with
// the given credential (alias default) and upstream TLS settings.
func newPGEnv(t *testing.T, opts testutil.PostgresOptions, user, password, tls string) *pgEnv {
	t.Helper()
	return newPGEnvAt(t, opts, user, password, tls, func(h *testutil.Host) string { return addr(h.Addr, 5432) })
}

// newPGEnvAt is newPGEnv with the target's endpoint (ip:port, cidr:port)
// chosen from the test host; tls may carry more target settings, one per
// line.
func newPGEnvAt(t *testing.T, opts testutil.PostgresOptions, user, password, tls string, endpoint func(*testutil.Host) string) *pgEnv {
	t.Helper()
	return newPGEnvWith(t, opts, user, password, tls, endpoint, "")
}

// newPGEnvWith is newPGEnvAt with more top-level settings (YAML lines).
func newPGEnvWith(t *testing.T, opts testutil.PostgresOptions, user, password, tls string, endpoint func(*testutil.Host) string, extra string) *pgEnv {
	t.Helper()
	e := newEnv(t, func(h *testutil.Host) []string { return []string{addr(h.Addr, 5432)} })
	pg := testutil.StartPostgres(t, e.host, opts)
	pg.Exec(t, "postgres", "CREATE DATABASE orders")
	pg.Exec(t, "orders", ordersSchema)

	pw := filepath.Join(e.stateDir, "pw")
	os.WriteFile(pw, []byte(password+"\n"), 0o600)
	if tls == "" {
		tls = "upstream_tls: {mode: disable}" // the test server has no certificate
	}
	tls = strings.ReplaceAll(tls, "CAFILE", pg.CAFile)
	cfg := fmt.Sprintf(`targets:
  - name: orders-db
    protocol: postgres
    endpoints: [%q]
    credentials:
      default: {username: %s, password_file: %s}
    %s
rules:
  - name: app
    who: {cgroup: %q}
    targets: [orders-db]
    allow: [select, insert, update, copy, transaction, set, show]
    review: {operations: [delete], reviewers: ["group:dba"], timeout: 1s}
    deny: [drop, truncate, "copy program", "set role", do, function]
    mask:
      - {columns: [customers.email], method: partial}
      - {columns: [customers.card_number], method: redact}
      - {detect: [phone], method: redact}
audit_log: "-"
state_dir: %s
admin_socket: %[6]s/admin.sock
cgroup_path: %s
bpf_pin_dir: %s
log_level: debug
%s
`, endpoint(e.host), user, pw, tls, e.rel(e.workCg), e.stateDir, e.cgroup, e.pinDir, extra)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return &pgEnv{env: e, pg: pg, a: e.start(t)}
}

// psql runs psql as a workload in the covered cgroup. The workload gives
// a wrong password on purpose: corral admits it by what the kernel says it
// is, and logs in upstream with its own credential.
func (p *pgEnv) psql(t *testing.T, sql string) (string, error) {
	t.Helper()
	return testutil.Command(t, p.workCg, []string{"PGPASSWORD=not-the-password", "PGCONNECT_TIMEOUT=10", "PGSSLMODE=prefer"},
		"psql", "-X", "-w", "-At", "-v", "ON_ERROR_STOP=1", "-h", p.host.Addr.String(), "-U", "whoever", "-d", "orders", "-c", sql)
}

func (p *pgEnv) tableExists(t *testing.T, name string) bool {
	rows := p.pg.Exec(t, "orders", fmt.Sprintf("SELECT count(*) FROM pg_class WHERE relname = '%s'", name))
	return rows[0][0] == "1"
}

func TestPostgresInjectsCredentialsAndMasks(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")

	out, err := p.psql(t, "SELECT id, name, email, card_number, note FROM customers ORDER BY id")
	if err != nil {
		t.Fatalf("select: %v\n%s", err, out)
	}
	want := "1|Ada|***********.com|****|call ****\n2|Grace|*************.org|****|vip"
	if out != want {
		t.Errorf("masked result:\n%s\nwant:\n%s", out, want)
	}
	for _, secret := range []string{"ada@example.com", "4111", "555-123-4567", "app-secret-pw"} {
		if strings.Contains(out, secret) {
			t.Errorf("result leaks %q", secret)
		}
	}
	// The server saw corral's credential, not the workload's.
	if out, err := p.psql(t, "SELECT current_user"); err != nil || out != "app" {
		t.Errorf("current_user = %q (%v)", out, err)
	}

	ev := p.a.WaitEvent(t, 0, func(ev intercept.Event) bool {
		return ev.Event == intercept.EventStatement && ev.Statement != nil && strings.HasPrefix(ev.Statement.Text, "SELECT id, name")
	})
	if ev.Statement.Decision != "allow" || ev.Target != "orders-db" || ev.Protocol != "postgres" {
		t.Errorf("statement event %+v / %+v", ev, ev.Statement)
	}
	for _, l := range p.a.Lines() {
		if strings.Contains(l, "app-secret-pw") {
			t.Fatalf("the upstream password reached the agent's output: %s", l)
		}
	}
}

// Each row is a way to try to get around the policy; each must end up
// blocked, or masked.
func TestPostgresBypassAttempts(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	p.pg.Exec(t, "orders", `CREATE EXTENSION tablefunc; CREATE EXTENSION xml2;
CREATE VIEW order_report AS SELECT 1 AS n FROM (SELECT purge_orders()) x; GRANT SELECT ON order_report TO app;
CREATE VIEW become_clear AS SELECT set_config('role', 'clearuser', false) AS r; GRANT SELECT ON become_clear TO app; GRANT clearuser TO app;
CREATE MATERIALIZED VIEW order_snapshot AS SELECT 1 AS n FROM (SELECT purge_orders()) x WITH NO DATA;
CREATE MATERIALIZED VIEW order_count AS SELECT count(*) AS n FROM orders WITH NO DATA;
ALTER MATERIALIZED VIEW order_snapshot OWNER TO app; ALTER MATERIALIZED VIEW order_count OWNER TO app;
CREATE FUNCTION positive(n numeric) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT n > 0';
ALTER TABLE orders ADD CONSTRAINT amount_positive CHECK (positive(amount)); ALTER FUNCTION positive(numeric) OWNER TO app;
CREATE FUNCTION lonely() RETURNS int LANGUAGE sql AS 'SELECT 1'; ALTER FUNCTION lonely() OWNER TO app;
CREATE FUNCTION wipe_check(v text) RETURNS bool LANGUAGE sql AS 'DELETE FROM orders RETURNING true';
CREATE DOMAIN wiping AS text CHECK (wipe_check(VALUE)); CREATE DOMAIN wiping_too AS wiping;
CREATE DOMAIN wiping3 AS wiping_too; CREATE DOMAIN wiping4 AS wiping3; CREATE TYPE wiping_row AS (v wiping);
CREATE TYPE wiping_range AS RANGE (subtype = wiping);
CREATE FUNCTION pkey(n int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT n';
CREATE TABLE parted (n int) PARTITION BY RANGE (pkey(n)); ALTER FUNCTION pkey(int) OWNER TO app;
CREATE FUNCTION dflt() RETURNS text LANGUAGE sql STABLE AS 'SELECT current_user::text';
CREATE DOMAIN who AS text DEFAULT dflt(); ALTER FUNCTION dflt() OWNER TO app;
CREATE FUNCTION zzcmp(a int, b int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT btint4cmp(a, b)';
CREATE OPERATOR CLASS zz_ops FOR TYPE int4 USING btree AS OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >, FUNCTION 1 zzcmp(int, int);
CREATE TABLE tokens (t int); CREATE UNIQUE INDEX tokens_t_zz ON tokens (t zz_ops); ALTER FUNCTION zzcmp(int, int) OWNER TO app;
CREATE VIEW wiping_names AS SELECT name::wiping_too AS n FROM customers; GRANT SELECT ON wiping_names TO app;
CREATE VIEW wiping_rows AS SELECT ROW(name)::wiping_row AS n FROM customers; GRANT SELECT ON wiping_rows TO app;
CREATE FUNCTION gt_fn(a numeric, b numeric) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT a > b';
CREATE OPERATOR ### (FUNCTION = gt_fn, LEFTARG = numeric, RIGHTARG = numeric);
ALTER TABLE orders ADD CONSTRAINT amount_op CHECK (amount ### -1); ALTER FUNCTION gt_fn(numeric, numeric) OWNER TO app;
CREATE FUNCTION helper_fn(n numeric) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT n <> 13';
CREATE FUNCTION atomic_guard(n numeric) RETURNS bool LANGUAGE sql IMMUTABLE BEGIN ATOMIC SELECT helper_fn(n); END;
ALTER TABLE orders ADD CONSTRAINT amount_not13 CHECK (atomic_guard(amount)); ALTER FUNCTION helper_fn(numeric) OWNER TO app;
CREATE FUNCTION norm(e text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT lower(e)';
CREATE UNIQUE INDEX customers_email_norm ON customers (norm(email)); ALTER FUNCTION norm(text) OWNER TO app;
CREATE FUNCTION renamed_guard(n numeric) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT n < 1000';
ALTER TABLE orders ADD CONSTRAINT amount_small CHECK (renamed_guard(amount)); ALTER FUNCTION renamed_guard(numeric) OWNER TO app;
CREATE FUNCTION text_ok(n numeric) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT n <> 14';
CREATE FUNCTION order_guard() RETURNS trigger LANGUAGE plpgsql AS $g$BEGIN IF NOT text_ok(NEW.amount) THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END$g$;
CREATE TRIGGER orders_guard BEFORE INSERT OR UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION order_guard(); ALTER FUNCTION text_ok(numeric) OWNER TO app;
CREATE FUNCTION inner_ok(n numeric) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT n <> 15';
CREATE FUNCTION "INNER_OK"(n numeric) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT false'; ALTER FUNCTION "INNER_OK"(numeric) OWNER TO app;
CREATE FUNCTION outer_ok(n numeric) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT "INNER_OK"(n) OR inner_ok(n)';
ALTER TABLE orders ADD CONSTRAINT amount_not15 CHECK (outer_ok(amount)); ALTER FUNCTION inner_ok(numeric) OWNER TO app;
CREATE FUNCTION lt_fn(a numeric, b numeric) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT a < b';
CREATE OPERATOR <<< (FUNCTION = lt_fn, LEFTARG = numeric, RIGHTARG = numeric);
CREATE FUNCTION op_ok(n numeric) RETURNS bool LANGUAGE plpgsql IMMUTABLE AS $o$BEGIN RETURN n <<< 100000; END$o$;
ALTER TABLE orders ADD CONSTRAINT amount_op_ok CHECK (op_ok(amount)); ALTER FUNCTION lt_fn(numeric, numeric) OWNER TO app`)
	for _, c := range []struct {
		name, sql, reason string
	}{
		{"comment before DROP", "/* harmless */ DROP TABLE customers", "drop is denied"},
		{"mixed case", "dRoP tAbLe customers", "drop is denied"},
		{"quoted identifier", `DROP TABLE "customers"`, "drop is denied"},
		{"multi-statement", "SELECT 1; DROP TABLE customers", "drop is denied"},
		{"DROP inside DO", "DO $$BEGIN EXECUTE 'DROP TABLE customers'; END$$", "do is denied"},
		{"SET ROLE escape", "SET ROLE postgres", "set role is denied"},
		{"role through set_config", "SELECT set_config('role', 'postgres', false)", "set role is denied"},
		{"COPY PROGRAM", "COPY customers TO PROGRAM 'id'", "denied"},
		{"server file read", "SELECT pg_read_file('/etc/passwd')", "function is denied"},
		{"TRUNCATE", "TRUNCATE orders", "truncate is denied"},
		{"masked column via function", "SELECT lower(email) FROM customers", "customers.email"},
		{"concatenation", "SELECT card_number || '' FROM customers", "customers.card_number"},
		{"CTE", "WITH x AS (SELECT email FROM customers) SELECT * FROM x", "customers"},
		{"subquery", "SELECT * FROM (SELECT email FROM customers) s", "customers"},
		{"row_to_json", "SELECT row_to_json(c) FROM customers c", "whole row"},
		{"set operation", "SELECT email FROM customers UNION SELECT 'x'", "customers.email"},
		{"COPY TO STDOUT", "COPY customers TO STDOUT", "COPY"},
		{"COPY query TO STDOUT", "COPY (SELECT email FROM customers) TO STDOUT", "COPY"},
		{"unparsable", "SELEC * FRM customers", "cannot parse"},
		{"review nobody decides", "DELETE FROM orders", "expired: no reviewer decided within 1s"},
		{"DELETE inside a function of the database's own", "SELECT purge_orders()", "function is denied"},
		{"DELETE in SQL given as text", `SELECT * FROM crosstab('SELECT ''r''::text, ''c''::text, (SELECT count(*) FROM (SELECT purge_orders()) x)::text') AS t(r text, c text)`, "function is denied"},
		{"DELETE appended to xpath_table's arguments", `SELECT * FROM xpath_table('1', '''<a/>''', '(SELECT 1) z; DELETE FROM orders; SELECT 1, ''<a/>'' FROM (SELECT 1) y', '/a', 'true') AS t(k int, v text)`, "function is denied"},
		{"a view that runs a function of the database's own", "SELECT count(*) FROM order_report", "function is denied"},
		{"a view that switches the role", "SELECT * FROM become_clear", "set role is denied"},
		{"a cast to a domain whose check runs a function of the database's own", "SELECT 'x'::wiping_too", "function is denied"},
		{"a view casting to such a domain", "SELECT n FROM wiping_names", "function is denied"},
		{"a cast to a domain four deep", "SELECT 'x'::wiping4", "function is denied"},
		{"a cast to an array of the domain", "SELECT '{x}'::_wiping", "function is denied"},
		{"a cast to a row with a field of the domain", "SELECT '(x)'::wiping_row", "function is denied"},
		{"a view casting to such a row", "SELECT n FROM wiping_rows", "function is denied"},
		{"a cast to a range over the domain", "SELECT '[a,b]'::wiping_range", "function is denied"},
		{"a column definition list of the domain", `SELECT * FROM jsonb_to_record('{"d":"x"}') AS r(d wiping)`, "function is denied"},
		{"an xmltable column of the domain", `SELECT * FROM xmltable('/r' PASSING xmlparse(document '<r>v</r>') COLUMNS v wiping PATH '.')`, "function is denied"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := p.psql(t, c.sql)
			if err == nil {
				t.Fatalf("%q was not refused:\n%s", c.sql, out)
			}
			if !strings.Contains(out, "corral: ") || !strings.Contains(out, c.reason) {
				t.Errorf("%q: error does not say %q:\n%s", c.sql, c.reason, out)
			}
		})
	}
	// Values given for parameters declared of the domain are cast to it.
	for _, sql := range []string{"PREPARE typed_wipe(wiping) AS SELECT $1::text", "PREPARE typed_wipe(wiping_row) AS SELECT 1"} {
		if out, err := p.psql(t, sql); err == nil || !strings.Contains(out, "function is denied") {
			t.Errorf("%s: %v\n%s", sql, err, out)
		}
	}
	for _, typ := range []string{"wiping", "wiping4", "_wiping"} {
		oid := p.pg.Exec(t, "orders", "SELECT '"+typ+"'::regtype::oid")[0][0]
		out := runSteps(t, p, "pgconn-steps", []string{"typed " + oid + " SELECT $1::text"})
		if !strings.Contains(out, "function is denied") {
			t.Errorf("a parameter declared of %s:\n%s", typ, out)
		}
	}
	if !p.tableExists(t, "customers") {
		t.Fatal("customers was dropped")
	}
	if n := p.pg.Exec(t, "orders", "SELECT count(*) FROM orders")[0][0]; n != "2" {
		t.Fatalf("orders has %s rows", n)
	}
	// A function of the database's own is the function operation even
	// when it says it only reads: a STABLE function may call a VOLATILE
	// one, which writes.
	if out, err := p.psql(t, "SELECT order_total()"); err == nil || !strings.Contains(out, "function is denied") {
		t.Errorf("stable function: %q %v", out, err)
	}
	// A column named like one of those functions is only a column when the
	// function cannot take the row: o.amount is no call of amount(numeric).
	if out, err := p.psql(t, "SELECT o.amount FROM orders o WHERE o.id = 2"); err != nil || strings.TrimSpace(out) != "20" {
		t.Errorf("a column named like a function: %q %v", out, err)
	}

	// Ways around the column attribution that the parse tree does not
	// show: each comes back withheld (NULL) or masked, or is refused.
	for _, q := range []string{
		"SELECT e || '' FROM customers AS c(i, n, e)",
		"SELECT j.email || '' FROM (customers CROSS JOIN (SELECT 1) z) AS j",
		"SELECT s.e FROM (SELECT a.email || '' AS e FROM customers a) s, pg_am a",
		"SELECT contact FROM customer_contacts",
		"SELECT lower(contact) FROM customer_contacts",
		"SELECT * FROM (SELECT * FROM customer_contacts) v",
		"COPY (SELECT * FROM customer_contacts) TO STDOUT",
		"SELECT email INTO TEMP stolen FROM customers",
		"SELECT id FROM customers WHERE id = 1 AND email::int = 0",
		"SELECT x FROM json_to_recordset((SELECT json_agg(c) FROM customers c)) AS r(x text)",
	} {
		out, _ := p.psql(t, q)
		for _, secret := range []string{"ada@example.com", "ADA@EXAMPLE.COM", "grace@example.org", "GRACE@EXAMPLE.ORG", "4111"} {
			if strings.Contains(out, secret) {
				t.Errorf("%q leaks %q:\n%s", q, secret, out)
			}
		}
	}

	// Through a view: which of its columns come from where is unknown, so
	// all of a view's columns that read a masked column are masked.
	out, err := p.psql(t, "SELECT name, contact FROM customer_contacts ORDER BY name")
	if err != nil {
		t.Fatalf("view: %v\n%s", err, out)
	}
	if strings.Contains(out, "EXAMPLE.COM") || strings.Contains(out, "Ada") {
		t.Errorf("view result leaks: %s", out)
	}
	// SELECT * is attributed column by column: masked, not refused.
	out, err = p.psql(t, "SELECT * FROM customers WHERE email LIKE 'ada%'")
	if err != nil || !strings.HasPrefix(out, "1|Ada|***********.com|****|") {
		t.Errorf("select *: %v\n%s", err, out)
	}

	// Replacing a function a check calls switches the check off.
	allowAlso(t, p, "ddl")
	for _, sql := range []string{
		"CREATE OR REPLACE FUNCTION positive(n numeric) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT true'",
		// Through an operator, a function that parsed its body, an index.
		"CREATE OR REPLACE FUNCTION gt_fn(a numeric, b numeric) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT true'",
		"CREATE OR REPLACE FUNCTION helper_fn(n numeric) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT true'",
		"CREATE OR REPLACE FUNCTION norm(e text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT random()::text'",
		// A partition key, a domain's default, an operator class.
		"CREATE OR REPLACE FUNCTION pkey(n int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 0'",
		"CREATE OR REPLACE FUNCTION dflt() RETURNS text LANGUAGE sql STABLE AS 'SELECT ''nobody'''",
		"CREATE OR REPLACE FUNCTION zzcmp(a int, b int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 1'",
		// Renamed first, in the transaction: the catalog's connection
		// does not see the new name.
		"BEGIN; ALTER FUNCTION renamed_guard(numeric) RENAME TO renamed_now; CREATE OR REPLACE FUNCTION renamed_now(n numeric) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT true'; COMMIT",
		// Called by name from bodies kept as text: a trigger's PL/pgSQL,
		// a check's SQL function (under either case of its name), and a
		// PL/pgSQL body through an operator.
		"CREATE OR REPLACE FUNCTION text_ok(n numeric) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT true'",
		"CREATE OR REPLACE FUNCTION inner_ok(n numeric) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT true'",
		`CREATE OR REPLACE FUNCTION "INNER_OK"(n numeric) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT true'`,
		"CREATE OR REPLACE FUNCTION lt_fn(a numeric, b numeric) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT true'",
	} {
		if out, err := p.psql(t, sql); err == nil || !strings.Contains(out, "drop is denied") {
			t.Errorf("%s: %v\n%s", sql, err, out)
		}
	}
	p.pg.Exec(t, "orders", "GRANT CREATE ON SCHEMA public TO app")
	if out, err := p.psql(t, "CREATE OR REPLACE FUNCTION lonely() RETURNS int LANGUAGE sql AS 'SELECT 2'"); err != nil {
		t.Errorf("replacing a function nothing calls: %v\n%s", err, out)
	}

	// Refreshing a materialized view runs its query.
	allowAlso(t, p, "maintenance")
	if out, err := p.psql(t, "REFRESH MATERIALIZED VIEW order_snapshot"); err == nil || !strings.Contains(out, "function is denied") {
		t.Errorf("refresh of a view that runs a function of the database's own: %v\n%s", err, out)
	}
	if out, err := p.psql(t, "REFRESH MATERIALIZED VIEW order_count"); err != nil {
		t.Errorf("refresh of a view that runs none: %v\n%s", err, out)
	}
	if n := p.pg.Exec(t, "orders", "SELECT count(*) FROM orders")[0][0]; n != "2" {
		t.Fatalf("orders has %s rows", n)
	}
}

// A table's row security policies run for the rows a statement reads,
// and planning any statement on a table folds the constant parts of its
// indexes' expressions and predicates and of its extended statistics'
// expressions: code of the database's own there runs under a plain
// SELECT, of the table, its parent or a view over it.
func TestPostgresTablesRunCode(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	p.pg.Exec(t, "orders", `
CREATE TABLE calls (fn text); GRANT INSERT, SELECT ON calls TO app;
CREATE FUNCTION wipe(fn text) RETURNS bool LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO calls VALUES (fn); DELETE FROM orders WHERE id = 2; RETURN true; END$$;
CREATE FUNCTION by_policy() RETURNS bool LANGUAGE sql AS 'SELECT wipe(''by_policy'')';
CREATE TABLE notes (id int, body text); INSERT INTO notes VALUES (1, 'x');
ALTER TABLE notes ENABLE ROW LEVEL SECURITY; ALTER TABLE notes FORCE ROW LEVEL SECURITY;
CREATE POLICY p ON notes FOR SELECT USING (by_policy());
GRANT SELECT ON notes TO app;
CREATE VIEW note_view AS SELECT id FROM notes; GRANT SELECT ON note_view TO app;
-- "Immutable", so the planner folds it, calling what wipes.
CREATE FUNCTION k() RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$BEGIN PERFORM wipe('k'); RETURN 0; END$$;
CREATE TABLE memo (id int, body text); INSERT INTO memo VALUES (1, 'x');
CREATE INDEX memo_k ON memo ((id + k())); GRANT SELECT ON memo TO app;
CREATE TABLE memo_parent (id int, body text); ALTER TABLE memo INHERIT memo_parent; GRANT SELECT ON memo_parent TO app;
CREATE FUNCTION kp() RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$BEGIN PERFORM wipe('kp'); RETURN 0; END$$;
CREATE TABLE partial (id int); INSERT INTO partial VALUES (1);
CREATE INDEX partial_k ON partial (id) WHERE id > kp(); GRANT SELECT ON partial TO app;
-- A partition key, a child's check (constraint exclusion), a plain
-- table's check (once a session sets constraint_exclusion = on).
CREATE FUNCTION kpart() RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$BEGIN PERFORM wipe('kpart'); RETURN 0; END$$;
CREATE TABLE parted (id int, body text) PARTITION BY RANGE ((id + kpart()));
CREATE TABLE parted_all PARTITION OF parted FOR VALUES FROM (MINVALUE) TO (MAXVALUE);
INSERT INTO parted VALUES (1, 'x'); GRANT SELECT ON parted, parted_all TO app;
CREATE FUNCTION kc() RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$BEGIN PERFORM wipe('kc'); RETURN 0; END$$;
CREATE TABLE ce_parent (id int); CREATE TABLE ce_child (CHECK (id > kc())) INHERITS (ce_parent);
INSERT INTO ce_child VALUES (1); GRANT SELECT ON ce_parent, ce_child TO app;
CREATE FUNCTION kc2() RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$BEGIN PERFORM wipe('kc2'); RETURN 0; END$$;
CREATE TABLE ce_plain (id int CHECK (id > kc2())); INSERT INTO ce_plain VALUES (1); GRANT SELECT ON ce_plain TO app;
-- Policies that run SQL text, or read a view or a table that runs code.
CREATE TABLE qx (id int); INSERT INTO qx VALUES (1); ALTER TABLE qx ENABLE ROW LEVEL SECURITY;
CREATE POLICY p ON qx USING (query_to_xml('SELECT wipe(''qx'')', false, false, '') IS NOT NULL); GRANT SELECT ON qx TO app;
CREATE VIEW wiper AS SELECT wipe('viewpol') AS ok;
CREATE TABLE vp (id int); INSERT INTO vp VALUES (1); ALTER TABLE vp ENABLE ROW LEVEL SECURITY;
CREATE POLICY p ON vp USING (EXISTS (SELECT 1 FROM wiper WHERE ok)); GRANT SELECT ON vp TO app;
CREATE TABLE tp (id int); INSERT INTO tp VALUES (1); ALTER TABLE tp ENABLE ROW LEVEL SECURITY;
CREATE POLICY p ON tp USING (EXISTS (SELECT 1 FROM notes)); GRANT SELECT ON tp TO app;
-- A policy and an index over PostgreSQL's functions alone.
CREATE TABLE plain (id int, owner name DEFAULT current_user); INSERT INTO plain VALUES (1);
ALTER TABLE plain ENABLE ROW LEVEL SECURITY;
CREATE POLICY mine ON plain USING (owner = current_user OR true);
CREATE INDEX plain_lower ON plain (lower(owner)); GRANT SELECT ON plain TO app;
-- Indexes over a column through the database's functions: not folded.
CREATE FUNCTION norm(t text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$BEGIN PERFORM wipe('norm'); RETURN lower(t); END$$;
CREATE TABLE people (id int, name text); INSERT INTO people VALUES (1, 'Ada');
CREATE INDEX people_norm ON people (norm(name)); GRANT SELECT ON people TO app;
CREATE FUNCTION lower_i(text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT lower($1)';
CREATE TABLE users2 (id int, name text, CHECK (lower_i(name) <> '')); INSERT INTO users2 VALUES (1, 'Ada');
CREATE INDEX users2_n ON users2 (lower_i(name)); GRANT SELECT ON users2 TO app;
-- ... unless the planner inlines an SQL function bringing a constant call.
CREATE FUNCTION kw() RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$BEGIN PERFORM wipe('kw'); RETURN ''; END$$;
CREATE FUNCTION wrapk(t text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT t || kw()';
CREATE TABLE wrapped (id int, name text); INSERT INTO wrapped VALUES (1, 'Ada');
CREATE INDEX wrapped_k ON wrapped (wrapk(name)); GRANT SELECT ON wrapped TO app;
-- Arguments the planner makes constants: coalesce, CASE, OR; attribute
-- notation in an inlined body.
CREATE FUNCTION kco(t text) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$BEGIN PERFORM wipe('kco'); RETURN 0; END$$;
CREATE TABLE t_co (id int, name text); INSERT INTO t_co VALUES (1, 'x');
CREATE INDEX t_co_k ON t_co (kco(coalesce('k', name))); GRANT SELECT ON t_co TO app;
CREATE FUNCTION kcase(n int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$BEGIN PERFORM wipe('kcase'); RETURN 0; END$$;
CREATE TABLE t_case (id int); INSERT INTO t_case VALUES (1);
CREATE INDEX t_case_k ON t_case (id) WHERE id > kcase(CASE WHEN true THEN 0 ELSE id END); GRANT SELECT ON t_case TO app;
CREATE FUNCTION kattr(t text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$BEGIN PERFORM wipe('kattr'); RETURN ''; END$$;
CREATE FUNCTION wrapa(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT t || ('x'::text).kattr$$;
CREATE TABLE t_attr (id int, name text); INSERT INTO t_attr VALUES (1, 'x');
CREATE INDEX t_attr_k ON t_attr (wrapa(name)); GRANT SELECT ON t_attr TO app;
-- NULL operands of strict operators, and a row's field, are constants.
CREATE FUNCTION knull(t text) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$BEGIN PERFORM wipe('knull'); RETURN 0; END$$;
CREATE TABLE t_null (id int, name text); INSERT INTO t_null VALUES (1, 'x');
CREATE INDEX t_null_k ON t_null (knull(NULL::text || name)); GRANT SELECT ON t_null TO app;
CREATE TYPE pair AS (a text, b text);
CREATE FUNCTION kfs(t text) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$BEGIN PERFORM wipe('kfs'); RETURN 0; END$$;
CREATE TABLE t_fs (id int, name text); INSERT INTO t_fs VALUES (1, 'x');
CREATE INDEX t_fs_k ON t_fs (kfs((ROW(name, 'c')::pair).b)); GRANT SELECT ON t_fs TO app;
-- A policy whose WITH CHECK alone calls the database's function: reads
-- do not run it.
CREATE FUNCTION own_check() RETURNS bool LANGUAGE plpgsql AS $$BEGIN PERFORM wipe('own_check'); RETURN true; END$$;
CREATE TABLE t_wc (id int); INSERT INTO t_wc VALUES (1); ALTER TABLE t_wc ENABLE ROW LEVEL SECURITY;
CREATE POLICY p ON t_wc FOR ALL USING (true) WITH CHECK (own_check()); GRANT SELECT ON t_wc TO app;
DELETE FROM calls;
`)
	for _, c := range []struct{ name, sql, fn string }{
		{"a row security policy", "SELECT id, body FROM notes", "by_policy"},
		{"a view over a table with a policy", "SELECT id FROM note_view", "by_policy"},
		{"an index expression", "SELECT id, body FROM memo WHERE id = 1", "k"},
		{"a parent of a table with such an index", "SELECT id FROM memo_parent", "k"},
		{"an index predicate", "SELECT id FROM partial WHERE id = 1", "kp"},
		{"a partition key", "SELECT id FROM parted WHERE id = 1", "kpart"},
		{"a partition read alone", "SET constraint_exclusion = on; SELECT id FROM parted_all WHERE id = 1", "kpart"},
		{"a child's check", "SELECT id FROM ce_parent WHERE id = 1", "kc"},
		{"a check under constraint_exclusion = on", "SET constraint_exclusion = on; SELECT id FROM ce_plain WHERE id = 1", "kc2"},
		{"a policy running SQL text", "SELECT id FROM qx", "qx"},
		{"a policy reading a view", "SELECT id FROM vp", "viewpol"},
		{"a policy reading a table with a policy", "SELECT id FROM tp", "by_policy"},
		{"an inlined SQL function over a column", "SELECT id FROM wrapped WHERE id = 1", "kw"},
		{"an argument coalesce makes constant", "SELECT id FROM t_co WHERE id = 1", "kco"},
		{"an argument CASE makes constant", "SELECT id FROM t_case WHERE id = 1", "kcase"},
		{"attribute notation in an inlined body", "SELECT id FROM t_attr WHERE id = 1", "kattr"},
		{"a NULL operand", "SELECT id FROM t_null WHERE id = 1", "knull"},
		{"a row's field", "SELECT id FROM t_fs WHERE id = 1", "kfs"},
	} {
		t.Run(c.name, func(t *testing.T) {
			assertRunsNothing(t, p, c.sql, c.fn)
			if out, _ := p.psql(t, c.sql); !strings.Contains(out, "function is denied") {
				t.Errorf("not refused as the function operation:\n%s", out)
			}
		})
	}
	for _, sql := range []string{"SELECT id FROM plain", "SELECT id FROM people WHERE id = 1", "SELECT id FROM users2 WHERE id = 1", "SELECT id FROM t_wc"} {
		if out, err := p.psql(t, sql); err != nil || out != "1" {
			t.Errorf("%s: a table whose code runs per row, if at all: %v\n%s", sql, err, out)
		}
	}
	if n := p.pg.Exec(t, "orders", "SELECT count(*) FROM calls")[0][0]; n != "0" {
		t.Errorf("the database's functions ran %s times", n)
	}
	// Made after the answer was cached, outside corral.
	p.pg.Exec(t, "orders", `CREATE FUNCTION ks() RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$BEGIN PERFORM wipe('ks'); RETURN 0; END$$;
CREATE STATISTICS plain_s ON (id + ks()), id FROM plain`)
	time.Sleep(time.Second) // cached answers are checked against the catalog once a second
	t.Run("extended statistics made later", func(t *testing.T) {
		assertRunsNothing(t, p, "SELECT id FROM plain WHERE id = 1", "ks")
	})
}

// A type's default btree operator class and its casts are functions too:
// the server calls them under statements that name no operator, no
// function and no cast of the database's own (ORDER BY, DISTINCT, GROUP
// BY, UNION, array comparison, a cast to one of PostgreSQL's types, an
// assignment). The policy denies "function" and holds delete for review:
// none of these may run the database's own code, which here deletes
// orders.
func TestPostgresTypesRunCode(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	p.pg.Exec(t, "orders", `
CREATE TABLE calls (fn text); GRANT INSERT, SELECT ON calls TO app;
CREATE TABLE events (id int, payload json);
INSERT INTO events VALUES (1, '{"a":1}'), (2, '{"a":2}'), (3, '[3]');
GRANT SELECT, INSERT ON events TO app;
CREATE TABLE sink (n int); GRANT SELECT, INSERT ON sink TO app;
-- json sorts and groups by its text: a default btree class for json.
CREATE FUNCTION json_cmp(a json, b json) RETURNS int LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO calls VALUES ('json_cmp'); DELETE FROM orders WHERE id = 2; RETURN bttextcmp(a::text, b::text); END$$;
CREATE FUNCTION json_lt(a json, b json) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT a::text < b::text';
CREATE FUNCTION json_le(a json, b json) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT a::text <= b::text';
CREATE FUNCTION json_eq(a json, b json) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT a::text = b::text';
CREATE FUNCTION json_ge(a json, b json) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT a::text >= b::text';
CREATE FUNCTION json_gt(a json, b json) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT a::text > b::text';
CREATE OPERATOR <# (LEFTARG = json, RIGHTARG = json, FUNCTION = json_lt);
CREATE OPERATOR <=# (LEFTARG = json, RIGHTARG = json, FUNCTION = json_le);
CREATE OPERATOR =# (LEFTARG = json, RIGHTARG = json, FUNCTION = json_eq);
CREATE OPERATOR >=# (LEFTARG = json, RIGHTARG = json, FUNCTION = json_ge);
CREATE OPERATOR ># (LEFTARG = json, RIGHTARG = json, FUNCTION = json_gt);
CREATE OPERATOR CLASS json_text_ops DEFAULT FOR TYPE json USING btree AS
  OPERATOR 1 <#, OPERATOR 2 <=#, OPERATOR 3 =#, OPERATOR 4 >=#, OPERATOR 5 >#, FUNCTION 1 json_cmp(json, json);
-- A json document counts as its length, also when assigned to an int.
CREATE FUNCTION json_to_int(j json) RETURNS int LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO calls VALUES ('json_to_int'); DELETE FROM orders WHERE id = 2; RETURN length(j::text); END$$;
CREATE CAST (json AS int) WITH FUNCTION json_to_int(json) AS ASSIGNMENT;
-- And as its owner's id, as a bigint, for the reporting role.
GRANT clearuser TO app;
CREATE FUNCTION json_to_owner(j json) RETURNS bigint LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO calls VALUES ('json_to_owner'); PERFORM set_config('role', 'clearuser', false); RETURN 0; END$$;
CREATE CAST (json AS bigint) WITH FUNCTION json_to_owner(json);
-- A domain whose check is a function of the database's own, on a column.
CREATE FUNCTION tag_ok(v text) RETURNS bool LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO calls VALUES ('tag_ok'); DELETE FROM orders WHERE id = 2; RETURN true; END$$;
CREATE DOMAIN tag AS text CHECK (tag_ok(VALUE));
CREATE TABLE notes (id int, t tag); INSERT INTO notes VALUES (1, 'a'); GRANT SELECT ON notes TO app;
CREATE TABLE tagged (id int, tags tag[]); INSERT INTO tagged VALUES (1, '{a}'); GRANT SELECT ON tagged TO app;
CREATE EXTENSION hstore;
`)
	// The functions are the database's own: called by name, corral
	// refuses them as the function operation.
	if out := p.psqlSession(t, "SELECT json_to_int('{}')", "SELECT json_cmp('1', '2')", "SELECT json_to_owner('{}')"); strings.Count(out, "function is denied") != 3 {
		t.Fatalf("calling the functions by name was not refused:\n%s", out)
	}
	for _, c := range []struct{ name, sql, fn string }{
		{"ORDER BY a column of the type", "SELECT id FROM events ORDER BY payload", "json_cmp"},
		{"DISTINCT", "SELECT count(*) FROM (SELECT DISTINCT payload FROM events) d", "json_cmp"},
		{"GROUP BY", "SELECT count(*) FROM events GROUP BY payload", "json_cmp"},
		{"UNION", "SELECT count(*) FROM (SELECT payload FROM events UNION SELECT payload FROM events) u", "json_cmp"},
		{"window ORDER BY", "SELECT id, rank() OVER (ORDER BY payload) FROM events", "json_cmp"},
		{"array comparison", "SELECT id FROM events WHERE ARRAY[payload] < ARRAY[payload]", "json_cmp"},
		{"cast to one of PostgreSQL's types", "SELECT payload::int FROM events", "json_to_int"},
		{"CAST AS integer", "SELECT CAST(payload AS integer) FROM events", "json_to_int"},
		{"assignment to a column", "INSERT INTO sink (n) SELECT payload FROM events", "json_to_int"},
		{"a row of a table with a domain column, filled from json", `SELECT (jsonb_populate_record(n, '{"t":"b"}')).id FROM notes n`, "tag_ok"},
		{"filled from hstore", `SELECT (n #= 't=>zz'::hstore).id FROM notes n`, "tag_ok"},
		{"a literal read as a row holding the domain", "SELECT count(*) FROM notes n WHERE n IN ('(9,zz)', '(8,yy)')", "tag_ok"},
		{"a literal read as an array of the domain", "SELECT count(*) FROM tagged WHERE tags = '{zz}'", "tag_ok"},
		{"a cast written as a call", "SELECT tag('b')", "tag_ok"},
		{"a qualified cast written as a call", "SELECT public.tag(name) FROM customers", "tag_ok"},
		{"JSON() values sorted", "SELECT count(*) FROM (SELECT DISTINCT x FROM (VALUES (json('[1]')), (json('[2]')), (json('[1]'))) v(x)) d", "json_cmp"},
		{"JSON() assigned through the cast", "INSERT INTO sink (n) VALUES (json('[1,2]'))", "json_to_int"},
		{"a function's result sorted", "SELECT to_json(x) FROM generate_series(1, 3) x ORDER BY 1", "json_cmp"},
		{"a literal cast to the type and from it", "SELECT '{}'::json::int", "json_to_int"},
		{"an array of the type sorted", "SELECT ARRAY['[1]'::json] < ARRAY['[2]'::json]", "json_cmp"},
	} {
		t.Run(c.name, func(t *testing.T) { assertRunsNothing(t, p, c.sql, c.fn) })
	}
	// A parameter declared of the type, cast; one the server infers.
	t.Run("a parameter of the type", func(t *testing.T) {
		p.pg.Exec(t, "orders", seedRows+"DELETE FROM calls;")
		out := runSteps(t, p, "pgconn-steps", []string{"typed 114 SELECT $1::int", "typed 0 SELECT count(*) FROM tagged WHERE tags = $1"})
		if strings.Count(out, "function is denied") != 2 {
			t.Errorf("not refused:\n%s", out)
		}
		if ran := p.pg.Exec(t, "orders", "SELECT count(*) FROM calls")[0][0]; ran != "0" {
			t.Errorf("the database's functions ran %s times", ran)
		}
		assertOrdersIntact(t, p)
	})
	// What holds no such value still runs.
	if out, err := p.psql(t, "SELECT count(*) FROM orders GROUP BY customer_id ORDER BY 1"); err != nil {
		t.Errorf("a statement over other types: %v\n%s", err, out)
	}
	// A table whose rows hold a checked domain counts whatever is done
	// with them: the server infers where values become the domain.
	if out, err := p.psql(t, "SELECT t FROM notes"); err == nil || !strings.Contains(out, "function is denied") {
		t.Errorf("reading a column of a checked domain: %v\n%s", err, out)
	}
	// A cast from one of PostgreSQL's types to one of the database's
	// runs when a value becomes the latter: text stays plain text.
	p.pg.Exec(t, "orders", `CREATE TYPE mood AS ENUM ('ok', 'sad');
CREATE FUNCTION to_mood(v text) RETURNS mood LANGUAGE sql IMMUTABLE AS 'SELECT v::text::mood';
CREATE CAST (text AS mood) WITH FUNCTION to_mood(text) AS ASSIGNMENT`)
	if out, err := p.psql(t, "SELECT lower('X') || count(*) FROM orders"); err != nil || out != "x2" {
		t.Errorf("text, which a cast of the database's own takes to its type: %v\n%s", err, out)
	}
	// Made after the answer was cached, outside corral: a table holding
	// the type, and a domain checked with an operator of the database's
	// own.
	p.pg.Exec(t, "orders", `CREATE TABLE late (p json); INSERT INTO late VALUES ('1'), ('2'); GRANT SELECT ON late TO app;
CREATE FUNCTION ok2(a text, b text) RETURNS bool LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO calls VALUES ('ok2'); DELETE FROM orders WHERE id = 2; RETURN true; END$$;
CREATE OPERATOR ### (LEFTARG = text, RIGHTARG = text, FUNCTION = ok2);
CREATE DOMAIN tag2 AS text CHECK (VALUE ### 'x'); CREATE TABLE notes2 (id int, t tag2); GRANT SELECT ON notes2 TO app`)
	time.Sleep(time.Second) // cached answers are checked against the catalog once a second
	for _, c := range []struct{ sql, fn string }{
		{"SELECT count(*) FROM (SELECT DISTINCT p FROM late) d", "json_cmp"},
		{`SELECT (jsonb_populate_record(n, '{"t":"b"}')).id FROM notes2 n`, "ok2"},
	} {
		p.pg.Exec(t, "orders", seedRows+"DELETE FROM calls;")
		out := p.psqlSession(t, c.sql)
		if ran := p.pg.Exec(t, "orders", "SELECT count(*) FROM calls WHERE fn = '"+c.fn+"'")[0][0]; ran != "0" {
			t.Errorf("%q ran %s() %s times; corral said:\n%s", c.sql, c.fn, ran, out)
		}
		assertOrdersIntact(t, p)
	}
	// The same, through a cast that switches the role (set role is denied).
	t.Run("cast that switches the role", func(t *testing.T) {
		p.pg.Exec(t, "orders", "DELETE FROM calls")
		out := p.psqlSession(t, "SELECT payload::bigint FROM events WHERE id = 1; SELECT 'now:' || current_user")
		t.Logf("%s", out)
		if strings.Contains(out, "now:clearuser") {
			t.Errorf("the session switched to role clearuser through a cast (set role is denied):\n%s", out)
		}
		if ran := p.pg.Exec(t, "orders", "SELECT count(*) FROM calls WHERE fn = 'json_to_owner'")[0][0]; ran != "0" {
			t.Errorf("json_to_owner() ran %s times", ran)
		}
	})
	// A multirange of the type; an operator IN uses without naming it.
	t.Run("multirange and IN", func(t *testing.T) {
		p.pg.Exec(t, "orders", seedRows+`DELETE FROM calls;
CREATE TYPE jrange AS RANGE (subtype = json, multirange_type_name = jmulti);
CREATE TABLE mr (m jmulti); INSERT INTO mr VALUES ('{["[1]","[2]"]}'), ('{["[3]","[4]"]}'); GRANT SELECT ON mr TO app;
CREATE TYPE color AS ENUM ('red', 'blue');
CREATE FUNCTION color_eq(a color, b color) RETURNS bool LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO calls VALUES ('color_eq'); DELETE FROM orders WHERE id = 2; RETURN a::text = b::text; END$$;
CREATE OPERATOR = (LEFTARG = color, RIGHTARG = color, FUNCTION = color_eq);
CREATE TABLE paints (c color); INSERT INTO paints VALUES ('red'); GRANT SELECT ON paints TO app`)
		// The multirange's input sorted its ranges; cached answers are
		// checked against the catalog once a second.
		p.pg.Exec(t, "orders", seedRows+"DELETE FROM calls")
		time.Sleep(time.Second)
		out := p.psqlSession(t, "SELECT count(*) FROM (SELECT DISTINCT m FROM mr) d", "SELECT count(*) FROM paints WHERE c IN (SELECT c FROM paints)")
		if ran := p.pg.Exec(t, "orders", "SELECT count(*) FROM calls")[0][0]; ran != "0" || strings.Count(out, "function is denied") != 2 {
			t.Errorf("the database's functions ran %s times; corral said:\n%s", ran, out)
		}
		assertOrdersIntact(t, p)
	})
	// A type of the database's shadowing one of PostgreSQL's through
	// search_path, with a cast of its own to it.
	t.Run("a type shadowing PostgreSQL's", func(t *testing.T) {
		p.pg.Exec(t, "orders", `CREATE TYPE public.uuid AS (v text);
CREATE FUNCTION zz_touuid(t text) RETURNS public.uuid LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO calls VALUES ('zz_touuid'); DELETE FROM orders WHERE id = 2; RETURN ROW(t)::public.uuid; END$$;
CREATE CAST (text AS public.uuid) WITH FUNCTION zz_touuid(text)`)
		p.pg.Exec(t, "orders", seedRows+"DELETE FROM calls")
		time.Sleep(time.Second) // cached answers are checked against the catalog once a second
		out := p.psqlSession(t, "SET search_path = public, pg_catalog", "SELECT 'x'::text::uuid")
		if ran := p.pg.Exec(t, "orders", "SELECT count(*) FROM calls")[0][0]; ran != "0" || !strings.Contains(out, "function is denied") {
			t.Errorf("the database's functions ran %s times; corral said:\n%s", ran, out)
		}
		assertOrdersIntact(t, p)
	})
	// A table made in the open transaction, out of the catalog's sight.
	t.Run("a table made in the transaction", func(t *testing.T) {
		p.pg.Exec(t, "orders", seedRows+"DELETE FROM calls; GRANT CREATE ON SCHEMA public TO app")
		allowAlso(t, p, "ddl")
		out := p.psqlSession(t, "BEGIN; CREATE DOMAIN jd AS json; CREATE TABLE fresh (p jd); INSERT INTO fresh VALUES ('1'), ('2'); SELECT count(*) FROM (SELECT DISTINCT p FROM fresh) d; COMMIT")
		if ran := p.pg.Exec(t, "orders", "SELECT count(*) FROM calls")[0][0]; ran != "0" || !strings.Contains(out, "function is denied") {
			t.Errorf("the database's functions ran %s times; corral said:\n%s", ran, out)
		}
		assertOrdersIntact(t, p)
		// A type made in the transaction on none of those, and a table of
		// it, are used as they are made.
		if out := p.psqlSession(t, "BEGIN", "CREATE TYPE mood2 AS ENUM ('a', 'b')", "CREATE TABLE moods2 (m mood2)",
			"INSERT INTO moods2 VALUES ('a')", "SELECT count(*) FROM moods2", "COMMIT"); strings.Contains(out, "corral") || !strings.HasSuffix(out, "COMMIT") {
			t.Errorf("an enum and a table of it made and used in a transaction:\n%s", out)
		}
		// One of other types is used as it is made.
		// (Its rows are withheld while masks apply: the catalog does not
		// know the table yet.)
		if out := p.psqlSession(t, "BEGIN", "CREATE TABLE plain (a int)", "INSERT INTO plain VALUES (1)", "SELECT count(*) FROM plain", "COMMIT"); strings.Contains(out, "corral") || !strings.HasSuffix(out, "COMMIT") {
			t.Errorf("a table of int made and used in a transaction:\n%s", out)
		}
	})
}

// In a database that binds no code to types, DDL in a transaction runs
// as it would elsewhere: a domain with a check of PostgreSQL's own, a
// table of it, and the statements after them, COMMIT too.
func TestPostgresDDLInTransaction(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	p.pg.Exec(t, "orders", "GRANT CREATE ON SCHEMA public TO app")
	allowAlso(t, p, "ddl")
	out := p.psqlSession(t, "BEGIN", "CREATE DOMAIN posint AS int CHECK (VALUE > 0)", "CREATE TABLE counts (n posint)",
		"INSERT INTO counts VALUES (1)", "SELECT count(*) FROM counts", "COMMIT")
	if strings.Contains(out, "corral") || !strings.HasSuffix(out, "COMMIT") {
		t.Errorf("DDL in a transaction:\n%s", out)
	}
	if !p.tableExists(t, "counts") {
		t.Error("the transaction did not commit")
	}
}

// assertRunsNothing runs sql through corral from the seeded rows and
// fails if the database's function fn ran (it records each call in the
// calls table and deletes an orders row; the policy denies function and
// reviews delete).
func assertRunsNothing(t *testing.T, p *pgEnv, sql, fn string) {
	t.Helper()
	p.pg.Exec(t, "orders", seedRows+"DELETE FROM calls;")
	out := p.psqlSession(t, sql)
	t.Logf("%s -> %s", sql, out)
	if ran := p.pg.Exec(t, "orders", "SELECT count(*) FROM calls WHERE fn = '"+fn+"'")[0][0]; ran != "0" {
		t.Errorf("%q ran %s() %s times, which deletes orders; corral said:\n%s", sql, fn, ran, out)
	}
	assertOrdersIntact(t, p)
}

// A denied statement inside a transaction fails the server's transaction
// too: the COMMIT commits nothing, and client and server agree.
func TestPostgresDeniedStatementAbortsTransaction(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	out, err := testutil.Command(t, p.workCg, []string{"PGPASSWORD=x"}, "sh", "-c", fmt.Sprintf(
		`printf '%%s\n' 'BEGIN;' 'INSERT INTO orders VALUES (3, 1, 30);' 'DROP TABLE customers;' 'COMMIT;' | psql -X -w -h %s -U whoever -d orders`, p.host.Addr))
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	if !strings.Contains(out, "drop is denied") || !strings.Contains(out, "ROLLBACK") {
		t.Errorf("psql output:\n%s\nwant the denial and COMMIT answered by ROLLBACK", out)
	}
	if n := p.pg.Exec(t, "orders", "SELECT count(*) FROM orders WHERE id = 3")[0][0]; n != "0" {
		t.Fatal("the insert before the denied statement was committed")
	}
}

func TestPostgresMD5Upstream(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "md5user", "md5-secret-pw", "")
	out, err := p.psql(t, "SELECT current_user, count(*) FROM orders")
	if err != nil || out != "md5user|2" {
		t.Fatalf("md5 upstream: %q %v", out, err)
	}
}

// A server that asks for the password in clear gets it only when it
// proved who it is (TLS verify-full here) or the target allows it in so
// many words; otherwise pgconn refuses before sending anything, and the
// workload is told why.
func TestPostgresCleartextPasswordOnlyToAVerifiedServer(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "clearuser", "clear-secret-pw", "")
	out, err := p.psql(t, "SELECT current_user")
	if err == nil || !strings.Contains(out, `the server asked for an authentication method target "orders-db" does not allow`) ||
		!strings.Contains(out, "server requested password authentication") || strings.Contains(out, "clear-secret-pw") {
		t.Fatalf("a server asking for the password in clear, without TLS: %q %v", out, err)
	}

	p = newPGEnv(t, testutil.PostgresOptions{}, "clearuser", "clear-secret-pw", "upstream_tls: {mode: disable}\n    upstream_auth: [scram-sha-256, password]")
	if out, err := p.psql(t, "SELECT current_user"); err != nil || out != "clearuser" {
		t.Fatalf("upstream_auth allowing password: %q %v", out, err)
	}

	p = newPGEnv(t, testutil.PostgresOptions{TLSOnly: true, ServerName: "orders.test"}, "clearuser", "clear-secret-pw",
		"upstream_tls: {mode: verify-full, ca_file: CAFILE, server_name: orders.test}")
	if out, err := p.psql(t, "SELECT current_user"); err != nil || out != "clearuser" {
		t.Fatalf("a verified server asking for the password in clear: %q %v", out, err)
	}
}

func TestPostgresTLSVerifyFullUpstream(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{TLSOnly: true, ServerName: "orders.test"}, "app", "app-secret-pw",
		"upstream_tls: {mode: verify-full, ca_file: CAFILE, server_name: orders.test}")
	out, err := p.psql(t, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
	if err != nil || out != "t" {
		t.Fatalf("TLS upstream: %q %v", out, err)
	}
}

func TestPostgresTLSVerifyFullRefusesWrongName(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{TLSOnly: true, ServerName: "orders.test"}, "app", "app-secret-pw",
		"upstream_tls: {mode: verify-full, ca_file: CAFILE, server_name: impostor.test}")
	out, err := p.psql(t, "SELECT 1")
	if err == nil || !strings.Contains(out, "corral could not open the database") {
		t.Fatalf("a server with the wrong name was accepted: %q %v", out, err)
	}
}

// A target may pin the databases its sessions open: the credential may
// reach others on the same server, the workload may not. The database a
// session opened, or was refused, is in its events.
func TestPostgresDatabases(t *testing.T) {
	p := newPGEnvAt(t, testutil.PostgresOptions{}, "app", "app-secret-pw",
		"upstream_tls: {mode: disable}\n    databases: [orders]",
		func(h *testutil.Host) string { return addr(h.Addr, 5432) })
	p.pg.Exec(t, "postgres", "CREATE TABLE IF NOT EXISTS secrets (s text); GRANT SELECT ON secrets TO app")

	from := p.a.Mark()
	if out, err := p.psqlWith(t, "", "SELECT current_database()"); err != nil || !strings.HasSuffix(out, "orders") {
		t.Fatalf("the listed database: %q %v", out, err)
	}
	ev := p.a.WaitEvent(t, from, func(ev intercept.Event) bool { return ev.Event == intercept.EventClose })
	if ev.Database != "orders" {
		t.Errorf("close event names database %q, want orders", ev.Database)
	}
	from = p.a.Mark()
	out, err := p.psqlWith(t, "dbname=postgres", "SELECT s FROM secrets")
	if err == nil || !strings.Contains(out, `corral: target orders-db does not open database "postgres"`) {
		t.Fatalf("another database: %q %v", out, err)
	}
	ev = p.a.WaitEvent(t, from, func(ev intercept.Event) bool { return ev.Event == intercept.EventDeny })
	if ev.Database != "postgres" {
		t.Errorf("deny event names database %q, want postgres", ev.Database)
	}
}

// newerSyntaxSetup gives the database functions of its own whose names
// PostgreSQL 17's grammar (corral's parser) reads as SQL/JSON syntax,
// MERGE's support function or a SQL value function, while the
// PostgreSQL 15 server reads the same text as plain calls of them (or a
// relation of the name). Each records its call and deletes an orders row.
const newerSyntaxSetup = `
CREATE TABLE calls (fn text); GRANT INSERT, SELECT ON calls TO app;
CREATE FUNCTION zz_wipe(fn text) RETURNS text LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO calls VALUES (fn); DELETE FROM orders WHERE id = 2; RETURN fn; END$$;
CREATE FUNCTION json_value(a text, b text) RETURNS text LANGUAGE plpgsql AS $$BEGIN RETURN zz_wipe('json_value'); END$$;
CREATE FUNCTION json_query(a text, b text) RETURNS text LANGUAGE plpgsql AS $$BEGIN RETURN zz_wipe('json_query'); END$$;
CREATE FUNCTION json_exists(a text, b text) RETURNS text LANGUAGE plpgsql AS $$BEGIN RETURN zz_wipe('json_exists'); END$$;
CREATE FUNCTION json_scalar(a int) RETURNS text LANGUAGE plpgsql AS $$BEGIN RETURN zz_wipe('json_scalar'); END$$;
CREATE FUNCTION json_serialize(a text) RETURNS text LANGUAGE plpgsql AS $$BEGIN RETURN zz_wipe('json_serialize'); END$$;
CREATE FUNCTION json_array(a int, b int) RETURNS text LANGUAGE plpgsql AS $$BEGIN RETURN zz_wipe('json_array'); END$$;
CREATE FUNCTION json(a text) RETURNS text LANGUAGE plpgsql AS $$BEGIN RETURN zz_wipe('json'); END$$;
CREATE FUNCTION merge_action() RETURNS text LANGUAGE plpgsql AS $$BEGIN RETURN zz_wipe('merge_action'); END$$;
CREATE FUNCTION zz_agg_step(s int, v int) RETURNS int LANGUAGE plpgsql AS $$BEGIN PERFORM zz_wipe('json_arrayagg'); RETURN 0; END$$;
CREATE AGGREGATE json_arrayagg(int) (SFUNC = zz_agg_step, STYPE = int, INITCOND = '0');
CREATE VIEW system_user AS SELECT zz_wipe('system_user') AS n; GRANT SELECT ON system_user TO app;
GRANT clearuser TO app;
CREATE FUNCTION zz_become() RETURNS text LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO calls VALUES ('become'); PERFORM set_config('role', 'clearuser', false); RETURN 'became'; END$$;
CREATE SCHEMA zz; GRANT USAGE ON SCHEMA zz TO app;
CREATE FUNCTION zz.merge_action() RETURNS text LANGUAGE sql AS 'SELECT public.zz_become()';
`

// corral parses with PostgreSQL 17's grammar; a PostgreSQL 15 server
// reads SQL/JSON syntax, MERGE_ACTION() and FROM SYSTEM_USER as calls of
// functions (or a relation) of those names, which the database may have
// made: they run nothing of its own (policy: function denied, delete
// reviewed).
func TestPostgresSyntaxNewerThanTheServer(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	p.pg.Exec(t, "orders", newerSyntaxSetup)
	// Called under their own names, corral refuses them.
	if out := p.psqlSession(t, "SELECT zz_wipe('x')"); !strings.Contains(out, "function is denied") {
		t.Fatalf("a direct call was not refused:\n%s", out)
	}
	for _, c := range []struct{ name, sql, fn string }{
		{"JSON_VALUE read as a call of json_value", "SELECT json_value('1', '$')", "json_value"},
		{"JSON_QUERY read as a call of json_query", "SELECT json_query('1', '$')", "json_query"},
		{"JSON_EXISTS read as a call of json_exists", "SELECT json_exists('1', '$')", "json_exists"},
		{"JSON_SCALAR read as a call of json_scalar", "SELECT json_scalar(1)", "json_scalar"},
		{"JSON_SERIALIZE read as a call of json_serialize", "SELECT json_serialize('1')", "json_serialize"},
		{"JSON_ARRAY read as a call of json_array", "SELECT json_array(1, 2)", "json_array"},
		{"JSON() read as a call of json", "SELECT json('[1]'::text)", "json"},
		{"MERGE_ACTION() outside MERGE read as a call", "SELECT merge_action()", "merge_action"},
		{"JSON_ARRAYAGG read as an aggregate of the database's own", "SELECT json_arrayagg(id) FROM orders", "json_arrayagg"},
		{"FROM SYSTEM_USER read as a view", "SELECT * FROM system_user", "system_user"},
		{"JSON_VALUE in FROM", "SELECT * FROM json_value('1', '$')", "json_value"},
	} {
		t.Run(c.name, func(t *testing.T) { assertRunsNothing(t, p, c.sql, c.fn) })
	}
	// The same through a search path naming another schema first: the
	// role switches (set role is denied).
	t.Run("MERGE_ACTION() switching the role", func(t *testing.T) {
		p.pg.Exec(t, "orders", seedRows+"DELETE FROM calls;")
		out := p.psqlSession(t, "SET search_path = zz, public", "SELECT merge_action()", "SELECT 'now:' || current_user")
		t.Logf("%s", out)
		if strings.Contains(out, "now:clearuser") {
			t.Errorf("the session switched to role clearuser (set role is denied):\n%s", out)
		}
	})
}
