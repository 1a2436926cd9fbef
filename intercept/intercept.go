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
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corral-dev/corral/policy"
	"github.com/corral-dev/corral/recorder"
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
	Workload Identity
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

// Authenticator is a Handler that may learn more about who the client is
// during its protocol's own login (a token presented as a password) than
// the kernel says. For a connection it authenticates, the server does not
// settle the admission: it hands the connection to Serve whatever the
// kernel identity's admission was, since a token may be what grants
// access. The handler adds what it learns (Conn.Identify), or refuses the
// client (Conn.Refuse), settles an admission sent to review
// (Conn.SettleAdmission), and calls Conn.Open when the session starts; it
// must not serve a connection whose Admission does not allow it. The
// server audits the outcome: open and close, or deny.
type Authenticator interface {
	Handler
	Authenticates(c *Conn) bool
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, c *Conn) error

// Serve calls f.
func (f HandlerFunc) Serve(ctx context.Context, c *Conn) error { return f(ctx, c) }

// Decider is the policy engine, as handlers see it.
type Decider interface {
	Decide(ctx context.Context, in policy.Input) (policy.Decision, error)
}

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
	// Admission is the policy's decision to let the workload connect at all;
	// it names the credential alias to inject and the masks that apply.
	Admission policy.Decision
	// Approvals holds operations the policy sent to review (the server's);
	// nil: a review is a deny.
	Approvals Approvals
	// Hangup, when a handler sets it, is closed when the client is gone.
	// A handler whose protocol library reads the connection all along
	// sets it: the default watch for a client hanging up while an
	// operation waits for approval peeks at the socket and is stopped
	// with a read deadline, which would break that reader.
	Hangup <-chan struct{}

	// policy is the server's engine: an approved operation is decided
	// again with it (Review.Wait).
	policy   Decider
	auditor  Auditor
	recorder Recorder
	recMode  recorder.Mode
	rec      *recorder.Session // nil: not recorded
	input    policy.Input
	state    sessionState // owned by the goroutine serving the connection
	up, down atomic.Uint64

	metrics Metrics        // the server's; nil: nothing is counted
	sm      SessionMetrics // this session's, while it is served
	// policyFailed: the admission is a deny because the engine failed.
	policyFailed bool
	// client is Client as text, for the events of every statement.
	client string
	// database is the one the session opened (SetDatabase), if any.
	database string
}

// sessionState is how far the connection got, for the audit log.
type sessionState int

const (
	pending sessionState = iota // neither opened nor denied yet
	opened                      // an open event was written; a close follows
	denied                      // a deny event was written; nothing follows
)

// Input starts a policy question about this connection: the workload and
// the target, to which the handler adds the action.
func (c *Conn) Input(a policy.Action) policy.Input {
	in := c.input
	in.Action = a
	return in
}

// prepareInput builds the part of every policy question that stays the
// same for the session.
func (c *Conn) prepareInput() {
	w := c.Meta.Workload
	c.input = policy.Input{
		Workload: policy.Workload{
			CgroupID:    w.CgroupID,
			CgroupPath:  w.CgroupPath,
			PID:         w.PID,
			Exe:         w.Exe,
			UID:         w.UID,
			User:        w.User,
			Unit:        w.Unit,
			ContainerID: w.ContainerID,
			Pod: policy.Pod{
				UID:            w.Pod.UID,
				Namespace:      w.Pod.Namespace,
				Name:           w.Pod.Name,
				ServiceAccount: w.Pod.ServiceAccount,
				Labels:         w.Pod.Labels,
				Container:      w.Pod.Container,
				Image:          w.Pod.Image,
			},
			OIDC: w.OIDC,
		},
		Target: policy.Target{Name: c.Meta.Target.Name, Protocol: c.Meta.Target.Protocol, Address: c.Meta.OrigDst.String(), Database: c.database},
	}
	c.input.IdentityKey = policy.IdentityKey(&c.input.Workload)
	c.client = c.Client.String()
}

// Identify adds the verified identity of a token the client presented and
// decides the connection's admission again: the token may grant access,
// pick another credential or masks, or be denied where the kernel
// identity alone was let in. Every later policy question about the session
// carries the token's identity. The error is the policy engine's failure,
// if any; the decision is then a deny.
func (c *Conn) Identify(ctx context.Context, p Decider, id *policy.OIDC) (policy.Decision, error) {
	c.Meta.Workload.OIDC = id
	c.prepareInput()
	d, err := admit(ctx, p, c)
	c.Admission = d
	return d, err
}

