package postgres

import (
	"io"
	"sync"
)

const (
	// flushAt is how much a direction gathers before writing it out
	// without waiting for the reader to run dry (bufio's default size).
	flushAt = 8 << 10
	// keepAt is the largest buffer given back to the pool; one grown by a
	// large message is left to the collector.
	keepAt = 64 << 10
)

var outPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 2*flushAt)
	return &b
}}

// outbuf gathers the messages of one direction and writes them in one
// call, like a bufio.Writer, but holds a buffer only while it has
// something to write: the buffer is taken from a pool by the first message
// and given back when the messages are written out. A session spends most
// of its life idle, waiting on both peers; it then holds no write buffers.
//
// An outbuf is not safe for concurrent use (the session's mutexes guard
// each direction).
type outbuf struct {
	w   io.Writer
	buf *[]byte // nil while nothing is gathered
	err error   // the first write error; every later call returns it
}

// AvailableBuffer returns an empty slice whose free capacity a message can
// be encoded into and then passed to Write, as with bufio.Writer.
func (o *outbuf) AvailableBuffer() []byte {
	b := *o.take()
	return b[len(b):]
}

// take returns the buffer, from the pool if none is held.
func (o *outbuf) take() *[]byte {
	if o.buf == nil {
		o.buf = outPool.Get().(*[]byte)
	}
	return o.buf
}

// Write gathers p, writing out once flushAt bytes are gathered. A large p
// is written as it is, after what was gathered before it: a large result
// value is not copied again.
func (o *outbuf) Write(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	if len(p) >= flushAt {
		if o.buf != nil && len(*o.buf) > 0 {
			if _, err := o.write(*o.buf); err != nil {
				return 0, err
			}
			*o.buf = (*o.buf)[:0]
		}
		// p may lie in the buffer's free space (AvailableBuffer): it
		// goes back to the pool only once p is written.
		n, err := o.write(p)
		o.release()
		return n, err
	}
	buf := o.take()
	*buf = append(*buf, p...)
	if len(*o.buf) >= flushAt {
		if err := o.Flush(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush writes out what is gathered and gives the buffer back.
func (o *outbuf) Flush() error {
	if o.err != nil {
		return o.err
	}
	if o.buf == nil {
		return nil
	}
	var err error
	if len(*o.buf) > 0 {
		_, err = o.write(*o.buf)
	}
	o.release()
	return err
}

func (o *outbuf) write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		o.err = err
	}
	return n, err
}

func (o *outbuf) release() {
	if o.buf == nil {
		return
	}
	if cap(*o.buf) <= keepAt {
		*o.buf = (*o.buf)[:0]
		outPool.Put(o.buf)
	}
	o.buf = nil
}
