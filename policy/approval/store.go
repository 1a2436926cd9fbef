package approval

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Backend keeps requests for a Broker. It is implemented by Store (one
// agent's SQLite database) and, on Kubernetes, by a store of AccessRequest
// resources that every agent and approver shares. Finish is the only
// write that changes a request: it must be conditional (pending → final,
// or nothing), because that is what makes exactly one of two racing
// deciders win wherever each of them runs.
type Backend interface {
	// Create stores a new pending request; identity is the key its window
	// grant would be held under.
	Create(ctx context.Context, r *Request, identity string) error
	// Finish moves a pending request to r's state and reports whether it
	// did: false means it was no longer pending.
	Finish(ctx context.Context, r *Request) (bool, error)
	// Get returns the request with id, or the only one whose id starts
	// with it (ErrNotFound, ErrAmbiguous).
	Get(ctx context.Context, id string) (*Request, error)
	// List returns requests, newest first.
	List(ctx context.Context, f Filter) ([]*Request, error)
	// HeldGrants returns the approved window requests of identity on
	// target whose grant is still running at now.
	HeldGrants(ctx context.Context, identity, target string, now time.Time) ([]*Request, error)
	// Grants returns every window grant still running at now, newest
	// first.
	Grants(ctx context.Context, now time.Time) ([]*Request, error)
	// Orphans returns the requests this agent made that are still
	// pending: at start, their waiting sessions are gone.
	Orphans(ctx context.Context) ([]*Request, error)
	// EndGrant ends the window grant of the approved request id at at,
	// if it runs later.
	EndGrant(ctx context.Context, id string, at time.Time) error
}

// Watcher is a Backend that others write too. Watch calls fn with every
// request that leaves pending, whoever settled it, until ctx ends; that is
// how an operation waiting on one node learns of a decision made on
// another node or by an approver talking to the store directly.
type Watcher interface {
	Watch(ctx context.Context, fn func(*Request))
}

var _ Backend = (*Store)(nil)

// Store keeps requests in a SQLite database. Only the agent writes it.
type Store struct {
	db *sql.DB
}

const schema = `
CREATE TABLE IF NOT EXISTS requests (
	id TEXT PRIMARY KEY,
	state TEXT NOT NULL,
	created INTEGER NOT NULL,
	expires INTEGER NOT NULL,
	identity TEXT NOT NULL,
	target TEXT NOT NULL,
	grant_expires INTEGER NOT NULL DEFAULT 0,
	doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_state ON requests(state, created);
CREATE INDEX IF NOT EXISTS requests_created ON requests(created);
CREATE INDEX IF NOT EXISTS requests_grants ON requests(identity, target, grant_expires);
`

// Errors of the store and the broker.
var (
	ErrNotFound  = errors.New("no such request")
	ErrAmbiguous = errors.New("more than one request starts with that id")
)

// OpenStore opens (creating) the database at path; its directory is
// created mode 0700.
func OpenStore(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("approvals store: %w", err)
	}
	// WAL lets readers run beside the writer; the busy timeout covers the
	// moments both want the write lock.
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(FULL)")
	if err != nil {
		return nil, fmt.Errorf("approvals store %s: %w", path, err)
	}
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("approvals store %s: %w", path, err)
	}
	os.Chmod(path, 0o600)
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// Create stores a new request.
func (s *Store) Create(ctx context.Context, r *Request, ident string) error {
	doc, err := json.Marshal(stored{r, r.Webhook})
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO requests (id, state, created, expires, identity, target, doc) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.State, nanos(r.Created), nanos(r.Expires), ident, r.Target, string(doc))
	return err
}

// stored is a request as the database keeps it: with the webhook, which
// the API does not show.
type stored struct {
	*Request
	Webhook string `json:"webhook,omitempty"`
}

func decode(doc string) (*Request, error) {
	var st stored
	st.Request = &Request{}
	if err := json.Unmarshal([]byte(doc), &st); err != nil {
		return nil, fmt.Errorf("approvals store: a request does not decode: %w", err)
	}
	st.Request.Webhook = st.Webhook
	return st.Request, nil
}

