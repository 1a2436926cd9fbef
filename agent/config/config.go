// Package config loads and validates corral's configuration file.
//
// Validation reports every problem at once, each prefixed with the path of
// the field it is about (`targets[1].endpoints[0]: ...`), so an operator can
// fix a file in one pass. Unknown keys are errors: a misspelt key that is
// silently ignored is a protection silently not applied.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/corral-dev/corral/policy"
)

// Protocols corral can intercept in this build. A target naming any other
// protocol is refused at load: a target corral cannot speak for would have
// to be either bypassed or broken, and neither is acceptable silently.
var Protocols = []string{"tcp", "postgres", "ssh"}

// Defaults for the agent settings.
const (
	DefaultStateDir      = "/var/lib/corral"
	DefaultPinDir        = "/sys/fs/bpf/corral"
	DefaultSocketMark    = 0xc0a1
	DefaultRescan        = 2 * time.Second
	DefaultDNSRefresh    = 30 * time.Second
	DefaultShutdownGrace = 5 * time.Second
	DefaultAdminSocket   = "/run/corral/admin.sock"
)

// Config is the whole file.
type Config struct {
	Targets []Target      `yaml:"targets" json:"targets"`
	Rules   []policy.Rule `yaml:"rules" json:"rules"`
	OIDC    OIDC          `yaml:"oidc" json:"oidc"`
	// CA is the certificate authority corral issues certificates from;
	// unset, corral creates one under state_dir.
	CA CA `yaml:"ca" json:"ca"`
	// PolicyFiles are custom Rego modules (package corral.custom) that
	// extend or override the built-in interpretation of the rules. Relative
	// paths are relative to the configuration file.
	PolicyFiles []string `yaml:"policy_files" json:"policy_files,omitempty"`

	// AuditLog is where one JSON line per intercepted connection event goes:
	// a path, or "-" for stderr. Empty: <state_dir>/audit.log.
	AuditLog string `yaml:"audit_log" json:"audit_log,omitempty"`
	// StateDir holds the agent's files.
	StateDir string `yaml:"state_dir" json:"state_dir,omitempty"`
	// CgroupPath is the cgroup2 directory to intercept; empty: the host's
	// cgroup2 root (every process on the host).
	CgroupPath string `yaml:"cgroup_path" json:"cgroup_path,omitempty"`
	// BPFPinDir is the bpffs directory holding the pinned links.
	BPFPinDir string `yaml:"bpf_pin_dir" json:"bpf_pin_dir,omitempty"`
	// SocketMark is put on corral's own upstream sockets; the kernel never
	// redirects a socket carrying it. 0 disables the mark.
	SocketMark *uint32 `yaml:"socket_mark" json:"socket_mark,omitempty"`
	// NetnsRescan is how often network namespaces are rescanned for new
	// ones (a refused connect from an unknown one triggers a scan at once).
	NetnsRescanInterval string `yaml:"netns_rescan_interval" json:"netns_rescan_interval,omitempty"`
	// DNSRefresh is how often DNS-named endpoints are resolved again.
	DNSRefreshInterval string `yaml:"dns_refresh_interval" json:"dns_refresh_interval,omitempty"`
	// LogLevel: debug, info, warn or error.
	LogLevel string `yaml:"log_level" json:"log_level,omitempty"`
	// MaxProcs is how many CPUs the agent runs Go code on at once; 0: half
	// of the CPUs (at least one), unless GOMAXPROCS or a CPU quota set it.
	MaxProcs int `yaml:"max_procs" json:"max_procs,omitempty"`
	// AdminSocket is the unix socket of the admin API (mode 0660).
	AdminSocket string `yaml:"admin_socket" json:"admin_socket,omitempty"`
	// AdminGroup is the unix group that owns the admin socket, so its
	// members can use it; empty: root's group.
	AdminGroup string `yaml:"admin_group" json:"admin_group,omitempty"`
	// Approvals configures how reviewed operations are approved.
	Approvals Approvals `yaml:"approvals" json:"approvals"`
	// MetricsAddress is host:port for /metrics; empty disables it.
	MetricsAddress string `yaml:"metrics_address" json:"metrics_address,omitempty"`
	// Recording says where session recordings go and how long they stay.
	Recording Recording `yaml:"recording" json:"recording"`
	// Kubernetes says where pod metadata comes from.
	Kubernetes Kubernetes `yaml:"kubernetes" json:"kubernetes"`

	// The intervals above, parsed (Go duration syntax: "2s", "500ms").
	NetnsRescan time.Duration `yaml:"-" json:"-"`
	DNSRefresh  time.Duration `yaml:"-" json:"-"`
	// PolicyModules holds the policy files' sources, by path, as loaded.
	PolicyModules map[string]string `yaml:"-" json:"-"`
}

// Policy is the part of the configuration the policy engine compiles.
func (c *Config) Policy() policy.Policy {
	return policy.Policy{Rules: c.Rules, Modules: c.PolicyModules}
}

// OIDC lists the token issuers whose identities corral accepts.
type OIDC struct {
	Issuers []Issuer `yaml:"issuers" json:"issuers,omitempty"`
}

// Issuer is one trusted OIDC issuer (Kubernetes service-account tokens
// included: the API server is an issuer).
type Issuer struct {
	URL string `yaml:"url" json:"url"`
	// Audiences a token must be issued for (one of).
	Audiences policy.StringList `yaml:"audiences" json:"audiences"`
	// GroupsClaim names the claim holding groups (default "groups").
	GroupsClaim string `yaml:"groups_claim" json:"groups_claim,omitempty"`
	// Approvers lets the issuer's tokens decide approval requests over
	// approvals.listen. Only an issuer that vouches for the people named
	// as reviewers should: the others' subjects and groups are whatever
	// they say.
	Approvers bool `yaml:"approvers" json:"approvers,omitempty"`
}

