package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"github.com/corral-dev/corral/agent/sshca"
	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/internal/testutil"
)

// sshEnv is a real OpenSSH server on a test host, protected by corral.
// Workloads in three cgroups log in with the three kinds of credential
// corral holds for them: a private key (keyCg), a password (pwCg), and a
// certificate corral issues per session (certCg). The workloads have no
// key, no password and no certificate of their own.
type sshEnv struct {
	*env
	sshd      *testutil.SSHD
	a         *testutil.Agent
	certCg    string
	pwCg      string
	keyFile   string
	pwFile    string
	known     string // the target's host key, for corral
	clientDir string // what a workload needs: known_hosts trusting corral's host CA
	rules     string
	// clientAuth and extra (top-level YAML) are written with the config.
	clientAuth, extra string
}

const sshConfig = `targets:
  - name: web
    protocol: ssh
    endpoints: [%q]
    ssh: {known_hosts: %s}
    client_auth: %s
    credentials:
      default: {username: deploy, private_key_file: %s}
      pw: {username: deploy, password_file: %s}
      cert: {username: deploy, certificate: {ttl: 2m}}
rules:
%s
audit_log: "-"
state_dir: %s
admin_socket: %[7]s/admin.sock
cgroup_path: %s
bpf_pin_dir: %s
log_level: debug
%s
`

// sshRules: the key workloads may run commands, shells and sftp, except
// what the command patterns deny or review; the password workloads may
// only run commands; the certificate workloads anything but forwarding.
const sshRules = `  - name: deployers
    who: {cgroup: %q}
    targets: [web]
    allow: [exec, shell, sftp, env]
    commands:
      deny: ["rm -rf *", "shutdown *", "reboot"]
      review: ["touch *approved*"]
    review: {reviewers: ["user:root"], timeout: 1m}
  - name: password-jobs
    who: {cgroup: %q}
    targets: [web]
    allow: [exec]
    credential: pw
  - name: cert-jobs
    who: {cgroup: %q}
    targets: [web]
    allow: [exec, shell, sftp, subsystem, env]
    credential: cert
`

