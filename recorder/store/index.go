package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
	"unicode/utf8"
)

// Session states in the index.
const (
	StateOpen      = "open"      // being recorded
	StateComplete  = "complete"  // ended with its end record
	StateTruncated = "truncated" // cut short (the agent stopped without ending it)
)

// Entry is what the index knows of one recording.
type Entry struct {
	ID       string
	Name     string // the Backend's name of the file
	Started  time.Time
	Ended    time.Time // zero while open or when truncated
	State    string
	Target   string
	Protocol string
	Client   string
	OrigDst  string
	Decision string

	// Workload facts, for search.
	Exe            string
	Unit           string
	User           string
	UID            uint32
	CgroupPath     string
	PodNamespace   string
	PodName        string
	ServiceAccount string
	OIDCSubject    string

	Statements uint64
	Denied     uint64
	Records    uint64
	LastHash   string
	Bytes      int64
}

// Index lists recordings.
type Index struct {
	db *sql.DB
}

const schema = `
CREATE TABLE IF NOT EXISTS sessions (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	started INTEGER NOT NULL,
	ended INTEGER NOT NULL DEFAULT 0,
	state TEXT NOT NULL,
	target TEXT NOT NULL,
	protocol TEXT NOT NULL,
	client TEXT NOT NULL,
	orig_dst TEXT NOT NULL,
	decision TEXT NOT NULL,
	exe TEXT NOT NULL,
	unit TEXT NOT NULL,
	user TEXT NOT NULL,
	uid INTEGER NOT NULL,
	cgroup_path TEXT NOT NULL,
	pod_namespace TEXT NOT NULL,
	pod_name TEXT NOT NULL,
	service_account TEXT NOT NULL,
	oidc_subject TEXT NOT NULL,
	statements INTEGER NOT NULL DEFAULT 0,
	denied INTEGER NOT NULL DEFAULT 0,
	records INTEGER NOT NULL DEFAULT 0,
	last_hash TEXT NOT NULL DEFAULT '',
	bytes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sessions_started ON sessions(started);
CREATE INDEX IF NOT EXISTS sessions_target ON sessions(target, started);
`

// OpenIndex opens (creating) the index database at path.
func OpenIndex(path string) (*Index, error) {
	// WAL lets readers (the command line) run beside the writer; the
	// busy timeout covers the moments both want the write lock.
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, fmt.Errorf("recording index %s: %w", path, err)
	}
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("recording index %s: %w", path, err)
	}
	return &Index{db: db}, nil
}

// OpenIndexReadOnly opens an existing index for reading only.
func OpenIndexReadOnly(path string) (*Index, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, fmt.Errorf("recording index %s: %w", path, err)
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("recording index %s: %w", path, err)
	}
	return &Index{db: db}, nil
}

func (ix *Index) Close() error { return ix.db.Close() }

const columns = `id, name, started, ended, state, target, protocol, client, orig_dst, decision,
	exe, unit, user, uid, cgroup_path, pod_namespace, pod_name, service_account, oidc_subject,
	statements, denied, records, last_hash, bytes`

