package tcp_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/intercept/tcp"
)

// waitFor bounds every wait, so a broken relay fails instead of hanging.
const waitFor = 30 * time.Second

// upstream is a loopback server standing in for the original destination.
type upstream struct {
	addr netip.AddrPort
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	open []net.Conn
}

// startUpstream serves each connection with serve on a loopback listener of
// network ("tcp4" or "tcp6"), closing the connection when serve returns. At
// cleanup it closes the listener and every accepted connection and waits for
// serve to return.
func startUpstream(t *testing.T, network string, serve func(c *net.TCPConn)) *upstream {
	t.Helper()
	host := "127.0.0.1:0"
	if network == "tcp6" {
		host = "[::1]:0"
	}
	ln, err := net.Listen(network, host)
	if err != nil {
		if network == "tcp6" {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		t.Fatal(err)
	}
	u := &upstream{addr: ln.Addr().(*net.TCPAddr).AddrPort(), ln: ln}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(waitFor))
			u.mu.Lock()
			u.open = append(u.open, c)
			u.mu.Unlock()
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				defer c.Close()
				serve(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		u.mu.Lock()
		for _, c := range u.open {
			c.Close()
		}
		u.mu.Unlock()
		u.wg.Wait()
	})
	return u
}

// pair returns both ends of a loopback TCP connection, closed at cleanup.
func pair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { s.Close() })
	client.SetDeadline(time.Now().Add(waitFor))
	return client, s.(*net.TCPConn)
}

type dialCall struct{ network, addr string }

// recordingDialer dials for real and reports what it was asked for and,
// when dialed is set, how the dial ended.
type recordingDialer struct {
	net.Dialer
	calls  chan dialCall
	dialed chan error
}

func (d *recordingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.calls <- dialCall{network, addr}
	c, err := d.Dialer.DialContext(ctx, network, addr)
	if d.dialed != nil {
		d.dialed <- err
	}
	return c, err
}

type session struct {
	client *net.TCPConn
	conn   *intercept.Conn
	done   chan error // the handler's result
	cancel context.CancelFunc
}

// relay starts the handler on an intercepted connection whose original
// destination is dst. At cleanup the session's context is cancelled and the
// handler must return.
func relay(t *testing.T, d tcp.Dialer, dst netip.AddrPort) *session {
	t.Helper()
	client, server := pair(t)
	s := &session{
		client: client,
		conn: &intercept.Conn{
			Conn:    server,
			Meta:    intercept.Meta{OrigDst: dst, Target: intercept.Target{Name: "t", Protocol: "tcp"}},
			Client:  client.LocalAddr().(*net.TCPAddr).AddrPort(),
			Started: time.Now(),
		},
		done: make(chan error, 1),
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	h := &tcp.Handler{Dialer: d}
	go func() { s.done <- h.Serve(ctx, s.conn) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(waitFor):
			t.Error("handler did not return after its context was cancelled")
		}
	})
	return s
}

// wait returns the handler's result.
func (s *session) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err // keep it for cleanup
		return err
	case <-time.After(waitFor):
		t.Fatal("handler did not return")
		return nil
	}
}

func TestRelaysBothWays(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			up := startUpstream(t, network, func(c *net.TCPConn) {
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := io.WriteString(c, "re: "+line); err != nil {
						return
					}
				}
			})
			d := &recordingDialer{calls: make(chan dialCall, 1)}
			s := relay(t, d, up.addr)

			r := bufio.NewReader(s.client)
			for _, msg := range []string{"one\n", "two\n", "three\n"} {
				if _, err := io.WriteString(s.client, msg); err != nil {
					t.Fatal(err)
				}
				got, err := r.ReadString('\n')
				if err != nil || got != "re: "+msg {
					t.Fatalf("got %q, %v; want %q", got, err, "re: "+msg)
				}
			}
			call := <-d.calls
			if call.network != "tcp" || call.addr != up.addr.String() {
				t.Errorf("dialed %s %s, want tcp %s", call.network, call.addr, up.addr)
			}

			s.client.Close()
			if err := s.wait(t); err != nil {
				t.Errorf("handler returned %v after an ordinary end of session", err)
			}
			sent := uint64(len("one\ntwo\nthree\n"))
			received := uint64(len("re: one\nre: two\nre: three\n"))
			if s.conn.BytesUp() != sent || s.conn.BytesDown() != received {
				t.Errorf("counted up %d down %d, want %d %d", s.conn.BytesUp(), s.conn.BytesDown(), sent, received)
			}
		})
	}
}

