package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Statement is one SQL statement as PostgreSQL's own parser sees it.
type Statement struct {
	Text        string
	Fingerprint string
	Command     string   // SELECT, INSERT, DROP, ...
	Ops         []string // policy vocabulary words, sorted, distinct
	Tables      []string // relations named anywhere (schema.table when qualified)
	Functions   []string // functions called anywhere
	HasWhere    bool     // an UPDATE or DELETE whose every UPDATE and DELETE has a WHERE clause
	CopyOut     bool     // COPY ... TO STDOUT: rows leave as CopyData, not DataRow
	CopyIn      bool     // COPY ... FROM STDIN: the server then reads CopyData
	// Settings the statement changes in the session (SET, set_config;
	// RESET ALL as "all"); "*" when the name is not a literal. RESET of
	// one setting returns it to the session's default and is no change.
	Sets []string
	// defaults: settings given elsewhere (ALTER ROLE/DATABASE/SYSTEM ...
	// SET, a function's SET clause): of later sessions, or of a function's
	// run.
	defaults []string
	// SQL-level PREPARE name AS ..., EXECUTE name, DEALLOCATE name ("" for ALL).
	Prepares, Executes, Deallocates string
	DeallocateAll                   bool
	// Cursors: DECLARE name, FETCH or MOVE name, CLOSE name ("" for ALL).
	Declares, Fetches, Closes string
	ClosesAll                 bool

	// renames: the statement renames, or moves to another schema, the
	// relations it names or their columns; renamesSchema: it renames a
	// schema. rollsBack: ROLLBACK TO SAVEPOINT, which brings back the
	// portals bound before the savepoint.
	renames, renamesSchema, rollsBack bool
	refs                              []colRef
	// rowFns are the filter terms (colRef.unit) holding a window
	// function, an aggregate, a set-returning or volatile function (see
	// rowFunctions): a value that varies with other rows without naming
	// a column of them.
	rowFns map[int]bool
	// sources counts the row sources the statement's scopes hold (each
	// relation named in FROM, USING or as an UPDATE's or DELETE's
	// target, each function, subquery or table function in FROM): with
	// one, every column reference is of it.
	sources int
	aliases map[string][]string // alias or relation name -> the relations it names, in any scope
	// renamed: relations given column aliases (FROM t AS a(x, y)), whose
	// columns then go by other names.
	renamed []string
	// literalSensitive: the classification reads a literal (SET's
	// variable, set_config's name, COPY's file), so two statements with the
	// same fingerprint may differ in meaning and must not share it.
	literalSensitive bool
	// decidedOps are the operations the statement was last decided with:
	// Ops and what the session found besides (the database's own code,
	// what EXECUTE or FETCH run). A name keeps them for what runs later.
	decidedOps []string
	// callOID is the function the protocol's function call names (0: the
	// statement is SQL).
	callOID uint32
	// unbounded: an UPDATE or DELETE somewhere in the statement has no
	// WHERE (HasWhere is false then).
	unbounded  bool
	normalized string // Text with literals replaced, for the audit log (filled lazily)
	// fromFunction: rows come from a function in FROM, whose columns no
	// table vouches for.
	fromFunction bool
	// Into: the result goes into a new table (SELECT INTO, CREATE TABLE AS),
	// where masking no longer applies.
	Into bool
	// CopyTo: COPY ... TO anywhere (the client, a file, a program).
	CopyTo bool
	// Calls are the flagged functions called (by name or attribute notation).
	Calls []string
	// Returning: the statement returns rows it changed (RETURNING).
	Returning bool
	// writes: the statement, or one nested in it, puts values into a
	// table.
	writes bool
	// operators are the operators the statement uses, and casts the types
	// it casts to: each may be a function, which the catalog tells.
	operators, casts []string
	// facts are the catalog's answers for this statement, asked once
	// per decision (see session.functionFacts).
	facts facts
	// risky is the session's finding for this statement (set when it is
	// decided): its rows may carry masked data no table vouches for.
	risky bool
	// positions: ORDER BY or GROUP BY names an output column by its
	// position, which the fast key does not keep (see fastCacheable).
	positions bool
	// reorders: CLUSTER, or ALTER TABLE ... CLUSTER ON, which lays a
	// table's rows out in the order of an index.
	reorders bool
	// hooked are the relations a rule or trigger is made on: its actions,
	// and a trigger function's arguments (column names as strings), see
	// every row written there.
	hooked []string
	// lossyParams: parameters are declared of a type a column compared
	// with them may be rounded to or compared loosely as (Parse's or
	// PREPARE's types; see lossyParam).
	lossyParams bool
	// attrNames are the names after a dot in column references and
	// (expr).name: each may call a function by attribute notation
	// (t.fn is fn(t)), which the catalog tells.
	attrNames []string
	// commits: COMMIT (END), which runs a WITH HOLD cursor's query to
	// its end (or PREPARE TRANSACTION).
	commits bool
	// bindsTypeCode: the statement may bind functions to a type, for the
	// server to run without a name in the statements that use it (a
	// cast with a function, a default operator class, a domain's check),
	// or to a table, for those that read it (a row security policy, an
	// index's or extended statistics' expressions, a check, a partition
	// key; see catalog.typeCode). It does when they are the database's own,
	// as deciding it tells.
	bindsTypeCode bool
	// columnTypes are the types the statement builds on: its columns'
	// (CREATE TABLE, ADD COLUMN, CREATE TYPE AS), a domain's base, a
	// range's subtype; by the last part of their names.
	columnTypes []string
	// shadowCasts are the casts to PostgreSQL's types by names a type of
	// the database's may shadow (see session.functionFacts).
	shadowCasts []string
	// allCasts are the types the statement casts to, PostgreSQL's own too
	// (the last part of each name, or "#" and the OID of a Parse's
	// parameter type): the database may cast from a type to one of them
	// with its own code (see catalog.typeCode).
	allCasts []string
	// fnNames is functionNames of the statement, made once with its
	// classification (which is cached): every decision asks the catalog
	// about them.
	fnNames []string
	// defines are the names of the functions, operators and types the
	// statement makes, changes or renames to (see session.window).
	defines []string
	// replacesFunction: CREATE OR REPLACE FUNCTION, which changes what
	// everything calling an existing one does (see session.decide).
	replacesFunction bool
}

// definedNames returns the names of the functions, operators and types a
// statement makes, changes or renames to: the last part of each name, as
// functionNames has them.
func definedNames(n *pg.Node) []string {
	last := func(parts []*pg.Node) string { return lastName(funcName(parts)) }
	var out []string
	switch {
	case n.GetCreateFunctionStmt() != nil:
		out = append(out, last(n.GetCreateFunctionStmt().GetFuncname()))
	case n.GetAlterFunctionStmt() != nil:
		out = append(out, last(n.GetAlterFunctionStmt().GetFunc().GetObjname()))
	case n.GetDefineStmt() != nil: // operators, aggregates, types
		out = append(out, last(n.GetDefineStmt().GetDefnames()))
	case n.GetCompositeTypeStmt() != nil:
		out = append(out, n.GetCompositeTypeStmt().GetTypevar().GetRelname())
	case n.GetCreateEnumStmt() != nil:
		out = append(out, last(n.GetCreateEnumStmt().GetTypeName()))
	case n.GetCreateRangeStmt() != nil:
		out = append(out, last(n.GetCreateRangeStmt().GetTypeName()))
	case n.GetCreateDomainStmt() != nil:
		out = append(out, last(n.GetCreateDomainStmt().GetDomainname()))
	case n.GetCreateCastStmt() != nil:
		out = append(out, last(n.GetCreateCastStmt().GetTargettype().GetNames()))
	case n.GetRenameStmt() != nil:
		switch n.GetRenameStmt().GetRenameType() {
		case pg.ObjectType_OBJECT_COLUMN, pg.ObjectType_OBJECT_ATTRIBUTE, pg.ObjectType_OBJECT_TABCONSTRAINT,
			pg.ObjectType_OBJECT_DOMCONSTRAINT, pg.ObjectType_OBJECT_INDEX, pg.ObjectType_OBJECT_TRIGGER,
			pg.ObjectType_OBJECT_RULE, pg.ObjectType_OBJECT_POLICY, pg.ObjectType_OBJECT_ROLE, pg.ObjectType_OBJECT_DATABASE:
			// Names no call or cast is made by.
		default:
			out = append(out, n.GetRenameStmt().GetNewname())
		}
		if o := n.GetRenameStmt().GetObject(); o.GetObjectWithArgs() != nil {
			out = append(out, last(o.GetObjectWithArgs().GetObjname()))
		}
	case n.GetAlterObjectSchemaStmt() != nil:
		o := n.GetAlterObjectSchemaStmt().GetObject()
		switch {
		case o.GetObjectWithArgs() != nil:
			out = append(out, last(o.GetObjectWithArgs().GetObjname()))
		case o.GetList() != nil:
			out = append(out, last(o.GetList().GetItems()))
		}
	}
	return slices.DeleteFunc(out, func(s string) bool { return s == "" })
}

// refCtx is where a column reference sits, which decides whether masking
// by result column can see it.
type refCtx int

const (
	ctxPlain  refCtx = iota // a bare column of the outermost result: RowDescription names its table
	ctxFilter               // WHERE, JOIN ON, GROUP/ORDER BY, ...: filters, never returned
	ctxExpr                 // inside an expression, a subquery or CTE result: returned without attribution
)

type colRef struct {
	qual  string // table or alias, "" when unqualified
	path  string // the qualifier as written (schema.table)
	name  string // column, "" for a whole-row reference
	star  bool
	ctx   refCtx
	inSub bool // inside a subquery or CTE
	// lookup: the column is compared whole, for equality, with values the
	// statement gives (col = $1, col IN ('a', 'b'), col IS NULL): such a
	// filter only confirms a value guessed in full.
	lookup bool
	// unit numbers the filter term the reference is in (a conjunct or
	// disjunct of a WHERE, ON or HAVING, an ORDER BY or GROUP BY item,
	// a window, a LIMIT), 0 outside one; whole: that term compares the
	// column whole (col = x, col IN (...), lower(col) = lower(x)), with
	// whatever.
	unit  int
	whole bool
	// level numbers the statement or subquery the reference is written
	// in; limit: it is in a LIMIT or OFFSET.
	level int
	limit bool
}

