package admin

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/corral-dev/corral/policy/approval"
)

// SessionCookie is the name of the web page's session cookie.
const SessionCookie = "corral_session"

// CSRFHeader is the header a cookie-authenticated call that changes
// something carries: the session's CSRF token, which the page receives.
const CSRFHeader = "X-Corral-CSRF"

// DefaultMaxSessions bounds the sessions kept when Sessions.Max is 0.
const DefaultMaxSessions = 1024

// MaxSessionsPerApprover bounds one approver's sessions: a new login past
// it ends that approver's session ending soonest. One token, or one
// person's browsers, cannot fill the table and log every other approver
// out.
const MaxSessionsPerApprover = 8

// Sessions are the web page's logins: an approver pastes an OIDC ID
// token, verified as Bearer verifies it, and gets a session cookie that
// names the verified identity until the token expires. Sessions live in
// memory; expired ones are dropped; past MaxSessionsPerApprover an
// approver's own session ending soonest makes room, and past Max anyone's.
type Sessions struct {
	Tokens TokenVerifier
	// Max is how many sessions are kept (DefaultMaxSessions when 0).
	Max int
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	mu sync.Mutex
	m  map[string]*session
}

type session struct {
	csrf    string
	expires time.Time
	// raw is the token the session was opened with, verified again at
	// every call: a reload that removes its issuer, or changes its
	// audiences or groups claim, ends the session too.
	raw string
	// who is the approver it names: issuer and subject.
	who string
}

func (s *Sessions) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func randomID() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Login verifies raw and opens a session for its holder: the session's
// id, who it names and when it ends (the token's expiry).
func (s *Sessions) Login(r *http.Request, raw string) (id string, who approval.Approver, expires time.Time, err error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", approval.Approver{}, time.Time{}, errors.New("paste an OIDC ID token")
	}
	who, err = (&Bearer{Tokens: s.Tokens}).verify(r, raw)
	if err != nil {
		return "", approval.Approver{}, time.Time{}, err
	}
	expires, err = tokenExpiry(raw)
	if err != nil {
		return "", approval.Approver{}, time.Time{}, fmt.Errorf("the token was refused: %v", err)
	}
	now := s.now()
	if !expires.After(now) {
		return "", approval.Approver{}, time.Time{}, errors.New("the token was refused: token expired")
	}
	id = randomID()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]*session{}
	}
	s.pruneLocked(now)
	max := s.Max
	if max <= 0 {
		max = DefaultMaxSessions
	}
	key := who.Issuer + "\n" + who.Subject
	s.makeRoomLocked(MaxSessionsPerApprover, func(v *session) bool { return v.who == key })
	s.makeRoomLocked(max, func(*session) bool { return true })
	s.m[id] = &session{csrf: randomID(), expires: expires, raw: raw, who: key}
	return id, who, expires, nil
}

// makeRoomLocked ends the sessions of, ending soonest, until fewer than
// max of them are left.
func (s *Sessions) makeRoomLocked(max int, of func(*session) bool) {
	for {
		n, soonest := 0, ""
		for k, v := range s.m {
			if !of(v) {
				continue
			}
			n++
			if soonest == "" || v.expires.Before(s.m[soonest].expires) {
				soonest = k
			}
		}
		if n < max {
			return
		}
		delete(s.m, soonest)
	}
}

func (s *Sessions) pruneLocked(now time.Time) {
	for k, v := range s.m {
		if !now.Before(v.expires) {
			delete(s.m, k)
		}
	}
}

// Logout ends the session id.
func (s *Sessions) Logout(id string) {
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

// Len is how many sessions are open (expired ones not counted).
func (s *Sessions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(s.now())
	return len(s.m)
}

// lookup is the live session the request's cookie names.
func (s *Sessions) lookup(r *http.Request) (string, *session, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return "", nil, errors.New("log in: no session")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[c.Value]
	if ok && !s.now().Before(sess.expires) {
		delete(s.m, c.Value)
		ok = false
	}
	if !ok {
		return "", nil, errors.New("log in again: the session has ended")
	}
	return c.Value, sess, nil
}

// Authenticate names the caller by its session cookie. A call that may
// change something (any method but GET and HEAD) must also come from the
// page itself: no cross-site Sec-Fetch-Site, and the session's CSRF token
// in the X-Corral-CSRF header.
func (s *Sessions) Authenticate(r *http.Request) (approval.Approver, error) {
	id, sess, err := s.lookup(r)
	if err != nil {
		return approval.Approver{}, err
	}
	if err := checkCSRF(r, sess.csrf); err != nil {
		return approval.Approver{}, err
	}
	who, err := (&Bearer{Tokens: s.Tokens}).verify(r, sess.raw)
	if temporary(err) {
		return approval.Approver{}, err
	}
	if err != nil {
		s.Logout(id)
		return approval.Approver{}, fmt.Errorf("log in again: %w", err)
	}
	return who, nil
}

func checkCSRF(r *http.Request, want string) error {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return nil
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return errors.New("a cross-site call was refused")
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errors.New("the call lacks the session's " + CSRFHeader + " header")
	}
	return nil
}

// tokenExpiry reads the exp claim of a token that was verified.
func tokenExpiry(raw string) (time.Time, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return time.Time{}, errors.New("not a compact JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, err
	}
	var c struct {
		Exp json.Number `json:"exp"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return time.Time{}, err
	}
	f, err := c.Exp.Float64()
	if err != nil || f <= 0 {
		return time.Time{}, errors.New("token has no exp claim")
	}
	return time.Unix(int64(f), 0), nil
}

// Web authenticates the web page's and the API's callers over HTTPS: by
// the Authorization header when the call has one (Bearer), else by the
// session cookie (Sessions).
type Web struct {
	Bearer   *Bearer
	Sessions *Sessions
}

// Authenticate names the caller by its bearer token or its session.
func (w *Web) Authenticate(r *http.Request) (approval.Approver, error) {
	if r.Header.Get("Authorization") != "" || w.Sessions == nil {
		return w.Bearer.Authenticate(r)
	}
	if _, err := r.Cookie(SessionCookie); err != nil {
		return w.Bearer.Authenticate(r)
	}
	return w.Sessions.Authenticate(r)
}
