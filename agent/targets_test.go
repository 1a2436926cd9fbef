package agent

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/corral-dev/corral/agent/config"
)

// tableOf builds a target table of targets named by their endpoints
// ("name=endpoint,endpoint"), resolving names with lookup at a clock the
// test moves.
func tableOf(t *testing.T, now *time.Time, lookup func(host string) ([]netip.Addr, error), targets ...string) *targetTable {
	t.Helper()
	var ts []config.Target
	for _, spec := range targets {
		name, eps, _ := strings.Cut(spec, "=")
		tg := config.Target{Name: name, Protocol: "postgres"}
		for _, s := range strings.Split(eps, ",") {
			ep, err := config.ParseEndpoint(s)
			if err != nil {
				t.Fatal(err)
			}
			tg.Parsed = append(tg.Parsed, ep)
		}
		ts = append(ts, tg)
	}
	table := newTargetTable(ts)
	table.now = func() time.Time { return *now }
	table.lookup = func(_ context.Context, host string) ([]netip.Addr, error) { return lookup(host) }
	return table
}

// covered lists what the table puts in the kernel, "addr:port" by target
// id.
func covered(table *targetTable) map[string]uint32 {
	out := map[string]uint32{}
	for _, e := range table.entries(context.Background(), slog.New(slog.DiscardHandler)) {
		out[netip.AddrPortFrom(e.Prefix.Addr(), e.Port).String()] = e.ID
	}
	return out
}

func keys(m map[string]uint32) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// A DNS-named target covers every address its name gave within
// dnsRetain: an answer that changes (a failover, a round robin) or a
// lookup that fails does not drop an address a workload may still hold.
func TestDNSTargetKeepsRecentAddresses(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	var answer []netip.Addr
	var failure error
	table := tableOf(t, &now, func(string) ([]netip.Addr, error) { return answer, failure }, "db=db.example:5432")
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	for _, step := range []struct {
		what    string
		answer  []netip.Addr
		failure error
		after   time.Duration
		want    []string
	}{
		{"first answer", []netip.Addr{a}, nil, 0, []string{"10.0.0.1:5432"}},
		{"the answer moved", []netip.Addr{b}, nil, time.Minute, []string{"10.0.0.1:5432", "10.0.0.2:5432"}},
		{"the lookup fails", nil, errors.New("timeout"), dnsRetain, []string{"10.0.0.1:5432", "10.0.0.2:5432"}},
		{"no answer", nil, nil, time.Minute, []string{"10.0.0.1:5432", "10.0.0.2:5432"}},
		{"an hour after the old address was last given", []netip.Addr{b}, nil, time.Second, []string{"10.0.0.2:5432"}},
	} {
		now = now.Add(step.after)
		answer, failure = step.answer, step.failure
		if got := keys(covered(table)); !slices.Equal(got, step.want) {
			t.Errorf("%s: targets %v, want %v", step.what, got, step.want)
		}
	}
}

// What names resolved to is kept in the state directory: an agent that
// starts while DNS is down protects the addresses a name gave within
// dnsRetain, not nothing.
func TestDNSAddressesKeptAcrossRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolved.json")
	now := time.Unix(1_800_000_000, 0)
	start := func(answer []netip.Addr, failure error) []string {
		table := tableOf(t, &now, func(string) ([]netip.Addr, error) { return answer, failure }, "db=db.example:5432")
		table.keepResolved(path, slog.New(slog.DiscardHandler))
		return keys(covered(table))
	}
	if got := start([]netip.Addr{netip.MustParseAddr("10.0.0.1")}, nil); !slices.Equal(got, []string{"10.0.0.1:5432"}) {
		t.Fatalf("first agent: %v", got)
	}
	now = now.Add(10 * time.Minute)
	if got := start(nil, errors.New("no DNS")); !slices.Equal(got, []string{"10.0.0.1:5432"}) {
		t.Errorf("an agent started while DNS is down: %v, want the address kept", got)
	}
	now = now.Add(dnsRetain)
	if got := start(nil, errors.New("no DNS")); len(got) != 0 {
		t.Errorf("an agent started past the retention: %v", got)
	}
	os.WriteFile(path, []byte("not json"), 0o600)
	if got := start([]netip.Addr{netip.MustParseAddr("10.0.0.2")}, nil); !slices.Equal(got, []string{"10.0.0.2:5432"}) {
		t.Errorf("over an unreadable file: %v", got)
	}
}

// An address a name gave before and another name gives now is the other
// target's: addresses are reused, and one retained must not take the
// connections meant for the target that holds it today. Nor does one
// inside another target's range: the kernel's longest prefix would give
// it to the retained /32.
func TestDNSRetainedAddressYields(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	answers := map[string][]netip.Addr{
		"db-a.example": {netip.MustParseAddr("10.0.0.1")},
		"db-b.example": {netip.MustParseAddr("10.0.9.9")},
	}
	table := tableOf(t, &now, func(host string) ([]netip.Addr, error) { return answers[host], nil },
		"a=db-a.example:5432", "b=db-b.example:5432", "c=10.1.0.0/24:5432")
	_, ids := table.snapshot()
	if got := covered(table); got["10.0.0.1:5432"] != ids["a"] {
		t.Fatalf("before: %v", got)
	}
	answers["db-a.example"] = []netip.Addr{netip.MustParseAddr("10.1.0.1")}
	answers["db-b.example"] = []netip.Addr{netip.MustParseAddr("10.0.0.1")}
	covered(table)
	answers["db-a.example"] = []netip.Addr{netip.MustParseAddr("10.0.0.2")}
	got := covered(table)
	if got["10.0.0.1:5432"] != ids["b"] || got["10.0.0.2:5432"] != ids["a"] || got["10.0.9.9:5432"] != ids["b"] {
		t.Errorf("after 10.0.0.1 moved to b: %v (a is %d, b is %d)", got, ids["a"], ids["b"])
	}
	if _, ok := got["10.1.0.1:5432"]; ok {
		t.Errorf("a's retained 10.1.0.1 stays inside c's 10.1.0.0/24: %v", got)
	}
}

// One name in two endpoints (two ports, or two targets) is resolved once
// each: both get its addresses, however quickly the clock moves.
func TestDNSNameInTwoEndpoints(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	table := tableOf(t, &now, func(string) ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("10.0.0.1")}, nil },
		"db=db.example:5432,db.example:6432")
	if got := keys(covered(table)); !slices.Equal(got, []string{"10.0.0.1:5432", "10.0.0.1:6432"}) {
		t.Errorf("targets %v", got)
	}
}
