// Package oidc verifies the tokens workloads and people present to corral
// (as a PostgreSQL password, and later an SSH password or an HTTP bearer)
// against the configured OIDC issuers, and turns a verified token into the
// OIDC part of a workload's identity.
//
// A token is matched to an issuer by its unverified `iss` claim and then
// verified in full by that issuer's go-oidc verifier: signature against the
// issuer's published keys (cached; fetched again when a token names a key
// id not seen yet, which is how key rotation reaches corral), expiry and
// not-before, issuer, and an audience among the configured ones. Nothing
// from the token is believed before that.
//
// Issuers are discovered lazily: an issuer that is down when the agent
// starts neither delays nor fails the start. Tokens from it are refused
// ("issuer ... unreachable") until it answers; failed discoveries are
// retried no more often than a growing backoff allows, so a dead issuer
// costs a login a map lookup, not a network timeout.
//
// Claims that join the identity: `sub` (required), `email` only when the
// token also says `email_verified: true` (an address an issuer has not
// verified is whatever the account holder typed, and rules grant on it;
// issuers that never send `email_verified` are matched on subject and
// groups instead), and the groups from the issuer's groups claim (a string
// or a list of strings).
package oidc

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"

	"github.com/corral-dev/corral/policy"
)

// Issuer is one trusted issuer.
type Issuer struct {
	// URL must be exactly the `iss` of its tokens (OIDC discovery is at
	// URL/.well-known/openid-configuration).
	URL string
	// Audiences a token must be issued for (one of).
	Audiences []string
	// GroupsClaim names the claim holding groups; "" means "groups".
	GroupsClaim string
	// Approvers says the issuer's tokens may decide approval requests
	// (see Approvers): the issuer vouches for the people who review, not
	// only for workloads.
	Approvers bool
}

// Limits and timings.
const (
	// MaxTokenSize bounds what is parsed at all.
	MaxTokenSize = 16 << 10
	// discoveryTimeout and verifyTimeout bound the network a login can
	// wait for.
	discoveryTimeout = 10 * time.Second
	verifyTimeout    = 10 * time.Second
	// Backoff between discoveries of an issuer that failed.
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
	// keyRefetchEvery bounds how often an issuer's key set is fetched.
	// go-oidc fetches it again for any token its cached keys do not
	// verify, forged ones included: unbounded, a workload sending made-up
	// tokens would have every node's agent fetch the issuer's keys for
	// each of them.
	keyRefetchEvery = 10 * time.Second
)

// Refusals of a key set fetch within keyRefetchEvery of the last: after
// one that worked, and after one that failed.
var (
	errKeysFresh = errors.New("the issuer's keys were fetched moments ago")
	errKeysDown  = errors.New("the issuer's keys could not be fetched moments ago")
)

// Verifier checks tokens against the configured issuers. It is safe for
// concurrent use; SetIssuers may be called at any time (a reload).
type Verifier struct {
	client *http.Client
	log    *slog.Logger
	now    func() time.Time

	mu        sync.RWMutex
	issuers   map[string]*issuer // by URL
	approvers map[string]bool    // URLs of the issuers marked Approvers
	warming   sync.WaitGroup
}

// New returns a verifier that reaches issuers with client (nil:
// http.DefaultClient).
func New(client *http.Client, log *slog.Logger) *Verifier {
	if client == nil {
		client = http.DefaultClient
	}
	return &Verifier{client: client, log: log, now: time.Now, issuers: map[string]*issuer{}}
}

// SetIssuers makes list the trusted issuers. An issuer whose settings did
// not change keeps its discovery and cached keys.
func (v *Verifier) SetIssuers(list []Issuer) {
	v.mu.Lock()
	defer v.mu.Unlock()
	next := make(map[string]*issuer, len(list))
	v.approvers = map[string]bool{}
	for _, c := range list {
		if c.Approvers {
			v.approvers[c.URL] = true
		}
		if c.GroupsClaim == "" {
			c.GroupsClaim = "groups"
		}
		if old := v.issuers[c.URL]; old != nil && old.cfg.GroupsClaim == c.GroupsClaim && slices.Equal(old.cfg.Audiences, c.Audiences) {
			next[c.URL] = old
			continue
		}
		next[c.URL] = &issuer{cfg: Issuer{URL: c.URL, Audiences: slices.Clone(c.Audiences), GroupsClaim: c.GroupsClaim}}
	}
	v.issuers = next
}