// Finish moves a pending request to r's state, and reports whether it
// did: false means the request was no longer pending (another decision,
// or the expiry, got there first).
func (s *Store) Finish(ctx context.Context, r *Request) (bool, error) {
	doc, err := json.Marshal(stored{r, r.Webhook})
	if err != nil {
		return false, err
	}
	var ge int64
	if r.GrantExpires != nil {
		ge = r.GrantExpires.UnixNano()
	}
	res, err := s.db.ExecContext(ctx, `UPDATE requests SET state = ?, grant_expires = ?, doc = ? WHERE id = ? AND state = ?`,
		r.State, ge, string(doc), r.ID, Pending)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// EndGrant implements Backend.
func (s *Store) EndGrant(ctx context.Context, id string, at time.Time) error {
	var doc string
	err := s.db.QueryRowContext(ctx, `SELECT doc FROM requests WHERE id = ? AND state = ? AND grant_expires > ?`, id, Approved, at.UnixNano()).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	var st stored
	if err := json.Unmarshal([]byte(doc), &st); err != nil {
		return err
	}
	st.GrantExpires = &at
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `UPDATE requests SET grant_expires = ?, doc = ? WHERE id = ? AND state = ? AND grant_expires > ?`,
		at.UnixNano(), string(b), id, Approved, at.UnixNano())
	return err
}

// Get returns the request with id, or the only one whose id starts with
// it.
func (s *Store) Get(ctx context.Context, id string) (*Request, error) {
	if id == "" {
		return nil, ErrNotFound
	}
	var doc string
	err := s.db.QueryRowContext(ctx, `SELECT doc FROM requests WHERE id = ?`, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		rows, err := s.db.QueryContext(ctx, `SELECT doc FROM requests WHERE substr(id, 1, ?) = ? LIMIT 2`, len(id), id)
		if err != nil {
			return nil, err
		}
		list, err := scan(rows)
		switch {
		case err != nil:
			return nil, err
		case len(list) == 0:
			return nil, ErrNotFound
		case len(list) > 1:
			return nil, ErrAmbiguous
		}
		return list[0], nil
	}
	if err != nil {
		return nil, err
	}
	return decode(doc)
}

// Filter selects requests to list.
type Filter struct {
	State string // "" any
	Limit int    // 0: 100
	// Visible, when set, keeps only the requests it accepts, before the
	// limit: requests a caller may not see do not push those it may
	// off its list.
	Visible func(*Request) bool
}

// maxListScan bounds the rows a List with Visible reads: a caller who may
// see few requests does not have the whole history read for it (older
// ones past that many are not listed to it).
const maxListScan = 5000

// List returns requests, newest first.
func (s *Store) List(ctx context.Context, f Filter) ([]*Request, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	q, args := `SELECT doc FROM requests`, []any{}
	if f.State != "" {
		q += ` WHERE state = ?`
		args = append(args, f.State)
	}
	q += ` ORDER BY created DESC, id`
	if f.Visible == nil {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return scanSome(rows, f.Visible, f.Limit, maxListScan)
}

// HeldGrants returns the approved window requests of identity on target
// whose grant is still running at now.
func (s *Store) HeldGrants(ctx context.Context, ident, target string, now time.Time) ([]*Request, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT doc FROM requests WHERE identity = ? AND target = ? AND grant_expires > ? AND state = ? ORDER BY grant_expires DESC`,
		ident, target, now.UnixNano(), Approved)
	if err != nil {
		return nil, err
	}
	return scan(rows)
}

// Grants returns every window grant still running at now, newest first.
func (s *Store) Grants(ctx context.Context, now time.Time) ([]*Request, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT doc FROM requests WHERE grant_expires > ? AND state = ? ORDER BY grant_expires DESC`, now.UnixNano(), Approved)
	if err != nil {
		return nil, err
	}
	return scan(rows)
}

// Orphans returns the pending requests: only this agent writes the
// database, so every one of them is its own.
func (s *Store) Orphans(ctx context.Context) ([]*Request, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT doc FROM requests WHERE state = ? ORDER BY created`, Pending)
	if err != nil {
		return nil, err
	}
	return scan(rows)
}

// Prune deletes decided requests created before t whose grants have
// ended, and returns how many.
func (s *Store) Prune(ctx context.Context, t time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM requests WHERE created < ? AND state != ? AND grant_expires < ?`, t.UnixNano(), Pending, t.UnixNano())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func scan(rows *sql.Rows) ([]*Request, error) { return scanSome(rows, nil, -1, -1) }

// scanSome decodes requests from rows, keeping those keep accepts (all
// when nil), until it has limit of them or has read most rows (-1: no
// bound).
func scanSome(rows *sql.Rows, keep func(*Request) bool, limit, most int) ([]*Request, error) {
	defer rows.Close()
	var out []*Request
	for read := 0; len(out) != limit && read != most && rows.Next(); read++ {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		r, err := decode(doc)
		if err != nil {
			return nil, err
		}
		if keep == nil || keep(r) {
			out = append(out, r)
		}
	}
	return out, rows.Err()
}

// ValidState reports whether s names a state (for filters).
func ValidState(s string) bool {
	for _, st := range States {
		if strings.EqualFold(s, st) {
			return true
		}
	}
	return false
}
