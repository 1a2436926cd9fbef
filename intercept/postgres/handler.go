package postgres

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/intercept/nbio"
)

// maxMessage bounds a client message: a hostile client cannot make the
// proxy buffer more than this for one message.
const maxMessage = 64 << 20

// maxSQL bounds the SQL corral parses: parse trees cost many times the
// text, and one workload must not exhaust the node's agent.
const maxSQL = 1 << 20

// Credential is what corral logs in upstream with.
type Credential struct {
	Username string
	Password string
}

// Credentials resolves a target's credential alias. The workload never
// sees what it returns.
type Credentials interface {
	Credential(target, alias string) (Credential, error)
}

// Upstream is how to reach a target's server securely.
type Upstream struct {
	// SSLMode is libpq's: disable, require, verify-ca, verify-full.
	SSLMode    string
	CAFile     string
	ServerName string
	// Auth lists the authentication methods the server may ask for, by
	// libpq's require_auth names; none: any pgconn answers.
	Auth []string
}

// ClientTLSMode says whether a target's workloads may, or must, encrypt
// their connection to corral.
type ClientTLSMode uint8

const (
	// ClientTLSDisable answers SSLRequest with N: the hop is on the
	// workload's own host.
	ClientTLSDisable ClientTLSMode = iota
	// ClientTLSAllow terminates TLS for a client that asks, and serves one
	// that does not in plaintext.
	ClientTLSAllow
	// ClientTLSRequire refuses a client that does not ask for TLS.
	ClientTLSRequire
)

// ClientTLS is the client-side TLS setting for one connection.
type ClientTLS struct {
	Mode ClientTLSMode
	// Config terminates the workload's TLS, with a certificate that names
	// the target as the workload addressed it. Without one TLS is declined,
	// whatever the mode.
	Config *tls.Config
}

// Dialer opens connections corral's kernel programs let through.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Handler serves `protocol: postgres` targets.
type Handler struct {
	Policy      intercept.Decider
	Credentials Credentials
	// Upstreams returns the TLS settings of a target.
	Upstreams func(target string) Upstream
	// ClientTLS returns the client-side TLS setting of a connection's
	// target; nil declines TLS for every target.
	ClientTLS func(c *intercept.Conn) ClientTLS
	// ClientAuth returns how a target's clients log in (nil, "": kernel);
	// Tokens verifies the tokens they present.
	ClientAuth func(target string) ClientAuth
	// Databases lists the databases a target's sessions may open; none:
	// any the credential may connect to.
	Databases func(target string) []string
	Tokens    Tokens
	Dialer    Dialer
	// MaskKey keys the hash mask method, so hashes are stable for this
	// deployment and not reversible by a dictionary elsewhere.
	MaskKey []byte
	Log     *slog.Logger

	mu         sync.Mutex
	catalogs   map[string]*catalog // by target and credential alias
	cancels    cancelKeys
	classifier classifier
}

