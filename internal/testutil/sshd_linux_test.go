package testutil

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestSSHD(t *testing.T) {
	RequireRoot(t)
	host := NewHost(t)
	userPriv, userKey := newSSHKey(t)
	_, userCA := newSSHKey(t)
	_, hostCA := newSSHKey(t)
	const password = "correct horse battery staple"
	s := StartSSHD(t, host, SSHDOptions{
		AuthorizedKeys:    []string{string(ssh.MarshalAuthorizedKey(userKey.PublicKey()))},
		TrustedUserCAKeys: []string{string(ssh.MarshalAuthorizedKey(userCA.PublicKey()))},
		Password:          password,
		HostCertSigner:    hostCA,
	})

	knownHostsPath := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(knownHostsPath, []byte(s.KnownHostsLine()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if want := host.Addr.String() + " "; !strings.HasPrefix(s.KnownHostsLine(), want) {
		t.Errorf("known_hosts line %q does not start with %q", s.KnownHostsLine(), want)
	}
	checkKnown, err := knownhosts.New(knownHostsPath)
	if err != nil {
		t.Fatal(err)
	}
	// The server has a certificate too: ask for the plain key, which is
	// what known_hosts holds.
	plain := func(auth ssh.AuthMethod) *ssh.ClientConfig {
		return &ssh.ClientConfig{
			User:              s.User,
			Auth:              []ssh.AuthMethod{auth},
			HostKeyCallback:   checkKnown,
			HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
			Timeout:           10 * time.Second,
		}
	}

	t.Run("key", func(t *testing.T) {
		out, err := sshOutput(s, plain(ssh.PublicKeys(userKey)), "id -un; pwd; touch probe")
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if want := "deploy\n" + s.Home + "\n"; out != want {
			t.Errorf("output %q, want %q", out, want)
		}
		fi, err := os.Stat(filepath.Join(s.Home, "probe"))
		if err != nil {
			t.Fatalf("the user could not write to its home: %v", err)
		}
		if fi.Sys().(*syscall.Stat_t).Uid == 0 {
			t.Errorf("the session ran as root")
		}
	})

	t.Run("certificate", func(t *testing.T) {
		_, signer := newSSHKey(t) // not an authorized key: only the certificate lets it in
		cert := &ssh.Certificate{
			Key:             signer.PublicKey(),
			CertType:        ssh.UserCert,
			KeyId:           "alice@example.com",
			ValidPrincipals: []string{"deploy"},
			ValidAfter:      uint64(time.Now().Add(-time.Minute).Unix()),
			ValidBefore:     uint64(time.Now().Add(time.Hour).Unix()),
			Permissions:     ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}},
		}
		if err := cert.SignCert(rand.Reader, userCA); err != nil {
			t.Fatal(err)
		}
		certSigner, err := ssh.NewCertSigner(cert, signer)
		if err != nil {
			t.Fatal(err)
		}
		out, err := sshOutput(s, plain(ssh.PublicKeys(certSigner)), "id -un")
		if err != nil || out != "deploy\n" {
			t.Fatalf("certificate login: %q, %v", out, err)
		}
		s.WaitLog(t, `Accepted certificate ID "alice@example.com"`)
	})

	t.Run("password", func(t *testing.T) {
		out, err := sshOutput(s, plain(ssh.Password(password)), "id -un")
		if err != nil || out != "deploy\n" {
			t.Fatalf("password login: %q, %v", out, err)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		out, err := sshOutput(s, plain(ssh.Password("wrong")), "id -un")
		if err == nil {
			t.Fatalf("a wrong password logged in: %q", out)
		}
		s.WaitLog(t, "Failed password for deploy")
	})

	t.Run("host certificate", func(t *testing.T) {
		checker := &ssh.CertChecker{
			IsHostAuthority: func(auth ssh.PublicKey, _ string) bool {
				return bytes.Equal(auth.Marshal(), hostCA.PublicKey().Marshal())
			},
		}
		var presented ssh.PublicKey
		cfg := plain(ssh.PublicKeys(userKey))
		cfg.HostKeyAlgorithms = []string{ssh.CertAlgoED25519v01}
		cfg.HostKeyCallback = func(hostname string, remote net.Addr, key ssh.PublicKey) error {
			presented = key
			return checker.CheckHostKey(hostname, remote, key)
		}
		if out, err := sshOutput(s, cfg, "true"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		cert, ok := presented.(*ssh.Certificate)
		if !ok {
			t.Fatalf("server presented %T, not a certificate", presented)
		}
		if !bytes.Equal(cert.Key.Marshal(), s.HostKey.Marshal()) {
			t.Error("the certificate is not for the server's host key")
		}
		if err := checker.CheckHostKey("elsewhere.example:22", nil, cert); err == nil {
			t.Error("the certificate is valid for a host it does not name")
		}
	})

	t.Run("openssh client", func(t *testing.T) {
		keyPath := filepath.Join(t.TempDir(), "id_ed25519")
		block, err := ssh.MarshalPrivateKey(userPriv, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyPath, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "/usr/bin/ssh",
			"-F", "/dev/null", // none of the host's client configuration
			"-i", keyPath,
			"-o", "IdentitiesOnly=yes",
			"-o", "IdentityAgent=none",
			"-o", "BatchMode=yes",
			"-o", "StrictHostKeyChecking=yes",
			"-o", "UserKnownHostsFile="+knownHostsPath,
			"-o", "GlobalKnownHostsFile=/dev/null",
			"-o", "ConnectTimeout=10",
			"-p", strconv.Itoa(int(s.Addr.Port())),
			"-l", s.User,
			s.Addr.Addr().String(), "echo hello")
		out, err := cmd.CombinedOutput()
		if err != nil || string(out) != "hello\n" {
			t.Fatalf("ssh: %v: %q", err, out)
		}
	})
}

func newSSHKey(t testing.TB) (ed25519.PrivateKey, ssh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return priv, signer
}

// sshOutput logs in and runs command, returning its combined output.
func sshOutput(s *SSHD, cfg *ssh.ClientConfig, command string) (string, error) {
	c, err := ssh.Dial("tcp", s.Addr.String(), cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer sess.Close()
	out, err := sess.CombinedOutput(command)
	return string(out), err
}
