package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/internal/testutil"
)

// hold opens args[2] connections of kind args[0] ("tcp" or "postgres") to
// args[1], says "ready", and keeps them until its input closes.
func init() {
	testutil.RegisterFunc("hold", func(args []string, in *bufio.Scanner, out io.Writer) error {
		n, _ := strconv.Atoi(args[2])
		var closers []io.Closer
		defer func() {
			for _, c := range closers {
				c.Close()
			}
		}()
		for i := 0; i < n; i++ {
			switch args[0] {
			case "tcp":
				c, err := net.Dial("tcp", args[1])
				if err != nil {
					return err
				}
				closers = append(closers, c)
			case "postgres":
				c, err := pgconn.Connect(context.Background(), "postgres://whoever:x@"+args[1]+"/postgres?sslmode=disable")
				if err != nil {
					return err
				}
				closers = append(closers, closeFunc(func() error { return c.Close(context.Background()) }))
			}
		}
		fmt.Fprintln(out, "ready")
		for in.Scan() {
		}
		return nil
	})
}

type closeFunc func() error

func (f closeFunc) Close() error { return f() }

// BenchmarkIdleSessionMemory is what an idle proxied connection costs the
// agent: the Go heap and stacks in use (from the agent's own /metrics,
// after the sessions settle) with N idle sessions open, less before, per
// session (target: 64 KiB). Resident memory is reported beside it, but the
// runtime returns and retakes pages as it likes, so it is the coarser
// figure. Plain TCP relays and PostgreSQL sessions with policy, masking
// and recording on. b.N is not used: one measurement.
func BenchmarkIdleSessionMemory(b *testing.B) {
	testutil.RequireBPF(b)
	host := testutil.NewHost(b)
	pg := testutil.StartPostgres(b, host, testutil.PostgresOptions{})
	pg.Exec(b, "postgres", `CREATE ROLE app LOGIN PASSWORD 'app-secret-pw'; CREATE TABLE customers (id int, email text); GRANT SELECT ON customers TO app;`)
	testutil.Echo(b, host.Listen(b, host.Addr.String()+":7"))

	attached := testutil.NewCgroup(b, "")
	agentCg := testutil.NewCgroup(b, attached)
	workCg := testutil.NewCgroup(b, attached)
	dir := b.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("app-secret-pw"), 0o600)
	cfg := filepath.Join(dir, "corral.yaml")
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	metricsAddr := l.Addr().String()
	l.Close()
	os.WriteFile(cfg, []byte(fmt.Sprintf(`targets:
  - name: db
    protocol: postgres
    endpoints: ["%[1]s:5432"]
    credentials:
      default: {username: app, password_file: %[2]s}
    upstream_tls: {mode: disable}
  - name: echo
    protocol: tcp
    endpoints: ["%[1]s:7"]
rules:
  - name: all
    who: {any: true}
    targets: [db, echo]
    allow: ["*"]
    mask:
      - {columns: [customers.email], method: partial}
audit_log: "-"
state_dir: %[3]s
cgroup_path: %[4]s
bpf_pin_dir: %[5]s
metrics_address: %[6]s
`, host.Addr, pw, dir, attached, testutil.BPFPinDir(b), metricsAddr)), 0o600)
	agent := testutil.StartAgent(b, cfg, agentCg)

	for _, c := range []struct {
		kind, addr string
		n          int
	}{
		// The small case first: after 1000 relays have closed, the
		// runtime keeps their freed stacks and spans for reuse, and the
		// next case's growth would hide in them.
		{"postgres", host.Addr.String() + ":5432", 80},
		{"tcp", host.Addr.String() + ":7", 1000},
	} {
		b.Run(c.kind, func(b *testing.B) {
			// One session first, so what every session shares (code
			// paths, catalogs, pools) is counted before.
			warm := testutil.StartFunc(b, workCg, "hold", c.kind, c.addr, "1")
			if got := warm.Recv(b); got != "ready" {
				b.Fatal(got)
			}
			before, beforeRSS, beforeFDs := goMemory(b, metricsAddr), rss(b, agent.PID()), fds(b, agent.PID())
			from := agent.Mark()
			f := testutil.StartFunc(b, workCg, "hold", c.kind, c.addr, strconv.Itoa(c.n))
			if got := f.Recv(b); got != "ready" {
				b.Fatal(got)
			}
			opened := 0
			agent.WaitEvent(b, from, func(e intercept.Event) bool {
				if e.Event == intercept.EventOpen {
					opened++
				}
				return opened == c.n
			})
			after, afterRSS, afterFDs := goMemory(b, metricsAddr), rss(b, agent.PID()), fds(b, agent.PID())
			b.ReportMetric(float64(after-before)/1024/float64(c.n), "KiB/session")
			b.ReportMetric(float64(afterRSS-beforeRSS)/float64(c.n), "RSS-KiB/session")
			b.ReportMetric(float64(afterFDs-beforeFDs)/float64(c.n), "fds/session")
			b.ReportMetric(float64(c.n), "sessions")

			// Every session ends before the next measurement starts.
			from = agent.Mark()
			f.Close()
			warm.Close()
			closed := 0
			agent.WaitEvent(b, from, func(e intercept.Event) bool {
				if e.Event == intercept.EventClose {
					closed++
				}
				return closed == c.n+1
			})
		})
	}
}

// rss is a process's resident set in KiB.
// fds is the number of descriptors pid has open.
func fds(b *testing.B, pid int) int {
	b.Helper()
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		b.Fatal(err)
	}
	return len(es)
}

func rss(b *testing.B, pid int) int {
	b.Helper()
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(s), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// goMemory is the agent's allocated Go heap and its stacks, in bytes, just
// after a garbage collection, so that garbage does not count: scrapes
// allocate in the agent, and it is scraped until its collection count
// moves. What a scrape allocates between the collection and the reading
// counts too (a few MiB at times, against 80 PostgreSQL sessions), so the
// least of the readings after three collections is taken.
func goMemory(b *testing.B, addr string) float64 {
	b.Helper()
	last, least, seen := -1.0, -1.0, 0
	for i := 0; i < 60000 && seen < 3; i++ {
		m := scrape(b, addr)
		gcs := m["go_gc_duration_seconds_count"]
		if last >= 0 && gcs > last {
			v := m["go_memstats_heap_alloc_bytes"] + m["go_memstats_stack_inuse_bytes"]
			if least < 0 || v < least {
				least = v
			}
			seen++
		}
		last = gcs
	}
	if seen == 0 {
		b.Fatal("the agent never collected garbage")
	}
	return least
}

func scrape(b *testing.B, addr string) map[string]float64 {
	_, body := testutil.HTTPGet(b, "http://"+addr+"/metrics")
	m := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if f := strings.Fields(line); len(f) == 2 && !strings.HasPrefix(line, "#") {
			v, _ := strconv.ParseFloat(f[1], 64)
			m[f[0]] = v
		}
	}
	return m
}