// Serve runs one client session.
func (h *Handler) Serve(ctx context.Context, c *intercept.Conn) error {
	c.Conn = nbio.Wrap(c.Conn)
	c.SetDeadline(time.Now().Add(30 * time.Second)) // startup only, TLS handshake included
	startup, cli, err := h.startup(ctx, c)
	if err != nil || startup == nil {
		return err
	}
	c.SetDeadline(time.Time{})

	params := startup.Parameters
	if r := params["replication"]; r != "" && r != "false" && r != "off" && r != "no" && r != "0" {
		return fatal(cli, "42501", "replication connections are not allowed through corral")
	}
	if enc := params["client_encoding"]; !clientEncodingOK(enc) {
		return fatal(cli, "22023", fmt.Sprintf("corral speaks UTF8 only; client_encoding %q is not supported", enc))
	}
	database := params["database"]
	if database == "" {
		database = params["user"]
	}
	if ok, err := h.openDatabase(ctx, c, cli, database); !ok {
		return err
	}
	if ok, err := h.login(ctx, c, cli); !ok {
		return err
	}
	alias := c.Admission.Credential
	if alias == "" {
		alias = "default"
	}
	cred, err := h.Credentials.Credential(c.Meta.Target.Name, alias)
	if err != nil {
		h.Log.Error("no credential for target", "target", c.Meta.Target.Name, "alias", alias, "err", err)
		return fatal(cli, "28000", fmt.Sprintf("corral has no usable credential %q for target %q", alias, c.Meta.Target.Name))
	}
	cfg, err := h.upstreamConfig(c, cred, database, passThrough(params))
	if err != nil {
		return fatal(cli, "08000", "corral: "+err.Error())
	}
	up, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		msg := upstreamMessage(err)
		if strings.Contains(msg, "require_auth check failed") {
			h.Log.Warn("the upstream asked for an authentication method the target does not allow", "target", c.Meta.Target.Name, "allowed", cfg.RequireAuth, "err", msg)
			return fatal(cli, "28000", fmt.Sprintf("corral could not open the database: the server asked for an authentication method target %q does not allow (upstream_auth: %s; a password goes in clear only to a server TLS verified): %s",
				c.Meta.Target.Name, cfg.RequireAuth, msg))
		}
		return fatal(cli, codeOf(err, "08006"), "corral could not open the database: "+msg)
	}
	// Hand-over: SyncConn drains what pgconn may have buffered, so the
	// proxy's own readers start exactly where pgconn stopped.
	if err := up.SyncConn(ctx); err != nil {
		up.Close(ctx)
		return fatal(cli, "08006", "corral could not take over the database connection")
	}
	hj, err := up.Hijack()
	if err != nil {
		up.Close(ctx)
		return fatal(cli, "08006", "corral could not take over the database connection")
	}
	defer hj.Conn.Close()

	for name, v := range hj.ParameterStatuses {
		if !safeSyntax(name, v) {
			return fatal(cli, "22023", fmt.Sprintf("corral cannot vouch for this session: the server runs with %s = %s", name, v))
		}
	}
	key := h.cancels.add(c.Meta.OrigDst.String(), hj.PID, hj.SecretKey, upstreamTLS(hj.Conn, cfg))
	defer h.cancels.remove(key)

	// The client's login ends here: corral authenticated the workload by
	// what the kernel says it is (and a token, if it presented one), and
	// the server by corral's credential.
	var out []byte
	out, _ = (&pgproto3.AuthenticationOk{}).Encode(out)
	for k, v := range hj.ParameterStatuses {
		out, _ = (&pgproto3.ParameterStatus{Name: k, Value: v}).Encode(out)
	}
	out, _ = (&pgproto3.BackendKeyData{ProcessID: key.pid, SecretKey: key.secret[:]}).Encode(out)
	out, _ = (&pgproto3.ReadyForQuery{TxStatus: hj.TxStatus}).Encode(out)
	if _, err := cli.Write(out); err != nil {
		return nil
	}

	s := newSession(ctx, h, c, cli, nbio.Wrap(hj.Conn), h.catalog(c.Meta.Target.Name, alias, cfg))
	return s.run()
}

