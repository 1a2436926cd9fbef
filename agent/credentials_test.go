package agent

import (
	"context"
	"strings"
	"testing"

	"github.com/corral-dev/corral/agent/config"
)

type secretMap map[string]string

func (m secretMap) ReadSecret(_ context.Context, ns, name, key string) (string, error) {
	return m[ns+"/"+name+"/"+key], nil
}

func TestSecretCredentials(t *testing.T) {
	c := newCredentials([]config.Target{{Name: "orders-db", Protocol: "postgres", Credentials: map[string]config.Credential{
		"default": {Username: "app", Secret: &config.SecretRef{Namespace: "db", Name: "orders", Key: "password"}},
	}}})
	if _, err := c.Credential("orders-db", "default"); err == nil || !strings.Contains(err.Error(), "only when the agent runs in a cluster") {
		t.Fatalf("outside a cluster: %v", err)
	}
	c.setSecrets(secretMap{"db/orders/password": "s3cret"})
	got, err := c.Credential("orders-db", "default")
	if err != nil || got.Username != "app" || got.Password != "s3cret" {
		t.Fatalf("in a cluster: %+v %v", got, err)
	}
}
