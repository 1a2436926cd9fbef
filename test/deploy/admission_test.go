package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/yaml"
)

// The ValidatingAdmissionPolicy's expressions are evaluated here with
// cel-go, the library the API server runs them with, over the objects an
// UPDATE of accessrequests/status carries (object, oldObject, request).
// The API server adds libraries of its own; of them, these expressions
// use the strings extension (lowerAscii), which it has had since 1.27.

type admission struct {
	vars  []admissionv1.Variable
	rules []admissionv1.Validation
	env   *cel.Env
}

func loadAdmission(t *testing.T) *admission {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repo(t), "daemonset", "base", "admission.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var p admissionv1.ValidatingAdmissionPolicy
	if err := yaml.Unmarshal([]byte(strings.Split(string(raw), "\n---\n")[0]), &p); err != nil {
		t.Fatal(err)
	}
	if p.Spec.FailurePolicy == nil || *p.Spec.FailurePolicy != admissionv1.Fail {
		t.Error("the policy must fail closed (failurePolicy: Fail)")
	}
	env, err := cel.NewEnv(
		cel.Variable("object", cel.DynType), cel.Variable("oldObject", cel.DynType),
		cel.Variable("request", cel.DynType), cel.Variable("variables", cel.MapType(cel.StringType, cel.DynType)),
		ext.Strings(),
	)
	if err != nil {
		t.Fatal(err)
	}
	return &admission{vars: p.Spec.Variables, rules: p.Spec.Validations, env: env}
}

func (a *admission) eval(t *testing.T, expr string, in map[string]any) any {
	t.Helper()
	ast, iss := a.env.Compile(expr)
	if iss.Err() != nil {
		t.Fatalf("%s: %v", expr, iss.Err())
	}
	prg, err := a.env.Program(ast)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := prg.Eval(in)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return out.Value()
}

// admit returns the messages of the validations the update fails.
func (a *admission) admit(t *testing.T, user string, groups []string, old, next map[string]any) []string {
	t.Helper()
	vars := map[string]any{}
	in := map[string]any{
		"object": next, "oldObject": old, "variables": vars,
		"request": map[string]any{"userInfo": map[string]any{"username": user, "groups": groups}},
	}
	for _, v := range a.vars {
		vars[v.Name] = a.eval(t, v.Expression, in)
	}
	var failed []string
	for _, r := range a.rules {
		if ok, _ := a.eval(t, r.Expression, in).(bool); !ok {
			failed = append(failed, r.Message)
		}
	}
	return failed
}

func accessRequest(state, decidedBy string) map[string]any {
	status := map[string]any{"state": state}
	if decidedBy != "" {
		status["decided_by"] = map[string]any{"name": decidedBy, "via": "kubernetes"}
	}
	return map[string]any{
		"spec": map[string]any{
			"reviewers": []any{"group:dba", "user:carol"},
			"requester": map[string]any{
				"pod":  map[string]any{"namespace": "etl", "service_account": "migrator"},
				"oidc": map[string]any{"subject": "mallory", "email": "mallory@example.com"},
				"user": "mjones",
			},
		},
		"status": status,
	}
}

func TestAdmissionPolicyHoldsPeopleToTheReviewers(t *testing.T) {
	a := loadAdmission(t)
	pending := accessRequest("pending", "")
	const agent = "system:serviceaccount:corral-system:corral"
	for _, tc := range []struct {
		name   string
		user   string
		groups []string
		old    map[string]any
		next   map[string]any
		want   string // a failed validation's message; "" admits
	}{
		{"a reviewer by group approves", "alice", []string{"dba"}, pending, accessRequest("approved", "alice"), ""},
		{"a reviewer by name denies", "carol", nil, pending, accessRequest("denied", "carol"), ""},
		{"the agent expires", agent, nil, pending, accessRequest("expired", ""), ""},
		{"the agent decides for an approver it authenticated", agent, nil, pending, accessRequest("approved", "dave"), ""},
		{"not a reviewer", "bob", []string{"dev"}, pending, accessRequest("approved", "bob"), "not one of the request's reviewers"},
		{"a decision signed with another name", "alice", []string{"dba"}, pending, accessRequest("approved", "carol"), "carries the name"},
		{"a decision signed with no name", "alice", []string{"dba"}, pending, accessRequest("approved", ""), "carries the name"},
		{"the requester's token identity", "mallory", []string{"dba"}, pending, accessRequest("approved", "mallory"), "of their own"},
		{"the requester's email", "mallory@example.com", []string{"dba"}, pending, accessRequest("approved", "mallory@example.com"), "of their own"},
		{"the requester's email in other case", "Mallory@Example.com", []string{"dba"}, pending, accessRequest("approved", "Mallory@Example.com"), "of their own"},
		{"the requester's user name", "mjones", []string{"dba"}, pending, accessRequest("approved", "mjones"), "of their own"},
		{"the requesting pod's service account", "system:serviceaccount:etl:migrator", []string{"dba"}, pending,
			accessRequest("approved", "system:serviceaccount:etl:migrator"), "of their own"},
		{"a person expires a request", "alice", []string{"dba"}, pending, accessRequest("expired", "alice"), "only approve or deny a pending"},
		{"a person edits a decided request", "alice", []string{"dba"}, accessRequest("denied", "carol"), accessRequest("denied", "alice"), "only approve or deny a pending"},
		{"a decision dated before the expiry", "alice", []string{"dba"}, pending,
			dated(accessRequest("approved", "alice"), "2026-11-27T09:01:00Z", "2026-11-27T09:11:00Z"), ""},
		{"a decision dated after the expiry", "alice", []string{"dba"}, pending,
			dated(accessRequest("approved", "alice"), "2126-11-27T09:01:00Z", ""), "no later than the request's expiry"},
		{"a window grant past its window", "alice", []string{"dba"}, pending,
			dated(accessRequest("approved", "alice"), "2026-11-27T09:01:00Z", "2126-11-27T09:11:00Z"), "at most its window"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			failed := a.admit(t, tc.user, tc.groups, tc.old, tc.next)
			switch {
			case tc.want == "" && len(failed) > 0:
				t.Errorf("refused: %q", failed)
			case tc.want != "" && !strings.Contains(strings.Join(failed, "; "), tc.want):
				t.Errorf("admitted or refused for another reason (%q); want %q", failed, tc.want)
			}
		})
	}
}

// dated gives an AccessRequest of a 10-minute window grant, expiring at
// 09:05, the decision time and grant end a status write carries.
func dated(r map[string]any, decided, grantExpires string) map[string]any {
	spec := r["spec"].(map[string]any)
	spec["expires"], spec["window"], spec["grant"] = "2026-11-27T09:05:00Z", "10m0s", "window"
	status := r["status"].(map[string]any)
	status["decided"] = decided
	if grantExpires != "" {
		status["grant_expires"] = grantExpires
	}
	return r
}
