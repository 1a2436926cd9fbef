package recorder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corral-dev/corral/recorder/store"
)

// Mode says what happens to a session that cannot be recorded.
type Mode string

const (
	// Strict: a session that cannot be recorded does not start, and one
	// whose recording fails is cut.
	Strict Mode = "strict"
	// BestEffort: the session goes on; the failure is logged and counted.
	BestEffort Mode = "best-effort"
	// Off: no recording (the audit log still has every decision).
	Off Mode = "off"
)

// Modes are the accepted recording modes.
var Modes = []Mode{Strict, BestEffort, Off}

// Options configure a Recorder.
type Options struct {
	Backend store.Backend
	Index   *store.Index
	// SyncInterval bounds how long a written record may stay only in
	// memory and the page cache (default 1s).
	SyncInterval time.Duration
	// MaxAge and MaxBytes bound what is kept; zero keeps everything.
	MaxAge   time.Duration
	MaxBytes int64
	Log      *slog.Logger
}

// Recorder records sessions into a Backend and lists them in an Index.
type Recorder struct {
	o        Options
	failures atomic.Uint64

	mu       sync.Mutex
	sessions map[*Session]struct{}

	// durable bounds how many session starts and ends write and sync
	// their files at once. An fsync holds an OS thread, and the Go
	// scheduler starts another to go on; a burst of connections would
	// leave the agent with a thread for each connection of the burst, for
	// good, while the disk syncs them one after another anyway.
	durable chan struct{}

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// maxDurable is how many starts and ends sync at once.
const maxDurable = 4

// New opens a recorder: recordings the index still has as open (the agent
// stopped without ending them) are checked and closed as truncated or
// complete, files the index does not know are indexed, retention is
// applied, and the periodic sync starts.
func New(ctx context.Context, o Options) (*Recorder, error) {
	if o.SyncInterval <= 0 {
		o.SyncInterval = time.Second
	}
	r := &Recorder{o: o, sessions: map[*Session]struct{}{}, durable: make(chan struct{}, maxDurable), stop: make(chan struct{}), done: make(chan struct{})}
	if err := r.recover(ctx); err != nil {
		return nil, fmt.Errorf("recover recordings: %w", err)
	}
	if err := r.Retain(ctx, time.Now()); err != nil {
		o.Log.Warn("recording retention failed", "err", err)
	}
	go r.loop()
	return r, nil
}

// bounded runs f, which syncs a file, while at most maxDurable others do.
func (r *Recorder) bounded(f func() error) error {
	r.durable <- struct{}{}
	defer func() { <-r.durable }()
	return f()
}

// Failures is the number of recording failures since start.
func (r *Recorder) Failures() uint64 { return r.failures.Load() }

// Active is the number of sessions being recorded.
func (r *Recorder) Active() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sessions)
}

// Name is the Backend name of a session's recording.
func Name(started time.Time, id string) string {
	return started.UTC().Format("2006/01/02/") + id + store.Ext
}

// Start writes a session's header and makes it durable. cut is called
// (once, from another goroutine) when a strict recording fails later: the
// caller ends the session. In strict mode an error means the session must
// not start.
func (r *Recorder) Start(h Header, started time.Time, mode Mode, cut func()) (*Session, error) {
	h.Format = FormatVersion
	s := &Session{r: r, id: h.SessionID, name: Name(started, h.SessionID), mode: mode, cut: cut, started: started}
	s.idle.L = &s.mu
	err := r.bounded(func() error {
		obj, err := r.o.Backend.Create(s.name)
		if err != nil {
			return err
		}
		s.obj = obj
		_, err = s.write(Record{Time: started, Type: TypeHeader, Header: &h})
		if err == nil {
			_, err = obj.Write(s.pend)
			s.pend = s.pend[:0]
		}
		if err == nil {
			err = obj.Sync()
		}
		if err != nil {
			obj.Close()
			r.o.Backend.Remove(s.name)
		}
		return err
	})
	if err != nil {
		r.failures.Add(1)
		err = fmt.Errorf("cannot record the session: %w", err)
		r.o.Log.Error("recording failed", "session_id", h.SessionID, "mode", mode, "err", err)
		return nil, err
	}
	s.bytes = s.written
	s.syncedRecords, s.syncedHash = s.seq, s.prev
	e := entryOf(&h, s.name, started)
	e.Records, e.LastHash, e.Bytes = s.seq, s.prev, s.bytes
	if err := r.o.Index.Put(context.Background(), e); err != nil {
		// The file is the record; the index is rebuilt from it.
		r.failures.Add(1)
		r.o.Log.Warn("recording index update failed", "session_id", h.SessionID, "err", err)
	}
	r.mu.Lock()
	r.sessions[s] = struct{}{}
	r.mu.Unlock()
	return s, nil
}

