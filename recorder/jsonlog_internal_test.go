package recorder

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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
	l := newJSONLog(w, nil)
	for i := range 1000 {
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

// disk is a file system that fills up: while full, a write takes what
// room is left and fails with ENOSPC.
type disk struct {
	out  bytes.Buffer
	full bool
	room int
}

func (d *disk) Write(p []byte) (int, error) {
	if !d.full {
		return d.out.Write(p)
	}
	n := min(d.room, len(p))
	d.out.Write(p[:n])
	d.room -= n
	return n, syscall.ENOSPC
}

func (d *disk) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.SplitAfter(d.out.String(), "\n") {
		if line == "" {
			continue
		}
		var v map[string]any
		if !strings.HasSuffix(line, "\n") || json.Unmarshal([]byte(line), &v) != nil {
			t.Fatalf("not a record of its own: %q", line)
		}
		out = append(out, v)
	}
	return out
}

// A full disk loses no record at first: what was cut short and what
// follows is kept and written when there is room again. Past MaxPending,
// records are dropped, and the log says how many once it can.
func TestJSONLogOutlivesAFullDisk(t *testing.T) {
	d := &disk{}
	l := newJSONLog(d, nil)
	write := func(n int) error { return l.Write(map[string]any{"event": "statement", "n": n}) }
	if err := write(1); err != nil {
		t.Fatal(err)
	}
	d.full, d.room = true, 10
	if err := write(2); err == nil || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("the first write to a full disk: %v", err)
	}
	if err := write(3); err != nil {
		t.Fatalf("the failure is told once, not at every record: %v", err)
	}
	d.full = false
	if err := write(4); err != nil {
		t.Fatal(err)
	}
	recs := d.lines(t)
	if len(recs) != 4 || recs[1]["n"] != 2.0 || recs[3]["n"] != 4.0 {
		t.Fatalf("records after the disk had room again: %v", recs)
	}

	d.full, d.room = true, 0
	big := strings.Repeat("x", 64<<10)
	var lost int
	for i := range 2 * MaxPending / len(big) {
		if err := l.Buffer(map[string]any{"event": "statement", "n": 100 + i, "text": big}); err != nil && strings.Contains(err.Error(), "lost") {
			lost++
		}
	}
	if lost == 0 {
		t.Fatal("nothing dropped past MaxPending")
	}
	d.full = false
	if err := write(5); err != nil {
		t.Fatal(err)
	}
	recs = d.lines(t)
	var kept int
	for _, r := range recs {
		if r["text"] == big {
			kept++
		}
	}
	gap, last := recs[len(recs)-2], recs[len(recs)-1]
	if gap["event"] != "audit_lost" || gap["lost"] != float64(lost) || last["n"] != 5.0 || kept+lost != 2*MaxPending/len(big) {
		t.Fatalf("kept %d, lost %d; the log ends %v, %v", kept, lost, gap, last)
	}
}

// A record past MaxPending is dropped only if the file still cannot take
// what waits: the disk may have room again before the next flush.
func TestJSONLogTriesBeforeDropping(t *testing.T) {
	d := &disk{full: true}
	l := newJSONLog(d, nil)
	big := strings.Repeat("x", 64<<10)
	for i := 0; len(l.buf) < MaxPending-len(big); i++ {
		l.Buffer(map[string]any{"event": "statement", "n": i, "text": big})
	}
	d.full = false
	if err := l.Write(map[string]any{"event": "open", "text": big}); err != nil {
		t.Fatalf("the record that passed MaxPending once the disk had room: %v", err)
	}
	recs := d.lines(t)
	if last := recs[len(recs)-1]; last["event"] != "open" {
		t.Fatalf("the log ends %v", last["event"])
	}
}

// A line left unfinished in the file (a write cut short, then the agent
// stopped) is ended before the next record, which reads as one.
func TestJSONLogEndsAHalfLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	os.WriteFile(path, []byte(`{"event":"open"}`+"\n"+`{"event":"state`), 0o640)
	l, err := OpenJSONLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Write(map[string]string{"event": "open", "session_id": "s-2"}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	b, _ := os.ReadFile(path)
	if want := `{"event":"open"}` + "\n" + `{"event":"state` + "\n" + `{"event":"open","session_id":"s-2"}` + "\n"; string(b) != want {
		t.Fatalf("%q", b)
	}
}
