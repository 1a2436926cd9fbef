package approval

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corral-dev/corral/policy"
)

// Errors a decision can meet. The admin API maps them to HTTP statuses.
var (
	// ErrNotPending: the request was already decided, expired or cancelled.
	ErrNotPending = errors.New("the request is no longer pending")
	// ErrNotReviewer: the approver holds none of the request's reviewers.
	ErrNotReviewer = errors.New("not a reviewer of this request")
	// ErrSelfApproval: the approver is the requester.
	ErrSelfApproval = errors.New("a requester cannot decide its own request")
	// ErrReasonRequired: a denial without a reason.
	ErrReasonRequired = errors.New("a denial needs a reason")
	// ErrClosed: the broker is stopping.
	ErrClosed = errors.New("approvals are stopping")
	// ErrInvalid: a request that cannot be made (no reviewers, ...).
	ErrInvalid = errors.New("invalid request")
)

// Event types.
const (
	EventRequested = "requested"
	EventApproved  = Approved
	EventDenied    = Denied
	EventExpired   = Expired
	EventCancelled = Cancelled
	// EventCovered: an operation ran under an earlier window grant.
	EventCovered = "covered"
)

// Event is one step of a request, for the audit log and metrics.
type Event struct {
	Type    string
	Time    time.Time
	Request *Request
	// Operation is, for EventCovered, the operation the grant let
	// through (not stored: it made no request of its own).
	Operation *Request
}

// MaxReasonLength bounds a decision's reason.
const MaxReasonLength = 1000

// Options configure a Broker.
type Options struct {
	Log *slog.Logger
	// Events receives every step of every request, in order per request.
	// It must not block for long.
	Events func(Event)
	// Notify announces a request whose rule names a webhook. It must not
	// block; whatever it does, it cannot decide the request.
	Notify func(r *Request)
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Home names where a requester runs, whatever executable and user
	// it runs as: a workload that copies its client under other names,
	// or switches users, is a new requester each time, and still one
	// home, which MaxWaiting bounds too. The agent gives the part of the
	// cgroup path only root could have made (below a delegated one, a
	// user makes cgroups at will); nil: the cgroup path.
	Home func(w *policy.Workload) string
	// DecideOnly makes a broker that only decides requests others made
	// (an approver's tool talking to a shared store): it settles no
	// orphans at start and watches nothing.
	DecideOnly bool
}

// Broker runs the workflow over a Backend. It is safe for concurrent use.
type Broker struct {
	store Backend
	log   *slog.Logger
	opts  Options
	now   func() time.Time

	mu   sync.Mutex
	live map[string]*waiting
	// making counts requests being made, by identity and by homeKey and
	// home, until they are live.
	making map[string]int
	closed bool
	// settling holds the settle calls in flight per request: they run one
	// at a time, so of this broker's own racing settles only the winner
	// wakes the waiter and reports the outcome, and a watched change is
	// not taken for someone else's while this broker is writing it.
	settling map[string]*inflight
	closing  chan struct{}
	stopBg   context.CancelFunc
	bg       sync.WaitGroup

	counts [6]atomic.Uint64 // by event type, see Stats
}

// inflight serialises the settle calls of one request.
type inflight struct {
	mu sync.Mutex
	n  int // calls holding or waiting for mu; guarded by Broker.mu
}

// waiting is a pending request created by this broker.
type waiting struct {
	done  chan struct{} // closed when final is set
	final *Request
	timer *time.Timer
	ident string // the requester's
	home  string // see Options.Home
}

// homeKey keeps homes apart from identities in Broker.making.
const homeKey = "home:"

// home names where a requester runs (see Options.Home).
func (b *Broker) home(w *policy.Workload) string {
	if b.opts.Home != nil {
		return b.opts.Home(w)
	}
	return w.CgroupPath
}

// MaxWaiting bounds the requests one requester, and one home (see
// Options.Home), may have waiting on this agent: a workload opening session
// after session to wait for review would otherwise bury other workloads'
// requests on the reviewers' lists.
const MaxWaiting = 16

