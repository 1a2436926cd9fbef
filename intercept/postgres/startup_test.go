package postgres

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/corral-dev/corral/intercept"
)

var origDst = netip.MustParseAddrPort("10.0.0.5:5432")

// testTLS is a CA and a server certificate for origDst's address, as the
// agent would hand the handler: the server config and the roots a client
// verifies with.
func testTLS(t testing.TB) (*tls.Config, *x509.CertPool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: origDst.Addr().String()},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{origDst.Addr().AsSlice()},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, roots
}

type startupResult struct {
	msg *pgproto3.StartupMessage
	cli net.Conn
	err error
}

// runStartup runs the handler's startup on one end of a pipe and returns
// the other end (the workload's), the intercepted connection, and where
// the outcome arrives.
func runStartup(t *testing.T, h *Handler) (net.Conn, *intercept.Conn, <-chan startupResult) {
	client, server := net.Pipe()
	return runStartupOn(t, h, client, server)
}

// tcpPair is a connected loopback pair: unlike a pipe, the kernel buffers
// what one side writes while the other is busy writing too.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return client, server
}

func runStartupOn(t *testing.T, h *Handler, client, server net.Conn) (net.Conn, *intercept.Conn, <-chan startupResult) {
	t.Helper()
	if h.Log == nil {
		h.Log = slog.New(slog.DiscardHandler)
	}
	deadline := time.Now().Add(20 * time.Second)
	client.SetDeadline(deadline)
	server.SetDeadline(deadline)
	t.Cleanup(func() { client.Close(); server.Close() })
	c := &intercept.Conn{Conn: server, SessionID: "test"}
	c.Meta.OrigDst = origDst
	c.Meta.Target = intercept.Target{Name: "orders-db", Protocol: "postgres"}
	out := make(chan startupResult, 1)
	go func() {
		m, cli, err := h.startup(context.Background(), c)
		out <- startupResult{m, cli, err}
	}()
	return client, c, out
}

func withTLS(mode ClientTLSMode, cfg *tls.Config) func(*intercept.Conn) ClientTLS {
	return func(c *intercept.Conn) ClientTLS {
		if c.Meta.Target.Name != "orders-db" {
			return ClientTLS{}
		}
		return ClientTLS{Mode: mode, Config: cfg}
	}
}

func encode(t testing.TB, msgs ...pgproto3.FrontendMessage) []byte {
	t.Helper()
	var b []byte
	for _, m := range msgs {
		var err error
		if b, err = m.Encode(b); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func startupMsg() *pgproto3.StartupMessage {
	return &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "whoever", "database": "orders"}}
}

func answer(t *testing.T, c net.Conn) byte {
	t.Helper()
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		t.Fatalf("no answer: %v", err)
	}
	return b[0]
}

// clientError reads the ErrorResponse a refused client gets.
func clientError(t *testing.T, c net.Conn) *pgproto3.ErrorResponse {
	t.Helper()
	msg, err := pgproto3.NewFrontend(c, c).Receive()
	if err != nil {
		t.Fatalf("no error response: %v", err)
	}
	e, ok := msg.(*pgproto3.ErrorResponse)
	if !ok {
		t.Fatalf("got %T, want an ErrorResponse", msg)
	}
	return e
}

// Without client TLS (the default), encryption requests are declined and
// the session goes on in plaintext on the intercepted connection.
func TestStartupDeclinesEncryptionByDefault(t *testing.T) {
	for name, h := range map[string]*Handler{
		"no setting":      {},
		"disable":         {ClientTLS: withTLS(ClientTLSDisable, nil)},
		"allow, no certs": {ClientTLS: withTLS(ClientTLSAllow, nil)},
	} {
		t.Run(name, func(t *testing.T) {
			client, c, res := runStartup(t, h)
			client.Write(encode(t, &pgproto3.GSSEncRequest{}))
			if a := answer(t, client); a != 'N' {
				t.Fatalf("GSSENCRequest answered %q", a)
			}
			client.Write(encode(t, &pgproto3.SSLRequest{}))
			if a := answer(t, client); a != 'N' {
				t.Fatalf("SSLRequest answered %q", a)
			}
			client.Write(encode(t, startupMsg()))
			r := <-res
			if r.err != nil || r.msg == nil || r.msg.Parameters["database"] != "orders" {
				t.Fatalf("startup: %+v", r)
			}
			if r.cli != net.Conn(c) {
				t.Errorf("session goes on over %T, want the intercepted connection", r.cli)
			}
		})
	}
}

