// Package approval is corral's just-in-time approval workflow: an
// operation the policy sent to review (Decision.Result "review") becomes an
// access Request that a person approves or denies while the operation
// waits.
//
// A Request names who asks (the workload's kernel facts and any verified
// OIDC identity), the target, the operation (its normalised text, never
// its literal values), the policy's reason, the reviewers who may decide
// (group:NAME, user:NAME), the grant it would give (once: this operation;
// window: the same requester may run operations of the same kinds on the
// same target for a while) and how long it may wait. Its state moves once,
// from pending to approved, denied, expired or cancelled, and then never
// changes.
//
// The Broker creates requests, lets a protocol handler Wait for the
// outcome, and takes Decide calls from the admin API. Its rules:
//
//   - an approver must hold one of the reviewers: group:NAME against the
//     approver's groups (unix groups over the admin socket, the token's
//     groups over HTTPS), user:NAME against its user name, OIDC subject or
//     verified email;
//   - the requester never approves its own request: a local approver
//     with the requesting workload's uid, or an approver whose user name,
//     OIDC subject or email is any name the requester goes by (user name,
//     OIDC subject or email, pod service account), is refused, whichever
//     way either authenticated;
//   - only a pending request can be decided, and a denial needs a reason;
//     of two deciders racing, exactly one wins (the store's conditional
//     update decides);
//   - a request nobody decided expires at its deadline; a waiter that goes
//     away (the client disconnected) cancels it;
//   - an approved window request is a grant: until it ends, a request of
//     the same requester (the workload facts rules match, see
//     policy.IdentityKey) on the same target whose operations the grant
//     covers is answered at once, naming the grant, without a new request.
//
// Requests live in a Backend: by default a SQLite database (pure Go, WAL)
// under the agent's state directory (Store), so they survive restarts and
// can be listed afterwards; on Kubernetes, AccessRequest resources every
// agent and approver share (agent/kube). A store others write too is a
// Watcher: the broker watches it, and a decision made elsewhere wakes the
// operation waiting here. A request this agent left pending when it
// starts had its waiting client cut by the restart: it is marked
// cancelled (or expired, past its deadline), saying so.
//
// Every step is an Event for the agent's audit log and metrics; a request
// whose rule names a webhook is announced there (Webhook), and a failed
// notification never decides anything.
package approval
