//go:build linux

package e2e

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-dev/corral/agent/ca"
	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/internal/testutil"
)

// psqlWith runs psql as a workload with libpq connection settings (sslmode,
// sslrootcert, ...), printing what libpq says of the connection
// (\conninfo: "SSL connection (protocol: ...)" when encrypted) and then the
// result of sql.
func (p *pgEnv) psqlWith(t *testing.T, conninfo, sql string) (string, error) {
	t.Helper()
	return testutil.Command(t, p.workCg, []string{"PGPASSWORD=not-the-password", "PGCONNECT_TIMEOUT=10"},
		"psql", "-X", "-w", "-At", "-v", "ON_ERROR_STOP=1", "-c", `\conninfo`, "-c", sql,
		fmt.Sprintf("host=%s port=5432 user=whoever dbname=orders %s", p.host.Addr, conninfo))
}

func (p *pgEnv) caFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(p.stateDir, "ca.pem")
	// The agent says where clients find the certificate to trust.
	p.a.WaitLine(t, 0, func(l string) bool { return strings.Contains(l, "corral CA") && strings.Contains(l, path) })
	return path
}

// otherCA is a CA the agent does not use, as a client might mistakenly trust.
func otherCA(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	a, err := ca.Open(ca.Options{Dir: filepath.Join(dir, "ca")})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "other.pem")
	if err := a.Publish(path); err != nil {
		t.Fatal(err)
	}
	return path
}

const sslLine = "SSL connection (protocol: TLSv1.3"

// A target given as a range: the workload picks the address, and the
// certificate corral presents names that address, so a client verifying
// it (verify-full) accepts corral and one trusting another CA refuses it.
// mode allow still serves clients that do not ask for TLS.
func TestPostgresClientTLSVerifyFull(t *testing.T) {
	p := newPGEnvAt(t, testutil.PostgresOptions{}, "app", "app-secret-pw",
		"client_tls: {mode: allow}\n    upstream_tls: {mode: disable}",
		func(h *testutil.Host) string {
			return netip.PrefixFrom(h.Addr, 24).Masked().String() + ":5432"
		})
	root := p.caFile(t)

	from := p.a.Mark()
	out, err := p.psqlWith(t, "sslmode=verify-full sslrootcert="+root, "SELECT current_user, count(*) FROM orders")
	if err != nil || !strings.Contains(out, sslLine) || !strings.HasSuffix(out, "app|2") {
		t.Fatalf("verify-full with corral's CA: %v\n%s", err, out)
	}
	closed := p.a.WaitEvent(t, from, func(ev intercept.Event) bool { return ev.Event == intercept.EventClose })
	if closed.Error != "" || closed.BytesUp == 0 || closed.BytesDown == 0 {
		t.Errorf("TLS session audited as %+v", closed)
	}

	out, err = p.psqlWith(t, "sslmode=verify-full sslrootcert="+otherCA(t), "SELECT 1")
	if err == nil || !strings.Contains(out, "certificate verify failed") {
		t.Fatalf("a client trusting another CA connected: %v\n%s", err, out)
	}

	out, err = p.psqlWith(t, "sslmode=disable", "SELECT current_user")
	if err != nil || strings.Contains(out, "SSL connection") || !strings.HasSuffix(out, "app") {
		t.Fatalf("plaintext client under allow: %v\n%s", err, out)
	}
}

// A PostgreSQL 17 client negotiating TLS directly (no SSLRequest, ALPN
// "postgresql") is served as one that asks first; a ClientHello without
// that ALPN name is refused.
func TestPostgresClientDirectTLS(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "client_tls: {mode: require}\n    upstream_tls: {mode: disable}")
	root := p.caFile(t)
	c := testutil.StartFunc(t, p.workCg, "pgconn", p.host.Addr.String(), "sslmode=verify-full sslnegotiation=direct sslrootcert="+root)
	if got := c.Recv(t); got != "connected" {
		t.Fatalf("direct TLS client: %s", got)
	}
	c.Send(t, "tls")
	if got := c.Recv(t); got != "tls: postgresql" {
		t.Fatalf("connection: %s", got)
	}
	c.Send(t, "query 0 SELECT current_user")
	if got := c.Recv(t); got != "ok: app SELECT 1" {
		t.Fatalf("query: %s", got)
	}

	out, err := testutil.Command(t, p.workCg, nil, "sh", "-c", fmt.Sprintf(
		"openssl s_client -connect %s:5432 -servername orders -alpn http/1.1 </dev/null 2>&1", p.host.Addr))
	if !strings.Contains(out, "CONNECTED") {
		t.Fatalf("openssl s_client did not reach corral: %v\n%s", err, out)
	}
	if err == nil && strings.Contains(out, "ALPN protocol: http/1.1") {
		t.Fatalf("a TLS client for another protocol was served:\n%s", out)
	}
}

