package oidc

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/corral-dev/corral/policy"
)

// testIssuer is a real OIDC issuer: discovery document, JWKS, RSA keys.
type testIssuer struct {
	srv *httptest.Server

	mu       sync.Mutex
	keys     map[string]*rsa.PrivateKey // published, by kid
	issuer   string                     // what discovery says; the server URL unless set
	down     bool                       // every request fails
	algs     []string
	jwksHits atomic.Int32
	discHits atomic.Int32
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	ti := &testIssuer{keys: map[string]*rsa.PrivateKey{}}
	ti.srv = httptest.NewServer(http.HandlerFunc(ti.serve))
	t.Cleanup(ti.srv.Close)
	ti.rotate(t, "k1")
	return ti
}

func (ti *testIssuer) URL() string { return ti.srv.URL }

func (ti *testIssuer) serve(w http.ResponseWriter, r *http.Request) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	if ti.down {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		ti.discHits.Add(1)
		iss := ti.issuer
		if iss == "" {
			iss = ti.srv.URL
		}
		algs := ti.algs
		if algs == nil {
			algs = []string{"RS256"}
		}
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                iss,
			"jwks_uri":                              ti.srv.URL + "/keys",
			"authorization_endpoint":                ti.srv.URL + "/auth",
			"token_endpoint":                        ti.srv.URL + "/token",
			"id_token_signing_alg_values_supported": algs,
		})
	case "/keys":
		ti.jwksHits.Add(1)
		var set jose.JSONWebKeySet
		for kid, k := range ti.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"})
		}
		json.NewEncoder(w).Encode(set)
	default:
		http.NotFound(w, r)
	}
}

// rotate publishes a new key under kid and withdraws the others.
func (ti *testIssuer) rotate(t *testing.T, kid string) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ti.mu.Lock()
	ti.keys = map[string]*rsa.PrivateKey{kid: k}
	ti.mu.Unlock()
	return k
}

func (ti *testIssuer) key(kid string) *rsa.PrivateKey {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	return ti.keys[kid]
}

func (ti *testIssuer) setDown(down bool) {
	ti.mu.Lock()
	ti.down = down
	ti.mu.Unlock()
}

