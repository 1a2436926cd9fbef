package postgres

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/policy"
)

// ClientAuth is how a target's clients log in to corral.
type ClientAuth = intercept.ClientAuth

// The client_auth modes (see intercept.ClientAuth).
const (
	ClientAuthKernel        = intercept.ClientAuthKernel
	ClientAuthToken         = intercept.ClientAuthToken
	ClientAuthTokenRequired = intercept.ClientAuthTokenRequired
)

// Tokens verifies a token a client presented as its password. The error
// says why a token was refused, in words the client may be shown.
type Tokens interface {
	Verify(ctx context.Context, raw string) (*policy.OIDC, error)
}

// maxPassword bounds the password message: tokens are a few KiB.
const maxPassword = 64 << 10

// loginTimeout bounds the password exchange and the token's verification.
const loginTimeout = 30 * time.Second

func (h *Handler) clientAuth(target string) ClientAuth {
	if h.ClientAuth == nil {
		return ClientAuthKernel
	}
	if m := h.ClientAuth(target); m != "" {
		return m
	}
	return ClientAuthKernel
}

// Authenticates tells the intercept server that this handler settles
// every session itself: it takes the client's login, where a token can
// change the admission, and it can tell a refused client why (a denied
// connect, a recording that cannot start) in an ErrorResponse rather than
// a bare closed socket. Such a connection reaches Serve even when the
// kernel identity alone was denied; cancel requests then work for sessions
// a token let in, as they arrive on connections of their own.
func (h *Handler) Authenticates(c *intercept.Conn) bool { return true }

// login takes the client's own authentication where its target asks for
// one, and settles who the session runs as. It reports false when the
// client was refused (and told why); the error is then what went wrong
// beyond a refusal, if anything.
func (h *Handler) login(ctx context.Context, c *intercept.Conn, cli net.Conn) (bool, error) {
	mode := h.clientAuth(c.Meta.Target.Name)
	if mode != ClientAuthKernel {
		c.SetDeadline(time.Now().Add(loginTimeout))
		ok, err := h.token(ctx, c, cli, mode)
		c.SetDeadline(time.Time{})
		if !ok {
			return false, err
		}
	}
	c.SettleAdmission(ctx) // a reviewed connect waits here for a decision
	if !c.Admission.Allowed() {
		fatal(cli, "42501", "corral: "+c.Admission.Reason)
		return false, nil
	}
	if err := c.Open(); err != nil {
		fatal(cli, "58030", "corral: "+err.Error()+" (the target requires every session to be recorded)")
		return false, nil
	}
	return true, nil
}

// token asks the client for a password and, when it is a JWT, verifies it
// and decides the admission again with its identity. A token that does not
// verify refuses the login: a client that meant to present an identity
// must not silently continue as someone with less (or other) rights.
func (h *Handler) token(ctx context.Context, c *intercept.Conn, cli net.Conn, mode ClientAuth) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, loginTimeout)
	defer cancel()
	pw, err := password(cli)
	if err != nil {
		return false, err
	}
	if !looksLikeJWT(pw) {
		if mode == ClientAuthTokenRequired {
			reason := fmt.Sprintf("corral: target %q requires an OIDC token (a JWT) as the password", c.Meta.Target.Name)
			c.Refuse(reason)
			fatal(cli, "28P01", reason)
			return false, nil
		}
		return true, nil // the kernel identity stands alone
	}
	if h.Tokens == nil {
		reason := "corral could not verify the token: no OIDC issuers are configured"
		c.Refuse(reason)
		fatal(cli, "28P01", reason)
		return false, nil
	}
	id, err := h.Tokens.Verify(ctx, pw)
	if err != nil {
		reason := "corral could not verify the token: " + err.Error()
		h.Log.Info("token refused", "session_id", c.SessionID, "target", c.Meta.Target.Name, "reason", err)
		c.Refuse(reason)
		fatal(cli, "28P01", reason)
		return false, nil
	}
	h.Log.Debug("token verified", "session_id", c.SessionID, "target", c.Meta.Target.Name, "issuer", id.Issuer, "subject", id.Subject)
	if _, err := c.Identify(ctx, h.Policy, id); err != nil {
		h.Log.Error("policy failed; connection denied", "target", c.Meta.Target.Name, "err", err)
		fatal(cli, "42501", "corral: "+c.Admission.Reason)
		return false, err
	}
	return true, nil
}

// password asks the client for its password in clear text (the hop is on
// the workload's own host, or inside corral's TLS) and returns it. It reads
// exactly the one message, so nothing the client sends after it is lost.
func password(cli net.Conn) (string, error) {
	b, _ := (&pgproto3.AuthenticationCleartextPassword{}).Encode(nil)
	if _, err := cli.Write(b); err != nil {
		return "", err
	}
	var hdr [5]byte
	if _, err := io.ReadFull(cli, hdr[:]); err != nil {
		return "", fmt.Errorf("login: %w", err)
	}
	n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
	if hdr[0] != 'p' {
		return "", fatal(cli, "08P01", fmt.Sprintf("corral asked for a password, and the client sent a message of type %q", hdr[0]))
	}
	if n < 1 || n > maxPassword {
		return "", fatal(cli, "08P01", "corral asked for a password, and the client sent a message of invalid length")
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(cli, body); err != nil {
		return "", fmt.Errorf("login: %w", err)
	}
	var pm pgproto3.PasswordMessage
	if err := pm.Decode(body); err != nil {
		return "", fatal(cli, "08P01", "corral could not read the password message")
	}
	return strings.TrimSpace(pm.Password), nil
}

// looksLikeJWT tells a token from a password: compact JWS (or JWE)
// segments of base64url whose first decodes to a JSON object. Anything
// shaped like that is treated as a token, so a malformed or tampered one
// is refused rather than mistaken for an ordinary password.
func looksLikeJWT(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 && len(parts) != 5 {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[0], "="))
	if err != nil {
		return false
	}
	var hdr map[string]any
	return json.Unmarshal(b, &hdr) == nil
}
