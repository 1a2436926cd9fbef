// Package tcp is the handler for `protocol: tcp` targets: it relays bytes
// between the intercepted client and the original destination unchanged.
// It gives no operation-level control, only the connection-level facts
// (who, where, how much), and makes the interception core usable on its own.
package tcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/intercept/nbio"
)

// Dialer opens the upstream connection. It must produce connections the
// kernel does not redirect back into corral (see agent's upstream dialer).
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Handler relays a session to its original destination.
type Handler struct {
	Dialer Dialer
}

// Serve dials the original destination and copies both ways until both
// directions are done or ctx ends.
func (h *Handler) Serve(ctx context.Context, c *intercept.Conn) error {
	up, err := h.Dialer.DialContext(ctx, "tcp", c.Meta.OrigDst.String())
	if err != nil {
		return fmt.Errorf("dial upstream %s: %w", c.Meta.OrigDst, err)
	}
	defer up.Close()

	stop := context.AfterFunc(ctx, func() {
		up.Close()
		c.Close()
	})
	defer stop()

	// Copy between the raw sockets with non-blocking calls off the
	// scheduler's syscall path, into a buffer held only while bytes are in
	// flight (nbio.Copy says why not splice). One direction is copied on
	// this goroutine: an idle relay holds two stacks, not three.
	var errUp error
	upDone := make(chan struct{})
	go func() {
		defer close(upDone)
		n, err := nbio.Copy(up, c.Conn)
		c.Count(uint64(n), 0)
		errUp = err
		closeWrite(up)
	}()
	n, errD := nbio.Copy(c.Conn, up)
	c.Count(0, uint64(n))
	closeWrite(c.Conn)
	<-upDone
	if ctx.Err() != nil {
		return nil
	}
	return errors.Join(quiet(errUp), quiet(errD))
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

// quiet drops the errors of an ordinary end of session: a peer that resets
// or a side closed by the other direction is not worth an audit error.
func quiet(err error) error {
	if err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
		return nil
	}
	var oe *net.OpError
	if errors.As(err, &oe) && (oe.Op == "read" || oe.Op == "write") {
		return nil
	}
	return err
}
