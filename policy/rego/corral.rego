# corral's built-in policy: interprets the declarative rules in
# data.declared.rules (see policy/README.md) for the question in `input`.
#
# Precedence: an unknown operation is denied; then any applicable rule's
# deny wins; then an operation no applicable rule allows or reviews is
# denied; then review; then allow. No applicable rule: deny.
#
# Custom policy files extend this in package corral.custom:
#   deny contains reason if { ... }     # adds denials (always win)
#   decision := {...} if { ... }        # replaces the decision entirely
package corral

import rego.v1

rules := data.declared.rules

ops := input.action.operations

kind := input.action.kind

# Indexes of the rules that apply to this workload and target, in order.
applicable contains i if {
	some i, r in rules
	input.target.name in r.targets
	who_matches(r.who)
}

first_applicable := min(applicable)

unknown contains op if {
	some op in ops
	op != "connect"
	not op in object.get(data.declared.vocabulary, kind, [])
}

covers(list, _) if "*" in list

covers(list, op) if op in list

denied contains [i, op] if {
	some op in ops
	some i in applicable
	covers(rules[i].deny, op)
}

reviewed contains [i, op] if {
	some op in ops
	some i in applicable
	covers(rules[i].review.operations, op)
}

allowed contains [i, op] if {
	some op in ops
	some i in applicable
	covers(rules[i].allow, op)
}

# Being let in is implied by any rule that applies, unless one denies it.
allowed contains [i, "connect"] if {
	"connect" in ops
	some i in applicable
}

uncovered contains op if {
	some op in ops
	not op_covered(op)
}

op_covered(op) if allowed[[_, op]]

op_covered(op) if reviewed[[_, op]]

# The rule whose index is lowest among a set of [index, op] pairs.
first_of(pairs) := sort([[i, op] | some [i, op] in pairs])[0]

masks := [m | some i in sort([i | some i in applicable]); some m in rules[i].mask]

base(result, reason, i) := {
	"result": result,
	"reason": reason,
	"rule": rules[i].name,
	"credential": rules[first_applicable].credential,
	"mask": masks,
	"record": true,
}

builtin := d if {
	count(applicable) == 0
	d := {"result": "deny", "reason": sprintf("no rule lets this workload use target %q", [input.target.name]), "rule": "", "record": true}
} else := d if {
	count(object.get(input, ["action", "operations"], [])) == 0
	d := base("deny", "the request names no operation", first_applicable)
} else := d if {
	count(unknown) > 0
	d := base("deny", sprintf("unknown operation %q", [sort(unknown)[0]]), first_applicable)
} else := d if {
	count(denied) > 0
	[i, op] := first_of(denied)
	d := base("deny", sprintf("%s is denied by rule %q", [op, rules[i].name]), i)
} else := d if {
	count(uncovered) > 0
	d := base("deny", sprintf("no rule allows %s", [sort(uncovered)[0]]), first_applicable)
} else := d if {
	count(reviewed) > 0
	[i, op] := first_of(reviewed)
	r := rules[i].review
	d := object.union(base("review", sprintf("%s needs review under rule %q", [op, rules[i].name]), i), {
		"reviewers": sort({rv | some [j, _] in reviewed; some rv in rules[j].review.reviewers}),
		"grant": r.grant,
		"window": r.window,
		"timeout": r.timeout,
	})
} else := d if {
	[i, _] := first_of(allowed)
	d := base("allow", sprintf("allowed by rule %q", [rules[i].name]), i)
}

# Custom denials win over everything, a custom decision included.
decision := d if {
	count(data.corral.custom.deny) > 0
	d := {"result": "deny", "reason": sort(data.corral.custom.deny)[0], "rule": "custom", "record": true, "cache": cacheable}
} else := d if {
	d := data.corral.custom.decision
} else := object.union(builtin, {"cache": cacheable})

# A custom module whose denials depend on more than the cache key (the
# time, the pid, literal values) says `cache := false`.
default cacheable := true

cacheable := data.corral.custom.cache

# --- who ---

who_matches(w) if w.any == true

who_matches(w) if {
	w.any == false
	has_matcher(w)
	glob_field(w.unit, null, fact(["unit"]))
	glob_field(w.exe, ["/"], fact(["exe"]))
	glob_field(w.cgroup, ["/"], fact(["cgroup_path"]))
	glob_field(w.user, null, fact(["user"]))
	uid_field(w.uid)
	glob_field(w.kubernetes.namespace, null, fact(["pod", "namespace"]))
	glob_field(w.kubernetes.name, null, fact(["pod", "name"]))
	glob_field(w.kubernetes.service_account, null, fact(["pod", "service_account"]))
	labels_field(w.kubernetes.labels)
	glob_field(w.oidc.issuer, null, fact(["oidc", "issuer"]))
	glob_field(w.oidc.subject, null, fact(["oidc", "subject"]))
	glob_field(w.oidc.email, null, fact(["oidc", "email"]))
	groups_field(w.oidc.groups)
}

# A who without any matcher matches nobody (validation rejects it; this
# keeps a rule that skipped validation from matching everyone).
has_matcher(w) if {
	some field in [w.unit, w.exe, w.cgroup, w.user, w.uid, w.kubernetes.namespace, w.kubernetes.name,
		w.kubernetes.service_account, w.oidc.issuer, w.oidc.subject, w.oidc.email, w.oidc.groups]
	count(field) > 0
}

has_matcher(w) if count(w.kubernetes.labels) > 0

# A fact the input does not carry is empty, never an error: hand-written
# inputs (tests, `corral policy eval`) may leave fields out.
fact(path) := object.get(input.workload, path, "")

glob_field(patterns, _, _) if count(patterns) == 0

# An empty fact never matches a pattern, not even "*": "any unit" must not
# include processes that have none.
glob_field(patterns, delims, value) if {
	value != ""
	some p in patterns
	glob.match(p, delims, value)
}

uid_field(uids) if count(uids) == 0

uid_field(uids) if object.get(input.workload, "uid", null) in uids

labels_field(labels) if count(labels) == 0

labels_field(labels) if {
	count(labels) > 0
	have := object.get(input.workload, ["pod", "labels"], {})
	every k, v in labels {
		have[k] == v
	}
}

groups_field(groups) if count(groups) == 0

groups_field(groups) if {
	some g in groups
	g in object.get(input.workload, ["oidc", "groups"], [])
}
