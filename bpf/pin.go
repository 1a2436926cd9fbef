package bpf

import (
	"errors"
	"os"
	"path/filepath"
)

// linkNames are the files under a pin directory, one per attached program.
var linkNames = []string{"connect4", "connect6", "sockops"}

// Unpin removes the pinned links in dir left by an agent that is not
// running, so connects are no longer refused. It is what `corral unpin` and
// uninstall scripts call; a missing directory is not an error.
func Unpin(dir string) error {
	var errs []error
	for _, name := range linkNames {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
