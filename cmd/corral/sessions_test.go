package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-dev/corral/recorder"
	"github.com/corral-dev/corral/recorder/store"
)

// recordTerminals writes one SSH session with the recorder of the
// configuration it returns, as record does with the session.
func recordTerminals(t *testing.T, record func(*recorder.Session, time.Time)) (cfg, sessions string, start time.Time) {
	t.Helper()
	dir := t.TempDir()
	cfg = configIn(dir)
	sessions = filepath.Join(dir, "sessions")
	rec := openRecorder(t, sessions)
	defer rec.Close()
	start = time.Now()
	s, err := rec.Start(recorder.Header{SessionID: "s-term1", Target: "web", Protocol: "ssh"}, start, recorder.Strict, nil)
	if err != nil {
		t.Fatal(err)
	}
	record(s, start)
	return cfg, sessions, start
}

// A terminal session written by the recorder replays through the command
// line, and verify checks its cast against the seal in the recording.
func TestReplayAndVerifyTerminal(t *testing.T) {
	cfg, sessions, start := recordTerminals(t, func(s *recorder.Session, start time.Time) {
		c, _ := s.Terminal(recorder.CastHeader{Width: 80, Height: 24}, start)
		c.Output(start.Add(time.Millisecond), []byte("$ uptime\r\n up 3 days\r\n"))
		s.End(recorder.End{})
	})

	out, err := run(t, "replay", "s-term1", "--no-wait", "--terminal", "--config", cfg)
	if err != nil || out != "$ uptime\r\n up 3 days\r\n" {
		t.Fatalf("replay --terminal: %v\n%q", err, out)
	}
	out, err = run(t, "replay", "s-term1", "--no-wait", "--config", cfg)
	if err != nil || !strings.Contains(out, "hash chain verified") || !strings.HasSuffix(out, "-- terminal --\n$ uptime\r\n up 3 days\r\n") {
		t.Fatalf("replay: %v\n%q", err, out)
	}
	if out, err = run(t, "replay", "s-term1", "--transcript", "--config", cfg); err != nil || strings.Contains(out, "uptime") {
		t.Fatalf("replay --transcript: %v\n%q", err, out)
	}
	if out, err := run(t, "verify", "s-term1", "--config", cfg); err != nil || !strings.Contains(out, " ok ") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	cast := filepath.Join(sessions, filepath.FromSlash(recorder.CastName(recorder.Name(start, "s-term1"), 1)))
	b, _ := os.ReadFile(cast)
	os.WriteFile(cast, []byte(strings.Replace(string(b), "3 days", "9 days", 1)), 0o600)
	if out, err := run(t, "verify", "s-term1", "--config", cfg); err == nil || !strings.Contains(out, "does not match its seal") {
		t.Fatalf("verify of an edited cast: %v\n%s", err, out)
	}
}

// Two terminals of one session (two commands on one SSH connection) replay
// one after the other, each named in the transcript by its command's
// result. verify finds a terminal taken away, and one added that the
// recording does not seal.
func TestReplayAndVerifyTerminals(t *testing.T) {
	cfg, sessions, start := recordTerminals(t, func(s *recorder.Session, start time.Time) {
		exit := 0
		for i, out := range []string{"first\r\n", "second\r\n"} {
			seq, _ := s.Record(recorder.Record{Type: recorder.TypeStatement, Statement: &recorder.Statement{Text: "exec", Decision: "allow"}})
			c, _ := s.Terminal(recorder.CastHeader{Width: 80, Height: 24}, start.Add(time.Duration(i)*time.Second))
			c.Output(start.Add(time.Duration(i)*time.Second+time.Millisecond), []byte(out))
			if err := s.EndTerminal(c, recorder.Result{Of: seq, ExitStatus: &exit}); err != nil {
				t.Fatal(err)
			}
		}
		s.End(recorder.End{})
	})
	out, err := run(t, "replay", "s-term1", "--no-wait", "--config", cfg)
	if err != nil || !strings.Contains(out, "exit status 0, 0 bytes out, 0 in, terminal 2,") ||
		!strings.HasSuffix(out, "\n-- terminal 1 --\nfirst\r\n\n-- terminal 2 --\nsecond\r\n") {
		t.Fatalf("replay: %v\n%q", err, out)
	}
	if out, err := run(t, "verify", "s-term1", "--config", cfg); err != nil || !strings.Contains(out, " ok ") {
		t.Fatalf("verify: %v\n%s", err, out)
	}

	name := recorder.Name(start, "s-term1")
	path := func(n int) string { return filepath.Join(sessions, filepath.FromSlash(recorder.CastName(name, n))) }
	os.WriteFile(path(3), []byte("{\"version\": 2}\n"), 0o600)
	if out, err := run(t, "verify", "s-term1", "--config", cfg); err == nil || !strings.Contains(out, "is not sealed by its recording") {
		t.Fatalf("verify with a terminal added: %v\n%s", err, out)
	}
	if out, err := run(t, "replay", "s-term1", "--no-wait", "--config", cfg); err == nil || !strings.Contains(err.Error(), "is not sealed by its recording") {
		t.Fatalf("replay with a terminal added: %v\n%s", err, out)
	}
	os.Remove(path(3))
	os.Remove(path(2))
	if out, err := run(t, "verify", "s-term1", "--config", cfg); err == nil || !strings.Contains(out, "is missing") {
		t.Fatalf("verify with a terminal removed: %v\n%s", err, out)
	}
	if out, err := run(t, "replay", "s-term1", "--no-wait", "--config", cfg); err == nil || !strings.Contains(err.Error(), "is missing") {
		t.Fatalf("replay with a terminal removed: %v\n%s", err, out)
	}
}

