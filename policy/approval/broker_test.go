package approval

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corral-dev/corral/policy"
)

// events collects a broker's events.
type events struct {
	mu   sync.Mutex
	list []Event
}

func (e *events) add(ev Event) {
	e.mu.Lock()
	e.list = append(e.list, ev)
	e.mu.Unlock()
}

func (e *events) types() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.list {
		out = append(out, ev.Type)
	}
	return out
}

// clock is a time.Now that a test can move forward.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

type fixture struct {
	path   string
	store  *Store
	broker *Broker
	events *events
	clock  *clock
}

func open(t *testing.T, path string, c *clock) *fixture {
	t.Helper()
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{path: path, store: s, events: &events{}, clock: c}
	b, err := NewBroker(context.Background(), s, Options{Events: f.events.add, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	f.broker = b
	t.Cleanup(func() { b.Close(); s.Close() })
	return f
}

func newFixture(t *testing.T) *fixture {
	return open(t, filepath.Join(t.TempDir(), "approvals.db"), &clock{})
}

func u32(v uint32) *uint32 { return &v }

var (
	psql = policy.Workload{Exe: "/usr/bin/psql", UID: 1000, User: "app", Unit: "etl.service", CgroupPath: "/system.slice/etl.service"}
	// alice holds group dba over the socket; bob over OIDC.
	alice = Approver{Name: "alice", Via: ViaUnix, UID: u32(1001), Groups: []string{"alice", "dba"}}
	bob   = Approver{Name: "bob@example.com", Via: ViaOIDC, Issuer: "https://id.example", Subject: "bob", Email: "bob@example.com", Groups: []string{"dba"}}
	carol = Approver{Name: "carol", Via: ViaUnix, UID: u32(1002), Groups: []string{"carol", "ops"}}
)

func deleteReq(timeout time.Duration) Request {
	return Request{
		Requester: psql, SessionID: "s-1", Target: "orders-db", Protocol: "postgres",
		Kind: policy.KindSQL, Operations: []string{"delete"}, Text: "DELETE FROM orders",
		Reason: `delete needs review under rule "app"`, Rule: "app", Reviewers: []string{"group:dba"},
		Timeout: Duration(timeout),
	}
}

func (f *fixture) request(t *testing.T, r Request) *Request {
	t.Helper()
	got, err := f.broker.Request(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// wait runs Wait in the background.
func (f *fixture) wait(ctx context.Context, id string) <-chan Outcome {
	ch := make(chan Outcome, 1)
	go func() {
		o, err := f.broker.Wait(ctx, id)
		if err != nil {
			o = Outcome{ID: id, State: "error: " + err.Error()}
		}
		ch <- o
	}()
	return ch
}

func recv(t *testing.T, ch <-chan Outcome) Outcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return")
		return Outcome{}
	}
}

func TestApproveOnce(t *testing.T) {
	f := newFixture(t)
	r := f.request(t, deleteReq(time.Minute))
	if r.State != Pending || !strings.HasPrefix(r.ID, "r-") || r.Grant != GrantOnce || !r.Expires.After(r.Created) {
		t.Fatalf("new request %+v", r)
	}
	ch := f.wait(context.Background(), r.ID)
	got, err := f.broker.Decide(context.Background(), r.ID, alice, true, "looks fine")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != Approved || got.DecidedBy.Name != "alice" || got.DecisionReason != "looks fine" || got.GrantExpires != nil {
		t.Fatalf("decided %+v", got)
	}
	o := recv(t, ch)
	if !o.Approved() || o.By != "alice" || o.Message() != "request "+r.ID+" approved by alice" {
		t.Fatalf("outcome %+v (%s)", o, o.Message())
	}
	// Decided once and for all.
	if _, err := f.broker.Decide(context.Background(), r.ID, bob, false, "no"); !errors.Is(err, ErrNotPending) || !strings.Contains(err.Error(), "already approved by alice") {
		t.Fatalf("second decision: %v", err)
	}
	if got := f.events.types(); strings.Join(got, ",") != "requested,approved" {
		t.Fatalf("events %v", got)
	}
	// Stored, with the approver, listable by state.
	list, err := f.broker.List(context.Background(), Filter{State: Approved})
	if err != nil || len(list) != 1 || list[0].DecidedBy.UID == nil || *list[0].DecidedBy.UID != 1001 {
		t.Fatalf("list: %v %+v", err, list)
	}
	if n, _ := f.broker.List(context.Background(), Filter{State: Pending}); len(n) != 0 {
		t.Fatalf("pending after approval: %+v", n)
	}
}

func TestDenyNeedsReason(t *testing.T) {
	f := newFixture(t)
	r := f.request(t, deleteReq(time.Minute))
	ch := f.wait(context.Background(), r.ID)
	if _, err := f.broker.Decide(context.Background(), r.ID, alice, false, "  "); !errors.Is(err, ErrReasonRequired) {
		t.Fatalf("denial without a reason: %v", err)
	}
	if _, err := f.broker.Decide(context.Background(), r.ID, alice, false, "not during business hours"); err != nil {
		t.Fatal(err)
	}
	o := recv(t, ch)
	if o.Approved() || o.Message() != "request "+r.ID+" denied by alice: not during business hours" {
		t.Fatalf("outcome %s", o.Message())
	}
}

func TestReviewerMatching(t *testing.T) {
	w := policy.Workload{UID: 1000, User: "dmiller", OIDC: &policy.OIDC{Issuer: "https://id.example", Subject: "dave", Email: "dave@example.com"}}
	for _, c := range []struct {
		name      string
		reviewers []string
		approver  Approver
		want      error
	}{
		{"group", []string{"group:dba"}, alice, nil},
		{"oidc group", []string{"group:dba"}, bob, nil},
		{"wrong group", []string{"group:dba"}, carol, ErrNotReviewer},
		{"user by unix name", []string{"user:carol"}, carol, nil},
		{"user by subject", []string{"user:bob"}, bob, nil},
		{"user by email", []string{"user:bob@example.com"}, bob, nil},
		{"another user", []string{"user:alice"}, carol, ErrNotReviewer},
		{"group named like the user", []string{"group:carol"}, bob, ErrNotReviewer},
		{"one of several", []string{"user:nobody", "group:ops"}, carol, nil},
		{"requester's uid", []string{"group:dba"}, Approver{Name: "app", Via: ViaUnix, UID: u32(1000), Groups: []string{"dba"}}, ErrSelfApproval},
		{"requester's subject", []string{"group:dba"}, Approver{Name: "d", Via: ViaOIDC, Issuer: "https://id.example", Subject: "dave", Groups: []string{"dba"}}, ErrSelfApproval},
		{"requester's email", []string{"user:dave@example.com"}, Approver{Name: "dave@example.com", Via: ViaOIDC, Subject: "other", Email: "dave@example.com", Groups: []string{"dba"}}, ErrSelfApproval},
		// The same person under another channel: the name Holds would
		// match in user:NAME is the requester's.
		{"requester's subject, approving over the socket as another uid", []string{"user:dave"}, Approver{Name: "dave", Via: ViaUnix, UID: u32(1001), Groups: []string{"dave"}}, ErrSelfApproval},
		{"requester's user name, approving with a token", []string{"user:dmiller"}, Approver{Name: "dmiller", Via: ViaOIDC, Issuer: "https://id.example", Subject: "dmiller", Groups: []string{"dba"}}, ErrSelfApproval},
		// Spelt otherwise: an email's case means nothing, and another
		// issuer may give the same person a subject in capitals.
		{"requester's email in other case", []string{"group:dba"}, Approver{Name: "Dave@Example.com", Via: ViaOIDC, Issuer: "https://other.example", Subject: "x1", Email: "Dave@Example.com", Groups: []string{"dba"}}, ErrSelfApproval},
		{"requester's subject in other case", []string{"group:dba"}, Approver{Name: "DAVE", Via: ViaOIDC, Issuer: "https://other.example", Subject: "DAVE", Groups: []string{"dba"}}, ErrSelfApproval},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			req := deleteReq(time.Minute)
			req.Requester, req.Reviewers = w, c.reviewers
			r := f.request(t, req)
			_, err := f.broker.Decide(context.Background(), r.ID, c.approver, true, "")
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("Decide: %v, want %v", err, c.want)
			}
			got, _ := f.broker.Get(context.Background(), r.ID)
			if (c.want == nil) != (got.State == Approved) {
				t.Fatalf("state %s after %v", got.State, err)
			}
		})
	}
}