// Close syncs every open recording and stops the periodic work. Sessions
// still open stay open in the index: they are closed by their End, or
// found truncated at the next start.
func (r *Recorder) Close() error {
	r.once.Do(func() { close(r.stop) })
	<-r.done
	return r.syncAll()
}

func (r *Recorder) loop() {
	defer close(r.done)
	sync := time.NewTicker(r.o.SyncInterval)
	defer sync.Stop()
	retain := time.NewTicker(time.Hour)
	defer retain.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-sync.C:
			r.syncAll()
		case now := <-retain.C:
			if err := r.Retain(context.Background(), now); err != nil {
				r.o.Log.Warn("recording retention failed", "err", err)
			}
		}
	}
}

func (r *Recorder) syncAll() error {
	r.mu.Lock()
	ss := make([]*Session, 0, len(r.sessions))
	for s := range r.sessions {
		ss = append(ss, s)
	}
	r.mu.Unlock()
	var ps []store.Progress
	for _, s := range ss {
		if p, ok := s.sync(); ok {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		return nil
	}
	err := r.o.Index.Update(context.Background(), ps)
	if err != nil {
		r.o.Log.Warn("recording index update failed", "err", err)
	}
	return err
}

// Session is the recording of one session. Its methods are safe for
// concurrent use.
type Session struct {
	r       *Recorder
	id      string
	name    string
	mode    Mode
	cut     func()
	started time.Time

	mu  sync.Mutex
	obj store.Object
	// pend holds records not yet handed to the file: a record costs the
	// data path an append, and the file write (a system call, which the Go
	// scheduler treats as possibly blocking) happens on the sync tick.
	pend  []byte
	spare []byte
	// wmu orders the writes to the file; it is taken under mu and held
	// without it while the write and fsync run.
	wmu     sync.Mutex
	seq     uint64 // next seq
	prev    string
	written int64 // bytes handed to w
	// syncedRecords and syncedHash: how far the file is known durable,
	// for the index when a later write fails.
	syncedRecords uint64
	syncedHash    string
	werr          error // a failed write of a sync, under wmu
	bytes         int64 // bytes synced
	dirty         bool
	err           error // the first failure; a failed recording writes no more
	ended         bool

	statements, denied uint64
	cutOnce            sync.Once

	// terms are the terminal recordings still being written; nterms
	// counts those begun, which names the next; termBytes is what the
	// sealed ones hold.
	terms     []*terminal
	nterms    int
	termBytes int64
	// busy counts terminals being created or sealed outside mu (their
	// file system work: a create with its directory sync, an fsync);
	// idle is signalled when it falls to zero. The end record waits for
	// it, so that it seals every terminal or follows its result.
	busy int
	idle sync.Cond
	// cmu: one terminal created at a time, taken before mu. A name is
	// chosen before its file is created, outside mu: two creates at once
	// would choose the same, and a failed one beside a later one would
	// leave a gap in the numbers.
	cmu sync.Mutex
}

// terminal is an asciicast being written beside the recording.
type terminal struct {
	name   string
	cast   *Cast
	obj    store.Object
	synced int64 // its size at the last sync
}

// CastName is the Backend name of the n-th terminal recording (counted
// from 1) beside the recording name: <session>.cast for the first, as a
// session with one terminal has, then <session>.2.cast and on.
func CastName(name string, n int) string {
	base := strings.TrimSuffix(name, store.Ext)
	if n <= 1 {
		return base + ".cast"
	}
	return base + "." + strconv.Itoa(n) + ".cast"
}

// Terminal starts a terminal recording (asciicast v2) beside the
// recording, with times counted from start. Each terminal of the session
// (every SSH channel, when a client multiplexes several on one
// connection) has its own. It is flushed with the recording at every
// sync, and sealed by EndTerminal, or by the end record if it is still
// open then.
func (s *Session) Terminal(h CastHeader, start time.Time) (*Cast, error) {
	// One create at a time, in the order of the numbers: a terminal that
	// cannot be created fails the recording, and no later one is created,
	// so the casts are numbered without gaps (see Casts).
	s.cmu.Lock()
	defer s.cmu.Unlock()
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return nil, errors.New("the recording has ended")
	}
	if s.err != nil {
		s.mu.Unlock()
		return nil, s.refusal()
	}
	name := CastName(s.name, s.nterms+1)
	// The file is created without mu (a create syncs the directory): the
	// session's other records go on meanwhile.
	s.busy++
	s.mu.Unlock()
	c, obj, err := s.newCast(name, h, start)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done()
	if err != nil {
		s.fail(err)
		return nil, s.refusal()
	}
	s.nterms++
	s.terms = append(s.terms, &terminal{name: name, cast: c, obj: obj})
	s.dirty = true
	return c, nil
}

