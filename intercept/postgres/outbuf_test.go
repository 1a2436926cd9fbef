package postgres

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// calls records each Write it is given.
type calls struct {
	writes [][]byte
	err    error
	short  bool
}

func (c *calls) Write(p []byte) (int, error) {
	c.writes = append(c.writes, bytes.Clone(p))
	if c.err != nil {
		return 0, c.err
	}
	if c.short {
		return len(p) - 1, nil
	}
	return len(p), nil
}

func TestOutbufGathersAndHoldsNothingIdle(t *testing.T) {
	w := &calls{}
	o := &outbuf{w: w}
	if err := o.Flush(); err != nil || len(w.writes) != 0 || o.buf != nil {
		t.Fatalf("an empty flush wrote %d times (%v) or took a buffer", len(w.writes), err)
	}
	for _, m := range []string{"B-bind", "E-exec", "S-sync"} {
		b := append(o.AvailableBuffer(), m...)
		if n, err := o.Write(b); err != nil || n != len(m) {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if len(w.writes) != 0 {
		t.Fatal("written before the flush")
	}
	if err := o.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(w.writes) != 1 || string(w.writes[0]) != "B-bindE-execS-sync" {
		t.Fatalf("writes = %q, want the three messages in one", w.writes)
	}
	if o.buf != nil {
		t.Fatal("a flushed outbuf still holds its buffer")
	}
}

func TestOutbufWritesOutWhenFull(t *testing.T) {
	w := &calls{}
	o := &outbuf{w: w}
	row := bytes.Repeat([]byte("r"), 1000)
	for i := 0; i < 9; i++ {
		o.Write(append(o.AvailableBuffer(), row...))
	}
	if len(w.writes) != 1 || len(w.writes[0]) != 9000 {
		t.Fatalf("writes: %d, want one of 9000 bytes once flushAt was passed", len(w.writes))
	}
	if o.buf != nil {
		t.Fatal("the buffer was kept after writing out")
	}
}

// A message as large as flushAt, encoded in the free space of the pooled
// buffer, is written whole before the buffer can serve anyone else.
func TestOutbufLargeMessage(t *testing.T) {
	w := &calls{}
	o := &outbuf{w: w}
	big := bytes.Repeat([]byte{'x'}, 3*flushAt)
	b := append(o.AvailableBuffer(), big...)
	if n, err := o.Write(b); err != nil || n != len(big) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if len(w.writes) != 1 || !bytes.Equal(w.writes[0], big) {
		t.Fatal("the large message was not written as it is, in one call")
	}
	// After gathered messages, a large one follows them as it is: two
	// writes, in order, and the large one is not copied into the buffer.
	o.Write(append(o.AvailableBuffer(), "small"...))
	o.Write(big)
	o.Flush()
	if len(w.writes) != 3 || string(w.writes[1]) != "small" || !bytes.Equal(w.writes[2], big) {
		t.Fatalf("writes after a gathered message: %d, want the gathered one, then the large one", len(w.writes)-1)
	}
	if o.buf != nil {
		t.Fatal("the buffer was kept after a large write")
	}
	// The same with the large message encoded in the free space behind the
	// gathered one (it fits the pooled buffer): it is written intact.
	w.writes = nil
	o.Write(append(o.AvailableBuffer(), "small"...))
	mid := bytes.Repeat([]byte{'m'}, flushAt+100)
	o.Write(append(o.AvailableBuffer(), mid...))
	if len(w.writes) != 2 || string(w.writes[0]) != "small" || !bytes.Equal(w.writes[1], mid) {
		t.Fatal("a large message in the buffer's free space was not written intact after the gathered one")
	}
}

func TestOutbufErrorsStick(t *testing.T) {
	boom := errors.New("boom")
	w := &calls{err: boom}
	o := &outbuf{w: w}
	o.Write([]byte("a"))
	if err := o.Flush(); !errors.Is(err, boom) {
		t.Fatalf("Flush = %v", err)
	}
	w.err = nil
	if _, err := o.Write([]byte("b")); !errors.Is(err, boom) {
		t.Fatalf("Write after a failure = %v", err)
	}
	if err := o.Flush(); !errors.Is(err, boom) || len(w.writes) != 1 {
		t.Fatalf("Flush after a failure = %v, %d writes", err, len(w.writes))
	}

	o = &outbuf{w: &calls{short: true}}
	o.Write([]byte("abc"))
	if err := o.Flush(); !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("a short write: %v", err)
	}
}
