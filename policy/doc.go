// Package policy answers the one question every protocol handler asks —
// Decide(ctx, Input) (Decision, error) — so that no handler holds policy
// logic of its own.
//
// Policy authors declare rules (Rule); the built-in Rego module
// (policy/rego) interprets them with OPA, and custom Rego modules may extend
// or replace its decision. A policy is compiled once per version; decisions
// are cached per (workload facts, target, operation fingerprint, version).
// Every failure — a policy that does not compile, an evaluation error, an
// undefined or malformed result, an unknown operation — is a deny with a
// reason a client can be shown. See README.md for the input and decision
// documents.
package policy
