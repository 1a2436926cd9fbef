package agent

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// A client that announces a body and does not send it is cut off, rather
// than holding a connection (and the agent's descriptor) for as long as it
// likes.
func TestBodyDeadline(t *testing.T) {
	read := make(chan error, 1)
	h := bodyDeadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		read <- err
	}), 100*time.Millisecond)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	defer srv.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n{")
	select {
	case err := <-read:
		if err == nil {
			t.Fatal("the body read succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler is still waiting for the body")
	}
}
