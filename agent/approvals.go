package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/net/netutil"

	"github.com/corral-dev/corral/agent/admin"
	"github.com/corral-dev/corral/agent/ca"
	"github.com/corral-dev/corral/agent/config"
	"github.com/corral-dev/corral/agent/kube"
	"github.com/corral-dev/corral/agent/metrics"
	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/policy"
	"github.com/corral-dev/corral/policy/approval"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// ApprovalsPath is where the agent keeps access requests.
func ApprovalsPath(cfg *config.Config) string { return filepath.Join(cfg.StateDir, "approvals.db") }

// approvals is a running agent's approval workflow: the broker over its
// store, the webhook notifications, and the admin API on the socket and,
// when configured, over HTTPS (with the approval web page).
type approvals struct {
	store approvalStore
	// secrets reads Kubernetes Secrets when the agent can reach a cluster
	// (nil otherwise: on a VM, credentials come from files and variables).
	secrets secretReader
	broker  *approval.Broker
	webhook *approval.Webhook
	api     *admin.Server
	servers []*http.Server
	log     *slog.Logger
	bg      sync.WaitGroup
	cancel  context.CancelFunc
	once    sync.Once
}

// approvalStore is a request store the agent also prunes and closes.
type approvalStore interface {
	approval.Backend
	Prune(ctx context.Context, before time.Time) (int64, error)
	Close() error
}

// openApprovalStore opens the configured store: the SQLite database under
// state_dir, or the cluster's AccessRequests. The cluster, when the agent
// can reach one, also gives the Secret reader.
func openApprovalStore(cfg *config.Config, log *slog.Logger) (approvalStore, secretReader, error) {
	ap := cfg.Approvals
	rc, err := kube.AgentConfig(ap.Kubeconfig)
	switch {
	case err != nil && ap.Store != config.ApprovalStoreKubernetes && ap.Kubeconfig == "":
		// Nothing asked for the cluster: Secrets stay unreadable, as on a VM.
		log.Debug("no Kubernetes cluster to read Secrets from", "err", err)
		rc = nil
	case err != nil:
		return nil, nil, fmt.Errorf("approvals: %w", err)
	}
	var secrets secretReader
	if rc != nil {
		kc, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return nil, nil, fmt.Errorf("kubernetes client: %w", err)
		}
		secrets = kube.Secrets{Client: kc}
	}
	if ap.Store != config.ApprovalStoreKubernetes {
		store, err := approval.OpenStore(ApprovalsPath(cfg))
		return store, secrets, err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes client: %w", err)
	}
	node := nodeName()
	log.Info("access requests are AccessRequests in the cluster", "namespace", ap.Namespace, "node", node)
	return kube.NewStore(dyn, ap.Namespace, node, log), secrets, nil
}

// nodeName is the node the agent runs on: NODE_NAME (the DaemonSet sets
// it from spec.nodeName), else the host name.
func nodeName() string {
	if n := os.Getenv("NODE_NAME"); n != "" {
		return n
	}
	h, _ := os.Hostname()
	return h
}