// Approvals configures the approval workflow: where remote approvers
// reach the admin API, and how webhooks are notified.
type Approvals struct {
	// Listen is host:port for the admin API over HTTPS, for approvers who
	// present an OIDC ID token (verified against oidc.issuers) as a
	// bearer token; empty: the admin socket only.
	Listen string `yaml:"listen" json:"listen,omitempty"`
	// Names are the DNS names and addresses the listener's certificate,
	// issued by corral's CA, carries besides the listen address.
	Names []string `yaml:"names" json:"names,omitempty"`
	// CertFile and KeyFile are the operator's certificate for the
	// listener (PEM), instead of one from corral's CA.
	CertFile string `yaml:"cert_file" json:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file" json:"key_file,omitempty"`
	// WebhookTimeout bounds each delivery attempt of a notification
	// (default 10s); WebhookAttempts is how many are made (default 5),
	// with a doubling backoff between them.
	WebhookTimeout  string `yaml:"webhook_timeout" json:"webhook_timeout,omitempty"`
	WebhookAttempts int    `yaml:"webhook_attempts" json:"webhook_attempts,omitempty"`
	// MaxAge: decided requests older than this are deleted ("2160h");
	// empty keeps them.
	MaxAge string `yaml:"max_age" json:"max_age,omitempty"`
	// Store is where access requests live: ApprovalStoreSQLite (the
	// default: a database under state_dir, for one host) or
	// ApprovalStoreKubernetes (AccessRequest resources in the cluster, so
	// every node and every approver sees the same requests).
	Store string `yaml:"store" json:"store,omitempty"`
	// Namespace holds the AccessRequests (store: kubernetes); default
	// DefaultApprovalsNamespace.
	Namespace string `yaml:"namespace" json:"namespace,omitempty"`
	// Kubeconfig reaches the cluster from outside it; empty: the pod's
	// service account (in-cluster configuration).
	Kubeconfig string `yaml:"kubeconfig" json:"kubeconfig,omitempty"`

	// The durations above, parsed.
	Webhook time.Duration `yaml:"-" json:"-"`
	Age     time.Duration `yaml:"-" json:"-"`
}

// Kubernetes configures pod metadata (namespace, name, service account,
// labels, container) from the API server. It is on when the agent runs in
// a pod of a cluster (the in-cluster configuration loads) or Kubeconfig is
// set; otherwise, as on a VM, there is no API client at all.
type Kubernetes struct {
	// NodeName is the node whose pods are watched; empty: $NODE_NAME,
	// else the host name.
	NodeName string `yaml:"node_name" json:"node_name,omitempty"`
	// Kubeconfig is a kubeconfig file naming the API server and the
	// agent's credentials; empty: the in-cluster configuration.
	Kubeconfig string `yaml:"kubeconfig" json:"kubeconfig,omitempty"`
	// Resources adds the cluster's ProtectedTargets and AccessRules to the
	// file's targets and rules, and follows their changes.
	Resources bool `yaml:"resources" json:"resources,omitempty"`
}

// Approval stores (approvals.store).
const (
	ApprovalStoreSQLite     = "sqlite"
	ApprovalStoreKubernetes = "kubernetes"
)

// DefaultApprovalsNamespace holds the AccessRequests when approvals.namespace
// is not given.
const DefaultApprovalsNamespace = "corral-system"

// Credential is a secret corral injects upstream; the workload never holds
// it. Exactly one source is given.
type Credential struct {
	Username       string     `yaml:"username" json:"username,omitempty"`
	PasswordFile   string     `yaml:"password_file" json:"password_file,omitempty"`
	PasswordEnv    string     `yaml:"password_env" json:"password_env,omitempty"`
	PrivateKeyFile string     `yaml:"private_key_file" json:"private_key_file,omitempty"`
	Secret         *SecretRef `yaml:"secret" json:"secret,omitempty"`
	// Certificate (SSH): corral signs a short-lived user certificate with
	// its SSH user CA for each session; the target trusts the CA
	// (TrustedUserCAKeys).
	Certificate *SSHCertificate `yaml:"certificate" json:"certificate,omitempty"`
}

// SSHCertificate shapes the user certificates corral issues for a
// credential.
type SSHCertificate struct {
	// Principals the certificate names; default: the credential's username.
	Principals []string `yaml:"principals" json:"principals,omitempty"`
	// TTL is how long a certificate is valid (default 5m, at most 24h):
	// it only has to outlive the login.
	TTL string `yaml:"ttl" json:"ttl,omitempty"`

	// TTL, parsed.
	Lifetime time.Duration `yaml:"-" json:"-"`
}

// Default and longest lifetimes of issued SSH user certificates.
const (
	DefaultSSHCertTTL = 5 * time.Minute
	MaxSSHCertTTL     = 24 * time.Hour
)

