package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable time for the CA.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestCreateThenReuse(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "ca")
	a, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Created() {
		t.Error("a fresh directory should create a CA")
	}
	c := a.Certificate()
	if !c.IsCA || !strings.HasPrefix(c.Subject.CommonName, "corral node CA ") {
		t.Errorf("created CA: IsCA=%v subject %q", c.IsCA, c.Subject.CommonName)
	}
	if _, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || c.PublicKey.(*ecdsa.PublicKey).Curve != elliptic.P256() {
		t.Errorf("created CA key is %T, want ECDSA P-256", c.PublicKey)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, KeyName): 0o600, filepath.Join(dir, CertName): 0o644} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %04o, want %04o", path, fi.Mode().Perm(), want)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("CA directory holds %d files, want the certificate and the key only", len(ents))
	}

	b, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if b.Created() || !b.Certificate().Equal(c) {
		t.Error("a restart must reuse the CA it created")
	}
}

// A lone key (a create interrupted before the certificate was written) is
// replaced by a whole new CA rather than refused.
func TestInterruptedCreateStartsOver(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, CertName))
	a, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Created() {
		t.Error("no new CA was created")
	}
	if _, err := Open(Options{Dir: dir}); err != nil {
		t.Fatalf("the new CA does not load: %v", err)
	}
}

func TestKeyOpenToOthersIsRefused(t *testing.T) {
	for _, mode := range []os.FileMode{0o640, 0o604, 0o620} {
		dir := t.TempDir()
		if _, err := Open(Options{Dir: dir}); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(dir, KeyName), mode)
		_, err := Open(Options{Dir: dir})
		if err == nil || !strings.Contains(err.Error(), "chmod 600") || !strings.Contains(err.Error(), KeyName) {
			t.Errorf("key mode %04o: %v", mode, err)
		}
	}
}

// operatorCA writes a CA the way an operator would provide one and returns
// the file paths.
func operatorCA(t *testing.T, tmpl *x509.Certificate, key crypto.Signer) (certPath, keyPath string) {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return writeCert(t, der), writeKey(t, key)
}