// NewBroker returns a broker over store. Requests still pending in it that
// this agent made were made by an agent that is gone, and their sessions
// with it: they are settled now, expired when past their deadline and
// cancelled otherwise. A store others write too (a Watcher) is watched
// until Close, so decisions made elsewhere reach the operations waiting
// here.
func NewBroker(ctx context.Context, store Backend, o Options) (*Broker, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	b := &Broker{store: store, log: o.Log, opts: o, now: o.Now, live: map[string]*waiting{}, making: map[string]int{}, settling: map[string]*inflight{}, closing: make(chan struct{})}
	if b.now == nil {
		b.now = time.Now
	}
	if o.DecideOnly {
		return b, nil
	}
	left, err := store.Orphans(ctx)
	if err != nil {
		return nil, fmt.Errorf("approvals store: %w", err)
	}
	for _, r := range left {
		now := b.now()
		if !now.Before(r.Expires) {
			b.settle(ctx, r, Expired, nil, fmt.Sprintf("no reviewer decided within %v", time.Duration(r.Timeout)))
		} else {
			b.settle(ctx, r, Cancelled, nil, "the agent restarted while the request waited; the session that waited for it was cut")
		}
	}
	if w, ok := store.(Watcher); ok {
		// Not ctx: the watch must outlive the start, and ends with Close.
		wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		b.stopBg = stop
		b.bg.Add(1)
		go func() {
			defer b.bg.Done()
			w.Watch(wctx, b.observe)
		}()
	}
	return b, nil
}

// observe takes a request another party may have settled: the operation
// waiting for it here, if any, is woken with the outcome.
func (b *Broker) observe(r *Request) {
	if r.State == Pending {
		return
	}
	b.mu.Lock()
	if b.settling[r.ID] != nil {
		// settle is writing this one; it reads the outcome back if it
		// lost, and wakes the waiter itself.
		b.mu.Unlock()
		return
	}
	w := b.claimLocked(r)
	b.mu.Unlock()
	if w != nil {
		b.emit(Event{Type: r.State, Time: decidedAt(r, b.now()), Request: r.clone()})
		close(w.done)
	}
}

// claimLocked takes the operation waiting for r, final, off the live
// requests, or returns nil when none waits here (b.mu held). The caller
// emits the event, then closes done: the audit log has the outcome before
// the operation goes on.
func (b *Broker) claimLocked(r *Request) *waiting {
	w := b.live[r.ID]
	if w == nil {
		return nil
	}
	w.timer.Stop()
	w.final = r.clone()
	delete(b.live, r.ID)
	return w
}

func decidedAt(r *Request, now time.Time) time.Time {
	if r.Decided != nil {
		return *r.Decided
	}
	return now
}

// Close stops the broker: every Wait returns ErrClosed at once, leaving
// its request pending (the next start settles it), and no request is
// made or decided any more.
func (b *Broker) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	close(b.closing)
	for _, w := range b.live {
		w.timer.Stop()
	}
	b.mu.Unlock()
	if b.stopBg != nil {
		b.stopBg()
	}
	// The watch calls observe, which takes b.mu: waited for unlocked.
	b.bg.Wait()
}

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return "r-" + hex.EncodeToString(b[:])
}

