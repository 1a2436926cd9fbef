package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/corral-dev/corral/agent/config"
	"github.com/corral-dev/corral/bpf"
)

// targetSetter is the kernel's targets map.
type targetSetter interface {
	SetTargets([]bpf.Target) error
}

// targetTable maps the ids the kernel tags connections with back to the
// configured targets, and turns endpoints into kernel entries, resolving
// DNS names.
type targetTable struct {
	targets []config.Target // id = index + 1

	mu       sync.Mutex
	resolved map[string][]netip.Addr // DNS name -> last good answer
	lookup   func(ctx context.Context, host string) ([]netip.Addr, error)
}

func newTargetTable(ts []config.Target) *targetTable {
	return &targetTable{
		targets:  ts,
		resolved: map[string][]netip.Addr{},
		lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		},
	}
}

func (t *targetTable) byID(id uint32) (config.Target, bool) {
	if id == 0 || int(id) > len(t.targets) {
		return config.Target{}, false
	}
	return t.targets[id-1], true
}

func (t *targetTable) hasNames() bool {
	for _, tg := range t.targets {
		for _, e := range tg.Parsed {
			if e.Host != "" {
				return true
			}
		}
	}
	return false
}

// entries builds the kernel's view. A name that does not resolve keeps its
// last good addresses: dropping them would stop protecting a host that the
// workloads' own resolver may still reach.
func (t *targetTable) entries(ctx context.Context, log *slog.Logger) []bpf.Target {
	var out []bpf.Target
	for i, tg := range t.targets {
		id := uint32(i + 1)
		for _, e := range tg.Parsed {
			if e.Host == "" {
				out = append(out, bpf.Target{ID: id, Prefix: e.Prefix, Port: e.Port})
				continue
			}
			addrs, err := t.resolve(ctx, e.Host)
			if err != nil {
				log.Error("cannot resolve target endpoint; keeping its previous addresses", "target", tg.Name, "endpoint", e.String(), "err", err)
			}
			for _, a := range addrs {
				a = a.Unmap()
				out = append(out, bpf.Target{ID: id, Prefix: netip.PrefixFrom(a, a.BitLen()), Port: e.Port})
			}
		}
	}
	return out
}

func (t *targetTable) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := t.lookup(ctx, host)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil || len(addrs) == 0 {
		if err == nil {
			err = fmt.Errorf("no addresses")
		}
		return t.resolved[host], err
	}
	t.resolved[host] = addrs
	return addrs, nil
}

func (t *targetTable) sync(ctx context.Context, k targetSetter, log *slog.Logger) error {
	if err := k.SetTargets(t.entries(ctx, log)); err != nil {
		return fmt.Errorf("program targets into the kernel: %w", err)
	}
	return nil
}

// refresh re-resolves DNS-named endpoints every interval until ctx ends.
func (t *targetTable) refresh(ctx context.Context, k targetSetter, every time.Duration, log *slog.Logger) {
	if !t.hasNames() {
		return
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := t.sync(ctx, k, log); err != nil {
				log.Error("refreshing targets", "err", err)
			}
		}
	}
}