func TestExpiry(t *testing.T) {
	f := newFixture(t)
	r := f.request(t, deleteReq(200*time.Millisecond))
	o := recv(t, f.wait(context.Background(), r.ID))
	if o.State != Expired || o.Message() != "request "+r.ID+" expired: no reviewer decided within 200ms" {
		t.Fatalf("outcome %+v: %s", o, o.Message())
	}
	if _, err := f.broker.Decide(context.Background(), r.ID, alice, true, ""); !errors.Is(err, ErrNotPending) {
		t.Fatalf("decision after expiry: %v", err)
	}
	if got := f.events.types(); strings.Join(got, ",") != "requested,expired" {
		t.Fatalf("events %v", got)
	}
}

func TestWaiterGoneCancels(t *testing.T) {
	f := newFixture(t)
	r := f.request(t, deleteReq(time.Minute))
	ctx, cancel := context.WithCancelCause(context.Background())
	ch := f.wait(ctx, r.ID)
	cancel(errors.New("the client disconnected"))
	o := recv(t, ch)
	if o.State != Cancelled || o.Message() != "request "+r.ID+" cancelled: the client disconnected" {
		t.Fatalf("outcome %s", o.Message())
	}
	if _, err := f.broker.Decide(context.Background(), r.ID, alice, true, ""); !errors.Is(err, ErrNotPending) {
		t.Fatalf("decision after cancel: %v", err)
	}
}

