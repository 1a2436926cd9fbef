package oidc

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/corral-dev/corral/internal/testutil"
	"github.com/corral-dev/corral/policy"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newVerifier(issuers ...Issuer) *Verifier {
	v := New(nil, quiet())
	v.SetIssuers(issuers)
	return v
}

func TestVerifyValidToken(t *testing.T) {
	ti := testutil.StartOIDCIssuer(t)
	v := newVerifier(Issuer{URL: ti.URL, Audiences: []string{"other", "corral"}})
	id, err := v.Verify(context.Background(), ti.Token(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	want := &policy.OIDC{Issuer: ti.URL, Subject: "alice", Email: "alice@example.com", Groups: []string{"dba", "ops"}}
	if id.Issuer != want.Issuer || id.Subject != want.Subject || id.Email != want.Email || !slices.Equal(id.Groups, want.Groups) {
		t.Errorf("identity %+v, want %+v", id, want)
	}
	// A second token is verified with the cached keys.
	if _, err := v.Verify(context.Background(), ti.Token(t, map[string]any{"sub": "bob"})); err != nil {
		t.Fatal(err)
	}
	if n := ti.KeyFetches.Load(); n != 1 {
		t.Errorf("keys fetched %d times, want once", n)
	}
	if n := ti.Discoveries.Load(); n != 1 {
		t.Errorf("discovery ran %d times, want once", n)
	}
}

func TestVerifyClaims(t *testing.T) {
	ti := testutil.StartOIDCIssuer(t)
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
			v := newVerifier(Issuer{URL: ti.URL, Audiences: []string{"corral"}, GroupsClaim: c.groupsClaim})
			id, err := v.Verify(context.Background(), ti.Token(t, c.over))
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
	ti := testutil.StartOIDCIssuer(t)
	other := testutil.StartOIDCIssuer(t) // a real issuer corral does not trust
	v := newVerifier(Issuer{URL: ti.URL, Audiences: []string{"corral"}})
	forger, _ := rsa.GenerateKey(rand.Reader, 2048)
	pub, _ := x509.MarshalPKIXPublicKey(&ti.Key("k1").PublicKey)
	b64 := base64.RawURLEncoding.EncodeToString
	claimsJSON, _ := json.Marshal(ti.Claims(nil))

	for _, c := range []struct {
		name, token, reason string
	}{
		{"expired", ti.Token(t, map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}), "token expired at"},
		{"no expiry", ti.Token(t, map[string]any{"exp": nil}), "no exp claim"},
		{"not yet valid", ti.Token(t, map[string]any{"nbf": time.Now().Add(time.Hour).Unix()}), "not valid yet"},
		{"wrong audience", ti.Token(t, map[string]any{"aud": "someone-else"}), `token is for audience ["someone-else"]`},
		{"no audience", ti.Token(t, map[string]any{"aud": nil}), "token is for audience"},
		{"unknown issuer", other.Token(t, map[string]any{"iss": other.URL}), "is not a configured issuer"},
		{"forged with the issuer's kid", testutil.SignJWT(t, jose.RS256, forger, "k1", ti.Claims(nil)), "signature does not verify"},
		{"claims swapped after signing", func() string {
			parts := strings.Split(ti.Token(t, map[string]any{"groups": []string{"readers"}}), ".")
			return parts[0] + "." + b64(claimsJSON) + "." + parts[2]
		}(), "signature does not verify"},
		{"alg none", b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64(claimsJSON) + ".", "not signed (alg none)"},
		{"HS256 keyed with the public key", testutil.SignJWT(t, jose.HS256, pub, "k1", ti.Claims(nil)), "shared secret"},
		{"algorithm the issuer does not use", testutil.SignJWT(t, jose.RS384, ti.Key("k1"), "k1", ti.Claims(nil)), `signed with "RS384"`},
		{"no subject", ti.Token(t, map[string]any{"sub": nil}), "no sub claim"},
		{"groups of the wrong type", ti.Token(t, map[string]any{"groups": map[string]any{"a": 1}}), `claim "groups" is not a string or a list of strings`},
		{"no issuer", ti.Token(t, map[string]any{"iss": nil}), "no iss claim"},
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

// clocked returns a verifier of ti's tokens on a clock the test moves, which
// has verified one token (so ti's keys are cached as of *now).
func clocked(t *testing.T, ti *testutil.OIDCIssuer) (*Verifier, *time.Time) {
	t.Helper()
	v := newVerifier(Issuer{URL: ti.URL, Audiences: []string{"corral"}})
	now := time.Now()
	v.now = func() time.Time { return now }
	if _, err := v.Verify(context.Background(), ti.Token(t, nil)); err != nil {
		t.Fatal(err)
	}
	return v, &now
}

// A key published after the verifier cached the old set is fetched when a
// token names it; a withdrawn key no longer verifies once the set is
// fetched again.
func TestVerifyKeyRotation(t *testing.T) {
	ti := testutil.StartOIDCIssuer(t)
	old := ti.Token(t, nil)
	v, now := clocked(t, ti)
	ti.Rotate(t, "k2")
	// Within keyRefetchEvery of the last fetch the new key is not looked
	// for yet; the refusal says so.
	_, err := v.Verify(context.Background(), ti.Token(t, nil))
	if err == nil || !strings.Contains(err.Error(), "at most every 10s") {
		t.Fatalf("new key just after a fetch: %v", err)
	}
	*now = now.Add(keyRefetchEvery)
	// go-oidc settles a fetch for the verifications waiting on it before
	// its own goroutine stores the keys and lets the next fetch start: for
	// that moment a verification still joins the refused fetch, or reads
	// the withdrawn key from the cache. Nothing tells when that goroutine
	// has run, so each check yields to it until it has.
	newToken := ti.Token(t, nil)
	var last error
	if settled(func() bool { _, last = v.Verify(context.Background(), newToken); return last == nil }) != nil {
		t.Fatalf("token signed with the new key: %v", last)
	}
	if n := ti.KeyFetches.Load(); n != 2 {
		t.Errorf("keys fetched %d times, want 2 (start, new kid)", n)
	}
	settled(func() bool { _, last = v.Verify(context.Background(), old); return last != nil })
	if last == nil || !strings.Contains(last.Error(), "signature does not verify") {
		t.Errorf("token signed with the withdrawn key: %v", last)
	}
}

// settled calls ok until it reports true, yielding in between, and says
// when it never did.
func settled(ok func() bool) error {
	for range 10000 {
		if ok() {
			return nil
		}
		runtime.Gosched()
	}
	return errors.New("not settled")
}

// An issuer that is down neither blocks nor fails anything at start; its
// tokens are refused as unreachable, without a network round trip while
// the backoff lasts, and accepted once it answers again.
func TestVerifyIssuerUnreachable(t *testing.T) {
	ti := testutil.StartOIDCIssuer(t)
	ti.SetDown(true)
	v := newVerifier(Issuer{URL: ti.URL, Audiences: []string{"corral"}})
	now := time.Now()
	v.now = func() time.Time { return now }
	tok := ti.Token(t, nil)

	_, err := v.Verify(context.Background(), tok)
	if err == nil || err.Error() != "issuer "+ti.URL+" unreachable" {
		t.Fatalf("err = %v, want the issuer named unreachable", err)
	}
	ti.SetDown(false)
	if _, err := v.Verify(context.Background(), tok); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("within the backoff: %v", err)
	}
	if n := ti.Discoveries.Load(); n != 0 {
		t.Fatalf("discovery answered %d times while down or backing off", n)
	}
	now = now.Add(maxBackoff)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("after the issuer came back: %v", err)
	}

	// Discovered, then down: cached keys still verify; a token naming a
	// new key cannot be verified, and says why.
	ti.SetDown(true)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("cached keys: %v", err)
	}
	ti.AddKey(t, "k3")
	now = now.Add(keyRefetchEvery)
	_, err = v.Verify(context.Background(), ti.TokenWith(t, "k3", nil))
	if err == nil || !strings.Contains(err.Error(), "issuer "+ti.URL+" unreachable") {
		t.Fatalf("new key while down: %v", err)
	}
}

