# Unit tests of the built-in module (corral.rego). They bring their own
# rules and vocabulary (`with data.declared as ...`) and shut out any custom
# module (`with data.corral.custom as {}`), so they pass whatever
# configuration `corral policy test` runs them with.
package corral_test

import rego.v1

vocab := {
	"connect": ["connect"],
	"sql": ["select", "insert", "update", "delete", "drop", "truncate", "copy program"],
	"ssh": ["exec", "shell", "sftp"],
}

# A who that names nothing; rules override the fields they use.
no_one := {
	"any": false,
	"unit": [], "exe": [], "uid": [], "user": [], "cgroup": [],
	"kubernetes": {"namespace": [], "name": [], "service_account": [], "labels": {}},
	"oidc": {"issuer": [], "subject": [], "email": [], "groups": []},
}

# A rule in the shape Data() gives the module: every field present.
rule(name, who, fields) := object.union(
	{
		"name": name,
		"who": object.union(no_one, who),
		"targets": ["orders-db"],
		"allow": [],
		"deny": [],
		"review": {"operations": [], "reviewers": [], "grant": "once", "window": "", "timeout": ""},
		"mask": [],
		"credential": "default",
	},
	fields,
)

everyone := {"any": true}

sql(workload, ops) := {
	"workload": workload,
	"target": {"name": "orders-db", "protocol": "postgres"},
	"action": {"kind": "sql", "operations": ops},
}

connect(workload) := {
	"workload": workload,
	"target": {"name": "orders-db", "protocol": "postgres"},
	"action": {"kind": "connect", "operations": ["connect"]},
}

decide(rules, req) := d if {
	d := data.corral.decision with data.declared as {"rules": rules, "vocabulary": vocab}
		with input as req
		with data.corral.custom as {}
}

app := {"unit": "app.service", "exe": "/usr/bin/psql", "user": "app", "uid": 1000}

readers := rule("readers", everyone, {
	"allow": ["select", "insert"],
	"review": {"operations": ["update", "delete"], "reviewers": ["group:dba"]},
	"deny": ["drop"],
})

# --- precedence ---

test_allowed_op if {
	d := data.corral.decision with data.declared as {"rules": [readers], "vocabulary": vocab}
		with input as {
			"workload": {"unit": "app.service"},
			"target": {"name": "orders-db", "protocol": "postgres"},
			"action": {"kind": "sql", "operations": ["select", "insert"]},
		}
		with data.corral.custom as {}
	d.result == "allow"
	d.rule == "readers"
	d.reason == `allowed by rule "readers"`
	d.credential == "default"
	d.record == true
}

test_lowest_index_allowing_rule_decides if {
	rules := [
		rule("insert-only", everyone, {"allow": ["insert"], "credential": "writer"}),
		rule("second", everyone, {"allow": ["select"]}),
		rule("third", everyone, {"allow": ["*"]}),
	]
	d := decide(rules, sql(app, ["select"]))
	d.result == "allow"
	d.rule == "second"

	# the credential is the first applicable rule's, allowing or not
	d.credential == "writer"
}

test_deny_beats_allow if {
	rules := [rule("admin", everyone, {"allow": ["*"]}), readers]
	d := decide(rules, sql(app, ["select", "drop"]))
	d.result == "deny"
	d.reason == `drop is denied by rule "readers"`
	d.rule == "readers"
}

test_wildcard_deny if {
	rules := [readers, rule("lockdown", {"unit": ["intern.service"]}, {"deny": ["*"]})]
	d := decide(rules, sql({"unit": "intern.service"}, ["select"]))
	d.result == "deny"
	d.rule == "lockdown"

	# the same rules still allow anyone else
	decide(rules, sql(app, ["select"])).result == "allow"
}

test_review_beats_allow if {
	d := decide([readers], sql(app, ["select", "delete"]))
	d.result == "review"
	d.reason == `delete needs review under rule "readers"`
	d.reviewers == ["group:dba"]
	d.grant == "once"
}

