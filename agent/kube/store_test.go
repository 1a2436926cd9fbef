package kube

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/corral-dev/corral/policy"
	"github.com/corral-dev/corral/policy/approval"
)

const ns = "corral-system"

// cluster is a fake API server holding AccessRequests. The fake tracker
// neither drops the status of a created object nor checks resourceVersions
// on update; the reactors make it do both, as the API server does, so the
// stores' optimistic concurrency is exercised for real.
type cluster struct {
	dyn *dynamicfake.FakeDynamicClient
	rv  int64 // guarded by the fake's lock, which reactors run under
	// statusHook, when set, sees each status write first. (Reactors can
	// only be added before the clients are in use.)
	statusHook atomic.Pointer[k8stesting.ReactionFunc]
}

func newCluster(t *testing.T) *cluster {
	c := &cluster{dyn: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), ListKinds)}
	c.dyn.PrependReactor("create", "accessrequests", func(a k8stesting.Action) (bool, runtime.Object, error) {
		u := a.(k8stesting.CreateAction).GetObject().(*unstructured.Unstructured)
		delete(u.Object, "status")
		u.SetResourceVersion(c.next())
		return false, nil, nil
	})
	c.dyn.PrependReactor("update", "accessrequests", func(a k8stesting.Action) (bool, runtime.Object, error) {
		u := a.(k8stesting.UpdateAction).GetObject().(*unstructured.Unstructured)
		cur, err := c.dyn.Tracker().Get(AccessRequests, u.GetNamespace(), u.GetName())
		if err != nil {
			return true, nil, err
		}
		if cur.(*unstructured.Unstructured).GetResourceVersion() != u.GetResourceVersion() {
			return true, nil, apierrors.NewConflict(AccessRequests.GroupResource(), u.GetName(), errors.New("the object has been modified"))
		}
		u.SetResourceVersion(c.next())
		return false, nil, nil
	})
	c.dyn.PrependReactor("update", "accessrequests", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if h := c.statusHook.Load(); h != nil && a.GetSubresource() == "status" {
			return (*h)(a)
		}
		return false, nil, nil
	})
	return c
}

func (c *cluster) onStatusWrite(h k8stesting.ReactionFunc) { c.statusHook.Store(&h) }

func (c *cluster) next() string { c.rv++; return strconv.FormatInt(c.rv, 10) }

// agent is one node's broker over the cluster's store.
type agent struct {
	store  *Store
	broker *approval.Broker
}

func (c *cluster) agent(t *testing.T, node string) *agent {
	t.Helper()
	s := NewStore(c.dyn, ns, node, nil)
	b, err := approval.NewBroker(context.Background(), s, approval.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return &agent{store: s, broker: b}
}

// approver is a person running the CLI with a kubeconfig: the fake
// clientset answers the SelfSubjectReview with user and groups.
func (c *cluster) approver(user string, groups ...string) *Cluster {
	kc := kubefake.NewClientset()
	kc.PrependReactor("create", "selfsubjectreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, &authv1.SelfSubjectReview{Status: authv1.SelfSubjectReviewStatus{UserInfo: authv1.UserInfo{Username: user, Groups: groups}}}, nil
	})
	return &Cluster{Dynamic: c.dyn, Kube: kc, Namespace: ns}
}

var migrator = policy.Workload{
	Exe: "/app/migrate", UID: 1000, CgroupPath: "/kubepods.slice/x",
	Pod: policy.Pod{UID: "1b2c", Namespace: "etl", Name: "migrator-7d9f", ServiceAccount: "migrator"},
}

func deleteReq(timeout time.Duration) approval.Request {
	return approval.Request{
		Requester: migrator, SessionID: "s-1", Target: "orders-db", Protocol: "postgres",
		Kind: policy.KindSQL, Operations: []string{"delete"}, Text: "DELETE FROM orders",
		Reason: `delete needs review under rule "etl/etl-jobs"`, Rule: "etl/etl-jobs", Reviewers: []string{"group:dba", "user:carol"},
		Timeout: approval.Duration(timeout),
	}
}

func (a *agent) request(t *testing.T, r approval.Request) *approval.Request {
	t.Helper()
	got, err := a.broker.Request(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func (a *agent) wait(id string) <-chan approval.Outcome {
	ch := make(chan approval.Outcome, 1)
	go func() {
		o, err := a.broker.Wait(context.Background(), id)
		if err != nil {
			o = approval.Outcome{ID: id, State: "error: " + err.Error()}
		}
		ch <- o
	}()
	return ch
}

func recv(t *testing.T, ch <-chan approval.Outcome) approval.Outcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(20 * time.Second):
		t.Fatal("the waiting operation was not woken")
		return approval.Outcome{}
	}
}

