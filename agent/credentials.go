package agent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/corral-dev/corral/agent/config"
	"github.com/corral-dev/corral/intercept/postgres"
)

// credentials resolves the credentials declared on targets. Secrets are
// read when a session needs them, so a rotated file or variable is picked
// up without a reload, and they are never kept longer than the session.
type credentials struct {
	mu      sync.RWMutex
	targets map[string]config.Target
	secrets secretReader
}

// secretReader reads a key of a Kubernetes Secret (kube.Secrets); there is
// none outside a cluster.
type secretReader interface {
	ReadSecret(ctx context.Context, namespace, name, key string) (string, error)
}

// secretTimeout bounds reading a Secret at login: the client waits.
const secretTimeout = 10 * time.Second

func (c *credentials) setSecrets(s secretReader) {
	c.mu.Lock()
	c.secrets = s
	c.mu.Unlock()
}

func newCredentials(ts []config.Target) *credentials {
	c := &credentials{}
	c.replace(ts)
	return c
}

func (c *credentials) replace(ts []config.Target) {
	m := make(map[string]config.Target, len(ts))
	for _, t := range ts {
		m[t.Name] = t
	}
	c.mu.Lock()
	c.targets = m
	c.mu.Unlock()
}

func (c *credentials) target(name string) (config.Target, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t, ok := c.targets[name]
	return t, ok
}

// Credential implements postgres.Credentials.
func (c *credentials) Credential(target, alias string) (postgres.Credential, error) {
	t, ok := c.target(target)
	if !ok {
		return postgres.Credential{}, fmt.Errorf("target %q is not configured", target)
	}
	cred, ok := t.Credentials[alias]
	if !ok {
		return postgres.Credential{}, fmt.Errorf("target %q has no credential %q", target, alias)
	}
	secret, err := c.readSecret(cred)
	if err != nil {
		return postgres.Credential{}, fmt.Errorf("credential %q of target %q: %w", alias, target, err)
	}
	return postgres.Credential{Username: cred.Username, Password: secret}, nil
}

func (cs *credentials) readSecret(c config.Credential) (string, error) {
	switch {
	case c.PasswordFile != "":
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case c.PasswordEnv != "":
		v, ok := os.LookupEnv(c.PasswordEnv)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", c.PasswordEnv)
		}
		return v, nil
	case c.Secret != nil:
		cs.mu.RLock()
		secrets := cs.secrets
		cs.mu.RUnlock()
		if secrets == nil {
			return "", errors.New("Kubernetes Secrets are read only when the agent runs in a cluster")
		}
		ctx, cancel := context.WithTimeout(context.Background(), secretTimeout)
		defer cancel()
		return secrets.ReadSecret(ctx, c.Secret.Namespace, c.Secret.Name, c.Secret.Key)
	}
	return "", errors.New("no password source")
}

// Upstream implements the postgres handler's TLS lookup.
func (c *credentials) Upstream(target string) postgres.Upstream {
	t, ok := c.target(target)
	if !ok {
		return postgres.Upstream{} // the handler's defaults: verify-full, any method
	}
	u := postgres.Upstream{Auth: t.UpstreamAuthList()}
	if t.UpstreamTLS != nil {
		u.SSLMode, u.CAFile, u.ServerName = t.UpstreamTLS.Mode, t.UpstreamTLS.CAFile, t.UpstreamTLS.ServerName
	}
	return u
}

// Databases are the databases a target's sessions may open (none: any).
func (c *credentials) Databases(target string) []string {
	t, _ := c.target(target)
	return t.Databases
}

// ClientAuth implements the postgres handler's client_auth lookup.
func (c *credentials) ClientAuth(target string) postgres.ClientAuth {
	t, _ := c.target(target)
	return postgres.ClientAuth(t.ClientAuth) // "" (unknown target): kernel
}

// maskKey returns the deployment's key for the hash mask method, created
// on first use under stateDir.
func maskKey(stateDir string) ([]byte, error) {
	path := filepath.Join(stateDir, "mask.key")
	if b, err := os.ReadFile(path); err == nil && len(b) >= 32 {
		return b, nil
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	rand.Read(key)
	if err := os.WriteFile(path, key, 0o600); err != nil {
		return nil, fmt.Errorf("mask key: %w", err)
	}
	return key, nil
}