// dangerousFunctions reach outside the database's data: the file system,
// other servers, other sessions, the server's configuration.
var dangerousFunctions = []string{
	"pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "pg_ls_logdir", "pg_ls_waldir", "pg_ls_tmpdir", "pg_ls_archive_statusdir",
	"lo_import", "lo_export", "lo_from_bytea", "lo_put",
	"dblink", "dblink_exec", "dblink_connect", "dblink_connect_u", "dblink_send_query", "dblink_open",
	"pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
	"pg_file_write", "pg_file_rename", "pg_file_unlink", "pg_logdir_ls",
	"pg_promote", "pg_switch_wal", "pg_create_restore_point", "pg_start_backup", "pg_backup_start",
	"query_to_xml", "query_to_xml_and_xmlschema", "cursor_to_xml", "table_to_xml", "database_to_xml", "schema_to_xml",
	"query_to_xmlschema", "cursor_to_xmlschema", "table_to_xml_and_xmlschema", "table_to_xmlschema",
	"schema_to_xml_and_xmlschema", "schema_to_xmlschema", "database_to_xml_and_xmlschema", "database_to_xmlschema",
	"ts_stat", "ts_rewrite", // run SQL given as text
	"lo_unlink", "lo_create", "lo_creat", "lowrite", "lo_truncate", "lo_truncate64", "lo_open", "lo_write",
	"lo_close", "lo_lseek", "lo_lseek64", "lo_tell", "lo_tell64", "loread", "lo_get",
	"pg_logical_slot_get_changes", "pg_logical_slot_peek_changes", "pg_create_logical_replication_slot",
	"pg_create_physical_replication_slot", "pg_drop_replication_slot", "pg_replication_origin_create",
	"dblink_fetch", "dblink_get_result", "dblink_close", "dblink_disconnect", "dblink_cancel_query",
	"pg_stat_reset", "pg_stat_reset_shared", "pg_stat_reset_single_table_counters",
	"pg_stat_reset_single_function_counters", "pg_stat_reset_slru", "pg_stat_reset_replication_slot",
	"pg_stat_reset_subscription_stats",
	"pg_logical_slot_get_binary_changes", "pg_logical_slot_peek_binary_changes", "pg_logical_emit_message",
	"pg_replication_slot_advance", "pg_copy_logical_replication_slot", "pg_copy_physical_replication_slot",
	"pg_replication_origin_drop", "pg_replication_origin_advance", "pg_replication_origin_session_setup",
	"pg_replication_origin_session_reset", "pg_replication_origin_xact_setup", "pg_replication_origin_xact_reset",
	"pg_backup_stop", "pg_stop_backup", "pg_wal_replay_pause", "pg_wal_replay_resume",
	"pg_ls_replslotdir", "pg_ls_logicalsnapdir", "pg_ls_logicalmapdir", "pg_current_logfile",
	"pg_show_all_file_settings", "pg_hba_file_rules", "pg_ident_file_mappings", "pg_log_backend_memory_contexts",
	"pg_import_system_collations", "pg_file_sync",
	"pg_read_file_old", "pg_rotate_logfile_old", // adminpack's old names
	// Run SQL given as text, which corral cannot read (see sqlRunners).
	"crosstab", "crosstab2", "crosstab3", "crosstab4", "connectby", "xpath_table",
}

// sharedTypes are type names PostgreSQL itself defines; casts to them are
// not looked up as possible functions of the database's own. A database
// may still define a cast to one of these types from a type of its own:
// catalog.typeCode finds that function.
var (
	sharedTypes = []string{"text", "varchar", "char", "bpchar", "name", "json", "jsonb", "xml", "bytea", "uuid",
		"date", "time", "timetz", "timestamp", "timestamptz", "interval", "inet", "cidr", "macaddr", "money",
		"regclass", "regtype", "regproc", "regprocedure", "regoper", "regoperator", "regnamespace", "regrole",
		"regconfig", "regdictionary", "regcollation", "oid", "tsvector", "tsquery", "point", "box", "int4range",
		"int8range", "numrange", "daterange", "tsrange", "tstzrange"}
)

// auditText is how the statement is recorded: without its literals, and
// its command alone when it could not be normalised.
func (s *Statement) auditText() string {
	if s.normalized != "" {
		return s.normalized
	}
	if n, err := pg.Normalize(s.Text); err == nil {
		return n
	}
	return s.Command
}

// errUnsupported marks statements the classifier does not know: they are
// denied, never guessed at.
var errUnsupported = errors.New("statement type not supported")

// classifier remembers the classification of single statements by their
// normalised text (literals replaced by $n, everything else, aliases
// included, as written): normalising costs a fraction of a full parse, and
// an application sends the same statements over and over with other
// values.
type classifier struct {
	gate  parseGate
	mu    sync.Mutex
	cache map[string]Statement // by normalized text
	fast  map[string]Statement // by fastKey
	// The text the maps are keyed by, in bytes: what a classification
	// holds grows with it (a column reference per few bytes).
	cacheBytes, fastBytes int
}

// The cache is shared by the target's sessions and outlives them: it is
// bounded in entries and in the text they stand for, and a statement
// longer than classifierEntryBytes is parsed anew each time rather than
// kept (any workload could otherwise fill it with distinct 1 MiB
// statements, some gigabytes of parse trees).
const (
	classifierSize       = 4096
	classifierBytes      = 4 << 20
	classifierEntryBytes = 16 << 10
)

// classify classifies sql from what it remembers or by parsing it, which
// waits for its turn at the gate while ctx lasts.
func (c *classifier) classify(ctx context.Context, sql string) ([]Statement, error) {
	fk, fast := fastKey(sql)
	if fast {
		c.mu.Lock()
		st, ok := c.fast[fk]
		c.mu.Unlock()
		if ok {
			st.Text = strings.TrimSpace(sql)
			return []Statement{st}, nil
		}
	}
	release, err := c.gate.enter(ctx, len(sql))
	if err != nil {
		return nil, err
	}
	defer release()
	key, err := pg.Normalize(sql)
	if err != nil {
		return nil, fmt.Errorf("cannot parse the statement: %w", err)
	}
	key = strings.TrimSpace(key)
	c.mu.Lock()
	st, ok := c.cache[key]
	c.mu.Unlock()
	if ok {
		c.remember(fk, fast, &st)
		st.Text = strings.TrimSpace(sql)
		return []Statement{st}, nil
	}
	stmts, err := Classify(sql)
	if err != nil || len(stmts) != 1 {
		return stmts, err
	}
	stmts[0].normalized = key
	if stmts[0].literalSensitive || len(key) > classifierEntryBytes {
		return stmts, nil
	}
	// Kept without its text, which the key bounds only once its literals
	// are taken out: a hit puts the text it was asked with back.
	kept := stmts[0]
	kept.Text = ""
	c.mu.Lock()
	if c.cache == nil || len(c.cache) >= classifierSize || c.cacheBytes+len(key) > classifierBytes {
		c.cache, c.cacheBytes = make(map[string]Statement, 64), 0
	}
	if _, ok := c.cache[key]; !ok {
		c.cacheBytes += len(key)
	}
	c.cache[key] = kept
	c.mu.Unlock()
	c.remember(fk, fast, &kept)
	return stmts, nil
}

// remember enters a parsed classification under its fast key.
func (c *classifier) remember(fk string, fast bool, st *Statement) {
	if !fast || !fastCacheable(st) || len(fk) > classifierEntryBytes {
		return
	}
	c.mu.Lock()
	if c.fast == nil || len(c.fast) >= classifierSize || c.fastBytes+len(fk) > classifierBytes {
		c.fast, c.fastBytes = make(map[string]Statement, 64), 0
	}
	if _, ok := c.fast[fk]; !ok {
		c.fastBytes += len(fk)
	}
	c.fast[fk] = *st
	c.mu.Unlock()
}

// Classify parses sql, which may hold several statements, into Statements.
// A parse error or a statement type it does not know is an error: the
// caller denies.
func Classify(sql string) ([]Statement, error) {
	tree, err := pg.Parse(sql)
	if err != nil {
		return nil, fmt.Errorf("cannot parse the statement: %w", err)
	}
	var out []Statement
	for _, raw := range tree.Stmts {
		text := stmtText(sql, raw)
		s := Statement{Text: text, aliases: map[string][]string{}}
		if s.Fingerprint, err = pg.Fingerprint(text); err != nil {
			return nil, fmt.Errorf("cannot fingerprint the statement: %w", err)
		}
		if err := s.classify(raw.GetStmt()); err != nil {
			return nil, err
		}
		s.fnNames = functionNames(&s)
		if len(tree.Stmts) > 1 {
			// Here, where the parse is paid for, rather than as the
			// statement is decided (see classifier.classify).
			if s.normalized, err = pg.Normalize(text); err != nil {
				s.normalized = ""
			}
		}
		out = append(out, s)
	}
	return out, nil
}

func stmtText(sql string, raw *pg.RawStmt) string {
	start := int(raw.GetStmtLocation())
	end := len(sql)
	if l := int(raw.GetStmtLen()); l > 0 {
		end = start + l
	}
	if start < 0 || start > len(sql) || end > len(sql) || start > end {
		return sql
	}
	return strings.TrimSpace(sql[start:end])
}

