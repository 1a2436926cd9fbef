//go:build linux

package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/internal/testutil"
)

// The dba rule comes first, so its credential is the session's when a
// token puts the workload in group dba; without one, only the kernel's
// rule applies.
const oidcConfig = `targets:
  - name: orders-db
    protocol: postgres
    endpoints: [%q]
    client_auth: %s
    credentials:
      default: {username: app, password_file: %s}
      writer: {username: migrator, password_file: %s}
    upstream_tls: {mode: disable}
rules:
  - name: dba
    who: {oidc: {groups: [dba]}}
    targets: [orders-db]
    allow: [select, insert, ddl]
    credential: writer
  - name: workloads
    who: {cgroup: %q}
    targets: [orders-db]
    allow: [select]
oidc:
  issuers: [{url: %q, audiences: [%s]}]
audit_log: "-"
state_dir: %s
admin_socket: %[8]s/admin.sock
cgroup_path: %s
bpf_pin_dir: %s
log_level: debug
`

type oidcEnv struct {
	*env
	pg     *testutil.Postgres
	a      *testutil.Agent
	issuer *testutil.OIDCIssuer
	pw, wr string // password files
}

func (o *oidcEnv) writeConfig(t *testing.T, clientAuth, audience string) {
	t.Helper()
	cfg := fmt.Sprintf(oidcConfig, addr(o.host.Addr, 5432), clientAuth, o.pw, o.wr, o.rel(o.workCg), o.issuer.URL, audience, o.stateDir, o.cgroup, o.pinDir)
	writeAtomically(t, o.config, cfg)
}

// reconfigure changes the live agent's configuration and waits for it to
// take effect.
func (o *oidcEnv) reconfigure(t *testing.T, clientAuth, audience string) {
	t.Helper()
	from := o.a.Mark()
	o.writeConfig(t, clientAuth, audience)
	o.a.WaitLine(t, from, func(l string) bool { return strings.Contains(l, "configuration reloaded") })
}

// psql runs psql in the covered cgroup presenting password (a token, or
// not) and returns its output.
func (o *oidcEnv) psql(t *testing.T, password, sql string) (string, error) {
	t.Helper()
	return testutil.Command(t, o.workCg, []string{"PGPASSWORD=" + password, "PGCONNECT_TIMEOUT=10", "PGSSLMODE=prefer"},
		"psql", "-X", "-w", "-At", "-v", "ON_ERROR_STOP=1", "-h", o.host.Addr.String(), "-U", "whoever", "-d", "orders", "-c", sql)
}