// With client TLS, an SSLRequest is answered S, the handshake presents the
// target's certificate, and the rest of the startup and the session run
// inside TLS; bytes are counted as they cross the wire.
func TestStartupTerminatesTLS(t *testing.T) {
	for _, mode := range []ClientTLSMode{ClientTLSAllow, ClientTLSRequire} {
		cfg, roots := testTLS(t)
		client, c, res := runStartup(t, &Handler{ClientTLS: withTLS(mode, cfg)})
		client.Write(encode(t, &pgproto3.SSLRequest{}))
		if a := answer(t, client); a != 'S' {
			t.Fatalf("mode %d: SSLRequest answered %q", mode, a)
		}
		tc := tls.Client(client, &tls.Config{RootCAs: roots, ServerName: origDst.Addr().String(), NextProtos: []string{"postgresql"}})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("mode %d: handshake: %v", mode, err)
		}
		st := tc.ConnectionState()
		if st.Version != tls.VersionTLS13 || st.NegotiatedProtocol != "postgresql" {
			t.Errorf("TLS version %x, ALPN %q", st.Version, st.NegotiatedProtocol)
		}
		// A pipelining client: the query right behind the StartupMessage
		// must reach the session, not vanish in startup's buffer.
		query := encode(t, &pgproto3.Query{String: "SELECT 1"})
		tc.Write(append(encode(t, startupMsg()), query...))
		r := <-res
		if r.err != nil || r.msg == nil || r.msg.Parameters["user"] != "whoever" {
			t.Fatalf("mode %d: startup: %+v", mode, r)
		}
		got := make([]byte, len(query))
		if _, err := io.ReadFull(r.cli, got); err != nil || !bytes.Equal(got, query) {
			t.Fatalf("pipelined query: %q %v", got, err)
		}
		go r.cli.Write([]byte("Z"))
		var b [1]byte
		if _, err := io.ReadFull(tc, b[:]); err != nil || b[0] != 'Z' {
			t.Fatalf("the session's writes do not reach the client through TLS: %q %v", b, err)
		}
		plain := uint64(8 + len(encode(t, startupMsg())) + len(query))
		if c.BytesUp() <= plain || c.BytesDown() <= 2 {
			t.Errorf("bytes up %d, down %d: the handshake and records are not counted", c.BytesUp(), c.BytesDown())
		}
	}
}

func TestStartupTLSRefusesUntrustingClient(t *testing.T) {
	cfg, _ := testTLS(t)
	_, otherRoots := testTLS(t)
	cli, srv := tcpPair(t)
	client, _, res := runStartupOn(t, &Handler{ClientTLS: withTLS(ClientTLSRequire, cfg)}, cli, srv)
	client.Write(encode(t, &pgproto3.SSLRequest{}))
	answer(t, client)
	tc := tls.Client(client, &tls.Config{RootCAs: otherRoots, ServerName: origDst.Addr().String()})
	if err := tc.Handshake(); err == nil {
		t.Fatal("a client trusting another CA completed the handshake")
	}
	client.Close()
	if r := <-res; r.err == nil || r.msg != nil {
		t.Fatalf("startup went on: %+v", r)
	}
}

func TestStartupAllowServesPlaintext(t *testing.T) {
	cfg, _ := testTLS(t)
	client, c, res := runStartup(t, &Handler{ClientTLS: withTLS(ClientTLSAllow, cfg)})
	client.Write(encode(t, startupMsg()))
	if r := <-res; r.err != nil || r.msg == nil || r.cli != net.Conn(c) {
		t.Fatalf("plaintext client in allow mode: %+v", r)
	}
}

func TestStartupRequireRefusesPlaintext(t *testing.T) {
	cfg, _ := testTLS(t)
	for name, cfg := range map[string]*tls.Config{"require": cfg, "require, no cert": nil} {
		t.Run(name, func(t *testing.T) {
			client, _, res := runStartup(t, &Handler{ClientTLS: withTLS(ClientTLSRequire, cfg)})
			if cfg == nil {
				// Nothing to terminate TLS with: declined, and plaintext
				// still refused. Fail closed.
				client.Write(encode(t, &pgproto3.SSLRequest{}))
				if a := answer(t, client); a != 'N' {
					t.Fatalf("SSLRequest answered %q", a)
				}
			}
			client.Write(encode(t, startupMsg()))
			e := clientError(t, client)
			if e.Severity != "FATAL" || e.Code != "28000" || !strings.Contains(e.Message, `corral requires TLS for target "orders-db"`) {
				t.Errorf("refusal: %s %s %q", e.Severity, e.Code, e.Message)
			}
			if r := <-res; r.err == nil || r.msg != nil {
				t.Fatalf("startup went on: %+v", r)
			}
		})
	}
}

// Bytes sent behind the SSLRequest, before the answer, are refused: they
// were never encrypted, yet would be read as if they came through TLS.
func TestStartupRefusesDataAfterSSLRequest(t *testing.T) {
	cfg, _ := testTLS(t)
	client, _, res := runStartup(t, &Handler{ClientTLS: withTLS(ClientTLSAllow, cfg)})
	client.Write(encode(t, &pgproto3.SSLRequest{}, startupMsg()))
	e := clientError(t, client)
	if e.Code != "08P01" || !strings.Contains(e.Message, "unencrypted data after SSL request") {
		t.Errorf("refusal: %s %q", e.Code, e.Message)
	}
	if r := <-res; r.err == nil || r.msg != nil {
		t.Fatalf("startup went on: %+v", r)
	}
}