func (s *Statement) classify(n *pg.Node) error {
	if n == nil || n.GetNode() == nil {
		return fmt.Errorf("%w: empty statement", errUnsupported)
	}
	s.defines = definedNames(n)
	s.replacesFunction = n.GetCreateFunctionStmt().GetReplace()
	top, err := stmtOps(n)
	if err != nil {
		return err
	}
	ops := map[string]bool{}
	for _, op := range top {
		ops[op] = true
	}
	msg := nodeMessage(n)
	s.Command = commandOf(msg)
	switch {
	case n.GetUpdateStmt() != nil:
		s.HasWhere = n.GetUpdateStmt().GetWhereClause() != nil
	case n.GetDeleteStmt() != nil:
		s.HasWhere = n.GetDeleteStmt().GetWhereClause() != nil
	case n.GetSelectStmt() != nil && n.GetSelectStmt().GetIntoClause() != nil, n.GetCreateTableAsStmt() != nil:
		s.Into = true
	case n.GetCreateCastStmt() != nil:
		s.bindsTypeCode = n.GetCreateCastStmt().GetFunc() != nil
	case n.GetCreateOpClassStmt() != nil:
		s.bindsTypeCode = n.GetCreateOpClassStmt().GetIsDefault()
	case n.GetAlterOpFamilyStmt() != nil:
		s.bindsTypeCode = true // a default class's family may gain members
	case n.GetCreateDomainStmt() != nil:
		s.bindsTypeCode = slices.ContainsFunc(n.GetCreateDomainStmt().GetConstraints(), func(c *pg.Node) bool {
			return c.GetConstraint().GetContype() == pg.ConstrType_CONSTR_CHECK
		})
		s.columnTypes = append(s.columnTypes, lastName(funcName(n.GetCreateDomainStmt().GetTypeName().GetNames())))
	case n.GetCreateRangeStmt() != nil:
		for _, d := range n.GetCreateRangeStmt().GetParams() {
			if t := d.GetDefElem().GetArg().GetTypeName(); d.GetDefElem().GetDefname() == "subtype" && t != nil {
				s.columnTypes = append(s.columnTypes, lastName(funcName(t.GetNames())))
			}
		}
	case n.GetAlterDomainStmt() != nil:
		s.bindsTypeCode = n.GetAlterDomainStmt().GetDef().GetConstraint().GetContype() == pg.ConstrType_CONSTR_CHECK
	case n.GetCreatePolicyStmt() != nil, n.GetAlterPolicyStmt() != nil:
		// Reading the table runs a policy's expressions (catalog.typeCode).
		s.bindsTypeCode = true
	case n.GetIndexStmt() != nil:
		// Planning a statement on the table folds an index's expressions
		// and predicate.
		x := n.GetIndexStmt()
		s.bindsTypeCode = x.GetWhereClause() != nil || slices.ContainsFunc(x.GetIndexParams(), func(p *pg.Node) bool {
			return p.GetIndexElem().GetExpr() != nil
		})
	case n.GetCreateStatsStmt() != nil:
		s.bindsTypeCode = slices.ContainsFunc(n.GetCreateStatsStmt().GetExprs(), func(e *pg.Node) bool {
			return e.GetStatsElem().GetExpr() != nil
		})
	case n.GetPrepareStmt() != nil:
		s.Prepares = n.GetPrepareStmt().GetName()
		s.literalSensitive = true // names are not in the fingerprint
		for _, a := range n.GetPrepareStmt().GetArgtypes() {
			name := funcName(a.GetTypeName().GetNames())
			s.lossyParams = s.lossyParams || lossyTypes[name] || !builtinType(name)
			s.castTo(a.GetTypeName()) // EXECUTE casts its values to them
		}
	case n.GetExecuteStmt() != nil:
		s.Executes = n.GetExecuteStmt().GetName()
		s.literalSensitive = true
	case n.GetDeallocateStmt() != nil:
		s.literalSensitive = true
		s.Deallocates = n.GetDeallocateStmt().GetName()
		s.DeallocateAll = n.GetDeallocateStmt().GetIsall() || s.Deallocates == ""
	case n.GetDeclareCursorStmt() != nil:
		s.Declares = n.GetDeclareCursorStmt().GetPortalname()
		s.literalSensitive = true
	case n.GetFetchStmt() != nil:
		s.Fetches = n.GetFetchStmt().GetPortalname()
		s.literalSensitive = true
	case n.GetRenameStmt() != nil, n.GetAlterObjectSchemaStmt() != nil:
		s.renames = true
		// A schema renamed takes its tables out of schema-qualified masks.
		s.renamesSchema = n.GetRenameStmt().GetRenameType() == pg.ObjectType_OBJECT_SCHEMA
	case n.GetTransactionStmt() != nil:
		switch n.GetTransactionStmt().GetKind() {
		case pg.TransactionStmtKind_TRANS_STMT_ROLLBACK_TO:
			s.rollsBack = true
		case pg.TransactionStmtKind_TRANS_STMT_COMMIT, pg.TransactionStmtKind_TRANS_STMT_PREPARE:
			s.commits = true
		}
	case n.GetClosePortalStmt() != nil:
		s.Closes = n.GetClosePortalStmt().GetPortalname()
		s.ClosesAll = s.Closes == ""
		s.literalSensitive = true
	case n.GetVariableSetStmt() != nil:
		s.literalSensitive = true
		name := strings.ToLower(n.GetVariableSetStmt().GetName())
		switch n.GetVariableSetStmt().GetKind() {
		case pg.VariableSetKind_VAR_RESET_ALL:
			// Back to the values the session started with, which corral
			// chose: harmless to the reading of statements.
			s.Sets = append(s.Sets, "all")
		case pg.VariableSetKind_VAR_RESET:
			// Back to the session's default (corral's, for what it sets
			// at login): no change to count.
		default:
			s.Sets = append(s.Sets, name)
		}
	case n.GetVariableShowStmt() != nil:
		s.literalSensitive = true
	case n.GetCopyStmt() != nil:
		s.literalSensitive = true
		c := n.GetCopyStmt()
		s.CopyOut = !c.GetIsFrom() && !c.GetIsProgram() && c.GetFilename() == ""
		s.CopyIn = c.GetIsFrom() && !c.GetIsProgram() && c.GetFilename() == ""
		s.CopyTo = !c.GetIsFrom()
	}

	// A relation under a few aliases is a few entries; a statement's text
	// accounts for at least a byte for each.
	w := walker{s: s, ops: ops, room: 4*len(s.Text) + 4096}
	w.walk(msg.ProtoReflect(), walkState{top: true, ctx: ctxExpr})
	// Every UPDATE and DELETE of the statement, those in its CTEs too.
	s.HasWhere = s.HasWhere && !s.unbounded
	if hasReturning(n) {
		s.Returning = true
		ops["select"] = true // RETURNING reads the rows it returns
	}
	if w.err != nil {
		return w.err
	}
	for op := range ops {
		s.Ops = append(s.Ops, op)
	}
	slices.Sort(s.Ops)
	slices.Sort(s.Tables)
	s.Tables = slices.Compact(s.Tables)
	slices.Sort(s.Functions)
	s.Functions = slices.Compact(s.Functions)
	return nil
}

// stmtOps maps a statement node to its vocabulary words. Anything not
// listed is unsupported, and so denied.
func stmtOps(n *pg.Node) ([]string, error) {
	if ops, ok := opsOf(n); ok {
		return ops, nil
	}
	return nil, fmt.Errorf("%w: %s", errUnsupported, commandOf(nodeMessage(n)))
}

func opsOf(n *pg.Node) ([]string, bool) {
	ops, err := opsOfNode(n)
	return ops, err == nil
}

var errNotStatement = errors.New("not a statement")

// defaultSetOps is what setting a default for later sessions (ALTER
// DATABASE or ROLE ... SET) counts as: as SET of the same setting would
// in a session, the role included.
func defaultSetOps(v *pg.VariableSetStmt) []string {
	return settingOps(v.GetName(), v.GetKind())
}

// settingOps is what changing a setting counts as. The role is a role
// change; RESET ALL resets the role too. session_replication_role other
// than its default switches off triggers and foreign keys, as DISABLE
// TRIGGER does.
func settingOps(name string, kind pg.VariableSetKind) []string {
	switch strings.ToLower(name) {
	case "role", "session_authorization", "session authorization":
		return []string{"set role"}
	case "session_replication_role":
		if kind != pg.VariableSetKind_VAR_RESET {
			return []string{"drop", "set"}
		}
	}
	if kind == pg.VariableSetKind_VAR_RESET_ALL {
		return []string{"set role"}
	}
	return []string{"set"}
}