// startup handles everything before the StartupMessage: TLS is
// terminated or declined as the target's setting says, GSS encryption is
// declined (the workload talks to corral on its own host), cancel requests
// are passed on. It returns the StartupMessage and the connection the
// session goes on with (TLS over c, or c itself), or nil, nil, nil when the
// connection was a cancel request.
func (h *Handler) startup(ctx context.Context, c *intercept.Conn) (*pgproto3.StartupMessage, net.Conn, error) {
	var (
		cli net.Conn = c
		// A buffer of its own rather than a pgproto3.Backend, so that what
		// arrived beyond a message is visible: before a TLS handshake it
		// must be nothing, after the StartupMessage it is the session's.
		r         = bufio.NewReader(c)
		encrypted bool
		setting   *ClientTLS
	)
	clientTLS := func() ClientTLS {
		if setting == nil {
			setting = &ClientTLS{}
			if h.ClientTLS != nil {
				*setting = h.ClientTLS(c)
			}
		}
		return *setting
	}
	// A PostgreSQL 17 client with sslnegotiation=direct opens with a TLS
	// ClientHello instead of an SSLRequest (a handshake record starts with
	// 0x16; a startup packet's length never does).
	if first, err := r.Peek(1); err == nil && first[0] == 0x16 {
		ct := clientTLS()
		if ct.Mode == ClientTLSDisable || ct.Config == nil {
			return nil, nil, errors.New("startup: direct TLS, but the target does not terminate client TLS")
		}
		tc := tls.Server(&clientConn{Conn: c, r: r}, serverTLSConfig(ct.Config))
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, nil, fmt.Errorf("startup: direct TLS handshake: %w", err)
		}
		// As PostgreSQL requires: only a client that said it speaks
		// PostgreSQL may skip the SSLRequest, so another protocol's TLS
		// client cannot be made to talk to it.
		if tc.ConnectionState().NegotiatedProtocol != "postgresql" {
			tc.Close()
			return nil, nil, errors.New("startup: direct TLS without the postgresql ALPN protocol")
		}
		cli, r, encrypted = tc, bufio.NewReader(tc), true
	}
	for i := 0; i < 4; i++ {
		msg, err := readStartup(r)
		if err != nil {
			return nil, nil, fmt.Errorf("startup: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest:
			if encrypted {
				return nil, nil, errors.New("startup: SSLRequest inside TLS")
			}
			ct := clientTLS()
			if ct.Mode == ClientTLSDisable || ct.Config == nil {
				if _, err := c.Write([]byte{'N'}); err != nil {
					return nil, nil, err
				}
				continue
			}
			// A client waits for the answer before it starts its handshake.
			// Bytes already here were sent before it: unencrypted, possibly
			// injected by someone in the path, and they would be taken as
			// coming from inside TLS (PostgreSQL's CVE-2021-23214).
			if r.Buffered() > 0 {
				return nil, nil, fatal(c, "08P01", "corral: received unencrypted data after SSL request")
			}
			if _, err := c.Write([]byte{'S'}); err != nil {
				return nil, nil, err
			}
			// TLS runs over the intercepted connection itself, so the
			// session's byte counts are what crossed the wire.
			tc := tls.Server(c, serverTLSConfig(ct.Config))
			if err := tc.HandshakeContext(ctx); err != nil {
				return nil, nil, fmt.Errorf("startup: TLS handshake: %w", err)
			}
			cli, r, encrypted = tc, bufio.NewReader(tc), true
		case *pgproto3.GSSEncRequest:
			if encrypted {
				return nil, nil, errors.New("startup: GSSENCRequest inside TLS")
			}
			if _, err := c.Write([]byte{'N'}); err != nil {
				return nil, nil, err
			}
		case *pgproto3.CancelRequest:
			// Honoured with or without TLS, whatever the mode: libpq's
			// PQcancel (psql's Ctrl-C) never encrypts, and the key is the
			// secret, not the channel.
			h.cancel(ctx, m)
			return nil, nil, nil
		case *pgproto3.StartupMessage:
			if !encrypted && clientTLS().Mode == ClientTLSRequire {
				return nil, nil, fatal(cli, "28000", fmt.Sprintf("corral requires TLS for target %q: connect with sslmode=require, or verify-full trusting corral's CA", c.Meta.Target.Name))
			}
			// A newer client (protocol 3.2) is told to speak 3.0, which
			// corral speaks: libpq then carries on with 3.0.
			var unknown []string
			for k := range m.Parameters {
				if strings.HasPrefix(k, "_pq_.") {
					unknown = append(unknown, k)
					delete(m.Parameters, k)
				}
			}
			if m.ProtocolVersion != pgproto3.ProtocolVersion30 || len(unknown) > 0 {
				b, _ := (&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: unknown}).Encode(nil)
				if _, err := cli.Write(b); err != nil {
					return nil, nil, err
				}
			}
			return m, readOn(cli, r), nil
		default:
			return nil, nil, fmt.Errorf("startup: unexpected %T", msg)
		}
	}
	return nil, nil, errors.New("startup: too many encryption requests")
}

// Startup packet codes and PostgreSQL's bound on a startup packet.
const (
	cancelRequestCode = 80877102
	sslRequestCode    = 80877103
	gssEncRequestCode = 80877104
	maxStartupPacket  = 10000
)

