package intercept_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/policy"
)

// waitFor bounds every wait on an event, so a broken server fails the test
// instead of hanging it.
const waitFor = 10 * time.Second

var sessionIDPattern = regexp.MustCompile(`^s-[0-9a-f]{20}$`)

type resolveCall struct {
	cookie uint64
	client netip.AddrPort
	port   uint16
}

// fakeResolver answers every connection with the same Meta or error and
// reports each call.
type fakeResolver struct {
	meta  intercept.Meta
	err   error
	calls chan resolveCall
}

func newResolver(meta intercept.Meta, err error) *fakeResolver {
	return &fakeResolver{meta: meta, err: err, calls: make(chan resolveCall, 1024)}
}

func (r *fakeResolver) Resolve(cookie uint64, client netip.AddrPort, port uint16) (intercept.Meta, error) {
	r.calls <- resolveCall{cookie: cookie, client: client, port: port}
	return r.meta, r.err
}

func (r *fakeResolver) next(t *testing.T) resolveCall {
	t.Helper()
	select {
	case c := <-r.calls:
		return c
	case <-time.After(waitFor):
		t.Fatal("timed out waiting for a Resolve call")
		return resolveCall{}
	}
}

// recordingAuditor keeps every event in arrival order.
type recordingAuditor struct {
	events chan intercept.Event
}

func (a *recordingAuditor) Audit(e intercept.Event) { a.events <- e }

func (a *recordingAuditor) next(t *testing.T) intercept.Event {
	t.Helper()
	select {
	case e := <-a.events:
		return e
	case <-time.After(waitFor):
		t.Fatal("timed out waiting for an audit event")
		return intercept.Event{}
	}
}

// noMore fails if events are left unread. Call it after stop, when every
// connection handler has returned.
func (a *recordingAuditor) noMore(t *testing.T) {
	t.Helper()
	for {
		select {
		case e := <-a.events:
			t.Errorf("unexpected extra event: %+v", e)
		default:
			return
		}
	}
}

// fakeDecider answers every question with the same decision and error, and
// reports each question.
type fakeDecider struct {
	decision policy.Decision
	err      error
	inputs   chan policy.Input
}

func newDecider(d policy.Decision, err error) *fakeDecider {
	return &fakeDecider{decision: d, err: err, inputs: make(chan policy.Input, 1024)}
}

func (d *fakeDecider) Decide(_ context.Context, in policy.Input) (policy.Decision, error) {
	d.inputs <- in
	return d.decision, d.err
}

func (d *fakeDecider) next(t *testing.T) policy.Input {
	t.Helper()
	select {
	case in := <-d.inputs:
		return in
	case <-time.After(waitFor):
		t.Fatal("timed out waiting for a policy question")
		return policy.Input{}
	}
}

// allowed is the admission the default policy of the test server gives.
var allowed = policy.Decision{Result: policy.Allow, Reason: "rule etl-jobs allows connect", Rule: "etl-jobs", Record: true, PolicyVersion: 5}

type testServer struct {
	srv    *intercept.Server
	audit  *recordingAuditor
	policy *fakeDecider // the default policy, when the test did not bring one
	ln     net.Listener
	addr   netip.AddrPort // where clients connect
	served chan struct{}  // closed when Serve returns
	cancel context.CancelFunc
	once   sync.Once
}

type serverOptions struct {
	network, addr string            // the listener; tcp4 on 127.0.0.1 by default
	policy        intercept.Decider // allows everything by default
	noPolicy      bool              // leave Server.Policy nil
	metrics       intercept.Metrics
	approvals     intercept.Approvals
}

// startServer serves a server on a fresh loopback listener with
// netnsCookie, with a policy that admits every connection, and tears
// everything down at cleanup.
func startServer(t *testing.T, res intercept.Resolver, handlers map[string]intercept.Handler, cookie uint64) *testServer {
	t.Helper()
	return startServerWith(t, serverOptions{}, res, handlers, cookie)
}

