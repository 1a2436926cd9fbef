package recorder

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// FlushInterval bounds how long a buffered line waits before it is
// written out.
const FlushInterval = 200 * time.Millisecond

// JSONLog appends values as JSON lines. Lines written with Write reach the
// file at once; lines written with Buffer (the many per-operation events
// of a busy session) within FlushInterval, or with the next Write.
type JSONLog struct {
	mu   sync.Mutex
	buf  *bufio.Writer
	c    io.Closer
	err  error // the first write error; later writes report it
	stop chan struct{}
	done chan struct{}
	once sync.Once
	// closed: the flusher has stopped, every line is written out at once.
	closed bool
}

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
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, fmt.Errorf("open audit log: %w", err)
		}
		w, c = f, f
	}
	l := &JSONLog{buf: bufio.NewWriterSize(w, 64<<10), c: c, stop: make(chan struct{}), done: make(chan struct{})}
	go l.flusher()
	return l, nil
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

func (l *JSONLog) flush() error {
	if l.err == nil {
		l.err = l.buf.Flush()
	}
	return l.err
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
			if b, ok := a.AppendJSON(l.buf.AvailableBuffer()); ok {
				err := l.writeLocked(append(b, '\n'), now)
				l.mu.Unlock()
				return err
			}
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
	return l.writeLocked(append(b, '\n'), now)
}

// writeLocked appends one line; l.mu is held.
func (l *JSONLog) writeLocked(line []byte, now bool) error {
	if l.err != nil {
		return l.err
	}
	if len(line) > l.buf.Available() && l.buf.Buffered() > 0 {
		// A record goes out in one write, or a line of the agent's own
		// log (stderr, shared with an audit log there) may land inside
		// it. (A line that does not fit was not built in the buffer.)
		if err := l.flush(); err != nil {
			return err
		}
	}
	if _, err := l.buf.Write(line); err != nil {
		l.err = err
		return err
	}
	if now || l.closed {
		return l.flush()
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
	if l.c != nil {
		if cerr := l.c.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			l.err = os.ErrClosed
		}
	}
	// stderr stays open: the process goes on using it.
	return err
}