// readStartup reads one startup packet, and nothing beyond it.
func readStartup(r io.Reader) (pgproto3.FrontendMessage, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int64(int32(binary.BigEndian.Uint32(hdr[:])))
	if n < 8 || n > maxStartupPacket {
		return nil, fmt.Errorf("invalid length of startup packet: %d", n)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	var msg pgproto3.FrontendMessage
	switch code := binary.BigEndian.Uint32(body); code {
	case pgproto3.ProtocolVersion30, pgproto3.ProtocolVersion32:
		msg = &pgproto3.StartupMessage{}
	case sslRequestCode:
		msg = &pgproto3.SSLRequest{}
	case gssEncRequestCode:
		msg = &pgproto3.GSSEncRequest{}
	case cancelRequestCode:
		msg = &pgproto3.CancelRequest{}
	default:
		return nil, fmt.Errorf("unknown startup message code: %d", code)
	}
	if err := msg.Decode(body); err != nil {
		return nil, err
	}
	return msg, nil
}

// serverTLSConfig holds a target's TLS settings to what this protocol
// needs, whatever the caller gave.
func serverTLSConfig(base *tls.Config) *tls.Config {
	cfg := base.Clone()
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	// PostgreSQL 17 clients offer this ALPN name and refuse a server that
	// picks another; older ones offer none.
	cfg.NextProtos = []string{"postgresql"}
	return cfg
}

// clientConn is the workload's end of a session, read from where startup
// stopped: what the client sent beyond its StartupMessage (a pipelining
// client) was already read into startup's buffer.
type clientConn struct {
	net.Conn
	r io.Reader
}

func (c *clientConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func readOn(cli net.Conn, r *bufio.Reader) net.Conn {
	n := r.Buffered()
	if n == 0 {
		return cli
	}
	b, _ := r.Peek(n)
	return &clientConn{Conn: cli, r: io.MultiReader(bytes.NewReader(bytes.Clone(b)), cli)}
}

// passThrough keeps the startup parameters that only shape how results
// look. Every other parameter is dropped: PostgreSQL accepts any setting
// in the startup packet, `role` and `options=-c role=...` included, and
// those would change who the session acts as.
func passThrough(p map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range p {
		switch strings.ToLower(k) {
		case "application_name", "datestyle", "timezone", "extra_float_digits",
			"intervalstyle", "bytea_output", "lc_messages", "lc_monetary", "lc_numeric", "lc_time":
			out[k] = v
		}
	}
	// corral reads statements as UTF-8 with standard-conforming strings, as
	// its parser does; the server must read them the same way, or a string
	// literal could end in a different place for each and hide a statement
	// (a multi-byte encoding whose second byte is a backslash or a quote).
	out["client_encoding"] = "UTF8"
	out["standard_conforming_strings"] = "on"
	return out
}

// clientEncodingOK says whether corral can honour the encoding a client
// asked for: UTF-8, or SQL_ASCII and "auto", which take bytes as they are.
func clientEncodingOK(enc string) bool {
	switch strings.ToUpper(strings.ReplaceAll(strings.ReplaceAll(enc, "-", ""), "_", "")) {
	case "", "UTF8", "UNICODE", "SQLASCII", "AUTO":
		return true
	}
	return false
}

// safeSyntax reports whether a parameter the server reports keeps its
// reading of statements the same as corral's parser.
func safeSyntax(name, value string) bool {
	switch strings.ToLower(name) {
	case "client_encoding":
		return strings.EqualFold(value, "UTF8")
	case "standard_conforming_strings":
		return strings.EqualFold(value, "on")
	}
	return true
}

func (h *Handler) upstreamConfig(c *intercept.Conn, cred Credential, database string, runtime map[string]string) (*pgconn.Config, error) {
	// Without a setting, the server must prove who it is: corral is about
	// to hand it a password, and a target given as a CIDR lets the
	// workload choose the address.
	u := Upstream{SSLMode: "verify-full"}
	if h.Upstreams != nil {
		u = h.Upstreams(c.Meta.Target.Name)
	}
	if u.SSLMode == "" {
		u.SSLMode = "verify-full"
	}
	dst := c.Meta.OrigDst
	conn := fmt.Sprintf("host=%s port=%d sslmode=%s connect_timeout=10", dst.Addr(), dst.Port(), u.SSLMode)
	if u.CAFile != "" {
		conn += " sslrootcert=" + quoteConnValue(u.CAFile)
	}
	if u.ServerName != "" {
		conn += " sslsni=1"
	}
	cfg, err := pgconn.ParseConfig(conn)
	if err != nil {
		return nil, fmt.Errorf("upstream settings: %w", err)
	}
	if u.ServerName != "" {
		for _, t := range append([]*pgconn.FallbackConfig{{TLSConfig: cfg.TLSConfig}}, cfg.Fallbacks...) {
			if t.TLSConfig != nil {
				t.TLSConfig.ServerName = u.ServerName
			}
		}
	}
	// Nothing from the agent's environment (PGUSER, PGPASSWORD, .pgpass)
	// may slip in: every login detail is set here.
	cfg.User = cred.Username
	cfg.Password = cred.Password
	cfg.Database = database
	cfg.RuntimeParams = runtime
	cfg.DialFunc = h.Dialer.DialContext
	// pgconn refuses, before it sends anything, a method the target does
	// not allow: a server asking for the password in clear gets nothing.
	cfg.RequireAuth = strings.Join(u.Auth, ",")
	return cfg, nil
}

func quoteConnValue(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func (h *Handler) catalog(target, alias string, cfg *pgconn.Config) *catalog {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.catalogs == nil {
		h.catalogs = map[string]*catalog{}
	}
	// One catalog per server and database: a target given as a CIDR or
	// several endpoints spans servers whose OIDs mean different things.
	k := target + "\x00" + alias + "\x00" + cfg.Host + ":" + strconv.Itoa(int(cfg.Port)) + "\x00" + cfg.Database
	if c := h.catalogs[k]; c != nil {
		return c
	}
	cc := cfg.Copy()
	cc.RuntimeParams = map[string]string{"application_name": "corral-catalog"}
	c := newCatalog(func(ctx context.Context) (*pgconn.PgConn, error) {
		conn, err := pgconn.ConnectConfig(ctx, cc)
		if err == nil {
			// The catalog's questions are small but planned as costly
			// (recursive type walks): compiling them costs more than
			// running them. A server or pooler without the setting
			// answers with an error, which changes nothing.
			conn.Exec(ctx, "SET jit = off").ReadAll()
		}
		return conn, err
	})
	h.catalogs[k] = c
	return c
}

// Close releases the catalog connections.
func (h *Handler) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.catalogs {
		c.close()
	}
}

// fatal sends a FATAL error to a client that has not started a session
// (or whose session cannot go on) and ends it.
func fatal(c net.Conn, code, msg string) error {
	b, _ := (&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: msg}).Encode(nil)
	c.Write(b)
	return errors.New(msg)
}

func codeOf(err error, def string) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code != "" {
		return pe.Code
	}
	return def
}