// syncClose makes obj durable (when sync) and closes it. A panic in the
// backend is an error here: it runs without the session's lock, which the
// caller takes back.
func syncClose(obj store.Object, sync bool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("closing a terminal recording: %v", r)
		}
	}()
	defer obj.Close() // also after a panicking Sync
	if sync {
		err = obj.Sync()
	}
	return err
}

// newCast creates a terminal's file and starts its cast; a panic in the
// backend is an error here, with the session's lock not held.
func (s *Session) newCast(name string, h CastHeader, start time.Time) (c *Cast, obj store.Object, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("creating %s: %v", name, r)
		}
	}()
	if obj, err = s.r.o.Backend.Create(name); err != nil {
		return nil, nil, err
	}
	if c, err = NewCast(obj, h, start); err != nil {
		obj.Close()
		return nil, nil, err
	}
	return c, obj, nil
}

// done ends work begun outside mu (see busy); s.mu is held.
func (s *Session) done() {
	if s.busy--; s.busy == 0 {
		s.idle.Broadcast()
	}
}

// EndTerminal seals a terminal recording begun with Terminal, makes it
// durable, and records res, the result of what the terminal served, with
// the seal in it (Result.Terminal): through it the chain protects the
// cast. The fsync runs without the session's lock; a session ending
// meanwhile waits for the result, so its end record either seals the
// terminal or follows this result. An error means the result could not
// be recorded.
func (s *Session) EndTerminal(c *Cast, res Result) error {
	var err error
	// The slot before s.mu, as in End.
	s.r.bounded(func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.ended {
			err = errors.New("the recording has ended")
			return nil
		}
		if i := slices.IndexFunc(s.terms, func(t *terminal) bool { return t.cast == c }); i >= 0 {
			t := s.terms[i]
			s.terms = slices.Delete(s.terms, i, i+1)
			s.termBytes += c.Size()
			// wmu: a sync may still be syncing this terminal.
			s.wmu.Lock()
			seal, cerr := c.Seal(t.name)
			s.wmu.Unlock()
			s.busy++
			s.mu.Unlock()
			if serr := syncClose(t.obj, cerr == nil); cerr == nil {
				cerr = serr
			}
			s.mu.Lock()
			s.done()
			if cerr != nil {
				s.fail(cerr)
			} else {
				res.Terminal = &seal
			}
		}
		if s.err != nil {
			err = s.refusal()
			return nil
		}
		if _, werr := s.write(Record{Type: TypeResult, Result: &res}); werr != nil {
			s.fail(werr)
			err = s.refusal()
		}
		return nil
	})
	return err
}

// ID is the session id.
func (s *Session) ID() string { return s.id }

func (s *Session) write(rec Record) (uint64, error) {
	rec.bound()
	rec.Seq, rec.Prev = s.seq, s.prev
	if rec.Time.IsZero() {
		rec.Time = time.Now()
	}
	before := len(s.pend)
	pend, h, err := sealTo(s.pend, &rec)
	if err != nil {
		return 0, err
	}
	s.pend = pend
	n := len(pend) - before
	if len(s.pend) >= maxPending {
		// A session recording faster than the sync tick drains it
		// writes out now rather than hold more.
		s.wmu.Lock()
		_, err := s.obj.Write(s.pend)
		s.wmu.Unlock()
		s.pend = s.pend[:0]
		if err != nil {
			return 0, err
		}
	}
	s.seq++
	s.prev = h
	s.written += int64(n)
	s.dirty = true
	return rec.Seq, nil
}

