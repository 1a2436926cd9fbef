package ssh

import (
	"fmt"
	"testing"

	gossh "golang.org/x/crypto/ssh"
)

// queued takes requests as fast as they come, however slow their reader,
// hands them on in order, and lets go of what is left when the client
// closes.
func TestQueued(t *testing.T) {
	in := make(chan *gossh.Request)
	overflowed := make(chan struct{})
	out, gone := queued(in, func() { close(overflowed) })
	for i := range maxQueued {
		in <- &gossh.Request{Type: fmt.Sprint(i)} // nobody reads out yet
	}
	for i := range 3 {
		if r := <-out; r.Type != fmt.Sprint(i) {
			t.Fatalf("request %d came as %s", i, r.Type)
		}
	}
	select {
	case <-overflowed:
		t.Fatal("overflowed at its bound")
	default:
	}
	for range 4 {
		in <- &gossh.Request{Type: "more"}
	}
	<-overflowed
	close(in)
	<-gone
	if r, ok := <-out; ok {
		t.Fatalf("after the close: %s", r.Type)
	}
}

// Behind a request that waits, a keepalive that wants no answer is let go
// and a window change replaces the one before it: a client resizing its
// terminal through a long review does not overflow.
func TestQueuedKeepsNoNeedless(t *testing.T) {
	in := make(chan *gossh.Request)
	out, _ := queued(in, func() { t.Error("overflowed") })
	in <- &gossh.Request{Type: "env"} // taken by nobody yet: it waits
	for i := range 2 * maxQueued {
		in <- &gossh.Request{Type: "keepalive@openssh.com"}
		in <- &gossh.Request{Type: "window-change", Payload: []byte{byte(i)}}
	}
	in <- &gossh.Request{Type: "signal"}
	last := byte((2*maxQueued - 1) & 0xff)
	for _, want := range []string{"env", "window-change", "signal"} {
		r := <-out
		if r.Type != want || want == "window-change" && r.Payload[0] != last {
			t.Fatalf("got %s %v, want %s", r.Type, r.Payload, want)
		}
	}
	close(in)
	if r, ok := <-out; ok {
		t.Fatalf("more: %s", r.Type)
	}
}

// The requests waiting are bounded in bytes too: 1,024 of 256 KiB each
// held 256 MiB.
func TestQueuedBoundsBytes(t *testing.T) {
	in := make(chan *gossh.Request)
	overflowed := make(chan struct{})
	out, gone := queued(in, func() { close(overflowed) })
	big := make([]byte, 256<<10)
	for range maxQueuedBytes / len(big) {
		in <- &gossh.Request{Type: "env", Payload: big}
	}
	<-out // handed on: it no longer counts
	in <- &gossh.Request{Type: "env", Payload: big}
	select {
	case <-overflowed:
		t.Fatal("overflowed at its bound")
	default:
	}
	in <- &gossh.Request{Type: "env", Payload: []byte("x")}
	<-overflowed
	close(in)
	<-gone
}