// A token presented as the PostgreSQL password is verified against the
// configured issuer, and its groups earn the rights and the credential of
// the rule that names them; a bad token is refused, never taken for the
// kernel identity alone.
func TestOIDCPostgresLogin(t *testing.T) {
	e := newEnv(t, func(h *testutil.Host) []string { return []string{addr(h.Addr, 5432)} })
	pg := testutil.StartPostgres(t, e.host, testutil.PostgresOptions{})
	pg.Exec(t, "postgres", "CREATE DATABASE orders")
	pg.Exec(t, "orders", ordersSchema+`
SET password_encryption = 'scram-sha-256';
CREATE ROLE migrator LOGIN PASSWORD 'migrator-secret-pw';
GRANT CREATE ON SCHEMA public TO migrator;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO migrator;
`)
	o := &oidcEnv{env: e, pg: pg, issuer: testutil.StartOIDCIssuer(t), pw: filepath.Join(e.stateDir, "pw"), wr: filepath.Join(e.stateDir, "wr")}
	os.WriteFile(o.pw, []byte("app-secret-pw\n"), 0o600)
	os.WriteFile(o.wr, []byte("migrator-secret-pw\n"), 0o600)
	o.writeConfig(t, "token", "corral")
	o.a = e.start(t)

	valid := o.issuer.Token(t, nil)
	forger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}

	// A valid token: the dba rule's rights and credential.
	from := o.a.Mark()
	out, err := o.psql(t, valid, "SELECT current_user")
	if err != nil || out != "migrator" {
		t.Fatalf("with a valid token: %q %v", out, err)
	}
	open := o.a.WaitEvent(t, from, func(ev intercept.Event) bool { return ev.Event == intercept.EventOpen })
	if w := open.Workload; w == nil || w.OIDC == nil || w.OIDC.Subject != "alice" || w.OIDC.Issuer != o.issuer.URL || w.OIDC.Email != "alice@example.com" {
		t.Errorf("open event does not carry the token's identity: %+v", open.Workload)
	} else if w.CgroupPath != e.rel(e.workCg) {
		t.Errorf("the kernel identity was lost: %+v", w)
	}
	if open.Rule != "dba" || open.Decision != "allow" {
		t.Errorf("open event: rule %q decision %q, want the dba rule", open.Rule, open.Decision)
	}
	if out, err := o.psql(t, valid, "CREATE TABLE made_by_token (id int)"); err != nil {
		t.Fatalf("ddl with a dba token: %q %v", out, err)
	}
	if !tableExists(t, pg, "made_by_token") {
		t.Fatal("the table made with a dba token is missing")
	}

	// No token: the kernel identity alone, with its own rule's rights.
	if out, err := o.psql(t, "not-a-token", "SELECT current_user"); err != nil || out != "app" {
		t.Fatalf("without a token: %q %v", out, err)
	}
	if out, err := o.psql(t, "not-a-token", "CREATE TABLE made_without_token (id int)"); err == nil || !strings.Contains(out, "corral: no rule allows ddl") {
		t.Fatalf("ddl without a token: %q %v", out, err)
	}

	// Bad tokens are refused, with the reason.
	for _, c := range []struct {
		name, token, reason string
	}{
		{"expired", o.issuer.Token(t, map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}), "corral could not verify the token: token expired at"},
		{"forged", testutil.SignJWT(t, jose.RS256, forger, "k1", o.issuer.Claims(nil)), "corral could not verify the token: token signature does not verify"},
		{"wrong audience", o.issuer.Token(t, map[string]any{"aud": "another-service"}), "corral could not verify the token: token is for audience"},
	} {
		t.Run(c.name, func(t *testing.T) {
			from := o.a.Mark()
			out, err := o.psql(t, c.token, "SELECT current_user")
			if err == nil || !strings.Contains(out, c.reason) {
				t.Fatalf("%s token: %q %v; want a refusal saying %q", c.name, out, err, c.reason)
			}
			deny := o.a.WaitEvent(t, from, func(ev intercept.Event) bool { return ev.Event == intercept.EventDeny })
			if !strings.Contains(deny.Reason, c.reason) {
				t.Errorf("deny event reason %q", deny.Reason)
			}
		})
	}

	// A token is now required: without one the login is refused; with one
	// it goes on as before.
	o.reconfigure(t, "token-required", "corral")
	if out, err := o.psql(t, "not-a-token", "SELECT 1"); err == nil || !strings.Contains(out, `corral: target "orders-db" requires an OIDC token (a JWT) as the password`) {
		t.Fatalf("no token on a token-required target: %q %v", out, err)
	}
	if out, err := o.psql(t, valid, "SELECT current_user"); err != nil || out != "migrator" {
		t.Fatalf("token on a token-required target: %q %v", out, err)
	}

	// The issuers reload too: a token for an audience no longer accepted
	// is refused.
	o.reconfigure(t, "token-required", "elsewhere")
	if out, err := o.psql(t, valid, "SELECT 1"); err == nil || !strings.Contains(out, "token is for audience") {
		t.Fatalf("token after its audience was dropped: %q %v", out, err)
	}

	for _, l := range o.a.Lines() {
		if strings.Contains(l, valid) || strings.Contains(l, "migrator-secret-pw") {
			t.Fatalf("a secret reached the agent's output: %s", l)
		}
	}
}

func tableExists(t *testing.T, pg *testutil.Postgres, name string) bool {
	t.Helper()
	return pg.Exec(t, "orders", fmt.Sprintf("SELECT count(*) FROM pg_class WHERE relname = '%s'", name))[0][0] == "1"
}
