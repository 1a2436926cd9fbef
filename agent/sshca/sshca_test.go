package sshca

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestOpenCreatesOnceAndReloads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ssh")
	a, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{HostKeyFile, HostCAFile, UserCAFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", name, err, fi)
		}
	}
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.KnownHostsLine() != b.KnownHostsLine() || a.UserCALine() != b.UserCALine() ||
		string(a.HostKey().PublicKey().Marshal()) != string(b.HostKey().PublicKey().Marshal()) {
		t.Fatal("reopening made new keys")
	}
	if a.KnownHostsLine() == "" || !strings.HasPrefix(a.KnownHostsLine(), "@cert-authority * ssh-ed25519 ") {
		t.Fatalf("known_hosts line %q", a.KnownHostsLine())
	}
	// A damaged key is an error, not a silently new CA.
	os.WriteFile(filepath.Join(dir, UserCAFile), []byte("garbage"), 0o600)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), UserCAFile) {
		t.Fatalf("damaged key: %v", err)
	}
}

func TestHostCertificateVerifiesForItsNames(t *testing.T) {
	a, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := a.HostSigner([]string{"web-1.internal", "10.0.0.7"})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := a.HostSigner([]string{"10.0.0.7", "web-1.internal", "10.0.0.7"})
	if again != s {
		t.Error("the same names did not reuse the certificate")
	}
	checker := &ssh.CertChecker{IsHostAuthority: func(k ssh.PublicKey, _ string) bool {
		return string(k.Marshal()) == string(a.HostCAKey().Marshal())
	}}
	addr := &net.TCPAddr{IP: net.ParseIP("10.0.0.7"), Port: 22}
	for _, host := range []string{"10.0.0.7:22", "web-1.internal:22"} {
		if err := checker.CheckHostKey(host, addr, s.PublicKey()); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
	if err := checker.CheckHostKey("10.0.0.8:22", addr, s.PublicKey()); err == nil {
		t.Error("the certificate verified for a name it does not carry")
	}
}

func TestUserCertificate(t *testing.T) {
	a, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := a.UserSigner([]string{"deploy"}, 2*time.Minute, "corral session s-1")
	if err != nil {
		t.Fatal(err)
	}
	c := s.PublicKey().(*ssh.Certificate)
	if c.CertType != ssh.UserCert || c.KeyId != "corral session s-1" || len(c.ValidPrincipals) != 1 || c.ValidPrincipals[0] != "deploy" {
		t.Fatalf("certificate: %+v", c)
	}
	if life := time.Unix(int64(c.ValidBefore), 0).Sub(time.Now()); life > 2*time.Minute || life < time.Minute {
		t.Errorf("valid for another %v", life)
	}
	if _, ok := c.Permissions.Extensions["permit-X11-forwarding"]; ok {
		t.Error("X11 forwarding permitted")
	}
	checker := &ssh.CertChecker{IsUserAuthority: func(k ssh.PublicKey) bool { return string(k.Marshal()) == string(a.UserCAKey().Marshal()) }}
	if _, err := checker.Authenticate(connMeta("deploy"), c); err != nil {
		t.Errorf("deploy: %v", err)
	}
	if _, err := checker.Authenticate(connMeta("root"), c); err == nil {
		t.Error("the certificate logs in as root")
	}
	other, _ := a.UserSigner([]string{"deploy"}, time.Minute, "x")
	if string(other.PublicKey().(*ssh.Certificate).Key.Marshal()) == string(c.Key.Marshal()) {
		t.Error("two sessions share a key")
	}
}

type connMeta string

func (c connMeta) User() string        { return string(c) }
func (connMeta) SessionID() []byte     { return nil }
func (connMeta) ClientVersion() []byte { return nil }
func (connMeta) ServerVersion() []byte { return nil }
func (connMeta) RemoteAddr() net.Addr  { return &net.TCPAddr{} }
func (connMeta) LocalAddr() net.Addr   { return &net.TCPAddr{} }
