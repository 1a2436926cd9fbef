package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/corral-dev/corral/agent/admin"
	"github.com/corral-dev/corral/agent/config"
	"github.com/corral-dev/corral/agent/kube"
	"github.com/corral-dev/corral/internal/termsafe"
	"github.com/corral-dev/corral/policy/approval"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// adminFlags say how to reach the admin API: the agent's unix socket (the
// default), or its HTTPS listener with an OIDC token; or, with --cluster,
// the cluster's AccessRequests as the kubeconfig's user.
type adminFlags struct {
	socket, config        string
	server, token, caFile string

	cluster                         bool
	kubeconfig, kubeContext, kubeNS string
}

// clusterMode reports whether the requests are the cluster's.
func (f *adminFlags) clusterMode() bool {
	return f.cluster || f.kubeconfig != "" || f.kubeContext != ""
}

// clusterClient reaches the cluster's AccessRequests with the user's
// kubeconfig; the API server says who the approver is.
func (f *adminFlags) clusterClient() (*kube.Cluster, error) {
	if f.socket != "" || f.server != "" {
		return nil, errors.New("--cluster goes to the API server: leave out --socket and --server")
	}
	rc, err := kube.UserConfig(f.kubeconfig, f.kubeContext)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	kc, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	return &kube.Cluster{Dynamic: dyn, Kube: kc, Namespace: f.kubeNS}, nil
}

func (f *adminFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.socket, "socket", "", "the agent's admin socket (default: admin_socket of --config, else "+config.DefaultAdminSocket+")")
	fl.StringVarP(&f.config, "config", "c", "", "take the admin socket from this configuration file")
	fl.StringVar(&f.server, "server", "", "reach the agent's HTTPS listener instead (https://host:port), presenting --token-file")
	fl.StringVar(&f.token, "token-file", "", "file holding an OIDC ID token (with --server)")
	fl.StringVar(&f.caFile, "ca-file", "", "CA certificate to verify --server with (default: the system's roots)")
	fl.BoolVar(&f.cluster, "cluster", false, "use the cluster's AccessRequests (approvals.store: kubernetes) as the user of your kubeconfig")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (implies --cluster; default: $KUBECONFIG, else ~/.kube/config)")
	fl.StringVar(&f.kubeContext, "context", "", "kubeconfig context (implies --cluster)")
	fl.StringVarP(&f.kubeNS, "namespace", "n", config.DefaultApprovalsNamespace, "namespace of the AccessRequests (with --cluster)")
}

// adminClient calls the admin API.
type adminClient struct {
	http  *http.Client
	base  string
	token string
}

func (f *adminFlags) client() (*adminClient, error) {
	if f.server != "" {
		u, err := url.Parse(f.server)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("--server: %q is not an https:// URL", f.server)
		}
		if f.token == "" {
			return nil, errors.New("--server needs --token-file")
		}
		tok, err := os.ReadFile(f.token)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if f.caFile != "" {
			pem, err := os.ReadFile(f.caFile)
			if err != nil {
				return nil, fmt.Errorf("--ca-file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--ca-file: no certificate in %s", f.caFile)
			}
		}
		return &adminClient{http: &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}, base: strings.TrimRight(f.server, "/"), token: strings.TrimSpace(string(tok))}, nil
	}
	path := f.socket
	if path == "" && f.config != "" {
		cfg, err := config.Load(f.config)
		if err != nil {
			return nil, err
		}
		path = cfg.AdminSocket
	}
	if path == "" {
		path = config.DefaultAdminSocket
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "unix", path)
		if err != nil {
			return nil, fmt.Errorf("cannot reach the agent at %s (is it running, and may you use its socket?): %w", path, errors.Unwrap(err))
		}
		return c, nil
	}}
	return &adminClient{http: &http.Client{Transport: tr}, base: "http://corral"}, nil
}

