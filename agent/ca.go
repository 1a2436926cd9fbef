package agent

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/corral-dev/corral/agent/ca"
	"github.com/corral-dev/corral/agent/config"
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
