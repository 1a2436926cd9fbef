// Package sshca holds corral's SSH keys: the host key it presents to
// workloads, the host CA that certifies it for each target's names (so a
// client trusting the CA with one @cert-authority line connects to every
// protected host without a warning), and the user CA that signs the
// short-lived certificates corral logs in to targets with (the target
// trusts it through TrustedUserCAKeys).
//
// The three keys are separate on purpose: the host CA vouches to
// workloads, the user CA to targets, and neither key is the x509 CA's.
package sshca

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Key file names under the directory.
const (
	HostKeyFile = "ssh_host_ed25519_key"
	HostCAFile  = "ssh_host_ca_key"
	UserCAFile  = "ssh_user_ca_key"
)

// Host certificates are valid for a week and issued again a day before
// they end; workloads never see a certificate that is about to expire.
const (
	hostCertLifetime = 7 * 24 * time.Hour
	hostCertRenew    = 24 * time.Hour
	// clockSkew backdates certificates, so a target whose clock is a
	// little behind still accepts them.
	clockSkew = 2 * time.Minute
)

// Authority is corral's SSH key material. Its methods are safe for
// concurrent use.
type Authority struct {
	hostKey ssh.Signer
	hostCA  ssh.Signer
	userCA  ssh.Signer
	now     func() time.Time

	mu    sync.Mutex
	certs map[string]ssh.Signer // host certificates by principal set
}

// Open loads the keys in dir, creating those that are missing (mode 0600,
// in a 0700 directory). An operator who wants corral to use their own
// CAs puts their OpenSSH private keys there under the same names.
func Open(dir string) (*Authority, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	a := &Authority{now: time.Now, certs: map[string]ssh.Signer{}}
	for _, k := range []struct {
		name string
		dst  *ssh.Signer
	}{{HostKeyFile, &a.hostKey}, {HostCAFile, &a.hostCA}, {UserCAFile, &a.userCA}} {
		s, err := loadOrCreate(filepath.Join(dir, k.name))
		if err != nil {
			return nil, err
		}
		*k.dst = s
	}
	return a, nil
}

func loadOrCreate(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return s, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "corral "+filepath.Base(path))
	if err != nil {
		return nil, err
	}
	// Written aside and renamed, so a crash never leaves half a key that
	// the next start would refuse.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	return ssh.NewSignerFromKey(priv)
}

// HostKey is corral's plain host key (for targets with host_key: key).
func (a *Authority) HostKey() ssh.Signer { return a.hostKey }

// HostCAKey is the public key of the host CA.
func (a *Authority) HostCAKey() ssh.PublicKey { return a.hostCA.PublicKey() }

// UserCAKey is the public key of the user CA.
func (a *Authority) UserCAKey() ssh.PublicKey { return a.userCA.PublicKey() }

// KnownHostsLine is the line a client's known_hosts needs to trust every
// target corral answers for.
func (a *Authority) KnownHostsLine() string { return a.KnownHostsLineFor("*") }

// KnownHostsLineFor trusts the host CA for the hosts matching patterns (a
// known_hosts host list) only.
func (a *Authority) KnownHostsLineFor(patterns string) string {
	return "@cert-authority " + patterns + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(a.hostCA.PublicKey()))) + " corral-host-ca"
}

// UserCALine is the public key of the user CA in authorized_keys format,
// for a target's TrustedUserCAKeys file.
func (a *Authority) UserCALine() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(a.userCA.PublicKey()))) + " corral-user-ca"
}

// HostSigner returns corral's host key with a certificate naming
// principals (the target's DNS names and addresses).
func (a *Authority) HostSigner(principals []string) (ssh.Signer, error) {
	ps := slices.Clone(principals)
	slices.Sort(ps)
	ps = slices.Compact(ps)
	key := strings.Join(ps, "\x00")
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if s, ok := a.certs[key]; ok {
		c := s.PublicKey().(*ssh.Certificate)
		if time.Unix(int64(c.ValidBefore), 0).Sub(now) > hostCertRenew {
			return s, nil
		}
	}
	cert := &ssh.Certificate{
		Key:             a.hostKey.PublicKey(),
		Serial:          serial(),
		CertType:        ssh.HostCert,
		KeyId:           "corral host",
		ValidPrincipals: ps,
		ValidAfter:      uint64(now.Add(-clockSkew).Unix()),
		ValidBefore:     uint64(now.Add(hostCertLifetime).Unix()),
	}
	if err := cert.SignCert(rand.Reader, a.hostCA); err != nil {
		return nil, err
	}
	s, err := ssh.NewCertSigner(cert, a.hostKey)
	if err != nil {
		return nil, err
	}
	if len(a.certs) > 4096 {
		clear(a.certs) // many CIDR addresses: start over rather than grow
	}
	a.certs[key] = s
	return s, nil
}

// UserSigner returns a fresh key with a user certificate valid for ttl,
// naming principals; keyID says whom it was issued for (OpenSSH logs it).
// The certificate permits a PTY and forwarding, since corral decides
// each such request before it reaches the target; never X11, and never a
// target's ~/.ssh/rc.
func (a *Authority) UserSigner(principals []string, ttl time.Duration, keyID string) (ssh.Signer, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	sk, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	pk, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	now := a.now()
	ext := map[string]string{"permit-pty": "", "permit-port-forwarding": "", "permit-agent-forwarding": ""}
	cert := &ssh.Certificate{
		Key:             pk,
		Serial:          serial(),
		CertType:        ssh.UserCert,
		KeyId:           keyID,
		ValidPrincipals: principals,
		ValidAfter:      uint64(now.Add(-clockSkew).Unix()),
		ValidBefore:     uint64(now.Add(ttl).Unix()),
		Permissions:     ssh.Permissions{Extensions: ext},
	}
	if err := cert.SignCert(rand.Reader, a.userCA); err != nil {
		return nil, err
	}
	return ssh.NewCertSigner(cert, sk)
}

func serial() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:])
}
