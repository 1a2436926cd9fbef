package recorder_test

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/corral-dev/corral/recorder"
)

type record struct {
	Writer int    `json:"writer"`
	Seq    int    `json:"seq"`
	Text   string `json:"text"`
}

func openLog(t *testing.T, path string) *recorder.JSONLog {
	t.Helper()
	l, err := recorder.OpenJSONLog(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// lines reads path and splits it into lines, requiring a final newline.
func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		return nil
	}
	if b[len(b)-1] != '\n' {
		t.Fatalf("log does not end with a newline: %q", b[max(0, len(b)-40):])
	}
	return strings.Split(string(b[:len(b)-1]), "\n")
}

func TestJSONLogOneObjectPerLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := openLog(t, path)
	in := []record{
		{Writer: 1, Seq: 1, Text: "plain"},
		{Writer: 1, Seq: 2, Text: "embedded\nnewline and \"quotes\" and\r\nmore"},
		{Writer: 1, Seq: 3, Text: "ünïcödé ✓"},
	}
	for _, r := range in {
		if err := l.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	got := lines(t, path)
	if len(got) != len(in) {
		t.Fatalf("%d lines for %d writes:\n%s", len(got), len(in), strings.Join(got, "\n"))
	}
	for i, line := range got {
		var r record
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("line %d %q: %v", i+1, line, err)
		}
		if dec.More() {
			t.Errorf("line %d holds more than one value: %q", i+1, line)
		}
		if r != in[i] {
			t.Errorf("line %d = %+v, want %+v", i+1, r, in[i])
		}
	}
}

func TestJSONLogConcurrentWritersDoNotInterleave(t *testing.T) {
	const writers, writes = 50, 100
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := openLog(t, path)

	var wg sync.WaitGroup
	errs := make(chan error, writers*writes)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range writes {
				// Lines of very different sizes, some far larger than a
				// pipe buffer, so any split write would show.
				text := strings.Repeat(string(rune('a'+w%26)), (w*writes+s)%9000)
				if err := l.Write(record{Writer: w, Seq: s, Text: text}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	got := lines(t, path)
	if len(got) != writers*writes {
		t.Fatalf("%d lines, want %d", len(got), writers*writes)
	}
	next := make([]int, writers) // each writer's next expected seq
	for i, line := range got {
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %d does not parse (interleaved writes?): %v", i+1, err)
		}
		if r.Writer < 0 || r.Writer >= writers {
			t.Fatalf("line %d: writer %d", i+1, r.Writer)
		}
		if r.Seq != next[r.Writer] {
			t.Fatalf("line %d: writer %d seq %d, want %d", i+1, r.Writer, r.Seq, next[r.Writer])
		}
		next[r.Writer]++
		if want := strings.Repeat(string(rune('a'+r.Writer%26)), (r.Writer*writes+r.Seq)%9000); r.Text != want {
			t.Fatalf("line %d: text of %d bytes corrupted", i+1, len(r.Text))
		}
	}
}

func TestJSONLogCreatesDirectories(t *testing.T) {
	path := filepath.Join(t.TempDir(), "var", "log", "corral", "audit.jsonl")
	l := openLog(t, path)
	if err := l.Write(record{Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if got := lines(t, path); len(got) != 1 {
		t.Fatalf("lines = %q", got)
	}
}

func TestJSONLogAppendsAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	// A log shipper's or a previous run's content is kept.
	if err := os.WriteFile(path, []byte(`{"earlier":true}`+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		l, err := recorder.OpenJSONLog(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Write(record{Seq: i}); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{`{"earlier":true}`, `{"writer":0,"seq":1,"text":""}`, `{"writer":0,"seq":2,"text":""}`, `{"writer":0,"seq":3,"text":""}`}
	got := lines(t, path)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestJSONLogTwoWritersShareFile(t *testing.T) {
	// O_APPEND: two logs open on one file never overwrite each other.
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	a, b := openLog(t, path), openLog(t, path)
	for i := range 10 {
		l := a
		if i%2 == 1 {
			l = b
		}
		if err := l.Write(record{Seq: i}); err != nil {
			t.Fatal(err)
		}
	}
	got := lines(t, path)
	if len(got) != 10 {
		t.Fatalf("%d lines, want 10", len(got))
	}
	for i, line := range got {
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.Seq != i {
			t.Errorf("line %d = %q (%v), want seq %d", i+1, line, err, i)
		}
	}
}

func TestJSONLogStderr(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	orig := os.Stderr
	os.Stderr = w
	l, err := recorder.OpenJSONLog("-")
	os.Stderr = orig
	if err != nil {
		t.Fatal(err)
	}

	if err := l.Write(record{Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close of the stderr log: %v", err)
	}
	// Close must leave stderr open: the process keeps using it.
	if err := l.Write(record{Seq: 2}); err != nil {
		t.Fatalf("write after Close of the stderr log: %v", err)
	}
	w.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"writer":0,"seq":1,"text":""}` + "\n" + `{"writer":0,"seq":2,"text":""}` + "\n"
	if string(b) != want {
		t.Errorf("stderr got %q, want %q", b, want)
	}
}

func TestJSONLogWriteAfterCloseFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := recorder.OpenJSONLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Write(record{Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Write(record{Seq: 2}); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Close = %v, want os.ErrClosed", err)
	}
	if got := lines(t, path); len(got) != 1 {
		t.Errorf("log = %q, want only the write before Close", got)
	}
}

func TestJSONLogUnmarshalableValue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := openLog(t, path)
	if err := l.Write(map[string]any{"c": make(chan int)}); err == nil {
		t.Error("writing a channel succeeded")
	}
	if err := l.Write(record{Seq: 1}); err != nil {
		t.Fatal(err)
	}
	got := lines(t, path)
	if len(got) != 1 || got[0] != `{"writer":0,"seq":1,"text":""}` {
		t.Errorf("log = %q: a failed write left something behind", got)
	}
}

func TestOpenJSONLogErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"directory under a file", filepath.Join(file, "sub", "audit.jsonl"), "audit log directory"},
		{"path is a directory", dir, "open audit log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := recorder.OpenJSONLog(tc.path)
			if err == nil {
				l.Close()
				t.Fatalf("OpenJSONLog(%s) succeeded", tc.path)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to mention %q", err, tc.want)
			}
		})
	}
}

// selfEncoded encodes itself unless it declines; either way the line is
// the same.
type selfEncoded struct {
	N       int  `json:"n"`
	Decline bool `json:"-"`
}

func (s *selfEncoded) AppendJSON(b []byte) ([]byte, bool) {
	if s.Decline {
		return b, false
	}
	return append(b, `{"n":`+strconv.Itoa(s.N)+`}`...), true
}

func TestJSONLogSelfEncodedValues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openLog(t, path)
	for i, v := range []any{&selfEncoded{N: 1}, &selfEncoded{N: 2, Decline: true}, record{Seq: 3}, &selfEncoded{N: 4}} {
		write := l.Buffer
		if i == 3 {
			write = l.Write
		}
		if err := write(v); err != nil {
			t.Fatal(err)
		}
	}
	got := strings.Join(lines(t, path), "\n")
	want := `{"n":1}` + "\n" + `{"n":2}` + "\n" + `{"writer":0,"seq":3,"text":""}` + "\n" + `{"n":4}`
	if got != want {
		t.Fatalf("log:\n%s\nwant:\n%s", got, want)
	}
}