// Request makes an access request for r (its ID, state, times and
// decision are filled in here) and returns it, pending. When a window
// grant the same requester holds on the target covers r's operations, no
// request is made: the granting request is returned, approved, and Wait
// on it returns at once.
func (b *Broker) Request(ctx context.Context, r Request) (*Request, error) {
	if r.Target == "" || r.Kind == "" || len(r.Operations) == 0 {
		return nil, fmt.Errorf("%w: target, kind and operations are required", ErrInvalid)
	}
	if len(r.Reviewers) == 0 {
		return nil, fmt.Errorf("%w: no reviewers", ErrInvalid)
	}
	switch r.Grant {
	case "":
		r.Grant = GrantOnce
	case GrantOnce:
	case GrantWindow:
		if r.Window <= 0 {
			return nil, fmt.Errorf("%w: a window grant needs a window", ErrInvalid)
		}
	default:
		return nil, fmt.Errorf("%w: grant %q", ErrInvalid, r.Grant)
	}
	if r.Grant == GrantOnce {
		r.Window = 0
	}
	if r.Timeout <= 0 {
		r.Timeout = Duration(policy.DefaultReviewTimeout)
	}
	r.Timeout = min(r.Timeout, Duration(policy.MaxReviewTimeout))
	ident := identity(&r.Requester)

	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}

	now := b.now()
	held, err := b.store.HeldGrants(ctx, ident, r.Target, now)
	if err != nil {
		return nil, fmt.Errorf("approvals store: %w", err)
	}
	for _, g := range held {
		// An SSH grant covers the command line it approved, not every
		// exec: one approved restart must not let any reviewed command run.
		// And a grant covers only what the policy still reviews the way it
		// did when it was approved: a reload to grant: once, to another
		// rule or other reviewers, or to a shorter window ends it.
		// Nor does a grant on one database of a server cover another.
		if !covers(g.Operations, r.Operations) || g.Kind != r.Kind || g.Database != r.Database || r.Protocol == "ssh" && g.Text != r.Text {
			continue
		}
		if stillGranted(g, &r, now) {
			op := r.clone()
			op.State = Approved
			b.emit(Event{Type: EventCovered, Time: now, Request: g, Operation: op})
			return g.clone(), nil
		}
		if g.Rule == r.Rule {
			// The rule that granted it grants otherwise now (a reload):
			// ended for good, so that a reload back to the old terms
			// does not bring back what the policy took away. (Another
			// rule deciding this operation says nothing of the grant.)
			if err := b.endGrant(ctx, g, now); err != nil {
				return nil, err
			}
		}
	}

	home := b.home(&r.Requester)
	// Counted and reserved at once: requests made side by side would
	// otherwise each see the others not yet waiting.
	b.mu.Lock()
	waitingNow, atHome := b.making[ident], b.making[homeKey+home]
	for _, w := range b.live {
		if w.final != nil {
			continue
		}
		if w.ident == ident {
			waitingNow++
		}
		if w.home == home {
			atHome++
		}
	}
	if waitingNow < MaxWaiting && atHome < MaxWaiting {
		b.making[ident]++
		b.making[homeKey+home]++
	}
	b.mu.Unlock()
	if waitingNow >= MaxWaiting {
		return nil, fmt.Errorf("%w: %d requests of this workload already wait for review; let them be decided first", ErrInvalid, waitingNow)
	}
	if atHome >= MaxWaiting {
		return nil, fmt.Errorf("%w: %d requests from cgroup %q already wait for review; let them be decided first", ErrInvalid, atHome, home)
	}

	r.ID, r.State = newID(), Pending
	r.Created, r.Expires = now, now.Add(time.Duration(r.Timeout))
	r.Decided, r.DecidedBy, r.DecisionReason, r.GrantExpires = nil, nil, "", nil
	err = b.store.Create(ctx, &r, ident)
	w := &waiting{done: make(chan struct{}), ident: ident, home: home}
	id := r.ID
	b.mu.Lock()
	for _, k := range []string{ident, homeKey + home} {
		if b.making[k]--; b.making[k] == 0 {
			delete(b.making, k)
		}
	}
	if err == nil {
		b.live[id] = w
		w.timer = time.AfterFunc(time.Until(r.Expires), func() { b.expire(id) })
	}
	b.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("approvals store: %w", err)
	}
	b.emit(Event{Type: EventRequested, Time: now, Request: r.clone()})
	if r.Webhook != "" && b.opts.Notify != nil {
		b.opts.Notify(r.clone())
	}
	return r.clone(), nil
}

// RecheckGrants ends, for good, the running window grants the policy no
// longer gives on the terms they were approved under; decide returns the
// policy's decision now for a grant's operation (the agent calls this
// after a reload; false leaves a grant alone). It returns how many it
// ended.
func (b *Broker) RecheckGrants(ctx context.Context, decide func(g *Request) (policy.Decision, bool)) (int, error) {
	now := b.now()
	grants, err := b.store.Grants(ctx, now)
	if err != nil {
		return 0, fmt.Errorf("approvals store: %w", err)
	}
	ended := 0
	for _, g := range grants {
		d, ok := decide(g)
		if !ok {
			continue
		}
		r := Request{Rule: d.Rule, Reviewers: d.Reviewers, Grant: d.Grant, Window: Duration(d.Window)}
		if d.Result == policy.Review && stillGranted(g, &r, now) {
			continue
		}
		if err := b.endGrant(ctx, g, now); err != nil {
			return ended, err
		}
		ended++
	}
	return ended, nil
}

func (b *Broker) endGrant(ctx context.Context, g *Request, now time.Time) error {
	if err := b.store.EndGrant(ctx, g.ID, now); err != nil {
		return fmt.Errorf("approvals store: ending the grant of %s: %w", g.ID, err)
	}
	b.log.Info("a window grant ended: the policy no longer grants it as it was approved", "request", g.ID, "rule", g.Rule)
	return nil
}