// claims are a valid token's: override or delete (nil) entries.
func (ti *testIssuer) claims(over map[string]any) map[string]any {
	c := map[string]any{
		"iss":            ti.srv.URL,
		"sub":            "alice",
		"aud":            "corral",
		"exp":            time.Now().Add(time.Hour).Unix(),
		"iat":            time.Now().Unix(),
		"email":          "alice@example.com",
		"email_verified": true,
		"groups":         []string{"dba", "ops"},
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func sign(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// token signs claims with the issuer's current key kid.
func (ti *testIssuer) token(t *testing.T, kid string, over map[string]any) string {
	return sign(t, jose.RS256, ti.key(kid), kid, ti.claims(over))
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newVerifier(issuers ...Issuer) *Verifier {
	v := New(nil, quiet())
	v.SetIssuers(issuers)
	return v
}

func TestVerifyValidToken(t *testing.T) {
	ti := newTestIssuer(t)
	v := newVerifier(Issuer{URL: ti.URL(), Audiences: []string{"other", "corral"}})
	id, err := v.Verify(context.Background(), ti.token(t, "k1", nil))
	if err != nil {
		t.Fatal(err)
	}
	want := &policy.OIDC{Issuer: ti.URL(), Subject: "alice", Email: "alice@example.com", Groups: []string{"dba", "ops"}}
	if id.Issuer != want.Issuer || id.Subject != want.Subject || id.Email != want.Email || !slices.Equal(id.Groups, want.Groups) {
		t.Errorf("identity %+v, want %+v", id, want)
	}
	// A second token is verified with the cached keys.
	if _, err := v.Verify(context.Background(), ti.token(t, "k1", map[string]any{"sub": "bob"})); err != nil {
		t.Fatal(err)
	}
	if n := ti.jwksHits.Load(); n != 1 {
		t.Errorf("keys fetched %d times, want once", n)
	}
	if n := ti.discHits.Load(); n != 1 {
		t.Errorf("discovery ran %d times, want once", n)
	}
}

func TestVerifyClaims(t *testing.T) {
	ti := newTestIssuer(t)
	for _, c := range []struct {
		name        string
		groupsClaim string
		over        map[string]any
		email       string
		groups      []string
	}{
		{"groups as one string", "", map[string]any{"groups": "dba"}, "alice@example.com", []string{"dba"}},
		{"custom groups claim", "roles", map[string]any{"roles": []string{"reader"}}, "alice@example.com", []string{"reader"}},
		{"no groups", "", map[string]any{"groups": nil}, "alice@example.com", nil},
		{"duplicate and empty groups", "", map[string]any{"groups": []string{"dba", "", "dba"}}, "alice@example.com", []string{"dba"}},
		{"unverified email is dropped", "", map[string]any{"email_verified": false}, "", []string{"dba", "ops"}},
		{"email without email_verified is dropped", "", map[string]any{"email_verified": nil}, "", []string{"dba", "ops"}},
		{"email_verified as a string", "", map[string]any{"email_verified": "true"}, "alice@example.com", []string{"dba", "ops"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := newVerifier(Issuer{URL: ti.URL(), Audiences: []string{"corral"}, GroupsClaim: c.groupsClaim})
			id, err := v.Verify(context.Background(), ti.token(t, "k1", c.over))
			if err != nil {
				t.Fatal(err)
			}
			if id.Email != c.email || !slices.Equal(id.Groups, c.groups) {
				t.Errorf("email %q groups %q, want %q %q", id.Email, id.Groups, c.email, c.groups)
			}
		})
	}
}

func TestVerifyRefusals(t *testing.T) {
	ti := newTestIssuer(t)
	other := newTestIssuer(t) // a real issuer corral does not trust
	v := newVerifier(Issuer{URL: ti.URL(), Audiences: []string{"corral"}})
	forger, _ := rsa.GenerateKey(rand.Reader, 2048)
	pub, _ := x509.MarshalPKIXPublicKey(&ti.key("k1").PublicKey)
	b64 := base64.RawURLEncoding.EncodeToString
	claimsJSON, _ := json.Marshal(ti.claims(nil))

	for _, c := range []struct {
		name, token, reason string
	}{
		{"expired", ti.token(t, "k1", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}), "token expired at"},
		{"no expiry", ti.token(t, "k1", map[string]any{"exp": nil}), "no exp claim"},
		{"not yet valid", ti.token(t, "k1", map[string]any{"nbf": time.Now().Add(time.Hour).Unix()}), "not valid yet"},
		{"wrong audience", ti.token(t, "k1", map[string]any{"aud": "someone-else"}), `token is for audience ["someone-else"]`},
		{"no audience", ti.token(t, "k1", map[string]any{"aud": nil}), "token is for audience"},
		{"unknown issuer", other.token(t, "k1", map[string]any{"iss": other.URL()}), "is not a configured issuer"},
		{"forged with the issuer's kid", sign(t, jose.RS256, forger, "k1", ti.claims(nil)), "signature does not verify"},
		{"claims swapped after signing", func() string {
			parts := strings.Split(ti.token(t, "k1", map[string]any{"groups": []string{"readers"}}), ".")
			return parts[0] + "." + b64(claimsJSON) + "." + parts[2]
		}(), "signature does not verify"},
		{"alg none", b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64(claimsJSON) + ".", "not signed (alg none)"},
		{"HS256 keyed with the public key", sign(t, jose.HS256, pub, "k1", ti.claims(nil)), "shared secret"},
		{"algorithm the issuer does not use", sign(t, jose.RS384, ti.key("k1"), "k1", ti.claims(nil)), `signed with "RS384"`},
		{"no subject", ti.token(t, "k1", map[string]any{"sub": nil}), "no sub claim"},
		{"groups of the wrong type", ti.token(t, "k1", map[string]any{"groups": map[string]any{"a": 1}}), `claim "groups" is not a string or a list of strings`},
		{"no issuer", ti.token(t, "k1", map[string]any{"iss": nil}), "no iss claim"},
		{"not a JWT", "just-a-password", "not a JWT"},
		{"bad base64", "a.b!.c", "not a JWT"},
		{"JWE", "a.b.c.d.e", "JWE"},
		{"too large", strings.Repeat("a", MaxTokenSize+1), "larger than"},
	} {
		t.Run(c.name, func(t *testing.T) {
			id, err := v.Verify(context.Background(), c.token)
			if err == nil {
				t.Fatalf("accepted: %+v", id)
			}
			if !strings.Contains(err.Error(), c.reason) {
				t.Errorf("error %q does not say %q", err, c.reason)
			}
			if len(c.token) > 20 && strings.Contains(err.Error(), c.token) {
				t.Error("the error repeats the token")
			}
		})
	}
}

// A key published after the verifier cached the old set is fetched when a
// token names it; a withdrawn key no longer verifies once the set is
// fetched again.
func TestVerifyKeyRotation(t *testing.T) {
	ti := newTestIssuer(t)
	v := newVerifier(Issuer{URL: ti.URL(), Audiences: []string{"corral"}})
	old := ti.token(t, "k1", nil)
	if _, err := v.Verify(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	ti.rotate(t, "k2")
	if _, err := v.Verify(context.Background(), ti.token(t, "k2", nil)); err != nil {
		t.Fatalf("token signed with the new key: %v", err)
	}
	if n := ti.jwksHits.Load(); n != 2 {
		t.Errorf("keys fetched %d times, want 2 (start, new kid)", n)
	}
	if _, err := v.Verify(context.Background(), old); err == nil || !strings.Contains(err.Error(), "signature does not verify") {
		t.Errorf("token signed with the withdrawn key: %v", err)
	}
}

// An issuer that is down neither blocks nor fails anything at start; its
// tokens are refused as unreachable, without a network round trip while
// the backoff lasts, and accepted once it answers again.
func TestVerifyIssuerUnreachable(t *testing.T) {
	ti := newTestIssuer(t)
	ti.setDown(true)
	v := newVerifier(Issuer{URL: ti.URL(), Audiences: []string{"corral"}})
	now := time.Now()
	v.now = func() time.Time { return now }
	tok := ti.token(t, "k1", nil)

	_, err := v.Verify(context.Background(), tok)
	if err == nil || err.Error() != "issuer "+ti.URL()+" unreachable" {
		t.Fatalf("err = %v, want the issuer named unreachable", err)
	}
	ti.setDown(false)
	if _, err := v.Verify(context.Background(), tok); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("within the backoff: %v", err)
	}
	if n := ti.discHits.Load(); n != 0 {
		t.Fatalf("discovery answered %d times while down or backing off", n)
	}
	now = now.Add(maxBackoff)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("after the issuer came back: %v", err)
	}

	// Discovered, then down: cached keys still verify; a token naming a
	// new key cannot be verified, and says why.
	ti.setDown(true)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("cached keys: %v", err)
	}
	ti.mu.Lock()
	k3, _ := rsa.GenerateKey(rand.Reader, 2048)
	ti.keys["k3"] = k3
	ti.mu.Unlock()
	_, err = v.Verify(context.Background(), ti.token(t, "k3", nil))
	if err == nil || !strings.Contains(err.Error(), "issuer "+ti.URL()+" unreachable") {
		t.Fatalf("new key while down: %v", err)
	}
}

func TestVerifyIssuerMismatch(t *testing.T) {
	ti := newTestIssuer(t)
	ti.issuer = "https://elsewhere.example"
	v := newVerifier(Issuer{URL: ti.URL(), Audiences: []string{"corral"}})
	_, err := v.Verify(context.Background(), ti.token(t, "k1", nil))
	if err == nil || !strings.Contains(err.Error(), "misconfigured") || !strings.Contains(err.Error(), "elsewhere.example") {
		t.Fatalf("err = %v", err)
	}
}

func TestSetIssuers(t *testing.T) {
	a, b := newTestIssuer(t), newTestIssuer(t)
	v := newVerifier(Issuer{URL: a.URL(), Audiences: []string{"corral"}})
	if _, err := v.Verify(context.Background(), a.token(t, "k1", nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), b.token(t, "k1", map[string]any{"iss": b.URL()})); err == nil {
		t.Fatal("token of an issuer not yet configured accepted")
	}

	// Unchanged issuers keep what they learnt; new ones are trusted.
	v.SetIssuers([]Issuer{{URL: a.URL(), Audiences: []string{"corral"}}, {URL: b.URL(), Audiences: []string{"corral"}}})
	if _, err := v.Verify(context.Background(), a.token(t, "k1", nil)); err != nil {
		t.Fatal(err)
	}
	if a.discHits.Load() != 1 || a.jwksHits.Load() != 1 {
		t.Errorf("an unchanged issuer was discovered again (%d, %d)", a.discHits.Load(), a.jwksHits.Load())
	}
	if _, err := v.Verify(context.Background(), b.token(t, "k1", map[string]any{"iss": b.URL()})); err != nil {
		t.Fatal(err)
	}

	// A changed audience applies at once; a removed issuer is no longer
	// trusted.
	v.SetIssuers([]Issuer{{URL: a.URL(), Audiences: []string{"other"}}})
	if _, err := v.Verify(context.Background(), a.token(t, "k1", nil)); err == nil || !strings.Contains(err.Error(), "audience") {
		t.Errorf("old audience: %v", err)
	}
	if _, err := v.Verify(context.Background(), b.token(t, "k1", map[string]any{"iss": b.URL()})); err == nil || !strings.Contains(err.Error(), "not a configured issuer") {
		t.Errorf("removed issuer: %v", err)
	}
}

func TestWarmDiscoversInBackground(t *testing.T) {
	ti := newTestIssuer(t)
	v := newVerifier(Issuer{URL: ti.URL(), Audiences: []string{"corral"}})
	v.Warm(context.Background())
	// Verify waits for the discovery Warm started rather than running its
	// own.
	if _, err := v.Verify(context.Background(), ti.token(t, "k1", nil)); err != nil {
		t.Fatal(err)
	}
	if n := ti.discHits.Load(); n != 1 {
		t.Errorf("discovery ran %d times", n)
	}
}
