package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/corral-dev/corral/agent/config"
	"github.com/corral-dev/corral/bpf"
	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/intercept/postgres"
)

// targetSetter is the kernel's targets map.
type targetSetter interface {
	SetTargets([]bpf.Target) error
}

// targetTable maps the ids the kernel tags connections with back to the
// configured targets, and turns endpoints into kernel entries, resolving
// DNS names. A target keeps its id across reloads (ids are never reused), so
// a connection redirected just before a reload is still attributed to the
// right target, or to none.
type targetTable struct {
	mu      sync.Mutex
	targets []config.Target
	ids     map[string]uint32 // by name
	next    uint32
	// resolved: by DNS name, every address its answers gave within
	// dnsRetain, and when it was last given.
	resolved map[string]map[netip.Addr]time.Time
	lookup   func(ctx context.Context, host string) ([]netip.Addr, error)
	now      func() time.Time
	// saved, when set, is where resolved is kept across restarts: an
	// agent that starts while DNS is down still protects the addresses
	// its names gave within dnsRetain.
	saved   string
	unsaved bool // resolved changed since it was last saved
}

// dnsRetain is how long an address a DNS name resolved to stays a target
// after the name last gave it. Workloads cache answers (some runtimes for
// as long as they run), ask other resolvers, or were given the address
// once; a failover that moves the name leaves the old server up, and a
// round robin gives a subset each time. Dropping an address at the first
// answer without it would let all of those reach it around corral.
const dnsRetain = time.Hour

func newTargetTable(ts []config.Target) *targetTable {
	t := &targetTable{
		ids:      map[string]uint32{},
		resolved: map[string]map[netip.Addr]time.Time{},
		now:      time.Now,
		lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		},
	}
	t.replace(ts)
	return t
}

// replace makes ts the configured targets; the kernel learns of them at the
// next sync.
func (t *targetTable) replace(ts []config.Target) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.targets = ts
	for _, tg := range ts {
		if _, ok := t.ids[tg.Name]; !ok {
			t.next++
			t.ids[tg.Name] = t.next
		}
	}
}

func (t *targetTable) byID(id uint32) (config.Target, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, tg := range t.targets {
		if t.ids[tg.Name] == id {
			return tg, true
		}
	}
	return config.Target{}, false
}

func (t *targetTable) byName(name string) (config.Target, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, tg := range t.targets {
		if tg.Name == name {
			return tg, true
		}
	}
	return config.Target{}, false
}

func (t *targetTable) snapshot() ([]config.Target, map[string]uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := make(map[string]uint32, len(t.ids))
	for k, v := range t.ids {
		ids[k] = v
	}
	return t.targets, ids
}

func (t *targetTable) hasNames() bool {
	ts, _ := t.snapshot()
	for _, tg := range ts {
		for _, e := range tg.Parsed {
			if e.Host != "" {
				return true
			}
		}
	}
	return false
}

// entries builds the kernel's view. A name covers every address it
// resolved to within dnsRetain: one that does not resolve now keeps them
// all, and one whose answer changed keeps the old addresses too, unless
// another target's current answer (or endpoint) has the address now: an
// address is reused (a pod's, a load balancer's), and a retained one must
// not take connections meant for the target that holds it today.
func (t *targetTable) entries(ctx context.Context, log *slog.Logger) []bpf.Target {
	var out []bpf.Target
	targets, ids := t.snapshot()
	// An address two targets claim goes to the first of them, said
	// loudly: which rules and protocol govern it must not depend on the
	// order the kernel map was filled in. (Literal endpoints cannot
	// overlap: the configuration refuses that.)
	owner := map[bpf.Target]string{}
	add := func(tg string, e bpf.Target, quiet bool) {
		k := bpf.Target{Prefix: e.Prefix, Port: e.Port}
		if first, ok := owner[k]; ok && first != tg {
			if !quiet {
				log.Error("two targets cover one address; the first in the configuration keeps it", "address", netip.AddrPortFrom(e.Prefix.Addr(), e.Port).String(), "target", first, "also", tg)
			}
			return
		} else if ok {
			return
		}
		owner[k] = tg
		out = append(out, e)
	}
	type later struct {
		target string
		e      bpf.Target
	}
	var retained []later
	for _, tg := range targets {
		id := ids[tg.Name]
		for _, e := range tg.Parsed {
			if e.Host == "" {
				add(tg.Name, bpf.Target{ID: id, Prefix: e.Prefix, Port: e.Port}, false)
				continue
			}
			current, kept, err := t.resolve(ctx, e.Host)
			if err != nil {
				log.Error("cannot resolve target endpoint; keeping its previous addresses", "target", tg.Name, "endpoint", e.String(), "err", err)
			}
			for _, a := range current {
				add(tg.Name, bpf.Target{ID: id, Prefix: netip.PrefixFrom(a, a.BitLen()), Port: e.Port}, false)
			}
			for _, a := range kept {
				retained = append(retained, later{tg.Name, bpf.Target{ID: id, Prefix: netip.PrefixFrom(a, a.BitLen()), Port: e.Port}})
			}
		}
	}
	for _, r := range retained {
		// Nor does one inside another target's range: the kernel's
		// longest prefix would give the address to the retained /32.
		inside := slices.ContainsFunc(out, func(e bpf.Target) bool {
			return e.Port == r.e.Port && e.ID != r.e.ID && e.Prefix.Bits() < e.Prefix.Addr().BitLen() && e.Prefix.Contains(r.e.Prefix.Addr())
		})
		if !inside {
			add(r.target, r.e, true)
		}
	}
	t.save()
	return out
}