// SSH is how corral speaks SSH for a target.
type SSH struct {
	// KnownHosts (required) is a known_hosts file with the target's host
	// keys, or @cert-authority lines for its host CA: corral never talks
	// to an SSH server it cannot verify.
	KnownHosts string `yaml:"known_hosts" json:"known_hosts"`
	// HostName is the name a host certificate must carry; default: the
	// address the workload dialled.
	HostName string `yaml:"host_name" json:"host_name,omitempty"`
	// HostKey is what corral presents to workloads: "certificate" (a host
	// certificate from corral's SSH host CA for the target's names and
	// addresses; the default) or "key" (corral's plain host key).
	HostKey string `yaml:"host_key" json:"host_key,omitempty"`
	// LoginShell is how the target's login shell reads exec command
	// lines: "any" (bash or a POSIX sh; the default: a line is checked as
	// both read it), "bash" (read as bash only), or "sh" (a POSIX sh: read
	// both ways, and it must read as sh reads it to its end).
	LoginShell string `yaml:"login_shell" json:"login_shell,omitempty"`
}

// SSHHostKeyModes are the accepted ssh.host_key values.
var SSHHostKeyModes = []string{"certificate", "key"}

// SSHLoginShells are the accepted ssh.login_shell values.
var SSHLoginShells = []string{"any", "bash", "sh"}

// SecretRef names a key of a Kubernetes Secret (read by the agent only).
type SecretRef struct {
	Namespace string `yaml:"namespace" json:"namespace"`
	Name      string `yaml:"name" json:"name"`
	Key       string `yaml:"key" json:"key"`
}

// UpstreamTLS says how corral secures its connection to the target.
type UpstreamTLS struct {
	Mode       string `yaml:"mode" json:"mode"` // disable, require, verify-ca, verify-full
	CAFile     string `yaml:"ca_file" json:"ca_file,omitempty"`
	ServerName string `yaml:"server_name" json:"server_name,omitempty"`
}

// client_auth values. Whatever the mode, the kernel's facts about the
// workload stay part of its identity; a token adds to them.
const (
	// ClientAuthKernel admits the workload on what the kernel says it is;
	// it is never asked for a password.
	ClientAuthKernel = "kernel"
	// ClientAuthToken asks for a password: a JWT must verify against
	// oidc.issuers and its claims join the identity; anything else (no
	// token) leaves the kernel identity alone.
	ClientAuthToken = "token"
	// ClientAuthTokenRequired refuses a login without a verified JWT.
	ClientAuthTokenRequired = "token-required"
)

// ClientAuthModes are the accepted client_auth values.
var ClientAuthModes = []string{ClientAuthKernel, ClientAuthToken, ClientAuthTokenRequired}

// Protocols whose handler can take a token at login.
var tokenProtocols = []string{"postgres", "ssh"}

// UpstreamTLSModes are the accepted upstream_tls.mode values.
var UpstreamTLSModes = []string{"disable", "require", "verify-ca", "verify-full"}

// UpstreamAuthMethods are the accepted upstream_auth values: libpq's
// require_auth names of the methods corral can answer with a password
// ("none": the server asks for nothing).
var UpstreamAuthMethods = []string{"scram-sha-256", "md5", "password", "none"}

// UpstreamAuthList returns the methods a postgres target's server may ask
// for. By default a password goes in clear ("password") only to a server
// that proved who it is (upstream_tls verify-ca or verify-full, the
// default mode): elsewhere whoever answers at the address, which a CIDR
// target lets the workload choose, would be handed it.
func (t *Target) UpstreamAuthList() []string {
	if len(t.UpstreamAuth) > 0 {
		return t.UpstreamAuth
	}
	if t.UpstreamTLS == nil || t.UpstreamTLS.Mode == "" || t.UpstreamTLS.Mode == "verify-ca" || t.UpstreamTLS.Mode == "verify-full" {
		return UpstreamAuthMethods
	}
	return []string{"scram-sha-256", "md5", "none"}
}

// ClientTLS says whether workloads may, or must, encrypt their connection
// to corral, which answers with a certificate from its CA.
type ClientTLS struct {
	Mode string `yaml:"mode" json:"mode"` // disable, allow, require
}

// ClientTLSModes are the accepted client_tls.mode values.
var ClientTLSModes = []string{"disable", "allow", "require"}

// clientTLSProtocols are the protocols whose handler can terminate TLS.
var clientTLSProtocols = []string{"postgres"}

// Recording configures session recordings.
type Recording struct {
	// Dir holds the recordings and their index; empty: <state_dir>/sessions.
	Dir string `yaml:"dir" json:"dir,omitempty"`
	// SyncInterval bounds how long a recorded operation may wait to be
	// made durable (default 1s).
	SyncInterval string `yaml:"sync_interval" json:"sync_interval,omitempty"`
	// MaxAge: recordings older than this are deleted ("720h"); empty keeps
	// them.
	MaxAge string `yaml:"max_age" json:"max_age,omitempty"`
	// MaxSize bounds all recordings together ("10GiB", "500MB"); the
	// oldest go first. Empty: no bound.
	MaxSize string `yaml:"max_size" json:"max_size,omitempty"`

	// The values above, parsed.
	Sync     time.Duration `yaml:"-" json:"-"`
	Age      time.Duration `yaml:"-" json:"-"`
	MaxBytes int64         `yaml:"-" json:"-"`
}

// Recording modes of a target.
const (
	// RecordStrict: a session that cannot be recorded does not start, and
	// one whose recording fails is cut.
	RecordStrict = "strict"
	// RecordBestEffort: the session goes on; the failure is logged and
	// counted.
	RecordBestEffort = "best-effort"
	// RecordOff: no recording; the audit log still has every decision.
	RecordOff = "off"
)

// RecordingModes are the accepted targets[].recording values.
var RecordingModes = []string{RecordStrict, RecordBestEffort, RecordOff}