func opsOfNode(n *pg.Node) ([]string, error) {
	switch x := n.GetNode().(type) {
	case *pg.Node_SelectStmt:
		if x.SelectStmt.GetIntoClause() != nil {
			return []string{"select", "ddl"}, nil // SELECT INTO creates a table
		}
		return []string{"select"}, nil
	case *pg.Node_InsertStmt:
		if x.InsertStmt.GetOnConflictClause().GetAction() == pg.OnConflictAction_ONCONFLICT_UPDATE {
			// An upsert updates the rows that are there: it needs what
			// UPDATE needs.
			return []string{"insert", "update"}, nil
		}
		return []string{"insert"}, nil
	case *pg.Node_UpdateStmt:
		return []string{"update"}, nil
	case *pg.Node_DeleteStmt:
		return []string{"delete"}, nil
	case *pg.Node_MergeStmt:
		// MERGE inserts, updates or deletes as its WHEN clauses say, and
		// needs what each of those needs.
		ops := []string{"merge"}
		for _, w := range x.MergeStmt.GetMergeWhenClauses() {
			switch w.GetMergeWhenClause().GetCommandType() {
			case pg.CmdType_CMD_INSERT:
				ops = append(ops, "insert")
			case pg.CmdType_CMD_UPDATE:
				ops = append(ops, "update")
			case pg.CmdType_CMD_DELETE:
				ops = append(ops, "delete")
			}
		}
		slices.Sort(ops)
		return slices.Compact(ops), nil
	case *pg.Node_CopyStmt:
		ops := []string{"copy"}
		if x.CopyStmt.GetIsProgram() || x.CopyStmt.GetFilename() != "" {
			// Server-side files: as dangerous as a program.
			ops = append(ops, "copy program")
		}
		if x.CopyStmt.GetIsFrom() {
			// COPY FROM adds rows: it needs what INSERT needs.
			ops = append(ops, "insert")
		}
		return ops, nil
	case *pg.Node_DropStmt:
		if x.DropStmt.GetRemoveType() == pg.ObjectType_OBJECT_POLICY {
			return []string{"drop", "grant"}, nil
		}
		return []string{"drop"}, nil
	case *pg.Node_DropdbStmt, *pg.Node_DropTableSpaceStmt, *pg.Node_DropOwnedStmt,
		*pg.Node_DropSubscriptionStmt, *pg.Node_DropUserMappingStmt:
		return []string{"drop"}, nil
	case *pg.Node_DropRoleStmt:
		return []string{"drop", "grant"}, nil
	case *pg.Node_AlterTableStmt:
		// What a subcommand does to the data counts as the statement
		// that does it: dropping a column (or an attribute of a type)
		// drops its values, changing a column's type rewrites them, as
		// USING says.
		ops := []string{"ddl"}
		for _, c := range x.AlterTableStmt.GetCmds() {
			switch c.GetAlterTableCmd().GetSubtype() {
			case pg.AlterTableType_AT_ChangeOwner, pg.AlterTableType_AT_DisableRowSecurity,
				pg.AlterTableType_AT_NoForceRowSecurity, pg.AlterTableType_AT_EnableRowSecurity, pg.AlterTableType_AT_ForceRowSecurity:
				ops = append(ops, "grant")
			case pg.AlterTableType_AT_DropColumn, pg.AlterTableType_AT_DropConstraint, pg.AlterTableType_AT_DropNotNull,
				pg.AlterTableType_AT_DropIdentity,
				// Switching a guard off (a trigger, a rule) is as much as
				// dropping it.
				pg.AlterTableType_AT_DisableTrig, pg.AlterTableType_AT_DisableTrigAll, pg.AlterTableType_AT_DisableTrigUser,
				pg.AlterTableType_AT_DisableRule, pg.AlterTableType_AT_EnableReplicaTrig, pg.AlterTableType_AT_EnableReplicaRule:
				ops = append(ops, "drop")
			case pg.AlterTableType_AT_AlterColumnType, pg.AlterTableType_AT_SetExpression, pg.AlterTableType_AT_SetIdentity:
				ops = append(ops, "update")
			case pg.AlterTableType_AT_AttachPartition, pg.AlterTableType_AT_AddInherit:
				ops = append(ops, "insert") // the table's rows gain the other's
			case pg.AlterTableType_AT_DetachPartition, pg.AlterTableType_AT_DetachPartitionFinalize, pg.AlterTableType_AT_DropInherit:
				ops = append(ops, "delete") // and lose them
			case pg.AlterTableType_AT_SetUnLogged:
				ops = append(ops, "truncate") // emptied by a crash, empty on a standby
			}
		}
		slices.Sort(ops)
		return slices.Compact(ops), nil
	case *pg.Node_AlterDomainStmt:
		switch x.AlterDomainStmt.GetSubtype() {
		case "X", "N": // DROP CONSTRAINT, DROP NOT NULL
			return []string{"ddl", "drop"}, nil
		}
		return []string{"ddl"}, nil
	case *pg.Node_AlterEventTrigStmt:
		switch x.AlterEventTrigStmt.GetTgenabled() {
		case "D", "R": // DISABLE, ENABLE REPLICA: it no longer fires
			return []string{"ddl", "drop"}, nil
		}
		return []string{"ddl"}, nil
	case *pg.Node_AlterSeqStmt:
		// RESTART sets the sequence as setval does.
		if slices.ContainsFunc(x.AlterSeqStmt.GetOptions(), func(o *pg.Node) bool { return o.GetDefElem().GetDefname() == "restart" }) {
			return []string{"ddl", "update"}, nil
		}
		return []string{"ddl"}, nil
	case *pg.Node_AlterEnumStmt:
		// Renaming a value changes what every row holding it reads.
		if x.AlterEnumStmt.GetOldVal() != "" {
			return []string{"ddl", "update"}, nil
		}
		return []string{"ddl"}, nil
	case *pg.Node_AlterDatabaseSetStmt:
		// A setting every later session of the database starts with.
		return append(defaultSetOps(x.AlterDatabaseSetStmt.GetSetstmt()), "ddl"), nil
	case *pg.Node_AlterRoleSetStmt:
		return append(defaultSetOps(x.AlterRoleSetStmt.GetSetstmt()), "grant"), nil
	case *pg.Node_TruncateStmt:
		return []string{"truncate"}, nil
	case *pg.Node_GrantStmt, *pg.Node_GrantRoleStmt, *pg.Node_AlterDefaultPrivilegesStmt,
		*pg.Node_CreateRoleStmt, *pg.Node_AlterRoleStmt, *pg.Node_ReassignOwnedStmt,
		*pg.Node_AlterOwnerStmt, *pg.Node_CreatePolicyStmt, *pg.Node_AlterPolicyStmt:
		return []string{"grant"}, nil
	case *pg.Node_TransactionStmt:
		return []string{"transaction"}, nil
	case *pg.Node_VariableSetStmt:
		return settingOps(x.VariableSetStmt.GetName(), x.VariableSetStmt.GetKind()), nil
	case *pg.Node_DiscardStmt:
		return []string{"set role"}, nil // DISCARD ALL includes RESET SESSION AUTHORIZATION
	case *pg.Node_VariableShowStmt:
		return []string{"show"}, nil
	case *pg.Node_ExplainStmt:
		inner, err := stmtOps(x.ExplainStmt.GetQuery())
		if err != nil {
			return nil, err
		}
		// EXPLAIN ANALYZE runs the statement: it needs the statement's
		// rights. SETTINGS shows settings, as SHOW does.
		inner = append(inner, "explain")
		for _, o := range x.ExplainStmt.GetOptions() {
			if strings.EqualFold(o.GetDefElem().GetDefname(), "settings") {
				inner = append(inner, "show")
			}
		}
		return inner, nil
	case *pg.Node_LockStmt:
		return []string{"lock"}, nil
	case *pg.Node_VacuumStmt, *pg.Node_ReindexStmt, *pg.Node_ClusterStmt, *pg.Node_CheckPointStmt, *pg.Node_RefreshMatViewStmt:
		return []string{"maintenance"}, nil
	case *pg.Node_ListenStmt, *pg.Node_UnlistenStmt:
		return []string{"listen"}, nil
	case *pg.Node_NotifyStmt:
		return []string{"notify"}, nil
	case *pg.Node_PrepareStmt:
		inner, err := stmtOps(x.PrepareStmt.GetQuery())
		if err != nil {
			return nil, err
		}
		return append(inner, "prepare"), nil
	case *pg.Node_ExecuteStmt:
		// What it runs was decided when it was PREPAREd; the handler
		// resolves the name. Here it is only "prepare".
		return []string{"prepare"}, nil
	case *pg.Node_DeallocateStmt:
		return []string{"prepare"}, nil
	case *pg.Node_DeclareCursorStmt:
		inner, err := stmtOps(x.DeclareCursorStmt.GetQuery())
		if err != nil {
			return nil, err
		}
		return append(inner, "cursor"), nil
	case *pg.Node_FetchStmt, *pg.Node_ClosePortalStmt:
		return []string{"cursor"}, nil
	case *pg.Node_CallStmt:
		return []string{"call"}, nil
	case *pg.Node_DoStmt:
		return []string{"do"}, nil
	case *pg.Node_CreateFunctionStmt:
		// Replacing a trigger function's body may switch its triggers
		// off, as replacing the trigger may.
		f := x.CreateFunctionStmt
		if f.GetReplace() {
			if names := f.GetReturnType().GetNames(); len(names) > 0 {
				switch strings.ToLower(names[len(names)-1].GetString_().GetSval()) {
				case "trigger", "event_trigger":
					return []string{"ddl", "drop"}, nil
				}
			}
		}
		return []string{"ddl"}, nil
	case *pg.Node_CreateTrigStmt, *pg.Node_RuleStmt:
		// OR REPLACE may replace a guard as DROP would remove it.
		if x, ok := x.(*pg.Node_CreateTrigStmt); ok && x.CreateTrigStmt.GetReplace() {
			return []string{"ddl", "drop"}, nil
		}
		if x, ok := x.(*pg.Node_RuleStmt); ok && x.RuleStmt.GetReplace() {
			return []string{"ddl", "drop"}, nil
		}
		return []string{"ddl"}, nil
	case *pg.Node_LoadStmt, *pg.Node_AlterSystemStmt:
		// Loading shared libraries and rewriting the server configuration
		// are administration of the server itself.
		return []string{"ddl", "function"}, nil
	case *pg.Node_CreateStmt, *pg.Node_CreateTableAsStmt, *pg.Node_ViewStmt, *pg.Node_IndexStmt,
		*pg.Node_RenameStmt, *pg.Node_CommentStmt, *pg.Node_CreateSchemaStmt, *pg.Node_CreateSeqStmt,
		*pg.Node_AlterFunctionStmt, *pg.Node_CreateExtensionStmt,
		*pg.Node_AlterExtensionStmt, *pg.Node_AlterExtensionContentsStmt, *pg.Node_CreateDomainStmt,
		*pg.Node_CreateEnumStmt, *pg.Node_CompositeTypeStmt, *pg.Node_CreateRangeStmt, *pg.Node_DefineStmt,
		*pg.Node_AlterObjectSchemaStmt, *pg.Node_AlterTypeStmt, *pg.Node_CreatedbStmt, *pg.Node_AlterDatabaseStmt,
		*pg.Node_AlterDatabaseRefreshCollStmt, *pg.Node_CreateTableSpaceStmt,
		*pg.Node_AlterTableSpaceOptionsStmt, *pg.Node_AlterTableMoveAllStmt, *pg.Node_CreateCastStmt,
		*pg.Node_CreateConversionStmt, *pg.Node_CreateOpClassStmt, *pg.Node_CreateOpFamilyStmt, *pg.Node_AlterOpFamilyStmt,
		*pg.Node_AlterOperatorStmt, *pg.Node_CreateStatsStmt, *pg.Node_AlterStatsStmt, *pg.Node_CreatePublicationStmt,
		*pg.Node_AlterPublicationStmt, *pg.Node_CreateSubscriptionStmt, *pg.Node_AlterSubscriptionStmt, *pg.Node_CreateEventTrigStmt,
		*pg.Node_CreateFdwStmt, *pg.Node_AlterFdwStmt, *pg.Node_CreateForeignServerStmt,
		*pg.Node_AlterForeignServerStmt, *pg.Node_CreateForeignTableStmt, *pg.Node_CreateUserMappingStmt,
		*pg.Node_AlterUserMappingStmt, *pg.Node_ImportForeignSchemaStmt, *pg.Node_CreatePlangStmt, *pg.Node_CreateAmStmt,
		*pg.Node_CreateTransformStmt, *pg.Node_AlterCollationStmt, *pg.Node_AlterTsconfigurationStmt, *pg.Node_AlterTsdictionaryStmt,
		*pg.Node_SecLabelStmt, *pg.Node_ReplicaIdentityStmt, *pg.Node_AlterObjectDependsStmt:
		return []string{"ddl"}, nil
	case *pg.Node_ConstraintsSetStmt:
		return []string{"transaction"}, nil
	}
	return nil, errNotStatement
}

// nodeMessage unwraps a Node to the statement message it holds.
func nodeMessage(n *pg.Node) protoreflect.ProtoMessage {
	m := n.ProtoReflect()
	var inner protoreflect.ProtoMessage = n
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() == protoreflect.MessageKind {
			inner = v.Message().Interface()
			return false
		}
		return true
	})
	return inner
}

