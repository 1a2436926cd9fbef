package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/corral-dev/corral/policy/approval"
)

// Approvals is the approval workflow as the API uses it (approval.Broker).
type Approvals interface {
	List(ctx context.Context, f approval.Filter) ([]*approval.Request, error)
	Get(ctx context.Context, id string) (*approval.Request, error)
	Decide(ctx context.Context, id string, approver approval.Approver, approve bool, reason string) (*approval.Request, error)
	Grants(ctx context.Context) ([]*approval.Request, error)
}

// Authenticator says who is calling. An error means nobody the API
// trusts: the call is refused with 401 and the error's text.
type Authenticator interface {
	Authenticate(r *http.Request) (approval.Approver, error)
}

// Server serves the API. Publish feeds it the workflow's events for
// /v1/events.
type Server struct {
	Approvals Approvals
	Log       *slog.Logger
	// Heartbeat is how often an idle event stream gets a comment line, so
	// proxies and clients see it alive (default 15 s).
	Heartbeat time.Duration

	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

// subscriber is one /v1/events stream.
type subscriber struct {
	who approval.Approver
	ch  chan approval.Event
}

// Handler returns the API and the approval web page, authenticating
// callers with auth. The page's login is offered when auth has sessions
// (Sessions, or Web with Sessions set).
func (s *Server) Handler(auth Authenticator) http.Handler {
	p := &page{s: s, auth: auth}
	switch a := auth.(type) {
	case *Sessions:
		p.sessions = a
	case *Web:
		p.sessions = a.Sessions
	}
	top := http.NewServeMux()
	p.routes(top)
	top.Handle("/", s.api(auth))
	return top
}

// api is the JSON API.
func (s *Server) api(auth Authenticator) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/whoami", s.whoami)
	mux.HandleFunc("GET /v1/requests", s.list)
	mux.HandleFunc("GET /v1/requests/{id}", s.get)
	mux.HandleFunc("POST /v1/requests/{id}/approve", func(w http.ResponseWriter, r *http.Request) { s.decide(w, r, true) })
	mux.HandleFunc("POST /v1/requests/{id}/deny", func(w http.ResponseWriter, r *http.Request) { s.decide(w, r, false) })
	mux.HandleFunc("GET /v1/grants", s.grants)
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) { s.events(w, r, auth) })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		who, err := auth.Authenticate(r)
		if err != nil {
			s.log().Info("admin API call refused", "path", r.URL.Path, "err", err)
			if temporary(err) {
				writeError(w, http.StatusServiceUnavailable, err.Error())
				return
			}
			switch auth.(type) {
			case *Bearer, *Web:
				w.Header().Set("WWW-Authenticate", `Bearer realm="corral"`)
			}
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
		if r.Method == http.MethodPost {
			if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
				writeError(w, http.StatusUnsupportedMediaType, "send Content-Type: application/json")
				return
			}
		}
		mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, who)))
	})
}

type callerKey struct{}

func caller(r *http.Request) approval.Approver {
	a, _ := r.Context().Value(callerKey{}).(approval.Approver)
	return a
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, Error{msg})
}

// fail answers with the status an error of the workflow calls for.
func (s *Server) fail(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, approval.ErrNotFound), errors.Is(err, approval.ErrAmbiguous):
		status = http.StatusNotFound
	case errors.Is(err, approval.ErrNotPending):
		status = http.StatusConflict
	case errors.Is(err, approval.ErrNotReviewer), errors.Is(err, approval.ErrSelfApproval):
		status = http.StatusForbidden
	case errors.Is(err, approval.ErrReasonRequired), errors.Is(err, approval.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, approval.ErrClosed):
		status = http.StatusServiceUnavailable
	default:
		s.log().Error("admin API call failed", "err", err)
		err = errors.New("internal error (see the agent's log)")
	}
	writeError(w, status, err.Error())
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, caller(r))
}

// RequestList is the body of GET /v1/requests and /v1/grants.
type RequestList struct {
	Requests []*approval.Request `json:"requests"`
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	f := approval.Filter{State: r.URL.Query().Get("state")}
	if f.State != "" && !approval.ValidState(f.State) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("state %q is not one of %s", f.State, strings.Join(approval.States, ", ")))
		return
	}
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "limit is a number from 1 to 1000")
			return
		}
		f.Limit = n
	}
	f.Visible = caller(r).MayView
	list, err := s.Approvals.List(r.Context(), f)
	if err != nil {
		s.fail(w, err)
		return
	}
	if list == nil {
		list = []*approval.Request{} // [], not null
	}
	writeJSON(w, http.StatusOK, RequestList{list})
}