// Record appends one record and returns its seq. In strict mode an error
// means the operation it describes must not go ahead; in best-effort mode
// a failed recording drops records silently after logging once.
func (s *Session) Record(rec Record) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return 0, errors.New("the recording has ended")
	}
	if s.err != nil {
		return 0, s.refusal()
	}
	if rec.Statement != nil {
		s.statements++
		if rec.Statement.Decision == "deny" {
			s.denied++
		}
	}
	if rec.Approval.Refused() {
		s.denied++ // a reviewed statement that did not run
	}
	seq, err := s.write(rec)
	if err != nil {
		s.fail(err)
		return 0, s.refusal()
	}
	return seq, nil
}

func (s *Session) refusal() error {
	if s.mode == BestEffort {
		return nil
	}
	return fmt.Errorf("cannot record the session: %w", s.err)
}

// fail records the first failure; s.mu is held.
func (s *Session) fail(err error) {
	if s.err != nil {
		return
	}
	s.err = err
	s.r.failures.Add(1)
	s.r.o.Log.Error("recording failed", "session_id", s.id, "mode", s.mode, "err", err)
	if s.mode == Strict && s.cut != nil {
		s.cutOnce.Do(func() { go s.cut() })
	}
}

// sync writes out and makes durable what was recorded, and returns the
// progress to index.
func (s *Session) sync() (store.Progress, bool) {
	s.mu.Lock()
	// A terminal's output alone makes the session due: a shell writes no
	// record between its start and its end.
	for _, t := range s.terms {
		if n := t.cast.Size(); n != t.synced {
			t.synced = n
			s.dirty = true
		}
	}
	if !s.dirty || s.err != nil || s.ended {
		s.mu.Unlock()
		return store.Progress{}, false
	}
	var err error
	objs := make([]store.Object, 0, len(s.terms))
	for _, t := range s.terms {
		if err == nil {
			err = t.cast.Flush()
		}
		objs = append(objs, t.obj)
	}
	p := s.progress()
	s.dirty = false
	if err != nil {
		s.fail(err)
		s.mu.Unlock()
		return store.Progress{}, false
	}
	buf := s.pend
	s.pend, s.spare = s.spare[:0], nil
	s.wmu.Lock()
	s.mu.Unlock()
	// Write and fsync outside mu: the session goes on recording meanwhile.
	if len(buf) > 0 {
		_, err = s.obj.Write(buf)
	}
	if err == nil {
		err = s.obj.Sync()
	}
	// Under wmu: EndTerminal closes a terminal only after this.
	for _, o := range objs {
		if err == nil {
			err = o.Sync()
		}
	}
	if err != nil {
		// Seen by an end that takes wmu before this sync takes mu to
		// fail the session: it must not write its end record after a
		// failed write, as if the file held what came before.
		s.werr = err
	}
	s.wmu.Unlock()
	if cap(buf) <= maxSpare {
		s.mu.Lock()
		s.spare = buf[:0]
		s.mu.Unlock()
	}
	if err != nil {
		s.mu.Lock()
		s.fail(err)
		s.mu.Unlock()
		return store.Progress{}, false
	}
	s.mu.Lock()
	s.bytes = p.Bytes
	s.syncedRecords, s.syncedHash = p.Records, p.LastHash
	s.mu.Unlock()
	return p, true
}

// progress is what the index learns at a sync; s.mu is held. Its bytes
// count the terminal recordings too: retention bounds them all.
func (s *Session) progress() store.Progress {
	n := s.written + s.termBytes
	for _, t := range s.terms {
		n += t.cast.Size()
	}
	return store.Progress{ID: s.id, Statements: s.statements, Denied: s.denied, Records: s.seq, LastHash: s.prev, Bytes: n}
}