func commandOf(m protoreflect.ProtoMessage) string {
	name := string(m.ProtoReflect().Descriptor().Name())
	name = strings.TrimSuffix(name, "Stmt")
	// CamelCase to words: CreateTableAs -> CREATE TABLE AS.
	var b strings.Builder
	for i, r := range name {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

type walkState struct {
	top   bool // in the outermost statement, where a ResTarget is a result column
	ctx   refCtx
	inSub bool
	// unit: the filter term being walked (colRef.unit); split: the next
	// node that is not AND, OR or NOT starts one.
	unit  int
	split bool
	level int
	limit bool
}

type walker struct {
	s    *Statement
	ops  map[string]bool
	err  error
	rels []string // relation names in the order the walk met them
	// lookups are the column references the walk found compared for
	// equality with values (see colRef.lookup).
	lookups map[*pg.ColumnRef]bool
	// units counts filter terms; whole are the column references a
	// term compares whole (see colRef.whole); inserted are the tables
	// an INSERT names as its target, no source of rows.
	units    int
	levels   int
	whole    map[*pg.ColumnRef]bool
	inserted map[*pg.RangeVar]bool
	// named keeps aliases' relations distinct; room is how many more
	// the statement may have (see alias).
	named map[[2]string]bool
	room  int
}

// errIntricate refuses a statement whose aliases would name more
// relations than its text can reasonably account for: joins under
// aliases nested n deep name n²/2 of them.
var errIntricate = errors.New("the statement's aliases name too many relations for corral to check (nested joins under aliases); split it")

// alias notes that name names rels, each once: a statement repeating an
// alias, or nesting aliased joins, would otherwise have every check of a
// column reference go over the same relations again and again. Name ""
// notes relations given column aliases (Statement.renamed).
func (w *walker) alias(name string, rels ...string) {
	if w.named == nil {
		w.named = map[[2]string]bool{}
	}
	for _, rel := range rels {
		k := [2]string{name, rel}
		if w.named[k] {
			continue
		}
		if w.room--; w.room < 0 {
			w.err = errIntricate
			return
		}
		w.named[k] = true
		if name == "" {
			w.s.renamed = append(w.s.renamed, rel)
		} else {
			w.s.aliases[name] = append(w.s.aliases[name], rel)
		}
	}
}

// filterFields never reach the result.
var filterFields = map[string]bool{
	"where_clause": true, "having_clause": true, "quals": true, "group_clause": true, "sort_clause": true,
	"limit_count": true, "limit_offset": true, "distinct_clause": true, "window_clause": true, "using_clause": true,
}

// subFields hold statements whose results feed the outer one without
// their columns' provenance.
var subFields = map[string]bool{"with_clause": true, "from_clause": true, "ctequery": true, "larg": true, "rarg": true, "subselect": true}

func (w *walker) walk(m protoreflect.Message, st walkState) {
	if w.err != nil || !m.IsValid() {
		return
	}
	_, isNode := m.Interface().(*pg.Node)
	if st.split && !isNode {
		if _, ok := m.Interface().(*pg.BoolExpr); !ok {
			w.units++
			st.unit, st.split = w.units, false
			w.markWhole(m.Interface())
		}
	}
	switch m.Interface().(type) {
	case *pg.SelectStmt, *pg.InsertStmt, *pg.UpdateStmt, *pg.DeleteStmt, *pg.MergeStmt:
		w.levels++
		st.level = w.levels
	}
	switch m.Interface().(type) {
	case *pg.RangeVar:
		if !w.inserted[m.Interface().(*pg.RangeVar)] {
			w.s.sources++
		}
	case *pg.RangeFunction, *pg.RangeTableFunc, *pg.RangeSubselect, *pg.JsonTable:
		w.s.sources++
	case *pg.InsertStmt:
		if w.inserted == nil {
			w.inserted = map[*pg.RangeVar]bool{}
		}
		w.inserted[m.Interface().(*pg.InsertStmt).GetRelation()] = true
	}
	switch x := m.Interface().(type) {
	case *pg.LockingClause:
		// FOR UPDATE, FOR SHARE, anywhere in the statement: the rows and
		// the table are locked as LOCK TABLE ... ROW SHARE would.
		w.ops["lock"] = true
	case *pg.JoinExpr:
		// (a JOIN b) AS j and a JOIN b USING (c) AS j: j names every
		// relation inside the join, and j(x, y, ...) renames their columns.
		for _, a := range []*pg.Alias{x.GetAlias(), x.GetJoinUsingAlias()} {
			if a == nil || a.GetAliasname() == "" {
				continue
			}
			start := len(w.rels)
			defer func() {
				inside := w.rels[start:]
				w.alias(a.GetAliasname(), inside...)
				if len(a.GetColnames()) > 0 {
					w.alias("", inside...)
				}
			}()
		}
		// USING (c) and NATURAL compare with an = the tree does not
		// name: it may be the database's own (see A_Expr).
		if len(x.GetUsingClause()) > 0 || x.GetIsNatural() {
			w.s.operators = append(w.s.operators, "=")
		}
		// USING (c) and NATURAL compare columns the tree names only as
		// strings, or not at all: filters by those columns (a natural
		// join's by every column, a whole row's worth).
		for _, n := range x.GetUsingClause() {
			if str := n.GetString_(); str != nil {
				w.s.refs = append(w.s.refs, colRef{name: str.GetSval(), ctx: ctxFilter, inSub: st.inSub})
			}
		}
		if x.GetIsNatural() {
			// Each side by its name where it is a table; otherwise every
			// relation of the statement counts.
			for _, side := range []*pg.Node{x.GetLarg(), x.GetRarg()} {
				r := colRef{star: true, ctx: ctxFilter, inSub: st.inSub}
				if rv := side.GetRangeVar(); rv != nil {
					r.qual = rv.GetRelname()
					if a := rv.GetAlias(); a != nil && a.GetAliasname() != "" {
						r.qual = a.GetAliasname()
					}
				}
				w.s.refs = append(w.s.refs, r)
			}
		}
	case *pg.CaseExpr:
		// CASE x WHEN v compares x = v, with an = the tree does not name.
		if x.GetArg() != nil {
			w.s.operators = append(w.s.operators, "=")
		}
	case *pg.A_Expr:
		// An operator of the database's own runs its function, and may
		// share a name with PostgreSQL's: OPERATOR(s.=) names it, and so
		// does a bare = under a search path that puts its schema before
		// pg_catalog. Every name is looked up (the catalog caches it);
		// only pg_catalog's own, named so, is PostgreSQL's for sure.
		switch x.GetKind() {
		case pg.A_Expr_Kind_AEXPR_BETWEEN, pg.A_Expr_Kind_AEXPR_NOT_BETWEEN, pg.A_Expr_Kind_AEXPR_BETWEEN_SYM, pg.A_Expr_Kind_AEXPR_NOT_BETWEEN_SYM:
			// Named BETWEEN; PostgreSQL compares with >= and <=.
			w.s.operators = append(w.s.operators, ">=", "<=")
		default:
			w.operator(x.GetName())
		}
		if c := lookupOf(x); c != nil {
			w.lookup(c)
		}
	case *pg.SubLink:
		w.operator(x.GetOperName()) // x OPERATOR(s.=) ANY (SELECT ...)
		if x.GetSubLinkType() == pg.SubLinkType_ANY_SUBLINK && len(x.GetOperName()) == 0 {
			w.s.operators = append(w.s.operators, "=") // x IN (SELECT ...)
		}

	case *pg.SortBy:
		w.operator(x.GetUseOp()) // ORDER BY x USING OPERATOR(s.<)
	case *pg.NullTest:
		if c := x.GetArg().GetColumnRef(); c != nil {
			w.lookup(c)
		}
	case *pg.TypeCast:
		w.castTo(x.GetTypeName())
	case *pg.JsonParseExpr, *pg.JsonScalarExpr, *pg.JsonSerializeExpr, *pg.JsonObjectConstructor, *pg.JsonArrayConstructor,
		*pg.JsonArrayQueryConstructor, *pg.JsonObjectAgg, *pg.JsonArrayAgg, *pg.JsonFuncExpr, *pg.JsonTable, *pg.MergeSupportFunc:
		// Syntax to this parser (PostgreSQL 17's: JSON_VALUE(...),
		// MERGE_ACTION()), calls of functions of those names to a
		// server before it, which the database may have made; and values
		// of json or jsonb, which it may bind code to.
		w.s.Functions = append(w.s.Functions, syntaxFunction(x))
		w.s.allCasts = append(w.s.allCasts, "json", "jsonb")
	case *pg.InsertStmt, *pg.UpdateStmt, *pg.DeleteStmt, *pg.MergeStmt:
		// Also nested (a data-modifying CTE, EXPLAIN ANALYZE): values go
		// into a table.
		w.s.writes = true
		switch x := x.(type) {
		case *pg.UpdateStmt:
			w.s.unbounded = w.s.unbounded || x.GetWhereClause() == nil
		case *pg.DeleteStmt:
			w.s.unbounded = w.s.unbounded || x.GetWhereClause() == nil
		}
	case *pg.RangeVar:
		name := rangeVarName(x)
		if slices.Contains(settingsViews, x.GetRelname()) {
			w.ops["show"] = true
		}
		w.rels = append(w.rels, x.GetRelname())
		w.s.Tables = append(w.s.Tables, name)
		w.alias(x.GetRelname(), x.GetRelname())
		if a := x.GetAlias(); a != nil && a.GetAliasname() != "" {
			w.alias(a.GetAliasname(), x.GetRelname())
			if len(a.GetColnames()) > 0 {
				w.alias("", x.GetRelname())
			}
		}
	case *pg.A_Indirection:
		// (expr).name is also a function call, name(expr): attribute
		// notation. A flagged name there is the flagged function.
		for _, ind := range x.GetIndirection() {
			if str := ind.GetString_(); str != nil {
				w.call(strings.ToLower(str.GetSval()))
				w.s.attrNames = append(w.s.attrNames, str.GetSval())
			}
		}
	case *pg.FuncCall:
		name := funcName(x.GetFuncname())
		w.s.Functions = append(w.s.Functions, name)
		if st.unit > 0 && (x.GetOver() != nil || x.GetAggStar() || x.GetAggDistinct() || len(x.GetAggOrder()) > 0 ||
			x.GetAggFilter() != nil || x.GetAggWithinGroup() || rowFunctions[strings.ToLower(lastName(name))]) {
			if w.s.rowFns == nil {
				w.s.rowFns = map[int]bool{}
			}
			w.s.rowFns[st.unit] = true
		}
		if name == "pg_catalog.system_user" && x.GetFuncformat() == pg.CoercionForm_COERCE_SQL_SYNTAX {
			// SYSTEM_USER is a keyword from PostgreSQL 16 on; before, a
			// name like any other (see the RangeFunction case).
			w.s.Functions = append(w.s.Functions, "system_user")
		}
		short := strings.ToLower(lastName(name))
		w.call(short)
		if short == "set_config" {
			for _, op := range setConfigOps(x) {
				w.ops[op] = true
			}
			w.s.literalSensitive = true
			w.s.Sets = append(w.s.Sets, setConfigName(x))
		}
	case *pg.ColumnRef:
		r := columnRef(x, st)
		r.lookup = w.lookups[x]
		r.unit, r.whole, r.level, r.limit = st.unit, w.whole[x], st.level, st.limit
		if r.qual != "" && r.name != "" {
			w.call(strings.ToLower(r.name)) // t.fn is fn(t)
			w.s.attrNames = append(w.s.attrNames, r.name)
		}
		w.s.refs = append(w.s.refs, r)
		return
	case *pg.SelectStmt:
		w.outputFilters(x, st)
	case *pg.IndexStmt:
		// An index orders a table by its columns, and CLUSTER then lays
		// the rows out in that order.
		for _, n := range x.GetIndexParams() {
			if name := n.GetIndexElem().GetName(); name != "" {
				w.s.refs = append(w.s.refs, colRef{name: name, ctx: ctxFilter, inSub: st.inSub})
			}
		}
	case *pg.Constraint:
		// The planner folds a table's checks (constraint exclusion; see
		// catalog.foldedRelations).
		if x.GetContype() == pg.ConstrType_CONSTR_CHECK {
			w.s.bindsTypeCode = true
		}
		// UNIQUE and PRIMARY KEY make an index ordered by their keys,
		// EXCLUDE one by its elements.
		for _, n := range x.GetKeys() {
			if str := n.GetString_(); str != nil {
				w.s.refs = append(w.s.refs, colRef{name: str.GetSval(), ctx: ctxFilter, inSub: st.inSub})
			}
		}
		for _, n := range x.GetExclusions() {
			descend(n.ProtoReflect(), func(m protoreflect.Message) bool {
				if e, ok := m.Interface().(*pg.IndexElem); ok && e.GetName() != "" {
					w.s.refs = append(w.s.refs, colRef{name: e.GetName(), ctx: ctxFilter, inSub: st.inSub})
				}
				return true
			})
		}
	case *pg.PartitionElem:
		if x.GetExpr() != nil {
			w.s.bindsTypeCode = true // a partition key the planner folds
		}
	case *pg.ClusterStmt:
		w.s.reorders = true
	case *pg.RuleStmt:
		w.hook(x.GetRelation())
	case *pg.CreateTrigStmt:
		w.hook(x.GetRelation())
		// Its function runs at every row written, under statements that
		// name it nowhere: making the trigger is calling it.
		w.s.Functions = append(w.s.Functions, funcName(x.GetFuncname()))
	case *pg.DefineStmt, *pg.CreateCastStmt, *pg.CreateConversionStmt, *pg.AlterOperatorStmt, *pg.CreateRangeStmt,
		*pg.CreateTransformStmt, *pg.CreateOpClassStmt, *pg.AlterOpFamilyStmt, *pg.CreatePLangStmt, *pg.CreateFdwStmt,
		*pg.AlterFdwStmt, *pg.CreateAmStmt, *pg.CreateEventTrigStmt, *pg.AlterTypeStmt:
		// An operator, aggregate, cast, type or conversion runs the
		// functions it is made of under statements that name only it
		// (### 'x', a cast, a column's default): making it is calling
		// them, as making a trigger is.
		for _, name := range boundFunctions(m) {
			w.s.Functions = append(w.s.Functions, name)
			w.call(strings.ToLower(lastName(name)))
		}
	case *pg.AlterTableCmd:
		w.s.reorders = w.s.reorders || x.GetSubtype() == pg.AlterTableType_AT_ClusterOn
	case *pg.VariableSetStmt:
		// Inside ALTER ROLE/DATABASE/FUNCTION ... SET (and the top-level
		// SET again, which Sets holds already).
		if name := strings.ToLower(x.GetName()); name != "" && x.GetKind() != pg.VariableSetKind_VAR_RESET {
			w.s.defaults = append(w.s.defaults, name)
		}
	case *pg.ColumnDef:
		if name := funcName(x.GetTypeName().GetNames()); name != "" {
			w.s.columnTypes = append(w.s.columnTypes, lastName(name))
		}
		// UNIQUE and PRIMARY KEY written on the column itself.
		for _, n := range x.GetConstraints() {
			switch n.GetConstraint().GetContype() {
			case pg.ConstrType_CONSTR_UNIQUE, pg.ConstrType_CONSTR_PRIMARY:
				w.s.refs = append(w.s.refs, colRef{name: x.GetColname(), ctx: ctxFilter, inSub: st.inSub})
			}
		}
	case *pg.InferClause:
		// ON CONFLICT (email): the insert looks the value up, whole.
		for _, n := range x.GetIndexElems() {
			if name := n.GetIndexElem().GetName(); name != "" {
				w.s.refs = append(w.s.refs, colRef{name: name, ctx: ctxFilter, inSub: st.inSub, lookup: true})
			}
		}
	case *pg.RangeFunction, *pg.RangeTableFunc:
		w.s.fromFunction = true
		if rf, ok := x.(*pg.RangeFunction); ok {
			for _, f := range rf.GetFunctions() {
				items := f.GetList().GetItems()
				if len(items) == 0 {
					continue
				}
				if fc := items[0].GetFuncCall(); funcName(fc.GetFuncname()) == "pg_catalog.system_user" &&
					fc.GetFuncformat() == pg.CoercionForm_COERCE_SQL_SYNTAX {
					// FROM system_user: a relation of that name to a
					// server before PostgreSQL 16.
					w.s.Tables = append(w.s.Tables, "system_user")
				}
			}
		}
		// Values read into columns of a type (f() AS t(c wiping),
		// XMLTABLE ... COLUMNS) are cast to it.
		descend(x.ProtoReflect(), func(m protoreflect.Message) bool {
			switch c := m.Interface().(type) {
			case *pg.ColumnDef:
				w.castTo(c.GetTypeName())
			case *pg.RangeTableFuncCol:
				w.castTo(c.GetTypeName())
			}
			return true
		})
	case *pg.ExecuteStmt:
		// EXECUTE nested in EXPLAIN ANALYZE or CREATE TABLE AS runs a
		// prepared statement too.
		w.s.Executes = x.GetName()
		w.s.literalSensitive = true
	case *pg.Node:
		// Statements nested anywhere (data-modifying CTEs, subqueries)
		// bring their own operations.
		if ops, ok := opsOf(x); ok && !valuesOnly(x) {
			for _, op := range ops {
				w.ops[op] = true
			}
		}
	case *pg.ResTarget:
		if st.top && st.ctx != ctxFilter {
			if v := x.GetVal(); v != nil && v.GetColumnRef() != nil {
				r := columnRef(v.GetColumnRef(), walkState{ctx: ctxPlain, inSub: st.inSub})
				if r.qual != "" && r.name != "" {
					w.call(strings.ToLower(r.name)) // t.fn is fn(t), here too
					w.s.attrNames = append(w.s.attrNames, r.name)
				}
				w.s.refs = append(w.s.refs, r)
				return
			}
			st.top = false // an expression: its value is computed
		}
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		next := st
		if !isNode {
			switch name := string(fd.Name()); {
			case filterFields[name]:
				next.ctx, next.top, next.split = ctxFilter, false, true
				next.limit = name == "limit_count" || name == "limit_offset"
			case st.ctx == ctxFilter && (name == "partition_clause" || name == "order_clause"):
				// A window's items are terms of their own, as ORDER BY's.
				next.split = true
			case st.ctx == ctxFilter && (name == "start_offset" || name == "end_offset"):
				// A frame's offset counts rows, as OFFSET does.
				next.split, next.limit = true, true
			case name == "returning_list" || name == "val":
			case name == "target_list":
				// The result's columns only for a SELECT; an UPDATE's SET
				// list writes values, which is an expression's business.
				if _, sel := m.Interface().(*pg.SelectStmt); !sel {
					next.top = false
				}
			default:
				next.top = false
				if subFields[name] {
					next.inSub = true
				}
			}
		}
		switch {
		case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				w.walk(l.Get(i).Message(), next)
			}
		case fd.Kind() == protoreflect.MessageKind && !fd.IsMap():
			w.walk(v.Message(), next)
		}
		return true
	})
}

