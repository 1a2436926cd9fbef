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

# Indexes of the rules that apply to this workload and target. The engine
# works them out (see policy/applicable.go) and passes them as
# input.applicable; matching every rule here cost most of a decision. An
# input without them (this module's tests, hand-written inputs) is matched
# here, and a Go test holds both ways to the same answer.
applicable contains i if {
	some i in input.applicable
}

applicable contains i if {
	not input.applicable
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
	not restricted(i, op)
}

# --- SSH exec: a rule's command patterns refine what it says of exec ---

# A rule with commands.allow allows exec of those commands only.
restricted(i, "exec") if count(object.get(rules[i], ["commands", "allow"], [])) > 0

denied contains [i, "exec"] if {
	"exec" in ops
	some i in applicable
	command_may_match(object.get(rules[i], ["commands", "deny"], []))
}

reviewed contains [i, "exec"] if {
	"exec" in ops
	some i in applicable
	command_may_match(object.get(rules[i], ["commands", "review"], []))
}

allowed contains [i, "exec"] if {
	"exec" in ops
	some i in applicable
	command_allowed(object.get(rules[i], ["commands", "allow"], []))
}

argv := object.get(input.action, ["ssh", "argv"], [])

# A command is matched as written and with its program's base name, so
# `rm *` also catches `/bin/rm -rf /`.
command_forms contains concat(" ", argv) if count(argv) > 0

command_forms contains concat(" ", array.concat([regex.replace(argv[0], `(?s)^.*/`, "")], array.slice(argv, 1, count(argv)))) if {
	count(argv) > 0
}

command_matches(patterns) if {
	some p in patterns
	some f in command_forms
	glob.match(p, null, f)
}

# Words after the first `known` of argv are only known at run time (a
# variable, a command substitution, what xargs puts in), and `appends`
# says more words come at run time. A deny or review pattern applies to
# such a command when some command starting with its known words could
# match it: the pattern's text before its first wildcard and the known
# words agree as far as both go.
known := object.get(input.action, ["ssh", "known"], count(argv))

appends := object.get(input.action, ["ssh", "appends"], false)

open_command if known < count(argv)

open_command if appends

known_forms contains concat("", [concat(" ", array.slice(argv, 0, known)), " "]) if known > 0

known_forms contains concat("", [concat(" ", array.concat([regex.replace(argv[0], `(?s)^.*/`, "")], array.slice(argv, 1, known))), " "]) if known > 0

command_may_match(patterns) if command_matches(patterns)

command_may_match(patterns) if {
	open_command
	some p in patterns
	some f in known_forms
	l := regex.replace(p, `(?s)[*?\[{\\].*$`, "")
	prefixes_agree(l, f)
}

prefixes_agree(a, b) if startswith(a, b)

prefixes_agree(a, b) if startswith(b, a)

# Allowing a command that gets words at run time takes a pattern that
# allows whatever comes: it must match the known words followed by any
# text (here, a control character no real word holds).
command_allowed(patterns) if {
	not appends
	command_matches(patterns)
}

command_allowed(patterns) if {
	appends
	some p in patterns
	some f in known_forms
	glob.match(p, null, concat("", [f, "\u0001"]))
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
		"reviewers": review_reviewers,
		"grant": r.grant,
		"window": r.window,
		"timeout": r.timeout,
		"webhook": object.get(r, "webhook", ""),
	})
} else := d if {
	[i, _] := first_of(allowed)
	d := base("allow", sprintf("allowed by rule %q", [rules[i].name]), i)
}

# Who may approve: the reviewers of every rule that holds an operation for
# review. Where a rule of the configuration file holds one, reviewers that
# rules from the cluster name (AccessRules, which a namespace's own users
# may write) do not join: they could approve what the file's rules hold.
file_reviewed contains [i, op] if {
	some [i, op] in reviewed
	not object.get(rules[i], "cluster", false)
}

reviewers_of(pairs) := sort({rv | some [j, _] in pairs; some rv in rules[j].review.reviewers})

