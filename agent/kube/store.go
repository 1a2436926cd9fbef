package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"

	"github.com/corral-dev/corral/policy/approval"
)

// Labels of an AccessRequest, so an agent lists only its own requests
// and a grant is found without listing every request.
const (
	LabelNode     = "corral.dev/node"
	LabelTarget   = "corral.dev/target"
	LabelIdentity = "corral.dev/identity"
)

// ViaKubernetes is Approver.Via for an approver authenticated by the API
// server (the user of a kubeconfig).
const ViaKubernetes = "kubernetes"

// finishAttempts bounds how often a status write is tried again after a
// conflict: each retry reads the request afresh, and a conflict that is
// not another decision (a label edit) is rare.
const finishAttempts = 8

// Store keeps access requests as AccessRequest resources in one namespace.
// It implements approval.Backend and approval.Watcher.
type Store struct {
	client dynamic.Interface
	ns     string
	node   string
	log    *slog.Logger
}

var (
	_ approval.Backend = (*Store)(nil)
	_ approval.Watcher = (*Store)(nil)
)

// NewStore returns a store over the AccessRequests of namespace. node is
// the agent's node: its requests carry it, and only they are its orphans
// and are watched. An approver's store has no node.
func NewStore(client dynamic.Interface, namespace, node string, log *slog.Logger) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{client: client, ns: namespace, node: node, log: log}
}

func (s *Store) res() dynamic.ResourceInterface {
	return s.client.Resource(AccessRequests).Namespace(s.ns)
}