func startServerWith(t *testing.T, o serverOptions, res intercept.Resolver, handlers map[string]intercept.Handler, cookie uint64) *testServer {
	t.Helper()
	if o.network == "" {
		o.network, o.addr = "tcp4", "127.0.0.1:0"
	}
	ln, err := net.Listen(o.network, o.addr)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{
		audit: &recordingAuditor{events: make(chan intercept.Event, 1024)},
		ln:    ln,
		addr:  ln.Addr().(*net.TCPAddr).AddrPort(),
	}
	ts.srv = &intercept.Server{
		Resolver: res,
		Handlers: handlers,
		Auditor:  ts.audit,
		Log:      slog.New(slog.DiscardHandler),
		Metrics:  o.metrics,
	}
	if o.approvals != nil {
		ts.srv.Approvals = o.approvals
	}
	switch {
	case o.noPolicy:
	case o.policy != nil:
		ts.srv.Policy = o.policy
	default:
		ts.policy = newDecider(allowed, nil)
		ts.srv.Policy = ts.policy
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel = cancel
	ts.served = make(chan struct{})
	go func() {
		defer close(ts.served)
		ts.srv.Serve(ctx, ln, cookie)
	}()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// closeListener closes the listener and waits for Serve to return.
func (ts *testServer) closeListener(t *testing.T) {
	t.Helper()
	ts.ln.Close()
	select {
	case <-ts.served:
	case <-time.After(waitFor):
		t.Fatal("Serve did not return after its listener was closed")
	}
}

// stop closes the listener, waits for Serve to return, cancels the
// sessions' context and shuts the server down. It runs at cleanup, and
// earlier where a test needs every handler to have returned.
func (ts *testServer) stop(t *testing.T) {
	ts.once.Do(func() {
		ts.ln.Close()
		select {
		case <-ts.served:
		case <-time.After(waitFor):
			t.Error("Serve did not return after its listener was closed")
		}
		// Handlers that wait on ctx end now; the rest get until the
		// deadline before their connections are closed under them.
		ts.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		ts.srv.Shutdown(ctx)
	})
}

func dial(t *testing.T, addr netip.AddrPort) *net.TCPConn {
	t.Helper()
	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetDeadline(time.Now().Add(waitFor)); err != nil {
		t.Fatal(err)
	}
	return c
}

func localAddrPort(c net.Conn) netip.AddrPort {
	return c.LocalAddr().(*net.TCPAddr).AddrPort()
}

// expectEOF asserts the server closed the client's connection without
// sending anything.
func expectEOF(t *testing.T, c net.Conn) {
	t.Helper()
	var b [1]byte
	n, err := c.Read(b[:])
	if n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("client read = %d, %v; want 0, EOF (connection closed by the server)", n, err)
	}
}

func checkSessionID(t *testing.T, id string) {
	t.Helper()
	if !sessionIDPattern.MatchString(id) {
		t.Errorf("session id %q does not match %s", id, sessionIDPattern)
	}
}

func testMeta() intercept.Meta {
	return intercept.Meta{
		OrigDst: netip.MustParseAddrPort("10.0.0.5:5432"),
		Target:  intercept.Target{Name: "orders-db", Protocol: "tcp"},
		Workload: intercept.Identity{
			CgroupID:    4242,
			CgroupPath:  "/system.slice/etl.service",
			PID:         1234,
			Exe:         "/usr/bin/psql",
			UID:         1000,
			Unit:        "etl.service",
			ContainerID: "c0ffee",
			User:        "etl",
			Pod: intercept.Pod{UID: "pod-uid", Namespace: "etl", Name: "job-1", ServiceAccount: "migrator",
				Labels: map[string]string{"app": "etl"}},
		},
	}
}

func TestServeRejectsConnectionOfUnknownOrigin(t *testing.T) {
	res := newResolver(intercept.Meta{}, errors.New("no record of connection in conn_by_tuple"))
	var called atomic.Bool
	h := intercept.HandlerFunc(func(context.Context, *intercept.Conn) error {
		called.Store(true)
		return nil
	})
	ts := startServer(t, res, map[string]intercept.Handler{"tcp": h}, 42)

	c := dial(t, ts.addr)
	call := res.next(t)
	if call.cookie != 42 {
		t.Errorf("Resolve cookie = %d, want 42", call.cookie)
	}
	if call.port != ts.addr.Port() {
		t.Errorf("Resolve listener port = %d, want %d", call.port, ts.addr.Port())
	}
	if call.client != localAddrPort(c) {
		t.Errorf("Resolve client = %v, want %v", call.client, localAddrPort(c))
	}

	ev := ts.audit.next(t)
	if ev.Event != intercept.EventReject {
		t.Fatalf("event = %q, want %q", ev.Event, intercept.EventReject)
	}
	if ev.Error != "no record of connection in conn_by_tuple" {
		t.Errorf("error = %q, want the resolver's error", ev.Error)
	}
	if ev.Client != localAddrPort(c).String() {
		t.Errorf("client = %q, want %q", ev.Client, localAddrPort(c))
	}
	checkSessionID(t, ev.SessionID)
	if ev.Target != "" || ev.Protocol != "" || ev.OrigDst != "" {
		t.Errorf("unknown origin reported target %q protocol %q orig_dst %q", ev.Target, ev.Protocol, ev.OrigDst)
	}
	if ev.Workload != nil {
		t.Errorf("unknown origin reported a workload: %+v", ev.Workload)
	}
	if ev.DurationMS != nil {
		t.Errorf("reject has duration_ms %v", *ev.DurationMS)
	}
	if ev.Time.IsZero() {
		t.Error("reject has no time")
	}

	expectEOF(t, c)
	ts.stop(t)
	ts.audit.noMore(t)
	if called.Load() {
		t.Error("handler was called for a connection that could not be resolved")
	}
	if n := len(ts.policy.inputs); n != 0 {
		t.Errorf("the policy was asked %d times about a connection of unknown origin", n)
	}
	if ev.Decision != "" || ev.Reason != "" {
		t.Errorf("reject carries decision %q reason %q", ev.Decision, ev.Reason)
	}
	if n := ts.srv.Active(); n != 0 {
		t.Errorf("Active = %d after a rejected connection", n)
	}
}

func TestServeRejectsProtocolWithoutHandler(t *testing.T) {
	meta := testMeta()
	meta.Target = intercept.Target{Name: "inventory", Protocol: "mysql"}
	meta.OrigDst = netip.MustParseAddrPort("10.0.0.6:3306")
	res := newResolver(meta, nil)
	var called atomic.Bool
	h := intercept.HandlerFunc(func(context.Context, *intercept.Conn) error {
		called.Store(true)
		return nil
	})
	ts := startServer(t, res, map[string]intercept.Handler{"tcp": h}, 7)

	c := dial(t, ts.addr)
	ev := ts.audit.next(t)
	if ev.Event != intercept.EventReject {
		t.Fatalf("event = %q, want %q", ev.Event, intercept.EventReject)
	}
	if ev.Error != "no handler for protocol mysql" {
		t.Errorf("error = %q, want it to name the protocol", ev.Error)
	}
	if ev.Target != "inventory" || ev.Protocol != "mysql" || ev.OrigDst != "10.0.0.6:3306" {
		t.Errorf("target/protocol/orig_dst = %q/%q/%q", ev.Target, ev.Protocol, ev.OrigDst)
	}
	if ev.Client != localAddrPort(c).String() {
		t.Errorf("client = %q, want %q", ev.Client, localAddrPort(c))
	}
	if ev.Workload == nil || ev.Workload.PID != meta.Workload.PID || !reflect.DeepEqual(ev.Workload.Pod, meta.Workload.Pod) {
		t.Errorf("workload = %+v, want the resolved one", ev.Workload)
	}
	checkSessionID(t, ev.SessionID)
	if ev.DurationMS != nil {
		t.Errorf("reject has duration_ms %v", *ev.DurationMS)
	}

	expectEOF(t, c)
	ts.stop(t)
	ts.audit.noMore(t)
	if called.Load() {
		t.Error("the handler of another protocol was called")
	}
	if n := len(ts.policy.inputs); n != 0 {
		t.Errorf("the policy was asked %d times about a protocol corral cannot serve", n)
	}
}

func TestServeDeniesWithoutAdmission(t *testing.T) {
	const reviewSuffix = " (approvals are not configured on this agent: denied)"
	for _, tc := range []struct {
		name     string
		opts     func() serverOptions
		decision string // want, in the deny event
		reason   string
		rule     string
		version  uint64
		// what the event says about a failure without a decision is not
		// pinned down; only that the connection is denied
		anyDecision bool
	}{
		{
			name: "deny",
			opts: func() serverOptions {
				return serverOptions{policy: newDecider(policy.Decision{Result: policy.Deny, Reason: "no rule lets etl connect", Rule: "default-deny", PolicyVersion: 3}, nil)}
			},
			decision: policy.Deny, reason: "no rule lets etl connect", rule: "default-deny", version: 3,
		},
		{
			// No approvals on this server: a review cannot hold the
			// connect, so it is a deny that says so.
			name: "review",
			opts: func() serverOptions {
				return serverOptions{policy: newDecider(policy.Decision{Result: policy.Review, Reason: "connects need a DBA", Rule: "etl-jobs", Reviewers: []string{"group:dba"}, PolicyVersion: 4}, nil)}
			},
			decision: policy.Deny, reason: "connects need a DBA" + reviewSuffix, rule: "etl-jobs", version: 4,
		},
		{
			name: "policy error",
			opts: func() serverOptions {
				return serverOptions{policy: newDecider(policy.Decision{Result: policy.Deny, Reason: "the policy could not be evaluated", PolicyVersion: 9}, errors.New("evaluate policy: boom"))}
			},
			decision: policy.Deny, reason: "the policy could not be evaluated", version: 9,
		},
		{
			name: "policy error without a decision",
			opts: func() serverOptions {
				return serverOptions{policy: newDecider(policy.Decision{}, errors.New("engine exploded"))}
			},
			anyDecision: true,
		},
		{
			name:     "no policy engine",
			opts:     func() serverOptions { return serverOptions{noPolicy: true} },
			decision: policy.Deny, reason: "no policy engine is configured",
		},
		{
			name: "unknown result",
			opts: func() serverOptions {
				return serverOptions{policy: newDecider(policy.Decision{Result: "maybe", Reason: "?"}, nil)}
			},
			decision: "maybe", reason: "?",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			meta := testMeta()
			res := newResolver(meta, nil)
			var called atomic.Bool
			h := intercept.HandlerFunc(func(context.Context, *intercept.Conn) error {
				called.Store(true)
				return nil
			})
			opts := tc.opts()
			ts := startServerWith(t, opts, res, map[string]intercept.Handler{"tcp": h}, 5)

			c := dial(t, ts.addr)
			ev := ts.audit.next(t)
			expectEOF(t, c)
			ts.stop(t)
			ts.audit.noMore(t)

			if called.Load() {
				t.Error("handler called for a connection the policy did not admit")
			}
			if ev.Event != intercept.EventDeny {
				t.Fatalf("event = %q, want %q", ev.Event, intercept.EventDeny)
			}
			if !tc.anyDecision && (ev.Decision != tc.decision || ev.Reason != tc.reason || ev.Rule != tc.rule || ev.PolicyVersion != tc.version) {
				t.Errorf("decision %q reason %q rule %q version %d; want %q %q %q %d",
					ev.Decision, ev.Reason, ev.Rule, ev.PolicyVersion, tc.decision, tc.reason, tc.rule, tc.version)
			}
			checkSessionID(t, ev.SessionID)
			if ev.Target != "orders-db" || ev.Protocol != "tcp" || ev.OrigDst != "10.0.0.5:5432" || ev.Client != localAddrPort(c).String() {
				t.Errorf("target/protocol/orig_dst/client = %q/%q/%q/%q", ev.Target, ev.Protocol, ev.OrigDst, ev.Client)
			}
			if ev.Workload == nil || ev.Workload.PID != meta.Workload.PID {
				t.Errorf("workload = %+v, want the resolved one", ev.Workload)
			}
			if ev.DurationMS != nil || ev.BytesUp != 0 || ev.BytesDown != 0 {
				t.Errorf("deny has duration %v, bytes %d/%d", ev.DurationMS, ev.BytesUp, ev.BytesDown)
			}
			if n := ts.srv.Active(); n != 0 {
				t.Errorf("Active = %d after a denied connection", n)
			}
			if d, ok := opts.policy.(*fakeDecider); ok {
				if in := d.next(t); in.Action.Kind != policy.KindConnect {
					t.Errorf("policy asked about %q, want connect", in.Action.Kind)
				}
			}
		})
	}
}

