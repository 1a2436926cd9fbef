package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// relation is what masking needs to know of a table OID.
type relation struct {
	schema, name string
	kind         byte             // r table, p partitioned, v view, m matview, f foreign
	columns      map[int16]string // attnum -> name
	// For views: the base columns they read, "schema.table.column"
	// ("schema.table.*" when a view reads whole rows), with the same
	// columns of those tables' parents and children; and whether what
	// they return is beyond those columns (see viewDeps).
	deps   []string
	opaque bool
	// runs: what reading the view (refreshing the materialized view)
	// amounts to beyond reading, as operations (see viewDeps).
	runs []string
	// Tables this one inherits from or is a partition of, "schema.table".
	ancestors []string
	// Tables that inherit from this one or are its partitions, at any
	// depth, "schema.table": reading this one reads their rows too.
	descendants []string
	fetched     time.Time
}

// catalogRecheck is how often cached answers are checked against the
// catalog rows they came from (see catalog.current): a migration (a new
// column, a view redefined, a column renamed) shows within it.
// catalogTTL bounds how long an answer is trusted at all, for what that
// check does not cover (a function moved into or out of an extension).
const (
	catalogRecheck = time.Second
	catalogTTL     = 30 * time.Second
)

// byName is what the catalog says of a relation name, in any schema; no
// kinds when no relation has it.
type byName struct {
	kinds       string   // relkinds of the relations with this name
	ancestors   []string // the names of the tables above them, at any depth
	descendants []string // the names of the tables under them, at any depth
	views       []uint32 // the OIDs of those that are views
	fetched     time.Time
}

// catalog answers OID questions for one upstream database, on a
// connection of its own (the session's connection is busy streaming
// results), and caches the answers: a table's OID names it for its life.
//
// A cached answer is only as good as the catalog rows it came from, and a
// migration outside corral changes them without a word on any connection
// corral sees: a view redefined to read a masked column would return it
// in clear for as long as the old answer was trusted. So the cache keeps a
// stamp of those rows (their count and transaction ids), taken in the same
// snapshot as the answers, and compares it with the catalog at most every
// catalogRecheck; any change drops every answer (changes are rare, and a
// partial drop would have to know which answers depend on which rows).
type catalog struct {
	connect func(ctx context.Context) (*pgconn.PgConn, error)

	mu    sync.Mutex
	conn  *pgconn.PgConn
	rels  map[uint32]*relation
	names map[string]byName
	funcs map[string]funcInfo
	// involved: the relations the cached answers were read from, by OID
	// (those asked about, the tables and views views read, parents and
	// children); the stamp covers their rows.
	involved map[uint32]bool
	// columns: the relations whose column names the cached answers
	// hold (those asked about, the tables and views views read); the
	// stamp covers their columns.
	columns map[uint32]bool
	// procs names PostgreSQL's own functions by OID, for calls by
	// number: fixed for the server's version, never dropped.
	procs map[uint32]string
	// code is typeCode's answer; nil until asked, or after a drop.
	// codeTypes are the OIDs of the types it found, which the stamp
	// follows (a table made with a column of one); codeRels, of the
	// relations whose reading runs such code (a view made over one).
	code        map[string]bool
	codeTypes   []string
	codeRels    []string
	codeFetched time.Time
	stamp       string    // of the rows behind the cached answers; "" when none
	checked     time.Time // when the stamp last matched the catalog
	// gen changes whenever cached answers are dropped: what sessions made
	// from them (masking plans) is stale.
	gen atomic.Uint64
}

func newCatalog(connect func(ctx context.Context) (*pgconn.PgConn, error)) *catalog {
	return &catalog{connect: connect, rels: map[uint32]*relation{}, names: map[string]byName{}, funcs: map[string]funcInfo{},
		involved: map[uint32]bool{}, columns: map[uint32]bool{}}
}

// errCatalogChanged: the catalog changed under an answer being fetched;
// the cache was dropped and the question is asked again.
var errCatalogChanged = errors.New("the catalog changed while corral read it")

// answer serves a question from the cache: collect fills the answer with
// what the cache holds and reports whether anything is missing, and fetch
// asks the catalog for that, in one snapshot with the stamp. A change seen
// on the way drops the cache, and the question is asked again, three
// times at most.
func (c *catalog) answer(ctx context.Context, collect func() bool, fetch func() error) error {
	for try := 0; ; try++ {
		if err := c.current(ctx); err != nil {
			return err
		}
		if !collect() {
			return nil
		}
		err := c.inSnapshot(ctx, fetch)
		if !errors.Is(err, errCatalogChanged) || try == 2 {
			return err
		}
	}
}

// current drops the cache if the catalog rows behind it changed, asking
// at most every catalogRecheck.
func (c *catalog) current(ctx context.Context) error {
	if !c.due() {
		return nil
	}
	if err := c.ensure(ctx); err != nil {
		return err
	}
	st, err := c.stampNow(ctx)
	if err != nil {
		return err
	}
	if st != c.stamp {
		c.drop()
	}
	c.checked = time.Now()
	return nil
}

// due reports whether the cache must be checked against the catalog
// before it answers.
func (c *catalog) due() bool { return c.stamp != "" && time.Since(c.checked) >= catalogRecheck }

// inSnapshot runs fetch in one repeatable-read snapshot with the stamp:
// first of what is cached already (answers fetched now must describe the
// same catalog as those fetched before), then of everything, for the next
// check. On any error the cache is dropped: what fetch added may not be
// covered by a stamp.
func (c *catalog) inSnapshot(ctx context.Context, fetch func() error) error {
	if err := c.ensure(ctx); err != nil {
		return err
	}
	if _, err := c.query(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		c.drop()
		return err
	}
	// Also here, not only for the connection: a pooler may run this
	// transaction on a server connection that never heard the SET, and
	// JIT compiling the recursive queries costs a second. A server
	// without the setting has no row for it.
	if _, err := c.query(ctx, "SELECT pg_catalog.set_config(name, 'off', true) FROM pg_catalog.pg_settings WHERE name = 'jit'"); err != nil {
		if _, e := c.query(ctx, "ROLLBACK"); e != nil {
			c.disconnect()
		}
		c.drop()
		return err
	}
	err := func() error {
		if c.stamp != "" {
			st, err := c.stampNow(ctx)
			if err != nil {
				return err
			}
			if st != c.stamp {
				c.drop()
				return errCatalogChanged
			}
		}
		if err := fetch(); err != nil {
			return err
		}
		st, err := c.stampNow(ctx)
		if err != nil {
			return err
		}
		c.stamp, c.checked = st, time.Now()
		return nil
	}()
	end := "COMMIT"
	if err != nil {
		end = "ROLLBACK"
	}
	if _, e := c.query(ctx, end); e != nil {
		// A connection left inside a transaction would answer from
		// its old snapshot ever after.
		c.disconnect()
		if err == nil {
			err = e
		}
	}
	if err != nil {
		c.drop()
	}
	return err
}

// drop forgets every cached answer.
func (c *catalog) drop() {
	clear(c.rels)
	clear(c.names)
	clear(c.funcs)
	clear(c.involved)
	clear(c.columns)
	clear(c.procs) // a superuser may have renamed one
	c.code, c.codeTypes, c.codeRels = nil, nil, nil
	c.stamp = ""
	c.gen.Add(1)
}

// expire has the next question check the catalog, and every plan made
// from the cache made again (which asks it): DDL has run through corral
// and been committed, and nothing need wait for the next check to see
// it. The check drops the cache only if the rows behind it changed, so
// DDL elsewhere (a temporary table a transaction creates) costs one
// query, not every answer fetched again.
func (c *catalog) expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checked = time.Time{}
	c.gen.Add(1)
}

// trustedUntil is when what the cache says now must be checked again.
func (c *catalog) trustedUntil() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stamp == "" {
		return time.Now().Add(catalogTTL)
	}
	return c.checked.Add(catalogRecheck)
}

