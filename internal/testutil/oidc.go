package testutil

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// OIDCIssuer is a real OIDC issuer for tests, on plain HTTP on 127.0.0.1:
// a discovery document, a JWKS with the keys it publishes, and tokens
// signed with them.
type OIDCIssuer struct {
	URL string
	// Discoveries and KeyFetches count the requests it answered; Refused
	// those it turned away while down.
	Discoveries, KeyFetches, Refused atomic.Int32

	srv *httptest.Server

	mu      sync.Mutex
	keys    map[string]*rsa.PrivateKey // published, by kid
	current string
	issuer  string // what discovery says, when not URL
	algs    []string
	down    bool
	moved   bool // discovery names /old-keys, which redirects to /keys
}

// StartOIDCIssuer starts an issuer publishing one RSA key, "k1". It stops
// at cleanup.
func StartOIDCIssuer(t testing.TB) *OIDCIssuer {
	t.Helper()
	i := &OIDCIssuer{keys: map[string]*rsa.PrivateKey{}}
	i.srv = httptest.NewServer(http.HandlerFunc(i.serve))
	t.Cleanup(i.srv.Close)
	i.URL = i.srv.URL
	i.Rotate(t, "k1")
	return i
}

func (i *OIDCIssuer) serve(w http.ResponseWriter, r *http.Request) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.down {
		i.Refused.Add(1)
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		i.Discoveries.Add(1)
		iss := i.issuer
		if iss == "" {
			iss = i.URL
		}
		jwks := i.URL + "/keys"
		if i.moved {
			jwks = i.URL + "/old-keys"
		}
		algs := i.algs
		if algs == nil {
			algs = []string{"RS256"}
		}
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                iss,
			"jwks_uri":                              jwks,
			"authorization_endpoint":                i.URL + "/auth",
			"token_endpoint":                        i.URL + "/token",
			"id_token_signing_alg_values_supported": algs,
		})
	case "/old-keys":
		http.Redirect(w, r, "/keys", http.StatusFound)
	case "/keys":
		i.KeyFetches.Add(1)
		var set jose.JSONWebKeySet
		for kid, k := range i.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"})
		}
		json.NewEncoder(w).Encode(set)
	default:
		http.NotFound(w, r)
	}
}

// MoveKeys makes discovery name a key set address that redirects to the
// real one, as issuers behind a CDN or a renamed path do.
func (i *OIDCIssuer) MoveKeys() {
	i.mu.Lock()
	i.moved = true
	i.mu.Unlock()
}

// Rotate publishes a new key under kid, signs with it from now on, and
// withdraws the others.
func (i *OIDCIssuer) Rotate(t testing.TB, kid string) {
	t.Helper()
	k := newRSAKey(t)
	i.mu.Lock()
	i.keys = map[string]*rsa.PrivateKey{kid: k}
	i.current = kid
	i.mu.Unlock()
}

// AddKey publishes one more key, without signing with it.
func (i *OIDCIssuer) AddKey(t testing.TB, kid string) {
	t.Helper()
	k := newRSAKey(t)
	i.mu.Lock()
	i.keys[kid] = k
	i.mu.Unlock()
}

// Key is the private key published under kid (nil when withdrawn).
func (i *OIDCIssuer) Key(kid string) *rsa.PrivateKey {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.keys[kid]
}

// SetDown makes every request fail (503) or succeed again.
func (i *OIDCIssuer) SetDown(down bool) {
	i.mu.Lock()
	i.down = down
	i.mu.Unlock()
}

// SetDiscoveredIssuer makes discovery name another issuer than URL.
func (i *OIDCIssuer) SetDiscoveredIssuer(iss string) {
	i.mu.Lock()
	i.issuer = iss
	i.mu.Unlock()
}

// Claims are a valid token's for audience corral, subject alice, groups
// dba and ops, valid for an hour; over replaces entries, a nil value
// removes one.
func (i *OIDCIssuer) Claims(over map[string]any) map[string]any {
	c := map[string]any{
		"iss":            i.URL,
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

// Token is a token with Claims(over), signed with the current key.
func (i *OIDCIssuer) Token(t testing.TB, over map[string]any) string {
	t.Helper()
	i.mu.Lock()
	kid := i.current
	i.mu.Unlock()
	return i.TokenWith(t, kid, over)
}

// TokenWith is a token with Claims(over), signed with the key kid.
func (i *OIDCIssuer) TokenWith(t testing.TB, kid string, over map[string]any) string {
	t.Helper()
	return SignJWT(t, jose.RS256, i.Key(kid), kid, i.Claims(over))
}

// SignJWT signs claims as a compact JWS with key under kid ("": none).
func SignJWT(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
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

func newRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