func newSSHEnv(t *testing.T) *sshEnv {
	t.Helper()
	e := newEnv(t, func(h *testutil.Host) []string { return []string{addr(h.Addr, 22)} })
	s := &sshEnv{env: e, certCg: testutil.NewCgroup(t, e.cgroup), pwCg: testutil.NewCgroup(t, e.cgroup)}

	// corral's keys are made ahead of the agent, so the target can trust
	// its user CA before corral first logs in.
	authority, err := sshca.Open(filepath.Join(e.stateDir, "ssh"))
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := gossh.MarshalPrivateKey(priv, "deploy key held by corral")
	s.keyFile = filepath.Join(e.stateDir, "deploy_key")
	os.WriteFile(s.keyFile, pem.EncodeToMemory(block), 0o600)
	spub, _ := gossh.NewPublicKey(pub)
	s.pwFile = filepath.Join(e.stateDir, "deploy_pw")
	os.WriteFile(s.pwFile, []byte("deploy-Secret-9\n"), 0o600)

	s.sshd = testutil.StartSSHD(t, e.host, testutil.SSHDOptions{
		AuthorizedKeys:    []string{string(gossh.MarshalAuthorizedKey(spub))},
		TrustedUserCAKeys: []string{authority.UserCALine()},
		Password:          "deploy-Secret-9",
	})
	s.known = filepath.Join(e.stateDir, "target_known_hosts")
	os.WriteFile(s.known, []byte(s.sshd.KnownHostsLine()+"\n"), 0o600)

	// What a workload is given: one line trusting corral's host CA. It
	// lives where the unprivileged workloads can read it.
	s.clientDir, err = os.MkdirTemp("", "corral-ssh-client-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(s.clientDir) })
	os.Chmod(s.clientDir, 0o755)
	os.WriteFile(filepath.Join(s.clientDir, "known_hosts"), []byte(authority.KnownHostsLine()+"\n"), 0o644)

	s.rules = fmt.Sprintf(sshRules, e.rel(e.workCg), e.rel(s.pwCg), e.rel(s.certCg))
	s.write(t, s.known)
	s.a = e.start(t)
	return s
}

func (s *sshEnv) write(t *testing.T, known string) {
	t.Helper()
	ca := s.clientAuth
	if ca == "" {
		ca = "kernel"
	}
	cfg := fmt.Sprintf(sshConfig, addr(s.host.Addr, 22), known, ca, s.keyFile, s.pwFile, s.rules, s.stateDir, s.cgroup, s.pinDir, s.extra)
	writeAtomically(t, s.config, cfg)
}

// sshArgs are the options of a workload's ssh: strict host key checking
// against corral's host CA, and no credential at all.
func (s *sshEnv) sshArgs(extra ...string) []string {
	args := []string{"-F", "/dev/null",
		"-o", "UserKnownHostsFile=" + filepath.Join(s.clientDir, "known_hosts"),
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
		"-o", "PubkeyAuthentication=no", "-o", "PasswordAuthentication=no", "-o", "KbdInteractiveAuthentication=no",
		"-o", "ConnectTimeout=10", "-o", "LogLevel=INFO"}
	return append(args, extra...)
}

// ssh runs ssh as a workload in cgroup and returns its combined output,
// and its exit status.
func (s *sshEnv) ssh(t *testing.T, cgroup string, args ...string) (string, int) {
	t.Helper()
	out, err := testutil.Command(t, cgroup, nil, "ssh", s.sshArgs(args...)...)
	return out, exitCode(t, err)
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatalf("running the client: %v", err)
	return -1
}

func (s *sshEnv) target() string { return "deploy@" + s.host.Addr.String() }

func (s *sshEnv) exists(name string) bool {
	_, err := os.Stat(filepath.Join(s.sshd.Home, name))
	return err == nil
}

// A workload with no key runs an allowed command as the credential's
// user; denied commands, also hidden in a bash -c string or a command
// substitution, are refused with corral's reason and a failing exit
// status, and the target never runs any part of them.
func TestSSHExecGuardedCommands(t *testing.T) {
	s := newSSHEnv(t)
	from := s.a.Mark()

	out, code := s.ssh(t, s.workCg, s.target(), "echo hello; id -un")
	if code != 0 || out != "hello\ndeploy" {
		t.Fatalf("allowed command: exit %d\n%s", code, out)
	}
	home := s.sshd.Home
	for i, cmd := range []string{
		"rm -rf /",
		fmt.Sprintf("bash -c 'touch %s/ran1; rm -rf /'", home),
		fmt.Sprintf("echo $(rm -rf /) > %s/ran2", home),
		fmt.Sprintf("touch %s/ran3 && sudo -u root rm -rf /", home),
		fmt.Sprintf("touch %s/ran4; $CMD -rf /", home),
		// sh (the login shell of most accounts) reads this as three
		// commands, bash as one echo.
		fmt.Sprintf(`echo $'\' ; touch %s/ran5 ; rm -rf / ; #'`, home),
		// dash reads ((...)) as two subshells, bash as arithmetic; and
		// dash runs what comes before a line it cannot parse.
		fmt.Sprintf("touch %s/ran6; sh -c '((rm -rf - /))\ncat <<< x'", home),
		fmt.Sprintf("alias t=touch\nt %s/ran7; t x", home),
		fmt.Sprintf("touch %s/ran8; taskset 1 rm -rf /", home),
		// bash runs the command substitution of a subscript in a value
		// it reads as arithmetic; the login shell runs ~/.bashrc.
		fmt.Sprintf("touch %s/ran9; x=a[$(echo '$')\"(rm -rf /)]\"; echo $((x))", home),
		fmt.Sprintf("touch %s/ran10; echo 'rm -rf /' >> .bashrc", home),
		fmt.Sprintf("touch %s/ran11; sh -c 'echo hi &>/dev/null; ((rm -rf - /))'", home),
		// A message catalog an earlier line writes translates $"hi" into
		// a command substitution; a double-byte locale reads 严\ as one
		// character; the dynamic loader runs the program it is given.
		fmt.Sprintf("touch %s/ran12; echo $\"hi\"", home),
		fmt.Sprintf("touch %s/ran13; LC_ALL=zh_TW.BIG5\necho \"\u4e25\\\"; rm -rf /; #\"", home),
		fmt.Sprintf("touch %s/ran14; ld.so /usr/bin/rm -rf /", home),
		fmt.Sprintf("touch %s/ran15; /proc/self/exe -c 'rm -rf /'", home),
	} {
		out, code := s.ssh(t, s.workCg, s.target(), cmd)
		if code == 0 || !strings.Contains(out, "corral: ") {
			t.Errorf("%q: exit %d, want a refusal:\n%s", cmd, code, out)
		}
		if i > 0 && s.exists(fmt.Sprintf("ran%d", i)) {
			t.Errorf("%q: the target ran part of a refused command", cmd)
		}
		t.Logf("%s -> %s", cmd, out)
	}
	if out, _ := s.ssh(t, s.workCg, s.target(), "rm -rf /"); !strings.Contains(out, `exec is denied by rule "deployers"`) {
		t.Errorf("the refusal does not say why:\n%s", out)
	}
	// The audit log has each exec with its decision.
	ev := s.a.WaitEvent(t, from, func(e intercept.Event) bool {
		return e.Statement != nil && e.Statement.Text == "rm -rf /" && e.Statement.Decision == "deny"
	})
	if ev.Protocol != "ssh" || ev.Target != "web" {
		t.Errorf("audit event: %+v", ev)
	}
}

// The three credential kinds log in; the workload's login name does not
// matter, the credential's does.
func TestSSHUpstreamCredentials(t *testing.T) {
	s := newSSHEnv(t)
	for name, cg := range map[string]string{"key": s.workCg, "password": s.pwCg, "certificate": s.certCg} {
		out, code := s.ssh(t, cg, "root@"+s.host.Addr.String(), "id -un")
		if code != 0 || out != "deploy" {
			t.Errorf("%s credential: exit %d\n%s", name, code, out)
		}
	}
	// The target's log names the session corral issued the certificate
	// for.
	if l := s.sshd.WaitLog(t, "ID corral session s-"); !strings.Contains(l, "Accepted publickey for deploy") {
		t.Errorf("sshd log:\n%s", l)
	}
	// The password workloads may not open a shell, nor run commands that
	// read what they run from their input.
	if out, code := s.ssh(t, s.pwCg, "-tt", s.target()); code == 0 || !strings.Contains(out, "no rule allows shell") {
		t.Errorf("shell for exec-only workload: exit %d\n%s", code, out)
	}
	for _, cmd := range []string{"bash", "sh -s", "sudo -s", ". /dev/stdin", "bash /dev/stdin -c x", "perl", "python3 -", "ed notes",
		"python3 /dev/stdin", "python3 -m code", "awk -f - /dev/null", "make -f -", "sqlite3", "gdb -q", "vim -es", "psql",
		"python3 /proc/self/root/dev/stdin", "python3 -m cProfile -m code", "tclsh -a b", "sqlite3 --cmd x db", "editor -es"} {
		if out, code := s.ssh(t, s.pwCg, s.target(), cmd); code == 0 || !strings.Contains(out, "no rule allows shell") {
			t.Errorf("%q for exec-only workload: exit %d\n%s", cmd, code, out)
		}
	}
}

// ssh.login_shell says how the target's login shell reads a command
// line. The test account's shell is bash: declared so, a line bash reads
// as one harmless echo runs, where sh's reading of it (three commands,
// one denied) refuses it by default. Declared sh, a line that does not
// read as sh reads it to its end is refused.
func TestSSHLoginShell(t *testing.T) {
	s := newSSHEnv(t)
	home := s.sshd.Home
	line := fmt.Sprintf(`echo $'\' ; touch %s/ran1 ; rm -rf / ; #'`, home)
	if out, code := s.ssh(t, s.workCg, s.target(), line); code == 0 || !strings.Contains(out, "corral: ") {
		t.Fatalf("login_shell any: exit %d, want a refusal:\n%s", code, out)
	}

	cfg, _ := os.ReadFile(s.config)
	reload := func(shell string) {
		t.Helper()
		from := s.a.Mark()
		old := "ssh: {known_hosts: " + s.known
		if !strings.Contains(string(cfg), old) {
			t.Fatal("unexpected configuration")
		}
		writeAtomically(t, s.config, strings.Replace(string(cfg), old, "ssh: {login_shell: "+shell+", known_hosts: "+s.known, 1))
		s.a.WaitLine(t, from, func(l string) bool { return strings.Contains(l, "configuration reloaded") })
	}
	reload("bash")
	out, code := s.ssh(t, s.workCg, s.target(), line)
	if want := fmt.Sprintf("' ; touch %s/ran1 ; rm -rf / ; #", home); code != 0 || out != want {
		t.Errorf("login_shell bash: exit %d\n%s\nwant %s", code, out, want)
	}
	if s.exists("ran1") {
		t.Error("bash ran what its reading of the line hides")
	}

	reload("sh")
	if out, code := s.ssh(t, s.workCg, s.target(), "echo hi &>/dev/null; touch "+home+"/ran2"); code == 0 || !strings.Contains(out, "a POSIX sh") {
		t.Errorf("login_shell sh: exit %d, want a refusal naming the login shell:\n%s", code, out)
	}
	if s.exists("ran2") {
		t.Error("the target ran a refused line")
	}
	if out, code := s.ssh(t, s.workCg, s.target(), "echo hi; id -un"); code != 0 || out != "hi\ndeploy" {
		t.Errorf("login_shell sh, a plain line: exit %d\n%s", code, out)
	}
}

// A target whose host key is not the one corral knows is refused, and
// the workload is told so.
func TestSSHTargetHostKeyMismatch(t *testing.T) {
	s := newSSHEnv(t)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	sk, _ := gossh.NewSignerFromKey(other)
	wrong := filepath.Join(s.stateDir, "wrong_known_hosts")
	line := strings.Replace(s.sshd.KnownHostsLine(), strings.Fields(s.sshd.KnownHostsLine())[2], strings.Fields(string(gossh.MarshalAuthorizedKey(sk.PublicKey())))[1], 1)
	os.WriteFile(wrong, []byte(line+"\n"), 0o600)
	from := s.a.Mark()
	s.write(t, wrong)
	s.a.WaitLine(t, from, func(l string) bool { return strings.Contains(l, "configuration reloaded") })

	out, code := s.ssh(t, s.workCg, s.target(), "echo should-not-run")
	if code == 0 || strings.Contains(out, "should-not-run") || !strings.Contains(out, "host key does not match") {
		t.Fatalf("mismatched host key: exit %d\n%s", code, out)
	}
}

var sshWaiting = regexp.MustCompile(`corral: .*waiting for approval (r-[0-9a-f]{16})`)

// A command the policy reviews waits, says so on stderr with the request
// id, and runs once approved.
func TestSSHApproval(t *testing.T) {
	s := newSSHEnv(t)
	os.Chmod(s.stateDir, 0o755) // the admin socket's directory
	cmd := exec.Command("setpriv", append([]string{"--reuid=nobody", "--regid=nogroup", "--clear-groups", "ssh"},
		s.sshArgs(s.target(), "touch ~/approved")...)...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: testutil.CgroupFD(t, s.workCg)}
	p := startBG(t, cmd)
	var id string
	p.waitFor(t, func(out string) bool {
		if m := sshWaiting.FindStringSubmatch(out); m != nil {
			id = m[1]
			return true
		}
		return false
	})
	if s.exists("approved") {
		t.Fatal("the reviewed command ran before approval")
	}
	out, err := exec.Command(testutil.CorralBinary(t), "approve", id, "--config", s.config).CombinedOutput()
	if err != nil {
		t.Fatalf("approve: %v\n%s", err, out)
	}
	if out, err := p.wait(t); err != nil {
		t.Fatalf("approved command: %v\n%s", err, out)
	}
	if !s.exists("approved") {
		t.Fatal("the approved command did not run")
	}
}

// An interactive shell through a PTY is recorded; corral replay plays it
// back.
func TestSSHShellRecordedAndReplayed(t *testing.T) {
	s := newSSHEnv(t)
	from := s.a.Mark()
	cmd := exec.Command("ssh", s.sshArgs("-tt", s.target())...)
	cmd.Stdin = strings.NewReader("echo shell-$((6*7))\nexit 3\n")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: testutil.CgroupFD(t, s.workCg)}
	out, err := cmd.CombinedOutput()
	if code := exitCode(t, err); code != 3 || !strings.Contains(string(out), "shell-42") {
		t.Fatalf("shell: exit %d\n%s", code, out)
	}
	ev := s.a.WaitEvent(t, from, func(e intercept.Event) bool { return e.Event == intercept.EventClose && e.Protocol == "ssh" })

	rep := s.cli(t, "replay", ev.SessionID, "--no-wait")
	for _, want := range []string{"web (ssh)", "ALLOW  shell", "exit status 3", "shell-42", "hash chain verified"} {
		if !strings.Contains(rep, want) {
			t.Errorf("replay lacks %q:\n%s", want, rep)
		}
	}
	if v := s.cli(t, "verify", ev.SessionID); !strings.Contains(v, "ok") {
		t.Errorf("verify:\n%s", v)
	}
}

