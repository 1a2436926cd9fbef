//go:build linux

package postgres

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/corral-dev/corral/internal/testutil"
)

// catalogOn starts PostgreSQL with schema and returns a catalog on it,
// and the OID of a relation by name.
func catalogOn(t *testing.T, schema string) (*catalog, *testutil.Postgres, func(string) uint32) {
	t.Helper()
	testutil.RequireRoot(t)
	pg := testutil.StartPostgres(t, testutil.NewHost(t), testutil.PostgresOptions{})
	pg.Exec(t, "postgres", schema)
	cat := newCatalog(func(ctx context.Context) (*pgconn.PgConn, error) {
		return pgconn.Connect(ctx, fmt.Sprintf("host=%s port=5432 user=postgres dbname=postgres sslmode=disable", pg.Dir))
	})
	t.Cleanup(cat.close)
	oid := func(name string) uint32 {
		n, err := strconv.ParseUint(pg.Exec(t, "postgres", "SELECT '"+name+"'::regclass::oid")[0][0], 10, 32)
		if err != nil {
			t.Fatal(err)
		}
		return uint32(n)
	}
	return cat, pg, oid
}

// A migration outside corral changes the catalog rows behind cached
// answers without a word on any connection corral holds. The catalog's
// next check (at most catalogRecheck after the last) sees every kind of
// change masking depends on, and drops the cache; maintenance that
// rewrites no definition (ANALYZE, VACUUM, rows written) does not.
func TestCatalogSeesMigrations(t *testing.T) {
	cat, pg, oid := catalogOn(t, `CREATE TABLE customers (id int, name text, email text);
CREATE VIEW contacts AS SELECT id, name AS contact FROM customers;
CREATE VIEW outer_contacts AS SELECT contact FROM contacts;
CREATE FUNCTION tidy(text) RETURNS text IMMUTABLE LANGUAGE sql AS 'SELECT $1'`)
	ctx := t.Context()
	customers, contacts, outer := oid("customers"), oid("contacts"), oid("outer_contacts")

	// ask fills the cache with everything the cases look at, and says
	// what it holds.
	ask := func() (map[uint32]*relation, map[string]byName, map[string]funcInfo) {
		t.Helper()
		rels, err := cat.relations(ctx, []uint32{customers, contacts, outer})
		if err != nil {
			t.Fatal(err)
		}
		names, err := cat.lookupNames(ctx, []string{"customers", "contacts", "people"})
		if err != nil {
			t.Fatal(err)
		}
		fns, err := cat.userFunctions(ctx, []string{"tidy"})
		if err != nil {
			t.Fatal(err)
		}
		return rels, names, fns
	}
	// recheck makes the next question check the catalog, as it does once
	// catalogRecheck has passed, and reports whether the cache was
	// dropped.
	recheck := func() bool {
		t.Helper()
		gen := cat.gen.Load()
		cat.mu.Lock()
		cat.checked = time.Now().Add(-catalogRecheck)
		cat.mu.Unlock()
		ask()
		return cat.gen.Load() != gen
	}

	rels, _, _ := ask()
	if !slices.Contains(rels[outer].deps, "public.customers.name") {
		t.Fatalf("outer_contacts reads %v, want customers.name among them", rels[outer].deps)
	}
	for _, c := range []struct {
		what, sql string
		changes   bool
		check     func() string // what the cache says after the check, when wrong
	}{
		{"nothing", "SELECT 1", false, nil},
		{"rows written", "INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com'); UPDATE customers SET name = 'Ada L.'", false, nil},
		{"VACUUM and ANALYZE", "VACUUM ANALYZE customers", false, nil},
		{"a view redefined to read the masked column", "CREATE OR REPLACE VIEW contacts AS SELECT id, email AS contact FROM customers", true, func() string {
			rels, _, _ := ask()
			if d := rels[outer].deps; !slices.Contains(d, "public.customers.email") {
				return fmt.Sprintf("the view over it still reads %v", d)
			}
			return ""
		}},
		{"a column renamed", "ALTER TABLE customers RENAME COLUMN name TO full_name", true, func() string {
			rels, _, _ := ask()
			if n := rels[customers].columns[2]; n != "full_name" {
				return "column 2 is still " + n
			}
			return ""
		}},
		{"a child table", "CREATE TABLE vip () INHERITS (customers)", true, func() string {
			rels, names, _ := ask()
			if !slices.Contains(rels[customers].descendants, "public.vip") || !slices.Contains(names["customers"].descendants, "vip") {
				return fmt.Sprintf("children %v, %v", rels[customers].descendants, names["customers"].descendants)
			}
			return ""
		}},
		{"a grandchild", "CREATE TABLE vip_gold () INHERITS (vip)", true, nil},
		{"a relation under a name that was none", "CREATE TABLE people (email text)", true, func() string {
			if _, names, _ := ask(); names["people"].kinds != "r" {
				return "people is still no relation"
			}
			return ""
		}},
		{"a relation renamed to a name asked about", "ALTER TABLE contacts RENAME TO old_contacts; CREATE VIEW contacts AS SELECT email FROM customers", true, func() string {
			if _, names, _ := ask(); len(names["contacts"].views) != 1 || names["contacts"].views[0] == contacts {
				return fmt.Sprintf("contacts is still view %v", names["contacts"].views)
			}
			return ""
		}},
		{"a function redefined", "CREATE OR REPLACE FUNCTION tidy(text) RETURNS text VOLATILE LANGUAGE sql AS 'SELECT $1'", true, func() string {
			if _, _, fns := ask(); !fns["tidy"].volatile {
				return "tidy is still immutable"
			}
			return ""
		}},
		{"a function made an extension's", "ALTER EXTENSION plpgsql ADD FUNCTION tidy(text)", true, func() string {
			if _, _, fns := ask(); fns["tidy"].user {
				return "tidy is still the database's own"
			}
			return ""
		}},
		{"a schema renamed", "ALTER SCHEMA public RENAME TO shop", true, func() string {
			if rels, _, _ := ask(); rels[customers].schema != "shop" {
				return "the schema is still " + rels[customers].schema
			}
			return ""
		}},
	} {
		pg.Exec(t, "postgres", c.sql)
		if got := recheck(); got != c.changes {
			t.Errorf("%s: the cache was dropped: %v, want %v", c.what, got, c.changes)
		}
		if c.check != nil {
			if wrong := c.check(); wrong != "" {
				t.Errorf("%s: %s", c.what, wrong)
			}
		}
	}
}

