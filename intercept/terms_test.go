package intercept

import (
	"slices"
	"testing"
	"time"

	"github.com/corral-dev/corral/policy"
)

// An approval stands only while the policy holds the operation on the
// same terms: what differs in any of them, beyond its reason and the
// policy's version, is another decision.
func TestSameTerms(t *testing.T) {
	base := policy.Decision{Result: policy.Review, Reason: "delete needs review", Rule: "app", Reviewers: []string{"group:dba", "user:root"},
		Grant: "once", Timeout: time.Minute, Mask: []policy.Mask{{Columns: []string{"customers.email"}, Method: "partial"}}, Record: true, PolicyVersion: 3}
	same := base
	same.Reason, same.PolicyVersion, same.Timeout = "another reason", 4, time.Hour
	same.Reviewers = []string{"user:root", "group:dba"}
	if !sameTerms(base, same) {
		t.Error("the reason, version, timeout and reviewers' order changed the terms")
	}
	for name, edit := range map[string]func(*policy.Decision){
		"denied":          func(d *policy.Decision) { d.Result = policy.Deny },
		"allowed":         func(d *policy.Decision) { d.Result = policy.Allow },
		"another rule":    func(d *policy.Decision) { d.Rule = "strict" },
		"other reviewers": func(d *policy.Decision) { d.Reviewers = []string{"group:dba"} },
		"a window":        func(d *policy.Decision) { d.Grant, d.Window = "window", time.Hour },
		"another mask": func(d *policy.Decision) {
			d.Mask = []policy.Mask{{Columns: []string{"customers.email"}, Method: "redact"}}
		},
		"no mask":      func(d *policy.Decision) { d.Mask = nil },
		"a credential": func(d *policy.Decision) { d.Credential = "writer" },
		"not recorded": func(d *policy.Decision) { d.Record = false },
	} {
		d := base
		d.Reviewers = slices.Clone(base.Reviewers)
		edit(&d)
		if sameTerms(base, d) {
			t.Errorf("%s: the same terms", name)
		}
	}
}
