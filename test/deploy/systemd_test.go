package deploy

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/corral-dev/corral/agent/config"
	"github.com/corral-dev/corral/internal/testutil"
)

// unit is a parsed systemd unit file: section -> key -> values, in order.
type unit map[string]map[string][]string

func parseUnit(t testing.TB, path string) unit {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, "\\") {
				t.Fatalf("%s: cannot parse %q", path, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// get is the last value of a setting ("" when unset).
func (u unit) get(section, key string) string {
	vs := u[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// unitCaps is the unit's bounding set: the agent's capabilities, and CHOWN
// for admin_group, which only means something on a host.
func unitCaps() []string {
	var out []string
	for _, c := range append(slices.Clone(agentCaps), "CHOWN") {
		out = append(out, "CAP_"+c)
	}
	return sorted(out)
}

// TestUnitSettings checks the settings the agent depends on, and that the
// unit's directories match the example configuration.
func TestUnitSettings(t *testing.T) {
	dir := filepath.Join(repo(t), "systemd")
	u := parseUnit(t, filepath.Join(dir, "corral.service"))
	s := func(k string) string { return u.get("Service", k) }
	want := map[string]string{
		"Type":                   "exec",
		"Slice":                  "corral.slice",
		"ExecStart":              "/usr/local/bin/corral agent --config /etc/corral/corral.yaml --keep-pinned",
		"Restart":                "on-failure",
		"StateDirectory":         "corral",
		"RuntimeDirectory":       "corral",
		"ConfigurationDirectory": "corral",
		// Credential files dropped there with a lax umask stay the
		// agent's.
		"ConfigurationDirectoryMode": "0700",
		"NoNewPrivileges":            "yes",
		"ProtectSystem":              "strict",
		"ProtectHome":                "yes",
		"PrivateTmp":                 "yes",
		"LockPersonality":            "yes",
		"MemoryDenyWriteExecute":     "yes",
		"SystemCallArchitectures":    "native",
	}
	for k, v := range want {
		if got := s(k); got != v {
			t.Errorf("%s=%q, want %q", k, got, v)
		}
	}
	// Unpinning belongs to uninstall.sh: ExecStopPost= runs on restarts
	// too, and would let connects through unprotected while the agent is
	// down.
	for _, k := range []string{"ExecStopPost", "ExecStop", "ExecStartPre", "ExecStartPost"} {
		if v := s(k); v != "" {
			t.Errorf("%s=%s: nothing may run in the agent's exempt cgroup, or unpin on stop", k, v)
		}
	}
	if v := s("ProtectKernelTunables"); v != "" && v != "no" {
		t.Errorf("ProtectKernelTunables=%s makes /sys/fs/bpf read-only: links cannot be pinned", v)
	}
	if got := sorted(strings.Fields(s("CapabilityBoundingSet"))); !slices.Equal(got, unitCaps()) {
		t.Errorf("CapabilityBoundingSet %v, want %v", got, unitCaps())
	}
	if got := sorted(strings.Fields(s("RestrictAddressFamilies"))); !slices.Equal(got, []string{"AF_INET", "AF_INET6", "AF_NETLINK", "AF_UNIX"}) {
		t.Errorf("RestrictAddressFamilies %v", got)
	}
	stop, err := time.ParseDuration(s("TimeoutStopSec"))
	if err != nil || stop <= config.DefaultShutdownGrace {
		t.Errorf("TimeoutStopSec=%s: want more than the agent's shutdown grace %v", s("TimeoutStopSec"), config.DefaultShutdownGrace)
	}
	if u.get("Install", "WantedBy") != "multi-user.target" {
		t.Errorf("WantedBy=%s", u.get("Install", "WantedBy"))
	}

	// The example configuration lives where the unit's directories are.
	cfg, err := config.Load(filepath.Join(dir, "corral.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StateDir != "/var/lib/"+s("StateDirectory") || filepath.Dir(cfg.AdminSocket) != "/run/"+s("RuntimeDirectory") {
		t.Errorf("state_dir %s and admin_socket %s do not match StateDirectory=%s and RuntimeDirectory=%s", cfg.StateDir, cfg.AdminSocket, s("StateDirectory"), s("RuntimeDirectory"))
	}
	if args := strings.Fields(s("ExecStart")); filepath.Dir(args[slices.Index(args, "--config")+1]) != "/etc/"+s("ConfigurationDirectory") {
		t.Errorf("--config is not in ConfigurationDirectory=%s", s("ConfigurationDirectory"))
	}

	sl := parseUnit(t, filepath.Join(dir, "corral.slice"))
	if _, ok := sl["Unit"]; !ok || len(sl) != 1 {
		t.Errorf("corral.slice: want a [Unit] section only, got %v", sl)
	}
}

// runScript runs one of systemd/'s scripts with the environment given.
func runScript(t *testing.T, name string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(repo(t), "systemd", name), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	t.Logf("%s:\n%s", strings.Join(append([]string{name}, args...), " "), out)
	return string(out)
}

// requireTool finds a program, skipping without it (failing in CI, where
// make install-deps provides it).
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv(testutil.RequirePrivilegedEnv) == "1" {
			t.Fatalf("%s not found, and %s=1 forbids skipping", name, testutil.RequirePrivilegedEnv)
		}
		t.Skipf("%s not found", name)
	}
	return p
}

// TestSystemdVerify runs systemd's own checks over the units as
// install.sh installs them. systemd need not be PID 1: the units are
// verified in a staged root (--root) holding the installed files and a
// copy of this host's system units (sysinit.target and the rest).
func TestSystemdVerify(t *testing.T) {
	analyze := requireTool(t, "systemd-analyze")
	root := t.TempDir()
	// ExecStart= must name an executable; the real binary is not needed
	// for that.
	stub := filepath.Join(t.TempDir(), "corral")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	runScript(t, "install.sh", []string{"DESTDIR=" + root, "PREFIX=/usr/local"}, stub)
	var systemUnits string
	for _, d := range []string{"/usr/lib/systemd/system", "/lib/systemd/system"} {
		if _, err := os.Stat(filepath.Join(d, "sysinit.target")); err == nil {
			systemUnits = d
			break
		}
	}
	if systemUnits == "" {
		t.Fatal("no system units (sysinit.target) on this host to verify against")
	}
	if err := os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", systemUnits, filepath.Join(root, "usr/lib/systemd/system")).CombinedOutput(); err != nil {
		t.Fatalf("copy system units: %v\n%s", err, out)
	}
	unitDir := filepath.Join(root, "etc/systemd/system")
	verify := func(files ...string) (string, error) {
		args := append([]string{"verify", "--man=no", "--root=" + root}, files...)
		out, err := exec.Command(analyze, args...).CombinedOutput()
		return string(out), err
	}
	out, err := verify(filepath.Join(unitDir, "corral.service"), filepath.Join(unitDir, "corral.slice"))
	// verify exits 0 on settings it ignores; it says so on stderr.
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	// The check is real: a unit with a misspelt setting does not pass.
	bad := filepath.Join(unitDir, "corral-bad.service")
	good, _ := os.ReadFile(filepath.Join(unitDir, "corral.service"))
	os.WriteFile(bad, bytes.Replace(good, []byte("ProtectHome=yes"), []byte("ProtectHome=maybe"), 1), 0o644)
	if out, _ := verify(bad); !strings.Contains(out, "maybe") {
		t.Errorf("a broken unit verified cleanly: %s", out)
	}
	os.Remove(bad)

	if _, err := os.Stat("/run/systemd/system"); err != nil {
		t.Log("systemd is not PID 1 here: verified in a staged root (--root); the unit was not started")
	}
	if out, err := exec.Command(analyze, "security", "--offline=yes", "--root="+root, filepath.Join(unitDir, "corral.service")).CombinedOutput(); err == nil {
		if m := regexp.MustCompile(`Overall exposure level for corral.service: (.*)`).FindStringSubmatch(string(out)); m != nil {
			t.Logf("systemd-analyze security: exposure %s", m[1])
		}
	}
}

// TestInstallPrefix checks that install.sh puts the binary under PREFIX and
// the unit's ExecStart follows it, and that make install and make
// uninstall hand PREFIX and DESTDIR to the scripts.
func TestInstallPrefix(t *testing.T) {
	root := t.TempDir()
	stub := filepath.Join(t.TempDir(), "corral")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := runScript(t, "install.sh", []string{"DESTDIR=" + root, "PREFIX=/opt/corral", "UNITDIR=/usr/lib/systemd/system"}, stub)
	if !strings.Contains(out, "systemctl daemon-reload && systemctl enable --now corral.service") {
		t.Errorf("install.sh with DESTDIR should say what to run on the host")
	}
	if _, err := os.Stat(filepath.Join(root, "opt/corral/bin/corral")); err != nil {
		t.Error(err)
	}
	u := parseUnit(t, filepath.Join(root, "usr/lib/systemd/system/corral.service"))
	if got := u.get("Service", "ExecStart"); got != "/opt/corral/bin/corral agent --config /etc/corral/corral.yaml --keep-pinned" {
		t.Errorf("installed ExecStart=%s", got)
	}
	if st, err := os.Stat(filepath.Join(root, "etc/corral/corral.yaml")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("example configuration: %v %v, want mode 0600", st, err)
	}

	mk := requireTool(t, "make")
	for target, want := range map[string]string{
		"install":   "PREFIX='/opt/x' DESTDIR='/tmp/stage' ./systemd/install.sh bin/corral",
		"uninstall": "PREFIX='/opt/x' DESTDIR='/tmp/stage' ./systemd/uninstall.sh --purge",
	} {
		cmd := exec.Command(mk, "-n", "-C", repo(t), target, "PREFIX=/opt/x", "DESTDIR=/tmp/stage", "PURGE=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("make -n %s: %v\n%s\nwant a line %q", target, err, out, want)
		}
	}
}
