package recorder_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corral-dev/corral/recorder"
)

func TestCastIsAsciicastV2AndSealed(t *testing.T) {
	e := newEnv(t, t.TempDir(), recorder.Options{})
	start := time.Now()
	s, err := e.rec.Start(header("s-term"), start, recorder.Strict, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Terminal(recorder.CastHeader{Width: 80, Height: 24, Env: map[string]string{"TERM": "xterm"}}, start)
	if err != nil {
		t.Fatal(err)
	}
	snow := []byte("snow: ☃\r\n")
	i := bytes.IndexRune(snow, '☃')
	c.Input(start.Add(100*time.Millisecond), []byte("echo snow\r"))
	c.Output(start.Add(200*time.Millisecond), snow[:i+1]) // the snowman split across writes
	c.Output(start.Add(250*time.Millisecond), snow[i+1:])
	c.Resize(start.Add(300*time.Millisecond), 100, 30)
	if err := s.End(recorder.End{}); err != nil {
		t.Fatal(err)
	}

	rec := file(t, e, "s-term")
	castPath := strings.TrimSuffix(rec, ".jsonl") + ".cast"
	raw, err := os.ReadFile(castPath)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Scan()
	var h map[string]any
	if err := json.Unmarshal(sc.Bytes(), &h); err != nil || h["version"] != 2.0 || h["width"] != 80.0 {
		t.Fatalf("header %s: %v", sc.Bytes(), err)
	}
	var out strings.Builder
	var kinds []string
	for sc.Scan() {
		var ev []any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || len(ev) != 3 {
			t.Fatalf("event %s: %v", sc.Bytes(), err)
		}
		kinds = append(kinds, ev[1].(string))
		if ev[1] == "o" {
			out.WriteString(ev[2].(string))
		}
	}
	if out.String() != string(snow) || strings.Join(kinds, "") != "ioor" {
		t.Fatalf("output %q, kinds %v", out.String(), kinds)
	}

	// The end record seals the cast still open; any change to it is found.
	var seal *recorder.CastSeal
	f, _ := os.Open(rec)
	recorder.Read(f, func(r *recorder.Record) error {
		if r.End != nil && len(r.End.Terminals) == 1 {
			seal = &r.End.Terminals[0]
		}
		return nil
	})
	f.Close()
	if seal == nil || seal.Bytes != int64(len(raw)) {
		t.Fatalf("seal = %+v, cast %d bytes", seal, len(raw))
	}
	if err := recorder.CheckCast(bytes.NewReader(raw), *seal); err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(raw, []byte("snow"), []byte("show"), 1)
	if err := recorder.CheckCast(bytes.NewReader(edited), *seal); err == nil {
		t.Fatal("an edited cast matches its seal")
	}
	// A cast that never ends is read one byte past its seal, no further.
	if err := recorder.CheckCast(io.MultiReader(bytes.NewReader(raw), endless{}), *seal); err == nil {
		t.Fatal("an endless cast matches its seal")
	}

	var played bytes.Buffer
	if err := recorder.Play(context.Background(), &played, bytes.NewReader(raw), recorder.PlayOptions{NoWait: true}); err != nil {
		t.Fatal(err)
	}
	if played.String() != string(snow) {
		t.Fatalf("played %q", played.String())
	}
	// Timed playback, fast: the same output.
	played.Reset()
	if err := recorder.Play(context.Background(), &played, bytes.NewReader(raw), recorder.PlayOptions{Speed: 100}); err != nil || played.String() != string(snow) {
		t.Fatalf("timed play: %q, %v", played.String(), err)
	}
	if _, err := os.Stat(filepath.Dir(castPath)); err != nil {
		t.Fatal(err)
	}
}

// Each terminal of a session (SSH channels multiplexed on one connection)
// has its own cast, timed from its own start. One whose command ended is
// sealed by that command's result, one still open by the end record; the
// index counts their bytes, and retention removes them with the recording.
func TestTerminalsOfOneSession(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir, recorder.Options{})
	start := time.Now().Add(-48 * time.Hour)
	s, err := e.rec.Start(header("s-mux"), start, recorder.Strict, nil)
	if err != nil {
		t.Fatal(err)
	}
	one, err := s.Terminal(recorder.CastHeader{Width: 80, Height: 24, Title: "echo one"}, start.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	two, err := s.Terminal(recorder.CastHeader{Width: 80, Height: 24, Title: "top"}, start.Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	three, err := s.Terminal(recorder.CastHeader{Width: 80, Height: 24, Title: "echo three"}, start.Add(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	one.Output(start.Add(1500*time.Millisecond), []byte("one\r\n"))
	two.Output(start.Add(2500*time.Millisecond), []byte("two\r\n"))
	three.Output(start.Add(3500*time.Millisecond), []byte("three\r\n"))
	exit := 0
	// The third ends first: the order of ends is not that of starts.
	if err := s.EndTerminal(three, recorder.Result{Of: 3, ExitStatus: &exit}); err != nil {
		t.Fatal(err)
	}
	if err := s.EndTerminal(one, recorder.Result{Of: 1, ExitStatus: &exit}); err != nil {
		t.Fatal(err)
	}
	if err := s.End(recorder.End{}); err != nil {
		t.Fatal(err)
	}
	// Too late: the end record sealed it, and no result follows it.
	if err := s.EndTerminal(two, recorder.Result{Of: 2, ExitStatus: &exit}); err == nil {
		t.Fatal("a result recorded after the end record")
	}

	rec := file(t, e, "s-mux")
	f, _ := os.Open(rec)
	rep, err := recorder.Read(f, nil)
	f.Close()
	if err != nil || !rep.Complete {
		t.Fatalf("recording: %+v, %v", rep, err)
	}
	casts, err := recorder.Casts(e.backend, recorder.Name(start, "s-mux"))
	if err != nil || len(casts) != 3 {
		t.Fatalf("casts %v, %v", casts, err)
	}
	sealed := map[string]recorder.CastSeal{}
	for _, sl := range rep.Seals {
		sealed[sl.Name] = sl
	}
	var total int64
	for i, name := range casts {
		if n := recorder.CastNumber(name); n != i+1 {
			t.Errorf("%s is terminal %d", name, n)
		}
		raw, err := os.ReadFile(filepath.Join(e.backend.Path, filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		total += int64(len(raw))
		sl, ok := sealed[name]
		if !ok {
			t.Fatalf("%s is not sealed; seals %+v", name, rep.Seals)
		}
		if err := recorder.CheckCast(bytes.NewReader(raw), sl); err != nil {
			t.Fatal(err)
		}
		var played bytes.Buffer
		if err := recorder.Play(context.Background(), &played, bytes.NewReader(raw), recorder.PlayOptions{NoWait: true}); err != nil {
			t.Fatal(err)
		}
		want := []string{"one\r\n", "two\r\n", "three\r\n"}[i]
		if played.String() != want {
			t.Errorf("terminal %d played %q, want %q", i+1, played.String(), want)
		}
		// Each cast's clock starts with its own terminal.
		lines := bytes.Split(raw, []byte("\n"))
		var ev []any
		if err := json.Unmarshal(lines[1], &ev); err != nil || ev[0] != 0.5 {
			t.Errorf("terminal %d: first event %s", i+1, lines[1])
		}
	}
	// Terminals 1 and 3 are sealed by their results, 2 by the end record.
	f, _ = os.Open(rec)
	var byResult, byEnd []string
	recorder.Read(f, func(r *recorder.Record) error {
		if r.Result != nil && r.Result.Terminal != nil {
			byResult = append(byResult, r.Result.Terminal.Name)
		}
		if r.End != nil {
			for _, sl := range r.End.Terminals {
				byEnd = append(byEnd, sl.Name)
			}
		}
		return nil
	})
	f.Close()
	if len(byResult) != 2 || recorder.CastNumber(byResult[0]) != 3 || recorder.CastNumber(byResult[1]) != 1 || len(byEnd) != 1 || recorder.CastNumber(byEnd[0]) != 2 {
		t.Fatalf("sealed by results %v, by the end %v", byResult, byEnd)
	}

	ctx := context.Background()
	fi, _ := os.Stat(rec)
	en, err := e.index.Get(ctx, "s-mux")
	if err != nil || en.Bytes != fi.Size()+total {
		t.Fatalf("index bytes %d, want %d + %d: %v", en.Bytes, fi.Size(), total, err)
	}
	// Indexed again from the files, with the same size.
	e.rec.Close()
	if err := e.index.Delete(ctx, "s-mux"); err != nil {
		t.Fatal(err)
	}
	re, err := recorder.New(ctx, recorder.Options{Backend: e.backend, Index: e.index, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	re.Close()
	if en, err := e.index.Get(ctx, "s-mux"); err != nil || en.Bytes != fi.Size()+total {
		t.Fatalf("reindexed: %+v, %v", en, err)
	}
	// Retention takes every terminal with the recording.
	re, err = recorder.New(ctx, recorder.Options{Backend: e.backend, Index: e.index, MaxAge: time.Hour, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	re.Close()
	left := 0
	filepath.WalkDir(e.backend.Path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left++
		}
		return nil
	})
	if left != 0 {
		t.Fatalf("%d files left after retention", left)
	}
}

// Terminals that end while the session syncs and ends are each sealed
// exactly once, by their result or by the end record, and every seal
// holds.
func TestTerminalsEndingWithTheSession(t *testing.T) {
	e := newEnv(t, t.TempDir(), recorder.Options{SyncInterval: time.Millisecond})
	start := time.Now()
	s, err := e.rec.Start(header("s-race"), start, recorder.Strict, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	var first, rest sync.WaitGroup // the first half ends before the session, the rest with it
	for i := range n {
		c, err := s.Terminal(recorder.CastHeader{Width: 80, Height: 24}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		wg := &rest
		if i < n/2 {
			wg = &first
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				c.Output(time.Now(), []byte(fmt.Sprintf("%d.%d\r\n", i, j)))
			}
			s.EndTerminal(c, recorder.Result{Of: uint64(i)}) // late ones find the end record
		}()
	}
	first.Wait()
	if err := s.End(recorder.End{}); err != nil {
		t.Fatal(err)
	}
	rest.Wait()

	f, _ := os.Open(file(t, e, "s-race"))
	byResult := 0
	rep, err := recorder.Read(f, func(r *recorder.Record) error {
		if r.Result != nil && r.Result.Terminal != nil {
			byResult++
		}
		return nil
	})
	f.Close()
	if err != nil || !rep.Complete {
		t.Fatalf("recording: %+v, %v", rep, err)
	}
	casts, _ := recorder.Casts(e.backend, recorder.Name(start, "s-race"))
	if len(casts) != n || len(rep.Seals) != n || byResult < n/2 {
		t.Fatalf("%d casts, %d seals, %d by results", len(casts), len(rep.Seals), byResult)
	}
	for _, sl := range rep.Seals {
		raw, err := os.ReadFile(filepath.Join(e.backend.Path, filepath.FromSlash(sl.Name)))
		if err != nil {
			t.Fatal(err)
		}
		if err := recorder.CheckCast(bytes.NewReader(raw), sl); err != nil {
			t.Fatal(err)
		}
	}
}

// endless reads zeros without end.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
