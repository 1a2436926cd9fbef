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
// Every answer is JSON; an error is {"error": "..."} with a status that
// says what kind: 400 a bad call (a denial without a reason), 401 the
// caller is not authenticated, 403 it may not (not a reviewer, or the
// requester itself), 404 no such request, 409 the request is no longer
// pending, 503 the agent is stopping. A POST must carry
// Content-Type: application/json, which no HTML form can send, so a
// browser session added later cannot be ridden by a cross-site form.
//
// Callers are authenticated in one place, an Authenticator: PeerCred for
// the socket, Bearer for HTTPS; another (a browser session) slots in
// beside them. What a caller sees is filtered by approval.Approver.MayView:
// local callers see every request, token holders the ones they may decide
// or made.
package admin
