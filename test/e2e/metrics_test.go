//go:build linux

package e2e

import (
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-dev/corral/internal/testutil"
)

// scrape is one /metrics answer: every sample by its series
// (`name{label="value",...}`, labels as the agent orders them).
type scrape map[string]float64

func scrapeMetrics(t *testing.T, base string) (scrape, string) {
	t.Helper()
	code, body := testutil.HTTPGet(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
	s := scrape{}
	for _, l := range strings.Split(body, "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", l, err)
		}
		s[l[:i]] = v
	}
	return s, body
}

// freeLoopbackAddr is a loopback address with a port nothing listens on
// right now.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

var labelValue = regexp.MustCompile(`="((?:[^"\\]|\\.)*)"`)

// A scrape of /metrics follows the traffic through corral: the connections,
// the statements by decision, the values masked, corral's own time and the
// kernel's redirections; no label carries a secret or a statement.
func TestMetricsScrapeFollowsTraffic(t *testing.T) {
	metricsAddr := freeLoopbackAddr(t)
	p := newPGEnvWith(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "",
		func(h *testutil.Host) string { return addr(h.Addr, 5432) }, "metrics_address: "+metricsAddr)
	base := "http://" + metricsAddr

	// The agent logs ready just before the endpoint says so.
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := testutil.HTTPGet(t, base+"/readyz")
		if code == http.StatusOK {
			break
		}
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("/readyz: %d %q", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ := testutil.HTTPGet(t, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d", code)
	}

	before, _ := scrapeMetrics(t, base)
	from := p.a.Mark()
	const (
		selectSQL = "SELECT id, name, email, card_number, note FROM customers ORDER BY id"
		dropSQL   = "DROP TABLE orders"
	)
	if out, err := p.psql(t, selectSQL); err != nil || !strings.Contains(out, "***********.com") {
		t.Fatalf("select: %v\n%s", err, out)
	}
	if out, err := p.psql(t, dropSQL); err == nil || !strings.Contains(out, "drop is denied") {
		t.Fatalf("drop was not denied: %v\n%s", err, out)
	}

	const (
		conns   = `corral_connections_total{protocol="postgres",result="%s",target="orders-db"}`
		ops     = `corral_operations_total{decision="%s",protocol="postgres",target="orders-db"}`
		active  = `corral_active_sessions{protocol="postgres",target="orders-db"}`
		masked  = `corral_masked_values_total{target="orders-db"}`
		added   = `corral_proxy_added_seconds_count{protocol="postgres"}`
		connect = `corral_bpf_connects_total{result="%s"}`
	)
	// Sessions are counted out before their close event is written: once
	// both are closed, the gauge is back to zero.
	p.waitClosed(t, from, 2)
	after, body := scrapeMetrics(t, base)
	if v, ok := after[active]; !ok || v != 0 {
		t.Fatalf("%s = %v after both sessions ended", active, v)
	}

	for series, want := range map[string]float64{
		fmt.Sprintf(conns, "allowed"):      2, // both psql runs were let in
		fmt.Sprintf(conns, "denied"):       0,
		fmt.Sprintf(ops, "allow"):          1, // the SELECT
		fmt.Sprintf(ops, "deny"):           1, // the DROP
		fmt.Sprintf(ops, "review"):         0,
		masked:                             5, // 2 emails, 2 card numbers, 1 phone number in a note
		added:                              2, // one request each
		fmt.Sprintf(connect, "redirected"): 2, // psql's connects, in the kernel
		fmt.Sprintf(connect, "refused"):    0,
	} {
		if got := after[series] - before[series]; got != want {
			t.Errorf("%s moved by %v (%v -> %v), want %v", series, got, before[series], after[series], want)
		}
	}
	if after[fmt.Sprintf(connect, "exempt")] <= before[fmt.Sprintf(connect, "exempt")] {
		t.Errorf("corral's own upstream connects were not counted exempt")
	}
	for _, series := range []string{"corral_policy_version", "corral_netns_listeners", `go_goroutines`, `process_resident_memory_bytes`} {
		if after[series] <= 0 {
			t.Errorf("%s = %v", series, after[series])
		}
	}
	if n := after[`corral_approval_wait_seconds_count{target="orders-db"}`]; n != 0 {
		t.Errorf("%v approval waits observed, and nothing was reviewed", n)
	}

	// No label value carries a secret, a statement or a session.
	for series := range after {
		for _, m := range labelValue.FindAllStringSubmatch(series, -1) {
			v := m[1]
			for _, bad := range []string{"app-secret-pw", "not-the-password", "SELECT", "DROP", "customers", "ada@example.com", "whoever"} {
				if strings.Contains(v, bad) {
					t.Errorf("label value %q of %s carries %q", v, series, bad)
				}
			}
			if sessionIDPattern.MatchString(v) {
				t.Errorf("label value %q of %s is a session id", v, series)
			}
		}
	}
	if strings.Contains(body, "app-secret-pw") {
		t.Error("the upstream password appears in /metrics")
	}

	// The endpoint goes with the agent.
	if err := p.a.Stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("agent exit: %v", err)
	}
	if _, err := (&http.Client{Timeout: 5 * time.Second}).Get(base + "/healthz"); err == nil {
		t.Error("/healthz answers after the agent stopped")
	}
}

var sessionIDPattern = regexp.MustCompile(`^s-[0-9a-f]{20}$`)
