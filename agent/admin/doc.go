// Package admin is corral's admin API: JSON over HTTP, served on the
// agent's unix socket (callers identified by the kernel, SO_PEERCRED) and,
// optionally, over HTTPS to approvers who present an OIDC ID token.
//
// Endpoints (v1):
//
//	GET  /v1/whoami                    the caller, as an approver
//	GET  /v1/requests?state=&limit=    access requests, newest first
//	GET  /v1/requests/{id}             one request (a unique id prefix will do)
//	POST /v1/requests/{id}/approve     {"reason": "..."} (optional)
//	POST /v1/requests/{id}/deny        {"reason": "..."} (required)
//	GET  /v1/grants                    window grants running now
//	GET  /v1/events                    server-sent events: every step of every request
//
// The approval web page (page.go, web/) is served by the same handler:
//
//	GET  /                             the page: pending requests, approve and deny
//	GET  /requests/fragment            the list alone, which the page's script re-fetches
//	GET  /static/app.js, app.css       the script and style (no inline code: CSP default-src 'self')
//	POST /login                        {"token": "ID token"}: sets the session cookie (HTTPS)
//	POST /logout                       ends the session (X-Corral-CSRF required)
//
// Every answer is JSON; an error is {"error": "..."} with a status that
// says what kind: 400 a bad call (a denial without a reason), 401 the
// caller is not authenticated, 403 it may not (the requester itself, or
// a local caller who is not a reviewer), 404 no such request among those
// the caller may see, 409 the request is no longer pending, 503 the agent
// is stopping or the caller's identity provider does not answer. A POST
// must carry Content-Type: application/json, which no HTML form can send,
// and a POST authenticated by the session cookie must also carry the
// session's X-Corral-CSRF token, so the session cannot be ridden
// cross-site.
//
// Callers are authenticated in one place, an Authenticator: PeerCred for
// the socket; Web for HTTPS, which is Bearer for a call with an
// Authorization header and Sessions (the page's cookie) otherwise. What a caller sees is filtered by approval.Approver.MayView:
// local callers see every request, token holders the ones they may decide
// or made.
package admin
