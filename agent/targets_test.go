package agent

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/corral-dev/corral/agent/config"
)

// A DNS-named target covers every address its name gave within
// dnsRetain: an answer that changes (a failover, a round robin) or a
// lookup that fails does not drop an address a workload may still hold.
func TestDNSTargetKeepsRecentAddresses(t *testing.T) {
	ep, err := config.ParseEndpoint("db.example:5432")
	if err != nil {
		t.Fatal(err)
	}
	table := newTargetTable([]config.Target{{Name: "db", Protocol: "postgres", Parsed: []config.Endpoint{ep}}})
	now := time.Unix(1_800_000_000, 0)
	table.now = func() time.Time { return now }
	var answer []netip.Addr
	var failure error
	table.lookup = func(context.Context, string) ([]netip.Addr, error) { return answer, failure }
	covered := func() []string {
		var out []string
		for _, e := range table.entries(context.Background(), slog.New(slog.DiscardHandler)) {
			out = append(out, netip.AddrPortFrom(e.Prefix.Addr(), e.Port).String())
		}
		slices.Sort(out)
		return out
	}
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
		if got := covered(); !slices.Equal(got, step.want) {
			t.Errorf("%s: targets %v, want %v", step.what, got, step.want)
		}
	}
}

// What names resolved to is kept in the state directory: an agent that
// starts while DNS is down protects the addresses a name gave within
// dnsRetain, not nothing.
func TestDNSAddressesKeptAcrossRestarts(t *testing.T) {
	ep, err := config.ParseEndpoint("db.example:5432")
	if err != nil {
		t.Fatal(err)
	}
	targets := []config.Target{{Name: "db", Protocol: "postgres", Parsed: []config.Endpoint{ep}}}
	path := filepath.Join(t.TempDir(), "resolved.json")
	now := time.Unix(1_800_000_000, 0)
	log := slog.New(slog.DiscardHandler)
	start := func(answer []netip.Addr, failure error) []string {
		table := newTargetTable(targets)
		table.now = func() time.Time { return now }
		table.lookup = func(context.Context, string) ([]netip.Addr, error) { return answer, failure }
		table.keepResolved(path, log)
		var out []string
		for _, e := range table.entries(context.Background(), log) {
			out = append(out, netip.AddrPortFrom(e.Prefix.Addr(), e.Port).String())
		}
		return out
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
// connections meant for the target that holds it today.
func TestDNSRetainedAddressYieldsToCurrentAnswer(t *testing.T) {
	a, _ := config.ParseEndpoint("db-a.example:5432")
	b, _ := config.ParseEndpoint("db-b.example:5432")
	table := newTargetTable([]config.Target{
		{Name: "a", Protocol: "postgres", Parsed: []config.Endpoint{a}},
		{Name: "b", Protocol: "postgres", Parsed: []config.Endpoint{b}},
	})
	answers := map[string][]netip.Addr{
		"db-a.example": {netip.MustParseAddr("10.0.0.1")},
		"db-b.example": {netip.MustParseAddr("10.0.0.9")},
	}
	table.lookup = func(_ context.Context, host string) ([]netip.Addr, error) { return answers[host], nil }
	owner := func() map[string]uint32 {
		out := map[string]uint32{}
		for _, e := range table.entries(context.Background(), slog.New(slog.DiscardHandler)) {
			out[e.Prefix.Addr().String()] = e.ID
		}
		return out
	}
	_, ids := table.snapshot()
	if got := owner(); got["10.0.0.1"] != ids["a"] {
		t.Fatalf("before: %v", got)
	}
	answers["db-a.example"] = []netip.Addr{netip.MustParseAddr("10.0.0.2")}
	answers["db-b.example"] = []netip.Addr{netip.MustParseAddr("10.0.0.1")}
	got := owner()
	if got["10.0.0.1"] != ids["b"] || got["10.0.0.2"] != ids["a"] || got["10.0.0.9"] != ids["b"] {
		t.Errorf("after the address moved to b: %v (a is %d, b is %d)", got, ids["a"], ids["b"])
	}
}

// One name in two endpoints (two ports, or two targets) is resolved once
// each: both get its addresses, however quickly the clock moves.
func TestDNSNameInTwoEndpoints(t *testing.T) {
	a, _ := config.ParseEndpoint("db.example:5432")
	b, _ := config.ParseEndpoint("db.example:6432")
	table := newTargetTable([]config.Target{{Name: "db", Protocol: "postgres", Parsed: []config.Endpoint{a, b}}})
	now := time.Unix(1_800_000_000, 0)
	table.now = func() time.Time { return now }
	table.lookup = func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("10.0.0.1")}, nil
	}
	var got []string
	for _, e := range table.entries(context.Background(), slog.New(slog.DiscardHandler)) {
		got = append(got, netip.AddrPortFrom(e.Prefix.Addr(), e.Port).String())
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"10.0.0.1:5432", "10.0.0.1:6432"}) {
		t.Errorf("targets %v", got)
	}
}

// Nor does a retained address take one inside another target's range:
// the kernel's longest prefix would give it to the retained /32.
func TestDNSRetainedAddressYieldsToAnotherRange(t *testing.T) {
	a, _ := config.ParseEndpoint("db-a.example:5432")
	b, _ := config.ParseEndpoint("10.0.0.0/24:5432")
	table := newTargetTable([]config.Target{
		{Name: "a", Protocol: "postgres", Parsed: []config.Endpoint{a}},
		{Name: "b", Protocol: "postgres", Parsed: []config.Endpoint{b}},
	})
	answer := []netip.Addr{netip.MustParseAddr("10.0.0.1")}
	table.lookup = func(context.Context, string) ([]netip.Addr, error) { return answer, nil }
	log := slog.New(slog.DiscardHandler)
	table.entries(context.Background(), log)
	answer = []netip.Addr{netip.MustParseAddr("10.9.0.1")}
	for _, e := range table.entries(context.Background(), log) {
		if e.Prefix == netip.MustParsePrefix("10.0.0.1/32") {
			t.Errorf("a's retained 10.0.0.1 stays inside b's 10.0.0.0/24: %+v", e)
		}
	}
}