// Tokens the cached keys do not verify (made-up key ids, forged
// signatures under a real key id) do not each have the issuer's keys
// fetched again: a workload cannot turn its agent against the issuer.
func TestForgedTokensDoNotFetchKeys(t *testing.T) {
	ti := testutil.StartOIDCIssuer(t)
	v, now := clocked(t, ti)
	forger, _ := rsa.GenerateKey(rand.Reader, 2048)
	for i := range 50 {
		kid := "k1"
		if i%2 == 1 {
			kid = fmt.Sprintf("made-up-%d", i)
		}
		_, err := v.Verify(context.Background(), testutil.SignJWT(t, jose.RS256, forger, kid, ti.Claims(nil)))
		if err == nil || !strings.Contains(err.Error(), "signature does not verify") {
			t.Fatalf("forged token %d: %v", i, err)
		}
		*now = now.Add(keyRefetchEvery / 100)
	}
	// Half of keyRefetchEvery passed: the one fetch is the first one.
	if n := ti.KeyFetches.Load(); n != 1 {
		t.Fatalf("keys fetched %d times for 50 forged tokens, want only the first fetch", n)
	}
	// Real tokens go on verifying from the cache meanwhile.
	if _, err := v.Verify(context.Background(), ti.Token(t, nil)); err != nil {
		t.Fatal(err)
	}
	// Past the bound, one more fetch may be made, and only one.
	*now = now.Add(keyRefetchEvery)
	for range 5 {
		v.Verify(context.Background(), testutil.SignJWT(t, jose.RS256, forger, "made-up", ti.Claims(nil)))
	}
	if n := ti.KeyFetches.Load(); n != 2 {
		t.Fatalf("keys fetched %d times, want 2", n)
	}
}

