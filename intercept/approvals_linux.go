package intercept

import (
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// tcpEstablished is the kernel's TCP_ESTABLISHED state (tcp_states.h).
const tcpEstablished = 1

// watchHangup calls gone when the peer of c (a TCP connection, or one
// wrapping it) hangs up, until stop is called. It reads nothing: it peeks
// (MSG_PEEK|MSG_DONTWAIT) when the socket becomes readable, so whatever a
// pipelining client already sent stays for the session. With data
// waiting, a peek cannot see the end of the stream behind it; the socket's
// TCP state does (CLOSE_WAIT once the peer's FIN arrived).
func watchHangup(c net.Conn, gone func()) (stop func()) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return func() {}
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		hup := false
		rc.Read(func(fd uintptr) bool {
			var b [1]byte
			for {
				n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
				switch {
				case err == unix.EINTR:
					continue
				case err == unix.EAGAIN:
					return false // wait for readiness
				case err != nil, n == 0:
					hup = true // reset, or the end of the stream
					return true
				}
				info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
				if err == nil && info.State != tcpEstablished {
					hup = true
					return true
				}
				// Data from a client still there: wait for what comes next.
				return false
			}
		})
		if hup {
			gone()
		}
	}()
	return func() {
		// A deadline in the past wakes the watcher; the connection's
		// reads go on without one afterwards.
		c.SetReadDeadline(time.Unix(1, 0))
		<-done
		c.SetReadDeadline(time.Time{})
	}
}
