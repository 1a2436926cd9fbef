package testutil

import (
	"os/exec"
	"testing"
)

// RequireChromium returns the path of Debian's chromium (make
// install-deps installs it), skipping the test (or failing it, in CI)
// where there is none.
func RequireChromium(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("chromium")
	if err != nil {
		skipOrFail(t, "chromium is not installed (apt-get install chromium)")
	}
	return p
}
