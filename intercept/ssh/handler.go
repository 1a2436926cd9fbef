// Package ssh serves `protocol: ssh` targets. corral is the SSH server
// the workload reaches (with a host certificate from corral's host CA, or
// corral's plain host key) and the SSH client the target sees (verifying
// its host key, logging in with a credential the workload never holds).
// Between the two, every request is put to the policy: each command of an
// exec (parsed as the shell would: pipelines, lists, substitutions,
// `bash -c` strings, sudo and xargs), shells, subsystems, port forwards,
// agent forwarding and environment variables. Terminals and command
// output are recorded as asciicast v2.
package ssh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/intercept/nbio"
	"github.com/corral-dev/corral/intercept/ssh/shellcmd"
	"github.com/corral-dev/corral/policy"
)

// Tokens verifies a token a client presented as its password. The error
// says why a token was refused, in words the client may be shown.
type Tokens interface {
	Verify(ctx context.Context, raw string) (*policy.OIDC, error)
}

// Dialer opens connections corral's kernel programs let through.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Target is how one session speaks to both sides.
type Target struct {
	// ClientAuth is how the workload logs in to corral; in kernel mode
	// "none" and any key are accepted (a password sent anyway still has a
	// JWT in it verified and joined to the identity).
	ClientAuth intercept.ClientAuth
	// HostSigner is the host key (or certificate) corral presents to the
	// workload.
	HostSigner gossh.Signer
	// HostKeyCallback verifies the target's host key; HostName (host:port)
	// is the name it is checked under. HostKeyAlgorithms, when set, are
	// the only algorithms asked of the target: those the callback knows
	// keys for, so a target that also has a host certificate is not
	// refused for offering it.
	HostKeyCallback   gossh.HostKeyCallback
	HostName          string
	HostKeyAlgorithms []string
	// LoginShell is how the target's login shell reads an exec request's
	// command line.
	LoginShell shellcmd.Shell
}

// Login is how corral logs in to the target.
type Login struct {
	User string
	Auth gossh.AuthMethod
}

// Targets gives the handler what it needs of the configuration; errors
// are the operator's to fix and are shown to the client as a refusal.
type Targets interface {
	Target(c *intercept.Conn) (Target, error)
	Login(c *intercept.Conn, alias string) (Login, error)
}

// Handler serves `protocol: ssh` targets.
type Handler struct {
	Policy  intercept.Decider
	Targets Targets
	Tokens  Tokens
	Dialer  Dialer
	// MaxRecordedOutput bounds what the recording keeps of a command's
	// output, and of its input, each (a command without a terminal:
	// usually data, `ssh host cat < backup`); MaxRecordedTerminal the same
	// for a terminal (a person's shell or command), and four times it
	// what a connection's terminals keep of their output together. Bounds are of the
	// recording's bytes on disk, escaped as JSON. The rest is counted.
	// 0: the defaults; negative: no bound.
	MaxRecordedOutput   int64
	MaxRecordedTerminal int64
	Log                 *slog.Logger
}

// Default bounds of what a channel's recording keeps. A terminal is what
// a person saw and typed, kept in full up to a bound no interactive
// session reaches in a day; a command's streams are usually data, whose
// first MiB shows what it was and whose size is counted (escaping a
// stream of arbitrary bytes as asciicast JSON costs more than moving it).
const (
	DefaultMaxRecordedOutput   = 1 << 20
	DefaultMaxRecordedTerminal = 64 << 20
)

// fastCiphers are the ciphers corral offers workloads.
var fastCiphers = []string{gossh.CipherAES128GCM, gossh.CipherAES256GCM, gossh.CipherAES128CTR, gossh.CipherAES192CTR, gossh.CipherAES256CTR}

// handshakeTimeout bounds each side's SSH handshake, login included.
const handshakeTimeout = 30 * time.Second

// Authenticates tells the intercept server that this handler settles the
// session itself: a token given as the password may change who the
// workload is, and a refusal is told to the client as a rejected
// channel with corral's reason rather than a bare closed socket.
func (h *Handler) Authenticates(*intercept.Conn) bool { return true }

// Serve runs one client connection.
func (h *Handler) Serve(ctx context.Context, c *intercept.Conn) error {
	t, err := h.Targets.Target(c)
	if err != nil {
		h.Log.Error("cannot serve ssh target", "target", c.Meta.Target.Name, "err", err)
		c.Refuse("corral cannot serve this target: " + err.Error())
		return err
	}
	// A transfer is many large writes, each of which easily outlasts the
	// scheduler's syscall tick (see nbio).
	c.Conn = nbio.Wrap(c.Conn)
	s := &session{h: h, c: c, t: t, ctx: ctx}
	return s.run()
}