// SetDatabase notes the database the session opens (PostgreSQL): every
// later policy question and event names it, and an admission that let the
// workload in is decided again with it, as a policy may let a workload
// open one database and not another (a denied one stays denied; a token
// presented later is decided with the database too). Like Identify, the
// error is the policy engine's failure.
func (c *Conn) SetDatabase(ctx context.Context, p Decider, db string) (policy.Decision, error) {
	c.database = db
	c.input.Target.Database = db
	if c.Admission.Result == policy.Deny {
		return c.Admission, nil
	}
	d, err := admit(ctx, p, c)
	c.Admission = d
	return d, err
}

// Refuse records that the client's own login failed (a token that did not
// verify), so the connection is audited as denied for reason.
func (c *Conn) Refuse(reason string) {
	c.Admission = policy.Decision{Result: policy.Deny, Reason: reason, Record: true}
}

// Open starts the session, once, if the admission allows it: its
// recording's header, then its open event. An Authenticator calls it when
// the client's identity is settled; for other handlers the server has
// already. An error means the session must not go on: a strict target's
// recording could not start (the connection is then audited as denied,
// with that reason).
func (c *Conn) Open() error {
	if c.state != pending || !c.Admission.Allowed() {
		return nil
	}
	if err := c.startRecording(); err != nil {
		c.Admission = policy.Decision{Result: policy.Deny, Reason: err.Error(), Record: true, PolicyVersion: c.Admission.PolicyVersion}
		c.deny(nil)
		return err
	}
	c.state = opened
	c.countConnection(ConnAllowed)
	c.audit(c.event(EventOpen, c.Started, nil))
	return nil
}

// deny writes the connection's deny event, once.
func (c *Conn) deny(err error) {
	if c.state != pending {
		return
	}
	c.state = denied
	c.countConnection(c.denial())
	c.audit(c.event(EventDeny, c.Started, err))
}