test_deny_beats_review if {
	d := decide([readers], sql(app, ["delete", "drop"]))
	d.result == "deny"
	d.reason == `drop is denied by rule "readers"`
}

test_review_merges_reviewers_and_takes_settings_from_first if {
	rules := [
		rule("base", everyone, {"allow": ["select"]}),
		rule("first", everyone, {"review": {"operations": ["delete"], "reviewers": ["user:bob", "group:dba"], "grant": "window", "window": "30m", "timeout": "2m"}}),
		rule("second", everyone, {"review": {"operations": ["*"], "reviewers": ["group:dba", "group:sre"], "timeout": "1h"}}),
	]
	d := decide(rules, sql(app, ["select", "delete"]))
	d.result == "review"
	d.rule == "first"
	d.reviewers == ["group:dba", "group:sre", "user:bob"]
	d.grant == "window"
	d.window == "30m"
	d.timeout == "2m"
}

test_uncovered_op_denied if {
	d := decide([readers], sql(app, ["select", "truncate"]))
	d.result == "deny"
	d.reason == "no rule allows truncate"
	d.rule == "readers"
}

test_unknown_op_denied if {
	rules := [rule("admin", everyone, {"allow": ["*"]})]
	d := decide(rules, sql(app, ["select", "frobnicate"]))
	d.result == "deny"
	d.reason == `unknown operation "frobnicate"`

	# a word of another kind is unknown too
	decide(rules, sql(app, ["shell"])).reason == `unknown operation "shell"`
}

test_unknown_beats_deny if {
	d := decide([readers], sql(app, ["drop", "frobnicate"]))
	d.reason == `unknown operation "frobnicate"`
}

test_no_operation_denied if {
	d := decide([rule("admin", everyone, {"allow": ["*"]})], sql(app, []))
	d.result == "deny"
}

test_no_applicable_rule if {
	rules := [rule("etl", {"unit": ["etl.service"]}, {"allow": ["*"]})]
	d := decide(rules, sql(app, ["select"]))
	d.result == "deny"
	d.reason == `no rule lets this workload use target "orders-db"`
	d.rule == ""
	not d.credential
}

test_rule_for_another_target_does_not_apply if {
	rules := [rule("other", everyone, {"targets": ["billing-db"], "allow": ["*"]})]
	decide(rules, sql(app, ["select"])).result == "deny"
}

# --- connect ---

test_connect_implied_by_any_applicable_rule if {
	rules := [
		rule("not-me", {"unit": ["etl.service"]}, {"allow": ["*"]}),
		rule("deny-only", everyone, {"deny": ["drop"]}),
	]
	d := decide(rules, connect(app))
	d.result == "allow"
	d.rule == "deny-only"
}

test_connect_denied if {
	rules := [readers, rule("no-connect", {"user": ["app"]}, {"deny": ["connect"]})]
	d := decide(rules, connect(app))
	d.result == "deny"
	d.reason == `connect is denied by rule "no-connect"`
}

test_connect_reviewed if {
	rules := [rule("r", everyone, {"review": {"operations": ["connect"], "reviewers": ["group:dba"]}})]
	d := decide(rules, connect(app))
	d.result == "review"
	d.reviewers == ["group:dba"]
}

test_connect_kind_knows_only_connect if {
	req := object.union(connect(app), {"action": {"operations": ["select"]}})
	d := decide([rule("admin", everyone, {"allow": ["*"]})], req)
	d.reason == `unknown operation "select"`
}

# --- who ---

allows(who, workload) if {
	decide([rule("r", who, {"allow": ["select"]})], sql(workload, ["select"])).result == "allow"
}

test_exe_star_stays_in_a_segment if {
	allows({"exe": ["/usr/bin/*"]}, {"exe": "/usr/bin/psql"})
	not allows({"exe": ["/usr/bin/*"]}, {"exe": "/usr/bin/x/psql"})
	allows({"exe": ["/usr/**"]}, {"exe": "/usr/local/bin/psql"})
}