// A shell without a terminal (ssh -T) reads its commands from its input:
// that input is recorded like a terminal's, not cut at the bound of a
// command's data, however much output came first.
func TestSSHShellInputRecordedPastTheDataBound(t *testing.T) {
	s := newSSHEnv(t)
	from := s.a.Mark()
	cmd := exec.Command("ssh", s.sshArgs("-T", s.target())...)
	script := "head -c 1100000 /dev/zero | tr '\\0' x; echo\n" + strings.Repeat(":\n", 600_000) + "echo late-$((6*7))\n"
	cmd.Stdin = strings.NewReader(script)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: testutil.CgroupFD(t, s.workCg)}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "late-42") {
		t.Fatalf("shell: %v\n%.200s", err, out[max(0, len(out)-200):])
	}
	s.a.WaitEvent(t, from, func(e intercept.Event) bool { return e.Event == intercept.EventClose && e.Protocol == "ssh" })
	// Every byte of the input is in the cast's input events.
	recorded := 0
	filepath.WalkDir(s.stateDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".cast") {
			return nil
		}
		b, _ := os.ReadFile(path)
		for _, line := range strings.Split(string(b), "\n") {
			var ev []any
			if json.Unmarshal([]byte(line), &ev) == nil && len(ev) == 3 && ev[1] == "i" {
				data, _ := ev[2].(string)
				recorded += len(data)
			}
		}
		return nil
	})
	if recorded != len(script) {
		t.Errorf("the terminal recording kept %d bytes of the shell's %d bytes of input", recorded, len(script))
	}
}

