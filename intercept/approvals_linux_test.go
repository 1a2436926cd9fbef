package intercept

import (
	"net"
	"sync/atomic"
	"testing"
	"time"
)

func tcpPair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return s.(*net.TCPConn), c.(*net.TCPConn)
}

// The watcher sees a hang-up behind data the client sent first, and
// leaves that data for the session.
func TestWatchHangup(t *testing.T) {
	for _, pending := range []bool{false, true} {
		s, c := tcpPair(t)
		gone := make(chan struct{})
		stop := watchHangup(s, func() { close(gone) })
		if pending {
			c.Write([]byte("Q"))
		}
		c.Close()
		select {
		case <-gone:
		case <-time.After(10 * time.Second):
			t.Fatalf("pending data %v: the hang-up went unnoticed", pending)
		}
		stop()
		if pending {
			var b [1]byte
			if n, err := s.Read(b[:]); n != 1 || b[0] != 'Q' {
				t.Fatalf("the client's data was not left for the session: %d %v", n, err)
			}
		}
	}
}

// A client that is still there, even one sending more, is not gone; stop
// ends the watch and the connection reads normally afterwards.
func TestWatchHangupStillThere(t *testing.T) {
	s, c := tcpPair(t)
	var gone atomic.Bool
	stop := watchHangup(s, func() { gone.Store(true) })
	c.Write([]byte("ab"))
	c.Write([]byte("c"))
	stop()
	if gone.Load() {
		t.Fatal("a live client was taken for gone")
	}
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 3)
	n, err := s.Read(b)
	for n < 3 && err == nil {
		var m int
		m, err = s.Read(b[n:])
		n += m
	}
	if string(b[:n]) != "abc" || err != nil {
		t.Fatalf("read %q %v after the watch", b[:n], err)
	}
}