// Warm discovers every issuer not yet discovered, in the background, so
// the first login does not pay for it and a misconfigured issuer shows in
// the log at start. It returns at once; failures are retried on demand.
// Wait waits for the discoveries it started, which end with ctx.
func (v *Verifier) Warm(ctx context.Context) {
	v.mu.RLock()
	var list []*issuer
	for _, is := range v.issuers {
		list = append(list, is)
	}
	v.mu.RUnlock()
	for _, is := range list {
		v.warming.Add(1)
		go func() {
			defer v.warming.Done()
			is.ready(ctx, v)
		}()
	}
}

// Wait returns when the discoveries Warm started have ended.
func (v *Verifier) Wait() { v.warming.Wait() }

// Verify checks raw and returns the identity it carries. The error says
// why a token was refused in words a client may be shown; it never
// contains the token.
func (v *Verifier) Verify(ctx context.Context, raw string) (*policy.OIDC, error) {
	return v.verify(ctx, raw, false)
}

// verify is Verify; approvers refuses issuers not marked Approvers.
func (v *Verifier) verify(ctx context.Context, raw string, approvers bool) (*policy.OIDC, error) {
	if len(raw) > MaxTokenSize {
		return nil, fmt.Errorf("token is larger than %d bytes", MaxTokenSize)
	}
	hdr, iss, err := peek(raw)
	if err != nil {
		return nil, err
	}
	// go-oidc refuses these too; saying so plainly is kinder to whoever
	// is debugging a client.
	if strings.EqualFold(hdr.Alg, "none") {
		return nil, errors.New("token is not signed (alg none)")
	}
	if strings.HasPrefix(hdr.Alg, "HS") {
		return nil, fmt.Errorf("token is signed with a shared secret (alg %q); only issuer keys are accepted", hdr.Alg)
	}
	v.mu.RLock()
	is, approver := v.issuers[iss], v.approvers[iss]
	v.mu.RUnlock()
	if is == nil {
		return nil, fmt.Errorf("token issuer %q is not a configured issuer", iss)
	}
	if approvers && !approver {
		return nil, fmt.Errorf("tokens of issuer %q do not decide approvals: the issuer lacks approvers: true", iss)
	}

	ctx, cancel := context.WithTimeout(ctx, verifyTimeout)
	defer cancel()
	verifier, algs, err := is.ready(ctx, v)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(algs, hdr.Alg) {
		return nil, fmt.Errorf("token is signed with %q; issuer %s signs with %q", hdr.Alg, iss, algs)
	}
	var fetch keyFetch
	tok, err := verifier.Verify(context.WithValue(ctx, keyFetchKey{}, &fetch), raw)
	switch {
	case errors.Is(fetch.err, errKeysFresh):
		return nil, fmt.Errorf("token signature does not verify with the issuer's keys (a key they lack is looked for at most every %s)", keyRefetchEvery)
	case errors.Is(fetch.err, errKeysDown):
		// The failed fetch was logged when it was made.
		return nil, keysUnreachable(iss)
	case fetch.err != nil:
		v.log.Warn("oidc issuer's keys could not be fetched", "issuer", iss, "err", fetch.err)
		return nil, keysUnreachable(iss)
	}
	if err != nil {
		return nil, refusal(err)
	}
	if !slices.ContainsFunc(tok.Audience, func(a string) bool { return slices.Contains(is.cfg.Audiences, a) }) {
		return nil, fmt.Errorf("token is for audience %q, not %q", tok.Audience, is.cfg.Audiences)
	}
	return identity(tok, is.cfg)
}

// Approvers is v restricted to the issuers marked Approvers. A workload's
// token is verified by any configured issuer; one that decides approvals
// must come from an issuer trusted to say who the reviewers are. Without
// this, an issuer that vouches only for workloads (a CI system, another
// cluster's API server) could mint a subject or a group that reviewers
// are named by.
func (v *Verifier) Approvers() ApproverTokens { return ApproverTokens{v: v} }

// ApproverTokens verifies approvers' tokens (see Verifier.Approvers).
type ApproverTokens struct{ v *Verifier }

// Verify refuses a token whose issuer is not marked Approvers, before
// anything is fetched for it, and verifies the others as Verifier.Verify.
func (a ApproverTokens) Verify(ctx context.Context, raw string) (*policy.OIDC, error) {
	return a.v.verify(ctx, raw, true)
}

// UnreachableError is the refusal of a token whose issuer could not be
// asked (its discovery document or its keys): it says nothing of the token
// itself, and the same token may verify once the issuer answers.
type UnreachableError struct {
	Issuer string
	Keys   bool // the keys could not be fetched (discovery had answered)
}

func (e *UnreachableError) Error() string {
	if e.Keys {
		return fmt.Sprintf("issuer %s unreachable (its keys could not be fetched)", e.Issuer)
	}
	return fmt.Sprintf("issuer %s unreachable", e.Issuer)
}