// cli runs corral's command line on the agent's configuration.
func (s *sshEnv) cli(t *testing.T, args ...string) string {
	t.Helper()
	out, err := s.corralCLI(t, args...)
	if err != nil {
		t.Fatalf("corral %s: %v\n%s", args[0], err, out)
	}
	return out
}

// Commands multiplexed on one connection (OpenSSH's ControlMaster, as
// Ansible uses it) are one session, with a terminal recording each: each
// replays its own command's output alone, and verify checks them all.
func TestSSHMultiplexedCommandsRecordedApart(t *testing.T) {
	s := newSSHEnv(t)
	dir, err := os.MkdirTemp("", "corral-mux-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	mux := func(args ...string) []string {
		return append([]string{"-o", "ControlPath=" + filepath.Join(dir, "mux")}, args...)
	}
	from := s.a.Mark()
	// -f: the master goes to the background once logged in, its output
	// sent to /dev/null.
	if out, code := s.ssh(t, s.workCg, mux("-o", "ControlMaster=yes", "-f", "-N", s.target())...); code != 0 {
		t.Fatalf("master: exit %d\n%s", code, out)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			s.ssh(t, s.workCg, mux("-O", "exit", s.target())...)
		}
	}
	t.Cleanup(stop)
	for _, word := range []string{"first", "second"} {
		out, code := s.ssh(t, s.workCg, mux("-o", "ControlMaster=no", s.target(), "echo mux-"+word)...)
		if code != 0 || !strings.Contains(out, "mux-"+word) {
			t.Fatalf("command %s: exit %d\n%s", word, code, out)
		}
	}
	stop()
	ev := s.a.WaitEvent(t, from, func(e intercept.Event) bool { return e.Event == intercept.EventClose && e.Protocol == "ssh" })

	rep := s.cli(t, "replay", ev.SessionID, "--no-wait")
	one, two, ok := strings.Cut(rep, "-- terminal 2 --")
	if !ok || !strings.Contains(one, "-- terminal 1 --") {
		t.Fatalf("replay does not play two terminals:\n%s", rep)
	}
	_, one, _ = strings.Cut(one, "-- terminal 1 --")
	if !strings.Contains(one, "mux-first") || strings.Contains(one, "mux-second") || !strings.Contains(two, "mux-second") || strings.Contains(two, "mux-first") {
		t.Errorf("each terminal should hold its own command's output:\n%s", rep)
	}
	for _, want := range []string{"ALLOW  echo mux-first", "ALLOW  echo mux-second", "terminal 1,", "terminal 2,", "hash chain verified"} {
		if !strings.Contains(rep, want) {
			t.Errorf("replay lacks %q:\n%s", want, rep)
		}
	}
	if v := s.cli(t, "verify", ev.SessionID); !strings.Contains(v, " ok ") {
		t.Errorf("verify:\n%s", v)
	}
}

