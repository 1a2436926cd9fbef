package ssh

import (
	"net"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// x/crypto/ssh's transport writes each packet through a bufio.Writer of
// bufio's default size, transportBuffer. A packet larger than that
// reaches the connection in pieces: the full buffer, then the rest of the
// payload written directly, then (with a stream cipher such as AES-CTR)
// the padding and MAC from the final flush. Each piece is a system call
// and a TCP segment the peer wakes for and cannot use yet. joinedConn
// holds the pieces of one packet and writes them as one.
const transportBuffer = 4096

// holdFor bounds how long a piece may wait for the rest of its packet. It
// is only reached when a packet's last piece is exactly one buffer long,
// or the cipher was guessed wrong (during a key exchange).
const holdFor = 200 * time.Microsecond

type joinedConn struct {
	net.Conn

	mu     sync.Mutex
	held   []byte
	direct bool // held ends with the payload written directly
	tail   bool // the cipher writes a MAC after the payload
	err    error
	timer  *time.Timer

	// read side: one reader at a time (x/crypto's read loop)
	rmem      *[]byte
	rbuf      []byte
	streaming bool // the last read filled what it was given
}

func joinWrites(c net.Conn) *joinedConn {
	j := &joinedConn{Conn: c}
	j.timer = time.AfterFunc(time.Hour, func() {
		j.mu.Lock()
		defer j.mu.Unlock()
		j.flush()
	})
	j.timer.Stop()
	return j
}

// negotiated tells the joiner the cipher the handshake chose for what it
// writes: AEAD ciphers end a packet with its payload, stream ciphers
// write the MAC after it.
func (j *joinedConn) negotiated(c gossh.Conn) {
	m, ok := c.(gossh.AlgorithmsConnMetadata)
	if !ok {
		return
	}
	cipher := m.Algorithms().Write.Cipher
	j.mu.Lock()
	j.tail = !strings.Contains(cipher, "gcm") && !strings.Contains(cipher, "chacha20")
	j.mu.Unlock()
}

func (j *joinedConn) Write(p []byte) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return 0, j.err
	}
	if len(j.held) == 0 {
		if len(p) != transportBuffer {
			return j.Conn.Write(p)
		}
		j.held = append((*heldBuffers.Get().(*[]byte))[:0], p...)
		j.timer.Reset(holdFor)
		return len(p), nil
	}
	j.held = append(j.held, p...)
	// A write longer than the buffer is the payload, written directly;
	// with a stream cipher the MAC follows it.
	if j.tail && !j.direct && len(p) > transportBuffer {
		j.direct = true
		j.timer.Reset(holdFor)
		return len(p), nil
	}
	j.timer.Stop()
	if err := j.flush(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flush writes what is held; a failure fails every later write.
func (j *joinedConn) flush() error {
	if len(j.held) == 0 || j.err != nil {
		return j.err
	}
	_, j.err = j.Conn.Write(j.held)
	if b := j.held[:0]; cap(b) <= 64<<10 {
		heldBuffers.Put(&b)
	}
	j.held, j.direct = nil, false
	return j.err
}

// heldBuffers hold the pieces of packets being joined: a connection holds
// one only while a packet is being written, so an idle one holds none.
var heldBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 36<<10); return &b }}

// closeFlushWait bounds how long Close waits to write a held piece.
const closeFlushWait = time.Second

// Close writes what is held, unless a write is under way (it may be
// blocked on a peer that stopped reading: closing is what unblocks it),
// and closes the connection.
func (j *joinedConn) Close() error {
	j.timer.Stop()
	if j.mu.TryLock() {
		if len(j.held) > 0 {
			j.Conn.SetWriteDeadline(time.Now().Add(closeFlushWait))
			j.flush()
		}
		j.mu.Unlock()
	}
	return j.Conn.Close()
}

// Reads: x/crypto/ssh reads a packet as a buffer's worth (bufio's
// default) and then the rest, two system calls a packet. While a peer
// streams, reads go through a larger buffer taken from a pool, so that
// one system call brings in several packets; it goes back to the pool as
// soon as it is drained, so an idle connection holds none.
const readAhead = 128 << 10

var readBuffers = sync.Pool{New: func() any { b := make([]byte, readAhead); return &b }}

func (j *joinedConn) Read(p []byte) (int, error) {
	if len(j.rbuf) > 0 {
		n := copy(p, j.rbuf)
		j.rbuf = j.rbuf[n:]
		if len(j.rbuf) == 0 {
			readBuffers.Put(j.rmem)
			j.rmem, j.rbuf = nil, nil
		}
		return n, nil
	}
	if !j.streaming || len(p) >= readAhead {
		n, err := j.Conn.Read(p)
		j.streaming = n == len(p)
		return n, err
	}
	j.rmem = readBuffers.Get().(*[]byte)
	n, err := j.Conn.Read(*j.rmem)
	j.streaming = n == len(*j.rmem)
	j.rbuf = (*j.rmem)[:n]
	m := copy(p, j.rbuf)
	j.rbuf = j.rbuf[m:]
	if len(j.rbuf) == 0 {
		readBuffers.Put(j.rmem)
		j.rmem, j.rbuf = nil, nil
	}
	return m, err
}