// A waiter that stops with the agent leaves its request pending.
func TestWaiterStoppingLeavesPending(t *testing.T) {
	f := newFixture(t)
	r := f.request(t, deleteReq(time.Minute))
	ctx, cancel := context.WithCancelCause(context.Background())
	ch := f.wait(ctx, r.ID)
	cancel(ErrClosed)
	if o := recv(t, ch); o.State != "error: "+ErrClosed.Error() {
		t.Fatalf("outcome %+v", o)
	}
	if got, _ := f.broker.Get(context.Background(), r.ID); got.State != Pending {
		t.Fatalf("state %s", got.State)
	}
}

func TestRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "approvals.db")
	c := &clock{}
	f := open(t, path, c)
	waiting := f.request(t, deleteReq(time.Hour))
	short := f.request(t, deleteReq(time.Second))
	done := f.request(t, deleteReq(time.Hour))
	if _, err := f.broker.Decide(context.Background(), done.ID, alice, false, "no"); err != nil {
		t.Fatal(err)
	}
	// The agent stops: waiters are told, requests stay pending.
	ch := f.wait(context.Background(), waiting.ID)
	f.broker.Close()
	if o := recv(t, ch); o.State != "error: "+ErrClosed.Error() {
		t.Fatalf("Wait at close: %+v", o)
	}
	if _, err := f.broker.Decide(context.Background(), waiting.ID, alice, true, ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("Decide after close: %v", err)
	}
	if r, _ := f.store.Get(context.Background(), waiting.ID); r.State != Pending {
		t.Fatalf("state after close: %s", r.State)
	}
	f.store.Close()

	// The next start, two seconds on: the short one's deadline passed.
	c.advance(2 * time.Second)
	g := open(t, path, c)
	for id, want := range map[string]string{
		waiting.ID: "cancelled: the agent restarted while the request waited; the session that waited for it was cut",
		short.ID:   "expired: no reviewer decided within 1s",
		done.ID:    "denied by alice: no",
	} {
		o, err := g.broker.Wait(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if o.Message() != "request "+id+" "+want {
			t.Errorf("after restart: %s, want %s", o.Message(), want)
		}
	}
	if got := g.events.types(); strings.Join(got, ",") != "cancelled,expired" && strings.Join(got, ",") != "expired,cancelled" {
		t.Fatalf("events at start %v", got)
	}
	list, _ := g.broker.List(context.Background(), Filter{})
	if len(list) != 3 {
		t.Fatalf("%d requests after restart", len(list))
	}
}

