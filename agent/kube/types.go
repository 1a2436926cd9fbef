package kube

import (
	"encoding/json"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/corral-dev/corral/agent/config"
	"github.com/corral-dev/corral/policy"
	"github.com/corral-dev/corral/policy/approval"
)

// The API group and version of corral's resources.
const (
	Group   = "corral.dev"
	Version = "v1alpha1"
)

// GroupVersion is corral.dev/v1alpha1.
var GroupVersion = schema.GroupVersion{Group: Group, Version: Version}

// The resources, as the dynamic client names them.
var (
	ProtectedTargets = GroupVersion.WithResource("protectedtargets")
	AccessRules      = GroupVersion.WithResource("accessrules")
	AccessRequests   = GroupVersion.WithResource("accessrequests")
)

// ListKinds maps each resource to its list kind (what the fake dynamic
// client needs to be told).
var ListKinds = map[schema.GroupVersionResource]string{
	ProtectedTargets: "ProtectedTargetList",
	AccessRules:      "AccessRuleList",
	AccessRequests:   "AccessRequestList",
}

// AddToScheme registers the types, so typed clients and schemes can use
// them.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&ProtectedTarget{}, &ProtectedTargetList{},
		&AccessRule{}, &AccessRuleList{},
		&AccessRequest{}, &AccessRequestList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}

// ProtectedTarget is a target of the configuration file (cluster-scoped:
// target names are one namespace on every node). Its name is the target's
// name; spec.name is not used.
type ProtectedTarget struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              config.Target `json:"spec"`
}

// ProtectedTargetList is a list of ProtectedTargets.
type ProtectedTargetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ProtectedTarget `json:"items"`
}

// AccessRule is a rule of the configuration file (namespaced: a team keeps
// its rules in its namespace). The rule is named NAMESPACE/NAME in
// decisions and the audit log; spec.name is not used.
type AccessRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              policy.Rule `json:"spec"`
}

// AccessRuleList is a list of AccessRules.
type AccessRuleList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AccessRule `json:"items"`
}

// AccessRequest is an operation held for review (approval.Request). Its
// name is the request's id. The spec never changes; the status leaves
// pending once.
type AccessRequest struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              AccessRequestSpec   `json:"spec"`
	Status            AccessRequestStatus `json:"status,omitempty"`
}

// AccessRequestSpec is what is asked, by whom, and who may decide.
type AccessRequestSpec struct {
	// Requester is the workload as the policy saw it.
	Requester policy.Workload `json:"requester"`
	// Node runs the agent holding the operation.
	Node       string   `json:"node,omitempty"`
	SessionID  string   `json:"session_id,omitempty"`
	Target     string   `json:"target"`
	Protocol   string   `json:"protocol,omitempty"`
	Database   string   `json:"database,omitempty"`
	Kind       string   `json:"kind"`
	Operations []string `json:"operations"`
	Text       string   `json:"text,omitempty"`
	Statement  string   `json:"statement,omitempty"`
	Reason     string   `json:"reason"`
	Rule       string   `json:"rule,omitempty"`
	Reviewers  []string `json:"reviewers"`
	Grant      string   `json:"grant"`
	// Window and Timeout are Go durations ("30m0s").
	Window  string    `json:"window,omitempty"`
	Timeout string    `json:"timeout"`
	Expires time.Time `json:"expires"`
}

// AccessRequestStatus is the outcome. An empty state is pending: the API
// server drops the status of an object being created.
type AccessRequestStatus struct {
	State string `json:"state,omitempty"`
	// DecidedBy is the person who decided (none when it expired or was
	// cancelled), with how they authenticated (via).
	DecidedBy    *approval.Approver `json:"decided_by,omitempty"`
	Reason       string             `json:"reason,omitempty"`
	Decided      *time.Time         `json:"decided,omitempty"`
	GrantExpires *time.Time         `json:"grant_expires,omitempty"`
}

// AccessRequestList is a list of AccessRequests.
type AccessRequestList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AccessRequest `json:"items"`
}

// deepCopy copies through JSON: the specs are the configuration's own
// types, whose JSON form is exactly what the API server stores, and
// whose derived fields (json:"-") validation computes again.
func deepCopy[T any](in *T) *T {
	if in == nil {
		return nil
	}
	b, err := json.Marshal(in)
	if err != nil {
		panic("kube: deep copy: " + err.Error())
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		panic("kube: deep copy: " + err.Error())
	}
	return out
}

// DeepCopy returns a deep copy.
func (in *ProtectedTarget) DeepCopy() *ProtectedTarget { return deepCopy(in) }

// DeepCopyObject implements runtime.Object.
func (in *ProtectedTarget) DeepCopyObject() runtime.Object { return in.DeepCopy() }

// DeepCopyObject implements runtime.Object.
func (in *ProtectedTargetList) DeepCopyObject() runtime.Object { return deepCopy(in) }

// DeepCopy returns a deep copy.
func (in *AccessRule) DeepCopy() *AccessRule { return deepCopy(in) }

// DeepCopyObject implements runtime.Object.
func (in *AccessRule) DeepCopyObject() runtime.Object { return in.DeepCopy() }

// DeepCopyObject implements runtime.Object.
func (in *AccessRuleList) DeepCopyObject() runtime.Object { return deepCopy(in) }

// DeepCopy returns a deep copy.
func (in *AccessRequest) DeepCopy() *AccessRequest { return deepCopy(in) }

// DeepCopyObject implements runtime.Object.
func (in *AccessRequest) DeepCopyObject() runtime.Object { return in.DeepCopy() }

// DeepCopyObject implements runtime.Object.
func (in *AccessRequestList) DeepCopyObject() runtime.Object { return deepCopy(in) }

// toUnstructured and fromUnstructured go through JSON rather than the
// reflection converter, so the types' own JSON methods (durations, string
// lists) apply.
func toUnstructured(obj any) (map[string]any, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}

func fromUnstructured(m map[string]any, out any) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}