test_cgroup_globs if {
	allows({"cgroup": ["/kubepods.slice/**"]}, {"cgroup_path": "/kubepods.slice/a.slice/b.scope"})
	not allows({"cgroup": ["/system.slice/*"]}, {"cgroup_path": "/system.slice/a.service/b"})
}

test_unit_and_user_have_no_delimiter if {
	allows({"unit": ["etl*"]}, {"unit": "etl.nightly.service"})
	allows({"user": ["svc-*"]}, {"user": "svc-etl.batch"})
	not allows({"unit": ["etl*"]}, {"unit": "web.service"})
}

test_empty_fact_never_matches_star if {
	not allows({"unit": ["*"]}, {"exe": "/bin/sh"})
	not allows({"unit": ["*"]}, {"unit": ""})
	not allows({"exe": ["**"]}, {"unit": "a.service"})
	not allows({"kubernetes": {"namespace": ["*"]}}, {"pod": {"namespace": ""}})
	not allows({"oidc": {"subject": ["*"]}}, {"unit": "a.service"})
	allows({"unit": ["*"]}, {"unit": "a.service"})
}

test_who_fields_and_lists_or if {
	who := {"unit": ["web.service", "etl.service"], "user": ["etl"]}
	allows(who, {"unit": "etl.service", "user": "etl"})
	not allows(who, {"unit": "etl.service", "user": "root"})
	not allows(who, {"unit": "db.service", "user": "etl"})
}

test_uid_is_exact if {
	allows({"uid": [0, 1000]}, {"uid": 0})
	allows({"uid": [0, 1000]}, {"uid": 1000})
	not allows({"uid": [0, 1000]}, {"uid": 1001})
}

test_kubernetes_labels_all_required if {
	who := {"kubernetes": {"namespace": ["etl"], "labels": {"app": "etl", "tier": "batch"}}}
	allows(who, {"pod": {"namespace": "etl", "labels": {"app": "etl", "tier": "batch", "x": "y"}}})
	not allows(who, {"pod": {"namespace": "etl", "labels": {"app": "etl"}}})
	not allows(who, {"pod": {"namespace": "etl", "labels": {"app": "etl", "tier": "web"}}})
	not allows(who, {"pod": {"namespace": "web", "labels": {"app": "etl", "tier": "batch"}}})
	not allows(who, {"pod": {"namespace": "etl"}})
}

test_oidc_claims if {
	token := {"issuer": "https://idp.example.com", "subject": "system:serviceaccount:etl:migrator", "email": "m@example.com", "groups": ["dev", "ops"]}
	allows({"oidc": {"issuer": ["https://*.example.com"], "groups": ["dba", "ops"]}}, {"oidc": token})
	allows({"oidc": {"subject": ["system:serviceaccount:etl:*"], "email": ["*@example.com"]}}, {"oidc": token})
	not allows({"oidc": {"groups": ["dba"]}}, {"oidc": token})
	not allows({"oidc": {"email": ["*@example.org"]}}, {"oidc": token})
	not allows({"oidc": {"groups": ["ops"]}}, {"user": "ops"})
}

# --- masks and credentials ---

test_masks_in_rule_order if {
	a := {"columns": ["customers.email"], "method": "partial"}
	b := {"detect": ["ssn"], "method": "redact"}
	c := {"columns": ["users.password"], "method": "hash"}
	rules := [
		rule("first", {"unit": ["app.service"]}, {"allow": ["insert"], "mask": [a, b], "credential": "writer"}),
		rule("not-me", {"unit": ["web.service"]}, {"allow": ["*"], "mask": [{"detect": ["email"], "method": "null"}]}),
		rule("reader", everyone, {"allow": ["select"], "mask": [c]}),
	]
	d := decide(rules, sql(app, ["select"]))
	d.result == "allow"
	d.rule == "reader"
	d.mask == [a, b, c]
	d.credential == "writer"
}