// upstreamMessage says why the server refused corral without repeating
// anything secret: the server's own message, or the kind of failure.
func upstreamMessage(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Message
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return "connection failed: " + errors.Unwrap(ce).Error()
	}
	return "connection failed"
}

// --- cancel requests ---

// ServeUnidentified takes a connection that reached corral's listener
// without being redirected, if it carries a PostgreSQL cancel request (pgx
// sends those to the address its connection reports, which is corral's
// listener). Anything else is left to the caller to refuse. The request is
// honoured only with a key corral handed out.
func (h *Handler) ServeUnidentified(ctx context.Context, c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [16]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return false
	}
	if binary.BigEndian.Uint32(b[0:4]) != 16 || binary.BigEndian.Uint32(b[4:8]) != cancelRequestCode {
		return false
	}
	h.cancel(ctx, &pgproto3.CancelRequest{ProcessID: binary.BigEndian.Uint32(b[8:12]), SecretKey: append([]byte(nil), b[12:16]...)})
	return true
}

// cancelKey is the pid and secret corral gives the client in place of the
// server's, so a cancel request (which arrives on a new connection, also
// redirected to corral) can be mapped back.
type cancelKey struct {
	pid    uint32
	secret [4]byte // protocol 3.0 keys are 4 bytes
}

type cancelTarget struct {
	addr   string
	pid    uint32
	secret []byte
	// tls is set when the session's upstream connection was encrypted:
	// its cancel goes the same way, so the key never crosses the network
	// in the clear where the session's traffic does not.
	tls *tls.Config
}

