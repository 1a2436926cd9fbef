package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corral-dev/corral/agent"
	"github.com/corral-dev/corral/agent/ca"
	"github.com/corral-dev/corral/agent/config"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRoot()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// A bad configuration stops `corral agent` before it touches the kernel,
// naming every offending field at once.
func TestAgentRejectsInvalidConfigNamingFields(t *testing.T) {
	p := filepath.Join(t.TempDir(), "corral.yaml")
	os.WriteFile(p, []byte(`targets:
  - name: db
    protocol: postgress
    endpoints: ["10.0.0.5:5432"]
  - name: db
    protocol: tcp
    endpoints: ["10.1.0.0/33:5432"]
`), 0o600)
	_, err := run(t, "agent", "--config", p)
	if err == nil {
		t.Fatal("agent started with an invalid config")
	}
	for _, want := range []string{
		p,
		`targets[0].protocol: unknown protocol "postgress"`,
		`targets[1].name: duplicate target name "db"`,
		`targets[1].endpoints[0]: "10.1.0.0/33:5432": bad CIDR`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

func TestAgentRejectsMissingConfig(t *testing.T) {
	_, err := run(t, "agent", "--config", filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("error %v", err)
	}
}

func TestLogFlagsAreChecked(t *testing.T) {
	p := filepath.Join(t.TempDir(), "corral.yaml")
	os.WriteFile(p, []byte(`targets: [{name: a, protocol: tcp, endpoints: ["10.0.0.1:1"]}]`), 0o600)
	_, err := run(t, "agent", "--config", p, "--log-format", "xml")
	if err == nil || !strings.Contains(err.Error(), "--log-format") {
		t.Fatalf("error %v", err)
	}
}

func TestVersion(t *testing.T) {
	out, err := run(t, "version")
	if err != nil || strings.TrimSpace(out) != version {
		t.Fatalf("version: %q %v", out, err)
	}
}

const policyConfig = `targets:
  - name: api
    protocol: tcp
    endpoints: ["10.0.0.5:443"]
rules:
  - name: ci
    who: {unit: "ci-*.service"}
    targets: [api]
    allow: [connect]
policy_files: [extra.rego]
`

const extraRego = `package corral.custom

import rego.v1

deny contains "no connections from pid 1" if input.workload.pid == 1
`

func policyDir(t *testing.T) (dir, file string) {
	dir = t.TempDir()
	file = filepath.Join(dir, "corral.yaml")
	os.WriteFile(file, []byte(policyConfig), 0o600)
	os.WriteFile(filepath.Join(dir, "extra.rego"), []byte(extraRego), 0o600)
	return dir, file
}

func TestPolicyCheck(t *testing.T) {
	dir, file := policyDir(t)
	out, err := run(t, "policy", "check", file)
	if err != nil || !strings.Contains(out, "ok (1 targets, 1 rules, 1 policy files)") {
		t.Fatalf("check: %q %v", out, err)
	}
	os.WriteFile(filepath.Join(dir, "extra.rego"), []byte("package corral.custom\n\ndeny contains x if {"), 0o600)
	if _, err := run(t, "policy", "check", file); err == nil || !strings.Contains(err.Error(), "extra.rego") {
		t.Fatalf("a broken policy file passed the check: %v", err)
	}
	os.Remove(filepath.Join(dir, "extra.rego"))
	if _, err := run(t, "policy", "check", file); err == nil || !strings.Contains(err.Error(), "policy_files[0]") {
		t.Fatalf("a missing policy file passed the check: %v", err)
	}
}

func TestPolicyEvalExplains(t *testing.T) {
	dir, file := policyDir(t)
	in := filepath.Join(dir, "input.json")
	for _, c := range []struct {
		input, result, rule string
	}{
		{`{"workload":{"unit":"ci-build.service","pid":42},"target":{"name":"api","protocol":"tcp"},"action":{"kind":"connect","operations":["connect"]}}`, `"result": "allow"`, `"rule": "ci"`},
		{`{"workload":{"unit":"web.service","pid":42},"target":{"name":"api","protocol":"tcp"},"action":{"kind":"connect","operations":["connect"]}}`, `"result": "deny"`, `no rule lets this workload use target`},
		{`{"workload":{"unit":"ci-build.service","pid":1},"target":{"name":"api","protocol":"tcp"},"action":{"kind":"connect","operations":["connect"]}}`, `"result": "deny"`, `no connections from pid 1`},
	} {
		os.WriteFile(in, []byte(c.input), 0o600)
		out, err := run(t, "policy", "eval", "--input", in, file)
		if err != nil || !strings.Contains(out, c.result) || !strings.Contains(out, c.rule) {
			t.Errorf("eval %s:\n%s %v", c.input, out, err)
		}
	}
	os.WriteFile(in, []byte(`{"workload":{},"targett":{}}`), 0o600)
	if _, err := run(t, "policy", "eval", "--input", in, file); err == nil || !strings.Contains(err.Error(), "targett") {
		t.Errorf("an input with an unknown field was accepted: %v", err)
	}
}

func TestPolicyTestRunsRegoTests(t *testing.T) {
	dir, file := policyDir(t)
	tests := filepath.Join(dir, "tests")
	os.Mkdir(tests, 0o755)
	os.WriteFile(filepath.Join(tests, "ci_test.rego"), []byte(`package ci_test

import rego.v1

test_ci_connects if {
	data.corral.decision.result == "allow" with input as {"workload": {"unit": "ci-build.service", "pid": 7}, "target": {"name": "api"}, "action": {"kind": "connect", "operations": ["connect"]}}
}

test_pid_one_denied if {
	data.corral.decision.reason == "no connections from pid 1" with input as {"workload": {"unit": "ci-build.service", "pid": 1}, "target": {"name": "api"}, "action": {"kind": "connect", "operations": ["connect"]}}
}
`), 0o600)
	out, err := run(t, "policy", "test", "--config", file, tests)
	if err != nil || !strings.Contains(out, "0 failed") {
		t.Fatalf("policy test:\n%s %v", out, err)
	}
	os.WriteFile(filepath.Join(tests, "bad_test.rego"), []byte(`package bad_test

import rego.v1

test_wrong if data.corral.decision.result == "allow" with input as {"workload": {"unit": "web.service"}, "target": {"name": "api"}, "action": {"kind": "connect", "operations": ["connect"]}}
`), 0o600)
	out, err = run(t, "policy", "test", "--config", file, tests)
	if err == nil || !strings.Contains(out, "FAIL  data.bad_test.test_wrong") {
		t.Fatalf("a failing Rego test passed:\n%s %v", out, err)
	}
}

// `corral ca print` prints the CA the agent uses, and only its certificate.
func TestCAPrint(t *testing.T) {
	state := t.TempDir()
	p := filepath.Join(t.TempDir(), "corral.yaml")
	os.WriteFile(p, []byte("targets: [{name: a, protocol: tcp, endpoints: [\"10.0.0.1:1\"]}]\nstate_dir: "+state+"\n"), 0o600)
	if _, err := run(t, "ca", "print", "--config", p); err == nil || !strings.Contains(err.Error(), "start the agent once") {
		t.Fatalf("before the agent created a CA: %v", err)
	}
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	authority, err := ca.Open(agent.CAOptions(cfg))
	if err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "ca", "print", "--config", p)
	if err != nil || out != string(authority.CertPEM()) {
		t.Fatalf("ca print: %v\n%s", err, out)
	}

	// An operator's CA whose certificate file holds the key too.
	dir := t.TempDir()
	other, err := ca.Open(ca.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(filepath.Join(dir, ca.KeyName))
	both := filepath.Join(dir, "both.pem")
	os.WriteFile(both, append(key, other.CertPEM()...), 0o600)
	os.WriteFile(p, []byte("targets: [{name: a, protocol: tcp, endpoints: [\"10.0.0.1:1\"]}]\nca: {cert_file: "+both+", key_file: "+filepath.Join(dir, ca.KeyName)+"}\n"), 0o600)
	out, err = run(t, "ca", "print", "--config", p)
	if err != nil || out != string(other.CertPEM()) || strings.Contains(out, "PRIVATE KEY") {
		t.Fatalf("ca print with a combined file: %v\n%s", err, out)
	}
}
