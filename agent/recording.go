package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/corral-dev/corral/agent/config"
	"github.com/corral-dev/corral/recorder"
	"github.com/corral-dev/corral/recorder/store"
)

// IndexFile is the recordings index inside recording.dir.
const IndexFile = "index.db"

// openRecorder opens the session recorder on the configured directory.
func openRecorder(ctx context.Context, c config.Recording, log *slog.Logger) (*recorder.Recorder, func(), error) {
	backend, err := store.NewDir(c.Dir)
	if err != nil {
		return nil, nil, fmt.Errorf("recording.dir: %w", err)
	}
	index, err := store.OpenIndex(filepath.Join(c.Dir, IndexFile))
	if err != nil {
		return nil, nil, fmt.Errorf("recording.dir: %w", err)
	}
	rec, err := recorder.New(ctx, recorder.Options{
		Backend: backend, Index: index, SyncInterval: c.Sync, MaxAge: c.Age, MaxBytes: c.MaxBytes, Log: log,
	})
	if err != nil {
		index.Close()
		return nil, nil, fmt.Errorf("recording.dir: %w", err)
	}
	return rec, func() {
		if err := rec.Close(); err != nil {
			log.Error("closing recordings", "err", err)
		}
		index.Close()
	}, nil
}

// OpenRecordings opens a configuration's recordings for reading (the
// command line: sessions, replay, verify) while an agent may be writing.
func OpenRecordings(c *config.Config) (store.Backend, *store.Index, error) {
	path := filepath.Join(c.Recording.Dir, IndexFile)
	if _, err := os.Stat(path); err != nil {
		return nil, nil, fmt.Errorf("no recordings at %s: %w", c.Recording.Dir, err)
	}
	index, err := store.OpenIndexReadOnly(path)
	if err != nil {
		return nil, nil, err
	}
	return &store.Dir{Path: c.Recording.Dir}, index, nil
}

// recordingMode reads a target's recording mode from the live table.
func (t *targetTable) recordingMode(name string) recorder.Mode {
	if tg, ok := t.byName(name); ok {
		return recorder.Mode(tg.Recording)
	}
	return recorder.Strict
}
