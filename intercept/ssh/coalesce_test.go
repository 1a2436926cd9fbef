package ssh

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// countingConn counts the writes that reach the connection below the
// joiner, and their sizes.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes []int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, len(p))
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *countingConn) take() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.writes
	c.writes = nil
	return w
}

func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		acc <- c
	}()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-acc
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestJoinedConnCiphers runs a real SSH connection over joined
// connections with each cipher and MAC corral may negotiate, and sends
// payloads of sizes around the transport's buffer (where a packet's last
// piece can be exactly one buffer long) both ways. Every byte must arrive
// in order, and a full-size data packet must reach the socket in one
// write.
func TestJoinedConnCiphers(t *testing.T) {
	for _, tc := range []struct{ cipher, mac string }{
		{gossh.CipherAES128GCM, ""},
		{gossh.CipherAES256GCM, ""},
		{gossh.CipherAES128CTR, gossh.HMACSHA256ETM},
		{gossh.CipherAES256CTR, gossh.HMACSHA256},
		{gossh.CipherChaCha20Poly1305, ""},
	} {
		t.Run(tc.cipher+"-"+tc.mac, func(t *testing.T) {
			a, b := tcpPair(t)
			below := &countingConn{Conn: a}
			cj, sj := joinWrites(below), joinWrites(b)

			_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
			hostKey, _ := gossh.NewSignerFromKey(hostPriv)
			scfg := &gossh.ServerConfig{NoClientAuth: true}
			scfg.AddHostKey(hostKey)
			algs := gossh.Config{Ciphers: []string{tc.cipher}}
			if tc.mac != "" {
				algs.MACs = []string{tc.mac}
			}
			scfg.Config = algs
			type served struct {
				conn gossh.Conn
				err  error
			}
			srv := make(chan served, 1)
			echoed := make(chan error, 1)
			go func() {
				sc, chans, reqs, err := gossh.NewServerConn(sj, scfg)
				if err != nil {
					srv <- served{err: err}
					return
				}
				sj.negotiated(sc.Conn)
				srv <- served{conn: sc}
				go gossh.DiscardRequests(reqs)
				for nc := range chans {
					ch, r, err := nc.Accept()
					if err != nil {
						echoed <- err
						return
					}
					go gossh.DiscardRequests(r)
					go func() {
						_, err := copyChannel(ch, ch)
						ch.CloseWrite()
						echoed <- err
					}()
				}
			}()
			ccfg := &gossh.ClientConfig{User: "u", HostKeyCallback: gossh.InsecureIgnoreHostKey(), Config: algs}
			cc, chans, reqs, err := gossh.NewClientConn(cj, "target", ccfg)
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			cj.negotiated(cc)
			if s := <-srv; s.err != nil {
				t.Fatal(s.err)
			}
			client := gossh.NewClient(cc, chans, reqs)
			ch, r, err := client.OpenChannel("session", nil)
			if err != nil {
				t.Fatal(err)
			}
			go gossh.DiscardRequests(r)

			var sent bytes.Buffer
			for _, n := range []int{1, 4000, 4059, 4060, 4075, 4076, 4080, 4091, 4092, 4096, 8150, 8160, 8188, 32768, 70000, 5} {
				sent.Write(bytes.Repeat([]byte{byte(n)}, n))
			}
			// One full-size write first, alone (nothing is read back yet,
			// so no window adjustment is sent): each of its packets must
			// reach the socket whole, in one write.
			below.take()
			if _, err := ch.Write(bytes.Repeat([]byte{'x'}, 32768)); err != nil {
				t.Fatal(err)
			}
			for _, n := range below.take() {
				if n <= transportBuffer {
					t.Errorf("a %d-byte piece of a data packet was written on its own", n)
				}
			}
			got := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(ch)
				got <- b
			}()
			if _, err := ch.Write(sent.Bytes()); err != nil {
				t.Fatal(err)
			}
			ch.CloseWrite()
			select {
			case b := <-got:
				want := append(bytes.Repeat([]byte{'x'}, 32768), sent.Bytes()...)
				if !bytes.Equal(b, want) {
					t.Fatalf("echoed %d bytes, want %d (content differs: %v)", len(b), len(want), len(b) == len(want))
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the echo did not complete")
			}
			if err := <-echoed; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestJoinedConnHeldPieceFlushed: a piece held for the rest of its packet
// is written within holdFor even when nothing follows it.
func TestJoinedConnHeldPieceFlushed(t *testing.T) {
	a, b := tcpPair(t)
	j := joinWrites(a)
	piece := bytes.Repeat([]byte{7}, transportBuffer)
	if n, err := j.Write(piece); n != len(piece) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, transportBuffer)
	if _, err := io.ReadFull(b, got); err != nil || !bytes.Equal(got, piece) {
		t.Fatalf("held piece not delivered: %v", err)
	}
}

// TestJoinedConnCloseFlushes: Close writes what is held before closing.
func TestJoinedConnCloseFlushes(t *testing.T) {
	a, b := tcpPair(t)
	j := joinWrites(a)
	j.tail = true
	j.Write(bytes.Repeat([]byte{1}, transportBuffer))
	j.Write(bytes.Repeat([]byte{2}, 3*transportBuffer))
	j.Close()
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(b)
	if err != nil || len(got) != 4*transportBuffer {
		t.Fatalf("read %d bytes after Close, %v; want %d", len(got), err, 4*transportBuffer)
	}
}

// failingConn fails every write.
type failingConn struct{ net.Conn }

func (failingConn) Write([]byte) (int, error) { return 0, errors.New("connection reset") }

// TestJoinedConnHeldWriteFailure: a held piece that could not be written
// fails the next write, so the failure is not lost.
func TestJoinedConnHeldWriteFailure(t *testing.T) {
	a, _ := tcpPair(t)
	j := joinWrites(failingConn{a})
	if _, err := j.Write(make([]byte, transportBuffer)); err != nil {
		t.Fatalf("held write failed early: %v", err)
	}
	if _, err := j.Write(make([]byte, 100)); err == nil {
		t.Fatal("the write completing a packet whose first piece failed succeeded")
	}
	if _, err := j.Write(make([]byte, 100)); err == nil {
		t.Fatal("a write after a failure succeeded")
	}
}

// TestJoinedConnReadAhead: while a peer streams, reads go through a pooled
// buffer; what is read comes out whole and in order, and the buffer is
// released once drained.
func TestJoinedConnReadAhead(t *testing.T) {
	a, b := tcpPair(t)
	j := joinWrites(a)
	want := make([]byte, 3*readAhead+123)
	rand.Read(want)
	go func() {
		b.Write(want)
		b.Close()
	}()
	var got bytes.Buffer
	buf := make([]byte, 5000)
	for {
		n, err := j.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("read %d bytes, want %d; content equal: false", got.Len(), len(want))
	}
	if j.rmem != nil || len(j.rbuf) != 0 {
		t.Fatal("the read-ahead buffer is still held after the stream ended")
	}
}

// TestCopyChannelSizes: copyChannel moves everything whatever the flow,
// switching buffers as reads fill them or not.
func TestCopyChannelSizes(t *testing.T) {
	want := make([]byte, 2*largeCopy+smallCopy+17)
	rand.Read(want)
	// A reader that returns sizes in a pattern: full small reads, then a
	// trickle, then large ones.
	r := &patternReader{data: want, sizes: []int{smallCopy, smallCopy, 10, smallCopy, largeCopy, 1, largeCopy}}
	var out bytes.Buffer
	n, err := copyChannel(&out, r)
	if err != nil || n != int64(len(want)) || !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("copied %d, %v; want %d bytes equal", n, err, len(want))
	}
}

type patternReader struct {
	data  []byte
	sizes []int
	i     int
}

func (r *patternReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.sizes[r.i%len(r.sizes)], len(r.data))
	r.i++
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// TestJoinedConnCloseUnblocksWrite: closing a connection whose write is
// blocked on a peer that stopped reading ends that write instead of
// waiting for it.
func TestJoinedConnCloseUnblocksWrite(t *testing.T) {
	a, _ := tcpPair(t) // the peer never reads
	below := &enteredConn{Conn: a, entered: make(chan struct{})}
	j := joinWrites(below)
	wrote := make(chan error, 1)
	go func() {
		big := make([]byte, 64<<20) // more than both socket buffers hold
		_, err := j.Write(big)
		wrote <- err
	}()
	// The write is under way, holding the connection, once it reaches the
	// socket.
	<-below.entered
	closed := make(chan error, 1)
	go func() { closed <- j.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for a blocked write")
	}
	select {
	case err := <-wrote:
		if err == nil {
			t.Fatal("the blocked write succeeded after Close")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the blocked write did not end after Close")
	}
}

// enteredConn says when the first write reaches it.
type enteredConn struct {
	net.Conn
	once    sync.Once
	entered chan struct{}
}

func (c *enteredConn) Write(p []byte) (int, error) {
	c.once.Do(func() { close(c.entered) })
	return c.Conn.Write(p)
}