func TestServeSessionEvents(t *testing.T) {
	meta := testMeta()
	res := newResolver(meta, nil)
	const request, reply = "hello, upstream", "hi!"
	type seen struct {
		conn      *intercept.Conn
		sessionID string
		cookie    uint64
		client    netip.AddrPort
		meta      intercept.Meta
		admission policy.Decision
		request   string
		up, down  uint64
	}
	seenc := make(chan seen, 1)
	h := intercept.HandlerFunc(func(ctx context.Context, c *intercept.Conn) error {
		b := make([]byte, len(request))
		if _, err := io.ReadFull(c, b); err != nil {
			return err
		}
		if _, err := io.WriteString(c, reply); err != nil {
			return err
		}
		seenc <- seen{c, c.SessionID, c.NetnsCookie, c.Client, c.Meta, c.Admission, string(b), c.BytesUp(), c.BytesDown()}
		return errors.New("upstream said goodbye")
	})
	ts := startServer(t, res, map[string]intercept.Handler{"tcp": h}, 99)

	c := dial(t, ts.addr)
	client := localAddrPort(c)
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != reply {
		t.Fatalf("client got %q, want %q", got, reply)
	}

	open := ts.audit.next(t)
	closed := ts.audit.next(t)
	s := <-seenc

	if s.request != request {
		t.Errorf("handler read %q, want %q", s.request, request)
	}
	if s.cookie != 99 || s.client != client || s.meta.Target != meta.Target || s.meta.OrigDst != meta.OrigDst {
		t.Errorf("handler saw cookie %d client %v meta %+v", s.cookie, s.client, s.meta)
	}
	if s.up != uint64(len(request)) || s.down != uint64(len(reply)) {
		t.Errorf("handler counted up %d down %d, want %d %d", s.up, s.down, len(request), len(reply))
	}
	if s.conn.Started.IsZero() {
		t.Error("Conn.Started not set")
	}
	if !reflect.DeepEqual(s.admission, allowed) {
		t.Errorf("handler saw admission %+v, want %+v", s.admission, allowed)
	}

	// The policy was asked whether this workload may connect to this target.
	in := ts.policy.next(t)
	wantIn := policy.Input{
		Workload: policy.Workload{
			CgroupID:    meta.Workload.CgroupID,
			CgroupPath:  meta.Workload.CgroupPath,
			PID:         meta.Workload.PID,
			Exe:         meta.Workload.Exe,
			UID:         meta.Workload.UID,
			User:        meta.Workload.User,
			Unit:        meta.Workload.Unit,
			ContainerID: meta.Workload.ContainerID,
			Pod: policy.Pod{
				UID:            meta.Workload.Pod.UID,
				Namespace:      meta.Workload.Pod.Namespace,
				Name:           meta.Workload.Pod.Name,
				ServiceAccount: meta.Workload.Pod.ServiceAccount,
				Labels:         meta.Workload.Pod.Labels,
			},
		},
		Target: policy.Target{Name: "orders-db", Protocol: "tcp", Address: "10.0.0.5:5432"},
		Action: policy.Action{Kind: policy.KindConnect, Operations: []string{"connect"}},
	}
	wantIn.IdentityKey = policy.IdentityKey(&wantIn.Workload)
	if !reflect.DeepEqual(in, wantIn) {
		t.Errorf("policy input:\n got %+v\nwant %+v", in, wantIn)
	}

	if open.Event != intercept.EventOpen || closed.Event != intercept.EventClose {
		t.Fatalf("events = %q, %q; want open, close", open.Event, closed.Event)
	}
	checkSessionID(t, open.SessionID)
	if open.SessionID != closed.SessionID || open.SessionID != s.sessionID {
		t.Errorf("session ids: open %q close %q handler %q", open.SessionID, closed.SessionID, s.sessionID)
	}
	for _, ev := range []intercept.Event{open, closed} {
		if ev.Target != "orders-db" || ev.Protocol != "tcp" || ev.OrigDst != "10.0.0.5:5432" {
			t.Errorf("%s: target/protocol/orig_dst = %q/%q/%q", ev.Event, ev.Target, ev.Protocol, ev.OrigDst)
		}
		if ev.Client != client.String() {
			t.Errorf("%s: client = %q, want %q", ev.Event, ev.Client, client)
		}
		if ev.Workload == nil {
			t.Errorf("%s: no workload", ev.Event)
		} else if ev.Workload.CgroupPath != meta.Workload.CgroupPath || !reflect.DeepEqual(ev.Workload.Pod, meta.Workload.Pod) ||
			ev.Workload.ContainerID != meta.Workload.ContainerID || ev.Workload.Exe != meta.Workload.Exe {
			t.Errorf("%s: workload = %+v, want %+v", ev.Event, *ev.Workload, meta.Workload)
		}
	}

	if open.BytesUp != 0 || open.BytesDown != 0 {
		t.Errorf("open: bytes up %d down %d, want 0 0", open.BytesUp, open.BytesDown)
	}
	if open.DurationMS != nil {
		t.Errorf("open has duration_ms %v", *open.DurationMS)
	}
	if open.Error != "" {
		t.Errorf("open has error %q", open.Error)
	}
	if open.Decision != policy.Allow || open.Reason != allowed.Reason || open.Rule != allowed.Rule || open.PolicyVersion != allowed.PolicyVersion {
		t.Errorf("open: decision %q reason %q rule %q version %d, want the admission", open.Decision, open.Reason, open.Rule, open.PolicyVersion)
	}
	if closed.Decision != "" || closed.Reason != "" || closed.Rule != "" || closed.PolicyVersion != 0 {
		t.Errorf("close repeats the admission: %q %q %q %d", closed.Decision, closed.Reason, closed.Rule, closed.PolicyVersion)
	}
	if !open.Time.Equal(s.conn.Started) {
		t.Errorf("open time %v, want the session start %v", open.Time, s.conn.Started)
	}

	if closed.BytesUp != uint64(len(request)) || closed.BytesDown != uint64(len(reply)) {
		t.Errorf("close: bytes up %d down %d, want %d %d", closed.BytesUp, closed.BytesDown, len(request), len(reply))
	}
	if closed.Error != "upstream said goodbye" {
		t.Errorf("close: error = %q, want the handler's", closed.Error)
	}
	if closed.DurationMS == nil {
		t.Fatal("close has no duration_ms")
	}
	if closed.Time.Before(open.Time) {
		t.Errorf("close time %v before open time %v", closed.Time, open.Time)
	}
	want := float64(closed.Time.Sub(open.Time).Microseconds()) / 1000
	if d := *closed.DurationMS - want; d < -0.001 || d > 0.001 || *closed.DurationMS < 0 {
		t.Errorf("close: duration_ms = %v, want %v (close time - open time)", *closed.DurationMS, want)
	}

	ts.stop(t)
	ts.audit.noMore(t)
}