// mode require: a client that does not ask for TLS is told why it is
// refused; one that does is served; its cancel request, which libpq 15
// sends in plaintext on a connection of its own, still works.
func TestPostgresClientTLSRequired(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "client_tls: {mode: require}\n    upstream_tls: {mode: disable}")
	root := p.caFile(t)

	out, err := p.psqlWith(t, "sslmode=disable", "SELECT 1")
	if err == nil || !strings.Contains(out, `corral requires TLS for target "orders-db"`) {
		t.Fatalf("plaintext client under require: %v\n%s", err, out)
	}
	out, err = p.psqlWith(t, "sslmode=require", "SELECT current_user")
	if err != nil || !strings.Contains(out, sslLine) || !strings.HasSuffix(out, "app") {
		t.Fatalf("sslmode=require: %v\n%s", err, out)
	}

	// psql sends a cancel request on Ctrl-C (SIGINT).
	var buf bytes.Buffer
	cmd := exec.Command("psql", "-X", "-w", "-At", "-c", "SELECT count(*) FROM generate_series(1, 2000000000)",
		fmt.Sprintf("host=%s port=5432 user=whoever dbname=orders sslmode=verify-full sslrootcert=%s", p.host.Addr, root))
	cmd.Env = append(os.Environ(), "PGPASSWORD=x", "PGCONNECT_TIMEOUT=10")
	cmd.Stdout, cmd.Stderr = &buf, &buf
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: testutil.CgroupFD(t, p.workCg)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	// Cancel once the server runs the query (see TestPostgresCancelRequest).
	deadline := time.Now().Add(20 * time.Second)
	for p.pg.Exec(t, "orders", "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%generate_series%' AND pid <> pg_backend_pid() AND now() - query_start > interval '300 ms'")[0][0] != "1" {
		if time.Now().After(deadline) {
			t.Fatal("the query never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err == nil || !strings.Contains(buf.String(), "canceling statement due to user request") {
			t.Fatalf("psql was not cancelled: %v\n%s", err, buf.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("psql did not end after its cancel request\n%s", buf.String())
	}
}

// Without client_tls corral answers N as it always has: a client that
// prefers TLS connects in plaintext, one that requires it is refused. A
// reload that turns client TLS on applies to the next connection.
func TestPostgresClientTLSDefaultAndReload(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	root := p.caFile(t)

	out, err := p.psqlWith(t, "sslmode=prefer", "SELECT current_user")
	if err != nil || strings.Contains(out, "SSL connection") || !strings.HasSuffix(out, "app") {
		t.Fatalf("sslmode=prefer by default: %v\n%s", err, out)
	}
	out, err = p.psqlWith(t, "sslmode=require", "SELECT 1")
	if err == nil || !strings.Contains(out, "server does not support SSL") {
		t.Fatalf("sslmode=require by default: %v\n%s", err, out)
	}

	cfg, _ := os.ReadFile(p.config)
	from := p.a.Mark()
	writeAtomically(t, p.config, strings.Replace(string(cfg), "upstream_tls: {mode: disable}", "upstream_tls: {mode: disable}\n    client_tls: {mode: allow}", 1))
	p.a.WaitLine(t, from, func(l string) bool { return strings.Contains(l, "configuration reloaded") })
	out, err = p.psqlWith(t, "sslmode=verify-full sslrootcert="+root, "SELECT current_user")
	if err != nil || !strings.Contains(out, sslLine) || !strings.HasSuffix(out, "app") {
		t.Fatalf("verify-full after the reload: %v\n%s", err, out)
	}
}
