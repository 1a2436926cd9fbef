package kube

import (
	"context"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/corral-dev/corral/policy/approval"
)

// Cluster is an approver's access to the access requests of a cluster,
// with the identity of its kubeconfig's user: what `corral requests`,
// `approve` and `deny` do with --cluster.
type Cluster struct {
	Dynamic   dynamic.Interface
	Kube      kubernetes.Interface
	Namespace string
}

func (c *Cluster) store() *Store { return NewStore(c.Dynamic, c.Namespace, "", nil) }

// Decide approves or denies request id as the client's user. The rules are
// the broker's own (approval.Broker.Decide, on a broker that only
// decides): the user must hold one of the reviewers, must not be the
// requester, a denial needs a reason, and a request that is no longer
// pending (decided by someone else first, or past its deadline, which
// expires it now) is left as it is, with an error naming who decided it.
func (c *Cluster) Decide(ctx context.Context, id string, approve bool, reason string) (*approval.Request, error) {
	me, err := WhoAmI(ctx, c.Kube)
	if err != nil {
		return nil, err
	}
	store := c.store()
	// A prefix names the request; the decision names it in full.
	r, err := store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	b, err := approval.NewBroker(ctx, store, approval.Options{DecideOnly: true})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return b.Decide(ctx, r.ID, me, approve, reason)
}

// Get returns the request with id, or the only one whose id starts with
// it.
func (c *Cluster) Get(ctx context.Context, id string) (*approval.Request, error) {
	return c.store().Get(ctx, id)
}

// List returns requests, newest first.
func (c *Cluster) List(ctx context.Context, f approval.Filter) ([]*approval.Request, error) {
	return c.store().List(ctx, f)
}

// Follow calls fn with every request added (added true) or changed from
// now on, until ctx ends.
func (c *Cluster) Follow(ctx context.Context, fn func(added bool, r *approval.Request)) {
	c.store().Follow(ctx, fn)
}
