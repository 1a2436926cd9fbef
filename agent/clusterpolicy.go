package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/corral-dev/corral/agent/config"
	"github.com/corral-dev/corral/agent/kube"
)

// clusterPolicy adds the cluster's ProtectedTargets and AccessRules to
// the configuration file's targets and rules (kubernetes.resources), and
// kicks a reload when any of them changes. A set whose ProtectedTargets
// do not validate (or that cannot be read) is refused whole, like a file
// that does not: the previous configuration stays in force. An AccessRule
// that does not validate only denies its own namespace (kube.Apply).
type clusterPolicy struct {
	client dynamic.Interface
	log    *slog.Logger
	kick   chan struct{}
}

func newClusterPolicy(client dynamic.Interface, log *slog.Logger) *clusterPolicy {
	return &clusterPolicy{client: client, log: log, kick: make(chan struct{}, 1)}
}

func (p *clusterPolicy) extend(ctx context.Context, c *config.Config) (*config.Config, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := kube.LoadPolicy(ctx, p.client, c)
	var invalid *kube.InvalidError
	if out != nil && errors.As(err, &invalid) && invalid.Quarantined {
		p.log.Error("AccessRules that do not validate deny their namespace's pods every target until they are fixed", "problems", invalid.Problems)
		return out, nil
	}
	return out, err
}

// initial extends the configuration the agent starts with. The targets
// the cluster names are protected only once they are known, so the agent
// does not start without them: it retries for a while, then fails, and
// links left pinned by the previous agent keep refusing connections.
func (p *clusterPolicy) initial(ctx context.Context, c *config.Config, wait time.Duration) (*config.Config, error) {
	deadline := time.Now().Add(wait)
	for {
		out, err := p.extend(ctx, c)
		if err == nil {
			return out, nil
		}
		var invalid *kube.InvalidError
		if errors.As(err, &invalid) || time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("kubernetes.resources: %w", err)
		}
		p.log.Warn("cannot read the cluster's ProtectedTargets and AccessRules yet; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// watch kicks a reload on every change of either resource until ctx
// ends. A watch that breaks is started again, with a kick: changes made
// meanwhile were not seen.
func (p *clusterPolicy) watch(ctx context.Context) {
	for _, gvr := range []schema.GroupVersionResource{kube.ProtectedTargets, kube.AccessRules} {
		go p.follow(ctx, gvr)
	}
}

func (p *clusterPolicy) follow(ctx context.Context, gvr schema.GroupVersionResource) {
	first := true
	for ctx.Err() == nil {
		w, err := p.client.Resource(gvr).Watch(ctx, metav1.ListOptions{})
		if err != nil {
			p.log.Warn("watching the cluster's policy resources", "resource", gvr.Resource, "err", err)
		} else {
			if !first {
				p.signal()
			}
			first = false
			for range w.ResultChan() {
				p.signal()
			}
			w.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (p *clusterPolicy) signal() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}