// session is one client connection and, once let in, its target.
type session struct {
	h   *Handler
	c   *intercept.Conn
	t   Target
	ctx context.Context

	// castBytes is what the connection's terminal recordings hold of what
	// terminals showed.
	castBytes atomic.Int64

	user    string       // the login the client asked for
	token   *policy.OIDC // a verified token given as the password
	refusal string       // why the client's login was refused

	client        *gossh.ServerConn
	upstream      gossh.Conn
	upstreamChans <-chan gossh.NewChannel
	upstreamReqs  <-chan *gossh.Request

	// ready is closed once the session is settled: upstream is connected,
	// or the client refused (upstream stays nil).
	ready chan struct{}

	mu             sync.Mutex
	forwards       map[string]int // remote forwards the policy allowed, by bind address
	deniedForwards int            // forwards the policy denied, recorded up to maxAsked
	agentAllowed   bool           // agent forwarding allowed on some channel
	wg             sync.WaitGroup // the client's channels
	bridges        sync.WaitGroup // the target's channels
}

func (s *session) run() error {
	c := s.c
	cfg := s.serverConfig()
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	joined := joinWrites(c)
	sconn, chans, reqs, err := gossh.NewServerConn(joined, cfg)
	if err != nil {
		if s.refusal == "" {
			s.refusal = "the SSH handshake did not complete: " + err.Error()
		}
		c.Refuse(s.refusal)
		return nil
	}
	c.SetDeadline(time.Time{})
	joined.negotiated(sconn.Conn)
	s.client = sconn
	defer sconn.Close()
	hangup := make(chan struct{})
	go func() {
		sconn.Wait()
		close(hangup)
	}()
	c.Hangup = hangup
	// Global requests (keepalives) are answered from now on: a client
	// waiting for an approval of its connection must not time out.
	s.ready = make(chan struct{})
	go s.clientGlobal(reqs)

	if s.token != nil {
		if _, err := c.Identify(s.ctx, s.h.Policy, s.token); err != nil {
			s.h.Log.Error("policy failed; connection denied", "target", c.Meta.Target.Name, "err", err)
		}
	}
	c.SettleAdmission(s.ctx) // a reviewed connect waits here
	if !c.Admission.Allowed() {
		s.refuse(chans, c.Admission.Reason)
		return nil
	}
	alias := c.Admission.Credential
	if alias == "" {
		alias = "default"
	}
	login, err := s.h.Targets.Login(c, alias)
	if err != nil {
		s.h.Log.Error("no credential for target", "target", c.Meta.Target.Name, "alias", alias, "err", err)
		c.Refuse(fmt.Sprintf("corral has no usable credential %q for target %q", alias, c.Meta.Target.Name))
		s.refuse(chans, c.Admission.Reason)
		return nil
	}
	if err := c.Open(); err != nil {
		s.refuse(chans, err.Error())
		return err
	}
	err = s.dial(login)
	if err != nil {
		s.h.Log.Warn("cannot reach ssh target", "target", c.Meta.Target.Name, "session_id", c.SessionID, "err", err)
		s.refuse(chans, err.Error())
		return err
	}
	up := s.upstream
	defer up.Close()
	close(s.ready)
	// The target going away ends the client's connection too.
	go func() {
		up.Wait()
		sconn.Close()
	}()
	go s.upstreamGlobal()
	upChans := make(chan struct{})
	go func() {
		defer close(upChans)
		s.upstreamChannels()
	}()
	for nch := range chans {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.channel(nch)
		}()
	}
	up.Close()
	s.wg.Wait()
	<-upChans
	s.bridges.Wait()
	return nil
}

// refuse answers every channel the client opens with reason, so the
// client prints it ("channel 0: open failed: administratively prohibited:
// corral: ..."), and ends the connection after the first one, or after a
// while if the client opens none.
func (s *session) refuse(chans <-chan gossh.NewChannel, reason string) {
	close(s.ready)
	timer := time.AfterFunc(handshakeTimeout, func() { s.client.Close() })
	defer timer.Stop()
	for nch := range chans {
		nch.Reject(gossh.Prohibited, "corral: "+reason)
		// Let the rejection reach the client before the connection ends.
		time.AfterFunc(time.Second, func() { s.client.Close() })
	}
}

