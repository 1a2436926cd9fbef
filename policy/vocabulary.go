package policy

import "slices"

// Vocabulary lists, per action kind, the operation words handlers emit and
// rules may name. It is the single source for validation (a rule naming an
// unknown word is rejected) and for the Rego module (an input operation that
// is not a known word is denied).
var Vocabulary = map[string][]string{
	KindConnect: {"connect"},
	KindSQL: {
		"select", "insert", "update", "delete", "merge",
		"copy", "copy program", // COPY to/from a client; COPY ... PROGRAM runs a server-side command
		"ddl", "drop", "truncate", "grant", // grant covers REVOKE too
		"function", // calling a function the handler flags (pg_read_file, dblink, lo_import, ...)
		"call", "do",
		"transaction", "set", "set role", "show", "explain",
		"lock", "maintenance", "listen", "notify",
		"prepare", "cursor",
	},
	KindSSH:  {"exec", "shell", "subsystem", "sftp", "forward", "agent-forward", "env"},
	KindHTTP: {"get", "head", "post", "put", "patch", "delete", "options"},
	KindKubernetes: {
		"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection",
		"exec", "attach", "portforward", "proxy", "impersonate", "escalate", "bind",
	},
}

// Wildcard in a rule's allow, deny or review list stands for every
// operation of the target's protocol.
const Wildcard = "*"

// KindOf maps a target protocol to the kind of its actions.
func KindOf(protocol string) string {
	switch protocol {
	case "postgres", "mysql":
		return KindSQL
	case "ssh":
		return KindSSH
	case "http":
		return KindHTTP
	case "kubernetes":
		return KindKubernetes
	}
	return KindConnect
}

// Known reports whether op is a word of kind (every kind knows "connect").
func Known(kind, op string) bool {
	return op == "connect" || slices.Contains(Vocabulary[kind], op)
}