func visible(who approval.Approver, list []*approval.Request) []*approval.Request {
	out := []*approval.Request{}
	for _, req := range list {
		if who.MayView(req) {
			out = append(out, req)
		}
	}
	return out
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	req, err := s.Approvals.Get(r.Context(), r.PathValue("id"))
	if err == nil && !caller(r).MayView(req) {
		err = approval.ErrNotFound
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}

// Decision is the body of the approve and deny calls.
type Decision struct {
	Reason string `json:"reason"`
}

func (s *Server) decide(w http.ResponseWriter, r *http.Request, approve bool) {
	var d Decision
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<10))
	if err == nil && len(strings.TrimSpace(string(body))) > 0 {
		err = json.Unmarshal(body, &d)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "the body must be {\"reason\": \"...\"}")
		return
	}
	who := caller(r)
	id := r.PathValue("id")
	// A caller who may not see the request learns nothing of it, not its
	// reviewers nor who decided it, from why they may not decide it.
	req, err := s.Approvals.Get(r.Context(), id)
	if err == nil && !who.MayView(req) {
		err = fmt.Errorf("%w among those you may see (their reviewers' and your own)", approval.ErrNotFound)
	}
	if err == nil {
		id = req.ID // a prefix names the request; the decision names it in full
		req, err = s.Approvals.Decide(r.Context(), id, who, approve, d.Reason)
	}
	verb := "deny"
	if approve {
		verb = "approve"
	}
	if err != nil {
		s.log().Info("approval decision refused", "request", id, "approver", who.Name, "via", who.Via, "decision", verb, "err", err)
		s.fail(w, err)
		return
	}
	s.log().Info("approval decided", "request", req.ID, "approver", who.Name, "via", who.Via, "state", req.State)
	writeJSON(w, http.StatusOK, req)
}

func (s *Server) grants(w http.ResponseWriter, r *http.Request) {
	list, err := s.Approvals.Grants(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, RequestList{visible(caller(r), list)})
}

// follow has Publish pick a stream's events by who its caller is now:
// groups a reload gave it reach it from the next heartbeat or event on.
func (s *Server) follow(sub *subscriber, who approval.Approver) {
	s.mu.Lock()
	sub.who = who
	s.mu.Unlock()
}

// StreamEvent is one event of /v1/events (the data of an SSE "approval"
// event).
type StreamEvent struct {
	Type    string            `json:"type"`
	Time    time.Time         `json:"time"`
	Request *approval.Request `json:"request"`
	// Operation is, for "covered", the operation a window grant let
	// through.
	Operation *approval.Request `json:"operation,omitempty"`
}

// Publish hands an event of the workflow to the event streams whose
// caller may see its request. A stream that cannot keep up is ended (its
// client reconnects and lists what it missed).
func (s *Server) Publish(e approval.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sub := range s.subs {
		if !sub.who.MayView(e.Request) {
			continue
		}
		select {
		case sub.ch <- e:
		default:
			close(sub.ch)
			delete(s.subs, sub)
		}
	}
}

// Close ends every event stream.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sub := range s.subs {
		close(sub.ch)
		delete(s.subs, sub)
	}
}

// events streams the workflow's events the caller may see. The caller is
// authenticated again at every heartbeat and before every event: a
// session logged out or expired, a token past its expiry or an issuer
// removed ends the stream, as it would any other call.
func (s *Server) events(w http.ResponseWriter, r *http.Request, auth Authenticator) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming is not supported here")
		return
	}
	sub := &subscriber{who: caller(r), ch: make(chan approval.Event, 256)}
	s.mu.Lock()
	if s.subs == nil {
		s.subs = map[*subscriber]struct{}{}
	}
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if _, ok := s.subs[sub]; ok {
			delete(s.subs, sub)
		}
		s.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	// The stream is live from here: a client lists what is pending after
	// this line and misses nothing.
	io.WriteString(w, ": ready\n\n")
	fl.Flush()
	beat := s.Heartbeat
	if beat <= 0 {
		beat = 15 * time.Second
	}
	tick := time.NewTicker(beat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			who, err := auth.Authenticate(r)
			if err != nil {
				s.log().Info("event stream ended", "err", err)
				return
			}
			s.follow(sub, who)
			io.WriteString(w, ": keepalive\n\n")
		case e, ok := <-sub.ch:
			if !ok {
				return
			}
			// Who the caller is now, not when the stream opened: a
			// reload of the issuer or a token's claims may have taken
			// away the groups that let it see the request.
			who, err := auth.Authenticate(r)
			if err != nil {
				s.log().Info("event stream ended", "err", err)
				return
			}
			s.follow(sub, who)
			if !who.MayView(e.Request) {
				continue
			}
			b, _ := json.Marshal(StreamEvent{Type: e.Type, Time: e.Time, Request: e.Request, Operation: e.Operation})
			fmt.Fprintf(w, "event: approval\ndata: %s\n\n", b)
		}
		fl.Flush()
	}
}
