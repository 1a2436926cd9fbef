package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// Dir is a Backend on a local directory. Every name is resolved inside
// it (os.Root): a symbolic link planted in the directory that leads
// out of it (a day directory linked to /etc) makes an operation fail, and
// never creates, reads or removes a file elsewhere as the agent.
type Dir struct {
	Path string

	once sync.Once
	root *os.Root
	err  error
}

// NewDir creates the directory (0700: recordings hold what workloads did)
// and returns a backend on it.
func NewDir(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("recording directory: %w", err)
	}
	d := &Dir{Path: path}
	if _, err := d.open(); err != nil {
		return nil, fmt.Errorf("recording directory: %w", err)
	}
	return d, nil
}

// open returns the directory as a root, opened once.
func (d *Dir) open() (*os.Root, error) {
	d.once.Do(func() { d.root, d.err = os.OpenRoot(d.Path) })
	return d.root, d.err
}

// name checks a recording's name and returns the root to resolve it in.
func (d *Dir) name(name string) (*os.Root, string, error) {
	if !fs.ValidPath(name) || name == "." || strings.Contains(name, "\\") {
		return nil, "", fmt.Errorf("invalid recording name %q", name)
	}
	root, err := d.open()
	if err != nil {
		return nil, "", err
	}
	return root, filepath.FromSlash(name), nil
}

// Create creates a new file; a name that exists is an error, never an
// overwrite.
func (d *Dir) Create(name string) (Object, error) {
	root, p, err := d.name(name)
	if err != nil {
		return nil, err
	}
	if err := root.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, err
	}
	f, err := root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	// The new name must survive a crash along with the header.
	if err := syncDir(root, filepath.Dir(p)); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func syncDir(root *os.Root, dir string) error {
	f, err := root.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func (d *Dir) Open(name string) (io.ReadCloser, error) {
	root, p, err := d.name(name)
	if err != nil {
		return nil, err
	}
	// Recordings are regular files the agent wrote. Anything else in
	// their place (a FIFO that blocks the reader, a link to /dev/zero that
	// never ends) is refused rather than read.
	f, err := root.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
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
	root, p, err := d.name(name)
	if err != nil {
		return err
	}
	if err := root.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	// Empty day directories go with their last file; a directory still
	// in use simply refuses.
	for dir := filepath.Dir(p); dir != "." && dir != string(filepath.Separator); dir = filepath.Dir(dir) {
		if root.Remove(dir) != nil {
			break
		}
	}
	return nil
}

func (d *Dir) Size(name string) (int64, error) {
	root, p, err := d.name(name)
	if err != nil {
		return 0, err
	}
	fi, err := root.Lstat(p)
	if err != nil {
		return 0, err
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("%s is not a regular file", name)
	}
	return fi.Size(), nil
}

// Walk goes through the directory without following symbolic links.
func (d *Dir) Walk(fn func(name string) error) error {
	root, err := d.open()
	if err != nil {
		return err
	}
	return fs.WalkDir(root.FS(), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() || !e.Type().IsRegular() || !strings.HasSuffix(p, Ext) {
			return nil
		}
		return fn(p)
	})
}

// Ext ends every recording's name.
const Ext = ".jsonl"
