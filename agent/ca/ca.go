// Package ca is corral's certificate authority. A workload that verifies
// its server is answered by corral, not by the target it dialled; it accepts
// corral only if it trusts corral's CA certificate, which the operator
// distributes (`corral ca print`). corral then issues short-lived leaf
// certificates naming each target as the workload addressed it.
//
// The CA is either the operator's (a certificate and key in files) or one
// corral creates on first start and keeps in its state directory, reused on
// every later start. Either way it is checked before use: a key file that
// group or others may read, a key that does not match the certificate, a
// certificate that is not a CA, or one outside its validity is refused with
// an error that says which, never used.
//
// PostgreSQL interception is the first user; SSH host certificates and HTTP
// per-host certificates are meant to come from the same CA.
package ca

import (
	"container/list"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// File names of a CA corral creates, inside Options.Dir.
const (
	CertName = "ca.crt"
	KeyName  = "ca.key"
)

// Defaults.
const (
	DefaultLeafLifetime = 24 * time.Hour
	DefaultCacheSize    = 1024
	// A created CA outlives any deployment that does not rotate it on
	// purpose: expiry would break every client that trusts it at once.
	createdLifetime = 10 * 365 * 24 * time.Hour
)

// Options say where the CA is and how it issues.
type Options struct {
	// CertFile and KeyFile name the operator's CA (PEM); both or neither.
	// The certificate file may carry more certificates after the CA's: the
	// chain up to a root, sent along with every leaf.
	CertFile, KeyFile string
	// Dir holds the CA corral creates when none is configured.
	Dir string
	// Name is the subject of a created CA; default "corral node CA <hostname>".
	Name string
	// LeafLifetime is how long an issued certificate is valid; it is
	// replaced when a third of that is left.
	LeafLifetime time.Duration
	// CacheSize bounds how many leaf certificates are kept for reuse.
	CacheSize int
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.LeafLifetime <= 0 {
		o.LeafLifetime = DefaultLeafLifetime
	}
	if o.CacheSize <= 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Name == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "unknown host"
		}
		o.Name = "corral node CA " + host
	}
}

// CA issues leaf certificates. It is safe for concurrent use.
type CA struct {
	cert    *x509.Certificate
	chain   [][]byte // the CA's certificate and what followed it in its file
	key     crypto.Signer
	created bool
	opts    Options

	mu     sync.Mutex
	leaves map[string]*list.Element
	lru    *list.List // of *leaf, most recently used first
	issued uint64
}

// Open loads the configured CA, or the one corral created in Dir, creating
// it if there is none yet.
func Open(o Options) (*CA, error) {
	o.defaults()
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("a CA needs both a certificate file and a key file")
	}
	if o.CertFile != "" {
		return load(o.CertFile, o.KeyFile, o)
	}
	if o.Dir == "" {
		return nil, errors.New("no CA is configured and there is no directory to create one in")
	}
	certPath, keyPath := filepath.Join(o.Dir, CertName), filepath.Join(o.Dir, KeyName)
	certThere, err := exists(certPath)
	if err != nil {
		return nil, err
	}
	keyThere, err := exists(keyPath)
	if err != nil {
		return nil, err
	}
	if certThere && keyThere {
		return load(certPath, keyPath, o)
	}
	// Neither, or only one: the key is written first and the certificate
	// last, so a lone file is what a create interrupted before it finished
	// left, and no certificate from it has been handed out.
	return create(certPath, keyPath, o)
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

func load(certPath, keyPath string, o Options) (*CA, error) {
	fi, err := os.Stat(keyPath)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("CA key %s is open to group or others (mode %04o): anyone who can read it can impersonate every protected target; chmod 600 it", keyPath, perm)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA key %s: %w", keyPath, err)
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	chain, err := certificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate %s: %w", certPath, err)
	}
	cert, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, fmt.Errorf("CA certificate %s: %w", certPath, err)
	}
	if err := check(cert, key, o.Now()); err != nil {
		return nil, fmt.Errorf("CA certificate %s: %w", certPath, err)
	}
	return newCA(cert, chain, key, false, o), nil
}

