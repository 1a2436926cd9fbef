package intercept_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/policy"
	"github.com/corral-dev/corral/policy/approval"
)

// brokerEvents hands over a broker's events as they happen.
type brokerEvents chan approval.Event

func (e brokerEvents) next(t *testing.T, typ string) approval.Event {
	t.Helper()
	for {
		select {
		case ev := <-e:
			if ev.Type == typ {
				return ev
			}
		case <-time.After(waitFor):
			t.Fatalf("no %s event", typ)
			return approval.Event{}
		}
	}
}

func newBroker(t *testing.T) (*approval.Broker, brokerEvents) {
	t.Helper()
	s, err := approval.OpenStore(filepath.Join(t.TempDir(), "approvals.db"))
	if err != nil {
		t.Fatal(err)
	}
	evs := make(brokerEvents, 64)
	b, err := approval.NewBroker(context.Background(), s, approval.Options{Events: func(e approval.Event) { evs <- e }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(); s.Close() })
	return b, evs
}

var dba = approval.Approver{Name: "alice", Via: approval.ViaUnix, UID: new(uint32(1001)), Groups: []string{"dba"}}

// A connect the policy sends to review holds the connection until a
// person decides: approved, the handler serves it with the decision's
// credential; denied, it is closed and audited as a deny naming the
// request and who decided; a client that hangs up cancels its request.
func TestAdmissionReview(t *testing.T) {
	review := policy.Decision{Result: policy.Review, Reason: "connects need a DBA", Rule: "etl-jobs", Reviewers: []string{"group:dba"},
		Grant: "once", Timeout: time.Minute, Credential: "writer", PolicyVersion: 4}
	b, evs := newBroker(t)
	served := make(chan *intercept.Conn, 1)
	h := intercept.HandlerFunc(func(_ context.Context, c *intercept.Conn) error {
		served <- c
		return nil
	})
	ts := startServerWith(t, serverOptions{policy: newDecider(review, nil), approvals: b}, newResolver(testMeta(), nil), map[string]intercept.Handler{"tcp": h}, 5)

	t.Run("approved", func(t *testing.T) {
		dial(t, ts.addr)
		req := evs.next(t, approval.EventRequested).Request
		if req.Kind != policy.KindConnect || req.Target != "orders-db" || req.Requester.UID != 1000 || req.Reason != "connects need a DBA" {
			t.Fatalf("request %+v", req)
		}
		if _, err := b.Decide(context.Background(), req.ID, dba, true, ""); err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-served:
			if !c.Admission.Allowed() || c.Admission.Credential != "writer" || c.Admission.Reason != "request "+req.ID+" approved by alice" {
				t.Fatalf("admission %+v", c.Admission)
			}
		case <-time.After(waitFor):
			t.Fatal("the approved connection was not served")
		}
		if ev := ts.audit.next(t); ev.Event != intercept.EventOpen {
			t.Fatalf("event %+v", ev)
		}
		ts.audit.next(t) // close
	})

	t.Run("denied", func(t *testing.T) {
		c := dial(t, ts.addr)
		req := evs.next(t, approval.EventRequested).Request
		if _, err := b.Decide(context.Background(), req.ID, dba, false, "not today"); err != nil {
			t.Fatal(err)
		}
		expectEOF(t, c)
		ev := ts.audit.next(t)
		if ev.Event != intercept.EventDeny || ev.Decision != policy.Deny || ev.Reason != "request "+req.ID+" denied by alice: not today" {
			t.Fatalf("event %+v", ev)
		}
	})

	t.Run("client gone", func(t *testing.T) {
		c := dial(t, ts.addr)
		req := evs.next(t, approval.EventRequested).Request
		c.Close()
		ev := evs.next(t, approval.EventCancelled)
		if ev.Request.ID != req.ID || !strings.Contains(ev.Request.DecisionReason, "client disconnected") {
			t.Fatalf("cancelled %+v", ev.Request)
		}
		if ev := ts.audit.next(t); ev.Event != intercept.EventDeny || !strings.Contains(ev.Reason, "cancelled") {
			t.Fatalf("event %+v", ev)
		}
		if _, err := b.Decide(context.Background(), req.ID, dba, true, ""); !errors.Is(err, approval.ErrNotPending) {
			t.Fatalf("decision after the client left: %v", err)
		}
	})
	select {
	case <-served:
		t.Fatal("a connection that was not approved was served")
	default:
	}
}