func TestStartupRefusesNegotiationInsideTLS(t *testing.T) {
	for name, again := range map[string]pgproto3.FrontendMessage{"SSLRequest": &pgproto3.SSLRequest{}, "GSSENCRequest": &pgproto3.GSSEncRequest{}} {
		t.Run(name, func(t *testing.T) {
			cfg, roots := testTLS(t)
			client, _, res := runStartup(t, &Handler{ClientTLS: withTLS(ClientTLSAllow, cfg)})
			client.Write(encode(t, &pgproto3.SSLRequest{}))
			answer(t, client)
			tc := tls.Client(client, &tls.Config{RootCAs: roots, ServerName: origDst.Addr().String()})
			if err := tc.Handshake(); err != nil {
				t.Fatal(err)
			}
			tc.Write(encode(t, again))
			if r := <-res; r.err == nil || !strings.Contains(r.err.Error(), "inside TLS") {
				t.Fatalf("startup: %+v", r)
			}
		})
	}
}

// A cancel request is honoured on a plaintext connection (libpq's PQcancel
// sends cancels that way even when its session uses TLS, and even where
// TLS is required) and inside TLS (libpq 17's newer cancel functions
// negotiate TLS first).
func TestStartupCancelRequests(t *testing.T) {
	for _, viaTLS := range []bool{false, true} {
		server, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer server.Close()
		received := make(chan []byte, 1)
		go func() {
			c, err := server.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			b := make([]byte, 16)
			io.ReadFull(c, b)
			received <- b
		}()

		cfg, roots := testTLS(t)
		h := &Handler{ClientTLS: withTLS(ClientTLSRequire, cfg), Dialer: &net.Dialer{}}
		key := h.cancels.add(server.Addr().String(), 4242, []byte{1, 2, 3, 4}, nil)
		client, _, res := runStartup(t, h)
		var w io.Writer = client
		if viaTLS {
			client.Write(encode(t, &pgproto3.SSLRequest{}))
			answer(t, client)
			tc := tls.Client(client, &tls.Config{RootCAs: roots, ServerName: origDst.Addr().String()})
			if err := tc.Handshake(); err != nil {
				t.Fatal(err)
			}
			w = tc
		}
		w.Write(encode(t, &pgproto3.CancelRequest{ProcessID: key.pid, SecretKey: key.secret[:]}))
		if r := <-res; r.err != nil || r.msg != nil {
			t.Fatalf("TLS %v: cancel connection: %+v", viaTLS, r)
		}
		select {
		case b := <-received:
			if binary.BigEndian.Uint32(b[4:8]) != cancelRequestCode || binary.BigEndian.Uint32(b[8:12]) != 4242 || !bytes.Equal(b[12:], []byte{1, 2, 3, 4}) {
				t.Errorf("TLS %v: server got %x", viaTLS, b)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("TLS %v: the cancel request never reached the server", viaTLS)
		}
	}
}

func TestReadStartupBounds(t *testing.T) {
	for name, b := range map[string][]byte{
		"too short":    {0, 0, 0, 4},
		"too long":     {0, 0, 0x30, 0, 0, 3, 0, 0},
		"unknown code": {0, 0, 0, 8, 0, 2, 0, 0},
		"truncated":    {0, 0, 0, 16, 0, 3, 0, 0},
	} {
		if _, err := readStartup(bytes.NewReader(b)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzStartup: whatever a client sends before its session, startup ends
// without hanging, and under require never hands over a plaintext session.
func FuzzStartup(f *testing.F) {
	for _, seed := range [][]pgproto3.FrontendMessage{
		{startupMsg()},
		{&pgproto3.SSLRequest{}},
		{&pgproto3.GSSEncRequest{}, &pgproto3.SSLRequest{}, startupMsg()},
		{&pgproto3.CancelRequest{ProcessID: 1, SecretKey: []byte{1, 2, 3, 4}}},
		{&pgproto3.SSLRequest{}, startupMsg()},
	} {
		f.Add(encode(f, seed...))
	}
	cfg, _ := testTLS(f)
	h := &Handler{ClientTLS: withTLS(ClientTLSRequire, cfg), Log: slog.New(slog.DiscardHandler)}
	f.Fuzz(func(t *testing.T, data []byte) {
		client, server := net.Pipe()
		defer client.Close()
		defer server.Close()
		server.SetDeadline(time.Now().Add(5 * time.Second))
		go io.Copy(io.Discard, client)
		go func() {
			client.Write(data)
			client.Close()
		}()
		c := &intercept.Conn{Conn: server}
		c.Meta.Target = intercept.Target{Name: "orders-db", Protocol: "postgres"}
		m, cli, err := h.startup(context.Background(), c)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("startup hung on %q", data)
		}
		if err == nil && m != nil && cli == net.Conn(c) {
			t.Fatalf("plaintext session under require for %q", data)
		}
	})
}
