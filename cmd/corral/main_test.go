package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