func TestServeSessionWithoutError(t *testing.T) {
	res := newResolver(testMeta(), nil)
	h := intercept.HandlerFunc(func(ctx context.Context, c *intercept.Conn) error {
		_, err := io.Copy(c, c) // echo until the client closes its side
		return err
	})
	ts := startServer(t, res, map[string]intercept.Handler{"tcp": h}, 1)

	c := dial(t, ts.addr)
	payload := make([]byte, 100_000)
	for i := range payload {
		payload[i] = byte(i)
	}
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if len(got) != len(payload) {
		t.Fatalf("echoed %d bytes, want %d", len(got), len(payload))
	}
	if ts.audit.next(t).Event != intercept.EventOpen {
		t.Fatal("first event is not open")
	}
	ev := ts.audit.next(t)
	if ev.Event != intercept.EventClose || ev.Error != "" {
		t.Fatalf("close event = %q error %q, want close without error", ev.Event, ev.Error)
	}
	if ev.BytesUp != uint64(len(payload)) || ev.BytesDown != uint64(len(payload)) {
		t.Errorf("bytes up %d down %d, want %d each", ev.BytesUp, ev.BytesDown, len(payload))
	}
}

func TestSessionIDsAreUnique(t *testing.T) {
	res := newResolver(testMeta(), nil)
	h := intercept.HandlerFunc(func(context.Context, *intercept.Conn) error { return nil })
	ts := startServer(t, res, map[string]intercept.Handler{"tcp": h}, 1)

	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(ts.addr))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(waitFor))
			if _, err := io.ReadAll(c); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	opens := map[string]int{}
	closes := map[string]int{}
	for range 2 * n {
		ev := ts.audit.next(t)
		checkSessionID(t, ev.SessionID)
		switch ev.Event {
		case intercept.EventOpen:
			opens[ev.SessionID]++
		case intercept.EventClose:
			closes[ev.SessionID]++
		default:
			t.Fatalf("unexpected event %q", ev.Event)
		}
	}
	if len(opens) != n {
		t.Errorf("%d distinct session ids over %d sessions", len(opens), n)
	}
	for id, k := range opens {
		if k != 1 || closes[id] != 1 {
			t.Errorf("session %s: %d open and %d close events, want 1 each", id, k, closes[id])
		}
	}
	ts.stop(t)
	ts.audit.noMore(t)
}