// startApprovals opens the store (settling what a previous agent left
// pending), and serves the admin API. audit receives every step of every
// request; tokens verifies the approvers' ID tokens on the HTTPS listener
// (only issuers marked approvers); home names where a requester runs
// (approval.Options.Home).
func startApprovals(ctx context.Context, cfg *config.Config, authority *ca.CA, tokens admin.TokenVerifier,
	dial func(ctx context.Context, network, addr string) (net.Conn, error), home func(*policy.Workload) string,
	audit intercept.Auditor, log *slog.Logger) (*approvals, error) {
	a := &approvals{log: log, api: &admin.Server{Log: log}}
	ctx, a.cancel = context.WithCancel(ctx)
	store, secrets, err := openApprovalStore(cfg, log)
	if err != nil {
		return nil, err
	}
	a.store, a.secrets = store, secrets
	// Webhooks are reached with corral's own dialer, like issuers: one may
	// sit behind a protected address.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = dial
	a.webhook = &approval.Webhook{Client: &http.Client{Transport: tr, Timeout: cfg.Approvals.Webhook}, Attempts: cfg.Approvals.WebhookAttempts, Log: log}
	a.broker, err = approval.NewBroker(ctx, store, approval.Options{
		Log:    log,
		Home:   home,
		Notify: a.webhook.Notify,
		Events: func(e approval.Event) {
			audit.Audit(approvalEvent(e))
			a.api.Publish(e)
		},
	})
	if err != nil {
		a.cancel()
		store.Close()
		return nil, err
	}
	a.api.Approvals = a.broker

	l, err := admin.ListenUnix(cfg.AdminSocket, cfg.AdminGroup)
	if err != nil {
		a.close()
		return nil, fmt.Errorf("admin_socket: %w", err)
	}
	a.serve(&http.Server{Handler: a.api.Handler(admin.PeerCred{}), ConnContext: admin.ConnContext, ReadHeaderTimeout: 10 * time.Second}, l, false)
	log.Info("admin API listening", "socket", cfg.AdminSocket)

	if ap := cfg.Approvals; ap.Listen != "" {
		tc, err := listenerTLS(ap, authority)
		if err != nil {
			a.close()
			return nil, fmt.Errorf("approvals: %w", err)
		}
		tl, err := net.Listen("tcp", ap.Listen)
		if err != nil {
			a.close()
			return nil, fmt.Errorf("approvals.listen: %w", err)
		}
		// Remote approvers present a bearer token, or log in to the web
		// page with one and carry its session cookie.
		auth := &admin.Web{Bearer: &admin.Bearer{Tokens: tokens}, Sessions: &admin.Sessions{Tokens: tokens}}
		// Anyone who reaches the address may connect, token or not: the
		// connections are capped, idle ones closed, and a body must
		// arrive in time, so none can hold the agent's descriptors.
		a.serve(&http.Server{Handler: bodyDeadline(a.api.Handler(auth), bodyTimeout), TLSConfig: tc, ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)},
			netutil.LimitListener(tl, maxAPIConns), true)
		log.Info("admin API listening for approvers over HTTPS", "address", tl.Addr().String())
	}
	if cfg.Approvals.Age > 0 {
		a.bg.Add(1)
		go func() {
			defer a.bg.Done()
			a.prune(ctx, cfg.Approvals.Age)
		}()
	}
	return a, nil
}

// maxAPIConns bounds the HTTPS admin API's connections, and bodyTimeout
// how long a request's body may take to arrive.
const (
	maxAPIConns = 128
	bodyTimeout = 15 * time.Second
)

// bodyDeadline gives a request with a body d to send it. The server has
// no overall read timeout, which would also end the event stream, whose
// request has no body.
func bodyDeadline(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
		}
		h.ServeHTTP(w, r)
	})
}

func (a *approvals) serve(s *http.Server, l net.Listener, tls bool) {
	a.servers = append(a.servers, s)
	a.bg.Add(1)
	go func() {
		defer a.bg.Done()
		var err error
		if tls {
			err = s.ServeTLS(l, "", "")
		} else {
			err = s.Serve(l)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("admin API stopped", "err", err)
		}
	}()
}

// listenerTLS is the HTTPS listener's TLS: the operator's certificate, or
// one from corral's CA for the listen address and approvals.names,
// renewed by the CA as it nears its end.
func listenerTLS(ap config.Approvals, authority *ca.CA) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ap.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(ap.CertFile, ap.KeyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
		return cfg, nil
	}
	var names []string
	var addrs []netip.Addr
	add := func(n string) {
		if ip, err := netip.ParseAddr(n); err == nil {
			if !ip.IsUnspecified() {
				addrs = append(addrs, ip.Unmap())
			}
		} else if n != "" {
			names = append(names, n)
		}
	}
	host, _, _ := net.SplitHostPort(ap.Listen)
	add(host)
	for _, n := range ap.Names {
		add(n)
	}
	if len(names)+len(addrs) == 0 {
		// Listening on every address with no name given: the host's name.
		if h, err := os.Hostname(); err == nil {
			add(h)
		}
	}
	if _, err := authority.Leaf(names, addrs); err != nil {
		return nil, err
	}
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return authority.Leaf(names, addrs) }
	return cfg, nil
}

