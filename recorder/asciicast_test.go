package recorder_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
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
	c, err := s.Terminal(recorder.CastHeader{Width: 80, Height: 24, Env: map[string]string{"TERM": "xterm"}})
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

	// The end record seals the cast; any change to it is found.
	var seal *recorder.CastSeal
	f, _ := os.Open(rec)
	recorder.Read(f, func(r *recorder.Record) error {
		if r.End != nil {
			seal = r.End.Terminal
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