// stampQuery digests, table by table, the rows behind the cached answers:
// their count and the sum of a 64-bit hash of each row's key and
// transaction id, so that rows created as others are deleted (in
// concurrent transactions) do not cancel out as a sum of the ids alone
// would. $1: the involved relations' OIDs; $2: the relation names asked
// about; $3, $4, $5: the function, operator and cast (target type) names
// asked about; $6: the relations whose columns are cached; $7, $8: the
// types and relations typeCode found.
const stampQuery = `WITH ty AS MATERIALIZED (
  SELECT oid FROM pg_catalog.pg_type WHERE typname = ANY($5::name[]) AND typnamespace <> 'pg_catalog'::regnamespace),
procs AS (
  SELECT oid, xmin::text AS x FROM pg_catalog.pg_proc WHERE proname = ANY($3::name[])
  UNION SELECT p.oid, p.xmin::text FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_proc p ON p.oid = o.oprcode
    WHERE o.oprname = ANY($4::name[])
  UNION SELECT p.oid, p.xmin::text FROM pg_catalog.pg_cast k
    JOIN pg_catalog.pg_proc p ON p.oid = k.castfunc WHERE k.casttarget IN (SELECT oid FROM ty))
SELECT concat_ws(' ',
  (SELECT count(*) || ':' || coalesce(sum(hashtextextended(oid || ':' || xmin, 0)), 0) FROM pg_catalog.pg_class
    WHERE oid = ANY($1::oid[]) OR relname = ANY($2::name[])),
  (SELECT count(*) || ':' || coalesce(sum(hashtextextended(attrelid || '.' || attnum || ':' || xmin, 0)), 0)
    FROM pg_catalog.pg_attribute WHERE attrelid = ANY($6::oid[]) AND attnum > 0),
  (SELECT count(*) || ':' || coalesce(sum(hashtextextended(oid || ':' || xmin, 0)), 0) FROM pg_catalog.pg_rewrite
    WHERE ev_class = ANY($1::oid[])),
  (SELECT count(*) || ':' || coalesce(sum(hashtextextended(inhrelid || '.' || inhparent || ':' || xmin, 0)), 0)
    FROM pg_catalog.pg_inherits WHERE inhrelid = ANY($1::oid[]) OR inhparent = ANY($1::oid[])),
  (SELECT count(*) || ':' || coalesce(sum(hashtextextended(oid || ':' || xmin, 0)), 0) FROM pg_catalog.pg_namespace
    WHERE oid IN (SELECT relnamespace FROM pg_catalog.pg_class WHERE oid = ANY($1::oid[]))),
  (SELECT count(*) || ':' || coalesce(sum(hashtextextended(oid || ':' || x, 0)), 0) FROM procs),
  (SELECT count(*) || ':' || coalesce(sum(hashtextextended(d.objid || '.' || d.refobjid || ':' || d.xmin, 0)), 0)
    FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.deptype = 'e'
      AND d.objid IN (SELECT oid FROM procs)),
  (SELECT count(*) || ':' || coalesce(sum(hashtextextended(oid || ':' || xmin, 0)), 0) FROM pg_catalog.pg_operator
    WHERE oprname = ANY($4::name[])),
  (SELECT count(*) || ':' || coalesce(sum(hashtextextended(oid || ':' || xmin, 0)), 0) FROM pg_catalog.pg_type
    WHERE typname = ANY($5::name[])),
  (SELECT count(*) || ':' || coalesce(sum(hashtextextended(k.oid || ':' || k.xmin, 0)), 0) FROM pg_catalog.pg_cast k
    WHERE k.casttarget IN (SELECT oid FROM ty)),
  (SELECT count(*) || ':' || coalesce(sum(hashtextextended(x.oid || ':' || x.xmin, 0)), 0) FROM (
    SELECT oid, xmin FROM pg_catalog.pg_cast WHERE oid >= 16384
    UNION ALL SELECT oid, xmin FROM pg_catalog.pg_opclass WHERE oid >= 16384
    UNION ALL SELECT oid, xmin FROM pg_catalog.pg_amproc WHERE oid >= 16384
    UNION ALL SELECT oid, xmin FROM pg_catalog.pg_amop WHERE oid >= 16384
    UNION ALL SELECT oid, xmin FROM pg_catalog.pg_constraint WHERE (contypid > 0 OR contype = 'c') AND oid >= 16384
    UNION ALL SELECT partrelid, xmin FROM pg_catalog.pg_partitioned_table WHERE partexprs IS NOT NULL
    UNION ALL SELECT oid, xmin FROM pg_catalog.pg_rewrite WHERE oid >= 16384
    UNION ALL SELECT oid, xmin FROM pg_catalog.pg_policy WHERE oid >= 16384
    UNION ALL SELECT oid, xmin FROM pg_catalog.pg_statistic_ext WHERE oid >= 16384
    UNION ALL SELECT indexrelid, xmin FROM pg_catalog.pg_index
      WHERE indexrelid >= 16384 AND (indexprs IS NOT NULL OR indpred IS NOT NULL)) x),
  (SELECT count(*) || ':' || coalesce(sum(hashtextextended(x.k || ':' || x.xmin, 0)), 0) FROM (
    SELECT inhrelid || '.' || inhparent AS k, xmin FROM pg_catalog.pg_inherits
      WHERE cardinality($8::oid[]) > 0 AND (inhrelid = ANY($8::oid[]) OR inhparent = ANY($8::oid[]))
    UNION ALL SELECT d.objid || '.' || d.refobjid, d.xmin FROM pg_catalog.pg_depend d
      WHERE cardinality($8::oid[]) > 0 AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = ANY($8::oid[])
        AND d.classid = 'pg_catalog.pg_rewrite'::regclass) x),
  (SELECT count(*) || ':' || coalesce(sum(hashtextextended(x.k || ':' || x.xmin, 0)), 0) FROM (
    SELECT attrelid || '.' || attnum AS k, xmin FROM pg_catalog.pg_attribute
      WHERE cardinality($7::oid[]) > 0 AND atttypid = ANY($7::oid[]) AND attnum > 0
    UNION ALL SELECT oid::text, xmin FROM pg_catalog.pg_type
      WHERE cardinality($7::oid[]) > 0 AND (typelem = ANY($7::oid[]) OR typbasetype = ANY($7::oid[]))
    UNION ALL SELECT rngtypid::text, xmin FROM pg_catalog.pg_range
      WHERE cardinality($7::oid[]) > 0 AND rngsubtype = ANY($7::oid[])) x))`

// stampNow digests the catalog rows the cached answers were read from
// (also every cast, operator class, its members and domain constraint
// made after initdb, and every row security policy, extended statistics
// object, table check, view or rule, and index with expressions or a
// predicate made after it, and partition keys with expressions, which
// typeCode reads; the columns, arrays, domains and ranges of the types it
// found, $7 their OIDs; the parents, children and views of the relations
// it found, $8)
// the involved relations' own rows, columns, rules (a view's definition),
// inheritance and schemas; every relation named like a name asked about
// (one created or renamed to it); the functions, operators and casts
// asked about, the functions behind those and their extension
// membership. A row created, changed or deleted changes its table's
// digest. Indexed lookups only: its cost grows with what is cached, not
// with the database.
func (c *catalog) stampNow(ctx context.Context) (string, error) {
	oids := make([]string, 0, len(c.involved))
	for o := range c.involved {
		oids = append(oids, strconv.FormatUint(uint64(o), 10))
	}
	var fns, ops, casts []string
	for n := range c.funcs {
		if op, ok := strings.CutPrefix(n, opPrefix); ok {
			ops = append(ops, op)
		} else if t, ok := strings.CutPrefix(n, castPrefix); ok {
			casts = append(casts, t)
		} else {
			fns = append(fns, strings.TrimPrefix(n, attrPrefix))
		}
	}
	cols := make([]string, 0, len(c.columns))
	for o := range c.columns {
		cols = append(cols, strconv.FormatUint(uint64(o), 10))
	}
	rows, err := c.query(ctx, stampQuery,
		"{"+strings.Join(oids, ",")+"}", pgArray(slices.Collect(maps.Keys(c.names))), pgArray(fns), pgArray(ops), pgArray(casts),
		"{"+strings.Join(cols, ",")+"}", "{"+strings.Join(c.codeTypes, ",")+"}", "{"+strings.Join(c.codeRels, ",")+"}")
	if err != nil {
		return "", err
	}
	if len(rows) != 1 || len(rows[0]) != 1 || rows[0][0] == "" {
		return "", errors.New("catalog query: no stamp")
	}
	return rows[0][0], nil
}