// CA names the operator's certificate authority (PEM files).
type CA struct {
	CertFile string `yaml:"cert_file" json:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file" json:"key_file,omitempty"`
}

// Target is one protected destination.
type Target struct {
	Name      string   `yaml:"name" json:"name"`
	Protocol  string   `yaml:"protocol" json:"protocol"`
	Endpoints []string `yaml:"endpoints" json:"endpoints"`
	// ClientAuth is how the workload's own login is taken: ClientAuthKernel
	// (default), ClientAuthToken or ClientAuthTokenRequired.
	ClientAuth string `yaml:"client_auth" json:"client_auth,omitempty"`
	// Recording is one of RecordingModes (default strict).
	Recording string `yaml:"recording" json:"recording,omitempty"`
	// Databases (postgres) are the databases a session may open with the
	// target's credentials; empty: any the credential may connect to.
	Databases []string `yaml:"databases" json:"databases,omitempty"`
	// UpstreamAuth (postgres) lists the ways the server may have corral
	// prove the credential (UpstreamAuthMethods); empty: see UpstreamAuthList.
	UpstreamAuth []string `yaml:"upstream_auth" json:"upstream_auth,omitempty"`

	// Credentials by alias; rules pick one ("default" when they name none).
	Credentials map[string]Credential `yaml:"credentials" json:"credentials,omitempty"`
	UpstreamTLS *UpstreamTLS          `yaml:"upstream_tls" json:"upstream_tls,omitempty"`
	ClientTLS   *ClientTLS            `yaml:"client_tls" json:"client_tls,omitempty"`
	// SSH is required for ssh targets.
	SSH *SSH `yaml:"ssh" json:"ssh,omitempty"`

	// Parsed holds the endpoints after validation, in the order given.
	Parsed []Endpoint `yaml:"-" json:"-"`
}

// ClientTLSMode is the target's client_tls.mode, "disable" when unset.
func (t *Target) ClientTLSMode() string {
	if t.ClientTLS == nil || t.ClientTLS.Mode == "" {
		return "disable"
	}
	return t.ClientTLS.Mode
}

// Endpoint is one parsed `addr:port`, `cidr:port` or `name:port`.
type Endpoint struct {
	Prefix netip.Prefix // valid unless Host is set
	Host   string       // DNS name to resolve
	Port   uint16
}

func (e Endpoint) String() string {
	if e.Host != "" {
		return net.JoinHostPort(e.Host, strconv.Itoa(int(e.Port)))
	}
	if e.Prefix.IsSingleIP() {
		return netip.AddrPortFrom(e.Prefix.Addr(), e.Port).String()
	}
	return net.JoinHostPort(e.Prefix.String(), strconv.Itoa(int(e.Port)))
}

// Load reads and validates a file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := c.loadPolicyFiles(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// loadPolicyFiles reads policy_files, relative to dir.
func (c *Config) loadPolicyFiles(dir string) error {
	var p problems
	c.PolicyModules = map[string]string{}
	for i, f := range c.PolicyFiles {
		if !filepath.IsAbs(f) {
			f = filepath.Join(dir, f)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			p.add(fmt.Sprintf("policy_files[%d]", i), "%v", err)
			continue
		}
		c.PolicyModules[f] = string(b)
	}
	return p.err()
}

// Parse decodes and validates a configuration, filling in defaults.
func Parse(b []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("invalid config: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	// A second document (after ---) would be read by nobody: the rules
	// in it, a deny among them, would silently not apply. An empty one
	// (a trailing ---) holds nothing to lose.
	for {
		var more yaml.Node
		err := dec.Decode(&more)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || !emptyDocument(&more) {
			return nil, errors.New("invalid config: the file holds more than one YAML document (a second --- ); put everything in one")
		}
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	c.defaults()
	return &c, nil
}

// emptyDocument reports whether a YAML document holds nothing: no node,
// or a null.
func emptyDocument(n *yaml.Node) bool {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return true
		}
		n = n.Content[0]
	}
	return n.Kind == 0 || n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// Validate checks c as Parse does, and fills in its parsed values and,
// when there is no problem, its defaults. Each problem is "path: message"
// with the field's path in the file (`targets[1].endpoints[0]: ...`), so
// a caller that assembled c from other sources (Kubernetes resources) can
// tell which of them a problem is about.
func (c *Config) Validate() []string {
	p := c.problems()
	if len(p) == 0 {
		c.defaults()
	}
	return p
}

func (c *Config) defaults() {
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.AuditLog == "" {
		c.AuditLog = c.StateDir + "/audit.log"
	}
	if c.BPFPinDir == "" {
		c.BPFPinDir = DefaultPinDir
	}
	if c.SocketMark == nil {
		m := uint32(DefaultSocketMark)
		c.SocketMark = &m
	}
	if c.NetnsRescan == 0 {
		c.NetnsRescan = DefaultRescan
	}
	if c.DNSRefresh == 0 {
		c.DNSRefresh = DefaultDNSRefresh
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.AdminSocket == "" {
		c.AdminSocket = DefaultAdminSocket
	}
	for i := range c.Targets {
		if c.Targets[i].ClientAuth == "" {
			c.Targets[i].ClientAuth = ClientAuthKernel
		}
		if c.Targets[i].Recording == "" {
			c.Targets[i].Recording = RecordStrict
		}
	}
	if c.Recording.Dir == "" {
		c.Recording.Dir = c.StateDir + "/sessions"
	}
	if c.Recording.Sync == 0 {
		c.Recording.Sync = time.Second
	}
	if c.Approvals.Webhook == 0 {
		c.Approvals.Webhook = 10 * time.Second
	}
	if c.Approvals.WebhookAttempts == 0 {
		c.Approvals.WebhookAttempts = 5
	}
	if c.Approvals.Store == "" {
		c.Approvals.Store = ApprovalStoreSQLite
	}
	if c.Approvals.Store == ApprovalStoreKubernetes && c.Approvals.Namespace == "" {
		c.Approvals.Namespace = DefaultApprovalsNamespace
	}
	for i := range c.OIDC.Issuers {
		if c.OIDC.Issuers[i].GroupsClaim == "" {
			c.OIDC.Issuers[i].GroupsClaim = "groups"
		}
	}
}

// problems collects validation errors with their field paths.
type problems []string

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, path+": "+fmt.Sprintf(format, args...))
}