// dial connects to the target, verifies its host key and logs in.
func (s *session) dial(login Login) error {
	ctx, cancel := context.WithTimeout(s.ctx, handshakeTimeout)
	defer cancel()
	addr := s.c.Meta.OrigDst.String()
	nc, err := s.h.Dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("corral cannot reach the target: %v", err)
	}
	nc.SetDeadline(time.Now().Add(handshakeTimeout))
	name := s.t.HostName
	if name == "" {
		name = addr
	}
	var keyErr error
	cfg := &gossh.ClientConfig{
		User: login.User,
		Auth: []gossh.AuthMethod{login.Auth},
		HostKeyCallback: func(host string, remote net.Addr, key gossh.PublicKey) error {
			if s.t.HostKeyCallback == nil {
				keyErr = errors.New("no known host keys are configured")
				return keyErr
			}
			keyErr = s.t.HostKeyCallback(host, remote, key)
			return keyErr
		},
		HostKeyAlgorithms: s.t.HostKeyAlgorithms,
		ClientVersion:     "SSH-2.0-corral",
		Config:            gossh.Config{Ciphers: fastCiphers},
	}
	joined := joinWrites(nbio.Wrap(nc))
	cc, chans, reqs, err := gossh.NewClientConn(joined, name, cfg)
	if err != nil {
		joined.Close()
		if keyErr != nil {
			return fmt.Errorf("the target's host key does not match what corral knows of it (ssh.known_hosts), so corral did not log in: %v", keyErr)
		}
		return fmt.Errorf("corral could not log in to the target: %v", err)
	}
	nc.SetDeadline(time.Time{})
	joined.negotiated(cc)
	s.upstream, s.upstreamChans, s.upstreamReqs = cc, chans, reqs
	return nil
}

// serverConfig takes the client's login the way the target's client_auth
// says.
func (s *session) serverConfig() *gossh.ServerConfig {
	cfg := &gossh.ServerConfig{ServerVersion: "SSH-2.0-corral", MaxAuthTries: 6}
	// The client's preference decides; OpenSSH puts ChaCha20-Poly1305
	// first, which Go implements without assembly on amd64 at a fraction
	// of AES-GCM's speed (AES-NI). Every OpenSSH client also speaks
	// AES-GCM and AES-CTR, and they are as strong.
	cfg.Ciphers = fastCiphers
	cfg.AddHostKey(s.t.HostSigner)
	mode := s.t.ClientAuth
	if mode == "" {
		mode = intercept.ClientAuthKernel
	}
	if mode == intercept.ClientAuthKernel {
		cfg.NoClientAuth = true
		cfg.NoClientAuthCallback = func(m gossh.ConnMetadata) (*gossh.Permissions, error) {
			s.user = m.User()
			return nil, nil
		}
		// The key proves nothing corral relies on; some clients never try
		// "none", and must not be turned away for it.
		cfg.PublicKeyCallback = func(m gossh.ConnMetadata, _ gossh.PublicKey) (*gossh.Permissions, error) {
			s.user = m.User()
			return nil, nil
		}
	}
	cfg.PasswordCallback = func(m gossh.ConnMetadata, pw []byte) (*gossh.Permissions, error) {
		s.user = m.User()
		raw := string(pw)
		if !looksLikeJWT(raw) {
			if mode == intercept.ClientAuthTokenRequired {
				s.refusal = "this target requires a token (an OIDC JWT) as the password"
				return nil, errors.New(s.refusal)
			}
			s.token = nil
			return nil, nil
		}
		if s.h.Tokens == nil {
			s.refusal = "corral cannot verify tokens: no OIDC issuer is configured"
			return nil, errors.New(s.refusal)
		}
		ctx, cancel := context.WithTimeout(s.ctx, handshakeTimeout)
		defer cancel()
		id, err := s.h.Tokens.Verify(ctx, raw)
		if err != nil {
			s.refusal = "token refused: " + err.Error()
			return nil, errors.New(s.refusal)
		}
		s.token, s.refusal = id, ""
		return nil, nil
	}
	return cfg
}

// looksLikeJWT reports whether a password has a JWT's shape: three
// base64url parts, the first opening a JSON object ("eyJ").
func looksLikeJWT(s string) bool {
	if !strings.HasPrefix(s, "eyJ") || strings.Count(s, ".") != 2 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return false
		}
	}
	return true
}