// End seals the recording with its end record, makes it durable and
// closes it.
func (s *Session) End(e End) error {
	var (
		p      store.Progress
		failed error
		sealed bool
	)
	// The slot is taken before s.mu (waiting for it must not hold up the
	// periodic sync, which takes every session's s.mu in turn) and given
	// back before the index is told.
	s.r.bounded(func() error {
		p, failed, sealed = s.seal(e)
		return nil
	})
	if !sealed {
		return nil
	}
	cerr := s.obj.Close()
	s.r.mu.Lock()
	delete(s.r.sessions, s)
	s.r.mu.Unlock()
	if ierr := s.r.o.Index.Update(context.Background(), []store.Progress{p}); ierr != nil {
		s.r.o.Log.Warn("recording index update failed", "session_id", s.id, "err", ierr)
	}
	if failed != nil {
		return failed
	}
	return cerr
}

// seal writes the end record and makes the recording durable; sealed is
// false when the session had already ended.
func (s *Session) seal(e End) (p store.Progress, failed error, sealed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.busy > 0 && !s.ended {
		s.idle.Wait()
	}
	if s.ended {
		return p, nil, false
	}
	var err error
	now := time.Now()
	// Terminals still open are sealed here; wmu keeps a sync from using
	// them while they close.
	s.wmu.Lock()
	if s.werr != nil && s.err == nil {
		s.fail(s.werr)
	}
	for _, t := range s.terms {
		if s.err == nil {
			seal, cerr := t.cast.Seal(t.name)
			if cerr == nil {
				cerr = t.obj.Sync()
			}
			if cerr != nil {
				s.fail(cerr)
			} else {
				e.Terminals = append(e.Terminals, seal)
			}
		}
		s.termBytes += t.cast.Size()
		t.obj.Close()
	}
	s.terms = nil
	s.wmu.Unlock()
	if s.err == nil {
		if _, err = s.write(Record{Time: now, Type: TypeEnd, End: &e}); err == nil {
			s.wmu.Lock()
			_, err = s.obj.Write(s.pend)
			if err == nil {
				err = s.obj.Sync()
			}
			s.wmu.Unlock()
			s.pend = nil
		}
		if err != nil {
			s.fail(err)
		}
	}
	s.ended = true
	p = s.progress()
	p.State, p.Ended = store.StateComplete, now
	if s.err != nil {
		// What failed to be written is not the recording's: the index
		// keeps what reached the file (a failing write may leave whole
		// records past the last sync), which verify holds the file to;
		// what was known synced when the file cannot be read.
		p.State, p.Ended = store.StateTruncated, time.Time{}
		p.Records, p.LastHash = s.syncedRecords, s.syncedHash
		// Only a file that still holds what was synced: one rewritten
		// meanwhile must not become the index's anchor.
		var n uint64
		var anchored bool
		f, err := s.r.readProgress(s.name, func(rec *Record) {
			if n++; n == s.syncedRecords {
				anchored = rec.Hash == s.syncedHash
			}
		})
		if err == nil && anchored && f.Records >= s.syncedRecords {
			p.Records, p.LastHash = f.Records, f.LastHash
		}
	}
	return p, s.err, true
}

// maxPending bounds what a session holds between syncs; maxSpare, the
// buffer an idle session keeps for the next tick.
const (
	maxPending = 256 << 10
	maxSpare   = 16 << 10
)

// entryOf builds an index entry from a header.
func entryOf(h *Header, name string, started time.Time) *store.Entry {
	var w struct {
		Exe        string `json:"exe"`
		Unit       string `json:"unit"`
		User       string `json:"user"`
		UID        uint32 `json:"uid"`
		CgroupPath string `json:"cgroup_path"`
		Pod        struct {
			Namespace      string `json:"namespace"`
			Name           string `json:"name"`
			ServiceAccount string `json:"service_account"`
		} `json:"pod"`
		OIDC struct {
			Subject string `json:"subject"`
		} `json:"oidc"`
	}
	if len(h.Workload) > 0 {
		json.Unmarshal(h.Workload, &w) // a workload we cannot read is still recorded, just not searchable by it
	}
	return &store.Entry{
		ID: h.SessionID, Name: name, Started: started, State: store.StateOpen,
		Target: h.Target, Protocol: h.Protocol, Client: h.Client, OrigDst: h.OrigDst, Decision: h.Decision,
		Exe: w.Exe, Unit: w.Unit, User: w.User, UID: w.UID, CgroupPath: w.CgroupPath,
		PodNamespace: w.Pod.Namespace, PodName: w.Pod.Name, ServiceAccount: w.Pod.ServiceAccount, OIDCSubject: w.OIDC.Subject,
	}
}