// eventually polls cond: the server untracks a session after auditing its
// close, and nothing signals that moment.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestActiveCountsLiveSessions(t *testing.T) {
	res := newResolver(testMeta(), nil)
	entered := make(chan int, 16)
	h := intercept.HandlerFunc(func(ctx context.Context, c *intercept.Conn) error {
		entered <- 1
		_, err := io.Copy(io.Discard, c)
		return err
	})
	ts := startServer(t, res, map[string]intercept.Handler{"tcp": h}, 1)
	if n := ts.srv.Active(); n != 0 {
		t.Fatalf("Active = %d before any connection", n)
	}

	var clients []*net.TCPConn
	for range 3 {
		clients = append(clients, dial(t, ts.addr))
	}
	for range 3 {
		select {
		case <-entered:
		case <-time.After(waitFor):
			t.Fatal("handler not entered")
		}
	}
	// All three handlers are running: every session is tracked by now.
	if n := ts.srv.Active(); n != 3 {
		t.Fatalf("Active = %d with 3 handlers running, want 3", n)
	}

	clients[0].Close()
	for range 3 {
		if ev := ts.audit.next(t); ev.Event != intercept.EventOpen {
			t.Fatalf("event = %q, want open", ev.Event)
		}
	}
	if ev := ts.audit.next(t); ev.Event != intercept.EventClose {
		t.Fatalf("event = %q, want close", ev.Event)
	}
	eventually(t, "Active drops to 2", func() bool { return ts.srv.Active() == 2 })

	clients[1].Close()
	clients[2].Close()
	ts.stop(t)
	if n := ts.srv.Active(); n != 0 {
		t.Errorf("Active = %d after every session ended", n)
	}
}