func hasReturning(n *pg.Node) bool {
	switch {
	case n.GetInsertStmt() != nil:
		return len(n.GetInsertStmt().GetReturningList()) > 0
	case n.GetUpdateStmt() != nil:
		return len(n.GetUpdateStmt().GetReturningList()) > 0
	case n.GetDeleteStmt() != nil:
		return len(n.GetDeleteStmt().GetReturningList()) > 0
	case n.GetMergeStmt() != nil:
		return len(n.GetMergeStmt().GetReturningList()) > 0
	}
	return false
}

// operator notes an operator the statement uses by name: unless it is
// pg_catalog's, named so, it may be the database's own (see A_Expr).
func (w *walker) operator(names []*pg.Node) {
	if name := funcName(names); name != "" && !strings.HasPrefix(name, "pg_catalog.") {
		w.s.operators = append(w.s.operators, lastName(name))
	}
}

// functionOptions are the options of CREATE TEXT SEARCH PARSER and
// TEMPLATE, CREATE FOREIGN DATA WRAPPER and the like whose value names a
// function (and those of operators, aggregates and types, which are read
// the other way round: see nameOptions).
var functionOptions = []string{"function", "procedure", "restrict", "join", "sfunc", "sfunc1", "finalfunc", "combinefunc",
	"serialfunc", "deserialfunc", "msfunc", "minvfunc", "mfinalfunc", "input", "output", "receive", "send",
	"typmod_in", "typmod_out", "analyze", "subscript", "canonical", "subtype_diff", "start", "gettoken", "end",
	"headline", "lextypes", "init", "lexize", "handler", "validator", "inline"}

// nameOptions are the options of CREATE OPERATOR, AGGREGATE and TYPE (and
// ALTER OPERATOR, ALTER TYPE, CREATE TYPE AS RANGE) whose value names no
// function: a type, an operator, a setting. Any other option naming
// something names a function, old spellings (SFUNC1) and future ones
// included.
var nameOptions = []string{"basetype", "stype", "stype1", "mstype", "sortop", "leftarg", "rightarg", "commutator",
	"negator", "subtype", "subtype_opclass", "collation", "multirange_type_name", "element", "like", "category",
	"delimiter", "default", "storage", "alignment", "internallength", "initcond", "initcond1", "minitcond",
	"sspace", "msspace", "parallel", "hypothetical", "finalfunc_modify", "mfinalfunc_modify", "finalfunc_extra",
	"mfinalfunc_extra", "passedbyvalue", "preferred", "collatable", "hashes", "merges"}

// definesWithFunctions reports the statements whose options are read
// with nameOptions: all but those naming something else are functions.
func definesWithFunctions(m protoreflect.Message) bool {
	switch x := m.Interface().(type) {
	case *pg.DefineStmt:
		switch x.GetKind() {
		case pg.ObjectType_OBJECT_AGGREGATE, pg.ObjectType_OBJECT_OPERATOR, pg.ObjectType_OBJECT_TYPE:
			return true
		}
	case *pg.AlterOperatorStmt, *pg.AlterTypeStmt, *pg.CreateRangeStmt:
		return true
	}
	return false
}

