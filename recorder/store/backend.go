package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Object is a recording being written.
type Object interface {
	io.Writer
	// Sync makes what was written durable.
	Sync() error
	Close() error
}

// Backend holds recording files by name (slash-separated, relative).
type Backend interface {
	Create(name string) (Object, error)
	Open(name string) (io.ReadCloser, error)
	Remove(name string) error
	Size(name string) (int64, error)
	// Walk calls fn with every recording's name.
	Walk(fn func(name string) error) error
}

// Dir is a Backend on a local directory.
type Dir struct {
	Path string
}

// NewDir creates the directory (0700: recordings hold what workloads did)
// and returns a backend on it.
func NewDir(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("recording directory: %w", err)
	}
	return &Dir{Path: path}, nil
}

func (d *Dir) path(name string) (string, error) {
	if !fs.ValidPath(name) || name == "." || strings.Contains(name, "\\") {
		return "", fmt.Errorf("invalid recording name %q", name)
	}
	return filepath.Join(d.Path, filepath.FromSlash(name)), nil
}

// Create creates a new file; a name that exists is an error, never an
// overwrite.
func (d *Dir) Create(name string) (Object, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	// The new name must survive a crash along with the header.
	if err := syncDir(filepath.Dir(p)); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func (d *Dir) Open(name string) (io.ReadCloser, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	// Recordings are regular files the agent wrote. Anything else in
	// their place (a FIFO that blocks the reader, a link to /dev/zero that
	// never ends) is refused rather than read.
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	return f, nil
}

func (d *Dir) Remove(name string) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	// Empty day directories go with their last file; a directory still
	// in use simply refuses.
	for dir := filepath.Dir(p); dir != d.Path && strings.HasPrefix(dir, d.Path); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
	}
	return nil
}

func (d *Dir) Size(name string) (int64, error) {
	p, err := d.path(name)
	if err != nil {
		return 0, err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return 0, err
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("%s is not a regular file", name)
	}
	return fi.Size(), nil
}

func (d *Dir) Walk(fn func(name string) error) error {
	return filepath.WalkDir(d.Path, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() || !strings.HasSuffix(p, Ext) {
			return nil
		}
		rel, err := filepath.Rel(d.Path, p)
		if err != nil {
			return err
		}
		return fn(filepath.ToSlash(rel))
	})
}

// Ext ends every recording's name.
const Ext = ".jsonl"
