package nbio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// pair returns both ends of a loopback TCP connection, the first wrapped.
func pair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	w := Wrap(c)
	if _, ok := w.(*conn); !ok {
		t.Fatalf("Wrap(%T) = %T, want the raw connection", c, w)
	}
	return w, peer
}

func TestWrapLeavesOtherConnectionsAlone(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a {
		t.Fatal("a pipe was wrapped")
	}
}

// A write larger than the socket buffers fills them (EAGAIN), waits for the
// reader, and carries on: every byte arrives, in order.
func TestLargeWriteAndRead(t *testing.T) {
	c, peer := pair(t)
	want := make([]byte, 16<<20)
	for i := range want {
		want[i] = byte(i * 7)
	}
	errc := make(chan error, 1)
	go func() {
		n, err := c.Write(want)
		if err == nil && n != len(want) {
			err = io.ErrShortWrite
		}
		c.(*conn).CloseWrite()
		errc <- err
	}()
	got, err := io.ReadAll(peer)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want %d, equal prefix lost", len(got), len(want))
	}

	// And the other way, through the raw reads, ending in io.EOF.
	go func() {
		peer.Write(want)
		peer.(*net.TCPConn).CloseWrite()
	}()
	got, err = io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, want %d", len(got), len(want))
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read after end = %d, %v; want 0, EOF", n, err)
	}
}

func TestDeadlineAndClose(t *testing.T) {
	c, _ := pair(t)
	c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	c.SetReadDeadline(time.Time{})

	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		errc <- err
	}()
	// Close must wake the blocked reader, as it does for a plain conn.
	// Whether the read has started waiting or not, it ends with ErrClosed.
	c.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on a closed connection: %v", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write on a closed connection: %v", err)
	}
}

func TestWriteToResetPeer(t *testing.T) {
	c, peer := pair(t)
	peer.(*net.TCPConn).SetLinger(0)
	peer.Close()
	// The reset arrives asynchronously: write until the kernel reports it.
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		_, err = c.Write(make([]byte, 4096))
		if err == nil {
			c.SetReadDeadline(time.Now().Add(time.Millisecond))
			c.Read(make([]byte, 1))
		}
	}
	if err == nil {
		t.Fatal("writes to a reset peer kept succeeding")
	}
}

// startCopy returns a source connection with its peer and a destination
// with its peer, and runs Copy(dst, src) in the background.
func startCopy(t *testing.T) (srcPeer, dstPeer net.Conn, src net.Conn, done chan copyResult) {
	t.Helper()
	src, srcPeer = pair(t)
	dst, dstPeer := pair(t)
	done = make(chan copyResult, 1)
	go func() {
		n, err := Copy(dst, src)
		dst.(*conn).CloseWrite()
		done <- copyResult{n, err}
	}()
	return srcPeer, dstPeer, src, done
}

type copyResult struct {
	n   int64
	err error
}

// Every byte arrives in order, the count is right, and the source's end
// of stream ends the copy without an error.
func TestCopy(t *testing.T) {
	srcPeer, dstPeer, _, done := startCopy(t)
	want := make([]byte, 16<<20+123)
	for i := range want {
		want[i] = byte(i * 13)
	}
	go func() {
		// Small writes and large ones, as a relay sees them.
		srcPeer.Write(want[:5])
		srcPeer.Write(want[5:100])
		srcPeer.Write(want[100:])
		srcPeer.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(dstPeer)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want %d, or out of order", len(got), len(want))
	}
	r := <-done
	if r.err != nil || r.n != int64(len(want)) {
		t.Fatalf("Copy = %d, %v; want %d, nil", r.n, r.err, len(want))
	}
}

// A copy waiting for its source ends when the source is closed.
func TestCopyEndsOnClose(t *testing.T) {
	srcPeer, dstPeer, src, done := startCopy(t)
	srcPeer.Write([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(dstPeer, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("relayed %q, %v", buf, err)
	}
	src.Close()
	r := <-done
	if !errors.Is(r.err, net.ErrClosed) || r.n != 5 {
		t.Fatalf("Copy = %d, %v; want 5, ErrClosed", r.n, r.err)
	}
}

// A destination that resets makes the copy fail, not spin or hang.
func TestCopyToResetPeer(t *testing.T) {
	srcPeer, dstPeer, _, done := startCopy(t)
	dstPeer.(*net.TCPConn).SetLinger(0)
	dstPeer.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		chunk := make([]byte, 4096)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := srcPeer.Write(chunk); err != nil {
				return
			}
		}
	}()
	if r := <-done; r.err == nil {
		t.Fatalf("Copy to a reset peer = %d, nil", r.n)
	}
}

// Connections that are not TCP are copied by io.Copy.
func TestCopyOtherConnections(t *testing.T) {
	a, b := net.Pipe()
	c, d := net.Pipe()
	defer a.Close()
	defer d.Close()
	go func() {
		a.Write([]byte("through a pipe"))
		a.Close()
	}()
	go func() {
		Copy(c, b)
		c.Close()
	}()
	got, err := io.ReadAll(d)
	if err != nil || string(got) != "through a pipe" {
		t.Fatalf("got %q, %v", got, err)
	}
}