// boundFunctions lists the functions a statement that makes or changes an
// object binds into it: by signature (a cast's, a transform's, an operator
// class's), by name (a conversion's, an event trigger's, a language's
// handler), or as an option's value.
func boundFunctions(m protoreflect.Message) []string {
	var names []string
	byName := definesWithFunctions(m)
	descend(m, func(m protoreflect.Message) bool {
		switch x := m.Interface().(type) {
		case *pg.ObjectWithArgs:
			names = append(names, funcName(x.GetObjname()))
		case *pg.DefElem:
			opt, arg := strings.ToLower(x.GetDefname()), x.GetArg()
			listed := slices.Contains(functionOptions, opt)
			named := byName && !slices.Contains(nameOptions, opt)
			switch {
			case (listed || named) && arg.GetTypeName() != nil:
				names = append(names, funcName(arg.GetTypeName().GetNames()))
			case (listed || named) && arg.GetList() != nil:
				names = append(names, funcName(arg.GetList().GetItems()))
			case listed && arg.GetString_() != nil:
				names = append(names, arg.GetString_().GetSval())
			}
			return false
		case *pg.CreateConversionStmt:
			names = append(names, funcName(x.GetFuncName()))
		case *pg.CreateEventTrigStmt:
			names = append(names, funcName(x.GetFuncname()))
		case *pg.CreatePLangStmt:
			for _, list := range [][]*pg.Node{x.GetPlhandler(), x.GetPlinline(), x.GetPlvalidator()} {
				names = append(names, funcName(list))
			}
		case *pg.CreateAmStmt:
			names = append(names, funcName(x.GetHandlerName()))
		}
		return true
	})
	return slices.DeleteFunc(names, func(n string) bool { return n == "" })
}

// rangeVarName is a relation as written: schema.name, or name.
func rangeVarName(rv *pg.RangeVar) string {
	if rv.GetSchemaname() != "" {
		return rv.GetSchemaname() + "." + rv.GetRelname()
	}
	return rv.GetRelname()
}

// hook records the relation a rule or trigger is made on; in the rule's
// actions and the trigger's condition, old and new are its rows.
func (w *walker) hook(rv *pg.RangeVar) {
	if rv == nil {
		return
	}
	w.s.hooked = append(w.s.hooked, rangeVarName(rv))
	for _, row := range []string{"old", "new"} {
		w.alias(row, rv.GetRelname())
	}
}

// syntaxFunction is the name a server older than this parser calls for
// SQL/JSON and MERGE syntax (see walker.walk).
func syntaxFunction(n any) string {
	switch x := n.(type) {
	case *pg.JsonParseExpr:
		return "json"
	case *pg.JsonScalarExpr:
		return "json_scalar"
	case *pg.JsonSerializeExpr:
		return "json_serialize"
	case *pg.JsonObjectConstructor:
		return "json_object"
	case *pg.JsonArrayConstructor, *pg.JsonArrayQueryConstructor:
		return "json_array"
	case *pg.JsonObjectAgg:
		return "json_objectagg"
	case *pg.JsonArrayAgg:
		return "json_arrayagg"
	case *pg.JsonTable:
		return "json_table"
	case *pg.MergeSupportFunc:
		return "merge_action"
	case *pg.JsonFuncExpr:
		switch x.GetOp() {
		case pg.JsonExprOp_JSON_EXISTS_OP:
			return "json_exists"
		case pg.JsonExprOp_JSON_QUERY_OP:
			return "json_query"
		case pg.JsonExprOp_JSON_TABLE_OP:
			return "json_table"
		}
		return "json_value"
	}
	return ""
}

// castTo notes a cast to a type: one of the database's own may run its
// function (CREATE CAST ... WITH FUNCTION) or a domain's checks.
// PostgreSQL's types are left out, as the parser writes them
// (pg_catalog.int4) or by their names.
func (w *walker) castTo(t *pg.TypeName) {
	w.s.castTo(t)
}

func (s *Statement) castTo(t *pg.TypeName) {
	name := funcName(t.GetNames())
	if name == "" {
		return
	}
	s.allCasts = append(s.allCasts, lastName(name))
	switch {
	case name == "pg_catalog.json" || !strings.HasPrefix(name, "pg_catalog.") && slices.Contains(sharedTypes, name):
		// A type of the database's may shadow it through a search_path
		// that names pg_catalog after its schema (public.uuid); a
		// server before 16 reads JSON, which this parser writes
		// pg_catalog.json, as a name like any other.
		s.shadowCasts = append(s.shadowCasts, lastName(name))
	case !strings.HasPrefix(name, "pg_catalog."):
		s.casts = append(s.casts, lastName(name))
	}
}

// paramCasts are the casts a Parse's declared parameter types make of
// what Bind gives: a type of the database's own (OIDs from 16384 on) is
// named by its OID (castPrefix, "#" and the OID), a domain's checks run
// on the value as on `$1::wiping`.
func paramCasts(oids []uint32) (own, all []string) {
	for _, o := range oids {
		if o == 0 {
			continue // the server infers it
		}
		n := "#" + strconv.FormatUint(uint64(o), 10)
		all = append(all, n)
		if o >= 16384 {
			own = append(own, n)
		}
	}
	return own, all
}

// call notes a call to a function by its bare name.
func (w *walker) call(name string) {
	if name == "set_config" || slices.Contains(sqlRunners, name) {
		w.s.Calls = append(w.s.Calls, name)
	}
	if op, ok := functionOps[name]; ok {
		w.ops[op] = true
		w.s.Calls = append(w.s.Calls, name)
	} else if slices.Contains(dangerousFunctions, name) {
		w.ops["function"] = true
		w.s.Calls = append(w.s.Calls, name)
	}
}

// functionOps are functions that do what a statement would: they need the
// statement's operation, not the catch-all "function".
var functionOps = map[string]string{
	"pg_notify": "notify",
	"nextval":   "update", "setval": "update",
	// The settings SHOW reads: a rule that denies show must see them.
	"current_setting": "show", "pg_show_all_settings": "show",
	"pg_sleep": "lock", "pg_sleep_for": "lock", "pg_sleep_until": "lock", "pg_advisory_unlock_all": "lock",
}

// settingsViews show the server's settings, as SHOW does. (A table of
// the same name in another schema counts too: that only withholds more.)
var settingsViews = []string{"pg_settings", "pg_file_settings", "pg_db_role_setting"}

// advisoryLocks are the advisory lock functions that take a key: the
// lock operation, and a side channel (pg_locks shows the key).
var advisoryLocks = []string{"pg_advisory_lock", "pg_advisory_xact_lock", "pg_advisory_lock_shared",
	"pg_advisory_xact_lock_shared", "pg_try_advisory_lock", "pg_try_advisory_xact_lock", "pg_try_advisory_lock_shared",
	"pg_try_advisory_xact_lock_shared", "pg_advisory_unlock", "pg_advisory_unlock_shared"}

func init() {
	for _, f := range advisoryLocks {
		functionOps[f] = "lock"
	}
}

// valuesOnly reports a SELECT that is only a VALUES list (INSERT ...
// VALUES): it reads nothing.
func valuesOnly(n *pg.Node) bool {
	sel := n.GetSelectStmt()
	return sel != nil && len(sel.GetValuesLists()) > 0 && len(sel.GetFromClause()) == 0 && len(sel.GetTargetList()) == 0
}

// outputFilters notes the columns behind output columns that ORDER BY,
// GROUP BY and DISTINCT ON name by position (ORDER BY 2) or by their
// output name (SELECT email AS e ... ORDER BY e), and behind every output
// column under a plain DISTINCT: they are filters by those columns, which
// the parse tree shows only as a number or another name.
func (w *walker) outputFilters(x *pg.SelectStmt, st walkState) {
	targets := x.GetTargetList()
	if len(targets) == 0 {
		return
	}
	// Ordinals past a * count its columns, which the parse tree does not
	// list: from the first * on, an ordinal may name any of them.
	star := slices.IndexFunc(targets, func(t *pg.Node) bool {
		return slices.ContainsFunc(t.GetResTarget().GetVal().GetColumnRef().GetFields(), func(f *pg.Node) bool { return f.GetAStar() != nil })
	})
	// kept: the item's number stays in the normalised text (pg.Normalize
	// leaves ORDER BY and GROUP BY positions, and replaces those inside
	// DISTINCT ON and grouping sets).
	type item struct {
		n    *pg.Node
		kept bool
	}
	var items []item
	// Each output column is noted once, however many items name it: an
	// item per column over a list of as many columns would otherwise walk
	// their expressions over and over (squared in the statement's length).
	noted := make([]bool, len(targets))
	note := func(i int) {
		if !noted[i] {
			noted[i] = true
			w.filterRefs(targets[i].GetResTarget().GetVal(), st)
		}
	}
	var group func(n *pg.Node, top bool)
	group = func(n *pg.Node, top bool) {
		switch {
		case n.GetGroupingSet() != nil: // GROUPING SETS, ROLLUP, CUBE
			for _, c := range n.GetGroupingSet().GetContent() {
				group(c, false)
			}
		case n.GetRowExpr() != nil: // ROLLUP((1, 2))
			for _, c := range n.GetRowExpr().GetArgs() {
				group(c, false)
			}
		case n.GetList() != nil:
			for _, c := range n.GetList().GetItems() {
				group(c, false)
			}
		default:
			items = append(items, item{n, top})
		}
	}
	for _, n := range x.GetGroupClause() {
		group(n, true)
	}
	for _, n := range x.GetSortClause() {
		items = append(items, item{n.GetSortBy().GetNode(), true})
	}
	for _, n := range x.GetDistinctClause() {
		if n.GetNode() == nil {
			// Plain DISTINCT: every output column, which the items
			// already named are among.
			items = nil
			for i := range targets {
				note(i)
			}
			break
		}
		items = append(items, item{n, false})
	}
	for _, it := range items {
		n := it.n
		if c := n.GetAConst(); c != nil && c.GetIval() != nil {
			// The number names the column: statements that differ only
			// in it must not share a classification. The fast key
			// replaces every number; the normalised text keeps some.
			if it.kept {
				w.s.positions = true
			} else {
				w.s.literalSensitive = true
			}
			i := int(c.GetIval().GetIval())
			switch {
			case star >= 0 && i > star:
				for j := star; j < len(targets); j++ {
					note(j)
				}
			case i >= 1 && i <= len(targets):
				note(i - 1)
			}
			continue
		}
		fields := n.GetColumnRef().GetFields()
		if len(fields) != 1 || fields[0].GetString_() == nil {
			continue
		}
		name := fields[0].GetString_().GetSval()
		for j, t := range targets {
			if !noted[j] && t.GetResTarget().GetName() == name {
				note(j)
			}
		}
	}
}

