// Package kube is corral on Kubernetes: the corral.dev/v1alpha1 resources
// (ProtectedTarget, AccessRule, AccessRequest), the approval store that
// keeps access requests in the API server, Secret-backed credentials, and
// the approver's identity as the API server sees it.
//
// The resources carry the configuration file's own schema, so there is one
// definition of a target and of a rule, and one validation: Apply puts the
// objects into a config.Config and runs the file's validation on it,
// naming the object behind each problem.
//
// Access requests live in the cluster so that the agent on every node and
// every approver see one truth. An agent creates an AccessRequest for each
// operation held for review and watches the ones it made: a decision
// written by any other party (the corral CLI with the approver's
// kubeconfig, or the agent of another node) wakes the waiting operation.
// Every status write is conditional on the resourceVersion it read; on a
// conflict the request is read again and the write is decided again, so a
// request leaves pending exactly once and is never changed afterwards (the
// CRD's validation rules refuse that too).
package kube
