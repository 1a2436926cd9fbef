package recorder

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// writes keeps every write it is given, apart.
type writes struct{ each [][]byte }

func (w *writes) Write(p []byte) (int, error) {
	w.each = append(w.each, bytes.Clone(p))
	return len(p), nil
}

// Each write out of the log ends a record: a record that does not fit in
// what is left of the buffer goes out in a write of its own, so that no
// other writer of the same file (the agent's log, on stderr) can put a
// line inside it.
func TestJSONLogWritesWholeRecords(t *testing.T) {
	w := &writes{}
	l := &JSONLog{buf: bufio.NewWriterSize(w, 4096), stop: make(chan struct{}), done: make(chan struct{})}
	for i := range 100 {
		if err := l.Buffer(map[string]string{"n": strings.Repeat("x", 37*(i%5+1))}); err != nil {
			t.Fatal(err)
		}
	}
	l.mu.Lock()
	l.flush()
	l.mu.Unlock()
	if len(w.each) < 2 {
		t.Fatalf("%d writes; the records should have filled the buffer", len(w.each))
	}
	for i, p := range w.each {
		if !bytes.HasSuffix(p, []byte("\n")) || !bytes.HasPrefix(p, []byte("{")) {
			t.Fatalf("write %d cuts a record: %.40q ... %.40q", i, p, p[max(0, len(p)-40):])
		}
	}
}