func TestWindowGrant(t *testing.T) {
	f := newFixture(t)
	req := deleteReq(time.Minute)
	req.Grant, req.Window = GrantWindow, Duration(10*time.Minute)
	req.Operations = []string{"delete", "update"}
	r := f.request(t, req)
	ch := f.wait(context.Background(), r.ID)
	if _, err := f.broker.Decide(context.Background(), r.ID, bob, true, "migration"); err != nil {
		t.Fatal(err)
	}
	o := recv(t, ch)
	if !o.Approved() || o.GrantExpires.IsZero() {
		t.Fatalf("outcome %+v", o)
	}

	// The same requester, a subset of the operations, another session:
	// covered, no new request.
	windowReq := func() Request {
		r := deleteReq(time.Minute)
		r.Grant, r.Window = GrantWindow, Duration(10*time.Minute)
		return r
	}
	again := windowReq()
	again.SessionID, again.Requester.PID = "s-2", 4242
	got := f.request(t, again)
	if got.ID != r.ID || got.State != Approved {
		t.Fatalf("covered request: %+v", got)
	}
	o, err := f.broker.Wait(context.Background(), got.ID)
	if err != nil || !o.Approved() || !o.Grant || !strings.Contains(o.Message(), "covered by the window grant of request "+r.ID) {
		t.Fatalf("covered outcome %+v %v: %s", o, err, o.Message())
	}
	if ev := f.events.list[len(f.events.list)-1]; ev.Type != EventCovered || ev.Operation.SessionID != "s-2" || ev.Request.ID != r.ID {
		t.Fatalf("covered event %+v", ev)
	}

	// Not covered: more operations, another target, another workload.
	for name, edit := range map[string]func(*Request){
		"more operations":  func(r *Request) { r.Operations = []string{"delete", "ddl"} },
		"another target":   func(r *Request) { r.Target = "billing-db" },
		"another database": func(r *Request) { r.Database = "prod" },
		"another user":     func(r *Request) { r.Requester.UID, r.Requester.User = 1003, "eve" },
		"another token":    func(r *Request) { r.Requester.OIDC = &policy.OIDC{Subject: "eve"} },
	} {
		other := windowReq()
		edit(&other)
		if got := f.request(t, other); got.State != Pending {
			t.Errorf("%s: covered by the grant", name)
		}
	}
	if grants, _ := f.broker.Grants(context.Background()); len(grants) != 1 || grants[0].ID != r.ID {
		t.Fatalf("grants %+v", grants)
	}

	// The window ends: a new request.
	f.clock.advance(10*time.Minute + time.Second)
	if got := f.request(t, windowReq()); got.State != Pending || got.ID == r.ID {
		t.Fatalf("after the window: %+v", got)
	}
	if grants, _ := f.broker.Grants(context.Background()); len(grants) != 0 {
		t.Fatalf("grants after the window %+v", grants)
	}
}

// The rule that approved a window grant reviewing its operation on other
// terms (a reload) ends the grant for good: a reload back to the old terms
// does not bring it back. Another rule deciding the operation (a policy
// that routes some statements elsewhere) is no such change: the grant
// does not cover that one, and stays.
func TestWindowGrantEndsWithItsTerms(t *testing.T) {
	windowReq := func() Request {
		r := deleteReq(time.Minute)
		r.Grant, r.Window = GrantWindow, Duration(10*time.Minute)
		return r
	}
	for name, edit := range map[string]func(*Request){
		"grant: once now": func(r *Request) { r.Grant, r.Window = GrantOnce, 0 },
		"another rule":    func(r *Request) { r.Rule = "strict" },
		"other reviewers": func(r *Request) { r.Reviewers = []string{"group:security"} },
		"a window over":   func(r *Request) { r.Window = Duration(time.Nanosecond) },
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			r := f.request(t, windowReq())
			if _, err := f.broker.Decide(context.Background(), r.ID, bob, true, "migration"); err != nil {
				t.Fatal(err)
			}
			changed := windowReq()
			edit(&changed)
			if got := f.request(t, changed); got.State != Pending {
				t.Fatalf("covered by the grant: %+v", got)
			}
			if name == "another rule" {
				if got := f.request(t, windowReq()); got.ID != r.ID || got.State != Approved {
					t.Fatalf("another rule's decision ended the grant: %+v", got)
				}
				return
			}
			if got := f.request(t, windowReq()); got.State != Pending || got.ID == r.ID {
				t.Fatalf("the grant came back with its terms: %+v", got)
			}
			if grants, _ := f.broker.Grants(context.Background()); len(grants) != 0 {
				t.Fatalf("grants %+v", grants)
			}
			if got, _ := f.broker.Get(context.Background(), r.ID); got.State != Approved || got.GrantExpires == nil || got.GrantExpires.After(f.clock.now()) {
				t.Fatalf("the request after its grant ended: %+v", got)
			}
		})
	}
}