// sftp and scp run where the policy allows sftp and are refused where it
// does not; port forwarding is denied by default.
func TestSSHFileTransferAndForwarding(t *testing.T) {
	s := newSSHEnv(t)
	src := filepath.Join(s.clientDir, "upload.txt")
	os.WriteFile(src, []byte("payload\n"), 0o644)

	batch := filepath.Join(s.clientDir, "batch")
	os.WriteFile(batch, []byte("put "+src+" up.txt\n"), 0o644)
	sftp := func(cg string) (string, int) {
		out, err := testutil.Command(t, cg, nil, "sftp", append(s.sshArgs("-b", batch), s.target())...)
		return out, exitCode(t, err)
	}
	if out, code := sftp(s.workCg); code != 0 || !s.exists("up.txt") {
		t.Fatalf("sftp allowed: exit %d\n%s", code, out)
	}
	if out, err := testutil.Command(t, s.certCg, nil, "scp", append(s.sshArgs(), src, s.target()+":scp.txt")...); err != nil || !s.exists("scp.txt") {
		t.Fatalf("scp allowed: %v\n%s", err, out)
	}
	if out, code := sftp(s.pwCg); code == 0 {
		t.Fatalf("sftp for a workload without sftp: exit 0\n%s", out)
	}

	out, code := s.ssh(t, s.workCg, "-W", "127.0.0.1:22", s.target())
	if code == 0 || !strings.Contains(out, "no rule allows forward") {
		t.Fatalf("port forward: exit %d\n%s", code, out)
	}
}