// duration parses an optional interval; "" means the default (0 here).
func (p *problems) duration(path, s string, min time.Duration) time.Duration {
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.add(path, "%q is not a duration (like 2s or 500ms)", s)
		return 0
	}
	if d < min {
		p.add(path, "must be at least %v", min)
		return 0
	}
	return d
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("invalid config:\n  %s", strings.Join(p, "\n  "))
}

func (c *Config) validate() error { return c.problems().err() }

func (c *Config) problems() problems {
	var p problems
	if len(c.Targets) == 0 {
		p.add("targets", "at least one target is required")
	}
	names := map[string]int{}
	seen := map[string]string{}
	type literal struct {
		path string
		e    Endpoint
	}
	var literals []literal // literal endpoints of earlier targets
	for i := range c.Targets {
		t := &c.Targets[i]
		path := fmt.Sprintf("targets[%d]", i)
		switch {
		case t.Name == "":
			p.add(path+".name", "required")
		case !validName(t.Name):
			p.add(path+".name", "%q must be lower-case letters, digits and '-' (at most 63)", t.Name)
		}
		if j, ok := names[t.Name]; ok && t.Name != "" {
			p.add(path+".name", "duplicate target name %q (also targets[%d])", t.Name, j)
		} else {
			names[t.Name] = i
		}
		if t.Protocol == "" {
			p.add(path+".protocol", "required (one of %s)", strings.Join(Protocols, ", "))
		} else if !slices.Contains(Protocols, t.Protocol) {
			p.add(path+".protocol", "unknown protocol %q (supported: %s)", t.Protocol, strings.Join(Protocols, ", "))
		}
		if len(t.Endpoints) == 0 {
			p.add(path+".endpoints", "at least one endpoint is required")
		}
		t.Parsed = t.Parsed[:0]
		for j, raw := range t.Endpoints {
			epath := fmt.Sprintf("%s.endpoints[%d]", path, j)
			e, err := ParseEndpoint(raw)
			if err != nil {
				p.add(epath, "%q: %v", raw, err)
				continue
			}
			key := e.String()
			if other, ok := seen[key]; ok {
				p.add(epath, "%q is already an endpoint of %s", raw, other)
				continue
			}
			seen[key] = path
			if e.Host == "" {
				// Two targets covering one address would leave which one
				// governs it to the order the kernel map is filled in.
				for _, l := range literals {
					if l.e.Port == e.Port && l.e.Prefix.Overlaps(e.Prefix) && !strings.HasPrefix(l.path, path+".") {
						p.add(epath, "%q overlaps %s", raw, l.path)
						break
					}
				}
				literals = append(literals, literal{epath, e})
			}
			t.Parsed = append(t.Parsed, e)
		}
		validateCredentials(&p, path, t)
		validateSSH(&p, path, t)
		validateTLS(&p, path, t.UpstreamTLS)
		validateClientTLS(&p, path, t)
	}
	infos := map[string]policy.TargetInfo{}
	for _, t := range c.Targets {
		info := policy.TargetInfo{Protocol: t.Protocol}
		for alias := range t.Credentials {
			info.Credentials = append(info.Credentials, alias)
		}
		infos[t.Name] = info
	}
	for _, pr := range policy.ValidateRules("rules", c.Rules, infos) {
		p = append(p, pr.String())
	}
	issuers := map[string]int{}
	for i, iss := range c.OIDC.Issuers {
		ip := fmt.Sprintf("oidc.issuers[%d]", i)
		if u, err := url.Parse(iss.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			p.add(ip+".url", "%q is not an http(s) URL", iss.URL)
		}
		if j, dup := issuers[iss.URL]; dup {
			p.add(ip+".url", "%q is already oidc.issuers[%d]", iss.URL, j)
		}
		issuers[iss.URL] = i
		if len(iss.Audiences) == 0 {
			p.add(ip+".audiences", "required: the audience (client id) tokens must be issued for")
		}
	}
	c.validateClientAuth(&p)
	c.validateDatabases(&p)
	c.validateUpstreamAuth(&p)
	for i, f := range c.PolicyFiles {
		if !strings.HasSuffix(f, ".rego") {
			p.add(fmt.Sprintf("policy_files[%d]", i), "%q is not a .rego file", f)
		}
	}
	if c.AdminSocket != "" && !strings.HasPrefix(c.AdminSocket, "/") {
		p.add("admin_socket", "%q must be an absolute path", c.AdminSocket)
	}
	if c.MetricsAddress != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddress); err != nil || port == "" {
			p.add("metrics_address", "%q: want host:port", c.MetricsAddress)
		}
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		p.add("log_level", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	if c.MaxProcs < 0 {
		p.add("max_procs", "%d: want 0 (automatic) or a number of CPUs", c.MaxProcs)
	}
	c.NetnsRescan = p.duration("netns_rescan_interval", c.NetnsRescanInterval, 100*time.Millisecond)
	c.DNSRefresh = p.duration("dns_refresh_interval", c.DNSRefreshInterval, time.Second)
	if c.BPFPinDir != "" && !strings.HasPrefix(c.BPFPinDir, "/") {
		p.add("bpf_pin_dir", "%q must be an absolute path", c.BPFPinDir)
	}
	if c.CgroupPath != "" && !strings.HasPrefix(c.CgroupPath, "/") {
		p.add("cgroup_path", "%q must be an absolute path", c.CgroupPath)
	}
	if c.StateDir != "" && !strings.HasPrefix(c.StateDir, "/") {
		p.add("state_dir", "%q must be an absolute path", c.StateDir)
	}
	validateCA(&p, c.CA)
	validateKubernetes(&p, c.Kubernetes)
	c.validateRecording(&p)
	c.validateApprovals(&p)
	return p
}