// Temporary reports that asking again later may succeed.
func (e *UnreachableError) Temporary() bool { return true }

func keysUnreachable(iss string) error { return &UnreachableError{Issuer: iss, Keys: true} }

// header is the part of a JOSE header looked at before verification.
type header struct {
	Alg string `json:"alg"`
}

// peek reads the header and the issuer of a compact JWS without verifying
// anything: only to say which issuer must verify it.
func peek(raw string) (header, string, error) {
	var h header
	parts := strings.Split(raw, ".")
	if len(parts) == 5 {
		return h, "", errors.New("encrypted tokens (JWE) are not supported")
	}
	if len(parts) != 3 {
		return h, "", errors.New("not a JWT (want header.payload.signature)")
	}
	if err := decodeSegment(parts[0], &h); err != nil {
		return h, "", fmt.Errorf("not a JWT: header: %v", err)
	}
	var claims struct {
		Iss string `json:"iss"`
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return h, "", fmt.Errorf("not a JWT: payload: %v", err)
	}
	if claims.Iss == "" {
		return h, "", errors.New("token has no iss claim")
	}
	return h, claims.Iss, nil
}

func decodeSegment(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return errors.New("not base64url")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return errors.New("not a JSON object")
	}
	return nil
}

// refusal turns go-oidc's errors into reasons a client can act on.
func refusal(err error) error {
	var exp *gooidc.TokenExpiredError
	switch msg := err.Error(); {
	case errors.As(err, &exp) && exp.Expiry.IsZero():
		return errors.New("token has no exp claim (tokens without expiry are not accepted)")
	case errors.As(err, &exp):
		return fmt.Errorf("token expired at %s", exp.Expiry.UTC().Format(time.RFC3339))
	case strings.Contains(msg, "before the nbf"):
		return errors.New("token is not valid yet (nbf is in the future)")
	case strings.Contains(msg, "failed to verify signature"):
		return errors.New("token signature does not verify with the issuer's keys")
	default:
		return errors.New(strings.TrimPrefix(msg, "oidc: "))
	}
}

// identity extracts the claims that join the workload's identity.
func identity(tok *gooidc.IDToken, cfg Issuer) (*policy.OIDC, error) {
	if tok.Subject == "" {
		return nil, errors.New("token has no sub claim")
	}
	var claims map[string]json.RawMessage
	if err := tok.Claims(&claims); err != nil {
		return nil, fmt.Errorf("token claims: %v", err)
	}
	id := &policy.OIDC{Issuer: tok.Issuer, Subject: tok.Subject}
	var email string
	if json.Unmarshal(claims["email"], &email) == nil && email != "" && verified(claims["email_verified"]) {
		id.Email = email
	}
	if raw, ok := claims[cfg.GroupsClaim]; ok && string(raw) != "null" {
		var one string
		var list []string
		switch {
		case json.Unmarshal(raw, &one) == nil:
			list = []string{one}
		case json.Unmarshal(raw, &list) == nil:
		default:
			return nil, fmt.Errorf("token claim %q is not a string or a list of strings", cfg.GroupsClaim)
		}
		for _, g := range list {
			if g != "" && !slices.Contains(id.Groups, g) {
				id.Groups = append(id.Groups, g)
			}
		}
	}
	return id, nil
}

// verified reads email_verified, which some issuers send as a string.
func verified(raw json.RawMessage) bool {
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b
	}
	var s string
	return json.Unmarshal(raw, &s) == nil && strings.EqualFold(s, "true")
}

// issuer is one configured issuer and what discovery learnt of it.
type issuer struct {
	cfg Issuer

	// mu is held through a discovery, so concurrent logins wait for one
	// discovery instead of each starting their own.
	mu       sync.Mutex
	verifier *gooidc.IDTokenVerifier
	algs     []string // the signing algorithms it advertises
	failures int
	retryAt  time.Time
}