review_reviewers := reviewers_of(file_reviewed) if {
	count(file_reviewed) > 0
} else := reviewers_of(reviewed)

# Custom denials win over everything, a custom decision included.
decision := d if {
	count(data.corral.custom.deny) > 0
	d := {"result": "deny", "reason": sort(data.corral.custom.deny)[0], "rule": "custom", "record": true, "cache": cacheable}
} else := d if {
	d := data.corral.custom.decision
} else := object.union(builtin, {"cache": cacheable})

# A custom module whose denials depend on more than the cache key (the
# time, the pid, literal values) says `cache := false`, or puts
# "cache": false in the decision it returns; either keeps it out of the
# cache (the engine asks for this too, whatever decision a module
# returns), and so does anything but true.
default cacheable := true

cacheable := data.corral.custom.cache

# --- who ---

who_matches(w) if w.any == true

# data.declared holds, per rule, only the matchers it gives ("checks"), so
# matching costs what the rule says, not every field there could be. A who
# without any matcher matches nobody (validation rejects it; this keeps a
# rule that skipped validation from matching everyone).
who_matches(w) if {
	w.any == false
	checks := checks_of(w)
	count(checks) > 0
	every c in checks {
		check(c)
	}
}

# object.get rather than a look at object.keys(w), which would build the
# set of the who's keys for every rule of every decision.
checks_of(w) := c if {
	c := object.get(w, "checks", null)
	c != null
}

# Data written by hand (Rego tests, custom data) may carry only the who
# fields of the rule schema: derive the checks from them.
checks_of(w) := array.concat(globs, others) if {
	object.get(w, "checks", null) == null
	globs := [{"kind": "glob", "fact": spec.fact, "patterns": patterns, "delims": spec.delims} |
		some spec in who_fields
		patterns := object.get(w, spec.from, [])
		count(patterns) > 0
	]
	others := [c |
		some c in [
			{"kind": "uid", "uids": object.get(w, "uid", [])},
			{"kind": "labels", "labels": object.get(w, ["kubernetes", "labels"], {})},
			{"kind": "groups", "patterns": object.get(w, ["oidc", "groups"], [])},
		]
		count(object.get(c, "uids", object.get(c, "labels", object.get(c, "patterns", [])))) > 0
	]
}

who_fields := [
	{"from": ["unit"], "fact": ["unit"], "delims": null},
	{"from": ["exe"], "fact": ["exe"], "delims": ["/"]},
	{"from": ["cgroup"], "fact": ["cgroup_path"], "delims": ["/"]},
	{"from": ["user"], "fact": ["user"], "delims": null},
	{"from": ["kubernetes", "namespace"], "fact": ["pod", "namespace"], "delims": null},
	{"from": ["kubernetes", "name"], "fact": ["pod", "name"], "delims": null},
	{"from": ["kubernetes", "service_account"], "fact": ["pod", "service_account"], "delims": null},
	{"from": ["oidc", "issuer"], "fact": ["oidc", "issuer"], "delims": null},
	{"from": ["oidc", "subject"], "fact": ["oidc", "subject"], "delims": null},
	{"from": ["oidc", "email"], "fact": ["oidc", "email"], "delims": null},
]

check(c) if {
	c.kind == "glob"
	value := fact(c.fact)
	value != ""
	some p in c.patterns
	glob.match(p, c.delims, value)
}

check(c) if {
	c.kind == "uid"
	object.get(input.workload, "uid", null) in c.uids
}

check(c) if {
	c.kind == "labels"
	have := object.get(input.workload, ["pod", "labels"], {})
	every k, v in c.labels {
		have[k] == v
	}
}

check(c) if {
	c.kind == "groups"
	some g in c.patterns
	g in object.get(input.workload, ["oidc", "groups"], [])
}

# A fact the input does not carry is empty, never an error: hand-written
# inputs (tests, `corral policy eval`) may leave fields out.
fact(path) := object.get(input.workload, path, "")
