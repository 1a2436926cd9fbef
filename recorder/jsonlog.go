package recorder

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// FlushInterval bounds how long a buffered line waits before it is
// written out.
const FlushInterval = 200 * time.Millisecond

// JSONLog appends values as JSON lines. Lines written with Write reach the
// file at once; lines written with Buffer (the many per-operation events
// of a busy session) within FlushInterval, or with the next Write.
//
// A write that fails (a full disk) loses nothing at first: the lines are
// kept, the rest of a line cut short first, and written when the file
// takes them again, up to MaxPending of them. Lines past that are dropped
// and counted, and once the file takes lines again a record of event
// "audit_lost" says how many were lost there.
type JSONLog struct {
	mu  sync.Mutex
	w   io.Writer
	c   io.Closer
	buf []byte // lines not yet written out
	// failing is the error of the last write while writes fail; reported
	// says a caller was given it.
	failing  error
	reported bool
	lost     uint64 // lines dropped since the last audit_lost record
	err      error  // the log is closed: every later write reports it
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
	// closed: the flusher has stopped, every line is written out at once.
	closed bool
}

// Buffer sizes: lines are written out once flushAt bytes wait, and while
// writes fail at most MaxPending bytes of them are kept.
const (
	flushAt    = 64 << 10
	MaxPending = 8 << 20
)

// Stderr is the process's standard error for the audit log ("-") and the
// agent's own log alike, one write at a time: a log line written between
// two pieces of a long write landed inside a record, which no longer read
// as one.
var Stderr io.Writer = stderrWriter{w: os.Stderr}

// stderrMu orders the writes to standard error of Stderr and of audit
// logs opened on it.
var stderrMu sync.Mutex

// stderrWriter writes to w, one write at a time.
type stderrWriter struct{ w io.Writer }

func (s stderrWriter) Write(p []byte) (int, error) {
	stderrMu.Lock()
	defer stderrMu.Unlock()
	return s.w.Write(p)
}

// OpenJSONLog opens path for appending ("-" is stderr), creating it and its
// directory if needed.
func OpenJSONLog(path string) (*JSONLog, error) {
	var (
		w io.Writer = stderrWriter{w: os.Stderr}
		c io.Closer
	)
	if path != "-" {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("audit log directory: %w", err)
		}
		f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, fmt.Errorf("open audit log: %w", err)
		}
		w, c = f, f
	}
	l := newJSONLog(w, c)
	if f, ok := c.(*os.File); ok {
		if err := endLine(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("open audit log: %w", err)
		}
	}
	go l.flusher()
	return l, nil
}

func newJSONLog(w io.Writer, c io.Closer) *JSONLog {
	return &JSONLog{w: w, c: c, buf: make([]byte, 0, flushAt), stop: make(chan struct{}), done: make(chan struct{})}
}

// endLine ends a line the file was left in the middle of (a write cut
// short as the disk filled, and the agent stopped): appended to, its first
// record would be read as part of that line.
func endLine(f *os.File) error {
	st, err := f.Stat()
	if err != nil || st.Size() == 0 || !st.Mode().IsRegular() {
		return err
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, st.Size()-1); err != nil {
		return err
	}
	if last[0] != '\n' {
		_, err = f.Write([]byte("\n"))
	}
	return err
}

func (l *JSONLog) flusher() {
	defer close(l.done)
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.mu.Lock()
			l.flush()
			l.mu.Unlock()
		}
	}
}

// flush writes out what is buffered; l.mu is held. A write that fails
// keeps what it did not write for the next flush.
func (l *JSONLog) flush() error {
	if len(l.buf) == 0 {
		if l.lost == 0 {
			return l.failing
		}
		l.buf = fmt.Appendf(l.buf, `{"time":%q,"event":"audit_lost","lost":%d}`+"\n", time.Now().UTC().Format(time.RFC3339Nano), l.lost)
		l.lost = 0
	}
	n, err := l.w.Write(l.buf)
	l.buf = l.buf[:copy(l.buf, l.buf[n:])]
	if err != nil {
		if l.failing == nil {
			l.reported = false
		}
		l.failing = err
		return err
	}
	l.failing = nil
	if cap(l.buf) > 4*flushAt {
		l.buf = make([]byte, 0, flushAt) // grown while writes failed
	}
	if l.lost > 0 {
		return l.flush() // the record of what was lost, next
	}
	return nil
}

// jsonAppender is a value that encodes itself as json.Marshal would, into
// the log's buffer; ok false leaves it to json.Marshal.
type jsonAppender interface {
	AppendJSON(b []byte) (_ []byte, ok bool)
}

func (l *JSONLog) append(v any, now bool) error {
	if a, ok := v.(jsonAppender); ok {
		l.mu.Lock()
		if l.err == nil {
			mark := len(l.buf)
			if b, ok := a.AppendJSON(l.buf); ok {
				l.buf = b
				err := l.addedLocked(mark, now)
				l.mu.Unlock()
				return err
			}
			l.buf = l.buf[:mark]
		}
		l.mu.Unlock()
	}
	// Outside the lock: reflection over a workload's identity is not
	// something every other writer should wait for.
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	mark := len(l.buf)
	l.buf = append(l.buf, b...)
	return l.addedLocked(mark, now)
}

// addedLocked ends the line appended to l.buf from mark and writes out
// what it must; l.mu is held.
func (l *JSONLog) addedLocked(mark int, now bool) error {
	if l.err != nil {
		l.buf = l.buf[:mark]
		return l.err
	}
	l.buf = append(l.buf, '\n')
	if l.lost > 0 || l.failing != nil && len(l.buf) > MaxPending {
		// The record is set aside and the file tried first: it may take
		// records again. After a loss, the record follows the record of
		// that loss, which only a write that works puts out; otherwise it
		// is dropped only if what waits still leaves it no room.
		line := slices.Clone(l.buf[mark:])
		l.buf = l.buf[:mark]
		if l.flush() != nil && (l.lost > 0 || len(l.buf)+len(line) > MaxPending) {
			l.lost++
			return fmt.Errorf("audit record lost: %d bytes wait for the audit log, which cannot be written (%w)", len(l.buf), l.failing)
		}
		l.buf = append(l.buf, line...)
	}
	if now || l.closed || len(l.buf) >= flushAt || l.failing != nil {
		l.flush()
	}
	if l.failing != nil && !l.reported {
		l.reported = true
		return fmt.Errorf("the audit log cannot be written; records are kept in memory, up to %d bytes, until it can: %w", MaxPending, l.failing)
	}
	return nil
}

// Write appends v as one line and writes it out.
func (l *JSONLog) Write(v any) error { return l.append(v, true) }

// Buffer appends v as one line, written out within FlushInterval.
func (l *JSONLog) Buffer(v any) error { return l.append(v, false) }

// Close writes out what is buffered and closes the file.
func (l *JSONLog) Close() error {
	already := true
	l.once.Do(func() { already = false; close(l.stop) })
	<-l.done
	l.mu.Lock()
	if already {
		defer l.mu.Unlock()
		return nil
	}
	defer l.mu.Unlock()
	l.closed = true
	err := l.flush()
	if err != nil {
		err = fmt.Errorf("audit log: %d bytes of records, and %d records before them, could not be written: %w", len(l.buf), l.lost, err)
	}
	if l.c != nil {
		if cerr := l.c.Close(); err == nil {
			err = cerr
		}
		l.err = os.ErrClosed
	}
	// stderr stays open: the process goes on using it.
	return err
}