func (c *Config) validateClientAuth(p *problems) {
	for i, t := range c.Targets {
		path := fmt.Sprintf("targets[%d].client_auth", i)
		switch {
		case t.ClientAuth == "" || t.ClientAuth == ClientAuthKernel:
		case !slices.Contains(ClientAuthModes, t.ClientAuth):
			p.add(path, "%q is not one of %s", t.ClientAuth, strings.Join(ClientAuthModes, ", "))
		case !slices.Contains(tokenProtocols, t.Protocol):
			p.add(path, "%s is not available for %s targets (only %s)", t.ClientAuth, t.Protocol, strings.Join(tokenProtocols, ", "))
		case len(c.OIDC.Issuers) == 0:
			p.add(path, "%s needs oidc.issuers: no issuer is configured to verify tokens with", t.ClientAuth)
		}
	}
}

func (c *Config) validateDatabases(p *problems) {
	c.validatePostgresList(p, "databases", func(t *Target) []string { return t.Databases }, func(d string) string {
		switch {
		case d == "":
			return "is empty"
		case len(d) > 63:
			// PostgreSQL cuts longer names: two would open one database.
			return fmt.Sprintf("%q is longer than PostgreSQL's 63 bytes", d)
		}
		return ""
	})
}

func (c *Config) validateUpstreamAuth(p *problems) {
	c.validatePostgresList(p, "upstream_auth", func(t *Target) []string { return t.UpstreamAuth }, func(m string) string {
		if !slices.Contains(UpstreamAuthMethods, m) {
			return fmt.Sprintf("%q is not one of %s", m, strings.Join(UpstreamAuthMethods, ", "))
		}
		return ""
	})
}

// validatePostgresList checks a list setting of postgres targets: on no
// other target, each item by check (what is wrong with it, or ""), none
// listed twice.
func (c *Config) validatePostgresList(p *problems, field string, list func(*Target) []string, check func(string) string) {
	for i := range c.Targets {
		t := &c.Targets[i]
		items, path := list(t), fmt.Sprintf("targets[%d].%s", i, field)
		if len(items) > 0 && t.Protocol != "postgres" {
			p.add(path, "is for postgres targets only")
			continue
		}
		for j, v := range items {
			if why := check(v); why != "" {
				p.add(fmt.Sprintf("%s[%d]", path, j), "%s", why)
			} else if slices.Contains(items[:j], v) {
				p.add(fmt.Sprintf("%s[%d]", path, j), "%q is listed twice", v)
			}
		}
	}
}

// Protocols whose upstream logs in with a user name.
var needsUsername = []string{"postgres", "mysql", "ssh"}

func validateCredentials(p *problems, path string, t *Target) {
	for alias, c := range t.Credentials {
		cp := fmt.Sprintf("%s.credentials.%s", path, alias)
		if !validName(alias) {
			p.add(cp, "alias %q must be lower-case letters, digits and '-'", alias)
		}
		n := 0
		for _, set := range []bool{c.PasswordFile != "", c.PasswordEnv != "", c.PrivateKeyFile != "", c.Secret != nil, c.Certificate != nil} {
			if set {
				n++
			}
		}
		sources := "password_file, password_env, private_key_file, secret"
		if t.Protocol == "ssh" {
			sources += ", certificate"
		}
		switch {
		case n == 0:
			p.add(cp, "give one of %s", sources)
		case n > 1:
			p.add(cp, "give only one of %s", sources)
		}
		if c.PrivateKeyFile != "" && t.Protocol != "ssh" {
			p.add(cp+".private_key_file", "only ssh targets use private keys")
		}
		if ct := c.Certificate; ct != nil {
			if t.Protocol != "ssh" {
				p.add(cp+".certificate", "only ssh targets use certificates")
			}
			ct.Lifetime = DefaultSSHCertTTL
			if ct.TTL != "" {
				d, err := time.ParseDuration(ct.TTL)
				switch {
				case err != nil || d <= 0:
					p.add(cp+".certificate.ttl", "%q is not a positive duration", ct.TTL)
				case d > MaxSSHCertTTL:
					p.add(cp+".certificate.ttl", "%q is longer than %v", ct.TTL, MaxSSHCertTTL)
				default:
					ct.Lifetime = d
				}
			}
			for i, pr := range ct.Principals {
				if strings.TrimSpace(pr) == "" || strings.ContainsAny(pr, ", \t\n") {
					p.add(fmt.Sprintf("%s.certificate.principals[%d]", cp, i), "%q is not a principal name", pr)
				}
			}
		}
		for field, f := range map[string]string{"password_file": c.PasswordFile, "private_key_file": c.PrivateKeyFile} {
			if f != "" && !filepath.IsAbs(f) {
				p.add(cp+"."+field, "%q must be an absolute path", f)
			}
		}
		if s := c.Secret; s != nil && (s.Namespace == "" || s.Name == "" || s.Key == "") {
			p.add(cp+".secret", "namespace, name and key are all required")
		}
		if c.Username == "" && slices.Contains(needsUsername, t.Protocol) {
			p.add(cp+".username", "required for %s targets", t.Protocol)
		}
	}
}