// A key set address that redirects is one fetch, not a fetch and a
// refused second one.
func TestVerifyKeysBehindRedirect(t *testing.T) {
	ti := testutil.StartOIDCIssuer(t)
	ti.MoveKeys()
	v := newVerifier(Issuer{URL: ti.URL, Audiences: []string{"corral"}})
	if _, err := v.Verify(context.Background(), ti.Token(t, nil)); err != nil {
		t.Fatal(err)
	}
	if n := ti.KeyFetches.Load(); n != 1 {
		t.Fatalf("keys fetched %d times", n)
	}
}

// While the issuer cannot be reached, tokens its cached keys cannot verify
// are refused as unreachable, without a request each.
func TestVerifyIssuerDownWithinFetchBound(t *testing.T) {
	ti := testutil.StartOIDCIssuer(t)
	v, now := clocked(t, ti)
	ti.AddKey(t, "k2")
	ti.SetDown(true)
	*now = now.Add(keyRefetchEvery)
	for range 3 {
		_, err := v.Verify(context.Background(), ti.TokenWith(t, "k2", nil))
		if err == nil || !strings.Contains(err.Error(), "issuer "+ti.URL+" unreachable") {
			t.Fatalf("new key while down: %v", err)
		}
	}
	if n := ti.Refused.Load(); n != 1 {
		t.Fatalf("the issuer was asked %d times while down, want once", n)
	}
	ti.SetDown(false)
	*now = now.Add(keyRefetchEvery)
	if _, err := v.Verify(context.Background(), ti.TokenWith(t, "k2", nil)); err != nil {
		t.Fatalf("once the issuer answers again: %v", err)
	}
	if n := ti.KeyFetches.Load(); n != 2 {
		t.Fatalf("keys fetched %d times, want 2 (the down fetches are not answered)", n)
	}
}

func TestVerifyIssuerMismatch(t *testing.T) {
	ti := testutil.StartOIDCIssuer(t)
	ti.SetDiscoveredIssuer("https://elsewhere.example")
	v := newVerifier(Issuer{URL: ti.URL, Audiences: []string{"corral"}})
	_, err := v.Verify(context.Background(), ti.Token(t, nil))
	if err == nil || !strings.Contains(err.Error(), "misconfigured") || !strings.Contains(err.Error(), "elsewhere.example") {
		t.Fatalf("err = %v", err)
	}
}

func TestSetIssuers(t *testing.T) {
	a, b := testutil.StartOIDCIssuer(t), testutil.StartOIDCIssuer(t)
	v := newVerifier(Issuer{URL: a.URL, Audiences: []string{"corral"}})
	if _, err := v.Verify(context.Background(), a.Token(t, nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), b.Token(t, map[string]any{"iss": b.URL})); err == nil {
		t.Fatal("token of an issuer not yet configured accepted")
	}

	// Unchanged issuers keep what they learnt; new ones are trusted.
	v.SetIssuers([]Issuer{{URL: a.URL, Audiences: []string{"corral"}}, {URL: b.URL, Audiences: []string{"corral"}}})
	if _, err := v.Verify(context.Background(), a.Token(t, nil)); err != nil {
		t.Fatal(err)
	}
	if a.Discoveries.Load() != 1 || a.KeyFetches.Load() != 1 {
		t.Errorf("an unchanged issuer was discovered again (%d, %d)", a.Discoveries.Load(), a.KeyFetches.Load())
	}
	if _, err := v.Verify(context.Background(), b.Token(t, map[string]any{"iss": b.URL})); err != nil {
		t.Fatal(err)
	}

	// A changed audience applies at once; a removed issuer is no longer
	// trusted.
	v.SetIssuers([]Issuer{{URL: a.URL, Audiences: []string{"other"}}})
	if _, err := v.Verify(context.Background(), a.Token(t, nil)); err == nil || !strings.Contains(err.Error(), "audience") {
		t.Errorf("old audience: %v", err)
	}
	if _, err := v.Verify(context.Background(), b.Token(t, map[string]any{"iss": b.URL})); err == nil || !strings.Contains(err.Error(), "not a configured issuer") {
		t.Errorf("removed issuer: %v", err)
	}
}

