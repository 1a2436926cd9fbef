//go:build linux

package deploy

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/agent/workload"
	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// capBits are the kernel's numbers of the capabilities the unit names.
var capBits = map[string]uint{
	"CAP_CHOWN":           unix.CAP_CHOWN,
	"CAP_DAC_READ_SEARCH": unix.CAP_DAC_READ_SEARCH,
	"CAP_NET_ADMIN":       unix.CAP_NET_ADMIN,
	"CAP_SYS_PTRACE":      unix.CAP_SYS_PTRACE,
	"CAP_SYS_ADMIN":       unix.CAP_SYS_ADMIN,
	"CAP_PERFMON":         unix.CAP_PERFMON,
	"CAP_BPF":             unix.CAP_BPF,
}

// startUnit runs the installed unit's ExecStart= with paths taken under
// destdir, inside cgroup, with the unit's CapabilityBoundingSet= and
// NoNewPrivileges= applied by setpriv.
func startUnit(t *testing.T, u unit, destdir, cgroup string) *testutil.Agent {
	t.Helper()
	setpriv := requireTool(t, "setpriv")
	args := strings.Fields(u.get("Service", "ExecStart"))
	args[0] = filepath.Join(destdir, args[0])
	for i := range args[:len(args)-1] {
		if args[i] == "--config" {
			args[i+1] = filepath.Join(destdir, args[i+1])
		}
	}
	bounding := []string{"-all"}
	for _, c := range strings.Fields(u.get("Service", "CapabilityBoundingSet")) {
		bounding = append(bounding, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	pre := []string{"--bounding-set=" + strings.Join(bounding, ","), "--inh-caps=-all", "--ambient-caps=-all"}
	if u.get("Service", "NoNewPrivileges") == "yes" {
		pre = append(pre, "--no-new-privs")
	}
	cmd := exec.Command(setpriv, slices.Concat(pre, []string{"--"}, args)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: testutil.CgroupFD(t, cgroup)}
	t.Logf("ExecStart as run here: %s", strings.Join(cmd.Args, " "))
	return testutil.StartAgentCommand(t, cmd)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// effectiveCaps reads a process's effective capability set.
func effectiveCaps(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no CapEff")
	return 0
}

// TestInstallInterceptUninstall installs corral with install.sh into a
// staging root, runs the installed unit's command as systemd would (in a
// cgroup of its own, with the unit's capabilities), checks that a workload
// is intercepted, stops it (its links stay pinned: protected connects are
// refused), and uninstalls with uninstall.sh, after which no pinned
// program remains and connections go straight to their target.
func TestInstallInterceptUninstall(t *testing.T) {
	testutil.RequireBPF(t)
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		t.Log("systemd is not PID 1 here: the test drives the installed binary with the unit's ExecStart= arguments, cgroup and capabilities itself instead of systemctl")
	} else {
		t.Log("the test drives the installed binary with the unit's ExecStart= arguments itself: the real unit would attach to the host's root cgroup")
	}
	bin := testutil.CorralBinary(t)
	root, err := workload.Cgroup2Root()
	if err != nil {
		t.Fatal(err)
	}
	cg := testutil.NewCgroup(t, "")
	unitCg := testutil.NewCgroup(t, cg) // corral.slice/corral.service: the agent alone
	workCg := testutil.NewCgroup(t, cg)
	host := testutil.NewHost(t)
	l := host.Listen(t, ":0")
	srv := testutil.Echo(t, l)
	target := netip.AddrPortFrom(host.Addr, uint16(l.Addr().(*net.TCPAddr).Port)).String()
	pinDir := testutil.BPFPinDir(t)
	stateDir := t.TempDir()
	metrics := freePort(t)

	// A configuration already in place: install.sh must keep it. It
	// intercepts the test's cgroup only, never the host's root.
	destdir := t.TempDir()
	conf := filepath.Join(destdir, "etc/corral/corral.yaml")
	cfg := fmt.Sprintf(`targets:
  - name: echo
    protocol: tcp
    endpoints: [%q]
rules:
  - name: workloads
    who: {cgroup: %q}
    targets: [echo]
    allow: [connect]
audit_log: "-"
state_dir: %s
admin_socket: %[3]s/admin.sock
cgroup_path: %s
bpf_pin_dir: %s
metrics_address: 127.0.0.1:%d
netns_rescan_interval: 200ms
`, target, strings.TrimPrefix(workCg, root), stateDir, cg, pinDir, metrics)
	if err := os.MkdirAll(filepath.Dir(conf), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"DESTDIR=" + destdir, "PREFIX=/usr/local"}

	// install
	out := runScript(t, "install.sh", env, bin)
	if !strings.Contains(out, "kept the existing") {
		t.Error("install.sh did not report keeping the configuration")
	}
	if b, _ := os.ReadFile(conf); string(b) != cfg {
		t.Fatal("install.sh replaced an existing configuration")
	}
	unitFile := filepath.Join(destdir, "etc/systemd/system/corral.service")
	u := parseUnit(t, unitFile)

	// start
	s := startUnit(t, u, destdir, unitCg)
	for _, l := range s.Lines() {
		if strings.Contains(l, "moved into a cgroup of its own") {
			t.Errorf("the agent had to leave the unit's cgroup, which should hold it alone: %s", l)
		}
	}
	var want uint64
	for _, c := range strings.Fields(u.get("Service", "CapabilityBoundingSet")) {
		want |= 1 << capBits[c]
	}
	if got := effectiveCaps(t, s.PID()); got != want {
		t.Errorf("the agent runs with capabilities %#x, want the unit's bounding set %#x", got, want)
	}
	if code, body := testutil.HTTPGet(t, fmt.Sprintf("http://127.0.0.1:%d/readyz", metrics)); code != http.StatusOK {
		t.Errorf("/readyz: %d %s", code, body)
	}

	// intercept
	r := testutil.RunClient(t, workCg, testutil.Client{Network: "tcp", Addr: target, Payload: "hello"})
	if r.Err != "" {
		t.Fatalf("client: %s", r.Err)
	}
	if ap, err := netip.ParseAddrPort(r.Remote); err != nil || !ap.Addr().Unmap().IsLoopback() {
		t.Errorf("the client's socket is connected to %s, want corral's loopback listener", r.Remote)
	}
	if !strings.HasSuffix(r.Reply, "|hello") {
		t.Errorf("reply %q", r.Reply)
	}
	ev := s.WaitEvent(t, 0, func(e intercept.Event) bool { return e.Event == intercept.EventOpen })
	if ev.Target != "echo" || ev.OrigDst != target || ev.Workload == nil || fmt.Sprint(ev.Workload.PID) != fmt.Sprint(r.PID) {
		t.Errorf("audit event %+v: want the client's session to echo at %s", ev, target)
	}

	// stop: the unit keeps its links pinned, so protected connects are
	// refused until an agent runs again or they are removed.
	if err := s.Stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("the agent exited with %v on SIGTERM", err)
	}
	entries, _ := os.ReadDir(pinDir)
	if len(entries) == 0 {
		t.Error("no links pinned after the stop: the unit should keep them (--keep-pinned)")
	}
	r = testutil.RunClient(t, workCg, testutil.Client{Network: "tcp", Addr: target, Payload: "again"})
	if r.Err == "" {
		t.Errorf("a protected connect went through while the agent was stopped (reply %q)", r.Reply)
	} else {
		t.Logf("while stopped, a protected connect fails: %s", r.Err)
	}

	// uninstall
	accepted := srv.Accepted.Load()
	out = runScript(t, "uninstall.sh", env)
	if !strings.Contains(out, "removed the pinned eBPF links") {
		t.Error("uninstall.sh did not report removing the links")
	}
	if entries, err := os.ReadDir(pinDir); err == nil {
		t.Errorf("pinned programs remain under %s: %v", pinDir, entries)
	}
	for _, f := range []string{"usr/local/bin/corral", "etc/systemd/system/corral.service", "etc/systemd/system/corral.slice"} {
		if _, err := os.Stat(filepath.Join(destdir, f)); err == nil {
			t.Errorf("uninstall.sh left /%s", f)
		}
	}
	if _, err := os.Stat(conf); err != nil {
		t.Errorf("uninstall.sh without --purge removed the configuration: %v", err)
	}
	r = testutil.RunClient(t, workCg, testutil.Client{Network: "tcp", Addr: target, Payload: "direct"})
	if r.Err != "" || r.Remote != target {
		t.Errorf("after uninstall, a connect to %s: remote %s, error %q; want it straight to the target", target, r.Remote, r.Err)
	}
	if srv.Accepted.Load() != accepted+1 {
		t.Errorf("the target accepted %d connections after uninstall, want 1", srv.Accepted.Load()-accepted)
	}

	// uninstall --purge removes the configuration too.
	runScript(t, "uninstall.sh", env, "--purge")
	if _, err := os.Stat(filepath.Dir(conf)); err == nil {
		t.Error("uninstall.sh --purge left /etc/corral")
	}
}
