package agent

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/corral-dev/corral/agent/ca"
	"github.com/corral-dev/corral/agent/config"
	"github.com/corral-dev/corral/agent/sshca"
)

// CAOptions says where corral's CA is for cfg: the configured files, or
// the one corral creates under state_dir.
func CAOptions(cfg *config.Config) ca.Options {
	return ca.Options{CertFile: cfg.CA.CertFile, KeyFile: cfg.CA.KeyFile, Dir: filepath.Join(cfg.StateDir, "ca")}
}

// PublishedCAPath is where the agent writes the certificate of the CA in
// use: one path to hand to clients, whether the CA is configured or
// created.
func PublishedCAPath(cfg *config.Config) string {
	return filepath.Join(cfg.StateDir, "ca.pem")
}

// openCA loads (or creates) the CA and publishes its certificate. It is
// opened whether or not a target uses client TLS yet, so that a reload
// turning it on needs no restart and the certificate can be distributed
// ahead of time.
func openCA(cfg *config.Config, log *slog.Logger) (*ca.CA, error) {
	a, err := ca.Open(CAOptions(cfg))
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	path := PublishedCAPath(cfg)
	if err := a.Publish(path); err != nil {
		return nil, fmt.Errorf("ca: publish its certificate: %w", err)
	}
	c := a.Certificate()
	msg := "corral CA loaded"
	if a.Created() {
		msg = "corral CA created; clients that verify corral must trust its certificate"
	}
	log.Info(msg, "certificate", path, "subject", c.Subject.CommonName, "not_after", c.NotAfter.UTC().Format(time.RFC3339))
	return a, nil
}

// SSHCADir is where corral keeps its SSH host key and SSH CAs for cfg.
func SSHCADir(cfg *config.Config) string { return filepath.Join(cfg.StateDir, "ssh") }

// openSSHCA loads (or creates) corral's SSH keys; like the x509 CA, they
// exist whether or not a target uses SSH yet, so trust can be set up
// ahead of time (`corral ca ssh-known-hosts`, `corral ca ssh-user-ca`).
func openSSHCA(cfg *config.Config, log *slog.Logger) (*sshca.Authority, error) {
	a, err := sshca.Open(SSHCADir(cfg))
	if err != nil {
		return nil, fmt.Errorf("ssh keys: %w", err)
	}
	log.Debug("corral SSH keys loaded", "dir", SSHCADir(cfg))
	return a, nil
}