// filterRefs notes every column reference under n as a filter.
func (w *walker) filterRefs(n *pg.Node, st walkState) {
	if n == nil {
		return
	}
	descend(n.ProtoReflect(), func(m protoreflect.Message) bool {
		if c, ok := m.Interface().(*pg.ColumnRef); ok {
			w.s.refs = append(w.s.refs, columnRef(c, walkState{ctx: ctxFilter, inSub: st.inSub}))
			return false
		}
		return true
	})
}

// descend calls f with m and, while f returns true, with every message
// under it.
func descend(m protoreflect.Message, f func(protoreflect.Message) bool) {
	if !f(m) {
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
			for i := 0; i < v.List().Len(); i++ {
				descend(v.List().Get(i).Message(), f)
			}
		case fd.Kind() == protoreflect.MessageKind && !fd.IsMap():
			descend(v.Message(), f)
		}
		return true
	})
}

func (w *walker) lookup(c *pg.ColumnRef) {
	if w.lookups == nil {
		w.lookups = map[*pg.ColumnRef]bool{}
	}
	w.lookups[c] = true
}

// markWhole notes the columns a filter term compares whole, for
// equality or inequality, with anything: col = other.col, col IN (SELECT
// ...), lower(col) = lower($1), col IS NULL. Such a term, even against
// another relation's column, only tells whether a value in full is
// there, where a part of the column (substr(col, i, 1) = chr(g)) may be
// matched against every candidate in one statement.
func (w *walker) markWhole(term any) {
	mark := func(n *pg.Node) {
		if f := n.GetFuncCall(); f != nil && len(f.GetArgs()) == 1 {
			switch funcName(f.GetFuncname()) {
			case "lower", "upper", "pg_catalog.lower", "pg_catalog.upper":
				n = f.GetArgs()[0]
			}
		}
		if c := n.GetColumnRef(); c != nil {
			if w.whole == nil {
				w.whole = map[*pg.ColumnRef]bool{}
			}
			w.whole[c] = true
		}
	}
	// A row compared with a row compares its fields one by one, and a
	// value IN a list of columns compares each.
	marks := func(n *pg.Node) {
		mark(n)
		for _, f := range n.GetRowExpr().GetArgs() {
			mark(f)
		}
	}
	switch x := term.(type) {
	case *pg.A_Expr:
		switch x.GetKind() {
		case pg.A_Expr_Kind_AEXPR_OP, pg.A_Expr_Kind_AEXPR_OP_ANY, pg.A_Expr_Kind_AEXPR_OP_ALL,
			pg.A_Expr_Kind_AEXPR_DISTINCT, pg.A_Expr_Kind_AEXPR_NOT_DISTINCT, pg.A_Expr_Kind_AEXPR_IN:
		default:
			return
		}
		switch funcName(x.GetName()) {
		case "=", "<>", "pg_catalog.=", "pg_catalog.<>":
			marks(x.GetLexpr())
			if x.GetKind() != pg.A_Expr_Kind_AEXPR_IN {
				marks(x.GetRexpr())
			} else {
				for _, v := range x.GetRexpr().GetList().GetItems() {
					marks(v)
				}
			}
		}
	case *pg.SubLink:
		if x.GetSubLinkType() == pg.SubLinkType_ANY_SUBLINK {
			switch funcName(x.GetOperName()) {
			case "", "=", "pg_catalog.=":
				mark(x.GetTestexpr())
			}
		}
	case *pg.NullTest:
		mark(x.GetArg())
	}
}

// lookupOf returns the column an expression compares whole, for equality
// or inequality, with values the statement gives: col = $1, 'a' <> col,
// col IN ('a', $2), col = ANY($1), col IS [NOT] DISTINCT FROM lower($1).
// Such a comparison answers only whether a value guessed in full is there,
// where LIKE, ranges, ORDER BY or a function of the column reveal parts of
// it. Anything else returns nil: NULLIF (its value is the column's), a
// cast or a function around the column, a column or a subquery in the
// value.
func lookupOf(x *pg.A_Expr) *pg.ColumnRef {
	switch x.GetKind() {
	case pg.A_Expr_Kind_AEXPR_OP, pg.A_Expr_Kind_AEXPR_OP_ANY, pg.A_Expr_Kind_AEXPR_OP_ALL,
		pg.A_Expr_Kind_AEXPR_DISTINCT, pg.A_Expr_Kind_AEXPR_NOT_DISTINCT, pg.A_Expr_Kind_AEXPR_IN:
	default:
		return nil
	}
	switch funcName(x.GetName()) {
	case "=", "<>", "pg_catalog.=", "pg_catalog.<>":
	default:
		return nil
	}
	l, r := x.GetLexpr(), x.GetRexpr()
	if l.GetColumnRef() == nil {
		if x.GetKind() != pg.A_Expr_Kind_AEXPR_OP && x.GetKind() != pg.A_Expr_Kind_AEXPR_DISTINCT && x.GetKind() != pg.A_Expr_Kind_AEXPR_NOT_DISTINCT {
			return nil // ANY, ALL and IN take the list on the right
		}
		l, r = r, l
	}
	c := l.GetColumnRef()
	if c == nil || !valueOnly(r) {
		return nil
	}
	for _, f := range c.GetFields() {
		if f.GetAStar() != nil {
			return nil // a whole row
		}
	}
	return c
}

// lossyTypes compare other types by converting them with a loss: a
// numeric column compared with a float4 value is rounded first, and the
// lookup then matches a range of values.
var lossyTypes = map[string]bool{
	"pg_catalog.float4": true, "pg_catalog.float8": true, "float4": true, "float8": true,
	"pg_catalog._float4": true, "pg_catalog._float8": true, "_float4": true, "_float8": true, // their arrays
}

// builtinType reports whether a type name, as the parser gives it, is
// one of PostgreSQL's own: qualified with pg_catalog (the parser does so
// for int, boolean, varchar, ...), or one of sharedTypes, or an array of
// one (_text). Other bare names (int4) may be the database's own through
// a search path, and count as such.
func builtinType(name string) bool {
	return strings.HasPrefix(name, "pg_catalog.") || slices.Contains(sharedTypes, strings.TrimPrefix(name, "_"))
}

// lossyParam reports whether a parameter declared of the type oid may
// make a lookup loose: a float or an array of floats (the column is
// rounded), or a type of the database's own (OIDs from 16384 on), whose
// comparison may be anything.
func lossyParam(oid uint32) bool {
	switch oid {
	case 700, 701, 1021, 1022: // float4, float8, float4[], float8[]
		return true
	}
	return oid >= 16384
}

// valueFunctions may make a lookup's value: they return text or arrays of
// it, which a column is compared with whole.
var valueFunctions = []string{"lower", "upper", "btrim", "ltrim", "rtrim", "string_to_array", "concat"}

// valueOnly reports whether n computes a value, or a list of values, from
// what the statement gives alone: literals, parameters, a few text
// functions of them ($1, lower($1), ARRAY['a', $2]::text[]), not a column,
// a subquery or a collation. A cast must be to PostgreSQL's own types, and
// not to a float: the column is compared as the value's type, which may
// compare otherwise or round.
func valueOnly(n *pg.Node) bool {
	if n == nil || n.GetNode() == nil {
		return false
	}
	ok := true
	descend(n.ProtoReflect(), func(m protoreflect.Message) bool {
		switch x := m.Interface().(type) {
		case *pg.ColumnRef, *pg.SubLink, *pg.CollateClause:
			// A collation of the database's own may compare loosely
			// (case, accents and punctuation ignored).
			ok = false
		case *pg.TypeCast:
			if name := funcName(x.GetTypeName().GetNames()); !builtinType(name) || lossyTypes[name] {
				ok = false
			}
		case *pg.FuncCall:
			if name := funcName(x.GetFuncname()); !slices.Contains(valueFunctions, strings.TrimPrefix(strings.ToLower(name), "pg_catalog.")) {
				ok = false
			}
		case *pg.A_Expr:
			// Text concatenation only: arithmetic can make a float
			// (5 ^ 1, |/ 2.25).
			if funcName(x.GetName()) != "||" {
				ok = false
			}
		}
		return ok
	})
	return ok
}

func columnRef(c *pg.ColumnRef, st walkState) colRef {
	var parts []string
	star := false
	for _, f := range c.GetFields() {
		switch {
		case f.GetString_() != nil:
			parts = append(parts, f.GetString_().GetSval())
		case f.GetAStar() != nil:
			star = true
		}
	}
	r := colRef{star: star, ctx: st.ctx, inSub: st.inSub}
	switch {
	case star && len(parts) > 0:
		r.qual, r.path = parts[len(parts)-1], strings.Join(parts, ".")
	case !star && len(parts) == 1:
		r.name = parts[0]
	case !star && len(parts) >= 2:
		r.qual, r.name = parts[len(parts)-2], parts[len(parts)-1]
		r.path = strings.Join(parts[:len(parts)-1], ".")
	}
	return r
}

// lastName is the last element of a dotted name: the table of
// schema.table, the function of schema.function.
func lastName(name string) string {
	return name[strings.LastIndexByte(name, '.')+1:]
}

func funcName(parts []*pg.Node) string {
	var names []string
	for _, p := range parts {
		if s := p.GetString_(); s != nil {
			names = append(names, s.GetSval())
		}
	}
	return strings.Join(names, ".")
}

func setConfigName(f *pg.FuncCall) string {
	if name, ok := setConfigLiteral(f); ok {
		return strings.ToLower(name)
	}
	return "*"
}

// setConfigLiteral is set_config's first argument when it is a literal, also
// cast to text (as PostgreSQL prints a view's definition).
func setConfigLiteral(f *pg.FuncCall) (string, bool) {
	args := f.GetArgs()
	if len(args) == 0 {
		return "", false
	}
	arg := args[0]
	if tc := arg.GetTypeCast(); tc != nil {
		names := tc.GetTypeName().GetNames()
		if len(names) == 0 || names[len(names)-1].GetString_().GetSval() != "text" || len(tc.GetTypeName().GetArrayBounds()) > 0 {
			return "", false
		}
		arg = tc.GetArg()
	}
	if c := arg.GetAConst(); c != nil && c.GetSval() != nil {
		return c.GetSval().GetSval(), true
	}
	return "", false
}

// setConfigOps classifies set_config(name, ...) as SET of the setting
// (settingOps); a name that is not a literal could be anything, so it
// counts as each.
func setConfigOps(f *pg.FuncCall) []string {
	if name, ok := setConfigLiteral(f); ok {
		return settingOps(name, pg.VariableSetKind_VAR_SET_VALUE)
	}
	return []string{"drop", "set", "set role"}
}
