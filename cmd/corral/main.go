// Command corral is the node agent and its command-line tools.
package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/corral-dev/corral/agent"
	"github.com/corral-dev/corral/agent/ca"
	"github.com/corral-dev/corral/agent/config"
	"github.com/corral-dev/corral/agent/sshca"
	"github.com/corral-dev/corral/bpf"
	"github.com/corral-dev/corral/recorder"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "corral:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "corral",
		Short:         "corral catches every connection to a protected target in the kernel and puts policy, credentials and audit in its path",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newAgent(), newDoctor(), newUnpin(), newPolicy(), newCA(), newSessions(), newReplay(), newVerify(), newRequests(), newDecide(true), newDecide(false), &cobra.Command{
		Use:   "version",
		Short: "Print corral's version",
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), version) },
	})
	return root
}

func newAgent() *cobra.Command {
	var (
		file       string
		keepPinned bool
		logFormat  string
	)
	cmd := &cobra.Command{
		Use:   "agent --config FILE",
		Short: "Run the node agent in the foreground",
		Long: `Run the node agent in the foreground: attach the eBPF programs, listen in
every network namespace, and relay each intercepted connection through its
protocol handler, writing one audit line per session event.

SIGINT or SIGTERM stop it. Without --keep-pinned the eBPF links are removed
and connections go straight to their targets again; with it they stay, and
connections to protected targets are refused until an agent runs again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			logTo := cmd.ErrOrStderr()
			if logTo == os.Stderr {
				logTo = recorder.Stderr // shared with an audit log on stderr
			}
			log, err := newLogger(logTo, cfg.LogLevel, logFormat)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return agent.Run(ctx, agent.Options{Config: cfg, ConfigPath: file, Log: log, KeepPinned: keepPinned})
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "/etc/corral/corral.yaml", "configuration file")
	cmd.Flags().BoolVar(&keepPinned, "keep-pinned", false, "leave the eBPF links in the kernel on exit, so protected connects are refused until an agent runs again")
	cmd.Flags().StringVar(&logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

func newDoctor() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check that this host's kernel and privileges can run corral",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cgroupPath, pinDir := "", config.DefaultPinDir
			if file != "" {
				cfg, err := config.Load(file)
				if err != nil {
					return err
				}
				cgroupPath, pinDir = cfg.CgroupPath, cfg.BPFPinDir
			}
			return agent.Doctor(cmd.OutOrStdout(), cgroupPath, pinDir, nil)
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "also check the settings of this configuration file")
	return cmd
}

func newUnpin() *cobra.Command {
	var (
		file   string
		pinDir string
	)
	cmd := &cobra.Command{
		Use:   "unpin",
		Short: "Remove the eBPF links an agent left pinned (connections to targets are no longer refused)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file != "" {
				cfg, err := config.Load(file)
				if err != nil {
					return err
				}
				pinDir = cfg.BPFPinDir
			}
			return bpf.Unpin(pinDir)
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "take the pin directory from this configuration file")
	cmd.Flags().StringVar(&pinDir, "pin-dir", config.DefaultPinDir, "bpffs directory holding the links")
	return cmd
}

func newCA() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "corral's certificate authority",
	}
	var file string
	printCmd := &cobra.Command{
		Use:   "print [--config FILE]",
		Short: "Print the CA certificate (PEM) that clients verifying their TLS connection to corral must trust",
		Long: `Print the certificate of corral's CA, PEM-encoded: the configured ca.cert_file,
or the CA the agent created under state_dir. Clients that verify their server
(sslmode=verify-full) must trust it, e.g. psql "sslrootcert=ca.pem". Only the
certificate is printed, never the key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			b, err := ca.CertificatePEM(agent.CAOptions(cfg))
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	printCmd.Flags().StringVarP(&file, "config", "c", "/etc/corral/corral.yaml", "configuration file")
	cmd.AddCommand(printCmd)
	sshLine := func(use, short, long string, line func(*sshca.Authority, *config.Config) string) *cobra.Command {
		var file string
		c := &cobra.Command{
			Use: use + " [--config FILE]", Short: short, Long: long, Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg, err := config.Load(file)
				if err != nil {
					return err
				}
				a, err := sshca.Open(agent.SSHCADir(cfg))
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), line(a, cfg))
				return err
			},
		}
		c.Flags().StringVarP(&file, "config", "c", "/etc/corral/corral.yaml", "configuration file")
		return c
	}
	cmd.AddCommand(sshLine("ssh-known-hosts", "Print the known_hosts line that makes SSH clients trust every target corral answers for",
		`Print a @cert-authority line for corral's SSH host CA. Appended to a
workload's known_hosts (~/.ssh/known_hosts or /etc/ssh/ssh_known_hosts), it
lets ssh, scp and sftp connect to protected targets without a host key
warning: corral presents a host certificate naming each target's addresses
and names. The line trusts the CA for the configuration's SSH targets only
(their names, addresses and networks), so it vouches for nothing else.`,
		func(a *sshca.Authority, cfg *config.Config) string {
			return a.KnownHostsLineFor(agent.KnownHostsPatterns(cfg))
		}))
	cmd.AddCommand(sshLine("ssh-user-ca", "Print the public key of corral's SSH user CA, for targets' TrustedUserCAKeys",
		`Print the public key of the CA that signs the short-lived user certificates
corral logs in to targets with (credentials with certificate:). Put it in the
file sshd's TrustedUserCAKeys names on each target.`,
		func(a *sshca.Authority, _ *config.Config) string { return a.UserCALine() }))
	return cmd
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log_level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text or json", format)
}