func writeCert(t *testing.T, der ...[]byte) string {
	t.Helper()
	var b []byte
	for _, d := range der {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	p := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeKey(t *testing.T, key crypto.Signer) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ca.key")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func caTemplate(notBefore, notAfter time.Time) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "operator CA"},
		NotBefore: notBefore, NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
}

func TestOperatorCA(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	cert, keyPath := operatorCA(t, caTemplate(time.Now().Add(-time.Hour), time.Now().Add(time.Hour*24*30)), key)
	a, err := Open(Options{CertFile: cert, KeyFile: keyPath, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if a.Created() || a.Certificate().Subject.CommonName != "operator CA" {
		t.Errorf("not the operator's CA: %q", a.Certificate().Subject.CommonName)
	}
	l, err := a.Leaf([]string{"db.internal"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	verify(t, a, l, "db.internal")
}

func TestOperatorCARefusals(t *testing.T) {
	now := time.Now()
	keyA, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keyB, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good := caTemplate(now.Add(-time.Hour), now.Add(time.Hour))

	certA, _ := operatorCA(t, good, keyA)
	_, keyBPath := operatorCA(t, good, keyB)
	notCA := *good
	notCA.IsCA = false
	notCACert, notCAKey := operatorCA(t, &notCA, keyA)
	noSign := *good
	noSign.KeyUsage = x509.KeyUsageDigitalSignature
	noSignCert, noSignKey := operatorCA(t, &noSign, keyA)
	expiredCert, expiredKey := operatorCA(t, caTemplate(now.Add(-48*time.Hour), now.Add(-time.Hour)), keyA)
	futureCert, futureKey := operatorCA(t, caTemplate(now.Add(time.Hour), now.Add(48*time.Hour)), keyA)
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	os.WriteFile(garbage, []byte("not pem"), 0o600)

	for _, c := range []struct {
		name      string
		cert, key string
		want      string
	}{
		{"mismatched key", certA, keyBPath, "does not match the CA key"},
		{"not a CA", notCACert, notCAKey, "not a CA certificate"},
		{"cannot sign", noSignCert, noSignKey, "not allowed to sign"},
		{"expired", expiredCert, expiredKey, "expired on"},
		{"not yet valid", futureCert, futureKey, "not valid before"},
		{"no key in the key file", certA, garbage, "no PEM private key"},
		{"no certificate in the certificate file", garbage, keyBPath, "no PEM certificate"},
		{"only a certificate", certA, "", "both a certificate file and a key file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Open(Options{CertFile: c.cert, KeyFile: c.key})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

// The created CA is checked like any other: one that has expired by the
// time the agent starts is refused, not silently used.
func TestCreatedCAExpiryIsChecked(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	later := &clock{time.Now().Add(11 * 365 * 24 * time.Hour)}
	_, err := Open(Options{Dir: dir, Now: later.now})
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired CA: %v", err)
	}
}

func verify(t *testing.T, a *CA, l *tls.Certificate, name string) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(a.Certificate())
	inter := x509.NewCertPool()
	for _, der := range l.Certificate[1:] {
		c, _ := x509.ParseCertificate(der)
		inter.AddCert(c)
	}
	if _, err := l.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter}); err != nil {
		t.Errorf("leaf does not verify for %q: %v", name, err)
	}
}

func TestLeafNamesAndAddresses(t *testing.T) {
	clk := &clock{time.Now()}
	a, err := Open(Options{Dir: t.TempDir(), Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	l, err := a.Leaf([]string{"Orders.Internal.", "db.example"},
		[]netip.Addr{netip.MustParseAddr("::ffff:10.1.0.7"), netip.MustParseAddr("2001:db8::7")})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"orders.internal", "db.example", "10.1.0.7", "2001:db8::7"} {
		verify(t, a, l, name)
	}
	roots := x509.NewCertPool()
	roots.AddCert(a.Certificate())
	if _, err := l.Leaf.Verify(x509.VerifyOptions{DNSName: "10.1.0.8", Roots: roots}); err == nil {
		t.Error("leaf verifies for an address it was not issued for")
	}
	// IPv4 goes in as 4 bytes: OpenSSL (libpq) compares the raw SAN.
	for _, ip := range l.Leaf.IPAddresses {
		if ip.To4() != nil && len(ip) != net.IPv4len {
			t.Errorf("IPv4 SAN %v encoded in %d bytes", ip, len(ip))
		}
	}
	// Certificates carry whole seconds.
	if got := l.Leaf.NotAfter.Sub(clk.t); got <= DefaultLeafLifetime-time.Second || got > DefaultLeafLifetime {
		t.Errorf("leaf lifetime %v", got)
	}
	if len(l.Leaf.ExtKeyUsage) != 1 || l.Leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || l.Leaf.IsCA {
		t.Errorf("leaf usage %v, IsCA %v", l.Leaf.ExtKeyUsage, l.Leaf.IsCA)
	}
	if _, err := a.Leaf(nil, nil); err == nil {
		t.Error("a certificate without names was issued")
	}
}

func TestLeafCache(t *testing.T) {
	clk := &clock{time.Now()}
	a, err := Open(Options{Dir: t.TempDir(), Now: clk.now, CacheSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	ip := func(s string) []netip.Addr { return []netip.Addr{netip.MustParseAddr(s)} }
	first, _ := a.Leaf([]string{"b.example", "a.example"}, ip("10.0.0.1"))
	again, _ := a.Leaf([]string{"A.example", "b.example", "a.example"}, ip("::ffff:10.0.0.1"))
	if first != again || a.issued != 1 {
		t.Fatalf("the same names in another order signed again (issued %d)", a.issued)
	}

	// Renewed once a third of its life is left, not at the last moment.
	clk.t = clk.t.Add(DefaultLeafLifetime*2/3 - time.Minute)
	if l, _ := a.Leaf([]string{"a.example", "b.example"}, ip("10.0.0.1")); l != first {
		t.Error("renewed too early")
	}
	clk.t = clk.t.Add(2 * time.Minute)
	renewed, _ := a.Leaf([]string{"a.example", "b.example"}, ip("10.0.0.1"))
	if renewed == first || !renewed.Leaf.NotAfter.After(first.Leaf.NotAfter) {
		t.Error("not renewed with a third of its life left")
	}

	// Bounded: the least recently used goes first.
	a.Leaf(nil, ip("10.0.0.2"))
	a.Leaf([]string{"a.example", "b.example"}, ip("10.0.0.1")) // used: stays
	a.Leaf(nil, ip("10.0.0.3"))                                // evicts 10.0.0.2
	if len(a.leaves) != 2 || a.lru.Len() != 2 {
		t.Fatalf("cache holds %d/%d entries, bound is 2", len(a.leaves), a.lru.Len())
	}
	n := a.issued
	a.Leaf([]string{"a.example", "b.example"}, ip("10.0.0.1"))
	if a.issued != n {
		t.Error("the recently used entry was evicted")
	}
	a.Leaf(nil, ip("10.0.0.2"))
	if a.issued != n+1 {
		t.Error("the least recently used entry was kept")
	}
}

// A leaf never outlives its CA, and a CA that has expired while the agent
// runs issues nothing.
func TestLeafWithinCAValidity(t *testing.T) {
	now := time.Now()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cert, keyPath := operatorCA(t, caTemplate(now.Add(-time.Hour), now.Add(time.Hour)), key)
	clk := &clock{now}
	a, err := Open(Options{CertFile: cert, KeyFile: keyPath, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	l, err := a.Leaf([]string{"db"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Leaf.NotAfter.After(a.Certificate().NotAfter) {
		t.Errorf("leaf valid until %v, CA until %v", l.Leaf.NotAfter, a.Certificate().NotAfter)
	}
	clk.t = now.Add(2 * time.Hour)
	if _, err := a.Leaf([]string{"db"}, nil); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired CA issued: %v", err)
	}
}

// A real handshake: a client trusting only the CA accepts the leaf for the
// address it dialled, over TLS 1.3.
func TestLeafHandshake(t *testing.T) {
	a, err := Open(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddr("10.1.0.7")
	srvConn, cliConn := net.Pipe()
	defer srvConn.Close()
	defer cliConn.Close()
	srv := tls.Server(srvConn, &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return a.Leaf(nil, []netip.Addr{addr})
	}})
	go srv.Handshake()
	roots := x509.NewCertPool()
	roots.AddCert(a.Certificate())
	cli := tls.Client(cliConn, &tls.Config{RootCAs: roots, ServerName: addr.String()})
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}
	if v := cli.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("TLS version %x", v)
	}
}

func TestPublishAndCertificatePEM(t *testing.T) {
	state := t.TempDir()
	o := Options{Dir: filepath.Join(state, "ca")}
	if _, err := CertificatePEM(o); err == nil || !strings.Contains(err.Error(), "start the agent once") {
		t.Fatalf("before any CA: %v", err)
	}
	a, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(state, "ca.pem")
	if err := a.Publish(pub); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(pub)
	if string(got) != string(a.CertPEM()) {
		t.Error("published certificate differs")
	}
	printed, err := CertificatePEM(o)
	if err != nil || string(printed) != string(a.CertPEM()) {
		t.Fatalf("CertificatePEM: %v", err)
	}

	// An operator's file holding certificate and key together: only the
	// certificate comes out.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	certPath, keyPath := operatorCA(t, caTemplate(time.Now().Add(-time.Hour), time.Now().Add(time.Hour)), key)
	both := filepath.Join(t.TempDir(), "both.pem")
	c, _ := os.ReadFile(certPath)
	k, _ := os.ReadFile(keyPath)
	os.WriteFile(both, append(k, c...), 0o600)
	printed, err = CertificatePEM(Options{CertFile: both, KeyFile: keyPath})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(printed), "PRIVATE KEY") || string(printed) != string(c) {
		t.Errorf("printed:\n%s", printed)
	}
}

// Handshakes ask concurrently; every answer is a valid certificate for
// what was asked, and the cache stays within its bound.
func TestLeafConcurrent(t *testing.T) {
	a, err := Open(Options{Dir: t.TempDir(), CacheSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr := netip.AddrFrom4([4]byte{10, 0, 0, byte(i % 8)})
			l, err := a.Leaf([]string{"db.internal"}, []netip.Addr{addr})
			if err == nil && !l.Leaf.IPAddresses[0].Equal(net.IP(addr.AsSlice())) {
				err = fmt.Errorf("asked for %s, got %v", addr, l.Leaf.IPAddresses)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(a.leaves) > 4 || a.lru.Len() > 4 {
		t.Errorf("cache holds %d entries, bound is 4", len(a.leaves))
	}
}
