// Package intercept accepts the connections the kernel redirected to corral,
// works out where each was going and who opened it, and hands it to the
// handler of the target's protocol.
//
// A connection whose origin cannot be established is closed: corral never
// guesses a destination, and never lets a connection through unidentified.
package intercept

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corral-dev/corral/agent/workload"
)

// Target is the protected destination a connection was headed to.
type Target struct {
	Name     string
	Protocol string
}

// Meta is what the kernel and the host say about an accepted connection.
type Meta struct {
	OrigDst  netip.AddrPort
	Target   Target
	Workload workload.Identity
}

// Resolver finds the Meta of a connection accepted on a listener in the
// network namespace with netnsCookie. It fails when the kernel has no record
// of the connection; the connection is then closed.
type Resolver interface {
	Resolve(netnsCookie uint64, client netip.AddrPort, listenerPort uint16) (Meta, error)
}

// Handler speaks one protocol to an intercepted client. Serve returns when
// the session is over; the caller closes the connection afterwards.
type Handler interface {
	Serve(ctx context.Context, c *Conn) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, c *Conn) error

// Serve calls f.
func (f HandlerFunc) Serve(ctx context.Context, c *Conn) error { return f(ctx, c) }

// Auditor receives one event when a session opens and one when it closes
// (or when a connection is rejected before it becomes a session).
type Auditor interface {
	Audit(Event)
}

// Conn is an intercepted client connection. Reads and writes on it are
// counted: bytes up (from the client) and down (to the client).
type Conn struct {
	net.Conn
	SessionID   string
	Meta        Meta
	Client      netip.AddrPort
	NetnsCookie uint64
	Started     time.Time

	up, down atomic.Uint64
}

func (c *Conn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.up.Add(uint64(n))
	return n, err
}

func (c *Conn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.down.Add(uint64(n))
	return n, err
}

// CloseWrite half-closes the client side, so a relay can pass on the
// upstream's end of stream while still reading the client.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// BytesUp is the number of bytes read from the client so far.
func (c *Conn) BytesUp() uint64 { return c.up.Load() }

// BytesDown is the number of bytes written to the client so far.
func (c *Conn) BytesDown() uint64 { return c.down.Load() }

// Server dispatches accepted connections to protocol handlers.
type Server struct {
	Resolver Resolver
	Handlers map[string]Handler // by Target.Protocol
	Auditor  Auditor
	Log      *slog.Logger

	wg       sync.WaitGroup
	mu       sync.Mutex
	sessions map[*Conn]struct{}
}

// Serve accepts on l, a listener in the namespace with netnsCookie, until l
// is closed.
func (s *Server) Serve(ctx context.Context, l net.Listener, netnsCookie uint64) {
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	for {
		nc, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.Log.Warn("accept failed", "err", err)
			// Out of descriptors and the like: back off instead of spinning.
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(ctx, nc, netnsCookie, port)
		}()
	}
}

func (s *Server) handle(ctx context.Context, nc net.Conn, netnsCookie uint64, port uint16) {
	client := nc.RemoteAddr().(*net.TCPAddr).AddrPort()
	client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
	c := &Conn{
		Conn:        nc,
		SessionID:   newSessionID(),
		Client:      client,
		NetnsCookie: netnsCookie,
		Started:     time.Now(),
	}
	meta, err := s.Resolver.Resolve(netnsCookie, client, port)
	if err != nil {
		nc.Close()
		s.Log.Warn("closing connection of unknown origin", "client", client, "err", err)
		s.Auditor.Audit(Event{Time: c.Started, Event: EventReject, SessionID: c.SessionID, Client: client.String(), Error: err.Error()})
		return
	}
	c.Meta = meta
	h := s.Handlers[meta.Target.Protocol]
	if h == nil {
		nc.Close()
		err := errors.New("no handler for protocol " + meta.Target.Protocol)
		s.Log.Error("closing connection", "target", meta.Target.Name, "err", err)
		s.Auditor.Audit(c.event(EventReject, c.Started, err))
		return
	}

	s.track(c, true)
	defer s.track(c, false)
	s.Auditor.Audit(c.event(EventOpen, c.Started, nil))
	err = h.Serve(ctx, c)
	nc.Close()
	s.Auditor.Audit(c.event(EventClose, time.Now(), err))
}

func (s *Server) track(c *Conn, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions == nil {
		s.sessions = map[*Conn]struct{}{}
	}
	if add {
		s.sessions[c] = struct{}{}
	} else {
		delete(s.sessions, c)
	}
}

// Active is the number of sessions being served.
func (s *Server) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Shutdown waits for sessions to end until ctx is done, then closes the
// client connections of the remaining ones and waits for their handlers.
func (s *Server) Shutdown(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	s.mu.Lock()
	for c := range s.sessions {
		c.Conn.Close()
	}
	s.mu.Unlock()
	<-done
}

func newSessionID() string {
	var b [10]byte
	rand.Read(b[:])
	return "s-" + hex.EncodeToString(b[:])
}