// Answers fetched at different times describe one catalog: a change
// between two fetches drops the older answers with the newer fetch,
// before the next check would.
func TestCatalogFetchesSeeOneCatalog(t *testing.T) {
	cat, pg, _ := catalogOn(t, `CREATE TABLE customers (id int, email text); CREATE TABLE orders (id int)`)
	if _, err := cat.lookupNames(t.Context(), []string{"customers"}); err != nil {
		t.Fatal(err)
	}
	gen := cat.gen.Load()
	pg.Exec(t, "postgres", "ALTER TABLE customers RENAME TO customers_old; CREATE VIEW customers AS SELECT id, email FROM customers_old")
	names, err := cat.lookupNames(t.Context(), []string{"customers", "orders"})
	if err != nil {
		t.Fatal(err)
	}
	if cat.gen.Load() == gen || names["customers"].kinds != "v" {
		t.Fatalf("customers is %q (cache dropped: %v), want the view", names["customers"].kinds, cat.gen.Load() != gen)
	}
}

// A view nested deeper than corral follows is taken as one that may read
// anything (its columns withheld), not as an error: an error would drop
// every cached answer each time a statement named it.
func TestCatalogDeepViews(t *testing.T) {
	sql := "CREATE TABLE customers (id int, email text); CREATE VIEW v0 AS SELECT id FROM customers;"
	for i := 1; i <= 20; i++ {
		sql += fmt.Sprintf(" CREATE VIEW v%d AS SELECT id FROM v%d;", i, i-1)
	}
	cat, _, oid := catalogOn(t, sql)
	shallow, deep := oid("v3"), oid("v20")
	if _, err := cat.relations(t.Context(), []uint32{shallow}); err != nil {
		t.Fatal(err)
	}
	gen := cat.gen.Load()
	rels, err := cat.relations(t.Context(), []uint32{deep})
	if err != nil || !rels[deep].opaque {
		t.Fatalf("v20: %+v, %v; want it withheld", rels[deep], err)
	}
	if cat.gen.Load() != gen {
		t.Error("asking of a deep view dropped the cache")
	}
}

// A view's answer holds the names of its tables' columns: a column of the
// table renamed (the masked one moved under the name the view reads) is
// seen by the check even when only the view was asked about.
func TestCatalogSeesColumnsUnderAView(t *testing.T) {
	cat, pg, oid := catalogOn(t, `CREATE TABLE customers (id int, name text, email text);
CREATE VIEW contacts AS SELECT id, name AS contact FROM customers`)
	contacts := oid("contacts")
	if _, err := cat.relations(t.Context(), []uint32{contacts}); err != nil {
		t.Fatal(err)
	}
	pg.Exec(t, "postgres", "ALTER TABLE customers RENAME COLUMN email TO email_old; ALTER TABLE customers RENAME COLUMN name TO email")
	cat.mu.Lock()
	cat.checked = time.Now().Add(-catalogRecheck)
	cat.mu.Unlock()
	rels, err := cat.relations(t.Context(), []uint32{contacts})
	if err != nil || !slices.Contains(rels[contacts].deps, "public.customers.email") {
		t.Fatalf("the view reads %v (%v), want customers.email", rels[contacts].deps, err)
	}
}

// A name after a dot is a call with the whole row only where a row fits
// the function's argument: to_jsonb and count take one, lower (a range)
// and max (an array or an enum) do not, so c.lower is only a column. The
// answer is the same from the cache.
func TestCatalogRowFunctions(t *testing.T) {
	cat, _, _ := catalogOn(t, `CREATE TYPE pair AS (a int, b int);
CREATE FUNCTION sum_of(pair) RETURNS int LANGUAGE sql AS 'SELECT $1.a + $1.b'`)
	names := []string{attrPrefix + "to_jsonb", attrPrefix + "count", attrPrefix + "row_to_json", attrPrefix + "sum_of",
		attrPrefix + "lower", attrPrefix + "max", attrPrefix + "cardinality", attrPrefix + "email"}
	want := map[string]bool{attrPrefix + "to_jsonb": true, attrPrefix + "count": true, attrPrefix + "row_to_json": true, attrPrefix + "sum_of": true}
	for _, round := range []string{"fetched", "cached"} {
		fns, err := cat.userFunctions(t.Context(), names)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if fns[n].found != want[n] {
				t.Errorf("%s: %s found %v, want %v", round, n, fns[n].found, want[n])
			}
		}
	}
}
