package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/corral-dev/corral/agent/config"
	"github.com/corral-dev/corral/agent/workload"
	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/intercept/tcp"
	"github.com/corral-dev/corral/policy"
)

// resolver answers every connection with the workload in w: the kernel's
// record, which this test has no eBPF for.
type resolver struct {
	dst netip.AddrPort
	w   atomic.Pointer[workload.Identity]
}

func (r *resolver) Resolve(uint64, netip.AddrPort, uint16) (intercept.Meta, error) {
	return intercept.Meta{OrigDst: r.dst, Target: intercept.Target{Name: "echo", Protocol: "tcp"}, Workload: *r.w.Load()}, nil
}

// The intercept server, the tcp relay and the policy engine count to the
// agent's metrics as connections come and go.
func TestInterceptServerCounts(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	cfg, err := config.Parse([]byte(`targets:
  - name: echo
    protocol: tcp
    endpoints: ["10.0.0.5:7"]
rules:
  - name: etl
    who: {unit: etl.service}
    targets: [echo]
    allow: [connect]
`))
	if err != nil {
		t.Fatal(err)
	}
	engine := policy.NewEngine(log)
	if _, err := engine.Load(context.Background(), cfg.Policy()); err != nil {
		t.Fatal(err)
	}

	echo, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()

	m, reg := newMetrics(t, sources())
	// The server counts a session's end and a denial before it audits
	// them: the audit event is the moment to read the counters.
	events := auditEvents(make(chan intercept.Event, 16))
	res := &resolver{dst: echo.Addr().(*net.TCPAddr).AddrPort()}
	srv := &intercept.Server{
		Resolver: res,
		Handlers: map[string]intercept.Handler{"tcp": &tcp.Handler{Dialer: &net.Dialer{}}},
		Policy:   engine,
		Auditor:  events,
		Log:      log,
		Metrics:  m,
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv.Go(ctx, ln, 1)
	defer func() {
		ln.Close()
		srv.Wait()
		cancel()
		srv.Shutdown(context.Background())
	}()

	dial := func() net.Conn {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}

	// An allowed workload: its session is active while it lasts.
	res.w.Store(&workload.Identity{Unit: "etl.service", PID: 4242})
	c := dial()
	if _, err := io.WriteString(c, "ping"); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping" {
		t.Fatalf("echo through corral: %q %v", b, err)
	}
	if got := value(t, reg, "corral_active_sessions", echoLabels); got != 1 {
		t.Errorf("active sessions during the session = %v, want 1", got)
	}
	c.Close()
	events.wait(t, intercept.EventClose)
	if got := value(t, reg, "corral_active_sessions", echoLabels); got != 0 {
		t.Errorf("active sessions after it = %v, want 0", got)
	}

	// A workload no rule covers is cut off.
	res.w.Store(&workload.Identity{Unit: "other.service"})
	c = dial()
	if n, err := c.Read(b); n != 0 || err == nil {
		t.Errorf("denied workload read %d, %v", n, err)
	}
	c.Close()

	events.wait(t, intercept.EventDeny)
	for result, want := range map[string]float64{"allowed": 1, "denied": 1, "rejected": 0, "error": 0} {
		if got := value(t, reg, "corral_connections_total", map[string]string{"target": "echo", "protocol": "tcp", "result": result}); got != want {
			t.Errorf("connections %s = %v, want %v", result, got, want)
		}
	}
	// A relay has no operations to decide: none are counted.
	if n, err := testutil.GatherAndCount(reg, "corral_operations_total"); err != nil || n != 3 {
		t.Errorf("operations series: %d %v", n, err)
	}
	for _, d := range []string{"allow", "deny", "review"} {
		if got := value(t, reg, "corral_operations_total", map[string]string{"decision": d}); got != 0 {
			t.Errorf("operations %s = %v", d, got)
		}
	}
}

var echoLabels = map[string]string{"target": "echo", "protocol": "tcp"}

type auditEvents chan intercept.Event

func (a auditEvents) Audit(e intercept.Event) { a <- e }

// wait waits for the next event of kind.
func (a auditEvents) wait(t *testing.T, kind string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-a:
			if e.Event == kind {
				return
			}
		case <-timeout:
			t.Fatalf("no %s event", kind)
		}
	}
}
