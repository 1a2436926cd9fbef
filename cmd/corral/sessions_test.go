package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corral-dev/corral/recorder"
	"github.com/corral-dev/corral/recorder/store"
)

// A terminal session written by the recorder replays through the command
// line, and verify checks its cast against the seal in the recording.
func TestReplayAndVerifyTerminal(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "corral.yaml")
	os.WriteFile(cfg, []byte("state_dir: "+dir+"\ntargets:\n  - {name: web, protocol: tcp, endpoints: [\"10.0.0.1:22\"]}\n"), 0o600)
	backend, err := store.NewDir(filepath.Join(dir, "sessions"))
	if err != nil {
		t.Fatal(err)
	}
	index, err := store.OpenIndex(filepath.Join(dir, "sessions", "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := recorder.New(context.Background(), recorder.Options{Backend: backend, Index: index, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s, err := rec.Start(recorder.Header{SessionID: "s-term1", Target: "web", Protocol: "ssh"}, start, recorder.Strict, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := s.Terminal(recorder.CastHeader{Width: 80, Height: 24})
	c.Output(start.Add(time.Millisecond), []byte("$ uptime\r\n up 3 days\r\n"))
	s.End(recorder.End{})
	rec.Close()
	index.Close()

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
	cast := filepath.Join(dir, "sessions", filepath.FromSlash(recorder.CastName(recorder.Name(start, "s-term1"))))
	b, _ := os.ReadFile(cast)
	os.WriteFile(cast, []byte(strings.Replace(string(b), "3 days", "9 days", 1)), 0o600)
	if out, err := run(t, "verify", "s-term1", "--config", cfg); err == nil || !strings.Contains(out, "does not match its seal") {
		t.Fatalf("verify of an edited cast: %v\n%s", err, out)
	}
}