// After a reload the agent has the running grants decided again: one the
// policy no longer gives as approved (denied now, held by other
// reviewers) ends for good; one it still does, or that is left alone,
// stays.
func TestRecheckGrants(t *testing.T) {
	f := newFixture(t)
	grant := func(target string) *Request {
		req := deleteReq(time.Minute)
		req.Target, req.Grant, req.Window = target, GrantWindow, Duration(10*time.Minute)
		r := f.request(t, req)
		if _, err := f.broker.Decide(context.Background(), r.ID, bob, true, "migration"); err != nil {
			t.Fatal(err)
		}
		return r
	}
	denied, other, kept, left := grant("a"), grant("b"), grant("c"), grant("d")
	n, err := f.broker.RecheckGrants(context.Background(), func(g *Request) (policy.Decision, bool) {
		d := policy.Decision{Result: policy.Review, Rule: g.Rule, Reviewers: g.Reviewers, Grant: GrantWindow, Window: 10 * time.Minute}
		switch g.Target {
		case "a":
			d = policy.Decision{Result: policy.Deny}
		case "b":
			d.Reviewers = []string{"group:security"}
		case "d":
			return policy.Decision{}, false
		}
		return d, true
	})
	if err != nil || n != 2 {
		t.Fatalf("RecheckGrants = %d, %v", n, err)
	}
	grants, _ := f.broker.Grants(context.Background())
	var ids []string
	for _, g := range grants {
		ids = append(ids, g.ID)
	}
	slices.Sort(ids)
	want := []string{kept.ID, left.ID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("grants left %v, want %v (ended %s, %s)", ids, want, denied.ID, other.ID)
	}
}

func TestConcurrentDecidersOneWins(t *testing.T) {
	f := newFixture(t)
	r := f.request(t, deleteReq(time.Minute))
	ch := f.wait(context.Background(), r.ID)
	const n = 16
	var wins, lost atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.broker.Decide(context.Background(), r.ID, alice, i%2 == 0, "reason")
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, ErrNotPending):
				lost.Add(1)
			default:
				t.Errorf("Decide: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || lost.Load() != n-1 {
		t.Fatalf("%d decisions won, %d lost", wins.Load(), lost.Load())
	}
	o := recv(t, ch)
	stored, _ := f.broker.Get(context.Background(), r.ID)
	if o.State != stored.State {
		t.Fatalf("waiter saw %s, store says %s", o.State, stored.State)
	}
	decided := 0
	for _, ty := range f.events.types() {
		if ty == Approved || ty == Denied {
			decided++
		}
	}
	if decided != 1 {
		t.Fatalf("%d decision events", decided)
	}
}

