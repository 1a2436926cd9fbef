package recorder

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/corral-dev/corral/recorder/store"
)

// A shell writes no record between its start and its end: its output alone
// makes the session due at the next sync, which writes the terminal out
// and tells the index its size.
func TestTerminalOutputAloneIsSynced(t *testing.T) {
	backend, index := testStore(t)
	r := testRecorder(t, backend, index)
	start := time.Now()
	s, err := r.Start(Header{SessionID: "s-shell", Target: "web", Protocol: "ssh"}, start, Strict, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Terminal(CastHeader{Width: 80, Height: 24}, start)
	if err != nil {
		t.Fatal(err)
	}
	r.syncAll()
	c.Output(start.Add(time.Second), []byte("$ top\r\nload average: 0.42\r\n"))
	r.syncAll()

	cast, err := os.Stat(filepath.Join(backend.Path, filepath.FromSlash(CastName(s.name, 1))))
	if err != nil {
		t.Fatal(err)
	}
	if cast.Size() != c.Size() {
		t.Errorf("the terminal on disk holds %d bytes of %d", cast.Size(), c.Size())
	}
	chain, _ := os.Stat(filepath.Join(backend.Path, filepath.FromSlash(s.name)))
	e, err := index.Get(context.Background(), "s-shell")
	if err != nil || e.Bytes != chain.Size()+cast.Size() {
		t.Errorf("the index counts %d bytes, want %d + %d (%v)", e.Bytes, chain.Size(), cast.Size(), err)
	}

	if err := s.End(End{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Output(time.Now(), []byte("after the end")); !errors.Is(err, ErrSealed) {
		t.Errorf("a write to a sealed terminal: %v", err)
	}
}

// testStore is a directory of recordings and an index, in the test's
// temporary directory.
func testStore(t *testing.T) (*store.Dir, *store.Index) {
	t.Helper()
	dir := t.TempDir()
	backend, err := store.NewDir(filepath.Join(dir, "sessions"))
	if err != nil {
		t.Fatal(err)
	}
	index, err := store.OpenIndex(filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { index.Close() })
	return backend, index
}

// testRecorder records to backend, syncing only when a test says so.
func testRecorder(t *testing.T, backend store.Backend, index *store.Index) *Recorder {
	t.Helper()
	r, err := New(context.Background(), Options{Backend: backend, Index: index, SyncInterval: time.Hour, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}