// A token given as the password joins the workload's identity: a rule
// for its groups lets in a workload no kernel rule covers; without a
// token, or with a forged one, it is refused.
func TestSSHToken(t *testing.T) {
	s := newSSHEnv(t)
	issuer := testutil.StartOIDCIssuer(t)
	s.clientAuth = "token-required"
	s.rules += `  - name: ops-people
    who: {oidc: {groups: [ops]}}
    targets: [web]
    allow: [exec]
    credential: cert
`
	s.extra = fmt.Sprintf("oidc:\n  issuers: [{url: %q, audiences: [corral]}]", issuer.URL)
	from := s.a.Mark()
	s.write(t, s.known)
	s.a.WaitLine(t, from, func(l string) bool { return strings.Contains(l, "configuration reloaded") })

	tokenFrom := func(cgroup, token string) (string, int) {
		t.Helper()
		askpass := filepath.Join(s.clientDir, "askpass")
		os.WriteFile(askpass, []byte("#!/bin/sh\necho '"+token+"'\n"), 0o755)
		args := []string{"-F", "/dev/null",
			"-o", "UserKnownHostsFile=" + filepath.Join(s.clientDir, "known_hosts"), "-o", "GlobalKnownHostsFile=/dev/null",
			"-o", "StrictHostKeyChecking=yes", "-o", "PubkeyAuthentication=no", "-o", "KbdInteractiveAuthentication=no",
			"-o", "NumberOfPasswordPrompts=1", "-o", "ConnectTimeout=10", s.target(), "id -un"}
		out, err := testutil.Command(t, cgroup, []string{"SSH_ASKPASS=" + askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=none"}, "ssh", args...)
		return out, exitCode(t, err)
	}
	// The other cgroup: no kernel rule lets it in, only its token's groups.
	withToken := func(token string) (string, int) { return tokenFrom(s.otherCg, token) }
	from = s.a.Mark()
	if out, code := withToken(issuer.Token(t, nil)); code != 0 || !strings.HasSuffix(out, "deploy") {
		t.Fatalf("with a token: exit %d\n%s", code, out)
	}
	ev := s.a.WaitEvent(t, from, func(e intercept.Event) bool { return e.Event == intercept.EventOpen && e.Protocol == "ssh" })
	if ev.Workload.OIDC == nil || ev.Workload.OIDC.Subject != "alice" || ev.Rule != "ops-people" {
		t.Errorf("open event: %+v", ev)
	}
	// A workload the kernel rules let in still needs a token here.
	from = s.a.Mark()
	if out, code := tokenFrom(s.workCg, "not-a-token"); code == 0 {
		t.Errorf("without a token: exit 0\n%s", out)
	}
	s.a.WaitEvent(t, from, func(e intercept.Event) bool {
		return e.Event == intercept.EventDeny && strings.Contains(e.Reason, "requires a token")
	})
	from = s.a.Mark()
	forged := issuer.Token(t, nil)
	forged = forged[:len(forged)-4] + "AAAA"
	if out, code := withToken(forged); code == 0 {
		t.Errorf("a forged token: exit 0\n%s", out)
	}
	ev = s.a.WaitEvent(t, from, func(e intercept.Event) bool {
		return e.Event == intercept.EventDeny && strings.Contains(e.Reason, "token refused")
	})
	t.Logf("forged token refused: %s", ev.Reason)
}