func (c *adminClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e admin.Error
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("the agent answered %s", resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func newRequests() *cobra.Command {
	var (
		af     adminFlags
		state  string
		watch  bool
		asJSON bool
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "requests [ID] [--state STATE] [--watch]",
		Short: "List access requests (operations waiting for approval, and past ones)",
		Long: `List access requests, newest first: pending ones by default, or those in
--state (approved, denied, expired, cancelled, all). With --watch, then print
every step of every request as it happens, until interrupted. With an ID (or
a prefix of one), show that request in full: the statement as the workload
sent it, literal values included, which the list shows normalised.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				return showRequest(cmd, &af, args[0], asJSON)
			}
			if af.clusterMode() {
				return clusterRequests(cmd, &af, state, limit, watch, asJSON)
			}
			c, err := af.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			out := termsafe.NewWriter(cmd.OutOrStdout())
			q := fmt.Sprintf("/v1/requests?limit=%d", limit)
			if state != "all" {
				q += "&state=" + url.QueryEscape(state)
			}
			var stream *bufio.Scanner
			if watch {
				// Subscribed before listing: nothing falls in between.
				body, err := c.events(ctx)
				if err != nil {
					return err
				}
				defer body.Close()
				stream = bufio.NewScanner(body)
				stream.Buffer(make([]byte, 1<<20), 1<<20)
				if !stream.Scan() {
					return fmt.Errorf("the event stream ended at once: %v", stream.Err())
				}
			}
			var list admin.RequestList
			if err := c.do(ctx, http.MethodGet, q, nil, &list); err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(list.Requests); err != nil {
					return err
				}
			} else {
				writeRequests(out, list.Requests)
			}
			if !watch {
				return nil
			}
			return followEvents(ctx, stream, out, asJSON)
		},
	}
	af.register(cmd)
	cmd.Flags().StringVar(&state, "state", approval.Pending, "pending, approved, denied, expired, cancelled, or all")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "then print every step of every request as it happens")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (with --watch, one event per line after the list)")
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many")
	return cmd
}

// showRequest prints one request in full.
func showRequest(cmd *cobra.Command, af *adminFlags, id string, asJSON bool) error {
	var r *approval.Request
	if af.clusterMode() {
		c, err := af.clusterClient()
		if err != nil {
			return err
		}
		if r, err = c.Get(cmd.Context(), id); err != nil {
			return err
		}
	} else {
		c, err := af.client()
		if err != nil {
			return err
		}
		r = new(approval.Request)
		if err := c.do(cmd.Context(), http.MethodGet, "/v1/requests/"+url.PathEscape(id), nil, r); err != nil {
			return err
		}
	}
	out := termsafe.NewWriter(cmd.OutOrStdout())
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	writeRequest(out, r)
	return nil
}

// writeRequest writes one request, a field a line; the statement last,
// as sent, indented.
func writeRequest(w io.Writer, r *approval.Request) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	field := func(name, value string) { fmt.Fprintf(tw, "%s\t%s\n", name, termsafe.Line(value)) }
	field("request", r.ID)
	field("state", r.State)
	field("target", strings.TrimSuffix(r.Target+" ("+r.Protocol+")", " ()"))
	if r.Database != "" {
		field("database", r.Database)
	}
	field("requester", approval.Describe(&r.Requester))
	field("operations", r.Kind+": "+strings.Join(r.Operations, ", "))
	field("reason", strings.TrimSuffix(r.Reason+" (rule "+r.Rule+")", " (rule )"))
	field("reviewers", strings.Join(r.Reviewers, ", "))
	grant := r.Grant
	if r.Grant == approval.GrantWindow {
		grant += " " + time.Duration(r.Window).String()
	}
	field("grant", grant)
	field("created", r.Created.Local().Format("2006-01-02 15:04:05"))
	field("expires", r.Expires.Local().Format("2006-01-02 15:04:05"))
	if r.DecidedBy != nil {
		field("decided by", r.DecidedBy.Name+" ("+r.DecidedBy.Via+")")
	}
	if r.DecisionReason != "" {
		field("decision", r.DecisionReason)
	}
	if r.Text != "" {
		field("recorded as", r.Text)
	}
	tw.Flush()
	if st := r.Statement; st != "" || r.Text != "" {
		heading := "statement:"
		if st == "" {
			st, heading = r.Text, "statement (normalised):"
		}
		fmt.Fprintln(w, heading)
		for _, l := range strings.Split(st, "\n") {
			fmt.Fprintln(w, "    "+termsafe.String(strings.TrimRight(l, "\r")))
		}
	}
}

func clusterRequests(cmd *cobra.Command, af *adminFlags, state string, limit int, watch, asJSON bool) error {
	c, err := af.clusterClient()
	if err != nil {
		return err
	}
	f := approval.Filter{State: state, Limit: limit}
	if state == "all" {
		f.State = ""
	} else if !approval.ValidState(state) {
		return fmt.Errorf("--state: %q is not a request state", state)
	}
	ctx, out := cmd.Context(), termsafe.NewWriter(cmd.OutOrStdout())
	list, err := c.List(ctx, f)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(list); err != nil {
			return err
		}
	} else {
		writeRequests(out, list)
	}
	if !watch {
		return nil
	}
	c.Follow(ctx, func(added bool, r *approval.Request) {
		e := admin.StreamEvent{Type: r.State, Time: time.Now(), Request: r}
		if added {
			e.Type = approval.EventRequested
		}
		if asJSON {
			b, _ := json.Marshal(e)
			fmt.Fprintln(out, string(b))
			return
		}
		fmt.Fprintln(out, describeEvent(e))
	})
	return nil
}

func (c *adminClient) events(ctx context.Context) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/events", nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var e admin.Error
		json.NewDecoder(resp.Body).Decode(&e)
		return nil, fmt.Errorf("event stream: %s %s", resp.Status, e.Error)
	}
	return resp.Body, nil
}

func followEvents(ctx context.Context, sc *bufio.Scanner, out io.Writer, asJSON bool) error {
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if asJSON {
			fmt.Fprintln(out, data)
			continue
		}
		var e admin.StreamEvent
		if err := json.Unmarshal([]byte(data), &e); err != nil || e.Request == nil {
			continue
		}
		fmt.Fprintln(out, describeEvent(e))
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("the agent ended the event stream")
}

// describeEvent is one line, its workload-chosen parts flattened and
// escaped (see termsafe.Line).
func describeEvent(e admin.StreamEvent) string {
	return termsafe.Line(eventLine(e))
}

func eventLine(e admin.StreamEvent) string {
	r := e.Request
	at := e.Time.Local().Format("15:04:05")
	switch e.Type {
	case approval.EventRequested:
		return fmt.Sprintf("%s  %s  requested: %s (reviewers: %s; expires %s)", at, r.ID, r.Summary(), strings.Join(r.Reviewers, ", "), r.Expires.Local().Format("15:04:05"))
	case approval.EventCovered:
		what := r.Summary()
		if e.Operation != nil {
			what = e.Operation.Summary()
		}
		return fmt.Sprintf("%s  %s  covered by its window grant: %s", at, r.ID, what)
	}
	o := fmt.Sprintf("%s  %s  %s", at, r.ID, r.State)
	if r.DecidedBy != nil {
		o += " by " + r.DecidedBy.Name
	}
	if r.DecisionReason != "" {
		o += ": " + r.DecisionReason
	}
	return o
}

func writeRequests(w io.Writer, list []*approval.Request) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCREATED\tSTATE\tTARGET\tREQUESTER\tOPERATION\tREVIEWERS\tGRANT\tEXPIRES / DECIDED")
	for _, r := range list {
		op := termsafe.Line(r.Text)
		if op == "" {
			op = strings.Join(r.Operations, ",")
		}
		if len(op) > 60 {
			op = op[:57] + "..."
		}
		grant := r.Grant
		if r.Grant == approval.GrantWindow {
			grant += " " + time.Duration(r.Window).String()
		}
		end := r.Expires.Local().Format("15:04:05")
		if r.State != approval.Pending {
			end = "-"
			if r.DecidedBy != nil {
				end = r.DecidedBy.Name
			}
			if r.DecisionReason != "" {
				end += ": " + r.DecisionReason
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Created.Local().Format("2006-01-02 15:04:05"), r.State, r.Target,
			termsafe.Line(approval.Describe(&r.Requester)), op, strings.Join(r.Reviewers, ","), grant, termsafe.Line(end))
	}
	tw.Flush()
}

func newDecide(approve bool) *cobra.Command {
	var (
		af     adminFlags
		reason string
	)
	use, short := "approve ID [--reason TEXT]", "Approve an access request: the operation that waits for it runs"
	if !approve {
		use, short = "deny ID --reason TEXT", "Deny an access request: the operation that waits for it is refused with the reason"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + `.

ID is the request's id (corral requests lists them), or a unique prefix of it.
You must be one of its reviewers (group:NAME: a member of the group; user:NAME:
that user), and not the workload that made it. Every decision is an audit event
and is recorded in the session.

With --cluster (or --kubeconfig, --context) the request is the cluster's
AccessRequest, and you are the user the API server says your kubeconfig is:
its user name and groups are matched against the reviewers.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !approve && strings.TrimSpace(reason) == "" {
				return errors.New("a denial needs --reason")
			}
			if af.clusterMode() {
				c, err := af.clusterClient()
				if err != nil {
					return err
				}
				r, err := c.Decide(cmd.Context(), args[0], approve, reason)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s: %s\n", r.State, r.ID, termsafe.Line(r.Summary()))
				return nil
			}
			c, err := af.client()
			if err != nil {
				return err
			}
			verb := "deny"
			if approve {
				verb = "approve"
			}
			var r approval.Request
			if err := c.do(cmd.Context(), http.MethodPost, "/v1/requests/"+url.PathEscape(args[0])+"/"+verb, admin.Decision{Reason: reason}, &r); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s: %s\n", r.State, r.ID, termsafe.Line(r.Summary()))
			return nil
		},
	}
	af.register(cmd)
	cmd.Flags().StringVarP(&reason, "reason", "r", "", "why (required to deny)")
	return cmd
}