func (a *approvals) prune(ctx context.Context, age time.Duration) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := a.store.Prune(ctx, time.Now().Add(-age)); err != nil && ctx.Err() == nil {
			a.log.Error("pruning old access requests", "err", err)
		} else if n > 0 {
			a.log.Info("old access requests deleted", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// stop ends the workflow for a stopping agent: operations still waiting
// are told (their requests stay pending, and the next start settles
// them), and the admin API closes.
func (a *approvals) stop() {
	a.once.Do(func() {
		a.cancel()
		a.broker.Close()
		a.api.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for _, s := range a.servers {
			s.Shutdown(ctx)
		}
	})
}

// close stops the workflow if that was not done, waits for what runs in
// the background, and releases the store.
func (a *approvals) close() {
	a.stop()
	a.webhook.Close()
	a.bg.Wait()
	a.store.Close()
}

// approvalEvent is the audit log's line for a step of a request.
func approvalEvent(e approval.Event) intercept.Event {
	r := e.Request
	info := &intercept.ApprovalInfo{
		Request: r.ID, Step: e.Type, Kind: r.Kind, Operations: r.Operations, Text: r.Text,
		Reason: r.Reason, Rule: r.Rule, Reviewers: r.Reviewers, Grant: r.Grant, Expires: r.Expires,
		DecisionReason: r.DecisionReason, GrantExpires: r.GrantExpires,
	}
	if r.DecidedBy != nil {
		info.DecidedBy, info.Via = r.DecidedBy.Name, r.DecidedBy.Via
	}
	ev := intercept.Event{Time: e.Time, Event: intercept.EventApproval, SessionID: r.SessionID, Target: r.Target, Protocol: r.Protocol, Approval: info}
	if op := e.Operation; op != nil {
		// A grant let this operation through: the line is about it, in its
		// own session.
		ev.SessionID, info.Operations, info.Text = op.SessionID, op.Operations, op.Text
	}
	return ev
}

// counts are the workflow's numbers for the metrics.
func (a *approvals) counts() metrics.ApprovalCounts {
	st := a.broker.Stats()
	return metrics.ApprovalCounts{
		Requests: map[string]uint64{
			"requested": st.Requested, "approved": st.Approved, "denied": st.Denied,
			"expired": st.Expired, "cancelled": st.Cancelled, "covered": st.Covered,
		},
		Pending:     st.Pending,
		WebhookSent: a.webhook.Sent(), WebhookFailed: a.webhook.Failures(),
	}
}

// recheckGrants ends the window grants a reloaded policy no longer gives
// as they were approved (Broker.RecheckGrants), so that a reload back to
// the old terms does not bring them back. An SSH grant is left to the
// check each command makes: the policy decides a command line by its
// commands, which the grant keeps as text only.
func (a *approvals) recheckGrants(ctx context.Context, d intercept.Decider, log *slog.Logger) {
	n, err := a.broker.RecheckGrants(ctx, func(g *approval.Request) (policy.Decision, bool) {
		if g.Protocol == "ssh" {
			return policy.Decision{}, false
		}
		in := policy.Input{
			Workload: g.Requester,
			Target:   policy.Target{Name: g.Target, Protocol: g.Protocol, Database: g.Database},
			Action:   policy.Action{Kind: g.Kind, Operations: g.Operations},
		}
		in.IdentityKey = policy.IdentityKey(&in.Workload)
		dec, err := d.Decide(ctx, in)
		if err != nil {
			return policy.Decision{Result: policy.Deny}, true // cannot tell: ended
		}
		return dec, true
	})
	if err != nil {
		log.Error("checking window grants against the reloaded policy", "err", err)
	}
	if n > 0 {
		log.Info("window grants the reloaded policy no longer gives were ended", "grants", n)
	}
}