// stillGranted reports whether the current decision, r, would grant what
// the held grant g was approved under. The window runs from the decision,
// and a decision comes before the request expires: a decision time a
// reviewer wrote later than that (in a shared store, the status is theirs
// to write) does not stretch the window.
func stillGranted(g, r *Request, now time.Time) bool {
	if r.Grant != GrantWindow || g.Rule != r.Rule || !sameSet(g.Reviewers, r.Reviewers) {
		return false
	}
	if g.Decided == nil {
		return false
	}
	decided := *g.Decided
	if decided.After(g.Expires) {
		decided = g.Expires
	}
	return now.Before(decided.Add(time.Duration(r.Window)))
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

func covers(granted, ops []string) bool {
	for _, op := range ops {
		if !slices.Contains(granted, op) && !slices.Contains(granted, policy.Wildcard) {
			return false
		}
	}
	return true
}

// Wait blocks until request id is decided, expires, or ctx ends. When ctx
// ends first, the request is cancelled, with context.Cause(ctx) as the
// reason, unless that cause is ErrClosed: the waiter is stopping with the
// agent, and the request stays pending (the next start settles it). A
// request already decided returns its outcome at once (a window grant
// Request returned included). ErrClosed: the broker or the waiter stopped
// first, and the request stays pending.
func (b *Broker) Wait(ctx context.Context, id string) (Outcome, error) {
	b.mu.Lock()
	w := b.live[id]
	b.mu.Unlock()
	if w == nil {
		r, err := b.store.Get(ctx, id)
		if err != nil {
			return Outcome{}, err
		}
		if r.ID != id {
			return Outcome{}, ErrNotFound
		}
		if r.State == Pending {
			return Outcome{}, fmt.Errorf("request %s is not waited for by this agent", id)
		}
		o := outcomeOf(r)
		o.Grant = r.GrantExpires != nil
		return o, nil
	}
	select {
	case <-w.done:
		return outcomeOf(w.final), nil
	case <-b.closing:
		return Outcome{}, ErrClosed
	case <-ctx.Done():
	}
	reason := "the operation stopped waiting"
	cause := context.Cause(ctx)
	if errors.Is(cause, ErrClosed) {
		return Outcome{}, ErrClosed
	}
	if cause != nil && !errors.Is(cause, context.Canceled) {
		reason = cause.Error()
	}
	b.cancel(id, reason)
	select {
	case <-w.done:
		return outcomeOf(w.final), nil
	case <-b.closing:
		return Outcome{}, ErrClosed
	}
}

// Cancel cancels a pending request for reason; it is how a waiter that
// gave up before waiting (its client went away) lets go.
func (b *Broker) Cancel(id, reason string) { b.cancel(id, reason) }

func (b *Broker) cancel(id, reason string) {
	r, err := b.store.Get(context.Background(), id)
	if err != nil || r.ID != id || r.State != Pending {
		return
	}
	b.settle(context.Background(), r, Cancelled, nil, reason)
}

func (b *Broker) expire(id string) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return
	}
	r, err := b.store.Get(context.Background(), id)
	if err != nil || r.ID != id || r.State != Pending {
		return
	}
	b.settle(context.Background(), r, Expired, nil, fmt.Sprintf("no reviewer decided within %v", time.Duration(r.Timeout)))
}

// settle moves r from pending to state, and reports whether it did (false:
// something else settled it first).
func (b *Broker) settle(ctx context.Context, r *Request, state string, by *Approver, reason string) (*Request, bool, error) {
	now := b.now()
	f := r.clone()
	f.State, f.Decided, f.DecidedBy, f.DecisionReason = state, &now, by, reason
	if state == Approved && f.Grant == GrantWindow {
		until := now.Add(time.Duration(f.Window))
		f.GrantExpires = &until
	}
	b.mu.Lock()
	in := b.settling[r.ID]
	if in == nil {
		in = &inflight{}
		b.settling[r.ID] = in
	}
	in.n++
	b.mu.Unlock()
	in.mu.Lock()
	defer func() {
		in.mu.Unlock()
		b.mu.Lock()
		if in.n--; in.n == 0 {
			delete(b.settling, r.ID)
		}
		b.mu.Unlock()
	}()
	ok, err := b.store.Finish(ctx, f)
	if err != nil {
		b.log.Error("approvals store: a request could not be settled", "request", r.ID, "state", state, "err", err)
		return nil, false, fmt.Errorf("approvals store: %w", err)
	}
	if !ok {
		// Whoever came first may be elsewhere, and its change was passed
		// over by observe while this ran: the waiter learns it here.
		if cur, err := b.store.Get(ctx, r.ID); err == nil && cur.ID == r.ID && cur.State != Pending {
			b.mu.Lock()
			w := b.claimLocked(cur)
			b.mu.Unlock()
			if w != nil {
				b.emit(Event{Type: cur.State, Time: decidedAt(cur, now), Request: cur.clone()})
				close(w.done)
			}
		}
		return nil, false, nil
	}
	b.mu.Lock()
	w := b.claimLocked(f)
	b.mu.Unlock()
	b.emit(Event{Type: state, Time: now, Request: f.clone()})
	if w != nil {
		close(w.done)
	}
	return f, true, nil
}

