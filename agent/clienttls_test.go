package agent

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-dev/corral/agent/ca"
	"github.com/corral-dev/corral/agent/config"
	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/intercept/postgres"
)

func parseTargets(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func connTo(target, dst string) *intercept.Conn {
	c := &intercept.Conn{}
	c.Meta.Target = intercept.Target{Name: target, Protocol: "postgres"}
	c.Meta.OrigDst = netip.MustParseAddrPort(dst)
	return c
}

// handshake runs a TLS handshake against the config a connection got, as a
// client that trusts the CA and verifies serverName.
func handshake(t *testing.T, cfg *tls.Config, roots *x509.CertPool, serverName string) error {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() {
		srv := tls.Server(a, cfg)
		if srv.Handshake() == nil {
			io.Copy(io.Discard, srv) // until the client hangs up
		}
		a.Close()
	}()
	cli := tls.Client(b, &tls.Config{RootCAs: roots, ServerName: serverName})
	return cli.Handshake()
}

func TestClientTLSPerTargetAndConnection(t *testing.T) {
	cfg := parseTargets(t, `targets:
  - name: orders
    protocol: postgres
    endpoints: ["10.1.0.0/24:5432", "10.0.0.5:5432", "orders.internal:5432"]
    client_tls: {mode: allow}
  - name: billing
    protocol: postgres
    endpoints: ["10.0.0.6:5432"]
    client_tls: {mode: require}
  - name: plain
    protocol: postgres
    endpoints: ["10.0.0.7:5432"]
`)
	authority, err := ca.Open(ca.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(authority.Certificate())
	table := newTargetTable(cfg.Targets)
	p := &clientTLS{ca: authority, targets: table, log: slog.New(slog.DiscardHandler)}

	if got := p.forConn(connTo("plain", "10.0.0.7:5432")); got.Mode != postgres.ClientTLSDisable || got.Config != nil {
		t.Errorf("a target without client_tls: %+v", got)
	}
	if got := p.forConn(connTo("gone", "10.0.0.9:5432")); got.Mode != postgres.ClientTLSDisable {
		t.Errorf("an unknown target: %+v", got)
	}
	if got := p.forConn(connTo("billing", "10.0.0.6:5432")); got.Mode != postgres.ClientTLSRequire || handshake(t, got.Config, roots, "10.0.0.6") != nil {
		t.Errorf("billing: %+v", got)
	}

	// A CIDR endpoint: the certificate names the address this workload
	// dialled, besides the target's own names, and no other address.
	got := p.forConn(connTo("orders", "10.1.0.7:5432"))
	if got.Mode != postgres.ClientTLSAllow {
		t.Fatalf("orders: mode %v", got.Mode)
	}
	for _, name := range []string{"10.1.0.7", "10.0.0.5", "orders.internal"} {
		if err := handshake(t, got.Config, roots, name); err != nil {
			t.Errorf("verify as %s: %v", name, err)
		}
	}
	if err := handshake(t, got.Config, roots, "10.1.0.8"); err == nil || !strings.Contains(err.Error(), "10.1.0.8") {
		t.Errorf("verified for an address the workload did not dial: %v", err)
	}
	if err := handshake(t, p.forConn(connTo("orders", "10.1.0.8:5432")).Config, roots, "10.1.0.8"); err != nil {
		t.Errorf("another address of the range: %v", err)
	}

	// A reload changes the mode from the next connection on.
	table.replace(parseTargets(t, `targets:
  - name: orders
    protocol: postgres
    endpoints: ["10.1.0.0/24:5432"]
    client_tls: {mode: require}
  - name: billing
    protocol: postgres
    endpoints: ["10.0.0.6:5432"]
`).Targets)
	if got := p.forConn(connTo("orders", "10.1.0.7:5432")); got.Mode != postgres.ClientTLSRequire {
		t.Errorf("orders after reload: %v", got.Mode)
	}
	if got := p.forConn(connTo("billing", "10.0.0.6:5432")); got.Mode != postgres.ClientTLSDisable {
		t.Errorf("billing after reload: %v", got.Mode)
	}
}

// The agent publishes the certificate of the CA in use at a path that does
// not depend on where the CA comes from, and reuses a created CA.
func TestOpenCAPublishes(t *testing.T) {
	state := t.TempDir()
	cfg := parseTargets(t, `targets: [{name: a, protocol: tcp, endpoints: ["10.0.0.1:1"]}]
state_dir: `+state+`
`)
	log := slog.New(slog.DiscardHandler)
	first, err := openCA(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(state, "ca.pem")
	if PublishedCAPath(cfg) != pub {
		t.Errorf("published at %s", PublishedCAPath(cfg))
	}
	b, err := os.ReadFile(pub)
	if err != nil || string(b) != string(first.CertPEM()) {
		t.Fatalf("published: %v", err)
	}
	again, err := openCA(cfg, log)
	if err != nil || !again.Certificate().Equal(first.Certificate()) {
		t.Fatalf("a restart made a new CA: %v", err)
	}
	os.Chmod(filepath.Join(state, "ca", ca.KeyName), 0o644)
	if _, err := openCA(cfg, log); err == nil || !strings.HasPrefix(err.Error(), "ca: ") {
		t.Fatalf("a key open to others: %v", err)
	}
}