// labelValue makes s a label value: itself when it is one, else a hash
// (a node name may be longer than a label value can be).
func labelValue(s string) string {
	if len(validation.IsValidLabelValue(s)) == 0 {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return "h-" + hex.EncodeToString(sum[:])[:60]
}

// identityLabel is the identity key cut to a label's length; 252 bits of
// a hash still tell requesters apart.
func identityLabel(ident string) string { return labelValue(ident[:min(len(ident), 63)]) }

// Object returns r as the AccessRequest an agent on node creates.
func Object(r *approval.Request, ident, node string) *AccessRequest {
	o := &AccessRequest{
		TypeMeta: metav1.TypeMeta{APIVersion: GroupVersion.String(), Kind: "AccessRequest"},
		ObjectMeta: metav1.ObjectMeta{
			Name:              r.ID,
			CreationTimestamp: metav1.NewTime(r.Created),
			Labels: map[string]string{
				LabelNode:     labelValue(node),
				LabelTarget:   labelValue(r.Target),
				LabelIdentity: identityLabel(ident),
			},
		},
		Spec: AccessRequestSpec{
			Requester: r.Requester, Node: node, SessionID: r.SessionID, Target: r.Target, Protocol: r.Protocol, Database: r.Database,
			Kind: r.Kind, Operations: r.Operations, Text: r.Text, Statement: r.Statement, Reason: r.Reason, Rule: r.Rule,
			Reviewers: r.Reviewers, Grant: r.Grant, Timeout: time.Duration(r.Timeout).String(), Expires: r.Expires,
		},
		Status: statusOf(r),
	}
	if r.Window > 0 {
		o.Spec.Window = time.Duration(r.Window).String()
	}
	return o
}

func statusOf(r *approval.Request) AccessRequestStatus {
	return AccessRequestStatus{State: r.State, DecidedBy: r.DecidedBy, Reason: r.DecisionReason, Decided: r.Decided, GrantExpires: r.GrantExpires}
}

// Request returns the access request o holds.
func Request(o *AccessRequest) (*approval.Request, error) {
	sp, st := &o.Spec, &o.Status
	r := &approval.Request{
		ID: o.Name, State: st.State, Requester: sp.Requester, SessionID: sp.SessionID, Target: sp.Target,
		Protocol: sp.Protocol, Database: sp.Database, Kind: sp.Kind, Operations: sp.Operations, Text: sp.Text, Statement: sp.Statement, Reason: sp.Reason,
		Rule: sp.Rule, Reviewers: sp.Reviewers, Grant: sp.Grant, Created: o.CreationTimestamp.Time, Expires: sp.Expires,
		Decided: st.Decided, DecidedBy: st.DecidedBy, DecisionReason: st.Reason, GrantExpires: st.GrantExpires,
	}
	if r.State == "" {
		r.State = approval.Pending
	}
	for _, d := range []struct {
		field, s string
		to       *approval.Duration
	}{{"spec.timeout", sp.Timeout, &r.Timeout}, {"spec.window", sp.Window, &r.Window}} {
		if d.s == "" {
			continue
		}
		v, err := time.ParseDuration(d.s)
		if err != nil {
			return nil, fmt.Errorf("AccessRequest %s: %s: %q is not a duration", o.Name, d.field, d.s)
		}
		*d.to = approval.Duration(v)
	}
	return r, nil
}

func decode(u *unstructured.Unstructured) (*approval.Request, error) {
	var o AccessRequest
	if err := fromUnstructured(u.Object, &o); err != nil {
		return nil, fmt.Errorf("AccessRequest %s: %w", u.GetName(), err)
	}
	return Request(&o)
}

// Create implements approval.Backend. The webhook is not stored: only
// the agent that made the request notifies it, and a webhook URL is often
// a secret that approvers reading requests should not see.
func (s *Store) Create(ctx context.Context, r *approval.Request, ident string) error {
	m, err := toUnstructured(Object(r, ident, s.node))
	if err != nil {
		return err
	}
	_, err = s.res().Create(ctx, &unstructured.Unstructured{Object: m}, metav1.CreateOptions{})
	return err
}

// Finish implements approval.Backend: it writes r's outcome into the
// status of the request as last read, conditional on its resourceVersion.
// On a conflict the request is read again and the write decided again: a
// request someone else took out of pending meanwhile is left as it is.
func (s *Store) Finish(ctx context.Context, r *approval.Request) (bool, error) {
	return s.updateStatus(ctx, r.ID, func(cur *approval.Request) (*approval.Request, bool) {
		return r, cur.State == approval.Pending
	})
}

// EndGrant implements approval.Backend.
func (s *Store) EndGrant(ctx context.Context, id string, at time.Time) error {
	_, err := s.updateStatus(ctx, id, func(cur *approval.Request) (*approval.Request, bool) {
		if cur.State != approval.Approved || cur.GrantExpires == nil || !cur.GrantExpires.After(at) {
			return nil, false
		}
		cur.GrantExpires = &at
		return cur, true
	})
	return err
}

// updateStatus writes the status of request id that change makes of its
// current one, if change says to, and reports whether it did. The status
// is read and written again when another write came in between.
func (s *Store) updateStatus(ctx context.Context, id string, change func(cur *approval.Request) (*approval.Request, bool)) (bool, error) {
	for attempt := 1; ; attempt++ {
		u, err := s.res().Get(ctx, id, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		cur, err := decode(u)
		if err != nil {
			return false, err
		}
		next, ok := change(cur)
		if !ok {
			return false, nil
		}
		st, err := toUnstructured(statusOf(next))
		if err != nil {
			return false, err
		}
		u.Object["status"] = st
		_, err = s.res().UpdateStatus(ctx, u, metav1.UpdateOptions{})
		switch {
		case err == nil:
			return true, nil
		case apierrors.IsConflict(err) && attempt < finishAttempts:
			continue
		case apierrors.IsConflict(err):
			return false, fmt.Errorf("request %s: the status kept changing under the write: %w", id, err)
		}
		return false, err
	}
}

// Get implements approval.Backend.
func (s *Store) Get(ctx context.Context, id string) (*approval.Request, error) {
	if id == "" {
		return nil, approval.ErrNotFound
	}
	u, err := s.res().Get(ctx, id, metav1.GetOptions{})
	if err == nil {
		return decode(u)
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	all, err := s.list(ctx, "")
	if err != nil {
		return nil, err
	}
	var found *approval.Request
	for _, r := range all {
		if strings.HasPrefix(r.ID, id) {
			if found != nil {
				return nil, approval.ErrAmbiguous
			}
			found = r
		}
	}
	if found == nil {
		return nil, approval.ErrNotFound
	}
	return found, nil
}

// list returns the requests matching selector, newest first.
func (s *Store) list(ctx context.Context, selector string) ([]*approval.Request, error) {
	opts := metav1.ListOptions{LabelSelector: selector, Limit: 500}
	var out []*approval.Request
	for {
		l, err := s.res().List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for i := range l.Items {
			r, err := decode(&l.Items[i])
			if err != nil {
				// One bad object must not hide every other request.
				s.log.Warn("skipping an AccessRequest that does not decode", "err", err)
				continue
			}
			out = append(out, r)
		}
		if opts.Continue = l.GetContinue(); opts.Continue == "" {
			break
		}
	}
	slices.SortFunc(out, func(a, b *approval.Request) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

func selector(set map[string]string) string { return labels.SelectorFromSet(set).String() }

// List implements approval.Backend.
func (s *Store) List(ctx context.Context, f approval.Filter) ([]*approval.Request, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	all, err := s.list(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []*approval.Request
	for _, r := range all {
		if (f.State == "" || strings.EqualFold(r.State, f.State)) && (f.Visible == nil || f.Visible(r)) {
			out = append(out, r)
		}
		if len(out) == f.Limit {
			break
		}
	}
	return out, nil
}

func running(list []*approval.Request, now time.Time) []*approval.Request {
	var out []*approval.Request
	for _, r := range list {
		if r.State == approval.Approved && r.GrantExpires != nil && r.GrantExpires.After(now) {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b *approval.Request) int { return b.GrantExpires.Compare(*a.GrantExpires) })
	return out
}

// HeldGrants implements approval.Backend. Grants are found wherever the
// request was made: a workload that moved to another node keeps its grant.
func (s *Store) HeldGrants(ctx context.Context, ident, target string, now time.Time) ([]*approval.Request, error) {
	list, err := s.list(ctx, selector(map[string]string{LabelIdentity: identityLabel(ident), LabelTarget: labelValue(target)}))
	if err != nil {
		return nil, err
	}
	return running(list, now), nil
}

// Grants implements approval.Backend.
func (s *Store) Grants(ctx context.Context, now time.Time) ([]*approval.Request, error) {
	list, err := s.list(ctx, "")
	if err != nil {
		return nil, err
	}
	return running(list, now), nil
}

func (s *Store) own() string { return selector(map[string]string{LabelNode: labelValue(s.node)}) }

// Orphans implements approval.Backend: this node's pending requests. A
// store without a node has none (an approver's tool settles nothing).
func (s *Store) Orphans(ctx context.Context) ([]*approval.Request, error) {
	if s.node == "" {
		return nil, nil
	}
	list, err := s.list(ctx, s.own())
	if err != nil {
		return nil, err
	}
	var out []*approval.Request
	for _, r := range list {
		if r.State == approval.Pending {
			out = append(out, r)
		}
	}
	slices.Reverse(out) // oldest first, as the SQLite store gives them
	return out, nil
}

// Prune deletes this node's decided requests created before t whose
// grants have ended, and returns how many: each agent prunes its own, so
// no two agents delete the same objects.
func (s *Store) Prune(ctx context.Context, t time.Time) (int64, error) {
	if s.node == "" {
		return 0, nil
	}
	list, err := s.list(ctx, s.own())
	if err != nil {
		return 0, err
	}
	var n int64
	for _, r := range list {
		if r.State == approval.Pending || !r.Created.Before(t) || (r.GrantExpires != nil && !r.GrantExpires.Before(t)) {
			continue
		}
		err := s.res().Delete(ctx, r.ID, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return n, err
		}
		n++
	}
	return n, nil
}

// Close implements the agent's store lifecycle; the client holds nothing
// to release.
func (s *Store) Close() error { return nil }

// Watch implements approval.Watcher: fn gets every request of this node
// that is no longer pending, first those already settled (decisions made
// while nothing watched), then each change, until ctx ends. A watch that
// breaks is started again from a fresh list.
func (s *Store) Watch(ctx context.Context, fn func(*approval.Request)) {
	sel := ""
	if s.node != "" {
		sel = s.own()
	}
	s.follow(ctx, sel, true, func(_ watch.EventType, r *approval.Request) {
		if r.State != approval.Pending {
			fn(r)
		}
	})
}

// Follow calls fn with every request added or changed from now on, until
// ctx ends (for people following requests as they happen).
func (s *Store) Follow(ctx context.Context, fn func(added bool, r *approval.Request)) {
	s.follow(ctx, "", false, func(t watch.EventType, r *approval.Request) { fn(t == watch.Added, r) })
}

func (s *Store) follow(ctx context.Context, sel string, replay bool, fn func(watch.EventType, *approval.Request)) {
	backoff := 0 * time.Second
	for ctx.Err() == nil {
		if backoff > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
		}
		backoff = min(max(2*backoff, time.Second), 30*time.Second)
		l, err := s.res().List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("listing AccessRequests", "err", err)
			}
			continue
		}
		if replay {
			for i := range l.Items {
				if r, err := decode(&l.Items[i]); err == nil {
					fn(watch.Modified, r)
				}
			}
		}
		w, err := s.res().Watch(ctx, metav1.ListOptions{LabelSelector: sel, ResourceVersion: l.GetResourceVersion()})
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("watching AccessRequests", "err", err)
			}
			continue
		}
		if s.drain(ctx, w, fn) {
			backoff = 0
		}
		w.Stop()
	}
}

// drain passes on the watch's events until it ends or fails, and reports
// whether it ended in good order (the server closes watches now and then).
func (s *Store) drain(ctx context.Context, w watch.Interface, fn func(watch.EventType, *approval.Request)) bool {
	for {
		select {
		case <-ctx.Done():
			return true
		case ev, ok := <-w.ResultChan():
			if !ok {
				return true
			}
			switch ev.Type {
			case watch.Added, watch.Modified:
				u, ok := ev.Object.(*unstructured.Unstructured)
				if !ok {
					continue
				}
				r, err := decode(u)
				if err != nil {
					s.log.Warn("skipping an AccessRequest that does not decode", "err", err)
					continue
				}
				fn(ev.Type, r)
			case watch.Error:
				// Typically 410 Gone: the resourceVersion is too old; a
				// new list starts over.
				s.log.Debug("AccessRequest watch ended", "err", apierrors.FromObject(ev.Object))
				return false
			}
		}
	}
}

// ErrNoCluster is returned where a cluster is needed and none is
// configured.
var ErrNoCluster = errors.New("not running in a Kubernetes cluster (no in-cluster service account, and no kubeconfig given)")