func TestGetByPrefix(t *testing.T) {
	f := newFixture(t)
	r := f.request(t, deleteReq(time.Minute))
	got, err := f.broker.Get(context.Background(), r.ID[:8])
	if err != nil || got.ID != r.ID {
		t.Fatalf("by prefix: %v %+v", err, got)
	}
	if _, err := f.broker.Get(context.Background(), "r-"); !errors.Is(err, ErrAmbiguous) && !errors.Is(err, nil) {
		t.Fatalf("short prefix: %v", err)
	}
	f.request(t, deleteReq(time.Minute))
	if _, err := f.broker.Get(context.Background(), "r-"); !errors.Is(err, ErrAmbiguous) {
		t.Fatalf("ambiguous prefix: %v", err)
	}
	if _, err := f.broker.Get(context.Background(), "r-nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	// Decisions take the whole id only.
	if _, err := f.broker.Decide(context.Background(), r.ID[:8], alice, true, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("decide by prefix: %v", err)
	}
}

func TestInvalidRequests(t *testing.T) {
	f := newFixture(t)
	for name, edit := range map[string]func(*Request){
		"no reviewers":   func(r *Request) { r.Reviewers = nil },
		"no operations":  func(r *Request) { r.Operations = nil },
		"window without": func(r *Request) { r.Grant = GrantWindow },
		"unknown grant":  func(r *Request) { r.Grant = "forever" },
		"no target":      func(r *Request) { r.Target = "" },
	} {
		r := deleteReq(time.Minute)
		edit(&r)
		if _, err := f.broker.Request(context.Background(), r); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// One requester may have MaxWaiting requests waiting; past that its new
// ones are refused, and other requesters' are not. So may one home (a
// cgroup), whatever executables and users its requests come from.
func TestWaitingRequestsBoundedPerRequester(t *testing.T) {
	f := newFixture(t)
	for range MaxWaiting {
		f.request(t, deleteReq(time.Minute))
	}
	if _, err := f.broker.Request(context.Background(), deleteReq(time.Minute)); err == nil || !strings.Contains(err.Error(), "already wait for review") {
		t.Fatalf("request past the bound: %v", err)
	}
	other := deleteReq(time.Minute)
	other.Requester.UID, other.Requester.User, other.Requester.CgroupPath = 1003, "eve", "/user.slice/user-1003.slice/session-4.scope"
	if got := f.request(t, other); got.State != Pending {
		t.Fatalf("another requester: %+v", got)
	}
	// Copies of its client under other names, or other users, are other
	// requesters, in the same cgroup: they share its bound.
	for i := range MaxWaiting - 1 {
		copied := other
		copied.Requester.Exe = fmt.Sprintf("/tmp/psql%d", i)
		copied.Requester.UID = uint32(2000 + i)
		f.request(t, copied)
	}
	copied := other
	copied.Requester.Exe = "/tmp/psql-last"
	if _, err := f.broker.Request(context.Background(), copied); err == nil || !strings.Contains(err.Error(), `from cgroup "/user.slice/user-1003.slice/session-4.scope"`) {
		t.Fatalf("a copied client past the bound: %v", err)
	}
	elsewhere := copied
	elsewhere.Requester.CgroupPath = "/system.slice/other.service"
	if got := f.request(t, elsewhere); got.State != Pending {
		t.Fatalf("another cgroup: %+v", got)
	}
}

// The agent names a requester's home by the cgroups only root made: a
// user's own cgroups below a delegated one are one home.
func TestWaitingRequestsBoundedPerHome(t *testing.T) {
	f := newFixture(t)
	f.broker.opts.Home = func(w *policy.Workload) string {
		return strings.SplitAfter(w.CgroupPath, "user@1000.service")[0]
	}
	for i := range MaxWaiting {
		r := deleteReq(time.Minute)
		r.Requester.CgroupPath = fmt.Sprintf("/user.slice/user-1000.slice/user@1000.service/made%d", i)
		f.request(t, r)
	}
	r := deleteReq(time.Minute)
	r.Requester.CgroupPath = "/user.slice/user-1000.slice/user@1000.service/made-last"
	if _, err := f.broker.Request(context.Background(), r); err == nil || !strings.Contains(err.Error(), "already wait for review") {
		t.Fatalf("a new cgroup below the delegated one: %v", err)
	}
}

// Requests made side by side count each other: the bound holds.
func TestWaitingRequestsBoundedConcurrently(t *testing.T) {
	f := newFixture(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	made := 0
	for i := range 4 * MaxWaiting {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := deleteReq(time.Minute)
			r.Requester.Exe = fmt.Sprintf("/tmp/psql%d", i%2)
			if _, err := f.broker.Request(context.Background(), r); err == nil {
				mu.Lock()
				made++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if made != MaxWaiting {
		t.Fatalf("%d requests made side by side from one home, want %d", made, MaxWaiting)
	}
}

// A window runs from the decision, which comes before the request
// expires: a decision time written later (a reviewer writes the status in
// a shared store) does not stretch it.
func TestWindowRunsFromADecisionBeforeExpiry(t *testing.T) {
	created := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	decided := created.Add(time.Minute)
	forged := created.AddDate(100, 0, 0)
	g := &Request{Rule: "r", Reviewers: []string{"group:dba"}, Grant: GrantWindow, Window: Duration(10 * time.Minute),
		Created: created, Expires: created.Add(5 * time.Minute)}
	r := &Request{Rule: "r", Reviewers: []string{"group:dba"}, Grant: GrantWindow, Window: Duration(10 * time.Minute)}
	for _, c := range []struct {
		decided *time.Time
		at      time.Time
		want    bool
	}{
		{&decided, decided.Add(9 * time.Minute), true},
		{&decided, decided.Add(11 * time.Minute), false},
		{&forged, g.Expires.Add(9 * time.Minute), true},
		{&forged, g.Expires.Add(11 * time.Minute), false},
		{&forged, created.AddDate(1, 0, 0), false},
	} {
		g.Decided = c.decided
		if got := stillGranted(g, r, c.at); got != c.want {
			t.Errorf("decided %v, at %v: granted %v, want %v", c.decided, c.at, got, c.want)
		}
	}
}