// ready returns the issuer's verifier, discovering the issuer first if
// needed and the backoff allows.
func (is *issuer) ready(ctx context.Context, v *Verifier) (*gooidc.IDTokenVerifier, []string, error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.verifier != nil {
		return is.verifier, is.algs, nil
	}
	unreachable := &UnreachableError{Issuer: is.cfg.URL}
	if v.now().Before(is.retryAt) {
		return nil, nil, unreachable
	}
	verifier, algs, err := is.discover(ctx, v.client, v.now)
	if err != nil {
		is.failures++
		backoff := min(minBackoff<<min(is.failures-1, 16), maxBackoff)
		is.retryAt = v.now().Add(backoff)
		v.log.Warn("oidc issuer discovery failed; its tokens are refused until it answers", "issuer", is.cfg.URL, "retry_in", backoff, "err", err)
		var mismatch *gooidc.IssuerMismatchError
		if errors.As(err, &mismatch) {
			return nil, nil, fmt.Errorf("issuer %s is misconfigured (its discovery document names issuer %q)", is.cfg.URL, mismatch.Discovered)
		}
		return nil, nil, unreachable
	}
	is.verifier, is.algs, is.failures = verifier, algs, 0
	v.log.Info("oidc issuer discovered", "issuer", is.cfg.URL)
	return verifier, algs, nil
}

func (is *issuer) discover(ctx context.Context, client *http.Client, now func() time.Time) (*gooidc.IDTokenVerifier, []string, error) {
	ctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
	defer cancel()
	p, err := gooidc.NewProvider(gooidc.ClientContext(ctx, client), is.cfg.URL)
	if err != nil {
		return nil, nil, err
	}
	var meta struct {
		JWKS string   `json:"jwks_uri"`
		Algs []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := p.Claims(&meta); err != nil {
		return nil, nil, err
	}
	if meta.JWKS == "" {
		return nil, nil, errors.New("the discovery document has no jwks_uri")
	}
	// The key set is go-oidc's (cached keys, fetched again for an unknown
	// key id), wrapped to tell "the issuer cannot be reached" from "the
	// token is bad", and its fetches bounded (fetchLimit). It keeps the
	// client, not ctx, for later fetches.
	limit := &fetchLimit{next: client.Transport, every: keyRefetchEvery, now: now}
	if limit.next == nil {
		limit.next = http.DefaultTransport
	}
	limited := *client
	limited.Transport = limit
	keys := &keySet{gooidc.NewRemoteKeySet(gooidc.ClientContext(context.Background(), &limited), meta.JWKS)}
	algs := signingAlgs(meta.Algs)
	// The audience is checked by Verify against the whole list; go-oidc's
	// own check takes a single client id.
	return gooidc.NewVerifier(is.cfg.URL, keys, &gooidc.Config{SkipClientIDCheck: true, SupportedSigningAlgs: algs}), algs, nil
}

// signingAlgs keeps the asymmetric algorithms the issuer advertises;
// nothing advertised means RS256, as OIDC discovery specifies.
func signingAlgs(advertised []string) []string {
	known := []string{gooidc.RS256, gooidc.RS384, gooidc.RS512, gooidc.ES256, gooidc.ES384, gooidc.ES512, gooidc.PS256, gooidc.PS384, gooidc.PS512, gooidc.EdDSA}
	var out []string
	for _, a := range advertised {
		if slices.Contains(known, a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		out = []string{gooidc.RS256}
	}
	return out
}

type keyFetchKey struct{}

// keyFetch carries out of a verification why the issuer's keys could not
// be fetched, when that is why it failed.
type keyFetch struct{ err error }

type keySet struct{ remote *gooidc.RemoteKeySet }

func (k *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	payload, err := k.remote.VerifySignature(ctx, jwt)
	// go-oidc wraps only a failed fetch ("fetching keys: ..."); a token
	// that does not verify is a plain error.
	if err != nil && errors.Unwrap(err) != nil {
		if f, ok := ctx.Value(keyFetchKey{}).(*keyFetch); ok {
			f.err = err
		}
	}
	return payload, err
}

// fetchLimit lets a fetch through at most once per every: it carries the
// fetches of one issuer's key set. A redirect's next hop belongs to the
// fetch that was let through; a failed fetch counts, and what is refused
// after it says the issuer could not be reached.
type fetchLimit struct {
	next  http.RoundTripper
	every time.Duration
	now   func() time.Time

	mu     sync.Mutex
	last   time.Time
	failed bool // the last fetch's outcome (its final hop's)
}

func (l *fetchLimit) RoundTrip(r *http.Request) (*http.Response, error) {
	hop := r.Response != nil // set by http.Client on the request a redirect makes
	l.mu.Lock()
	now := l.now()
	if !hop && !l.last.IsZero() && now.Sub(l.last) < l.every {
		refusal := errKeysFresh
		if l.failed {
			refusal = errKeysDown
		}
		l.mu.Unlock()
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, refusal
	}
	if !hop {
		l.last = now
	}
	l.mu.Unlock()
	resp, err := l.next.RoundTrip(r)
	l.mu.Lock()
	l.failed = err != nil || resp.StatusCode >= 300
	l.mu.Unlock()
	return resp, err
}