func validateSSH(p *problems, path string, t *Target) {
	s := t.SSH
	if t.Protocol != "ssh" {
		if s != nil {
			p.add(path+".ssh", "only for ssh targets (this one is %s)", t.Protocol)
		}
		return
	}
	if s == nil || s.KnownHosts == "" {
		p.add(path+".ssh.known_hosts", "required: the target's host keys (a known_hosts file; @cert-authority lines for a host CA)")
	} else if !filepath.IsAbs(s.KnownHosts) {
		p.add(path+".ssh.known_hosts", "%q must be an absolute path", s.KnownHosts)
	}
	if s != nil && s.HostKey != "" && !slices.Contains(SSHHostKeyModes, s.HostKey) {
		p.add(path+".ssh.host_key", "%q is not one of %s", s.HostKey, strings.Join(SSHHostKeyModes, ", "))
	}
	if s != nil && s.HostKey == "" {
		s.HostKey = "certificate"
	}
	if s != nil && s.LoginShell != "" && !slices.Contains(SSHLoginShells, s.LoginShell) {
		p.add(path+".ssh.login_shell", "%q is not one of %s", s.LoginShell, strings.Join(SSHLoginShells, ", "))
	}
	if s != nil && s.LoginShell == "" {
		s.LoginShell = "any"
	}
}

func validateTLS(p *problems, path string, t *UpstreamTLS) {
	if t == nil {
		return
	}
	if !slices.Contains(UpstreamTLSModes, t.Mode) {
		p.add(path+".upstream_tls.mode", "%q is not one of %s", t.Mode, strings.Join(UpstreamTLSModes, ", "))
	}
	if t.CAFile != "" && !filepath.IsAbs(t.CAFile) {
		p.add(path+".upstream_tls.ca_file", "%q must be an absolute path", t.CAFile)
	}
	if t.Mode == "verify-ca" && t.CAFile == "" {
		p.add(path+".upstream_tls.ca_file", "required with mode verify-ca")
	}
}

func validateClientTLS(p *problems, path string, t *Target) {
	if t.ClientTLS == nil {
		return
	}
	if t.Protocol != "" && !slices.Contains(clientTLSProtocols, t.Protocol) {
		p.add(path+".client_tls", "only %s targets can terminate client TLS (this one is %s)", strings.Join(clientTLSProtocols, ", "), t.Protocol)
	}
	switch {
	case t.ClientTLS.Mode == "":
		p.add(path+".client_tls.mode", "required (one of %s)", strings.Join(ClientTLSModes, ", "))
	case !slices.Contains(ClientTLSModes, t.ClientTLS.Mode):
		p.add(path+".client_tls.mode", "%q is not one of %s", t.ClientTLS.Mode, strings.Join(ClientTLSModes, ", "))
	}
}

func validateCA(p *problems, ca CA) {
	if ca.CertFile != "" && ca.KeyFile == "" {
		p.add("ca.key_file", "required with ca.cert_file")
	}
	if ca.KeyFile != "" && ca.CertFile == "" {
		p.add("ca.cert_file", "required with ca.key_file")
	}
	for field, f := range map[string]string{"ca.cert_file": ca.CertFile, "ca.key_file": ca.KeyFile} {
		if f != "" && !filepath.IsAbs(f) {
			p.add(field, "%q must be an absolute path", f)
		}
	}
}

func validateKubernetes(p *problems, k Kubernetes) {
	if k.Kubeconfig != "" && !filepath.IsAbs(k.Kubeconfig) {
		p.add("kubernetes.kubeconfig", "%q must be an absolute path", k.Kubeconfig)
	}
	// A name the API server could not have given a node would select no
	// pods, silently.
	if n := k.NodeName; n != "" && !validSubdomain(n) {
		p.add("kubernetes.node_name", "%q is not a node name (lower-case letters, digits, '-' and '.')", n)
	}
}

// validSubdomain is RFC 1123's DNS subdomain as Kubernetes names objects:
// lower-case alphanumeric labels, inner '-', at most 253 characters.
func validSubdomain(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// ParseEndpoint parses `ip:port`, `cidr:port`, `[ipv6]:port`,
// `[ipv6-cidr]:port` or `dns-name:port`.
func ParseEndpoint(s string) (Endpoint, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return Endpoint{}, errors.New("want host:port, cidr:port or [ipv6]:port")
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return Endpoint{}, fmt.Errorf("bad port %q (want 1-65535)", portStr)
	}
	e := Endpoint{Port: uint16(port)}
	switch {
	case strings.Contains(host, "/"):
		pfx, err := netip.ParsePrefix(host)
		if err != nil {
			return Endpoint{}, fmt.Errorf("bad CIDR %q", host)
		}
		if pfx.Addr().Is4In6() {
			return Endpoint{}, fmt.Errorf("bad CIDR %q: write IPv4 ranges in IPv4 form", host)
		}
		if pfx.Masked() != pfx {
			return Endpoint{}, fmt.Errorf("bad CIDR %q: host bits set (did you mean %s?)", host, pfx.Masked())
		}
		e.Prefix = pfx
	default:
		if a, err := netip.ParseAddr(host); err == nil {
			if a.Zone() != "" {
				return Endpoint{}, fmt.Errorf("address %q: zones are not supported", host)
			}
			a = a.Unmap()
			e.Prefix = netip.PrefixFrom(a, a.BitLen())
		} else if validHostname(host) {
			e.Host = strings.ToLower(host)
		} else {
			return Endpoint{}, fmt.Errorf("%q is neither an IP address, a CIDR nor a DNS name", host)
		}
	}
	if e.Host == "" && e.Prefix.IsSingleIP() && e.Prefix.Addr().IsUnspecified() {
		return Endpoint{}, fmt.Errorf("%q is the unspecified address", host)
	}
	return e, nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case r == '-' && i > 0 && i < len(s)-1:
		default:
			return false
		}
	}
	return true
}

func validHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	// An all-numeric name is a mistyped address, not a host.
	last := s[strings.LastIndexByte(s, '.')+1:]
	if _, err := strconv.Atoi(last); err == nil {
		return false
	}
	return true
}

func (c *Config) validateRecording(p *problems) {
	r := &c.Recording
	if r.Dir != "" && !strings.HasPrefix(r.Dir, "/") {
		p.add("recording.dir", "%q must be an absolute path", r.Dir)
	}
	r.Sync = p.duration("recording.sync_interval", r.SyncInterval, 10*time.Millisecond)
	if r.Sync > time.Minute {
		p.add("recording.sync_interval", "%q is longer than a minute: a crash would lose that much", r.SyncInterval)
	}
	r.Age = p.duration("recording.max_age", r.MaxAge, time.Minute)
	if r.MaxSize != "" {
		n, err := parseSize(r.MaxSize)
		if err != nil {
			p.add("recording.max_size", "%v", err)
		}
		r.MaxBytes = n
	}
	for i, t := range c.Targets {
		if t.Recording != "" && !slices.Contains(RecordingModes, t.Recording) {
			p.add(fmt.Sprintf("targets[%d].recording", i), "%q is not one of %s", t.Recording, strings.Join(RecordingModes, ", "))
		}
	}
}

// parseSize reads "10GiB", "500MB", "1048576" (bytes).
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is not a size (like 500MB or 10GiB)", s)
	}
	return n * mult, nil
}

func (c *Config) validateApprovals(p *problems) {
	a := &c.Approvals
	if c.AdminGroup != "" && strings.ContainsAny(c.AdminGroup, ": \t\n/") {
		p.add("admin_group", "%q is not a group name", c.AdminGroup)
	}
	if a.Listen != "" {
		host, port, err := net.SplitHostPort(a.Listen)
		if err != nil || port == "" {
			p.add("approvals.listen", "%q: want host:port", a.Listen)
		} else if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			p.add("approvals.listen", "%q: bad port", a.Listen)
		} else if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
			p.add("approvals.listen", "%q: bad host", a.Listen)
		}
		if !slices.ContainsFunc(c.OIDC.Issuers, func(i Issuer) bool { return i.Approvers }) {
			p.add("approvals.listen", "approvers over HTTPS present OIDC tokens: mark the issuer of the reviewers' tokens in oidc.issuers with approvers: true")
		}
	} else if len(a.Names) > 0 || a.CertFile != "" || a.KeyFile != "" {
		p.add("approvals.listen", "required with approvals.names, cert_file or key_file")
	}
	for i, n := range a.Names {
		if net.ParseIP(n) == nil && !validHostname(n) {
			p.add(fmt.Sprintf("approvals.names[%d]", i), "%q is neither an IP address nor a DNS name", n)
		}
	}
	if (a.CertFile == "") != (a.KeyFile == "") {
		p.add("approvals.cert_file", "cert_file and key_file go together")
	}
	for field, f := range map[string]string{"approvals.cert_file": a.CertFile, "approvals.key_file": a.KeyFile} {
		if f != "" && !filepath.IsAbs(f) {
			p.add(field, "%q must be an absolute path", f)
		}
	}
	a.Webhook = p.duration("approvals.webhook_timeout", a.WebhookTimeout, 100*time.Millisecond)
	if a.Webhook > time.Minute {
		p.add("approvals.webhook_timeout", "%q is longer than a minute", a.WebhookTimeout)
	}
	if a.WebhookAttempts < 0 || a.WebhookAttempts > 20 {
		p.add("approvals.webhook_attempts", "%d is not between 1 and 20", a.WebhookAttempts)
	}
	a.Age = p.duration("approvals.max_age", a.MaxAge, time.Hour)
	switch a.Store {
	case "", ApprovalStoreSQLite, ApprovalStoreKubernetes:
	default:
		p.add("approvals.store", "%q is not %s or %s", a.Store, ApprovalStoreSQLite, ApprovalStoreKubernetes)
	}
	if a.Namespace != "" && !validName(a.Namespace) {
		p.add("approvals.namespace", "%q is not a namespace name", a.Namespace)
	}
	if a.Store != ApprovalStoreKubernetes && a.Namespace != "" {
		p.add("approvals.namespace", "only with store: %s", ApprovalStoreKubernetes)
	}
	if a.Kubeconfig != "" && !filepath.IsAbs(a.Kubeconfig) {
		p.add("approvals.kubeconfig", "%q must be an absolute path", a.Kubeconfig)
	}
}