func TestWarmDiscoversInBackground(t *testing.T) {
	ti := testutil.StartOIDCIssuer(t)
	v := newVerifier(Issuer{URL: ti.URL, Audiences: []string{"corral"}})
	v.Warm(context.Background())
	// Verify waits for the discovery Warm started rather than running its
	// own.
	if _, err := v.Verify(context.Background(), ti.Token(t, nil)); err != nil {
		t.Fatal(err)
	}
	v.Wait()
	if n := ti.Discoveries.Load(); n != 1 {
		t.Errorf("discovery ran %d times", n)
	}
}

// Whatever a client sends as a token is refused without a panic, without
// a network round trip (no issuer is configured), and without being
// repeated in the reason.
func FuzzVerify(f *testing.F) {
	for _, s := range []string{
		"",
		"hunter2",
		"a.b.c",
		"eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2kifQ.",
		"eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2kiLCJzdWIiOiJ4In0.c2ln",
		"eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOjF9.c2ln",
		"a.b.c.d.e",
	} {
		f.Add(s)
	}
	v := newVerifier()
	f.Fuzz(func(t *testing.T, raw string) {
		id, err := v.Verify(context.Background(), raw)
		if err == nil {
			t.Fatalf("%q accepted: %+v", raw, id)
		}
		if len(raw) > 40 && strings.Contains(err.Error(), raw) {
			t.Fatalf("the reason repeats the token: %v", err)
		}
	})
}

// Only issuers marked Approvers vouch for approvers; a reload marks and
// unmarks them, and a token of another issuer is refused before anything
// is fetched for it.
func TestApprovers(t *testing.T) {
	people, ci := testutil.StartOIDCIssuer(t), testutil.StartOIDCIssuer(t)
	v := newVerifier(Issuer{URL: people.URL, Audiences: []string{"corral"}, Approvers: true}, Issuer{URL: ci.URL, Audiences: []string{"corral"}})
	ctx := context.Background()
	if id, err := v.Approvers().Verify(ctx, people.Token(t, nil)); err != nil || id.Subject != "alice" {
		t.Fatalf("approver's token: %v %v", id, err)
	}
	forged := ci.Token(t, map[string]any{"iss": ci.URL, "sub": "alice", "groups": []string{"ops"}})
	if _, err := v.Verify(ctx, forged); err != nil {
		t.Fatalf("as a workload's token: %v", err)
	}
	fetches := ci.KeyFetches.Load()
	if _, err := v.Approvers().Verify(ctx, forged); err == nil || !strings.Contains(err.Error(), "lacks approvers: true") {
		t.Fatalf("a workload issuer's token decides approvals: %v", err)
	}
	if ci.KeyFetches.Load() != fetches {
		t.Error("keys fetched for a token refused by its issuer")
	}
	if _, err := v.Approvers().Verify(ctx, "not a token"); err == nil {
		t.Fatal("garbage accepted")
	}

	v.SetIssuers([]Issuer{{URL: people.URL, Audiences: []string{"corral"}}, {URL: ci.URL, Audiences: []string{"corral"}, Approvers: true}})
	if _, err := v.Approvers().Verify(ctx, people.Token(t, nil)); err == nil {
		t.Fatal("an issuer unmarked by a reload still vouches for approvers")
	}
	if _, err := v.Approvers().Verify(ctx, forged); err != nil {
		t.Fatalf("an issuer marked by a reload: %v", err)
	}
	if _, err := v.Approvers().Verify(ctx, testutil.StartOIDCIssuer(t).Token(t, nil)); err == nil || !strings.Contains(err.Error(), "not a configured issuer") {
		t.Fatalf("unknown issuer: %v", err)
	}
}