// Decide approves or denies request id as approver, for reason (required
// to deny). It returns the decided request. Errors: ErrNotFound,
// ErrNotPending, ErrSelfApproval, ErrNotReviewer, ErrReasonRequired (each
// wrapped with the details), ErrClosed, or the store's.
func (b *Broker) Decide(ctx context.Context, id string, approver Approver, approve bool, reason string) (*Request, error) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	reason = strings.TrimSpace(reason)
	if len(reason) > MaxReasonLength {
		return nil, fmt.Errorf("%w: the reason is longer than %d bytes", ErrInvalid, MaxReasonLength)
	}
	r, err := b.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.ID != id {
		return nil, ErrNotFound
	}
	if r.State == Pending && !b.now().Before(r.Expires) {
		b.expire(id)
		if r, err = b.store.Get(ctx, id); err != nil {
			return nil, err
		}
	}
	if r.State != Pending {
		return nil, notPending(r)
	}
	if approver.IsRequester(r) {
		return nil, fmt.Errorf("%w: %s made request %s", ErrSelfApproval, approver.Name, r.ID)
	}
	if !approver.Holds(r.Reviewers) {
		return nil, fmt.Errorf("%w: %s is none of %s", ErrNotReviewer, approver.Name, strings.Join(r.Reviewers, ", "))
	}
	if !approve && reason == "" {
		return nil, ErrReasonRequired
	}
	state := Denied
	if approve {
		state = Approved
	}
	a := approver
	a.Groups = slices.Clone(a.Groups)
	f, ok, err := b.settle(ctx, r, state, &a, reason)
	if err != nil {
		return nil, err
	}
	if !ok {
		// Another decision, the expiry or a cancellation came first.
		if r, err = b.store.Get(ctx, id); err != nil {
			return nil, err
		}
		return nil, notPending(r)
	}
	return f, nil
}

func notPending(r *Request) error {
	switch {
	case r.DecidedBy != nil:
		return fmt.Errorf("%w: request %s was already %s by %s", ErrNotPending, r.ID, r.State, r.DecidedBy.Name)
	case r.DecisionReason != "":
		return fmt.Errorf("%w: request %s is %s (%s)", ErrNotPending, r.ID, r.State, r.DecisionReason)
	}
	return fmt.Errorf("%w: request %s is %s", ErrNotPending, r.ID, r.State)
}

// Get returns request id (or the only one whose id starts with it).
func (b *Broker) Get(ctx context.Context, id string) (*Request, error) { return b.store.Get(ctx, id) }

// List returns requests, newest first.
func (b *Broker) List(ctx context.Context, f Filter) ([]*Request, error) { return b.store.List(ctx, f) }

// Grants returns the window grants running now.
func (b *Broker) Grants(ctx context.Context) ([]*Request, error) {
	return b.store.Grants(ctx, b.now())
}

func (b *Broker) emit(e Event) {
	if i := slices.Index(eventTypes, e.Type); i >= 0 {
		b.counts[i].Add(1)
	}
	if b.opts.Events != nil {
		b.opts.Events(e)
	}
}

var eventTypes = []string{EventRequested, EventApproved, EventDenied, EventExpired, EventCancelled, EventCovered}

// Stats counts requests by what happened to them since the broker started.
type Stats struct {
	Requested, Approved, Denied, Expired, Cancelled, Covered uint64
	// Pending is the number waiting now.
	Pending int
}

// Stats returns the broker's counters, for metrics.
func (b *Broker) Stats() Stats {
	b.mu.Lock()
	n := len(b.live)
	b.mu.Unlock()
	return Stats{
		Requested: b.counts[0].Load(), Approved: b.counts[1].Load(), Denied: b.counts[2].Load(),
		Expired: b.counts[3].Load(), Cancelled: b.counts[4].Load(), Covered: b.counts[5].Load(),
		Pending: n,
	}
}
