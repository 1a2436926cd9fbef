package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"

	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/corral-dev/corral/policy/approval"
)

// AgentConfig is how the agent reaches the API server: the kubeconfig
// file when one is given, else the pod's service account. ErrNoCluster:
// neither.
func AgentConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		c, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
		}
		return c, nil
	}
	c, err := rest.InClusterConfig()
	if errors.Is(err, rest.ErrNotInCluster) {
		return nil, ErrNoCluster
	}
	return c, err
}

// UserConfig is how a person's tool reaches the API server: kubectl's
// rules (the file given, else $KUBECONFIG, else ~/.kube/config), with
// context overriding the current one when given.
func UserConfig(kubeconfig, context string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	c, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return c, nil
}

// Secrets reads credentials from Kubernetes Secrets. Only the agent reads
// them (its service account needs get on the Secrets its targets name);
// the workloads never see them.
type Secrets struct {
	Client kubernetes.Interface
}

// ReadSecret returns the value of key in Secret namespace/name, without
// a trailing newline (as password files are read).
func (s Secrets) ReadSecret(ctx context.Context, namespace, name, key string) (string, error) {
	sec, err := s.Client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("secret %s/%s: %w", namespace, name, err)
	}
	if v, ok := sec.Data[key]; ok {
		return strings.TrimRight(string(v), "\r\n"), nil
	}
	if v, ok := sec.StringData[key]; ok {
		return strings.TrimRight(v, "\r\n"), nil
	}
	return "", fmt.Errorf("secret %s/%s has no key %q", namespace, name, key)
}

// WhoAmI is the approver the API server says the client's user is (a
// SelfSubjectReview): its user name, which reviewers' user:NAME match, and
// its groups, which group:NAME match. The user name is also the subject, so
// a service account is recognised as the requester of its own pods'
// requests.
func WhoAmI(ctx context.Context, client kubernetes.Interface) (approval.Approver, error) {
	rev, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return approval.Approver{}, fmt.Errorf("who am I (SelfSubjectReview): %w", err)
	}
	u := rev.Status.UserInfo
	if u.Username == "" {
		return approval.Approver{}, errors.New("who am I (SelfSubjectReview): the API server named no user")
	}
	return approval.Approver{Name: u.Username, Via: ViaKubernetes, Subject: u.Username, Groups: u.Groups}, nil
}