// resolve looks host up: current is what it resolves to now, kept the
// other addresses it gave within dnsRetain (all of them when the lookup
// fails).
func (t *targetTable) resolve(ctx context.Context, host string) (current, kept []netip.Addr, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := t.lookup(ctx, host)
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	seen := t.resolved[host]
	if err == nil && len(addrs) > 0 {
		if seen == nil {
			seen = map[netip.Addr]time.Time{}
			t.resolved[host] = seen
		}
		for a, last := range seen {
			if now.Sub(last) > dnsRetain {
				delete(seen, a)
			}
		}
		answer := map[netip.Addr]bool{}
		for _, a := range addrs {
			a = a.Unmap()
			if !answer[a] {
				answer[a] = true
				current = append(current, a)
			}
			seen[a] = now
		}
		for a := range seen {
			if !answer[a] {
				kept = append(kept, a)
			}
		}
		t.unsaved = true
	} else {
		if err == nil {
			err = fmt.Errorf("no addresses")
		}
		for a := range seen {
			kept = append(kept, a)
		}
	}
	slices.SortFunc(current, func(a, b netip.Addr) int { return a.Compare(b) })
	slices.SortFunc(kept, func(a, b netip.Addr) int { return a.Compare(b) })
	return current, kept, err
}

// keepResolved has the table keep what names resolved to in path, and
// takes up what a previous agent kept there, within dnsRetain. A file
// that cannot be read is only logged: the names are resolved anew.
func (t *targetTable) keepResolved(path string, log *slog.Logger) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.saved = path
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var kept map[string]map[netip.Addr]time.Time
	if err == nil {
		err = json.Unmarshal(b, &kept)
	}
	if err != nil {
		log.Warn("cannot read the addresses DNS names resolved to before; resolving them anew", "path", path, "err", err)
		return
	}
	now := t.now()
	for host, seen := range kept {
		for a, last := range seen {
			if now.Sub(last) > dnsRetain {
				continue
			}
			if t.resolved[host] == nil {
				t.resolved[host] = map[netip.Addr]time.Time{}
			}
			if last.After(t.resolved[host][a]) {
				t.resolved[host][a] = last
			}
		}
	}
}

// save writes resolved to the file keepResolved named, once per pass
// over the targets however many names they hold. A failure is no reason to
// stop protecting anything: the next pass tries again.
func (t *targetTable) save() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.saved == "" || !t.unsaved {
		return
	}
	b, err := json.Marshal(t.resolved)
	if err != nil {
		return
	}
	tmp := t.saved + ".tmp"
	if os.WriteFile(tmp, b, 0o600) == nil && os.Rename(tmp, t.saved) == nil {
		t.unsaved = false
	}
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

// leafIssuer is corral's CA, as client TLS needs it.
type leafIssuer interface {
	Leaf(names []string, addrs []netip.Addr) (*tls.Certificate, error)
}

// clientTLS tells the postgres handler how each connection's workload may
// use TLS: the mode of its target in the live configuration (a reload
// applies from the next connection), and a certificate from corral's CA
// naming the target as the workload addressed it.
type clientTLS struct {
	ca      leafIssuer
	targets *targetTable
	log     *slog.Logger
}

func (p *clientTLS) forConn(c *intercept.Conn) postgres.ClientTLS {
	t, ok := p.targets.byName(c.Meta.Target.Name)
	if !ok {
		return postgres.ClientTLS{}
	}
	var mode postgres.ClientTLSMode
	switch t.ClientTLSMode() {
	case "allow":
		mode = postgres.ClientTLSAllow
	case "require":
		mode = postgres.ClientTLSRequire
	default:
		return postgres.ClientTLS{}
	}
	names, addrs := leafSubjects(t, c.Meta.OrigDst.Addr())
	return postgres.ClientTLS{Mode: mode, Config: &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Issued at the handshake, not here: most connections to a target
		// with mode allow never ask for TLS.
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			cert, err := p.ca.Leaf(names, addrs)
			if err != nil {
				p.log.Error("cannot issue a certificate for client TLS", "target", t.Name, "err", err)
			}
			return cert, err
		},
	}}
}

// leafSubjects are what a target's certificate names: its DNS names and
// single addresses, and the address the workload dialled, which for a CIDR
// endpoint only the connection knows.
func leafSubjects(t config.Target, dst netip.Addr) ([]string, []netip.Addr) {
	var (
		names []string
		addrs []netip.Addr
	)
	for _, e := range t.Parsed {
		switch {
		case e.Host != "":
			names = append(names, e.Host)
		case e.Prefix.IsSingleIP():
			addrs = append(addrs, e.Prefix.Addr())
		}
	}
	if dst.IsValid() {
		addrs = append(addrs, dst)
	}
	return names, addrs
}
