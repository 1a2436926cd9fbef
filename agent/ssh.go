package agent

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/corral-dev/corral/agent/config"
	"github.com/corral-dev/corral/agent/sshca"
	"github.com/corral-dev/corral/intercept"
	issh "github.com/corral-dev/corral/intercept/ssh"
	"github.com/corral-dev/corral/intercept/ssh/shellcmd"
)

// sshTargets gives the ssh handler each session's settings from the live
// configuration: a reload applies from the next connection, and the
// known_hosts file and key files are read for every session, so a
// rotated key needs no restart.
type sshTargets struct {
	ca    *sshca.Authority
	table *targetTable
	creds *credentials
}

func (p *sshTargets) Target(c *intercept.Conn) (issh.Target, error) {
	t, ok := p.table.byName(c.Meta.Target.Name)
	if !ok || t.SSH == nil {
		return issh.Target{}, fmt.Errorf("target %q is not an ssh target of the configuration", c.Meta.Target.Name)
	}
	out := issh.Target{ClientAuth: intercept.ClientAuth(t.ClientAuth)}
	switch t.SSH.LoginShell {
	case "bash":
		out.LoginShell = shellcmd.Bash
	case "sh":
		out.LoginShell = shellcmd.POSIX
	}
	var err error
	if t.SSH.HostKey == "key" {
		out.HostSigner = p.ca.HostKey()
	} else {
		names, addrs := leafSubjects(t, c.Meta.OrigDst.Addr())
		for _, a := range addrs {
			names = append(names, a.String())
		}
		if t.SSH.HostName != "" {
			names = append(names, t.SSH.HostName)
		}
		if out.HostSigner, err = p.ca.HostSigner(names); err != nil {
			return issh.Target{}, fmt.Errorf("issue a host certificate: %w", err)
		}
	}
	out.HostKeyCallback, err = knownhosts.New(t.SSH.KnownHosts)
	if err != nil {
		return issh.Target{}, fmt.Errorf("ssh.known_hosts: %w", err)
	}
	port := strconv.Itoa(int(c.Meta.OrigDst.Port()))
	out.HostName = net.JoinHostPort(c.Meta.OrigDst.Addr().String(), port)
	if t.SSH.HostName != "" {
		out.HostName = net.JoinHostPort(t.SSH.HostName, port)
	}
	out.HostKeyAlgorithms = hostKeyAlgorithms(t.SSH.KnownHosts, out.HostKeyCallback, out.HostName, c.Meta.OrigDst)
	return out, nil
}

// hostKeyAlgorithms are the algorithms to ask the target for: those of
// the keys known_hosts has for it. Without this, a target that also has a
// host certificate would offer it first, and a file that trusts its plain
// key but no CA would refuse it. A file with @cert-authority lines takes
// every algorithm (nil).
func hostKeyAlgorithms(file string, cb gossh.HostKeyCallback, name string, addr netip.AddrPort) []string {
	if b, err := os.ReadFile(file); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if strings.HasPrefix(strings.TrimSpace(sc.Text()), "@cert-authority") {
				return nil
			}
		}
	}
	// A key no file can hold makes the callback list what it would
	// accept for this host.
	probe, _ := gossh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	err := cb(name, net.TCPAddrFromAddrPort(addr), probe)
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) || len(ke.Want) == 0 {
		return nil
	}
	var algs []string
	seen := map[string]bool{}
	for _, k := range ke.Want {
		typ := k.Key.Type()
		more := []string{typ}
		if typ == gossh.KeyAlgoRSA {
			more = []string{gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256, gossh.KeyAlgoRSA}
		}
		for _, a := range more {
			if !seen[a] {
				seen[a] = true
				algs = append(algs, a)
			}
		}
	}
	return algs
}

func (p *sshTargets) Login(c *intercept.Conn, alias string) (issh.Login, error) {
	t, ok := p.creds.target(c.Meta.Target.Name)
	if !ok {
		return issh.Login{}, fmt.Errorf("target %q is not configured", c.Meta.Target.Name)
	}
	cred, ok := t.Credentials[alias]
	if !ok {
		return issh.Login{}, fmt.Errorf("target %q has no credential %q", t.Name, alias)
	}
	login := issh.Login{User: cred.Username}
	switch {
	case cred.PrivateKeyFile != "":
		b, err := os.ReadFile(cred.PrivateKeyFile)
		if err != nil {
			return issh.Login{}, fmt.Errorf("credential %q: %w", alias, err)
		}
		k, err := gossh.ParsePrivateKey(b)
		if err != nil {
			return issh.Login{}, fmt.Errorf("credential %q: %s: %w", alias, cred.PrivateKeyFile, err)
		}
		login.Auth = gossh.PublicKeys(k)
	case cred.Certificate != nil:
		principals := cred.Certificate.Principals
		if len(principals) == 0 {
			principals = []string{cred.Username}
		}
		ttl := cred.Certificate.Lifetime
		if ttl == 0 {
			ttl = config.DefaultSSHCertTTL
		}
		k, err := p.ca.UserSigner(principals, ttl, certKeyID(c))
		if err != nil {
			return issh.Login{}, fmt.Errorf("credential %q: issue a certificate: %w", alias, err)
		}
		login.Auth = gossh.PublicKeys(k)
	default:
		secret, err := p.creds.readSecret(cred)
		if err != nil {
			return issh.Login{}, fmt.Errorf("credential %q: %w", alias, err)
		}
		login.Auth = gossh.Password(secret)
	}
	return login, nil
}

// certKeyID is the key id of a session's certificate: the target's sshd
// logs it with every login, which ties its log to corral's recording and
// to the workload.
func certKeyID(c *intercept.Conn) string {
	w := c.Meta.Workload
	who := w.Unit
	switch {
	case w.Pod.Name != "":
		who = "pod " + w.Pod.Namespace + "/" + w.Pod.Name
	case w.OIDC != nil:
		who = w.OIDC.Subject
	case who == "":
		who = w.Exe
	}
	return fmt.Sprintf("corral session %s for %s (uid %d)", c.SessionID, who, w.UID)
}

// KnownHostsPatterns are the host patterns of a known_hosts line that
// trusts corral's host CA for the SSH targets of cfg only: their names,
// addresses and networks (a /8, /16 or /24 as a wildcard; another prefix
// length cannot be written as a pattern, and makes the line "*"). With no
// SSH target it is "*".
func KnownHostsPatterns(cfg *config.Config) string {
	var out []string
	seen := map[string]bool{}
	add := func(host string, port uint16) {
		p := host
		if port != 22 {
			p = "[" + host + "]:" + strconv.Itoa(int(port))
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, t := range cfg.Targets {
		if t.Protocol != "ssh" {
			continue
		}
		for _, e := range t.Parsed {
			switch {
			case e.Host != "":
				add(e.Host, e.Port)
			case e.Prefix.IsSingleIP():
				add(e.Prefix.Addr().String(), e.Port)
			case e.Prefix.Addr().Is4() && e.Prefix.Bits()%8 == 0 && e.Prefix.Bits() > 0:
				octets := strings.Split(e.Prefix.Addr().String(), ".")
				add(strings.Join(octets[:e.Prefix.Bits()/8], ".")+strings.Repeat(".*", 4-e.Prefix.Bits()/8), e.Port)
			default:
				return "*"
			}
			if t.SSH != nil && t.SSH.HostName != "" {
				add(t.SSH.HostName, e.Port)
			}
		}
	}
	if len(out) == 0 {
		return "*"
	}
	return strings.Join(out, ",")
}