// Put inserts or replaces an entry.
func (ix *Index) Put(ctx context.Context, e *Entry) error {
	_, err := ix.db.ExecContext(ctx, `INSERT OR REPLACE INTO sessions (`+columns+`)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		e.ID, e.Name, e.Started.UnixNano(), unixNano(e.Ended), e.State, e.Target, e.Protocol, e.Client, e.OrigDst, e.Decision,
		e.Exe, e.Unit, e.User, e.UID, e.CgroupPath, e.PodNamespace, e.PodName, e.ServiceAccount, e.OIDCSubject,
		e.Statements, e.Denied, e.Records, e.LastHash, e.Bytes)
	return err
}

// Progress is how far a recording has been written and synced.
type Progress struct {
	ID         string
	Statements uint64
	Denied     uint64
	Records    uint64
	LastHash   string
	Bytes      int64
	// State and Ended, when State is set, close the entry.
	State string
	Ended time.Time
}

// Update records the progress of several recordings in one transaction.
func (ix *Index) Update(ctx context.Context, ps []Progress) error {
	tx, err := ix.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, p := range ps {
		q := `UPDATE sessions SET statements=?, denied=?, records=?, last_hash=?, bytes=? WHERE id=?`
		args := []any{p.Statements, p.Denied, p.Records, p.LastHash, p.Bytes, p.ID}
		if p.State != "" {
			q = `UPDATE sessions SET statements=?, denied=?, records=?, last_hash=?, bytes=?, state=?, ended=? WHERE id=?`
			args = []any{p.Statements, p.Denied, p.Records, p.LastHash, p.Bytes, p.State, unixNano(p.Ended), p.ID}
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Get returns one entry by session id, or by a unique prefix of it
// (compared byte for byte: SQL's LIKE would ignore case).
func (ix *Index) Get(ctx context.Context, id string) (*Entry, error) {
	if id == "" {
		return nil, errors.New("no session id given")
	}
	es, err := ix.list(ctx, `WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT 2`, utf8.RuneCountInString(id), id)
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		if e.ID == id {
			return e, nil
		}
	}
	switch len(es) {
	case 0:
		return nil, fmt.Errorf("no recorded session %q", id)
	case 1:
		return es[0], nil
	}
	return nil, fmt.Errorf("%q names more than one session; give more of the id", id)
}

// ByID returns the entry of exactly this session id, or ErrNotFound.
func (ix *Index) ByID(ctx context.Context, id string) (*Entry, error) {
	es, err := ix.list(ctx, `WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(es) == 0 {
		return nil, ErrNotFound
	}
	return es[0], nil
}

// Filter selects entries; zero fields match everything. Text fields match
// exactly, or as a glob when they contain * or ?.
type Filter struct {
	Target, Protocol, Decision, State string
	Exe, Unit, User                   string
	PodNamespace, PodName             string
	ServiceAccount, OIDCSubject       string
	Since, Until                      time.Time
	// HasDenied selects sessions in which at least one operation was denied.
	HasDenied bool
	Limit     int
}

// List returns matching entries, newest first.
func (ix *Index) List(ctx context.Context, f Filter) ([]*Entry, error) {
	var (
		where []string
		args  []any
	)
	match := func(col, v string) {
		if v == "" {
			return
		}
		if strings.ContainsAny(v, "*?") {
			where = append(where, col+" GLOB ?")
		} else {
			where = append(where, col+" = ?")
		}
		args = append(args, v)
	}
	match("target", f.Target)
	match("protocol", f.Protocol)
	match("decision", f.Decision)
	match("state", f.State)
	match("exe", f.Exe)
	match("unit", f.Unit)
	match("user", f.User)
	match("pod_namespace", f.PodNamespace)
	match("pod_name", f.PodName)
	match("service_account", f.ServiceAccount)
	match("oidc_subject", f.OIDCSubject)
	if !f.Since.IsZero() {
		where = append(where, "started >= ?")
		args = append(args, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		where = append(where, "started < ?")
		args = append(args, f.Until.UnixNano())
	}
	if f.HasDenied {
		where = append(where, "denied > 0")
	}
	q := ""
	if len(where) > 0 {
		q = "WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY started DESC, id"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	return ix.list(ctx, q, args...)
}

// Oldest returns finished entries oldest first, for retention.
func (ix *Index) Oldest(ctx context.Context, limit int) ([]*Entry, error) {
	return ix.list(ctx, `WHERE state != ? ORDER BY started, id LIMIT ?`, StateOpen, limit)
}

// InState returns the entries in one state.
func (ix *Index) InState(ctx context.Context, state string) ([]*Entry, error) {
	return ix.list(ctx, `WHERE state = ? ORDER BY started, id`, state)
}

// Usage is the number of recordings and their total size.
func (ix *Index) Usage(ctx context.Context) (n int, bytes int64, err error) {
	err = ix.db.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(bytes), 0) FROM sessions`).Scan(&n, &bytes)
	return
}

// Has reports whether the index knows a recording by its backend name.
func (ix *Index) Has(ctx context.Context, name string) (bool, error) {
	var n int
	err := ix.db.QueryRowContext(ctx, `SELECT count(*) FROM sessions WHERE name = ?`, name).Scan(&n)
	return n > 0, err
}

func (ix *Index) Delete(ctx context.Context, id string) error {
	_, err := ix.db.ExecContext(ctx, `DELETE FROM sessions WHERE id = ?`, id)
	return err
}

func (ix *Index) list(ctx context.Context, tail string, args ...any) ([]*Entry, error) {
	rows, err := ix.db.QueryContext(ctx, `SELECT `+columns+` FROM sessions `+tail, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Entry
	for rows.Next() {
		var (
			e              Entry
			started, ended int64
		)
		if err := rows.Scan(&e.ID, &e.Name, &started, &ended, &e.State, &e.Target, &e.Protocol, &e.Client, &e.OrigDst, &e.Decision,
			&e.Exe, &e.Unit, &e.User, &e.UID, &e.CgroupPath, &e.PodNamespace, &e.PodName, &e.ServiceAccount, &e.OIDCSubject,
			&e.Statements, &e.Denied, &e.Records, &e.LastHash, &e.Bytes); err != nil {
			return nil, err
		}
		e.Started = time.Unix(0, started)
		if ended != 0 {
			e.Ended = time.Unix(0, ended)
		}
		out = append(out, &e)
	}
	return out, rows.Err()
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// ErrNotFound is returned for a session the index does not hold.
var ErrNotFound = errors.New("not found")