# --- custom modules ---

test_custom_deny_beats_allow if {
	d := data.corral.decision with data.declared as {"rules": [readers], "vocabulary": vocab}
		with input as sql(app, ["select"])
		with data.corral.custom as {}
		with data.corral.custom.deny as {"b: frozen", "a: change freeze"}
	d.result == "deny"
	d.reason == "a: change freeze"
	d.rule == "custom"
}

test_custom_deny_empty_keeps_builtin if {
	d := data.corral.decision with data.declared as {"rules": [readers], "vocabulary": vocab}
		with input as sql(app, ["select"])
		with data.corral.custom as {}
		with data.corral.custom.deny as set()
	d.result == "allow"
	d.rule == "readers"
}

test_custom_decision_replaces_builtin if {
	custom := {"result": "allow", "reason": "break-glass", "rule": "custom", "record": true}
	d := data.corral.decision with data.declared as {"rules": [readers], "vocabulary": vocab}
		with input as sql(app, ["drop"])
		with data.corral.custom as {}
		with data.corral.custom.decision as custom
	d == custom
}

test_builtin_stays_available_to_custom_modules if {
	b := data.corral.builtin with data.declared as {"rules": [readers], "vocabulary": vocab}
		with input as sql(app, ["drop"])
	b.result == "deny"
	b.rule == "readers"
}

test_decisions_are_cacheable_unless_custom_says_not if {
	rules := [readers]
	decide(rules, sql(app, ["select"])).cache == true
	d := data.corral.decision with data.declared as {"rules": rules, "vocabulary": vocab}
		with input as sql(app, ["select"])
		with data.corral.custom as {}
		with data.corral.custom.cache as false
	d.result == "allow"
	d.cache == false
}

# --- SSH exec commands ---

exec(argv) := {
	"workload": app,
	"target": {"name": "orders-db", "protocol": "ssh"},
	"action": {"kind": "ssh", "operations": ["exec"], "ssh": {"command": concat(" ", argv), "argv": argv}},
}

deployers := rule("deployers", everyone, {
	"allow": ["exec"],
	"commands": {"allow": [], "review": ["systemctl restart *"], "deny": ["rm -rf *", "shutdown*"]},
	"review": {"operations": [], "reviewers": ["group:ops"], "grant": "once", "window": "", "timeout": ""},
})

test_exec_allowed_unless_a_pattern_says_otherwise if {
	decide([deployers], exec(["uptime"])).result == "allow"
}

test_exec_denied_by_pattern if {
	d := decide([deployers], exec(["rm", "-rf", "/"]))
	d.result == "deny"
	d.reason == "exec is denied by rule \"deployers\""
}

test_exec_denied_by_base_name if {
	decide([deployers], exec(["/usr/bin/rm", "-rf", "/tmp/x"])).result == "deny"
}

test_exec_reviewed_by_pattern if {
	d := decide([deployers], exec(["systemctl", "restart", "api"]))
	d.result == "review"
	d.reviewers == ["group:ops"]
}

test_exec_allow_list_restricts if {
	only := rule("only", everyone, {"allow": ["exec"], "commands": {"allow": ["systemctl status *"], "review": [], "deny": []}})
	decide([only], exec(["systemctl", "status", "api"])).result == "allow"
	decide([only], exec(["uptime"])).result == "deny"
}

test_exec_pattern_allows_without_exec_in_allow if {
	only := rule("only", everyone, {"commands": {"allow": ["uptime"], "review": [], "deny": []}})
	decide([only], exec(["uptime"])).result == "allow"
	decide([only], exec(["id"])).result == "deny"
}

test_exec_deny_pattern_beats_another_rules_allow if {
	lax := rule("lax", everyone, {"allow": ["exec"]})
	decide([lax, deployers], exec(["rm", "-rf", "/"])).result == "deny"
}
