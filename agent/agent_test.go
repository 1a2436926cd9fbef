//go:build linux

package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/corral-dev/corral/agent/config"
	"github.com/corral-dev/corral/bpf"
)

func lacking(name string) func() []bpf.Feature {
	return func() []bpf.Feature {
		return []bpf.Feature{
			{Name: "program type sockops"},
			{Name: name, Err: errors.New("not supported")},
		}
	}
}

// An incapable kernel stops the agent before it touches anything, and the
// error says what is missing and where to learn more.
func TestRunRefusesAKernelWithoutAFeature(t *testing.T) {
	cfg, err := config.Parse([]byte(`targets: [{name: a, protocol: tcp, endpoints: ["10.0.0.1:5432"]}]`))
	if err != nil {
		t.Fatal(err)
	}
	err = Run(context.Background(), Options{
		Config:   cfg,
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Features: lacking("helper bpf_sk_lookup_tcp in CGroupSockAddr"),
	})
	if err == nil {
		t.Fatal("agent started on a kernel that lacks a feature")
	}
	for _, want := range []string{"this kernel cannot run corral", "corral doctor", "helper bpf_sk_lookup_tcp in CGroupSockAddr: not supported"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "sockops") {
		t.Errorf("error lists a feature that is present: %q", err)
	}
}

func TestDoctorSaysWhatIsMissing(t *testing.T) {
	var out bytes.Buffer
	err := Doctor(&out, "", "", lacking("map type ring buffer"))
	if err == nil || !strings.Contains(err.Error(), "map type ring buffer") {
		t.Fatalf("doctor error %v", err)
	}
	if !strings.Contains(out.String(), "MISSING  map type ring buffer: not supported") || !strings.Contains(out.String(), "ok       program type sockops") {
		t.Errorf("doctor output:\n%s", out.String())
	}
	if strings.Contains(out.String(), "corral can run on this host") {
		t.Error("doctor claims the host is fine")
	}
}