func TestHalfCloseFromClient(t *testing.T) {
	// The client sends a request and closes its sending side; the upstream
	// answers only once it has seen the end of the request.
	sawEOF := make(chan string, 1)
	up := startUpstream(t, "tcp4", func(c *net.TCPConn) {
		b, err := io.ReadAll(c)
		if err != nil {
			return
		}
		sawEOF <- string(b)
		io.WriteString(c, "got "+string(b))
		c.CloseWrite()
	})
	s := relay(t, &net.Dialer{}, up.addr)

	if _, err := io.WriteString(s.client, "request"); err != nil {
		t.Fatal(err)
	}
	if err := s.client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-sawEOF:
		if got != "request" {
			t.Errorf("upstream read %q before EOF, want %q", got, "request")
		}
	case <-time.After(waitFor):
		t.Fatal("upstream never saw the client's end of stream")
	}
	reply, err := io.ReadAll(s.client)
	if err != nil {
		t.Fatal(err)
	}
	if string(reply) != "got request" {
		t.Errorf("client got %q after half-closing, want %q", reply, "got request")
	}
	if err := s.wait(t); err != nil {
		t.Errorf("handler returned %v", err)
	}
}

func TestHalfCloseFromUpstream(t *testing.T) {
	// The upstream speaks first and closes its sending side; the client can
	// still send afterwards.
	received := make(chan string, 1)
	up := startUpstream(t, "tcp4", func(c *net.TCPConn) {
		io.WriteString(c, "banner")
		c.CloseWrite()
		b, err := io.ReadAll(c)
		if err == nil {
			received <- string(b)
		}
	})
	s := relay(t, &net.Dialer{}, up.addr)

	banner, err := io.ReadAll(s.client)
	if err != nil {
		t.Fatal(err)
	}
	if string(banner) != "banner" {
		t.Fatalf("client got %q, want banner then EOF", banner)
	}
	if _, err := io.WriteString(s.client, "late words"); err != nil {
		t.Fatalf("client cannot send after the upstream finished: %v", err)
	}
	s.client.CloseWrite()
	select {
	case got := <-received:
		if got != "late words" {
			t.Errorf("upstream got %q, want %q", got, "late words")
		}
	case <-time.After(waitFor):
		t.Fatal("upstream never got the client's data")
	}
	if err := s.wait(t); err != nil {
		t.Errorf("handler returned %v", err)
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLargePayloadsBothWaysAtOnce(t *testing.T) {
	const size = 8 << 20
	upData, downData := randomBytes(t, size), randomBytes(t, size)
	type digest struct {
		n   int64
		sum [sha256.Size]byte
		err error
	}
	atUpstream := make(chan digest, 1)
	up := startUpstream(t, "tcp4", func(c *net.TCPConn) {
		// Send and receive at the same time: a relay that pumped one
		// direction at a time would deadlock on full socket buffers.
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := sha256.New()
			n, err := io.Copy(h, c)
			atUpstream <- digest{n, [32]byte(h.Sum(nil)), err}
		}()
		if _, err := c.Write(downData); err == nil {
			c.CloseWrite()
		}
		wg.Wait()
	})
	s := relay(t, &net.Dialer{}, up.addr)

	sent := make(chan error, 1)
	go func() {
		_, err := s.client.Write(upData)
		if err == nil {
			err = s.client.CloseWrite()
		}
		sent <- err
	}()
	h := sha256.New()
	n, err := io.Copy(h, s.client)
	if err != nil {
		t.Fatal(err)
	}
	if n != size || [32]byte(h.Sum(nil)) != sha256.Sum256(downData) {
		t.Errorf("client received %d bytes that differ from the %d the upstream sent", n, size)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-atUpstream:
		if d.err != nil {
			t.Fatal(d.err)
		}
		if d.n != size || d.sum != sha256.Sum256(upData) {
			t.Errorf("upstream received %d bytes that differ from the %d the client sent", d.n, size)
		}
	case <-time.After(waitFor):
		t.Fatal("upstream did not receive everything")
	}
	if err := s.wait(t); err != nil {
		t.Errorf("handler returned %v", err)
	}
	if s.conn.BytesUp() != size || s.conn.BytesDown() != size {
		t.Errorf("counted up %d down %d, want %d each", s.conn.BytesUp(), s.conn.BytesDown(), size)
	}
}

func TestDialFailureNamesUpstream(t *testing.T) {
	// A port that was just freed: nothing listens there.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dst := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()

	_, server := pair(t)
	c := &intercept.Conn{Conn: server, Meta: intercept.Meta{OrigDst: dst}}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	err = (&tcp.Handler{Dialer: &net.Dialer{}}).Serve(ctx, c)
	if err == nil {
		t.Fatal("Serve succeeded without an upstream")
	}
	if !strings.Contains(err.Error(), dst.String()) {
		t.Errorf("error %q does not name the upstream %s", err, dst)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("error %q does not wrap the dial error", err)
	}
	if c.BytesUp() != 0 || c.BytesDown() != 0 {
		t.Errorf("bytes moved without an upstream: up %d down %d", c.BytesUp(), c.BytesDown())
	}
}

type failingDialer struct{ err error }

func (d failingDialer) DialContext(context.Context, string, string) (net.Conn, error) {
	return nil, d.err
}

func TestDialErrorIsWrapped(t *testing.T) {
	sentinel := errors.New("upstream dial refused by policy")
	_, server := pair(t)
	dst := netip.MustParseAddrPort("[2001:db8::5]:5432")
	c := &intercept.Conn{Conn: server, Meta: intercept.Meta{OrigDst: dst}}
	err := (&tcp.Handler{Dialer: failingDialer{sentinel}}).Serve(context.Background(), c)
	if !errors.Is(err, sentinel) {
		t.Fatalf("error %v does not wrap the dialer's", err)
	}
	if !strings.Contains(err.Error(), "[2001:db8::5]:5432") {
		t.Errorf("error %q does not name the upstream", err)
	}
}

func TestCancelEndsIdleSession(t *testing.T) {
	accepted := make(chan struct{})
	upstreamDone := make(chan error, 1)
	up := startUpstream(t, "tcp4", func(c *net.TCPConn) {
		close(accepted)
		_, err := io.Copy(io.Discard, c) // idle until the relay goes away
		upstreamDone <- err
	})
	d := &recordingDialer{calls: make(chan dialCall, 1), dialed: make(chan error, 1)}
	s := relay(t, d, up.addr)
	// Cancelling while the dial is in flight would test the dial instead.
	select {
	case err := <-d.dialed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitFor):
		t.Fatal("upstream not dialed")
	}
	select {
	case <-accepted:
	case <-time.After(waitFor):
		t.Fatal("upstream connection not accepted")
	}

	s.cancel()
	if err := s.wait(t); err != nil {
		t.Errorf("handler returned %v after its context was cancelled, want nil", err)
	}
	var b [1]byte
	if n, err := s.client.Read(b[:]); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("client read = %d, %v; want the connection closed", n, err)
	}
	select {
	case err := <-upstreamDone:
		if err != nil {
			t.Errorf("upstream read ended with %v, want EOF", err)
		}
	case <-time.After(waitFor):
		t.Fatal("upstream connection still open after the session was cancelled")
	}
}
