package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseValid(t *testing.T) {
	c, err := Parse([]byte(`
targets:
  - name: orders-db
    protocol: tcp
    endpoints: ["10.0.0.5:5432", "10.1.0.0/24:5432", "[2001:db8::7]:22", "[2001:db8:1::/48]:443", "Orders.Internal:5432"]
audit_log: "-"
netns_rescan_interval: 500ms
socket_mark: 0
`))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Targets[0].Parsed
	want := []Endpoint{
		{Prefix: netip.MustParsePrefix("10.0.0.5/32"), Port: 5432},
		{Prefix: netip.MustParsePrefix("10.1.0.0/24"), Port: 5432},
		{Prefix: netip.MustParsePrefix("2001:db8::7/128"), Port: 22},
		{Prefix: netip.MustParsePrefix("2001:db8:1::/48"), Port: 443},
		{Host: "orders.internal", Port: 5432},
	}
	if len(got) != len(want) {
		t.Fatalf("parsed %d endpoints, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("endpoint %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if c.AuditLog != "-" || c.StateDir != DefaultStateDir || c.BPFPinDir != DefaultPinDir {
		t.Errorf("defaults not applied: %+v", c)
	}
	if c.NetnsRescan != 500*time.Millisecond || c.DNSRefresh != DefaultDNSRefresh {
		t.Errorf("durations: %v %v", c.NetnsRescan, c.DNSRefresh)
	}
	if c.SocketMark == nil || *c.SocketMark != 0 {
		t.Errorf("explicit socket_mark 0 must disable the mark, got %v", c.SocketMark)
	}
}

func TestClientTLSAndCA(t *testing.T) {
	c, err := Parse([]byte(`
targets:
  - {name: a, protocol: postgres, endpoints: ["10.0.0.1:5432"]}
  - {name: b, protocol: postgres, endpoints: ["10.0.0.2:5432"], client_tls: {mode: allow}}
  - {name: c, protocol: postgres, endpoints: ["10.0.0.3:5432"], client_tls: {mode: require}}
  - {name: d, protocol: postgres, endpoints: ["10.0.0.4:5432"], client_tls: {mode: disable}}
ca: {cert_file: /etc/corral/ca.crt, key_file: /etc/corral/ca.key}
`))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"disable", "allow", "require", "disable"} {
		if got := c.Targets[i].ClientTLSMode(); got != want {
			t.Errorf("targets[%d] client TLS mode %q, want %q", i, got, want)
		}
	}
	if c.CA.CertFile != "/etc/corral/ca.crt" || c.CA.KeyFile != "/etc/corral/ca.key" {
		t.Errorf("ca: %+v", c.CA)
	}
}

func TestEndpointString(t *testing.T) {
	for _, s := range []string{"10.0.0.5:5432", "10.1.0.0/24:5432", "[2001:db8::7]:22", "[2001:db8:1::/48]:443", "db.internal:5432"} {
		e, err := ParseEndpoint(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if e.String() != s {
			t.Errorf("ParseEndpoint(%q).String() = %q", s, e.String())
		}
	}
}

// Every rejection names the field it is about, so the operator knows where
// to look without reading the source.
func TestValidationNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"no targets", `audit_log: "-"`, []string{"targets: at least one target is required"}},
		{"unknown protocol", `
targets:
  - {name: a, protocol: gopher, endpoints: ["10.0.0.1:70"]}`, []string{`targets[0].protocol: unknown protocol "gopher"`}},
		{"missing protocol", `
targets:
  - {name: a, endpoints: ["10.0.0.1:70"]}`, []string{"targets[0].protocol: required"}},
		{"bad CIDR", `
targets:
  - {name: a, protocol: tcp, endpoints: ["10.0.0.1:70"]}
  - {name: b, protocol: tcp, endpoints: ["10.0.0.0/33:5432"]}`, []string{`targets[1].endpoints[0]: "10.0.0.0/33:5432": bad CIDR`}},
		{"host bits in CIDR", `
targets:
  - {name: a, protocol: tcp, endpoints: ["10.0.0.1/24:5432"]}`, []string{`targets[0].endpoints[0]: "10.0.0.1/24:5432": bad CIDR "10.0.0.1/24": host bits set (did you mean 10.0.0.0/24?)`}},
		{"bad port", `
targets:
  - {name: a, protocol: tcp, endpoints: ["10.0.0.1:0", "10.0.0.1:99999", "10.0.0.1"]}`, []string{
			`targets[0].endpoints[0]: "10.0.0.1:0": bad port "0"`,
			`targets[0].endpoints[1]: "10.0.0.1:99999": bad port "99999"`,
			`targets[0].endpoints[2]: "10.0.0.1": want host:port`,
		}},
		{"garbage host", `
targets:
  - {name: a, protocol: tcp, endpoints: ["not_a host!:80", "0.0.0.0:80", "1.2.3:80"]}`, []string{
			`targets[0].endpoints[0]: "not_a host!:80": "not_a host!" is neither`,
			`targets[0].endpoints[1]: "0.0.0.0:80": "0.0.0.0" is the unspecified address`,
			`targets[0].endpoints[2]: "1.2.3:80": "1.2.3" is neither`,
		}},
		{"duplicate names", `
targets:
  - {name: db, protocol: tcp, endpoints: ["10.0.0.1:5432"]}
  - {name: db, protocol: tcp, endpoints: ["10.0.0.2:5432"]}`, []string{`targets[1].name: duplicate target name "db" (also targets[0])`}},
		{"duplicate endpoint", `
targets:
  - {name: a, protocol: tcp, endpoints: ["10.0.0.1:5432"]}
  - {name: b, protocol: tcp, endpoints: ["10.0.0.1:5432"]}`, []string{`targets[1].endpoints[0]: "10.0.0.1:5432" is already an endpoint of targets[0]`}},
		{"overlapping endpoints", `
targets:
  - {name: a, protocol: postgres, endpoints: ["10.0.0.0/24:5432"]}
  - {name: b, protocol: tcp, endpoints: ["10.0.1.0/24:5432", "10.0.0.5:5432"]}`, []string{`targets[1].endpoints[1]: "10.0.0.5:5432" overlaps targets[0].endpoints[0]`}},
		{"bad name", `
targets:
  - {name: "Orders DB", protocol: tcp, endpoints: ["10.0.0.1:5432"]}
  - {protocol: tcp, endpoints: ["10.0.0.2:5432"]}`, []string{`targets[0].name: "Orders DB" must be`, "targets[1].name: required"}},
		{"no endpoints", `
targets:
  - {name: a, protocol: tcp}`, []string{"targets[0].endpoints: at least one endpoint is required"}},
		{"unknown key", `
targets:
  - {name: a, protocol: tcp, endpoints: ["10.0.0.1:5432"], endpoint: "x"}`, []string{"field endpoint not found"}},
		{"unknown top-level key", `
targets:
  - {name: a, protocol: tcp, endpoints: ["10.0.0.1:5432"]}
audit_logs: x`, []string{"field audit_logs not found"}},
		{"agent settings", `
targets:
  - {name: a, protocol: tcp, endpoints: ["10.0.0.1:5432"]}
log_level: loud
netns_rescan_interval: 1ms
dns_refresh_interval: soon
max_procs: -1
`, []string{`dns_refresh_interval: "soon" is not a duration`, "netns_rescan_interval: must be at least 100ms", `log_level: "loud"`, "max_procs: -1: want 0"}},
		{"agent paths", `
targets:
  - {name: a, protocol: tcp, endpoints: ["10.0.0.1:5432"]}
log_level: loud
netns_rescan_interval: 1ms
bpf_pin_dir: corral
cgroup_path: sys/fs/cgroup
state_dir: var/lib/corral
`, []string{
			`log_level: "loud" is not one of`,
			"netns_rescan_interval: must be at least 100ms",
			`bpf_pin_dir: "corral" must be an absolute path`,
			`cgroup_path: "sys/fs/cgroup" must be an absolute path`,
			`state_dir: "var/lib/corral" must be an absolute path`,
		}},
		{"credentials", `
targets:
  - name: db
    protocol: tcp
    endpoints: ["10.0.0.1:5432"]
    credentials:
      default: {username: app}
      both: {password_file: /etc/x, password_env: X}
      rel: {password_file: etc/x}
      Bad_Alias: {password_env: X}
      sec: {secret: {name: s}}
`, []string{
			"targets[0].credentials.default: give one of password_file, password_env, private_key_file, secret",
			"targets[0].credentials.both: give only one of",
			`targets[0].credentials.rel.password_file: "etc/x" must be an absolute path`,
			`targets[0].credentials.Bad_Alias: alias "Bad_Alias" must be`,
			"targets[0].credentials.sec.secret: namespace, name and key are all required",
		}},
		{"upstream tls", `
targets:
  - {name: a, protocol: tcp, endpoints: ["10.0.0.1:1"], upstream_tls: {mode: sometimes}}
  - {name: b, protocol: tcp, endpoints: ["10.0.0.2:1"], upstream_tls: {mode: verify-ca}}
  - {name: c, protocol: tcp, endpoints: ["10.0.0.3:1"], upstream_tls: {mode: verify-full, ca_file: ca.pem}}
`, []string{
			`targets[0].upstream_tls.mode: "sometimes" is not one of disable, require, verify-ca, verify-full`,
			"targets[1].upstream_tls.ca_file: required with mode verify-ca",
			`targets[2].upstream_tls.ca_file: "ca.pem" must be an absolute path`,
		}},
		{"client tls", `
targets:
  - {name: a, protocol: postgres, endpoints: ["10.0.0.1:1"], client_tls: {mode: sometimes}}
  - {name: b, protocol: postgres, endpoints: ["10.0.0.2:1"], client_tls: {}}
  - {name: c, protocol: tcp, endpoints: ["10.0.0.3:1"], client_tls: {mode: require}}
`, []string{
			`targets[0].client_tls.mode: "sometimes" is not one of disable, allow, require`,
			"targets[1].client_tls.mode: required (one of disable, allow, require)",
			"targets[2].client_tls: only postgres targets can terminate client TLS (this one is tcp)",
		}},
		{"client tls unknown key", `
targets:
  - {name: d, protocol: postgres, endpoints: ["10.0.0.4:1"], client_tls: {mode: allow, cert: x}}
`, []string{"field cert not found"}},
		{"ca files", `
targets:
  - {name: a, protocol: tcp, endpoints: ["10.0.0.1:1"]}
ca: {cert_file: ca.crt}
`, []string{
			"ca.key_file: required with ca.cert_file",
			`ca.cert_file: "ca.crt" must be an absolute path`,
		}},
		{"ca unknown key", `
targets:
  - {name: a, protocol: tcp, endpoints: ["10.0.0.1:1"]}
ca: {key_file: /etc/corral/ca.key, cert: /x}
`, []string{"field cert not found"}},
		{"ca key alone", `
targets:
  - {name: a, protocol: tcp, endpoints: ["10.0.0.1:1"]}
ca: {key_file: etc/corral/ca.key}
`, []string{
			"ca.cert_file: required with ca.key_file",
			`ca.key_file: "etc/corral/ca.key" must be an absolute path`,
		}},
		{"rules are validated against the targets", `
targets:
  - name: db
    protocol: tcp
    endpoints: ["10.0.0.1:5432"]
rules:
  - name: r
    who: {unit: x.service}
    targets: [dbb]
    allow: [connect]
  - name: s
    who: {unit: x.service}
    targets: [db]
    allow: [select]
    credential: writer
`, []string{
			`rules[0].targets[0]: unknown target "dbb"`,
			`rules[1].allow[0]: unknown operation "select" for connect targets`,
			`rules[1].credential: target "db" has no credential "writer"`,
		}},
		{"oidc and agent endpoints", `
targets:
  - {name: a, protocol: tcp, endpoints: ["10.0.0.1:1"]}
oidc:
  issuers:
    - {url: "ftp://issuer"}
policy_files: [custom.txt]
admin_socket: run/corral.sock
metrics_address: localhost
`, []string{
			`oidc.issuers[0].url: "ftp://issuer" is not an http(s) URL`,
			"oidc.issuers[0].audiences: required",
			`policy_files[0]: "custom.txt" is not a .rego file`,
			`admin_socket: "run/corral.sock" must be an absolute path`,
			`metrics_address: "localhost": want host:port`,
		}},
		{"recording", `
targets:
  - {name: a, protocol: tcp, endpoints: ["10.0.0.1:1"], recording: always}
recording: {dir: rec, sync_interval: 5m, max_age: forever, max_size: 10 parsecs}
`, []string{
			`targets[0].recording: "always" is not one of strict, best-effort, off`,
			`recording.dir: "rec" must be an absolute path`,
			`recording.sync_interval: "5m" is longer than a minute`,
			`recording.max_age: "forever" is not a duration`,
			`recording.max_size: "10 parsecs" is not a size`,
		}},
		{"client auth", `
targets:
  - {name: a, protocol: postgres, endpoints: ["10.0.0.1:5432"], client_auth: tokens}
  - {name: b, protocol: tcp, endpoints: ["10.0.0.2:22"], client_auth: token}
  - {name: c, protocol: postgres, endpoints: ["10.0.0.3:5432"], client_auth: token-required}
`, []string{
			`targets[0].client_auth: "tokens" is not one of kernel, token, token-required`,
			"targets[1].client_auth: token is not available for tcp targets (only postgres, ssh)",
			"targets[2].client_auth: token-required needs oidc.issuers",
		}},
		{"duplicate issuer", `
targets:
  - {name: a, protocol: postgres, endpoints: ["10.0.0.1:5432"], client_auth: token}
oidc:
  issuers:
    - {url: "https://issuer.example", audiences: corral}
    - {url: "https://issuer.example", audiences: other}
`, []string{`oidc.issuers[1].url: "https://issuer.example" is already oidc.issuers[0]`}},
		{"approvals", `
targets:
  - {name: a, protocol: postgres, endpoints: ["10.0.0.1:5432"]}
admin_group: "wheel:x"
approvals:
  listen: "approvals.example"
  names: ["not a name", "10.0.0.9"]
  cert_file: relative.pem
  webhook_timeout: 5m
  webhook_attempts: 50
  max_age: 1s
`, []string{
			`admin_group: "wheel:x" is not a group name`,
			`approvals.listen: "approvals.example": want host:port`,
			"approvals.listen: approvers over HTTPS present OIDC tokens: mark the issuer of the reviewers' tokens in oidc.issuers with approvers: true",
			`approvals.names[0]: "not a name" is neither an IP address nor a DNS name`,
			"approvals.cert_file: cert_file and key_file go together",
			`approvals.cert_file: "relative.pem" must be an absolute path`,
			`approvals.webhook_timeout: "5m" is longer than a minute`,
			"approvals.webhook_attempts: 50 is not between 1 and 20",
			"approvals.max_age: must be at least 1h0m0s",
		}},
		{"ssh target", `
targets:
  - name: web
    protocol: ssh
    endpoints: ["10.0.0.7:22"]
    ssh: {host_key: plain, login_shell: zsh}
    credentials:
      default: {private_key_file: key}
      both: {username: deploy, password_env: P, certificate: {}}
      cert: {username: deploy, certificate: {ttl: 48h, principals: ["a b"]}}
  - name: db
    protocol: postgres
    endpoints: ["10.0.0.8:5432"]
    ssh: {known_hosts: /etc/known_hosts}
    credentials:
      default: {username: u, certificate: {}}
rules:
  - name: r
    who: {any: true}
    targets: [db]
    commands: {deny: ["rm *"], review: ["reboot"]}
`, []string{
			"targets[0].ssh.known_hosts: required",
			`targets[0].ssh.host_key: "plain" is not one of certificate, key`,
			`targets[0].ssh.login_shell: "zsh" is not one of any, bash, sh`,
			"targets[0].credentials.default.username: required for ssh targets",
			`targets[0].credentials.default.private_key_file: "key" must be an absolute path`,
			"targets[0].credentials.both: give only one of password_file, password_env, private_key_file, secret, certificate",
			`targets[0].credentials.cert.certificate.ttl: "48h" is longer than 24h0m0s`,
			`targets[0].credentials.cert.certificate.principals[0]: "a b" is not a principal name`,
			"targets[1].ssh: only for ssh targets (this one is postgres)",
			"targets[1].credentials.default.certificate: only ssh targets use certificates",
			"rules[0].commands: commands apply to ssh targets only; this rule names sql targets",
			"rules[0].commands.review: needs review.reviewers",
		}},
		{"databases", `
targets:
  - {name: a, protocol: postgres, endpoints: ["10.0.0.1:5432"], databases: [orders, "", orders, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]}
  - {name: b, protocol: tcp, endpoints: ["10.0.0.2:6379"], databases: [cache]}
`, []string{
			"targets[0].databases[1]: is empty",
			`targets[0].databases[2]: "orders" is listed twice`,
			`targets[0].databases[3]: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" is longer than PostgreSQL's 63 bytes`,
			"targets[1].databases: is for postgres targets only",
		}},
		{"upstream_auth", `
targets:
  - {name: a, protocol: postgres, endpoints: ["10.0.0.1:5432"], upstream_auth: [md5, trust, md5]}
  - {name: b, protocol: tcp, endpoints: ["10.0.0.2:6379"], upstream_auth: [password]}
`, []string{
			`targets[0].upstream_auth[1]: "trust" is not one of scram-sha-256, md5, password, none`,
			`targets[0].upstream_auth[2]: "md5" is listed twice`,
			"targets[1].upstream_auth: is for postgres targets only",
		}},
		{"approvals settings without a listener", `
targets:
  - {name: a, protocol: postgres, endpoints: ["10.0.0.1:5432"]}
approvals: {names: [approvals.example]}
`, []string{"approvals.listen: required with approvals.names, cert_file or key_file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted an invalid config")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "corral.yaml")
	if err := os.WriteFile(p, []byte("targets: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("error should name the file: %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("missing file accepted")
	}
}

// A second YAML document would be read by nobody: a deny rule in it
// would silently not apply. The file is refused.
func TestParseRefusesASecondDocument(t *testing.T) {
	doc := `targets:
  - {name: a, protocol: postgres, endpoints: ["10.0.0.1:5432"]}
rules:
  - {name: r, who: {any: true}, targets: [a], allow: [select, drop]}
---
rules:
  - {name: guard, who: {any: true}, targets: [a], deny: [drop]}
`
	if _, err := Parse([]byte(doc)); err == nil || !strings.Contains(err.Error(), "more than one YAML document") {
		t.Fatalf("Parse: %v", err)
	}
	base := "targets:\n  - {name: a, protocol: postgres, endpoints: [\"10.0.0.1:5432\"]}\n"
	for _, ok := range []string{"---\n" + base, base + "---\n", "---\n" + base + "---\n", base + "---\n# a comment\n", base + "---\n~\n", base + "...\n"} {
		if _, err := Parse([]byte(ok)); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

func FuzzParseEndpoint(f *testing.F) {
	for _, s := range []string{"10.0.0.5:5432", "10.1.0.0/24:5432", "[::1]:22", "db:1", "[fe80::1%eth0]:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseEndpoint(s)
		if err != nil {
			return
		}
		if e.Port == 0 {
			t.Fatalf("%q: port 0 accepted", s)
		}
		if e.Host == "" && !e.Prefix.IsValid() {
			t.Fatalf("%q: neither host nor prefix", s)
		}
		// What we print must parse back to the same endpoint.
		again, err := ParseEndpoint(e.String())
		if err != nil || again != e {
			t.Fatalf("%q -> %q -> %+v, %v", s, e.String(), again, err)
		}
	})
}

func TestPolicyFilesLoadRelativeToTheConfig(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "custom.rego"), []byte("package corral.custom\n"), 0o600)
	p := filepath.Join(dir, "corral.yaml")
	os.WriteFile(p, []byte(`targets: [{name: a, protocol: tcp, endpoints: ["10.0.0.1:1"]}]
policy_files: [custom.rego, missing.rego]
`), 0o600)
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), "policy_files[1]") || strings.Contains(err.Error(), "policy_files[0]") {
		t.Fatalf("error %v: want policy_files[1] only", err)
	}
	os.WriteFile(p, []byte(`targets: [{name: a, protocol: tcp, endpoints: ["10.0.0.1:1"]}]
policy_files: [custom.rego]
oidc: {issuers: [{url: "https://issuer.example", audiences: corral}]}
`), 0o600)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if src := c.PolicyModules[filepath.Join(dir, "custom.rego")]; src != "package corral.custom\n" {
		t.Errorf("policy modules %v", c.PolicyModules)
	}
	if c.OIDC.Issuers[0].GroupsClaim != "groups" || c.AdminSocket != DefaultAdminSocket {
		t.Errorf("defaults: %+v %q", c.OIDC, c.AdminSocket)
	}
}

