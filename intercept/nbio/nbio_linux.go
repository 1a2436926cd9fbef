package nbio

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// conn is a TCP connection whose Read and Write are raw non-blocking
// system calls. Everything else (deadlines, Close, CloseWrite, addresses)
// is the embedded connection's.
type conn struct {
	*net.TCPConn
	rc syscall.RawConn
}

// Wrap returns c with raw reads and writes when it is a TCP connection,
// and c itself otherwise (a TLS connection does its own buffering).
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &conn{TCPConn: tc, rc: rc}
}

// read is one raw read into p (not empty); again when the socket has
// nothing to read yet.
func read(fd uintptr, p []byte) (n int, errno syscall.Errno, again bool) {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, 0, true
		}
		return int(r), e, false
	}
}

func (c *conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var (
		n     int
		errno syscall.Errno
	)
	err := c.rc.Read(func(fd uintptr) bool {
		var again bool
		n, errno, again = read(fd, p)
		return !again
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, os.NewSyscallError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *conn) Write(p []byte) (int, error) {
	written := 0
	var errno syscall.Errno
	err := c.rc.Write(func(fd uintptr) bool {
		for written < len(p) {
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[written])), uintptr(len(p)-written))
			switch e {
			case 0:
				written += int(r)
				continue
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false
			}
			errno = e
			return true
		}
		return true
	})
	switch {
	case err != nil:
		return written, err
	case errno != 0:
		return written, os.NewSyscallError("write", errno)
	}
	return written, nil
}

// copyBuffer is io.Copy's buffer size: large enough that a bulk transfer
// costs few calls per MiB.
const copyBuffer = 32 << 10

var buffers = sync.Pool{New: func() any {
	b := make([]byte, copyBuffer)
	return &b
}}

// Copy moves bytes from src to dst until src ends, as io.Copy does, with
// raw non-blocking reads and writes when both are TCP connections. The
// buffer comes from a pool when src has bytes to read and goes back once
// they are written, so a relay waiting for its peer holds none.
//
// io.Copy between two TCP connections splices through a pipe instead: no
// copy into the process, but three system calls a chunk through the
// scheduler's syscall path, and a pipe (two descriptors) per direction held
// for the connection's life. A relay of small request/response messages,
// which is what sits behind most protected targets, pays more for that than
// for a copy.
func Copy(dst, src net.Conn) (int64, error) {
	s, ok := Wrap(src).(*conn)
	d, dok := Wrap(dst).(*conn)
	if !ok || !dok {
		return io.Copy(dst, src)
	}
	var total int64
	for {
		var (
			buf   *[]byte
			n     int
			errno syscall.Errno
		)
		err := s.rc.Read(func(fd uintptr) bool {
			b := buffers.Get().(*[]byte)
			var again bool
			if n, errno, again = read(fd, *b); again {
				buffers.Put(b)
				return false
			}
			buf = b
			return true
		})
		switch {
		case err != nil:
			return total, err
		case errno != 0:
			buffers.Put(buf)
			return total, os.NewSyscallError("read", errno)
		case n == 0:
			buffers.Put(buf)
			return total, nil
		}
		w, err := d.Write((*buf)[:n])
		buffers.Put(buf)
		total += int64(w)
		if err != nil {
			return total, err
		}
	}
}
