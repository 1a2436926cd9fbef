//go:build unix

package recorder_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/corral-dev/corral/recorder"
)

func TestJSONLogModes(t *testing.T) {
	// The umask is process-wide; fix it to the usual one so the modes the
	// log asks for are the modes it gets. No test here runs in parallel.
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)

	dir := filepath.Join(t.TempDir(), "corral")
	path := filepath.Join(dir, "audit.jsonl")
	l, err := recorder.OpenJSONLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o640 {
		t.Errorf("audit log mode = %v, want -rw-r-----", fi.Mode())
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !di.IsDir() || di.Mode().Perm() != 0o750 {
		t.Errorf("audit log directory mode = %v, want drwxr-x---", di.Mode())
	}
}
