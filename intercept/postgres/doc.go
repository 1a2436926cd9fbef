// Package postgres intercepts PostgreSQL sessions: it speaks the wire
// protocol to the workload, opens the real server with injected
// credentials, decides every statement with PostgreSQL's own parser and the
// policy engine, and masks sensitive columns in results.
package postgres
