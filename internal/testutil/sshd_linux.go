package testutil

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHDOptions shape the server.
type SSHDOptions struct {
	// AuthorizedKeys are public keys (authorized_keys lines) the user may
	// log in with.
	AuthorizedKeys []string
	// TrustedUserCAKeys are CA public keys (authorized_keys format) whose
	// user certificates sshd accepts (TrustedUserCAKeys).
	TrustedUserCAKeys []string
	// Password, when set, is the user's password (PasswordAuthentication
	// yes).
	Password string
	// HostCertSigner, when set, signs a host certificate for the server's
	// host key with principals HostCertPrincipals (default: the host
	// address); sshd presents it (HostCertificate).
	HostCertSigner     ssh.Signer
	HostCertPrincipals []string
	// AllowTCPForwarding and AllowAgentForwarding are sshd's settings
	// (default no). Forwarding to unix sockets follows AllowTCPForwarding:
	// it would otherwise be a way around a test's "no forwarding".
	AllowTCPForwarding   bool
	AllowAgentForwarding bool
	Port                 int // default 22
}

// SSHD is a real OpenSSH server started for a test on a test host.
type SSHD struct {
	Addr     netip.AddrPort   // host.Addr:Port
	User     string           // the login user ("deploy")
	HostKey  ssh.PublicKey    // the server's ed25519 host key
	HostCert *ssh.Certificate // the host certificate sshd presents, if any
	Home     string           // the user's home directory (writable by the user)
	Dir      string           // server files; LogPath for its log
	LogPath  string

	log sshdLog
}

// sshdMount is where Dir appears inside sshd's mount namespace. StrictModes
// checks every directory above the authorized keys file, and the temporary
// directory (/tmp) is world-writable, so sshd must not see the files there.
const sshdMount = "/run/corral-sshd"

// sshdSetup runs inside fresh mount and PID namespaces before sshd. /run is
// a private tmpfs so that sshd's privilege separation directory
// (/run/sshd) and sshdMount exist without touching the host's /run; the
// account files are bound over the host's only in this namespace. A /proc
// of the PID namespace keeps ps and the like working in sessions.
const sshdSetup = `set -e
dir=$1; shift
mount -t proc proc /proc
mount -t tmpfs -o mode=0755 corral-sshd /run
mkdir -m 0755 /run/sshd ` + sshdMount + `
mount --bind "$dir" ` + sshdMount + `
for f in passwd group shadow; do mount --bind "$dir/$f" "/etc/$f"; done
exec "$@"
`

