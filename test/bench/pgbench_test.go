//go:build linux

package bench

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-dev/corral/internal/testutil"
)

var (
	tpsRe     = regexp.MustCompile(`tps = ([\d.]+) \(without initial connection time\)`)
	latencyRe = regexp.MustCompile(`latency average = ([\d.]+) ms`)
)

// BenchmarkPgbench runs `pgbench -S` against one real PostgreSQL three
// ways in the same run: directly (baseline), through pgbouncer in session
// mode, and through corral with policy and masking on. ns/op is the time
// per transaction (1e9 / TPS), so benchratio's ratio is TPS relative to
// direct. Each case runs PGBENCH_SECONDS (default 5).
func BenchmarkPgbench(b *testing.B) {
	testutil.RequireBPF(b)
	seconds := os.Getenv("PGBENCH_SECONDS")
	if seconds == "" {
		seconds = "5"
	}
	host := testutil.NewHost(b)
	pg := testutil.StartPostgres(b, host, testutil.PostgresOptions{})
	bin := testutil.PostgresBin(b)
	if out, err := exec.Command(filepath.Join(bin, "pgbench"), "-i", "-s", "1", "-q", "-h", pg.Dir, "-U", "postgres", "postgres").CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	pg.Exec(b, "postgres", `CREATE ROLE app LOGIN PASSWORD 'app-secret-pw';
GRANT SELECT, UPDATE, INSERT ON ALL TABLES IN SCHEMA public TO app;
CREATE TABLE customers (id int, email text); GRANT SELECT ON customers TO app;`)

	// corral intercepts a cgroup of its own; the baselines run outside it.
	attached := testutil.NewCgroup(b, "")
	agentCg := testutil.NewCgroup(b, attached)
	workCg := testutil.NewCgroup(b, attached)
	outside := testutil.NewCgroup(b, "")
	dir := b.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("app-secret-pw"), 0o600)
	cfg := filepath.Join(dir, "corral.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`targets:
  - name: bench-db
    protocol: postgres
    endpoints: ["%s:5432"]
    credentials:
      default: {username: app, password_file: %s}
    upstream_tls: {mode: disable}
rules:
  - name: pgbench
    who: {exe: "/usr/lib/postgresql/*/bin/pgbench"}
    targets: [bench-db]
    allow: [select, transaction, set, show]
    deny: [drop, truncate]
    mask:
      - {columns: [customers.email], method: partial}
audit_log: %s/audit.log
state_dir: %s
admin_socket: %[4]s/admin.sock
cgroup_path: %s
bpf_pin_dir: %s
metrics_address: 127.0.0.1:0
`, host.Addr, pw, dir, dir, attached, testutil.BPFPinDir(b))), 0o600)
	agent := testutil.StartAgent(b, cfg, agentCg)
	bouncer, bouncerPID := startPgbouncer(b, host.Addr.String())

	// The same target recorded (strict, the default) and not: the target's
	// recording mode is read for every new connection, so a reload
	// switches it between cases. "tcp" makes it a plain relay of the same
	// server, unrecorded: what a Go data plane costs before any of the
	// PostgreSQL work.
	base, _ := os.ReadFile(cfg)
	recording := func(mode string) {
		from := agent.Mark()
		next := bytes.Replace(base, []byte("    protocol: postgres\n"), []byte("    protocol: postgres\n    recording: "+mode+"\n"), 1)
		if mode == "tcp" {
			next = relayConfig(b, base)
		}
		os.WriteFile(cfg, next, 0o600)
		agent.WaitLine(b, from, func(l string) bool { return strings.Contains(l, "configuration reloaded") })
	}

	type target struct {
		name, cgroup, host, port, password, recording string
		proxy                                         int // the proxy's process, whose CPU time is reported
	}
	targets := []target{
		{"baseline", outside, host.Addr.String(), "5432", "app-secret-pw", "", 0},
		{"pgbouncer", outside, "127.0.0.1", bouncer, "app-secret-pw", "", bouncerPID},
		{"corral", workCg, host.Addr.String(), "5432", "anything", "strict", agent.PID()},
		{"corral-unrecorded", workCg, host.Addr.String(), "5432", "anything", "off", agent.PID()},
		{"corral-tcp", workCg, host.Addr.String(), "5432", "app-secret-pw", "tcp", agent.PID()},
	}
	for _, mode := range []string{"simple", "prepared"} {
		for _, clients := range []int{1, 8} {
			for _, tg := range targets {
				b.Run(fmt.Sprintf("select-%s-c%d/%s", mode, clients, tg.name), func(b *testing.B) {
					if tg.recording != "" {
						recording(tg.recording)
					}
					logs := b.TempDir()
					os.Chmod(logs, 0o777)
					var cpu0 time.Duration
					if tg.proxy != 0 {
						cpu0 = testutil.ProcessCPU(b, tg.proxy)
					}
					out, err := testutil.Command(b, tg.cgroup, []string{"PGPASSWORD=" + tg.password},
						filepath.Join(bin, "pgbench"), "-S", "-n", "-M", mode, "-c", strconv.Itoa(clients), "-j", strconv.Itoa(min(clients, 2)),
						"-T", seconds, "-l", "--log-prefix", filepath.Join(logs, "tx"),
						"-h", tg.host, "-p", tg.port, "-U", "app", "postgres")
					if err != nil {
						b.Fatalf("pgbench: %v\n%s", err, out)
					}
					m := tpsRe.FindStringSubmatch(out)
					l := latencyRe.FindStringSubmatch(out)
					if m == nil || l == nil {
						b.Fatalf("pgbench output:\n%s", out)
					}
					tps, _ := strconv.ParseFloat(m[1], 64)
					lat, _ := strconv.ParseFloat(l[1], 64)
					b.ReportMetric(1e9/tps, "ns/op")
					b.ReportMetric(tps, "tps")
					p50, txs := median(b, logs)
					b.ReportMetric(p50, "µs-p50")
					b.ReportMetric(lat*1000, "µs-latency")
					if tg.proxy != 0 {
						// The proxy's CPU time per transaction: steadier
						// than throughput on a noisy machine.
						cpu := testutil.ProcessCPU(b, tg.proxy) - cpu0
						b.ReportMetric(float64(cpu.Microseconds())/float64(txs), "proxy-µs/tx")
					}
				})
			}
		}
	}
}

// relayConfig turns the benchmark's configuration into one where the
// target is a plain, unrecorded TCP relay admitted by the same rule.
func relayConfig(b *testing.B, base []byte) []byte {
	b.Helper()
	out := string(base)
	for _, r := range [][2]string{
		{"    protocol: postgres\n", "    protocol: tcp\n    recording: off\n"},
		{"    allow: [select, transaction, set, show]\n    deny: [drop, truncate]\n    mask:\n      - {columns: [customers.email], method: partial}\n", "    allow: [\"*\"]\n"},
	} {
		if !strings.Contains(out, r[0]) {
			b.Fatalf("benchmark configuration lacks %q", r[0])
		}
		out = strings.Replace(out, r[0], r[1], 1)
	}
	var kept []string
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "    credentials:") && !strings.HasPrefix(line, "      default:") && !strings.HasPrefix(line, "    upstream_tls:") {
			kept = append(kept, line)
		}
	}
	return []byte(strings.Join(kept, "\n"))
}

// startPgbouncer runs pgbouncer in session mode in front of addr:5432 on
// 127.0.0.1, as the postgres user, and returns its port and process id.
func startPgbouncer(b *testing.B, addr string) (string, int) {
	b.Helper()
	path, err := exec.LookPath("pgbouncer")
	if err != nil {
		path = "/usr/sbin/pgbouncer"
		if _, err := os.Stat(path); err != nil {
			b.Skip("pgbouncer is not installed (apt-get install pgbouncer)")
		}
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		b.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, _ := os.MkdirTemp("", "corral-pgbouncer-")
	b.Cleanup(func() { os.RemoveAll(dir) })
	os.Chown(dir, uid, gid)
	port := "16432"
	ini := fmt.Sprintf(`[databases]
postgres = host=%s port=5432 dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %s
unix_socket_dir =
auth_type = plain
auth_file = %s/users.txt
pool_mode = session
max_client_conn = 100
default_pool_size = 20
logfile = %s/pgbouncer.log
pidfile = %s/pgbouncer.pid
`, addr, port, dir, dir, dir)
	for name, content := range map[string]string{"pgbouncer.ini": ini, "users.txt": `"app" "app-secret-pw"` + "\n"} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		os.Chown(p, uid, gid)
	}
	cmd := exec.Command(path, filepath.Join(dir, "pgbouncer.ini"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
	})
	for i := 0; i < 100; i++ {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second); err == nil {
			c.Close()
			return port, cmd.Process.Pid
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
	b.Fatalf("pgbouncer did not start:\n%s", log)
	return "", 0
}

// median is the median transaction latency, in µs, of pgbench's
// per-transaction logs in dir (the third field of each line), and how
// many transactions they hold.
func median(b *testing.B, dir string) (float64, int) {
	b.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "tx.*"))
	var lat []float64
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if fs := strings.Fields(line); len(fs) >= 3 {
				if v, err := strconv.ParseFloat(fs[2], 64); err == nil {
					lat = append(lat, v)
				}
			}
		}
	}
	if len(lat) == 0 {
		b.Fatalf("no transaction logs in %s", dir)
	}
	slices.Sort(lat)
	return lat[len(lat)/2], len(lat)
}
