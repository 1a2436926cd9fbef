// Package testutil gives corral's tests real kernel objects to work with:
// per-test cgroups and network namespaces, veth-connected test hosts, and
// the checks that skip privileged tests where they cannot run — or fail
// them, when CORRAL_REQUIRE_PRIVILEGED=1 says they must run (CI).
package testutil

import (
	"os"
	"testing"
)

// RequirePrivilegedEnv is the variable that turns privileged skips into
// failures.
const RequirePrivilegedEnv = "CORRAL_REQUIRE_PRIVILEGED"

func skipOrFail(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(RequirePrivilegedEnv) == "1" {
		t.Fatalf("%s, and %s=1 forbids skipping", why, RequirePrivilegedEnv)
	}
	t.Skip(why)
}

// RequireRoot skips (or fails, in CI) a test that needs root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root")
	}
}
