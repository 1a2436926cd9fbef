// Package deploy tests what installs corral: the Kubernetes manifests under
// daemonset/ (strict decoding, kustomize builds, the agent's security
// settings), and the systemd units and scripts under systemd/ (systemd's
// own verifier, and an install, intercept, stop, uninstall cycle on this
// machine).
package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"

	"github.com/corral-dev/corral/agent/config"
)

// repo is the repository's root, from this package's directory.
func repo(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("repository root not found at %s: %v", dir, err)
	}
	return dir
}

// documents splits a YAML stream into its non-empty documents.
func documents(t testing.TB, b []byte) [][]byte {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var out [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := yaml.Unmarshal(doc, &v); err != nil {
			t.Fatalf("not YAML: %v\n%s", err, doc)
		}
		if v != nil {
			out = append(out, doc)
		}
	}
}

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// strictTypes are the kinds the manifests may hold, each decoded into its
// Go type with unknown fields refused.
var strictTypes = map[string]func() any{
	"v1/Namespace":      func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount": func() any { return &corev1.ServiceAccount{} },
	"v1/ConfigMap":      func() any { return &corev1.ConfigMap{} },
	"v1/Secret":         func() any { return &corev1.Secret{} },
	"v1/Service":        func() any { return &corev1.Service{} },
	"apps/v1/DaemonSet": func() any { return &appsv1.DaemonSet{} },
	"rbac.authorization.k8s.io/v1/ClusterRole":        func() any { return &rbacv1.ClusterRole{} },
	"rbac.authorization.k8s.io/v1/ClusterRoleBinding": func() any { return &rbacv1.ClusterRoleBinding{} },
	"rbac.authorization.k8s.io/v1/Role":               func() any { return &rbacv1.Role{} },
	"rbac.authorization.k8s.io/v1/RoleBinding":        func() any { return &rbacv1.RoleBinding{} },
	"kustomize.config.k8s.io/v1beta1/Kustomization":   func() any { return &types.Kustomization{} },
	"admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy": func() any {
		return &admissionv1.ValidatingAdmissionPolicy{}
	},
	"admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding": func() any {
		return &admissionv1.ValidatingAdmissionPolicyBinding{}
	},
}

// decodeStrict decodes one object by its apiVersion and kind, refusing
// unknown and duplicate fields. CustomResourceDefinitions (whose Go types
// are not a dependency here) only have to be apiextensions.k8s.io/v1.
func decodeStrict(doc []byte) (typeMeta, any, error) {
	var tm typeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return tm, nil, err
	}
	if tm.Kind == "CustomResourceDefinition" {
		if tm.APIVersion != "apiextensions.k8s.io/v1" {
			return tm, nil, errors.New("CustomResourceDefinition must be apiextensions.k8s.io/v1, not " + tm.APIVersion)
		}
		var m map[string]any
		return tm, m, yaml.Unmarshal(doc, &m)
	}
	newObj, ok := strictTypes[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return tm, nil, errors.New("unexpected kind " + tm.APIVersion + "/" + tm.Kind + " (add it to strictTypes)")
	}
	obj := newObj()
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return tm, nil, err
	}
	return tm, obj, nil
}

// manifestFiles lists every YAML file under daemonset/.
func manifestFiles(t testing.TB) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(filepath.Join(repo(t), "daemonset"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

// jsonPatchFiles are the files kustomizations use as JSON 6902 patches
// (a list of operations, not an object).
func jsonPatchFiles(t testing.TB, files []string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, f := range files {
		if filepath.Base(f) != "kustomization.yaml" {
			continue
		}
		var k types.Kustomization
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, &k); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, p := range k.Patches {
			if p.Path != "" && p.Target != nil {
				out[filepath.Join(filepath.Dir(f), p.Path)] = true
			}
		}
	}
	return out
}

type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	From  string `json:"from,omitempty"`
	Value any    `json:"value,omitempty"`
}

// TestManifestsDecodeStrictly decodes every manifest under daemonset/ into
// its Kubernetes type, refusing unknown fields, and validates every
// corral.yaml a ConfigMap carries with corral's own configuration parser.
func TestManifestsDecodeStrictly(t *testing.T) {
	files := manifestFiles(t)
	if len(files) == 0 {
		t.Fatal("no manifests under daemonset/")
	}
	patches := jsonPatchFiles(t, files)
	kinds := map[string]int{}
	for _, f := range files {
		rel, _ := filepath.Rel(repo(t), f)
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if patches[f] {
			var ops []jsonPatchOp
			if err := yaml.UnmarshalStrict(b, &ops); err != nil || len(ops) == 0 {
				t.Errorf("%s: not a JSON 6902 patch: %v", rel, err)
			}
			continue
		}
		docs := documents(t, b)
		if len(docs) == 0 {
			t.Errorf("%s: empty", rel)
		}
		for i, doc := range docs {
			tm, obj, err := decodeStrict(doc)
			if err != nil {
				t.Errorf("%s (document %d): %v", rel, i, err)
				continue
			}
			kinds[tm.Kind]++
			if cm, ok := obj.(*corev1.ConfigMap); ok {
				checkConfigMap(t, rel, cm)
			}
		}
	}
	for _, k := range []string{"Kustomization", "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap", "DaemonSet"} {
		if kinds[k] == 0 {
			t.Errorf("no %s among the manifests", k)
		}
	}
	t.Logf("decoded strictly: %v", kinds)
}

// checkConfigMap validates the corral.yaml a ConfigMap (or a patch of one)
// carries.
func checkConfigMap(t *testing.T, where string, cm *corev1.ConfigMap) *config.Config {
	t.Helper()
	src, ok := cm.Data["corral.yaml"]
	if !ok {
		t.Errorf("%s: ConfigMap %s has no corral.yaml", where, cm.Name)
		return nil
	}
	c, err := config.Parse([]byte(src))
	if err != nil {
		t.Errorf("%s: corral.yaml of ConfigMap %s: %v", where, cm.Name, err)
		return nil
	}
	return c
}

// TestExampleConfigIsValid checks the configuration install.sh puts in
// /etc/corral when there is none.
func TestExampleConfigIsValid(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repo(t), "systemd", "corral.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse(b)
	if err != nil {
		t.Fatalf("systemd/corral.yaml: %v", err)
	}
	if c.CgroupPath != "" {
		t.Errorf("cgroup_path = %q, want the default (the host's cgroup2 root)", c.CgroupPath)
	}
	for what, got := range map[string]string{"state_dir": c.StateDir, "bpf_pin_dir": c.BPFPinDir, "admin_socket": c.AdminSocket} {
		want := map[string]string{"state_dir": config.DefaultStateDir, "bpf_pin_dir": config.DefaultPinDir, "admin_socket": config.DefaultAdminSocket}[what]
		if got != want {
			t.Errorf("%s = %q, want %q (the unit's StateDirectory/RuntimeDirectory and the default pin dir)", what, got, want)
		}
	}
}
