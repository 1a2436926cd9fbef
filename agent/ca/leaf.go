package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// leaf is a cached certificate and when to stop handing it out.
type leaf struct {
	key     string
	cert    *tls.Certificate
	renewAt time.Time
}

// Leaf returns a server certificate for names and addrs (at least one of
// either), signed by the CA. A certificate is reused until a third of its
// lifetime is left, so handshakes seldom pay for a signature; the cache
// holds at most Options.CacheSize certificates, the least recently used
// going first.
func (c *CA) Leaf(names []string, addrs []netip.Addr) (*tls.Certificate, error) {
	names, addrs = normalise(names, addrs)
	if len(names) == 0 && len(addrs) == 0 {
		return nil, errors.New("a certificate needs a name or an address")
	}
	key := cacheKey(names, addrs)
	now := c.opts.Now()

	c.mu.Lock()
	if e, ok := c.leaves[key]; ok {
		l := e.Value.(*leaf)
		if now.Before(l.renewAt) {
			c.lru.MoveToFront(e)
			c.mu.Unlock()
			return l.cert, nil
		}
	}
	c.mu.Unlock()

	// Signed outside the lock: handshakes for other names go on meanwhile.
	// Two handshakes racing for the same new name both sign; one result is
	// kept, and both are valid.
	l, err := c.issue(key, names, addrs, now)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.issued++
	if e, ok := c.leaves[key]; ok {
		c.lru.Remove(e)
	}
	c.leaves[key] = c.lru.PushFront(l)
	for c.lru.Len() > c.opts.CacheSize {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.leaves, old.Value.(*leaf).key)
	}
	return l.cert, nil
}

func (c *CA) issue(key string, names []string, addrs []netip.Addr, now time.Time) (*leaf, error) {
	if !now.Before(c.cert.NotAfter) {
		return nil, fmt.Errorf("the CA certificate expired on %s", c.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	notAfter := now.Add(c.opts.LeafLifetime)
	if notAfter.After(c.cert.NotAfter) {
		// A leaf outliving its issuer would fail verification anyway.
		notAfter = c.cert.NotAfter
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: commonName(names, addrs), Organization: []string{"corral"}},
		// Clients with a clock a little behind still accept it.
		NotBefore:   now.Add(-5 * time.Minute),
		NotAfter:    notAfter,
		DNSNames:    names,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, a := range addrs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(a.AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, priv.Public(), c.key)
	if err != nil {
		return nil, fmt.Errorf("issue certificate: %w", err)
	}
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	cert := &tls.Certificate{
		Certificate: append([][]byte{der}, c.chain...),
		PrivateKey:  priv,
		Leaf:        parsed,
	}
	return &leaf{key: key, cert: cert, renewAt: now.Add(notAfter.Sub(now) * 2 / 3)}, nil
}

// normalise sorts and deduplicates, so the same set always meets the same
// cache entry.
func normalise(names []string, addrs []netip.Addr) ([]string, []netip.Addr) {
	var ns []string
	for _, n := range names {
		n = strings.TrimSuffix(strings.ToLower(n), ".")
		if n != "" {
			ns = append(ns, n)
		}
	}
	slices.Sort(ns)
	ns = slices.Compact(ns)
	var as []netip.Addr
	for _, a := range addrs {
		if a.IsValid() {
			as = append(as, a.Unmap().WithZone(""))
		}
	}
	slices.SortFunc(as, netip.Addr.Compare)
	as = slices.Compact(as)
	return ns, as
}

func cacheKey(names []string, addrs []netip.Addr) string {
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte(0)
	}
	b.WriteByte(1)
	for _, a := range addrs {
		b.WriteString(a.String())
		b.WriteByte(0)
	}
	return b.String()
}

func commonName(names []string, addrs []netip.Addr) string {
	if len(names) > 0 {
		return names[0]
	}
	return addrs[0].String()
}