// lookupNames tells, for relation names as a statement writes them (no
// schema), what they are; a name missing from the answer is no relation
// (a CTE, a typo).
func (c *catalog) lookupNames(ctx context.Context, names []string) (map[string]byName, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out map[string]byName
	var missing []string
	collect := func() bool {
		out, missing = map[string]byName{}, missing[:0]
		for _, n := range names {
			if b, ok := c.names[n]; ok && time.Since(b.fetched) < catalogTTL {
				if b.kinds != "" {
					out[n] = b
				}
			} else {
				missing = append(missing, n)
			}
		}
		return len(missing) > 0
	}
	err := c.answer(ctx, collect, func() error {
		rows, err := c.query(ctx, `WITH RECURSIVE d(name, rel) AS (
  SELECT c.relname, i.inhrelid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_inherits i ON i.inhparent = c.oid
  WHERE c.relname = ANY($1::text[])
  UNION SELECT d.name, i.inhrelid FROM d JOIN pg_catalog.pg_inherits i ON i.inhparent = d.rel),
a(name, rel) AS (
  SELECT c.relname, i.inhparent FROM pg_catalog.pg_class c JOIN pg_catalog.pg_inherits i ON i.inhrelid = c.oid
  WHERE c.relname = ANY($1::text[])
  UNION SELECT a.name, i.inhparent FROM a JOIN pg_catalog.pg_inherits i ON i.inhrelid = a.rel)
SELECT c.relname, string_agg(DISTINCT c.relkind::text, ''),
  coalesce((SELECT string_agg(DISTINCT ac.relname, ',') FROM a JOIN pg_catalog.pg_class ac ON ac.oid = a.rel WHERE a.name = c.relname), ''),
  coalesce((SELECT string_agg(DISTINCT dc.relname, ',') FROM d JOIN pg_catalog.pg_class dc ON dc.oid = d.rel WHERE d.name = c.relname), ''),
  coalesce(string_agg(DISTINCT c.oid::text, ',') FILTER (WHERE c.relkind IN ('v', 'm')), ''),
  concat_ws(',', string_agg(DISTINCT c.oid::text, ','),
    (SELECT string_agg(DISTINCT a.rel::text, ',') FROM a WHERE a.name = c.relname),
    (SELECT string_agg(DISTINCT d.rel::text, ',') FROM d WHERE d.name = c.relname))
FROM pg_catalog.pg_class c
WHERE c.relname = ANY($1::text[])
GROUP BY c.relname`, pgArray(missing))
		if err != nil {
			return err
		}
		now := time.Now()
		for _, n := range missing {
			// No relation (a CTE's name, a typo) until the stamp says
			// one was made under it.
			c.names[n] = byName{fetched: now}
		}
		for _, r := range rows {
			b := byName{kinds: r[1], fetched: now}
			if r[2] != "" {
				b.ancestors = strings.Split(r[2], ",")
			}
			if r[3] != "" {
				b.descendants = strings.Split(r[3], ",")
			}
			b.views = oidList(r[4])
			for _, o := range oidList(r[5]) {
				c.involved[o] = true
			}
			c.names[r[0]] = b
			out[r[0]] = b
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(c.names) > maxCached || len(c.involved) > maxCached {
		c.drop()
	}
	return out, nil
}

// typeCode tells which names lead to code of the database's own that
// PostgreSQL runs for a type without a name in the statement: the
// functions of a type's default operator classes (ORDER BY, DISTINCT,
// GROUP BY, UNION, joins, array and row comparisons sort and hash with
// them), of casts from it (also implicit and assignment casts, to
// PostgreSQL's own types), and of a domain's checks (a literal compared
// with a row or an array holding the domain is read as that type, a
// parameter is inferred as it, a row is filled from JSON or hstore).
//
// The answer is keyed as functionNames writes names: castPrefix and a
// type's name, or "#" and its OID, for types whose values run such code
// (also arrays, domains, ranges and rows of them, so a table whose rows
// hold such a value: relPrefix and its name); and functions and
// operators that return such values (their names, opPrefix and the
// operator). An empty answer, the usual one, costs a statement nothing
// more.
func (c *catalog) typeCode(ctx context.Context) (map[string]bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.answer(ctx, func() bool { return c.code == nil || time.Since(c.codeFetched) >= catalogTTL }, func() error {
		folded, err := c.foldedRelations(ctx)
		if err != nil {
			return err
		}
		rows, err := c.query(ctx, typeCodeQuery, "{"+strings.Join(folded, ",")+"}", pgArray(sqlRunners))
		if err != nil {
			return err
		}
		code, types, rels := map[string]bool{}, []string(nil), []string(nil)
		for _, r := range rows {
			if oid, ok := strings.CutPrefix(r[0], "oid:"); ok {
				types = append(types, oid)
			} else if oid, ok := strings.CutPrefix(r[0], "rel#"); ok {
				rels = append(rels, oid)
			} else {
				code[r[0]] = true
			}
		}
		c.code, c.codeTypes, c.codeRels, c.codeFetched = code, types, rels, time.Now()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c.code, nil
}

// relPrefix marks a relation's name among typeCode's names.
const relPrefix = "rel:"

// onOwn is true of a pg_depend row d whose referenced object is one of the
// functions of a query's own CTE, or an operator running one.
const onOwn = `(d.refclassid = 'pg_catalog.pg_proc'::regclass AND d.refobjid IN (SELECT oid FROM own)
    OR d.refclassid = 'pg_catalog.pg_operator'::regclass
      AND d.refobjid IN (SELECT o.oid FROM pg_catalog.pg_operator o WHERE o.oprcode IN (SELECT oid FROM own)))`

// typeCodeQuery reads typeCode's answer. Own functions are those of the
// database's own and extensions' volatile ones (as userFunctions counts
// them): an extension's immutable operator class (citext's) adds nothing.
// A cast from one of PostgreSQL's types to one of the database's runs
// when a value becomes the database's type, which a cast to it names
// (explicit, or in a column or a function's argument of that type): the
// source, text say, would mark nearly every statement. Types reached
// from the found ones are followed by hash joins over every edge (array,
// domain, column, range subtype), built only when something was found.
// "oid:" rows are the types found, for the stamp.
//
// Relations whose reading runs code of the database's own without a type
// are marked too: a row security policy for reads (SELECT or ALL) runs
// its USING expression for the rows a statement reads (any function of
// the database's own there, as its node tree names it: ":funcid N ",
// ":opfuncid N ", ":opno N "; its WITH CHECK's do not count), or one of
// PostgreSQL's that runs SQL given as text: $2), and planning a statement
// folds the constant parts of a table's index expressions and predicates,
// extended statistics' expressions, checks and partition key ($1, found
// by foldedRelations). So are the relations that read them: parents (a
// scan of one plans its children), views, and tables whose policies read
// them; and views that call such code. "rel#" rows are their OIDs, for
// the stamp. Policies count whether or not row security is on: turning
// it on changes no row the stamp reads.
const typeCodeQuery = `WITH RECURSIVE own AS (
  SELECT p.oid FROM pg_catalog.pg_proc p
  WHERE p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
    AND (p.provolatile = 'v' OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
      WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'))),
coded(typ) AS (
  SELECT c.opcintype FROM pg_catalog.pg_opclass c JOIN pg_catalog.pg_amproc a ON a.amprocfamily = c.opcfamily
    WHERE c.opcdefault AND a.amproc IN (SELECT oid FROM own)
  UNION SELECT c.opcintype FROM pg_catalog.pg_opclass c JOIN pg_catalog.pg_amop a ON a.amopfamily = c.opcfamily
    JOIN pg_catalog.pg_operator o ON o.oid = a.amopopr
    WHERE c.opcdefault AND o.oprcode IN (SELECT oid FROM own)
  UNION SELECT k.castsource FROM pg_catalog.pg_cast k WHERE k.castfunc IN (SELECT oid FROM own)
    AND (k.castsource >= 16384 OR k.casttarget < 16384)),
checked(typ) AS (
  SELECT c.contypid FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_depend d
    ON d.classid = 'pg_catalog.pg_constraint'::regclass AND d.objid = c.oid
  WHERE c.contypid <> 0 AND ` + onOwn + `),
edges(child, parent) AS MATERIALIZED (
  SELECT typelem, oid FROM pg_catalog.pg_type WHERE typelem <> 0
  UNION ALL SELECT typbasetype, oid FROM pg_catalog.pg_type WHERE typbasetype <> 0
  UNION ALL SELECT a.atttypid, r.reltype FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class r ON r.oid = a.attrelid
    WHERE a.attnum > 0 AND NOT a.attisdropped AND r.reltype <> 0
  UNION ALL SELECT rngsubtype, rngtypid FROM pg_catalog.pg_range
  UNION ALL SELECT rngtypid, rngmultitypid FROM pg_catalog.pg_range),
up(typ) AS (
  SELECT typ FROM coded UNION SELECT typ FROM checked
  UNION SELECT e.parent FROM up JOIN edges e ON e.child = up.typ),
ownref(classid, objid, mark) AS MATERIALIZED (
  SELECT d.classid, d.objid, CASE WHEN d.refclassid = 'pg_catalog.pg_operator'::regclass THEN ':opno ' ELSE 'id ' END || d.refobjid || ' '
  FROM pg_catalog.pg_depend d
  WHERE d.classid IN ('pg_catalog.pg_policy'::regclass, 'pg_catalog.pg_rewrite'::regclass)
    AND ` + onOwn + `),
planned(rel) AS (
  SELECT unnest($1::oid[])
  UNION SELECT p.polrelid FROM pg_catalog.pg_policy p JOIN ownref r ON r.classid = 'pg_catalog.pg_policy'::regclass AND r.objid = p.oid
    WHERE p.polcmd IN ('r', '*') AND strpos(p.polqual::text, r.mark) > 0
  UNION SELECT p.polrelid FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_proc f ON f.proname = ANY($2::name[])
    AND strpos(p.polqual::text, ':funcid ' || f.oid || ' ') > 0 WHERE p.polcmd IN ('r', '*')
  UNION SELECT w.ev_class FROM pg_catalog.pg_rewrite w JOIN ownref r ON r.classid = 'pg_catalog.pg_rewrite'::regclass AND r.objid = w.oid),
above(child, parent) AS MATERIALIZED (
  SELECT inhrelid, inhparent FROM pg_catalog.pg_inherits WHERE EXISTS (SELECT 1 FROM planned)
  UNION ALL SELECT d.refobjid, w.ev_class FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite w ON w.oid = d.objid
    WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
      AND w.ev_class <> d.refobjid AND EXISTS (SELECT 1 FROM planned)
  UNION ALL SELECT d.refobjid, p.polrelid FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_policy p ON p.oid = d.objid
    WHERE d.classid = 'pg_catalog.pg_policy'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
      AND p.polrelid <> d.refobjid AND p.polcmd IN ('r', '*') AND EXISTS (SELECT 1 FROM planned)),
reads(rel) AS (
  SELECT rel FROM planned
  UNION SELECT a.parent FROM reads JOIN above a ON a.child = reads.rel)
SELECT 'oid:' || typ FROM up
UNION SELECT 'rel#' || rel FROM reads
UNION SELECT '` + relPrefix + `' || c.relname FROM reads JOIN pg_catalog.pg_class c ON c.oid = reads.rel
UNION SELECT '` + castPrefix + `' || t.typname FROM up JOIN pg_catalog.pg_type t ON t.oid = up.typ
UNION SELECT '` + castPrefix + `#' || up.typ FROM up
UNION SELECT '` + relPrefix + `' || c.relname FROM up JOIN pg_catalog.pg_class c ON c.reltype = up.typ
UNION SELECT p.proname FROM pg_catalog.pg_proc p
  WHERE p.prorettype IN (SELECT typ FROM up) OR p.proallargtypes && ARRAY(SELECT typ FROM up)
UNION SELECT '` + opPrefix + `' || o.oprname FROM pg_catalog.pg_operator o WHERE o.oprresult IN (SELECT typ FROM up)`

// foldedRelations returns the OIDs of the relations the planner runs code
// of the database's own for, whatever the statement: it folds every call
// of an immutable function whose arguments are constants (a Var among
// them and it runs per row, if at all), in a table's index expressions
// and predicates, its extended statistics' expressions, its checks
// (constraint exclusion: a partition's children, or any table once a
// session sets constraint_exclusion) and its partition key (also read for
// the partitions). An SQL function is inlined first, its parameters
// becoming the call's arguments: one whose body calls another of the
// database's own with constant arguments (or one such function, with
// any) counts whatever its arguments (see inlined). The stored
// expressions are node trees (pg_node_tree), read by foldsOwn.
func (c *catalog) foldedRelations(ctx context.Context) ([]string, error) {
	rows, err := c.query(ctx, foldQuery)
	if err != nil {
		return nil, err
	}
	own := ownCode{fold: map[string]bool{}, names: map[string]bool{}, ops: map[string]bool{}, sql: map[string]bool{}, sqlNames: map[string]bool{}}
	var bodies [][]string
	for _, r := range rows {
		switch {
		case r[0] == "fold":
			own.fold[r[1]] = true
			own.names[strings.ToLower(r[2])] = true
		case r[0] == "op":
			own.ops[r[1]] = true
		case strings.HasPrefix(r[0], "sql:"):
			bodies = append(bodies, r)
			own.sql[strings.TrimPrefix(r[0], "sql:")], own.sqlNames[strings.ToLower(r[1])] = true, true
		}
	}
	own.inline = inlined(bodies, own)
	var out []string
	seen := map[string]bool{}
	for _, r := range rows {
		if !strings.HasPrefix(r[0], "rel:") || seen[r[0]] {
			continue
		}
		if foldsOwn(r[1], own.fold, own.inline, own.sql) {
			seen[r[0]] = true
			out = append(out, strings.TrimPrefix(r[0], "rel:"))
		}
	}
	return out, nil
}

// ownCode is what foldedRelations knows of the database's own immutable
// functions: their OIDs (fold) and names, the operators running them, and
// those of them written in SQL whose inlining brings a folded call
// (inline, by OID and by name).
type ownCode struct {
	fold, names, ops    map[string]bool
	inline, inlineNames map[string]bool
	// sql: those written in SQL, by OID and by name (sqlNames).
	sql, sqlNames map[string]bool
}

// inlined returns the OIDs of the SQL functions among bodies ("sql:" and
// the OID, the name, the body: a node tree for a BEGIN ATOMIC body, SQL
// text otherwise) whose body, inlined, holds a call the planner folds: a
// function of the database's own with arguments free of columns and
// parameters, or one of these functions with any, until no more are
// found. A body that does not parse counts.
func inlined(bodies [][]string, own ownCode) map[string]bool {
	own.inline, own.inlineNames = map[string]bool{}, map[string]bool{}
	for grew := true; grew; {
		grew = false
		for _, b := range bodies {
			oid := strings.TrimPrefix(b[0], "sql:")
			if own.inline[oid] {
				continue
			}
			var folds bool
			if strings.HasPrefix(b[2], "(") || strings.HasPrefix(b[2], "{") {
				folds = foldsOwn(b[2], own.fold, own.inline, own.sql)
			} else {
				folds = textFolds(b[2], own)
			}
			if folds {
				own.inline[oid], own.inlineNames[strings.ToLower(b[1])] = true, true
				grew = true
			}
		}
	}
	return own.inline
}

// textFolds reports whether SQL text calls, by name (also in attribute
// notation), one of the database's own immutable functions or operators
// with operands the planner may make constants (a function's parameters
// are columns to its body's parser; see varies), or an inlining function
// with any.
func textFolds(sql string, own ownCode) bool {
	tree, err := pg.Parse(sql)
	if err != nil {
		return true
	}
	// As varies: a column or parameter no COALESCE, CASE, AND/OR,
	// NULL, row field or SQL function of the database's own might drop.
	constant := func(nodes ...*pg.Node) bool {
		for _, n := range nodes {
			if n == nil {
				continue
			}
			refers, drops := false, false
			descend(n.ProtoReflect(), func(m protoreflect.Message) bool {
				switch x := m.Interface().(type) {
				case *pg.ColumnRef, *pg.ParamRef:
					refers = true
				case *pg.CoalesceExpr, *pg.CaseExpr, *pg.BoolExpr, *pg.A_Indirection, *pg.RowExpr:
					drops = true
				case *pg.A_Const:
					drops = drops || x.GetIsnull()
				case *pg.FuncCall:
					drops = drops || own.sqlNames[strings.ToLower(lastName(funcName(x.GetFuncname())))]
				}
				return true
			})
			if refers && !drops {
				return false
			}
		}
		return true
	}
	found := false
	descend(tree.ProtoReflect(), func(m protoreflect.Message) bool {
		switch x := m.Interface().(type) {
		case *pg.FuncCall:
			name := strings.ToLower(lastName(funcName(x.GetFuncname())))
			found = found || own.inlineNames[name] || own.names[name] && constant(x.GetArgs()...)
		case *pg.A_Expr:
			found = found || own.ops[lastName(funcName(x.GetName()))] && constant(x.GetLexpr(), x.GetRexpr())
		case *pg.A_Indirection:
			// (arg).name is name(arg): attribute notation.
			for _, ind := range x.GetIndirection() {
				if str := ind.GetString_(); str != nil {
					name := strings.ToLower(str.GetSval())
					found = found || own.inlineNames[name] || own.names[name] && constant(x.GetArg())
				}
			}
		}
		return !found
	})
	return found
}

// foldQuery reads what foldedRelations needs: the database's own
// immutable functions ("fold": OID, name), the operators running them
// ("op"), those written in SQL with their bodies ("sql:" and the OID), and
// relation by relation ("rel:" and the OID), the stored expressions that
// depend on one of them (directly or through an operator). Partitions get
// their parents' keys.
const foldQuery = `WITH RECURSIVE own AS (
  SELECT p.oid FROM pg_catalog.pg_proc p
  WHERE p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
    AND p.provolatile = 'i' AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
      WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')),
dep(classid, objid) AS MATERIALIZED (
  SELECT DISTINCT d.classid, d.objid FROM pg_catalog.pg_depend d
  WHERE d.classid IN ('pg_catalog.pg_class'::regclass, 'pg_catalog.pg_constraint'::regclass, 'pg_catalog.pg_statistic_ext'::regclass)
    AND ` + onOwn + `),
keyed(rel, tree) AS (
  SELECT t.partrelid, t.partexprs::text FROM pg_catalog.pg_partitioned_table t
    JOIN dep ON dep.classid = 'pg_catalog.pg_class'::regclass AND dep.objid = t.partrelid WHERE t.partexprs IS NOT NULL
  UNION SELECT i.inhrelid, keyed.tree FROM keyed JOIN pg_catalog.pg_inherits i ON i.inhparent = keyed.rel)
SELECT 'fold', p.oid::text, p.proname::text FROM pg_catalog.pg_proc p WHERE p.oid IN (SELECT oid FROM own)
UNION ALL SELECT DISTINCT 'op', o.oprname::text, '' FROM pg_catalog.pg_operator o WHERE o.oprcode IN (SELECT oid FROM own)
UNION ALL SELECT 'sql:' || p.oid, p.proname::text, coalesce(p.prosqlbody::text, p.prosrc) FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_language l ON l.oid = p.prolang AND l.lanname = 'sql' WHERE p.oid IN (SELECT oid FROM own)
UNION ALL SELECT 'rel:' || i.indrelid, concat_ws(' ', i.indexprs::text, i.indpred::text), '' FROM pg_catalog.pg_index i
  JOIN dep ON dep.classid = 'pg_catalog.pg_class'::regclass AND dep.objid = i.indexrelid
UNION ALL SELECT 'rel:' || s.stxrelid, s.stxexprs::text, '' FROM pg_catalog.pg_statistic_ext s
  JOIN dep ON dep.classid = 'pg_catalog.pg_statistic_ext'::regclass AND dep.objid = s.oid WHERE s.stxexprs IS NOT NULL
UNION ALL SELECT 'rel:' || k.conrelid, k.conbin::text, '' FROM pg_catalog.pg_constraint k
  JOIN dep ON dep.classid = 'pg_catalog.pg_constraint'::regclass AND dep.objid = k.oid WHERE k.contype = 'c' AND k.conrelid <> 0
UNION ALL SELECT 'rel:' || rel, tree, '' FROM keyed`

// foldsOwn reports whether a node tree (nodeToString's text) calls, as a
// function or an operator's function, one of fold with arguments the
// planner may make constants (see varies), or one of inline at all.
func foldsOwn(tree string, fold, inline, sqlFns map[string]bool) bool {
	for i := 0; i < len(tree); i++ {
		if tree[i] != '{' {
			continue
		}
		var field string
		switch {
		case strings.HasPrefix(tree[i:], "{FUNCEXPR "):
			field = ":funcid "
		case strings.HasPrefix(tree[i:], "{OPEXPR "), strings.HasPrefix(tree[i:], "{DISTINCTEXPR "),
			strings.HasPrefix(tree[i:], "{NULLIFEXPR "), strings.HasPrefix(tree[i:], "{SCALARARRAYOPEXPR "):
			field = ":opfuncid "
		default:
			continue
		}
		node := tree[i : i+nodeEnd(tree[i:])]
		_, rest, ok := strings.Cut(node, field)
		if !ok {
			continue
		}
		id, _, _ := strings.Cut(rest, " ")
		if inline[id] {
			return true
		}
		if !fold[id] {
			continue
		}
		// The node's own arguments come before any nested node's.
		_, args, ok := strings.Cut(node, ":args ")
		if !ok || !varies(args[:nodeEnd(args)], sqlFns) {
			return true
		}
	}
	return false
}

// varies reports whether a call's argument list (a node tree) holds an
// argument the planner cannot make a constant: one with a column or a
// parameter (an inlined SQL body's: the caller's argument) that no
// COALESCE, CASE, AND/OR, NULL constant (a strict function of NULL is
// NULL), field of a row or SQL function of the database's own (sqlFns,
// inlined) might drop on the way (coalesce('k', name) is 'k').
func varies(args string, sqlFns map[string]bool) bool {
	if args == "<>" || !strings.HasPrefix(args, "(") {
		return false
	}
	for rest := strings.TrimSpace(args[1 : len(args)-1]); rest != ""; {
		n := nodeEnd(rest)
		arg := rest[:n]
		rest = strings.TrimSpace(rest[n:])
		if !strings.Contains(arg, "{VAR ") && !strings.Contains(arg, "{PARAM ") {
			continue
		}
		if strings.Contains(arg, "{COALESCEEXPR ") || strings.Contains(arg, "{CASEEXPR ") || strings.Contains(arg, "{BOOLEXPR ") ||
			strings.Contains(arg, ":constisnull true ") || strings.Contains(arg, "{FIELDSELECT ") {
			continue
		}
		calls := false
		for _, part := range strings.Split(arg, ":funcid ")[1:] {
			id, _, _ := strings.Cut(part, " ")
			calls = calls || sqlFns[id]
		}
		if !calls {
			return true
		}
	}
	return false
}

// nodeEnd returns the length of the node or list s starts with ({...},
// (...), or a token), honouring nodeToString's backslash escapes; all of
// s when it is cut short.
func nodeEnd(s string) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '{', '(':
			depth++
		case '}', ')':
			depth--
			if depth <= 0 {
				return i + 1
			}
		case ' ':
			if depth == 0 {
				return i
			}
		}
	}
	return len(s)
}

// oidList reads OIDs written as "1,2,3".
func oidList(s string) []uint32 {
	var out []uint32
	for _, o := range strings.Split(s, ",") {
		if n, err := strconv.ParseUint(o, 10, 32); err == nil {
			out = append(out, uint32(n))
		}
	}
	return out
}

// userFunctions tells, of the function names (bare, as the parser gives
// them: case kept when quoted), which name volatile functions outside
// PostgreSQL's own schemas (they may write, whatever statement calls
// them), and which name functions of the database's own, not an
// extension's (their bodies may read any table). The catalog's built-ins
// are known to the classifier by name.
func (c *catalog) userFunctions(ctx context.Context, names []string) (map[string]funcInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if out, ok := c.cachedFunctions(names); ok {
		return out, nil
	}
	var out map[string]funcInfo
	var missing []string
	collect := func() bool {
		out, missing = map[string]funcInfo{}, missing[:0]
		for _, n := range names {
			if v, ok := c.funcs[n]; ok && time.Since(v.fetched) < catalogTTL {
				out[n] = v
			} else {
				missing = append(missing, n)
			}
		}
		return len(missing) > 0
	}
	err := c.answer(ctx, collect, func() error { return c.fetchFunctions(ctx, missing, out) })
	if err != nil {
		return nil, err
	}
	if len(c.funcs) > maxCached || len(c.involved) > maxCached {
		c.drop()
	}
	return out, nil
}

// cachedFunctions answers userFunctions from the cache when it holds every
// name and need not be checked against the catalog yet; the answer holds
// only the names it says something of (volatile, the database's own,
// unknown, or an attribute name a row may be passed to by),
// so that the common case, PostgreSQL's own operators and functions,
// costs no allocation on the data path. Callers read flags by name, and a
// name missing from the map reads as neither.
func (c *catalog) cachedFunctions(names []string) (map[string]funcInfo, bool) {
	if c.due() {
		return nil, false
	}
	var out map[string]funcInfo
	for _, n := range names {
		v, ok := c.funcs[n]
		if !ok || time.Since(v.fetched) >= catalogTTL {
			return nil, false
		}
		if v.volatile || v.user || v.unknown || v.guards || v.found && strings.HasPrefix(n, attrPrefix) {
			if out == nil {
				out = make(map[string]funcInfo, len(names))
			}
			out[n] = v
		}
	}
	return out, true
}

// fetchFunctions asks the catalog what userFunctions tells of names.
func (c *catalog) fetchFunctions(ctx context.Context, missing []string, out map[string]funcInfo) error {
	var fns, ops, casts, castOIDs, attrs []string
	for _, n := range missing {
		if op, ok := strings.CutPrefix(n, opPrefix); ok {
			ops = append(ops, op)
		} else if t, ok := strings.CutPrefix(n, castPrefix); ok {
			if oid, ok := strings.CutPrefix(t, "#"); ok {
				castOIDs = append(castOIDs, oid)
			} else {
				casts = append(casts, t)
			}
		} else if a, ok := strings.CutPrefix(n, attrPrefix); ok {
			attrs = append(attrs, a)
		} else {
			fns = append(fns, n)
		}
	}
	// Operators are functions too (their oprcode): a user-defined ###
	// may call anything.
	// PostgreSQL's own (pg_catalog, information_schema) answer too, so
	// that a name the answer lacks is no function at all.
	const query = `SELECT %s, bool_or(p.provolatile = 'v' AND n.nspname NOT IN ('pg_catalog', 'information_schema')),
  bool_or(n.nspname NOT IN ('pg_catalog', 'information_schema') AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
    WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')),
  bool_or(EXISTS (WITH RECURSIVE up(classid, objid) AS (
      SELECT 'pg_catalog.pg_proc'::regclass::oid, p.oid
      UNION SELECT n.classid, n.objid FROM up CROSS JOIN LATERAL (
          SELECT g.classid, g.objid FROM pg_catalog.pg_depend g WHERE g.refclassid = up.classid AND g.refobjid = up.objid
          UNION ALL SELECT 'pg_catalog.pg_proc'::regclass::oid, b.oid FROM pg_catalog.pg_proc b
            JOIN pg_catalog.pg_language l ON l.oid = b.prolang AND l.lanname NOT IN ('internal', 'c')
            WHERE b.prosqlbody IS NULL AND b.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
              AND strpos(lower(b.prosrc), lower(COALESCE(
                (SELECT f.proname::text FROM pg_catalog.pg_proc f WHERE up.classid = 'pg_catalog.pg_proc'::regclass AND f.oid = up.objid),
                (SELECT o.oprname::text FROM pg_catalog.pg_operator o WHERE up.classid = 'pg_catalog.pg_operator'::regclass AND o.oid = up.objid)))) > 0) n
        WHERE up.classid IN ('pg_catalog.pg_proc'::regclass, 'pg_catalog.pg_operator'::regclass))
    SELECT 1 FROM up WHERE up.classid IN ('pg_catalog.pg_trigger'::regclass, 'pg_catalog.pg_rewrite'::regclass,
        'pg_catalog.pg_policy'::regclass, 'pg_catalog.pg_constraint'::regclass, 'pg_catalog.pg_attrdef'::regclass,
        'pg_catalog.pg_event_trigger'::regclass, 'pg_catalog.pg_type'::regclass,
        'pg_catalog.pg_amproc'::regclass, 'pg_catalog.pg_amop'::regclass)
      OR up.classid = 'pg_catalog.pg_class'::regclass AND EXISTS (SELECT 1 FROM pg_catalog.pg_class x WHERE x.oid = up.objid AND x.relkind IN ('i', 'I', 'p'))))
FROM %s
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE %s = ANY($1::%s[])
GROUP BY 1`
	// An operator is the database's own when it or its function is: one
	// made in public over pg_catalog's pg_read_file runs that function
	// under a name pg_catalog does not vouch for.
	const opQuery = `SELECT o.oprname, bool_or(p.provolatile = 'v' AND (n.nspname NOT IN ('pg_catalog', 'information_schema')
    OR m.nspname NOT IN ('pg_catalog', 'information_schema'))),
  bool_or(n.nspname NOT IN ('pg_catalog', 'information_schema') AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
      WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
    OR m.nspname NOT IN ('pg_catalog', 'information_schema') AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
      WHERE d.classid = 'pg_catalog.pg_operator'::regclass AND d.objid = o.oid AND d.deptype = 'e'))
FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_proc p ON p.oid = o.oprcode
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
JOIN pg_catalog.pg_namespace m ON m.oid = o.oprnamespace
WHERE o.oprname = ANY($1::text[])
GROUP BY 1`
	now := time.Now()
	for _, q := range []struct {
		names       []string
		sql, prefix string
	}{
		{fns, fmt.Sprintf(query, "p.proname", "pg_catalog.pg_proc p", "p.proname", "text"), ""},
		{ops, opQuery, opPrefix},
		// A cast to a domain runs the functions its constraints call,
		// and so does one to a type a domain is reached from: the base
		// of a domain, the elements of an array, the fields of a row.
		{casts, fmt.Sprintf(query, "t.typname", castFrom, "t.typname", "text"), castPrefix},
		// A Parse's parameter types, by OID.
		{castOIDs, fmt.Sprintf(query, "t.oid", castFrom, "t.oid", "oid"), castPrefix + "#"},
		// Attribute notation passes a row as the only argument: a function
		// that cannot take one alone, or not a row (a composite, a domain,
		// or a pseudo-type a row fits: record, "any", anyelement and
		// their kin, not anyarray, anyrange or anyenum), is not called by
		// it, so a column that shares its name is only a column.
		{attrs, fmt.Sprintf(query, "p.proname", `pg_catalog.pg_proc p JOIN pg_catalog.pg_type a ON a.oid = p.proargtypes[0]
  AND (a.typtype IN ('c', 'd') OR a.typname IN ('record', 'any', 'anyelement', 'anynonarray', 'anycompatible', 'anycompatiblenonarray'))
  AND p.pronargs - p.pronargdefaults <= 1`, "p.proname", "text"), attrPrefix},
	} {
		if len(q.names) == 0 {
			continue
		}
		rows, err := c.query(ctx, q.sql, pgArray(q.names))
		if err != nil {
			return err
		}
		for _, n := range q.names {
			// Casts and attribute names are not asked whether they
			// exist (see session.ownFunction).
			f := funcInfo{unknown: q.prefix == "" || q.prefix == opPrefix, fetched: now}
			c.funcs[q.prefix+n] = f
			out[q.prefix+n] = f
		}
		for _, r := range rows {
			f := funcInfo{volatile: r[1] == "t", user: r[2] == "t", guards: len(r) > 3 && r[3] == "t", found: true, fetched: now}
			c.funcs[q.prefix+r[0]] = f
			out[q.prefix+r[0]] = f
		}
	}
	// uuid('...') is no function but a cast written as a call: a name a
	// type has is no unknown function.
	var unknown []string
	for _, n := range fns {
		if c.funcs[n].unknown {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		rows, err := c.query(ctx, "SELECT DISTINCT typname::text FROM pg_catalog.pg_type WHERE typname = ANY($1::name[])", pgArray(unknown))
		if err != nil {
			return err
		}
		for _, r := range rows {
			f := funcInfo{fetched: now}
			c.funcs[r[0]] = f
			out[r[0]] = f
		}
	}
	return nil
}

// castFrom joins the types cast to (t) with the functions a cast to them
// runs (p): the casts' own, and those the checks of the domains reached
// from them call.
var castFrom = "pg_catalog.pg_type t " + reached("t.oid") + ` ON true
JOIN (SELECT k.casttarget AS typ, k.castfunc AS fn FROM pg_catalog.pg_cast k
    UNION ALL SELECT c.contypid, e.refobjid FROM pg_catalog.pg_constraint c
      JOIN pg_catalog.pg_depend e ON e.classid = 'pg_catalog.pg_constraint'::regclass AND e.objid = c.oid
        AND e.refclassid = 'pg_catalog.pg_proc'::regclass
      WHERE c.contypid <> 0
    UNION ALL SELECT c.contypid, o.oprcode FROM pg_catalog.pg_constraint c
      JOIN pg_catalog.pg_depend e ON e.classid = 'pg_catalog.pg_constraint'::regclass AND e.objid = c.oid
        AND e.refclassid = 'pg_catalog.pg_operator'::regclass
      JOIN pg_catalog.pg_operator o ON o.oid = e.refobjid
      WHERE c.contypid <> 0) f ON f.typ = reach.typ AND t.typnamespace <> 'pg_catalog'::regnamespace
JOIN pg_catalog.pg_proc p ON p.oid = f.fn`

// reached is a lateral subquery, reach, of the types reached from the
// type col: itself, a domain's base, an array's elements, a row's fields,
// a range's subtype (a domain's checks run when a value of any of them is
// cast). Each step follows indexes, and a type is visited once.
func reached(col string) string {
	return `JOIN LATERAL (WITH RECURSIVE r(typ) AS (
    SELECT ` + col + `
    UNION SELECT n.typ FROM r JOIN pg_catalog.pg_type y ON y.oid = r.typ
      CROSS JOIN LATERAL (SELECT y.typbasetype WHERE y.typbasetype <> 0
        UNION ALL SELECT y.typelem WHERE y.typelem <> 0
        UNION ALL SELECT a.atttypid FROM pg_catalog.pg_attribute a
          WHERE y.typrelid <> 0 AND a.attrelid = y.typrelid AND a.attnum > 0 AND NOT a.attisdropped
        UNION ALL SELECT g.rngsubtype FROM pg_catalog.pg_range g WHERE g.rngtypid = y.oid) n(typ))
  SELECT typ FROM r) reach`
}

// opPrefix marks an operator's name among function names; castPrefix, a
// type cast to (the functions of the casts to it); attrPrefix, a name
// after a dot (t.name), which calls name(t) when t has no such column.
const (
	opPrefix   = "op:"
	castPrefix = "cast:"
	attrPrefix = "attr:"
)

type funcInfo struct {
	user, volatile bool
	// unknown: no function or operator of the name, in any schema (one
	// made in a transaction the catalog's connection cannot see).
	unknown bool
	// found: the catalog has one of the name (for an attribute name: a
	// function a row alone may be passed to, to_jsonb as well as one of
	// the database's own).
	found bool
	// guards: a trigger, rule, view, row security policy, check
	// constraint, default (a domain's too), index, partition key or
	// operator class calls a function of the name, also through operators
	// and functions whose bodies PostgreSQL parsed (BEGIN ATOMIC), or
	// whose bodies are text (PL/pgSQL, SQL as a string) and hold the name:
	// replacing it changes what they do. PostgreSQL records no dependency
	// on what a text body calls; a body that holds the name anywhere, even
	// in a comment or as part of a longer word, is taken to call it: the
	// mistake costs only a statement needing drop.
	guards  bool
	fetched time.Time
}

// pgArray writes names as a text[] literal.
func pgArray(names []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		arrayQuote.WriteString(&b, n)
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

var arrayQuote = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

func (c *catalog) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.disconnect()
}

// disconnect is close with c.mu held.
func (c *catalog) disconnect() {
	if c.conn != nil {
		c.conn.Close(context.Background())
		c.conn = nil
	}
}

// relations returns the relations with the given OIDs, querying those not
// cached yet.
func (c *catalog) relations(ctx context.Context, oids []uint32) (map[uint32]*relation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out map[uint32]*relation
	var missing []string
	collect := func() bool {
		out, missing = map[uint32]*relation{}, missing[:0]
		for _, o := range oids {
			if r, ok := c.rels[o]; ok && time.Since(r.fetched) < catalogTTL {
				out[o] = r
			} else if o != 0 {
				missing = append(missing, strconv.FormatUint(uint64(o), 10))
			}
		}
		return len(missing) > 0
	}
	err := c.answer(ctx, collect, func() error { return c.fetchRelations(ctx, missing, out) })
	if err != nil {
		return nil, err
	}
	if len(c.rels) > maxCached || len(c.involved) > maxCached || len(c.columns) > maxCached {
		c.drop()
	}
	return out, nil
}

// fetchRelations asks the catalog what relations tells of the OIDs.
func (c *catalog) fetchRelations(ctx context.Context, missing []string, out map[uint32]*relation) error {
	rows, err := c.query(ctx, `SELECT c.oid, n.nspname, c.relname, c.relkind, a.attnum, a.attname
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.oid = ANY($1::oid[])`, "{"+strings.Join(missing, ",")+"}")
	if err != nil {
		return err
	}
	now := time.Now()
	fresh := map[uint32]*relation{}
	for _, r := range rows {
		oid, _ := strconv.ParseUint(r[0], 10, 32)
		rel := fresh[uint32(oid)]
		if rel == nil {
			rel = &relation{schema: r[1], name: r[2], columns: map[int16]string{}, fetched: now}
			if len(r[3]) > 0 {
				rel.kind = r[3][0]
			}
			fresh[uint32(oid)] = rel
		}
		n, _ := strconv.ParseInt(r[4], 10, 16)
		rel.columns[int16(n)] = r[5]
	}
	for _, s := range missing {
		// An OID the catalog does not know is covered too: a relation
		// created under it later is not missed.
		oid, _ := strconv.ParseUint(s, 10, 32)
		c.involved[uint32(oid)] = true
		c.columns[uint32(oid)] = true
	}
	for oid, rel := range fresh {
		if rel.kind == 'v' || rel.kind == 'm' {
			if rel.deps, rel.opaque, rel.runs, err = c.viewDeps(ctx, oid, 0); err != nil {
				return err
			}
		}
		if rel.ancestors, rel.descendants, err = c.kin(ctx, strconv.FormatUint(uint64(oid), 10)); err != nil {
			return err
		}
		c.rels[oid] = rel
		out[oid] = rel
	}
	return nil
}

// viewDeps lists the base-table columns a view reads, through views of
// views, with the same columns of those tables' parents and children (a
// parent's rows include its children's), and reports whether what it
// returns is beyond them: it calls a function of the database's own, or
// reads what statements may not name while masks apply (column
// statistics, other sessions' statements, SQL run from text:
// statsViews, activityViews, sqlRunners). runs: the operations, beyond
// select, that a statement calling what the definition calls would need,
// itself or through the views it reads (set_config of the role is set
// role), and function when it calls a function of the database's own or
// an extension's volatile one.
func (c *catalog) viewDeps(ctx context.Context, oid uint32, depth int) (deps []string, opaque bool, runs []string, err error) {
	if depth > 16 {
		// Deeper than corral follows: taken as a view that may read
		// or run anything (its columns are withheld), not as an error,
		// which would drop every cached answer each time it is asked
		// about.
		return nil, true, []string{"function"}, nil
	}
	id := strconv.FormatUint(uint64(oid), 10)
	rows, err := c.query(ctx, `SELECT DISTINCT rc.oid, rn.nspname, rc.relname, rc.relkind, a.attname
FROM pg_catalog.pg_rewrite r
JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
  AND d.refclassid = 'pg_catalog.pg_class'::regclass
JOIN pg_catalog.pg_class rc ON rc.oid = d.refobjid
JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid AND d.refobjsubid > 0
WHERE r.ev_class = $1::oid AND d.refobjid <> $1::oid`, id)
	if err != nil {
		return nil, false, nil, err
	}
	// Functions it calls directly, or through an operator or a cast: of
	// the database's own, and extensions' volatile ones.
	// A value cast to a domain is checked by the domain's constraints
	// (and those of domains reached from the type: bases, array
	// elements, row fields): the functions they call run too.
	own, err := c.query(ctx, `WITH d AS (SELECT d.refclassid, d.refobjid FROM pg_catalog.pg_rewrite r
  JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
  WHERE r.ev_class = $1::oid),
fns(oid) AS (
  SELECT refobjid FROM d WHERE refclassid = 'pg_catalog.pg_proc'::regclass
  UNION SELECT o.oprcode::oid FROM d JOIN pg_catalog.pg_operator o ON d.refclassid = 'pg_catalog.pg_operator'::regclass AND o.oid = d.refobjid
  UNION SELECT k.castfunc FROM d JOIN pg_catalog.pg_cast k ON d.refclassid = 'pg_catalog.pg_cast'::regclass AND k.oid = d.refobjid
  UNION SELECT e.refobjid FROM d
    `+reached("d.refobjid")+` ON d.refclassid = 'pg_catalog.pg_type'::regclass
    JOIN pg_catalog.pg_constraint c ON c.contypid = reach.typ
    JOIN pg_catalog.pg_depend e ON e.classid = 'pg_catalog.pg_constraint'::regclass AND e.objid = c.oid
      AND e.refclassid = 'pg_catalog.pg_proc'::regclass),
f AS (SELECT p.provolatile, EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
    WHERE e.classid = 'pg_catalog.pg_proc'::regclass AND e.objid = p.oid AND e.deptype = 'e') AS ext
  FROM fns JOIN pg_catalog.pg_proc p ON p.oid = fns.oid
  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema'))
SELECT EXISTS (SELECT 1 FROM f WHERE NOT ext), EXISTS (SELECT 1 FROM f WHERE ext AND provolatile = 'v')`, id)
	if err != nil {
		return nil, false, nil, err
	}
	if len(own) != 1 || len(own[0]) != 2 {
		return nil, false, nil, errors.New("catalog query: no answer on a view's functions")
	}
	opaque = own[0][0] == "t"
	if opaque || own[0][1] == "t" {
		runs = []string{"function"}
	}
	// PostgreSQL records no dependency on its own functions and relations
	// (they are pinned): what the definition calls by name is read from
	// it. PostgreSQL's own views are its own (pg_stat_ssl calls
	// pg_stat_get_activity for its TLS columns); statements name them
	// directly.
	def, err := c.query(ctx, `SELECT CASE WHEN c.relnamespace IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
  THEN '' ELSE pg_catalog.pg_get_viewdef(c.oid) END FROM pg_catalog.pg_class c WHERE c.oid = $1::oid`, id)
	if err != nil {
		return nil, false, nil, err
	}
	if len(def) != 1 || len(def[0]) != 1 {
		opaque, runs = true, union(runs, []string{"function"})
	} else if def[0][0] != "" {
		beyond, ops := readsBeyondColumns(def[0][0])
		opaque, runs = opaque || beyond, union(runs, ops)
	}
	seen := map[uint32]bool{}
	kinOf := map[string][]string{} // a table's rows come once per column read
	for _, r := range rows {
		col := r[4]
		if col == "" {
			col = "*" // the whole row: every column of it
		}
		deps = append(deps, r[1]+"."+r[2]+"."+col)
		sub, _ := strconv.ParseUint(r[0], 10, 32)
		c.involved[uint32(sub)] = true
		if r[4] != "" {
			c.columns[uint32(sub)] = true // a column read by name
		}
		switch r[3] {
		case "v", "m":
			if !seen[uint32(sub)] {
				seen[uint32(sub)] = true
				more, o, subRuns, err := c.viewDeps(ctx, uint32(sub), depth+1)
				if err != nil {
					return nil, false, nil, err
				}
				deps = append(deps, more...)
				opaque = opaque || o
				if r[3] == "v" {
					runs = union(runs, subRuns) // a materialized view's query ran at its refresh
				}
			}
		case "r", "p":
			k, ok := kinOf[r[0]]
			if !ok {
				up, down, err := c.kin(ctx, r[0])
				if err != nil {
					return nil, false, nil, err
				}
				k = slices.Concat(up, down)
				kinOf[r[0]] = k
			}
			for _, t := range k {
				deps = append(deps, t+"."+col)
			}
		}
	}
	return deps, opaque, runs, nil
}

// readsBeyondColumns reports whether a view's definition calls what
// statements may not while masks apply (sqlRunners), or names statistics
// or other sessions' statements (statsViews, activityViews); and the
// operations beyond select the definition, as a statement, needs. A
// definition that does not parse counts as beyond, and as function.
func readsBeyondColumns(def string) (beyond bool, ops []string) {
	stmts, err := Classify(def)
	if err != nil {
		return true, []string{"function"}
	}
	for _, st := range stmts {
		ops = union(ops, slices.DeleteFunc(slices.Clone(st.Ops), func(op string) bool { return op == "select" }))
		for _, c := range st.Calls {
			if slices.Contains(sqlRunners, c) {
				beyond = true
			}
		}
		for _, t := range st.Tables {
			if base := strings.ToLower(lastName(t)); slices.Contains(statsViews, base) || slices.Contains(activityViews, base) {
				beyond = true
			}
		}
	}
	return beyond, ops
}

// kin returns the tables a table (by OID) inherits from or is a partition
// of, and those that inherit from it or are its partitions, at any depth,
// as "schema.table". They join the relations the stamp covers.
func (c *catalog) kin(ctx context.Context, oid string) (ancestors, descendants []string, err error) {
	rows, err := c.query(ctx, `WITH RECURSIVE up(rel) AS (
  SELECT inhparent FROM pg_catalog.pg_inherits WHERE inhrelid = $1::oid
  UNION SELECT i.inhparent FROM up JOIN pg_catalog.pg_inherits i ON i.inhrelid = up.rel),
down(rel) AS (
  SELECT inhrelid FROM pg_catalog.pg_inherits WHERE inhparent = $1::oid
  UNION SELECT i.inhrelid FROM down JOIN pg_catalog.pg_inherits i ON i.inhparent = down.rel)
SELECT 'up', n.nspname, c.relname, c.oid FROM up JOIN pg_catalog.pg_class c ON c.oid = up.rel JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
UNION ALL
SELECT 'down', n.nspname, c.relname, c.oid FROM down JOIN pg_catalog.pg_class c ON c.oid = down.rel JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace`, oid)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range rows {
		for _, o := range oidList(r[3]) {
			c.involved[o] = true
		}
		if r[0] == "up" {
			ancestors = append(ancestors, r[1]+"."+r[2])
		} else {
			descendants = append(descendants, r[1]+"."+r[2])
		}
	}
	return ancestors, descendants, nil
}

// maxCached bounds each part of the cache, and the relations the stamp
// covers: the stamp's cost grows with them, and it is paid under the
// catalog's lock.
const maxCached = 8192

// catalogQueryTimeout bounds one question to the catalog.
const catalogQueryTimeout = 5 * time.Second

// firstNormalOID is where the OIDs of objects made after initdb start
// (FirstNormalObjectId): below it, a function is PostgreSQL's own.
const firstNormalOID = 16384

// functionName is the schema-qualified name of the function oid, as the
// protocol's function call names it; "" when no function has it.
func (c *catalog) functionName(ctx context.Context, oid uint32) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if name, ok := c.procs[oid]; ok {
		return name, nil
	}
	if err := c.ensure(ctx); err != nil {
		return "", err
	}
	rows, err := c.query(ctx, `SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(p.proname)
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = $1::oid`, strconv.FormatUint(uint64(oid), 10))
	if err != nil || len(rows) == 0 {
		return "", err
	}
	if oid < firstNormalOID {
		if c.procs == nil {
			c.procs = map[uint32]string{}
		}
		c.procs[oid] = rows[0][0]
	}
	return rows[0][0], nil
}

func (c *catalog) ensure(ctx context.Context) error {
	if c.conn != nil && !c.conn.IsClosed() {
		return nil
	}
	conn, err := c.connect(ctx)
	if err != nil {
		return fmt.Errorf("catalog connection: %w", err)
	}
	c.conn = conn
	return nil
}

func (c *catalog) query(ctx context.Context, sql string, args ...string) ([][]string, error) {
	if c.conn == nil {
		return nil, errors.New("catalog query: the connection was lost")
	}
	params := make([][]byte, len(args))
	for i, a := range args {
		params[i] = []byte(a)
	}
	// Not a prepared statement, not even the stamp: the target may be a
	// pooler that runs each transaction on another server connection.
	// Bounded in time (pgconn gives up the connection, and the next
	// question opens another): a question may wait on a lock a session
	// holds (pg_get_viewdef of a view it redefines in an open
	// transaction) while every session of the database waits on the
	// catalog. The session asking is refused what could not be checked.
	ctx, cancel := context.WithTimeout(ctx, catalogQueryTimeout)
	defer cancel()
	res := c.conn.ExecParams(ctx, sql, params, nil, nil, nil).Read()
	if res.Err != nil {
		if c.conn.IsClosed() {
			c.conn = nil
		}
		return nil, fmt.Errorf("catalog query: %w", res.Err)
	}
	out := make([][]string, len(res.Rows))
	for i, row := range res.Rows {
		out[i] = make([]string, len(row))
		for j, v := range row {
			out[i][j] = string(v)
		}
	}
	return out, nil
}