// check refuses what cannot serve as this CA.
func check(cert *x509.Certificate, key crypto.Signer, now time.Time) error {
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return errors.New("not a CA certificate (basic constraints CA:TRUE missing)")
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return errors.New("not allowed to sign certificates (key usage lacks certificate signing)")
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return errors.New("does not match the CA key")
	}
	if now.After(cert.NotAfter) {
		return fmt.Errorf("expired on %s", cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(cert.NotBefore) {
		return fmt.Errorf("not valid before %s", cert.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

func create(certPath, keyPath string, o Options) (*CA, error) {
	if err := os.MkdirAll(filepath.Dir(keyPath), 0o700); err != nil {
		return nil, fmt.Errorf("CA directory: %w", err)
	}
	if err := os.Chmod(filepath.Dir(keyPath), 0o700); err != nil {
		return nil, fmt.Errorf("CA directory: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := o.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: o.Name, Organization: []string{"corral"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(createdLifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		// Leaves only: a node's CA has no business creating other CAs.
		MaxPathLenZero: true,
		KeyUsage:       x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := writeAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	if err := writeAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	return newCA(cert, [][]byte{der}, key, true, o), nil
}

func newCA(cert *x509.Certificate, chain [][]byte, key crypto.Signer, created bool, o Options) *CA {
	return &CA{cert: cert, chain: chain, key: key, created: created, opts: o, leaves: map[string]*list.Element{}, lru: list.New()}
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n.Add(n, big.NewInt(1))
}

// Certificate is the CA's certificate.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// Created says whether Open created this CA (so clients have yet to learn it).
func (c *CA) Created() bool { return c.created }

// CertPEM is the CA's certificate, PEM-encoded: what clients must trust.
func (c *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw})
}

// Publish writes the CA certificate to path (atomically, mode 0644), where
// operators and tests find it whichever CA is in use.
func (c *CA) Publish(path string) error {
	return writeAtomic(path, c.CertPEM(), 0o644)
}

// CertificatePEM returns the certificate of the CA o describes, without
// reading its key (so it never can print it), or an error if there is none
// yet. Only the first certificate of the file is returned, re-encoded: a
// file that also holds a key, or a chain, yields the CA's certificate alone.
func CertificatePEM(o Options) ([]byte, error) {
	path := o.CertFile
	if path == "" {
		if o.Dir == "" {
			return nil, errors.New("no CA is configured")
		}
		path = filepath.Join(o.Dir, CertName)
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && o.CertFile == "" {
		return nil, fmt.Errorf("corral has not created its CA yet (%s does not exist): start the agent once, or configure ca.cert_file and ca.key_file", path)
	}
	if err != nil {
		return nil, err
	}
	chain, err := certificates(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cert, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%s: not a CA certificate", path)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), nil
}

// certificates returns the DER of every CERTIFICATE block, in order.
func certificates(b []byte) ([][]byte, error) {
	var out [][]byte
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type == "CERTIFICATE" {
			out = append(out, blk.Bytes)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return out, nil
}

func parseKey(b []byte) (crypto.Signer, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, errors.New("no PEM private key found")
		}
		var (
			k   any
			err error
		)
		switch blk.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(blk.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the key is encrypted; corral needs it unencrypted (protected by file permissions)")
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		switch k := k.(type) {
		case *ecdsa.PrivateKey:
			return k, nil
		case *rsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		}
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
}

// writeAtomic replaces path with data so that a crash leaves either the old
// file or the new one, never a part of it.
func writeAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// CreateTemp's file is 0600 from the start, so a key is never readable
	// by others, not even for a moment.
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync() // the rename itself survives a crash
		d.Close()
	}
	return nil
}