// openRecorder opens the recorder of a sessions directory, as the agent
// does at start; its index closes with the test.
func openRecorder(t *testing.T, sessions string) *recorder.Recorder {
	return openRecorderOn(t, sessions, func(d *store.Dir) store.Backend { return d })
}

// openRecorderOn is openRecorder on a backend wrapped around the
// directory's.
func openRecorderOn(t *testing.T, sessions string, wrap func(*store.Dir) store.Backend) *recorder.Recorder {
	t.Helper()
	backend, err := store.NewDir(sessions)
	if err != nil {
		t.Fatal(err)
	}
	index, err := store.OpenIndex(filepath.Join(sessions, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { index.Close() })
	rec, err := recorder.New(context.Background(), recorder.Options{Backend: wrap(backend), Index: index, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// configIn writes a configuration whose state (and recordings) is dir.
func configIn(dir string) string {
	cfg := filepath.Join(dir, "corral.yaml")
	os.WriteFile(cfg, []byte("state_dir: "+dir+"\ntargets:\n  - {name: web, protocol: tcp, endpoints: [\"10.0.0.1:22\"]}\n"), 0o600)
	return cfg
}

// restart opens the recorder on a sessions directory again, as the next
// agent does, and closes it.
func restart(t *testing.T, sessions string) {
	t.Helper()
	openRecorder(t, sessions).Close()
}

// cutShort records a session with some statements that the agent never
// ends (it was killed), and returns its file.
func cutShort(t *testing.T) (cfg, sessions, file string) {
	cfg, sessions, start := recordTerminals(t, func(s *recorder.Session, start time.Time) {
		for _, q := range []string{"SELECT 1", "DELETE FROM orders", "DROP TABLE orders"} {
			if _, err := s.Record(recorder.Record{Type: recorder.TypeStatement, Statement: &recorder.Statement{Text: q, Decision: "allow"}}); err != nil {
				t.Fatal(err)
			}
		}
	})
	return cfg, sessions, filepath.Join(sessions, filepath.FromSlash(recorder.Name(start, "s-term1")))
}

// What the index saw synced anchors a recording across a restart: the
// next agent does not take a file that lost or changed synced records
// for the truth, and verify still reports it.
func TestVerifyAnchoredAcrossRestart(t *testing.T) {
	cfg, sessions, file := cutShort(t)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	os.WriteFile(file, []byte(strings.Join(lines[:2], "")), 0o600)
	restart(t, sessions)
	if out, err := run(t, "verify", "s-term1", "--config", cfg); err == nil || !strings.Contains(out, "removed from the end") {
		t.Fatalf("verify after a cut and a restart: %v\n%s", err, out)
	}
}

// A recording closed as cut short stays so: an end record added to the
// file afterwards, with a chain that checks, is reported.
func TestVerifyRecordsAddedAfterClose(t *testing.T) {
	cfg, sessions, file := cutShort(t)
	restart(t, sessions)
	if out, err := run(t, "verify", "s-term1", "--config", cfg); err != nil || !strings.Contains(out, "truncated") {
		t.Fatalf("verify after the restart: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(file)
	os.WriteFile(file, chained(b, "end", `"end":{"reason":"client closed"}`), 0o600)
	if out, err := run(t, "verify", "s-term1", "--config", cfg); err == nil || !strings.Contains(out, "added after it ended") {
		t.Fatalf("verify of a forged end: %v\n%s", err, out)
	}
}

// A transcript is made of what a workload sent: a statement carrying
// terminal escapes is shown with them escaped, not acted on (the line that
// erased the one above it, a carriage return that hid what came before).
func TestReplayTranscriptEscapesTerminalControls(t *testing.T) {
	cfg, _, _ := recordTerminals(t, func(s *recorder.Session, start time.Time) {
		s.Record(recorder.Record{Type: recorder.TypeStatement, Statement: &recorder.Statement{Text: "SELECT 1 /*\x1b[1A\x1b[2K*/", Decision: "allow"}})
		s.Record(recorder.Record{Type: recorder.TypeStatement, Statement: &recorder.Statement{Text: "DELETE FROM orders; --\rSELECT 2", Decision: "deny", Reason: "delete\x1b]0;ok\x07"}})
		s.End(recorder.End{})
	})
	out, err := run(t, "replay", "s-term1", "--transcript", "--config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(out, "\x1b\r\x07") {
		t.Errorf("the transcript carries terminal controls:\n%q", out)
	}
	for _, want := range []string{`SELECT 1 /*\x1b[1A\x1b[2K*/`, "DELETE FROM orders; -- SELECT 2", `delete\x1b]0;ok\x07`} {
		if !strings.Contains(out, want) {
			t.Errorf("the transcript lacks %q:\n%s", want, out)
		}
	}
}

// rechain rewrites a recording's lines with edit, and hashes and chains
// them anew as the recorder would: the chain has no key, so anyone who
// can write the file can make a consistent one.
func rechain(t *testing.T, b []byte, edit func(string) string) []byte {
	t.Helper()
	prev := regexp.MustCompile(`"prev":"[0-9a-f]*"`)
	var out strings.Builder
	last := ""
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		body := edit(line[:strings.LastIndex(line, `,"hash":"`)] + "}")
		if last != "" {
			body = prev.ReplaceAllString(body, `"prev":"`+last+`"`)
		}
		sum := sha256.Sum256([]byte(body))
		last = hex.EncodeToString(sum[:])
		out.WriteString(body[:len(body)-1] + `,"hash":"` + last + `"}` + "\n")
	}
	return []byte(out.String())
}

// chained appends one record to a recording, chained to its last line and
// hashed as the recorder would; member is the record's own JSON member
// (`"end":{...}`).
func chained(b []byte, typ, member string) []byte {
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	last := lines[len(lines)-1]
	prev := last[strings.LastIndex(last, `"hash":"`)+8 : len(last)-2]
	body := fmt.Sprintf(`{"seq":%d,"time":%q,"type":%q,"prev":%q,%s}`, len(lines), time.Now().UTC().Format(time.RFC3339Nano), typ, prev, member)
	sum := sha256.Sum256([]byte(body))
	return append(b, body[:len(body)-1]+`,"hash":"`+hex.EncodeToString(sum[:])+`"}`+"\n"...)
}

// dropForged records a session that ran DROP TABLE orders, and returns its
// file and a forgery of it that ran SELECT 2, chained anew.
func dropForged(t *testing.T) (cfg, sessions, file string, forged []byte) {
	t.Helper()
	cfg, sessions, start := recordTerminals(t, func(s *recorder.Session, start time.Time) {
		s.Record(recorder.Record{Type: recorder.TypeStatement, Statement: &recorder.Statement{Text: "DROP TABLE orders", Decision: "allow"}})
		s.End(recorder.End{})
	})
	file = filepath.Join(sessions, filepath.FromSlash(recorder.Name(start, "s-term1")))
	b, _ := os.ReadFile(file)
	return cfg, sessions, file, rechain(t, b, func(l string) string { return strings.Replace(l, "DROP TABLE orders", "SELECT 2", 1) })
}

// The index anchors each recording to the file it saw written. A forged
// copy under another name is not taken up at the next start (it would have
// replaced the entry and its anchor), a byte appended after the end record
// does not make a complete recording pass for one cut short, and the file
// of a session still open at a crash, deleted, leaves the session reported
// rather than gone.
func TestVerifyKeepsTheIndexAnchor(t *testing.T) {
	t.Run("a forged copy", func(t *testing.T) {
		cfg, sessions, file, forged := dropForged(t)
		os.WriteFile(filepath.Join(filepath.Dir(file), "zzz.jsonl"), forged, 0o600)
		os.Remove(file)
		restart(t, sessions)
		if out, err := run(t, "verify", "--all", "--config", cfg); err == nil || !strings.Contains(out, "s-term1  corrupt") {
			t.Errorf("verify after a forged copy replaced the file: %v\n%s", err, out)
		}
		if out, _ := run(t, "replay", "s-term1", "--transcript", "--config", cfg); strings.Contains(out, "SELECT 2") {
			t.Errorf("replay shows the forgery:\n%s", out)
		}
	})
	t.Run("a byte after the end", func(t *testing.T) {
		cfg, sessions, start := recordTerminals(t, func(s *recorder.Session, start time.Time) {
			s.Record(recorder.Record{Type: recorder.TypeStatement, Statement: &recorder.Statement{Text: "SELECT 1", Decision: "allow"}})
			s.End(recorder.End{})
		})
		name := recorder.Name(start, "s-term1")
		f, _ := os.OpenFile(filepath.Join(sessions, filepath.FromSlash(name)), os.O_APPEND|os.O_WRONLY, 0)
		f.WriteString("x")
		f.Close()
		cast := filepath.Join(sessions, filepath.FromSlash(recorder.CastName(name, 1)))
		os.WriteFile(cast, []byte(`{"version":2,"width":80,"height":24}`+"\n"+`[0.1,"o","forged\r\n"]`+"\n"), 0o600)
		if out, err := run(t, "verify", "s-term1", "--config", cfg); err == nil || !strings.Contains(out, "corrupt") {
			t.Errorf("verify: %v\n%s", err, out)
		}
		if out, _ := run(t, "replay", "s-term1", "--no-wait", "--config", cfg); strings.Contains(out, "forged") {
			t.Errorf("replay plays an unsealed terminal:\n%s", out)
		}
	})
	t.Run("an open recording deleted", func(t *testing.T) {
		cfg, sessions, file := cutShort(t)
		os.Remove(file)
		restart(t, sessions)
		if out, err := run(t, "verify", "--all", "--config", cfg); err == nil || !strings.Contains(out, "s-term1  corrupt") {
			t.Errorf("verify after the file of an open recording was deleted: %v\n%s", err, out)
		}
	})
}

// forgingDisk rewrites a recording's file (chained anew, so it verifies
// on its own) and then fails the next write, as a full disk would.
type forgingDisk struct {
	*store.Dir
	t      *testing.T
	writes int
}

func (d *forgingDisk) Create(name string) (store.Object, error) {
	o, err := d.Dir.Create(name)
	if err != nil {
		return nil, err
	}
	return &forgingObject{Object: o, d: d, path: filepath.Join(d.Path, filepath.FromSlash(name))}, nil
}

type forgingObject struct {
	store.Object
	d    *forgingDisk
	path string
}

func (o *forgingObject) Write(b []byte) (int, error) {
	if o.d.writes++; o.d.writes == 1 {
		return o.Object.Write(b)
	}
	old, _ := os.ReadFile(o.path)
	os.WriteFile(o.path, rechain(o.d.t, old, func(l string) string { return strings.Replace(l, `"target":"web"`, `"target":"elsewhere"`, 1) }), 0o600)
	return 0, syscall.ENOSPC
}

// A disk that fails does not make a file rewritten meanwhile the index's
// anchor: the index keeps what it saw synced, and verify finds the
// rewrite; replay refuses a forgery whose chain breaks further on.
func TestFailureDoesNotAnchorARewrite(t *testing.T) {
	dir := t.TempDir()
	cfg := configIn(dir)
	rec := openRecorderOn(t, filepath.Join(dir, "sessions"), func(d *store.Dir) store.Backend { return &forgingDisk{Dir: d, t: t} })
	s, err := rec.Start(recorder.Header{SessionID: "s-term1", Target: "web", Protocol: "ssh"}, time.Now(), recorder.BestEffort, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Record(recorder.Record{Type: recorder.TypeStatement, Statement: &recorder.Statement{Text: "SELECT 1", Decision: "allow"}})
	s.End(recorder.End{})
	rec.Close()
	if out, err := run(t, "verify", "s-term1", "--config", cfg); err == nil || !strings.Contains(out, "rewritten") {
		t.Errorf("verify of a file rewritten before the disk failed: %v\n%s", err, out)
	}

	// A forgery of a complete recording, with a broken line after it.
	cfg2, _, file, forged := dropForged(t)
	os.WriteFile(file, append(forged, "garbage\n"...), 0o600)
	if out, _ := run(t, "replay", "s-term1", "--transcript", "--config", cfg2); strings.Contains(out, "SELECT 2") {
		t.Errorf("replay shows a forgery whose chain breaks after it:\n%s", out)
	}

	// Records added to a recording closed as cut short, a broken line
	// after them: not shown as the session's.
	cfg3, sessions3, file3 := cutShort(t)
	restart(t, sessions3)
	b, _ := os.ReadFile(file3)
	added := chained(b, "statement", `"statement":{"text":"FORGED STATEMENT","decision":"allow"}`)
	os.WriteFile(file3, append(added, "garbage\n"...), 0o600)
	if out, _ := run(t, "replay", "s-term1", "--transcript", "--config", cfg3); strings.Contains(out, "FORGED") {
		t.Errorf("replay shows records added after the recording was closed:\n%s", out)
	}
}
