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