func TestShutdownWaitsForHandlers(t *testing.T) {
	res := newResolver(testMeta(), nil)
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var finished atomic.Bool
	h := intercept.HandlerFunc(func(ctx context.Context, c *intercept.Conn) error {
		entered <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		_, err := io.WriteString(c, "bye")
		finished.Store(true)
		return err
	})
	ts := startServer(t, res, map[string]intercept.Handler{"tcp": h}, 1)
	c := dial(t, ts.addr)
	select {
	case <-entered:
	case <-time.After(waitFor):
		t.Fatal("handler not entered")
	}
	ts.closeListener(t)

	done := make(chan struct{})
	go func() {
		defer close(done)
		ts.srv.Shutdown(context.Background())
	}()
	// Shutdown has nothing to report that it is waiting; give it a moment
	// to return wrongly.
	select {
	case <-done:
		t.Fatal("Shutdown returned while a handler was still running")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("Shutdown did not return after the handler finished")
	}
	if !finished.Load() {
		t.Error("Shutdown returned before the handler finished")
	}
	// The session ended on its own: its connection was not cut short.
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "bye" {
		t.Errorf("client got %q, %v; want \"bye\"", got, err)
	}
	ts.audit.next(t) // open
	ev := ts.audit.next(t)
	if ev.Event != intercept.EventClose || ev.Error != "" || ev.BytesDown != 3 {
		t.Errorf("close event = %+v", ev)
	}
	if n := ts.srv.Active(); n != 0 {
		t.Errorf("Active = %d after Shutdown", n)
	}
}

func TestShutdownWithoutSessionsReturns(t *testing.T) {
	ts := startServer(t, newResolver(testMeta(), nil), nil, 1)
	ts.closeListener(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ts.srv.Shutdown(context.Background())
	}()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("Shutdown of an idle server did not return")
	}
}

func TestShutdownClosesRemainingSessions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		grace time.Duration // 0: a context that is already cancelled
	}{
		{"deadline", 200 * time.Millisecond},
		{"cancelled", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := newResolver(testMeta(), nil)
			entered := make(chan string, 2)
			h := intercept.HandlerFunc(func(ctx context.Context, c *intercept.Conn) error {
				entered <- c.SessionID
				// Blocks until the client closes, or the connection is
				// closed under it; ctx is deliberately ignored.
				_, err := io.Copy(io.Discard, c)
				return err
			})
			ts := startServer(t, res, map[string]intercept.Handler{"tcp": h}, 1)

			// One session ends by itself before Shutdown, one is idle.
			finished := dial(t, ts.addr)
			idle := dial(t, ts.addr)
			for range 2 {
				select {
				case <-entered:
				case <-time.After(waitFor):
					t.Fatal("handler not entered")
				}
			}
			// Both sessions were opened before their handlers ran.
			for range 2 {
				if ev := ts.audit.next(t); ev.Event != intercept.EventOpen {
					t.Fatalf("event = %q, want open", ev.Event)
				}
			}
			finished.CloseWrite()
			ev := ts.audit.next(t)
			if ev.Event != intercept.EventClose || ev.Error != "" {
				t.Fatalf("event = %+v, want a close without error", ev)
			}
			finishedID := ev.SessionID

			ts.closeListener(t)
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), tc.grace)
			defer cancel()
			if tc.grace == 0 {
				cancel()
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				ts.srv.Shutdown(ctx)
			}()
			select {
			case <-done:
			case <-time.After(waitFor):
				t.Fatal("Shutdown did not close the remaining session")
			}
			if elapsed := time.Since(start); elapsed < tc.grace {
				t.Errorf("Shutdown returned after %v, before its %v grace ended", elapsed, tc.grace)
			}
			expectEOF(t, idle)

			ev = ts.audit.next(t)
			if ev.Event != intercept.EventClose || ev.SessionID == finishedID {
				t.Fatalf("event = %+v, want the idle session's close", ev)
			}
			if ev.Error == "" {
				t.Error("a session cut short by Shutdown reports no error")
			}
			if n := ts.srv.Active(); n != 0 {
				t.Errorf("Active = %d after Shutdown", n)
			}
			ts.stop(t)
			ts.audit.noMore(t)
		})
	}
}

