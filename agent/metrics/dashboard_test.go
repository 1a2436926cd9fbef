package metrics_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/corral-dev/corral/agent/metrics"
	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/policy"
)

const dashboardPath = "../../docs/grafana/corral.json"

type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	Targets    []struct {
		Datasource json.RawMessage `json:"datasource"`
		Expr       string          `json:"expr"`
	} `json:"targets"`
}

// registered gathers everything the agent registers, with a child in every
// vector so that every family shows, and returns the series names a query
// may use (histograms by their _bucket, _sum and _count).
func registered(t *testing.T) map[string]bool {
	t.Helper()
	reg := metrics.NewRegistry()
	m, err := metrics.New(reg, sources())
	if err != nil {
		t.Fatal(err)
	}
	m.Connection("orders-db", "postgres", intercept.ConnAllowed)
	s := m.Session("orders-db", "postgres")
	s.Operations(policy.Allow, 1)
	s.Masked(1)
	s.Added(time.Microsecond)
	m.ApprovalWait("orders-db", time.Second)
	m.Reloaded(nil)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, mf := range mfs {
		n := mf.GetName()
		out[n] = true
		if mf.GetType() == dto.MetricType_HISTOGRAM || mf.GetType() == dto.MetricType_SUMMARY {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				out[n+suffix] = true
			}
		}
	}
	return out
}

// metricRef finds the metrics a PromQL expression names: corral's and the
// Go and process collectors', and anything else written as a selector
// (a name followed by its label matchers).
var (
	metricRef   = regexp.MustCompile(`\b(?:corral|go|process)_[a-zA-Z0-9_:]*`)
	selectorRef = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\{`)
)

func refs(expr string) []string {
	out := metricRef.FindAllString(expr, -1)
	for _, m := range selectorRef.FindAllStringSubmatch(expr, -1) {
		out = append(out, m[1])
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// The dashboard is valid JSON, every panel queries the ${datasource}
// variable, and every metric it names is one the agent registers, so the
// two cannot drift apart.
func TestDashboardUsesRegisteredMetrics(t *testing.T) {
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("title %q uid %q", d.Title, d.UID)
	}
	known := registered(t)

	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
		if v.Type == "datasource" && v.Name != "datasource" {
			t.Errorf("data source variable named %q, want datasource", v.Name)
		}
		if q, ok := v.Query.(map[string]any); ok {
			for _, r := range refs(q["query"].(string)) {
				if !known[r] {
					t.Errorf("variable %s queries %s, which the agent does not register", v.Name, r)
				}
			}
		}
	}
	if !slices.Contains(vars, "datasource") {
		t.Errorf("no ${datasource} variable: %v", vars)
	}

	used := map[string]bool{}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if !strings.Contains(string(p.Datasource), `"${datasource}"`) {
			t.Errorf("panel %q data source %s, want ${datasource}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if q.Datasource != nil && !strings.Contains(string(q.Datasource), `"${datasource}"`) {
				t.Errorf("panel %q query data source %s, want ${datasource}", p.Title, q.Datasource)
			}
			rs := refs(q.Expr)
			if len(rs) == 0 {
				t.Errorf("panel %q query %q names no metric", p.Title, q.Expr)
			}
			for _, r := range rs {
				if !known[r] {
					t.Errorf("panel %q queries %s, which the agent does not register", p.Title, r)
				}
				used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(r, "_bucket"), "_sum"), "_count")] = true
			}
		}
	}
	// And every metric of corral's has a panel.
	for n := range known {
		if strings.HasPrefix(n, "corral_") && !strings.HasSuffix(n, "_bucket") && !strings.HasSuffix(n, "_sum") && !strings.HasSuffix(n, "_count") && !used[n] {
			t.Errorf("%s is on no panel", n)
		}
	}
}