// StartSSHD runs OpenSSH's sshd inside host's network namespace, listening
// on host.Addr (port 22 unless opts.Port), and stops it at cleanup. The
// only user who may log in is "deploy", an account that exists for sshd
// alone: the host's /etc/passwd, /etc/group and /etc/shadow are not changed.
func StartSSHD(t testing.TB, host *Host, opts SSHDOptions) *SSHD {
	t.Helper()
	RequireRoot(t)
	const sshdPath = "/usr/sbin/sshd" // sshd re-executes itself, so it must be absolute
	if _, err := os.Stat(sshdPath); err != nil {
		skipOrFail(t, "OpenSSH server is not installed (apt-get install openssh-server)")
	}
	for _, tool := range []string{"nsenter", "unshare", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipOrFail(t, tool+" is not installed")
		}
	}
	port := opts.Port
	if port == 0 {
		port = 22
	}
	dir, err := os.MkdirTemp("", "corral-sshd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if strings.HasPrefix(dir, "/run/") {
		t.Fatalf("temporary directory %s is under /run, which sshd's mount namespace replaces; set TMPDIR elsewhere", dir)
	}
	// The user must reach its home below dir.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &SSHD{
		Addr:    netip.AddrPortFrom(host.Addr, uint16(port)),
		User:    "deploy",
		Home:    filepath.Join(dir, "home"),
		Dir:     dir,
		LogPath: filepath.Join(dir, "sshd.log"),
	}
	s.log.changed = make(chan struct{})

	uid := writeSSHDAccounts(t, dir, s.User, s.Home, opts.Password)
	if err := os.Mkdir(s.Home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(s.Home, uid, uid); err != nil {
		t.Fatal(err)
	}

	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	s.HostKey = hostSigner.PublicKey()
	block, err := ssh.MarshalPrivateKey(hostPriv, "")
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), data, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("ssh_host_ed25519_key", pem.EncodeToMemory(block), 0o600)
	write("ssh_host_ed25519_key.pub", ssh.MarshalAuthorizedKey(s.HostKey), 0o644)

	var conf strings.Builder
	set := func(format string, args ...any) { fmt.Fprintf(&conf, format+"\n", args...) }
	yesNo := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	set("ListenAddress %s", host.Addr)
	set("Port %d", port)
	set("HostKey %s/ssh_host_ed25519_key", sshdMount)
	if opts.HostCertSigner != nil {
		principals := opts.HostCertPrincipals
		if len(principals) == 0 {
			principals = []string{host.Addr.String()}
		}
		s.HostCert = &ssh.Certificate{
			Key:             s.HostKey,
			CertType:        ssh.HostCert,
			KeyId:           "corral test sshd",
			ValidPrincipals: principals,
			ValidAfter:      uint64(time.Now().Add(-time.Hour).Unix()), // clock skew
			ValidBefore:     uint64(time.Now().Add(24 * time.Hour).Unix()),
		}
		if err := s.HostCert.SignCert(rand.Reader, opts.HostCertSigner); err != nil {
			t.Fatalf("sign host certificate: %v", err)
		}
		write("ssh_host_ed25519_key-cert.pub", ssh.MarshalAuthorizedKey(s.HostCert), 0o644)
		set("HostCertificate %s/ssh_host_ed25519_key-cert.pub", sshdMount)
	}
	// Root-owned and in root-owned directories, so StrictModes (on, as in
	// production) accepts them and the user cannot change them.
	write("authorized_keys", keyLines(opts.AuthorizedKeys), 0o644)
	set("AuthorizedKeysFile %s/authorized_keys", sshdMount)
	if len(opts.TrustedUserCAKeys) > 0 {
		write("trusted_user_ca_keys", keyLines(opts.TrustedUserCAKeys), 0o644)
		set("TrustedUserCAKeys %s/trusted_user_ca_keys", sshdMount)
	}
	set("StrictModes yes")
	set("PasswordAuthentication %s", yesNo(opts.Password != ""))
	set("PermitEmptyPasswords no")
	set("KbdInteractiveAuthentication no")
	// Without PAM sshd checks the password against the shadow file itself,
	// and no PAM stack of the host's takes part.
	set("UsePAM no")
	set("PermitRootLogin no")
	set("AllowUsers %s", s.User)
	set("AllowTcpForwarding %s", yesNo(opts.AllowTCPForwarding))
	set("AllowStreamLocalForwarding %s", yesNo(opts.AllowTCPForwarding))
	set("AllowAgentForwarding %s", yesNo(opts.AllowAgentForwarding))
	set("X11Forwarding no")
	set("Subsystem sftp internal-sftp")
	set("PidFile %s/sshd.pid", sshdMount)
	set("LogLevel VERBOSE")
	set("AcceptEnv LANG LC_*")
	write("sshd_config", []byte(conf.String()), 0o644)

	logf, err := os.Create(s.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	s.log.file = logf
	cmd := exec.Command("nsenter", "--net="+host.NS,
		"unshare", "--mount", "--propagation", "private",
		"sh", "-c", sshdSetup, "sh", dir,
		sshdPath, "-D", "-e", "-f", sshdMount+"/sshd_config")
	cmd.Stdout, cmd.Stderr = &s.log, &s.log
	// nsenter, unshare and sh each exec the next, so sshd becomes the PID
	// namespace's init: when it exits, the kernel kills every session it
	// leaves behind, and none outlives the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	// The kernel's teardown of the namespace should close every copy of
	// the log pipe; if one were left, it must not hang cleanup.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start sshd: %v", err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		s.log.mu.Lock()
		logf.Close()
		s.log.file = nil
		s.log.mu.Unlock()
		if t.Failed() {
			t.Logf("sshd log:\n%s", s.Log())
		}
	})

	listening := fmt.Sprintf("Server listening on %s port %d", host.Addr, port)
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	for {
		log, changed := s.log.snapshot()
		if strings.Contains(log, listening) {
			return s
		}
		select {
		case <-changed:
		case <-done:
			t.Fatalf("sshd exited (%v) before listening:\n%s", waitErr, s.Log())
		case <-timeout.C:
			t.Fatalf("sshd did not log %q within 20s:\n%s", listening, s.Log())
		}
	}
}