func TestServeReturnsWhenListenerClosed(t *testing.T) {
	res := newResolver(testMeta(), nil)
	h := intercept.HandlerFunc(func(ctx context.Context, c *intercept.Conn) error {
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return nil
			}
			if _, err := io.WriteString(c, line); err != nil {
				return err
			}
		}
	})
	ts := startServer(t, res, map[string]intercept.Handler{"tcp": h}, 1)
	c := dial(t, ts.addr)
	r := bufio.NewReader(c)
	exchange := func() {
		t.Helper()
		if _, err := io.WriteString(c, "ping\n"); err != nil {
			t.Fatal(err)
		}
		if line, err := r.ReadString('\n'); err != nil || line != "ping\n" {
			t.Fatalf("got %q, %v; want ping", line, err)
		}
	}
	exchange()

	ts.closeListener(t)
	// Closing the listener stops new sessions, not live ones.
	exchange()
	if n := ts.srv.Active(); n != 1 {
		t.Errorf("Active = %d, want the live session", n)
	}
}

func TestServeUnmapsIPv4Clients(t *testing.T) {
	// A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; the
	// resolver and the audit log must get the plain IPv4 address.
	res := newResolver(testMeta(), nil)
	h := intercept.HandlerFunc(func(context.Context, *intercept.Conn) error { return nil })
	ts := startServerWith(t, serverOptions{network: "tcp", addr: ":0"}, res, map[string]intercept.Handler{"tcp": h}, 1)
	c := dial(t, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ts.addr.Port()))
	want := localAddrPort(c)
	if !want.Addr().Is4() {
		t.Fatalf("client address %v is not IPv4", want)
	}
	if call := res.next(t); call.client != want {
		t.Errorf("Resolve client = %v, want %v", call.client, want)
	}
	if ev := ts.audit.next(t); ev.Client != want.String() {
		t.Errorf("event client = %q, want %q", ev.Client, want)
	}
}

// authHandler is an Authenticator for every connection; login decides
// what happens to it.
type authHandler struct {
	login func(ctx context.Context, c *intercept.Conn) error
}

func (h authHandler) Serve(ctx context.Context, c *intercept.Conn) error { return h.login(ctx, c) }
func (authHandler) Authenticates(*intercept.Conn) bool                   { return true }

// groupPolicy lets in only workloads whose token carries group dba, and
// picks the credential alias by it.
type groupPolicy struct{ inputs chan policy.Input }

func (p groupPolicy) Decide(_ context.Context, in policy.Input) (policy.Decision, error) {
	p.inputs <- in
	if o := in.Workload.OIDC; o != nil && slices.Contains(o.Groups, "dba") {
		return policy.Decision{Result: policy.Allow, Reason: "allowed by rule \"dba\"", Rule: "dba", Credential: "writer", Record: true, PolicyVersion: 2}, nil
	}
	return policy.Decision{Result: policy.Deny, Reason: "no rule lets this workload use target \"orders-db\"", Record: true, PolicyVersion: 2}, nil
}

func (p groupPolicy) next(t *testing.T) policy.Input {
	t.Helper()
	select {
	case in := <-p.inputs:
		return in
	case <-time.After(waitFor):
		t.Fatal("timed out waiting for a policy question")
		return policy.Input{}
	}
}

// A token presented during the login can grant what the kernel identity
// alone did not: the admission is decided again with it, every later
// question carries it, and the session's events name it.
func TestAuthenticatorIdentifiesClient(t *testing.T) {
	pol := groupPolicy{inputs: make(chan policy.Input, 16)}
	token := &policy.OIDC{Issuer: "https://issuer.example", Subject: "alice", Groups: []string{"dba"}}
	type seen struct {
		before, after policy.Decision
		in            policy.Input
		err           error
	}
	seenc := make(chan seen, 1)
	h := authHandler{login: func(ctx context.Context, c *intercept.Conn) error {
		s := seen{before: c.Admission}
		s.after, s.err = c.Identify(ctx, pol, token)
		s.in = c.Input(policy.Action{Kind: policy.KindSQL, Operations: []string{"select"}})
		seenc <- s
		c.Open()
		_, err := io.WriteString(c, "welcome")
		return err
	}}
	ts := startServerWith(t, serverOptions{policy: pol}, newResolver(testMeta(), nil), map[string]intercept.Handler{"tcp": h}, 1)

	c := dial(t, ts.addr)
	if got, err := io.ReadAll(c); err != nil || string(got) != "welcome" {
		t.Fatalf("client read %q, %v", got, err)
	}
	s := <-seenc
	if s.before.Allowed() {
		t.Errorf("the kernel identity was admitted: %+v", s.before)
	}
	if !s.after.Allowed() || s.after.Credential != "writer" || s.err != nil {
		t.Errorf("admission with the token: %+v, %v", s.after, s.err)
	}
	if kernel := pol.next(t); kernel.Workload.OIDC != nil {
		t.Errorf("first question already had a token: %+v", kernel.Workload.OIDC)
	}
	again := pol.next(t)
	if again.Action.Kind != policy.KindConnect || !reflect.DeepEqual(again.Workload.OIDC, token) {
		t.Errorf("second question: %+v", again)
	}
	if !reflect.DeepEqual(s.in.Workload.OIDC, token) || s.in.IdentityKey != policy.IdentityKey(&s.in.Workload) {
		t.Errorf("later questions: oidc %+v, identity key stale: %v", s.in.Workload.OIDC, s.in.IdentityKey != policy.IdentityKey(&s.in.Workload))
	}
	kernelOnly := s.in.Workload
	kernelOnly.OIDC = nil
	if s.in.IdentityKey == policy.IdentityKey(&kernelOnly) {
		t.Error("the identity key does not tell the token's identity from the kernel's")
	}

	open, closed := ts.audit.next(t), ts.audit.next(t)
	if open.Event != intercept.EventOpen || closed.Event != intercept.EventClose {
		t.Fatalf("events %q, %q; want open, close", open.Event, closed.Event)
	}
	if open.Workload == nil || !reflect.DeepEqual(open.Workload.OIDC, token) || open.Rule != "dba" || open.Decision != policy.Allow {
		t.Errorf("open event: workload %+v rule %q decision %q", open.Workload, open.Rule, open.Decision)
	}
	if closed.Workload == nil || closed.Workload.OIDC == nil || closed.Workload.OIDC.Subject != "alice" {
		t.Errorf("close event workload %+v", closed.Workload)
	}
	ts.stop(t)
	ts.audit.noMore(t)
}

func TestAuthenticatorOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy intercept.Decider
		login  func(ctx context.Context, c *intercept.Conn) error
		events []string
		reason string
		err    string
	}{
		{
			name:   "refused token",
			policy: newDecider(allowed, nil),
			login: func(ctx context.Context, c *intercept.Conn) error {
				c.Refuse("corral could not verify the token: token expired")
				return nil
			},
			events: []string{intercept.EventDeny}, reason: "corral could not verify the token: token expired",
		},
		{
			name:   "token denied where the kernel identity was admitted",
			policy: newDecider(allowed, nil),
			login: func(ctx context.Context, c *intercept.Conn) error {
				c.Identify(ctx, groupPolicy{inputs: make(chan policy.Input, 16)}, &policy.OIDC{Issuer: "https://i", Subject: "mallory"})
				c.Open() // must not open a denied session
				return nil
			},
			events: []string{intercept.EventDeny}, reason: "no rule lets this workload use target",
		},
		{
			name:   "kernel identity denied, no token",
			policy: newDecider(policy.Decision{Result: policy.Deny, Reason: "no rule lets etl connect"}, nil),
			login:  func(context.Context, *intercept.Conn) error { return nil },
			events: []string{intercept.EventDeny}, reason: "no rule lets etl connect",
		},
		{
			name:   "client gone during an admitted login",
			policy: newDecider(allowed, nil),
			login:  func(context.Context, *intercept.Conn) error { return errors.New("startup: EOF") },
			events: []string{intercept.EventOpen, intercept.EventClose}, err: "startup: EOF",
		},
		{
			name:   "policy fails on the token",
			policy: newDecider(allowed, nil),
			login: func(ctx context.Context, c *intercept.Conn) error {
				_, err := c.Identify(ctx, newDecider(policy.Decision{}, errors.New("engine exploded")), &policy.OIDC{Subject: "x"})
				return err
			},
			events: []string{intercept.EventDeny}, reason: "the policy could not be evaluated", err: "engine exploded",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var called atomic.Bool
			h := authHandler{login: func(ctx context.Context, c *intercept.Conn) error {
				called.Store(true)
				return tc.login(ctx, c)
			}}
			ts := startServerWith(t, serverOptions{policy: tc.policy}, newResolver(testMeta(), nil), map[string]intercept.Handler{"tcp": h}, 1)
			c := dial(t, ts.addr)
			expectEOF(t, c)
			ts.stop(t)
			if !called.Load() {
				t.Fatal("the authenticating handler was not called")
			}
			for i, want := range tc.events {
				ev := ts.audit.next(t)
				if ev.Event != want {
					t.Fatalf("event %d = %q, want %q", i, ev.Event, want)
				}
				if ev.Event == intercept.EventDeny && !strings.Contains(ev.Reason, tc.reason) {
					t.Errorf("deny reason %q, want %q", ev.Reason, tc.reason)
				}
				if ev.Event != intercept.EventOpen && ev.Error != tc.err {
					t.Errorf("%s error %q, want %q", ev.Event, ev.Error, tc.err)
				}
			}
			ts.audit.noMore(t)
		})
	}
}

// TestHandlerPanicEndsOnlyItsSession: a handler that panics ends its own
// session as an error, which is untracked and audited as closed; the
// server goes on serving.
func TestHandlerPanicEndsOnlyItsSession(t *testing.T) {
	res := newResolver(testMeta(), nil)
	h := intercept.HandlerFunc(func(ctx context.Context, c *intercept.Conn) error {
		panic("a bug")
	})
	ts := startServer(t, res, map[string]intercept.Handler{"tcp": h}, 1)
	for range 2 {
		c := dial(t, ts.addr)
		if ev := ts.audit.next(t); ev.Event != intercept.EventOpen {
			t.Fatalf("event = %q, want open", ev.Event)
		}
		ev := ts.audit.next(t)
		if ev.Event != intercept.EventClose || !strings.Contains(ev.Error, "internal error") {
			t.Fatalf("event = %q error %q, want close with the internal error", ev.Event, ev.Error)
		}
		c.Close()
	}
	if n := ts.srv.Active(); n != 0 {
		t.Errorf("Active = %d after the panicking sessions ended", n)
	}
}
