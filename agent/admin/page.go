package admin

import (
	"embed"
	"encoding/json"
	"html/template"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/corral-dev/corral/internal/termsafe"
	"github.com/corral-dev/corral/policy/approval"
)

//go:embed web
var webFiles embed.FS

var pageTemplates = template.Must(template.New("").Funcs(template.FuncMap{
	"describe": func(r *approval.Request) string { return termsafe.Line(approval.Describe(&r.Requester)) },
	"when":     func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"join":     func(l []string, sep string) string { return termsafe.Line(strings.Join(l, sep)) },
	// What a workload wrote is shown with its controls and bidirectional
	// marks escaped: U+202E in a statement would show the reviewer its
	// text in another order than it runs.
	"text":     termsafe.Text,
	"line":     termsafe.Line,
	"contains": strings.Contains,
}).ParseFS(webFiles, "web/*.html"))

// pageSecurity are the headers of every answer of the web page: its
// script and style come from the API itself, never inline.
func pageSecurity(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
}

// pageRequest is one pending request as the page shows it.
type pageRequest struct {
	*approval.Request
	// MayDecide is whether the caller may approve or deny it; Why, when
	// not, says why.
	MayDecide bool
	Why       string
}

type pageData struct {
	Login    bool // the caller must log in first
	CanLogin bool // the page offers the token login
	Error    string
	Who      approval.Approver
	CSRF     string
	Requests []pageRequest
}

// page serves the web page, its script and style, and the login.
type page struct {
	s        *Server
	auth     Authenticator
	sessions *Sessions // nil: no login here (the socket)
}

func (p *page) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", p.index)
	mux.HandleFunc("GET /requests/fragment", p.fragment)
	mux.HandleFunc("GET /static/{file}", p.static)
	mux.HandleFunc("POST /login", p.login)
	mux.HandleFunc("POST /logout", p.logout)
}

func (p *page) static(w http.ResponseWriter, r *http.Request) {
	pageSecurity(w)
	name := r.PathValue("file")
	var ct string
	switch name {
	case "app.js":
		ct = "text/javascript; charset=utf-8"
	case "app.css":
		ct = "text/css; charset=utf-8"
	default:
		http.NotFound(w, r)
		return
	}
	b, err := webFiles.ReadFile("web/" + name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Write(b)
}

// data is what the page shows the caller of r.
func (p *page) data(r *http.Request) (pageData, int) {
	d := pageData{CanLogin: p.sessions != nil}
	who, err := p.auth.Authenticate(r)
	if temporary(err) {
		// The session, if any, is still open: the page says why it
		// shows nothing, and a reload later shows the list again.
		d.Error = err.Error()
		return d, http.StatusServiceUnavailable
	}
	if err != nil {
		d.Login = true
		if _, cerr := r.Cookie(SessionCookie); cerr == nil {
			d.Error = err.Error()
		}
		return d, http.StatusUnauthorized
	}
	d.Who = who
	if p.sessions != nil {
		if _, sess, err := p.sessions.lookup(r); err == nil {
			d.CSRF = sess.csrf
		}
	}
	list, err := p.s.Approvals.List(r.Context(), approval.Filter{State: approval.Pending, Visible: who.MayView})
	if err != nil {
		p.s.log().Error("listing requests for the web page", "err", err)
		d.Error = "the requests could not be listed (see the agent's log)"
		return d, http.StatusInternalServerError
	}
	for _, req := range list {
		pr := pageRequest{Request: req}
		switch {
		case who.IsRequester(req):
			pr.Why = "You made this request: another reviewer decides it."
		case !who.Holds(req.Reviewers):
			pr.Why = "You are not one of its reviewers."
		default:
			pr.MayDecide = true
		}
		d.Requests = append(d.Requests, pr)
	}
	return d, http.StatusOK
}

func (p *page) render(w http.ResponseWriter, name string, d pageData, status int) {
	pageSecurity(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := pageTemplates.ExecuteTemplate(w, name, d); err != nil {
		p.s.log().Error("rendering the web page", "err", err)
	}
}

func (p *page) index(w http.ResponseWriter, r *http.Request) {
	d, status := p.data(r)
	if status == http.StatusUnauthorized {
		status = http.StatusOK // the login form
	}
	p.render(w, "page.html", d, status)
}

// fragment is the list of pending requests alone, which the script
// fetches to refresh the page.
func (p *page) fragment(w http.ResponseWriter, r *http.Request) {
	d, status := p.data(r)
	if status == http.StatusUnauthorized || status == http.StatusServiceUnavailable {
		pageSecurity(w)
		writeError(w, status, d.Error)
		return
	}
	p.render(w, "requests", d, status)
}

// sameOrigin refuses a state-changing call that is not a JSON POST from
// the page's own origin.
func sameOrigin(r *http.Request) string {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return "send Content-Type: application/json"
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return "a cross-site call was refused"
	}
	if o := r.Header.Get("Origin"); o != "" {
		scheme := "http://"
		if r.TLS != nil {
			scheme = "https://"
		}
		if o != scheme+r.Host {
			return "a call from another origin was refused"
		}
	}
	return ""
}

// Login is the body of POST /login.
type Login struct {
	Token string `json:"token"`
}

func (p *page) login(w http.ResponseWriter, r *http.Request) {
	pageSecurity(w)
	if p.sessions == nil {
		writeError(w, http.StatusNotFound, "there is no login here: the caller is who the kernel says it is")
		return
	}
	if msg := sameOrigin(r); msg != "" {
		writeError(w, http.StatusForbidden, msg)
		return
	}
	var l Login
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err == nil {
		err = json.Unmarshal(body, &l)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "the body must be {\"token\": \"...\"}")
		return
	}
	id, who, expires, err := p.sessions.Login(r, l.Token)
	if err != nil {
		p.s.log().Info("web login refused", "err", err)
		writeError(w, http.StatusUnauthorized, err.Error())
		return
	}
	if old, _, err := p.sessions.lookup(r); err == nil {
		p.sessions.Logout(old) // a new login replaces the browser's session
	}
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: id, Path: "/", Expires: expires, MaxAge: max(1, int(time.Until(expires).Seconds())),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
	p.s.log().Info("web login", "approver", who.Name, "via", who.Via, "until", expires.UTC())
	writeJSON(w, http.StatusOK, who)
}

func (p *page) logout(w http.ResponseWriter, r *http.Request) {
	pageSecurity(w)
	if p.sessions == nil {
		writeError(w, http.StatusNotFound, "there is no login here")
		return
	}
	if msg := sameOrigin(r); msg != "" {
		writeError(w, http.StatusForbidden, msg)
		return
	}
	id, sess, err := p.sessions.lookup(r)
	if err == nil {
		if err := checkCSRF(r, sess.csrf); err != nil {
			writeError(w, http.StatusForbidden, err.Error())
			return
		}
		p.sessions.Logout(id)
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}