func TestClientAuth(t *testing.T) {
	c, err := Parse([]byte(`
targets:
  - {name: a, protocol: postgres, endpoints: ["10.0.0.1:5432"]}
  - {name: b, protocol: postgres, endpoints: ["10.0.0.2:5432"], client_auth: token}
  - {name: c, protocol: postgres, endpoints: ["10.0.0.3:5432"], client_auth: token-required}
  - {name: d, protocol: tcp, endpoints: ["10.0.0.4:22"], client_auth: kernel}
oidc:
  issuers: [{url: "https://issuer.example", audiences: [corral]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{ClientAuthKernel, ClientAuthToken, ClientAuthTokenRequired, ClientAuthKernel} {
		if got := c.Targets[i].ClientAuth; got != want {
			t.Errorf("targets[%d].client_auth = %q, want %q", i, got, want)
		}
	}
}

// The configuration reference in the README must stay a valid file.
func TestReadmeConfigReferenceParses(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "## Configuration\n\n```yaml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("README has no configuration block")
	}
	c, err := Parse([]byte(block))
	if err != nil {
		t.Fatalf("README configuration block: %v", err)
	}
	if len(c.Targets) == 0 || len(c.Rules) == 0 || len(c.Targets[0].Credentials) != 2 {
		t.Errorf("README configuration lost its content: %+v", c)
	}
}

func TestRecordingDefaultsAndSizes(t *testing.T) {
	c, err := Parse([]byte(`
state_dir: /srv/corral
targets:
  - {name: a, protocol: tcp, endpoints: ["10.0.0.1:1"]}
  - {name: b, protocol: tcp, endpoints: ["10.0.0.2:1"], recording: best-effort}
recording: {max_age: 720h, max_size: 10GiB}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Recording
	if r.Dir != "/srv/corral/sessions" || r.Sync != time.Second || r.Age != 720*time.Hour || r.MaxBytes != 10<<30 {
		t.Fatalf("recording = %+v", r)
	}
	if c.Targets[0].Recording != RecordStrict || c.Targets[1].Recording != RecordBestEffort {
		t.Fatalf("modes = %q, %q", c.Targets[0].Recording, c.Targets[1].Recording)
	}
	for in, want := range map[string]int64{"500MB": 500e6, "1048576": 1 << 20, "2 KiB": 2048} {
		if n, err := parseSize(in); err != nil || n != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, n, err, want)
		}
	}
}

func TestApprovalsDefaults(t *testing.T) {
	c, err := Parse([]byte(`
targets:
  - {name: a, protocol: postgres, endpoints: ["10.0.0.1:5432"]}
oidc:
  issuers: [{url: "https://issuer.example", audiences: corral, approvers: true}]
admin_group: corral-admins
approvals: {listen: "0.0.0.0:8443", names: [approvals.example, 10.0.0.9], max_age: 2160h}
`))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Approvals
	if a.Listen != "0.0.0.0:8443" || a.Webhook != 10*time.Second || a.WebhookAttempts != 5 || a.Age != 2160*time.Hour || c.AdminGroup != "corral-admins" {
		t.Fatalf("approvals = %+v", a)
	}
}

func TestKubernetes(t *testing.T) {
	const targets = "targets: [{name: a, protocol: tcp, endpoints: [\"10.0.0.1:1\"]}]\n"
	c, err := Parse([]byte(targets))
	if err != nil {
		t.Fatal(err)
	}
	if c.Kubernetes != (Kubernetes{}) {
		t.Errorf("kubernetes defaults = %+v, want empty (resolved at start)", c.Kubernetes)
	}
	c, err = Parse([]byte(targets + "kubernetes: {node_name: ip-10-0-0-7.eu-west-1.compute.internal, kubeconfig: /etc/corral/kubeconfig}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Kubernetes.NodeName != "ip-10-0-0-7.eu-west-1.compute.internal" || c.Kubernetes.Kubeconfig != "/etc/corral/kubeconfig" {
		t.Errorf("kubernetes = %+v", c.Kubernetes)
	}
	if _, err := Parse([]byte(targets + "kubernetes: {node_name: 10.0.0.7}\n")); err != nil {
		t.Errorf("numeric node name refused: %v", err)
	}
	_, err = Parse([]byte(targets + "kubernetes: {node_name: Node_A, kubeconfig: kube/config, api: x}\n"))
	if err == nil || !strings.Contains(err.Error(), "api") {
		t.Errorf("unknown key accepted: %v", err)
	}
	_, err = Parse([]byte(targets + "kubernetes: {node_name: Node_A, kubeconfig: kube/config}\n"))
	for _, want := range []string{
		`kubernetes.node_name: "Node_A" is not a node name`,
		`kubernetes.kubeconfig: "kube/config" must be an absolute path`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestApprovalStore(t *testing.T) {
	const targets = "targets: [{name: t, protocol: tcp, endpoints: [\"10.0.0.1:80\"]}]\n"
	c, err := Parse([]byte(targets))
	if err != nil || c.Approvals.Store != ApprovalStoreSQLite || c.Approvals.Namespace != "" {
		t.Fatalf("default store: %+v %v", c.Approvals, err)
	}
	c, err = Parse([]byte(targets + "approvals: {store: kubernetes}\n"))
	if err != nil || c.Approvals.Store != ApprovalStoreKubernetes || c.Approvals.Namespace != DefaultApprovalsNamespace {
		t.Fatalf("kubernetes store: %+v %v", c.Approvals, err)
	}
	_, err = Parse([]byte(targets + "approvals: {store: etcd, namespace: Bad_NS, kubeconfig: kc}\n"))
	for _, want := range []string{
		`approvals.store: "etcd" is not sqlite or kubernetes`,
		`approvals.namespace: "Bad_NS" is not a namespace name`,
		`approvals.kubeconfig: "kc" must be an absolute path`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	// Validate again, as kube.Apply does with resources added: a valid
	// configuration stays valid once its defaults are in.
	if p := c.Validate(); len(p) != 0 {
		t.Fatalf("revalidation: %v", p)
	}
}
