package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/corral-dev/corral/agent/metrics"
	"github.com/corral-dev/corral/internal/testutil"
)

func TestServerHealthReadinessAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, sources())
	if err != nil {
		t.Fatal(err)
	}
	s, err := metrics.Listen("127.0.0.1:0", reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	base := "http://" + s.Addr().String()

	if code, body := testutil.HTTPGet(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := testutil.HTTPGet(t, base+"/readyz"); code != 503 || body != "starting\n" {
		t.Errorf("/readyz while starting: %d %q", code, body)
	}
	s.SetReady()
	if code, body := testutil.HTTPGet(t, base+"/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz when ready: %d %q", code, body)
	}

	m.Connection("orders-db", "postgres", "allowed")
	code, body := testutil.HTTPGet(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
	for _, want := range []string{
		`corral_connections_total{protocol="postgres",result="allowed",target="orders-db"} 1`,
		`corral_bpf_connects_total{result="redirected"} 7`,
		`corral_policy_version 4`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}

	s.SetNotReady("stopping")
	if code, body := testutil.HTTPGet(t, base+"/readyz"); code != 503 || body != "stopping\n" {
		t.Errorf("/readyz while stopping: %d %q", code, body)
	}
	if code, _ := testutil.HTTPGet(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz while stopping: %d", code)
	}
	if code, _ := testutil.HTTPGet(t, base+"/"); code != 404 {
		t.Errorf("/: %d, want 404", code)
	}

	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := (&http.Client{Timeout: time.Second}).Get(base + "/healthz"); err == nil {
		t.Error("the endpoint still answers after Close")
	}
}

// A collector that fails is left out and logged; the scrape goes on.
func TestServerScrapeWithFailingCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	o := sources()
	o.BPF = func() (metrics.BPFCounters, error) {
		return metrics.BPFCounters{}, errors.New("counters map unreadable")
	}
	if _, err := metrics.New(reg, o); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	s, err := metrics.Listen("127.0.0.1:0", reg, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	code, body := testutil.HTTPGet(t, "http://"+s.Addr().String()+"/metrics")
	s.Close(context.Background())
	if code != 200 || !strings.Contains(body, "corral_policy_version 4") || strings.Contains(body, "corral_bpf_connects_total{") {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
	if !strings.Contains(logged.String(), "counters map unreadable") {
		t.Errorf("the failure was not logged: %q", logged.String())
	}
}

func TestListenFailsOnTakenAddress(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := metrics.Listen("127.0.0.1:0", reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if _, err := metrics.Listen(s.Addr().String(), reg, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("a second server bound the same address")
	}
}
