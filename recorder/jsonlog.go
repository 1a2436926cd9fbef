// Package recorder writes what happened in intercepted sessions.
//
// For now it holds the JSON-lines audit log: one object per line, written
// whole under a lock so concurrent sessions never interleave, appended to a
// file opened O_APPEND so several writers and log shippers can share it.
package recorder

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// JSONLog appends values as JSON lines.
type JSONLog struct {
	mu sync.Mutex
	w  io.Writer
	c  io.Closer
}

// OpenJSONLog opens path for appending ("-" is stderr), creating it and its
// directory if needed.
func OpenJSONLog(path string) (*JSONLog, error) {
	if path == "-" {
		return &JSONLog{w: os.Stderr}, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("audit log directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	return &JSONLog{w: f, c: f}, nil
}

// Write appends v as one line.
func (l *JSONLog) Write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err = l.w.Write(b)
	return err
}

// Close closes the file.
func (l *JSONLog) Close() error {
	if l.c == nil {
		return nil
	}
	return l.c.Close()
}