// KnownHostsLine returns a known_hosts line for the server's plain host key
// at its address ("[addr]:port key", or "addr key" for port 22).
func (s *SSHD) KnownHostsLine() string {
	return knownhosts.Line([]string{s.Addr.String()}, s.HostKey)
}

// Log returns the server's log so far.
func (s *SSHD) Log() string {
	log, _ := s.log.snapshot()
	return log
}

// WaitLog waits until the server has logged a line containing substr and
// returns that line. sshd logs from its per-connection processes, so what
// a client saw may be in the log only a moment later.
func (s *SSHD) WaitLog(t testing.TB, substr string) string {
	t.Helper()
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	for {
		log, changed := s.log.snapshot()
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, substr) {
				return line
			}
		}
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("sshd did not log %q within 20s:\n%s", substr, log)
		}
	}
}

// sshdLog keeps sshd's output in memory, for waiting on, and in a file.
type sshdLog struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	file    *os.File
	changed chan struct{} // closed and replaced on every write
}

func (l *sshdLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if l.file != nil {
		l.file.Write(p)
	}
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

func (l *sshdLog) snapshot() (string, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String(), l.changed
}

func keyLines(lines []string) []byte {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(strings.TrimSpace(l))
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// writeSSHDAccounts writes copies of the host's passwd, group and shadow to
// dir with the login user added (and sshd's privilege separation user, when
// the host has none), and returns the login user's uid (also its gid).
func writeSSHDAccounts(t testing.TB, dir, name, home, password string) int {
	t.Helper()
	read := func(file string) []string {
		b, err := os.ReadFile(filepath.Join("/etc", file))
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			// A host's own user of that name would shadow ours.
			if l != "" && !strings.HasPrefix(l, name+":") {
				lines = append(lines, l)
			}
		}
		return lines
	}
	passwd, group, shadow := read("passwd"), read("group"), read("shadow")
	used := map[int]bool{}
	hasUser := func(user string) bool {
		return slices.ContainsFunc(passwd, func(l string) bool { return strings.HasPrefix(l, user+":") })
	}
	for _, l := range append(slices.Clone(passwd), group...) {
		if f := strings.Split(l, ":"); len(f) > 2 {
			if id, err := strconv.Atoi(f[2]); err == nil {
				used[id] = true
			}
		}
	}
	freeID := func() int {
		for id := 4242; ; id++ {
			if !used[id] {
				used[id] = true
				return id
			}
		}
	}

	hash := "*" // no password login; "!" would lock the account for keys too
	if password != "" {
		cmd := exec.Command("openssl", "passwd", "-6", "-stdin")
		cmd.Stdin = strings.NewReader(password)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("hash password: %v", err)
		}
		hash = strings.TrimSpace(string(out))
	}
	id := freeID()
	// A last change of 0 would make sshd demand a new password at login.
	today := time.Now().Unix() / 86400
	passwd = append(passwd, fmt.Sprintf("%s:x:%d:%d:corral test user:%s:/bin/bash", name, id, id, home))
	group = append(group, fmt.Sprintf("%s:x:%d:", name, id))
	shadow = append(shadow, fmt.Sprintf("%s:%s:%d:0:99999:7:::", name, hash, today))
	if !hasUser("sshd") {
		sid := freeID()
		passwd = append(passwd, fmt.Sprintf("sshd:x:%d:%d::/run/sshd:/usr/sbin/nologin", sid, sid))
		group = append(group, fmt.Sprintf("sshd:x:%d:", sid))
	}
	for file, lines := range map[string][]string{"passwd": passwd, "group": group, "shadow": shadow} {
		mode := os.FileMode(0o644)
		if file == "shadow" {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(dir, file), []byte(strings.Join(lines, "\n")+"\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	return id
}