func (c *cluster) object(t *testing.T, id string) *AccessRequest {
	t.Helper()
	u, err := c.dyn.Resource(AccessRequests).Namespace(ns).Get(context.Background(), id, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var o AccessRequest
	if err := fromUnstructured(u.Object, &o); err != nil {
		t.Fatal(err)
	}
	return &o
}

// An operation held on node A is approved by a person through the CLI,
// and by the agent of node B: the waiter on A learns of each through its
// watch.
func TestDecisionsMadeElsewhereWakeTheWaiter(t *testing.T) {
	c := newCluster(t)
	a := c.agent(t, "node-a")
	b := c.agent(t, "node-b")

	sent := deleteReq(time.Hour)
	sent.Database, sent.Statement = "orders", "DELETE FROM orders WHERE id = 12"
	r := a.request(t, sent)
	o := c.object(t, r.ID)
	if o.Spec.Node != "node-a" || o.Labels[LabelNode] != "node-a" || o.Labels[LabelTarget] != "orders-db" || o.Status.State != "" {
		t.Fatalf("stored object: %+v", o)
	}
	if got, err := b.store.Get(context.Background(), r.ID); err != nil || got.Database != "orders" || got.Statement != sent.Statement {
		t.Fatalf("read back on node B: %+v %v", got, err)
	}
	waiting := a.wait(r.ID)
	got, err := c.approver("alice", "dba").Decide(context.Background(), r.ID[:8], true, "looks fine")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != approval.Approved || got.DecidedBy.Name != "alice" || got.DecidedBy.Via != ViaKubernetes {
		t.Fatalf("decided: %+v", got)
	}
	out := recv(t, waiting)
	if !out.Approved() || out.By != "alice" || out.Reason != "looks fine" {
		t.Fatalf("outcome on node A: %+v", out)
	}
	if st := c.object(t, r.ID).Status; st.State != approval.Approved || st.DecidedBy.Name != "alice" || st.Decided == nil {
		t.Fatalf("status: %+v", st)
	}

	// Node B's agent (its admin API, over its broker) decides A's request.
	r2 := a.request(t, deleteReq(time.Hour))
	waiting = a.wait(r2.ID)
	carol := approval.Approver{Name: "carol", Via: approval.ViaUnix, UID: new(uint32(2000)), Groups: []string{"ops"}}
	if _, err := b.broker.Decide(context.Background(), r2.ID, carol, false, "not now"); err != nil {
		t.Fatal(err)
	}
	if out := recv(t, waiting); out.State != approval.Denied || out.By != "carol" || out.Reason != "not now" {
		t.Fatalf("outcome on node A: %+v", out)
	}
	// B's start left A's pending requests alone, and A's restart settles
	// only its own.
	r3 := a.request(t, deleteReq(time.Hour))
	c.agent(t, "node-c")
	if got, _ := a.store.Get(context.Background(), r3.ID); got.State != approval.Pending {
		t.Fatalf("another node's start settled A's request: %s", got.State)
	}
	a.broker.Close()
	c.agent(t, "node-a")
	if got, _ := a.store.Get(context.Background(), r3.ID); got.State != approval.Cancelled {
		t.Fatalf("A's restart left its orphan %s", got.State)
	}
}

func TestClusterApproverRules(t *testing.T) {
	c := newCluster(t)
	a := c.agent(t, "node-a")
	r := a.request(t, deleteReq(time.Hour))
	ctx := context.Background()

	if _, err := c.approver("dave", "devs").Decide(ctx, r.ID, true, ""); !errors.Is(err, approval.ErrNotReviewer) {
		t.Fatalf("not a reviewer: %v", err)
	}
	// The pod's own service account, even in the reviewers' group.
	if _, err := c.approver("system:serviceaccount:etl:migrator", "dba").Decide(ctx, r.ID, true, ""); !errors.Is(err, approval.ErrSelfApproval) {
		t.Fatalf("self approval: %v", err)
	}
	if _, err := c.approver("carol").Decide(ctx, r.ID, false, " "); !errors.Is(err, approval.ErrReasonRequired) {
		t.Fatalf("deny without reason: %v", err)
	}
	if _, err := c.approver("carol").Decide(ctx, "r-nope", true, ""); !errors.Is(err, approval.ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	list, err := c.approver("carol").List(ctx, approval.Filter{State: approval.Pending})
	if err != nil || len(list) != 1 || list[0].ID != r.ID {
		t.Fatalf("list: %v %v", list, err)
	}
}

// A conflict on the status write is met by reading the request again: a
// conflict caused by anything but a decision is retried, and one caused by
// a decision loses to it, with an error naming who won.
func TestConflicts(t *testing.T) {
	c := newCluster(t)
	a := c.agent(t, "node-a")
	ctx := context.Background()

	var once sync.Once
	conflicts := 0
	c.onStatusWrite(func(act k8stesting.Action) (bool, runtime.Object, error) {
		handled := false
		once.Do(func() { handled = true; conflicts++ })
		if handled {
			return true, nil, apierrors.NewConflict(AccessRequests.GroupResource(), "x", errors.New("the object has been modified"))
		}
		return false, nil, nil
	})
	r := a.request(t, deleteReq(time.Hour))
	waiting := a.wait(r.ID)
	if _, err := c.approver("alice", "dba").Decide(ctx, r.ID, true, ""); err != nil {
		t.Fatalf("a conflict once should be retried: %v", err)
	}
	if conflicts != 1 {
		t.Fatalf("conflicts: %d", conflicts)
	}
	if out := recv(t, waiting); !out.Approved() {
		t.Fatalf("outcome: %+v", out)
	}

	// Bob's decision lands between alice's read and alice's write.
	r2 := a.request(t, deleteReq(time.Hour))
	waiting = a.wait(r2.ID)
	var race sync.Once
	c.onStatusWrite(func(act k8stesting.Action) (bool, runtime.Object, error) {
		handled := false
		race.Do(func() {
			handled = true
			cur, _ := c.dyn.Tracker().Get(AccessRequests, ns, r2.ID)
			u := cur.(*unstructured.Unstructured).DeepCopy()
			now := time.Now()
			st, _ := toUnstructured(AccessRequestStatus{State: approval.Approved, DecidedBy: &approval.Approver{Name: "bob", Via: ViaKubernetes}, Decided: &now})
			u.Object["status"] = st
			u.SetResourceVersion(c.next())
			if err := c.dyn.Tracker().Update(AccessRequests, u, ns); err != nil {
				t.Error(err)
			}
		})
		if handled {
			return true, nil, apierrors.NewConflict(AccessRequests.GroupResource(), r2.ID, errors.New("the object has been modified"))
		}
		return false, nil, nil
	})
	_, err := c.approver("alice", "dba").Decide(ctx, r2.ID, false, "no")
	if !errors.Is(err, approval.ErrNotPending) || !strings.Contains(err.Error(), "already approved by bob") {
		t.Fatalf("the loser should hear who won: %v", err)
	}
	if out := recv(t, waiting); !out.Approved() || out.By != "bob" {
		t.Fatalf("outcome: %+v", out)
	}
}

// Two approvers racing on the same requests: exactly one wins each.
func TestRacingApproversOneWins(t *testing.T) {
	c := newCluster(t)
	a := c.agent(t, "node-a")
	alice, carol := c.approver("alice", "dba"), c.approver("carol")
	for range 5 {
		r := a.request(t, deleteReq(time.Hour))
		waiting := a.wait(r.ID)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, who := range []*Cluster{alice, carol} {
			wg.Go(func() { _, errs[i] = who.Decide(context.Background(), r.ID, i == 0, "race") })
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, approval.ErrNotPending) || !strings.Contains(err.Error(), "already"):
				t.Fatalf("the loser's error: %v", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d approvers won: %v", won, errs)
		}
		out := recv(t, waiting)
		if st := c.object(t, r.ID).Status; st.State != out.State || st.DecidedBy.Name != out.By {
			t.Fatalf("the waiter saw %s by %s, the cluster holds %s by %s", out.State, out.By, st.State, st.DecidedBy.Name)
		}
	}
}

// The expiry and an approval race: the request ends one way, and the
// waiter, the approver and the cluster agree on which.
func TestExpiryRacesApproval(t *testing.T) {
	c := newCluster(t)
	a := c.agent(t, "node-a")
	alice := c.approver("alice", "dba")
	for range 10 {
		r := a.request(t, deleteReq(time.Millisecond))
		waiting := a.wait(r.ID)
		_, err := alice.Decide(context.Background(), r.ID, true, "")
		out := recv(t, waiting)
		st := c.object(t, r.ID).Status.State
		switch {
		case err == nil && out.Approved() && st == approval.Approved:
		case errors.Is(err, approval.ErrNotPending) && out.State == approval.Expired && st == approval.Expired:
		default:
			t.Fatalf("decide: %v; waiter: %s; cluster: %s", err, out.State, st)
		}
	}
}

func TestDeniedStaysDenied(t *testing.T) {
	c := newCluster(t)
	a := c.agent(t, "node-a")
	ctx := context.Background()
	r := a.request(t, deleteReq(time.Hour))
	waiting := a.wait(r.ID)
	if _, err := c.approver("alice", "dba").Decide(ctx, r.ID, false, "never on Fridays"); err != nil {
		t.Fatal(err)
	}
	if out := recv(t, waiting); out.State != approval.Denied {
		t.Fatalf("outcome: %+v", out)
	}
	_, err := c.approver("carol").Decide(ctx, r.ID, true, "")
	if !errors.Is(err, approval.ErrNotPending) || !strings.Contains(err.Error(), "already denied by alice") {
		t.Fatalf("approving a denied request: %v", err)
	}
	// Nor does any store write turn it: not the agent's expiry, not a
	// restart.
	f, _ := a.store.Get(ctx, r.ID)
	f.State = approval.Expired
	if ok, err := a.store.Finish(ctx, f); ok || err != nil {
		t.Fatalf("finish on a denied request: %v %v", ok, err)
	}
	a.broker.Close()
	c.agent(t, "node-a")
	if got, _ := a.store.Get(ctx, r.ID); got.State != approval.Denied || got.DecidedBy.Name != "alice" || got.DecisionReason != "never on Fridays" {
		t.Fatalf("after all that: %+v", got)
	}
}

// A window grant approved on one node covers the requester on another.
func TestWindowGrantAcrossNodes(t *testing.T) {
	c := newCluster(t)
	a, b := c.agent(t, "node-a"), c.agent(t, "node-b")
	req := deleteReq(time.Hour)
	req.Grant, req.Window = approval.GrantWindow, approval.Duration(30*time.Minute)
	r := a.request(t, req)
	waiting := a.wait(r.ID)
	if _, err := c.approver("alice", "dba").Decide(context.Background(), r.ID, true, ""); err != nil {
		t.Fatal(err)
	}
	recv(t, waiting)
	// The same policy decides on node B: a window grant of the same rule.
	again := deleteReq(time.Hour)
	again.Grant, again.Window = approval.GrantWindow, approval.Duration(30*time.Minute)
	g := b.request(t, again)
	if g.ID != r.ID || g.State != approval.Approved || g.GrantExpires == nil {
		t.Fatalf("node B made a new request instead of using the grant: %+v", g)
	}
	grants, err := b.broker.Grants(context.Background())
	if err != nil || len(grants) != 1 {
		t.Fatalf("grants: %v %v", grants, err)
	}

	// A reload on node B to grant: once ends the grant in the cluster,
	// for node A too, and for good.
	once := deleteReq(time.Hour)
	if g := b.request(t, once); g.State != approval.Pending {
		t.Fatalf("covered under grant: once: %+v", g)
	}
	if g := a.request(t, again); g.ID == r.ID || g.State != approval.Pending {
		t.Fatalf("the grant came back on node A: %+v", g)
	}
	if grants, err := a.broker.Grants(context.Background()); err != nil || len(grants) != 0 {
		t.Fatalf("grants after the grant ended: %v %v", grants, err)
	}
}

func TestSecrets(t *testing.T) {
	kc := kubefake.NewClientset(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: "orders"},
		Data:       map[string][]byte{"password": []byte("s3cret\n")},
	})
	s := Secrets{Client: kc}
	if v, err := s.ReadSecret(context.Background(), "db", "orders", "password"); err != nil || v != "s3cret" {
		t.Fatalf("read: %q %v", v, err)
	}
	if _, err := s.ReadSecret(context.Background(), "db", "orders", "user"); err == nil || !strings.Contains(err.Error(), `no key "user"`) {
		t.Fatalf("missing key: %v", err)
	}
	if _, err := s.ReadSecret(context.Background(), "db", "nope", "password"); err == nil {
		t.Fatal("missing secret read")
	}
}