type cancelKeys struct {
	mu sync.Mutex
	m  map[cancelKey]cancelTarget
}

func (k *cancelKeys) add(addr string, pid uint32, secret []byte, tc *tls.Config) cancelKey {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = map[cancelKey]cancelTarget{}
	}
	for {
		var key cancelKey
		var b [4]byte
		rand.Read(b[:])
		rand.Read(key.secret[:])
		key.pid = binary.BigEndian.Uint32(b[:]) & 0x7fffffff
		if _, taken := k.m[key]; !taken {
			k.m[key] = cancelTarget{addr: addr, pid: pid, secret: append([]byte(nil), secret...), tls: tc}
			return key
		}
	}
}

func (k *cancelKeys) remove(key cancelKey) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, key)
}

// upstreamTLS is the TLS configuration a session's upstream connection
// was made with, or nil when it is not encrypted.
func upstreamTLS(conn net.Conn, cfg *pgconn.Config) *tls.Config {
	if _, ok := conn.(*tls.Conn); !ok {
		return nil
	}
	if cfg.TLSConfig != nil {
		return cfg.TLSConfig
	}
	for _, f := range cfg.Fallbacks {
		if f.TLSConfig != nil {
			return f.TLSConfig
		}
	}
	return nil
}

// startTLS asks the server for TLS (SSLRequest) and completes the
// handshake with tc.
func startTLS(ctx context.Context, conn net.Conn, tc *tls.Config) (net.Conn, error) {
	b, _ := (&pgproto3.SSLRequest{}).Encode(nil)
	if _, err := conn.Write(b); err != nil {
		return nil, err
	}
	var answer [1]byte
	if _, err := io.ReadFull(conn, answer[:]); err != nil {
		return nil, err
	}
	if answer[0] != 'S' {
		return nil, fmt.Errorf("the server declined TLS (%q)", answer[0])
	}
	t := tls.Client(conn, tc.Clone())
	if err := t.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

func (h *Handler) cancel(ctx context.Context, m *pgproto3.CancelRequest) {
	var key cancelKey
	key.pid = m.ProcessID
	copy(key.secret[:], m.SecretKey)
	h.cancels.mu.Lock()
	t, ok := h.cancels.m[key]
	h.cancels.mu.Unlock()
	if !ok || len(m.SecretKey) != len(key.secret) {
		h.Log.Warn("cancel request with an unknown key ignored")
		return // unknown or forged: say nothing, as PostgreSQL does
	}
	h.Log.Debug("cancel request passed on", "addr", t.addr, "tls", t.tls != nil)
	conn, err := h.Dialer.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		h.Log.Warn("cancel request: cannot reach the server", "addr", t.addr, "err", err)
		return
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if t.tls != nil {
		if conn, err = startTLS(ctx, conn, t.tls); err != nil {
			h.Log.Warn("cancel request: TLS to the server failed; not sent", "addr", t.addr, "err", err)
			return
		}
		defer conn.Close()
	}
	b, _ := (&pgproto3.CancelRequest{ProcessID: t.pid, SecretKey: t.secret}).Encode(nil)
	conn.Write(b)
	// The server answers by closing; wait for it so the cancel is
	// delivered before the client's own connection goes away.
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	conn.Read(make([]byte, 1))
}

// openDatabase settles the database the session opens, as the client
// named it: one the target does not list is refused, and the policy and
// the audit learn of it (the admission is decided again with it). It
// reports false when the client was refused.
func (h *Handler) openDatabase(ctx context.Context, c *intercept.Conn, cli net.Conn, database string) (bool, error) {
	if _, err := c.SetDatabase(ctx, h.Policy, database); err != nil {
		h.Log.Error("policy failed", "session_id", c.SessionID, "err", err)
	}
	if h.Databases != nil {
		if dbs := h.Databases(c.Meta.Target.Name); len(dbs) > 0 && !slices.Contains(dbs, database) {
			// The list is not told: the client may not be admitted at all.
			reason := fmt.Sprintf("target %s does not open database %q", c.Meta.Target.Name, database)
			c.Refuse(reason)
			fatal(cli, "3D000", "corral: "+reason)
			return false, nil
		}
	}
	return true, nil
}
