package agent

import (
	"testing"

	"github.com/corral-dev/corral/agent/config"
)

func TestKnownHostsPatterns(t *testing.T) {
	cfg, err := config.Parse([]byte(`targets:
  - name: web
    protocol: ssh
    endpoints: [10.0.0.7:22, "10.1.2.0/24:22", web.internal:2222]
    ssh: {known_hosts: /etc/corral/known_hosts, host_name: web-1.internal}
    credentials: {default: {username: deploy, password_env: P}}
  - name: db
    protocol: tcp
    endpoints: [10.9.9.9:5432]
rules:
  - {name: r, who: {any: true}, targets: [web], allow: [exec]}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := "10.0.0.7,web-1.internal,10.1.2.*,[web.internal]:2222,[web-1.internal]:2222"
	if got := KnownHostsPatterns(cfg); got != want {
		t.Errorf("patterns %q, want %q", got, want)
	}
	cfg.Targets[0].Parsed = cfg.Targets[0].Parsed[:0]
	if got := KnownHostsPatterns(cfg); got != "*" {
		t.Errorf("no endpoints: %q", got)
	}
}