func (c *Conn) audit(e Event) {
	if c.auditor != nil {
		c.auditor.Audit(e)
	}
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

// Count adds bytes moved on the raw connection (c.Conn) by a handler that
// bypasses the counting Read and Write, e.g. to copy with raw system calls.
func (c *Conn) Count(up, down uint64) {
	c.up.Add(up)
	c.down.Add(down)
}

// BytesUp is the number of bytes read from the client so far.
func (c *Conn) BytesUp() uint64 { return c.up.Load() }

// BytesDown is the number of bytes written to the client so far.
func (c *Conn) BytesDown() uint64 { return c.down.Load() }

// Server dispatches accepted connections to protocol handlers.
type Server struct {
	Resolver Resolver
	Handlers map[string]Handler // by Target.Protocol
	Policy   Decider
	Auditor  Auditor
	// Recorder records sessions; RecordingMode says how, per target
	// (recorder.Strict when it returns "").
	Recorder      Recorder
	RecordingMode func(target string) recorder.Mode
	// Unidentified, when set, may take a connection the kernel did not
	// redirect (a client connecting to a listener directly, as pgx does
	// to cancel a query); it returns false when it has no use for it.
	// Such a connection never becomes a session.
	Unidentified func(ctx context.Context, c net.Conn) bool
	// Approvals holds operations the policy sends to review; nil: a review
	// is a deny that says approvals are not configured.
	Approvals Approvals
	Log       *slog.Logger

	// Metrics counts connections and sessions, and hands each session the
	// counters its handler reports to; nil counts nothing.
	Metrics Metrics

	wg       sync.WaitGroup // sessions
	loops    sync.WaitGroup // accept loops
	mu       sync.Mutex
	sessions map[*Conn]struct{}
}

// Go runs Serve in a goroutine that Wait waits for.
func (s *Server) Go(ctx context.Context, l net.Listener, netnsCookie uint64) {
	s.loops.Add(1)
	go func() {
		defer s.loops.Done()
		s.Serve(ctx, l, netnsCookie)
	}()
}

// Wait returns when every accept loop started with Go has returned, which
// they do when their listeners are closed. After it, no session starts.
func (s *Server) Wait() { s.loops.Wait() }

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
			defer func() {
				// One session's bug must not take down every other session
				// on the node: close it, say so, go on.
				if r := recover(); r != nil {
					nc.Close()
					s.Log.Error("session handler panicked; connection closed", "panic", r, "stack", string(debug.Stack()))
				}
			}()
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
		metrics:     s.Metrics,
		policy:      s.Policy,
		auditor:     s.Auditor,
		recorder:    s.Recorder,
		Approvals:   s.Approvals,
	}
	meta, err := s.Resolver.Resolve(netnsCookie, client, port)
	if err != nil {
		if s.Unidentified != nil && s.Unidentified(ctx, nc) {
			nc.Close()
			return
		}
		nc.Close()
		s.Log.Warn("closing connection of unknown origin", "client", client, "err", err)
		s.Auditor.Audit(Event{Time: c.Started, Event: EventReject, SessionID: c.SessionID, Client: client.String(), Error: err.Error()})
		c.countConnection(ConnRejected)
		return
	}
	c.Meta = meta
	c.prepareInput()
	if s.Recorder != nil {
		c.recMode = recorder.Strict
		if s.RecordingMode != nil {
			if m := s.RecordingMode(meta.Target.Name); m != "" {
				c.recMode = m
			}
		}
	}
	h := s.Handlers[meta.Target.Protocol]
	if h == nil {
		nc.Close()
		err := errors.New("no handler for protocol " + meta.Target.Protocol)
		s.Log.Error("closing connection", "target", meta.Target.Name, "err", err)
		s.Auditor.Audit(c.event(EventReject, c.Started, err))
		c.countConnection(ConnRejected)
		return
	}

	// Admission: may this workload reach this target at all? Anything but
	// allow closes the connection; a plain TCP client has no way to be told
	// more than that, and the audit line says why. A handler that takes a
	// login may still learn of a token that changes the answer.
	d, err := admit(ctx, s.Policy, c)
	if err != nil {
		s.Log.Error("policy failed; connection denied", "target", meta.Target.Name, "err", err)
	}
	c.Admission = d
	a, ok := h.(Authenticator)
	late := ok && a.Authenticates(c)
	if !late {
		c.SettleAdmission(ctx) // a review holds the connection here
	}
	if !c.Admission.Allowed() && !late {
		nc.Close()
		c.deny(err)
		return
	}

	if !late {
		if err := c.Open(); err != nil {
			nc.Close()
			s.Log.Error("session refused: it cannot be recorded", "target", meta.Target.Name, "session_id", c.SessionID, "err", err)
			return
		}
	}
	s.track(c, true)
	err = s.serve(ctx, h, c)
	nc.Close()
	s.track(c, false)
	// A handler that returned before the session started (a client gone
	// during its login, a cancel request) leaves it to be settled here.
	if c.Admission.Allowed() {
		c.Open()
	} else {
		c.deny(err)
	}
	if c.state == opened {
		// The recording is sealed before the close is audited: whoever
		// sees the close finds the recording complete.
		now := time.Now()
		c.endRecording(now, err)
		c.audit(c.event(EventClose, now, err))
	}
}

// serve runs the handler. A panic in it ends this session only, as an
// error: the session is then untracked, its recording sealed and its close
// audited like any other end.
func (s *Server) serve(ctx context.Context, h Handler, c *Conn) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.Log.Error("session handler panicked; connection closed", "session_id", c.SessionID, "panic", r, "stack", string(debug.Stack()))
			err = errors.New("corral failed serving this session (an internal error; see the agent's log)")
		}
	}()
	return h.Serve(ctx, c)
}

// admit asks p whether the connection may be made at all. Anything but a
// clean answer is a deny; err is the engine's failure, for the log.
func admit(ctx context.Context, p Decider, c *Conn) (policy.Decision, error) {
	var d policy.Decision
	var err error
	if p == nil {
		d, err = policy.Decision{Result: policy.Deny, Reason: "no policy engine is configured", Record: true}, errors.New("server has no policy engine")
	} else {
		d, err = p.Decide(ctx, c.Input(policy.Action{Kind: policy.KindConnect, Operations: []string{"connect"}}))
	}
	if err != nil && (d.Result != policy.Deny || d.Reason == "") {
		// Whatever the engine returned with its error, it is a deny.
		d = policy.Decision{Result: policy.Deny, Reason: "the policy could not be evaluated", Record: true, PolicyVersion: d.PolicyVersion}
	}
	c.policyFailed = err != nil
	return d, err
}

func (s *Server) track(c *Conn, add bool) {
	s.startSession(c, add)
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
