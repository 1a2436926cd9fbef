package deploy

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/corral-dev/corral/agent/config"
)

const (
	namespace      = "corral-system"
	serviceAccount = "corral"
)

// agentCaps are the capabilities the agent runs with, and the only ones:
// the README's Install section and the manifests' comments say why each.
var agentCaps = []string{"BPF", "PERFMON", "NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH"}

// clusterRules is everything the ClusterRole may grant:
// "group/resource" -> verbs.
var clusterRules = map[string][]string{
	"/pods":                            {"get", "list", "watch"},
	"corral.dev/protectedtargets":      {"get", "list", "watch"},
	"corral.dev/accessrules":           {"get", "list", "watch"},
	"corral.dev/accessrequests":        {"create", "delete", "get", "list", "watch"},
	"corral.dev/accessrequests/status": {"update"},
}

// built is the output of one kustomize build, decoded strictly.
type built struct {
	dir     string
	objects map[string]any // "Kind/namespace/name"
	crds    map[string]map[string]any
}

func key(kind, ns, name string) string { return kind + "/" + ns + "/" + name }

// build runs kustomize over a directory of the repository, as
// `kubectl apply -k` would.
func build(t *testing.T, dir string) *built {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	b := &built{dir: dir, objects: map[string]any{}, crds: map[string]map[string]any{}}
	for _, r := range m.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		tm, obj, err := decodeStrict(doc)
		if err != nil {
			t.Errorf("%s: %s %s: %v", dir, r.GetKind(), r.GetName(), err)
			continue
		}
		if tm.Kind == "CustomResourceDefinition" {
			b.crds[r.GetName()] = obj.(map[string]any)
			continue
		}
		b.objects[key(tm.Kind, r.GetNamespace(), r.GetName())] = obj
	}
	return b
}

func get[T any](t *testing.T, b *built, kind, ns, name string) T {
	t.Helper()
	o, ok := b.objects[key(kind, ns, name)]
	if !ok {
		var have []string
		for k := range b.objects {
			have = append(have, k)
		}
		sort.Strings(have)
		t.Fatalf("%s: no %s %s/%s in the build (have %v)", b.dir, kind, ns, name, have)
	}
	return o.(T)
}

// TestKustomizeBase builds daemonset/base and checks every object and the
// agent's security settings.
func TestKustomizeBase(t *testing.T) {
	b := build(t, filepath.Join(repo(t), "daemonset", "base"))
	checkBuild(t, b)
	checkCRDs(t, b)
}

// TestKustomizeOverlays builds every overlay: each must keep the base's
// guarantees, and its images and ConfigMap patches must show in the output.
func TestKustomizeOverlays(t *testing.T) {
	base := build(t, filepath.Join(repo(t), "daemonset", "base"))
	baseImage := daemonSet(t, base).Spec.Template.Spec.Containers[0].Image
	dirs, err := filepath.Glob(filepath.Join(repo(t), "daemonset", "overlays", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no overlays under daemonset/overlays (%v)", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			b := build(t, dir)
			checkBuild(t, b)
			var k types.Kustomization
			raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if err := yaml.UnmarshalStrict(raw, &k); err != nil {
				t.Fatal(err)
			}
			ds := daemonSet(t, b)
			for _, img := range k.Images {
				if img.Name != strings.Split(baseImage, ":")[0] {
					continue
				}
				want := img.NewName + ":" + img.NewTag
				if got := ds.Spec.Template.Spec.Containers[0].Image; got != want {
					t.Errorf("image = %s, want %s (the overlay's images entry)", got, want)
				}
			}
			// A ConfigMap patch's corral.yaml is the one deployed.
			for _, p := range k.Patches {
				if p.Path == "" || p.Target != nil {
					continue
				}
				raw, err := os.ReadFile(filepath.Join(dir, p.Path))
				if err != nil {
					t.Fatal(err)
				}
				var cm corev1.ConfigMap
				if yaml.Unmarshal(raw, &cm) != nil || cm.Kind != "ConfigMap" {
					continue
				}
				got := get[*corev1.ConfigMap](t, b, "ConfigMap", namespace, cm.Name)
				if got.Data["corral.yaml"] != cm.Data["corral.yaml"] {
					t.Errorf("ConfigMap %s: the patch %s did not apply", cm.Name, p.Path)
				}
			}
			if filepath.Base(dir) == "example" {
				checkExampleOverlay(t, b, base)
			}
		})
	}
}

// checkExampleOverlay checks the example's patches one by one.
func checkExampleOverlay(t *testing.T, b, base *built) {
	t.Helper()
	ds := daemonSet(t, b)
	if got := ds.Spec.Template.Spec.Containers[0].Image; got != "registry.example.com/platform/corral:0.1.0" {
		t.Errorf("image = %s", got)
	}
	c := ds.Spec.Template.Spec.Containers[0]
	if got := c.Resources.Limits.Memory().String(); got != "2Gi" {
		t.Errorf("memory limit = %s, want the overlay's 2Gi", got)
	}
	if got := c.Resources.Requests.Cpu().String(); got != daemonSet(t, base).Spec.Template.Spec.Containers[0].Resources.Requests.Cpu().String() {
		t.Errorf("cpu request = %s: the strategic merge lost the base's", got)
	}
	role := get[*rbacv1.Role](t, b, "Role", namespace, "corral-credentials")
	if got := role.Rules[0].ResourceNames; !slices.Equal(got, []string{"orders-db-ro", "orders-db-rw"}) {
		t.Errorf("credentials Role names %v", got)
	}
	cfg := agentConfig(t, b)
	if len(cfg.Targets) != 1 || cfg.Targets[0].Name != "orders-db" {
		t.Errorf("targets %+v, want the overlay's orders-db", cfg.Targets)
	}
}

func daemonSet(t *testing.T, b *built) *appsv1.DaemonSet {
	return get[*appsv1.DaemonSet](t, b, "DaemonSet", namespace, "corral")
}

// agentConfig is the corral.yaml of the ConfigMap the DaemonSet mounts.
func agentConfig(t *testing.T, b *built) *config.Config {
	t.Helper()
	ds := daemonSet(t, b)
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil {
			cm := get[*corev1.ConfigMap](t, b, "ConfigMap", namespace, v.ConfigMap.Name)
			c := checkConfigMap(t, b.dir, cm)
			if c == nil {
				t.FailNow()
			}
			return c
		}
	}
	t.Fatal("the DaemonSet mounts no ConfigMap")
	return nil
}

// checkBuild checks what every build (base or overlay) must hold.
func checkBuild(t *testing.T, b *built) {
	t.Helper()
	get[*corev1.Namespace](t, b, "Namespace", "", namespace)
	get[*corev1.ServiceAccount](t, b, "ServiceAccount", namespace, serviceAccount)
	for k := range b.objects {
		kind, ns := strings.Split(k, "/")[0], strings.Split(k, "/")[1]
		clusterScoped := kind == "Namespace" || kind == "ClusterRole" || kind == "ClusterRoleBinding" ||
			kind == "ValidatingAdmissionPolicy" || kind == "ValidatingAdmissionPolicyBinding"
		if clusterScoped != (ns == "") || (!clusterScoped && ns != namespace) {
			t.Errorf("%s: namespace %q", k, ns)
		}
	}
	ns := get[*corev1.Namespace](t, b, "Namespace", "", namespace)
	if ns.Labels["pod-security.kubernetes.io/enforce"] != "privileged" {
		t.Errorf("namespace %s: Pod Security enforce label %q; the agent is admitted only at privileged", namespace, ns.Labels["pod-security.kubernetes.io/enforce"])
	}
	checkRBAC(t, b)
	cfg := agentConfig(t, b)
	checkSecretsGranted(t, b, cfg)
	checkDaemonSet(t, daemonSet(t, b), cfg)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

func checkRBAC(t *testing.T, b *built) {
	t.Helper()
	cr := get[*rbacv1.ClusterRole](t, b, "ClusterRole", "", "corral-agent")
	granted := map[string][]string{}
	for _, r := range cr.Rules {
		if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
			t.Errorf("ClusterRole rule %+v: unexpected resourceNames or nonResourceURLs", r)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				granted[g+"/"+res] = append(granted[g+"/"+res], r.Verbs...)
			}
		}
	}
	for res, verbs := range granted {
		want, ok := clusterRules[res]
		if !ok {
			t.Errorf("ClusterRole grants %v on %s, which the agent does not need", verbs, res)
			continue
		}
		if !slices.Equal(sorted(verbs), sorted(want)) {
			t.Errorf("ClusterRole grants %v on %s, want %v", sorted(verbs), res, want)
		}
	}
	for res := range clusterRules {
		if _, ok := granted[res]; !ok {
			t.Errorf("ClusterRole does not grant %s", res)
		}
	}
	crb := get[*rbacv1.ClusterRoleBinding](t, b, "ClusterRoleBinding", "", "corral-agent")
	checkBinding(t, "ClusterRoleBinding", crb.RoleRef, crb.Subjects, "ClusterRole", cr.Name)

	// Secrets: a Role, in the namespace of the Secrets, naming each.
	role := get[*rbacv1.Role](t, b, "Role", namespace, "corral-credentials")
	for _, r := range role.Rules {
		if !slices.Equal(r.APIGroups, []string{""}) || !slices.Equal(r.Resources, []string{"secrets"}) || !slices.Equal(r.Verbs, []string{"get"}) {
			t.Errorf("credentials Role rule %+v: want get on secrets only", r)
		}
		if len(r.ResourceNames) == 0 {
			t.Errorf("credentials Role rule %+v: no resourceNames grants every Secret of %s", r, namespace)
		}
	}
	rb := get[*rbacv1.RoleBinding](t, b, "RoleBinding", namespace, "corral-credentials")
	checkBinding(t, "RoleBinding", rb.RoleRef, rb.Subjects, "Role", role.Name)

	for k, o := range b.objects {
		var rules []rbacv1.PolicyRule
		switch o := o.(type) {
		case *rbacv1.ClusterRole:
			rules = o.Rules
		case *rbacv1.Role:
			rules = o.Rules
		}
		for _, r := range rules {
			for _, s := range slices.Concat(r.APIGroups, r.Resources, r.Verbs) {
				if strings.Contains(s, "*") {
					t.Errorf("%s: wildcard %q in %+v", k, s, r)
				}
			}
		}
	}
}

func checkBinding(t *testing.T, what string, ref rbacv1.RoleRef, subjects []rbacv1.Subject, kind, name string) {
	t.Helper()
	if ref.Kind != kind || ref.Name != name || ref.APIGroup != rbacv1.GroupName {
		t.Errorf("%s roleRef %+v, want %s %s", what, ref, kind, name)
	}
	want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: serviceAccount, Namespace: namespace}}
	if !slices.Equal(subjects, want) {
		t.Errorf("%s subjects %+v, want %+v", what, subjects, want)
	}
}

// checkSecretsGranted: every Secret a credential of corral.yaml names can
// be read, by name, through a Role bound to the agent in its namespace.
func checkSecretsGranted(t *testing.T, b *built, cfg *config.Config) {
	t.Helper()
	readable := map[string]bool{} // namespace/name
	for _, o := range b.objects {
		rb, ok := o.(*rbacv1.RoleBinding)
		if !ok || rb.RoleRef.Kind != "Role" || !slices.Contains(rb.Subjects, rbacv1.Subject{Kind: "ServiceAccount", Name: serviceAccount, Namespace: namespace}) {
			continue
		}
		role, ok := b.objects[key("Role", rb.Namespace, rb.RoleRef.Name)].(*rbacv1.Role)
		if !ok {
			t.Errorf("RoleBinding %s/%s: no Role %s", rb.Namespace, rb.Name, rb.RoleRef.Name)
			continue
		}
		for _, r := range role.Rules {
			if slices.Contains(r.Resources, "secrets") && slices.Contains(r.Verbs, "get") {
				for _, n := range r.ResourceNames {
					readable[role.Namespace+"/"+n] = true
				}
			}
		}
	}
	for _, tg := range cfg.Targets {
		for alias, c := range tg.Credentials {
			if c.Secret == nil {
				continue
			}
			if s := c.Secret.Namespace + "/" + c.Secret.Name; !readable[s] {
				t.Errorf("target %s credential %s: Secret %s is not granted to the agent (list it in a Role's resourceNames)", tg.Name, alias, s)
			}
		}
	}
}

func checkDaemonSet(t *testing.T, ds *appsv1.DaemonSet, cfg *config.Config) {
	t.Helper()
	pod := ds.Spec.Template.Spec
	if !pod.HostPID {
		t.Error("hostPID must be true: /proc must show the node's processes")
	}
	if pod.HostNetwork {
		t.Error("hostNetwork: the agent enters every network namespace itself")
	}
	if pod.HostIPC {
		t.Error("hostIPC is not needed")
	}
	if pod.ServiceAccountName != serviceAccount {
		t.Errorf("serviceAccountName %q", pod.ServiceAccountName)
	}
	if pod.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName %q", pod.PriorityClassName)
	}
	if !slices.ContainsFunc(pod.Tolerations, func(tl corev1.Toleration) bool {
		return tl.Operator == corev1.TolerationOpExists && tl.Key == "" && tl.Effect == ""
	}) {
		t.Errorf("tolerations %+v: want one tolerating every taint (operator Exists)", pod.Tolerations)
	}
	grace := int64(config.DefaultShutdownGrace.Seconds())
	if g := pod.TerminationGracePeriodSeconds; g == nil || *g <= grace || *g > grace+25 {
		t.Errorf("terminationGracePeriodSeconds %v: want a little more than the agent's shutdown grace (%ds)", g, grace)
	}
	if ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType || ds.Spec.UpdateStrategy.RollingUpdate == nil ||
		ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable == nil || ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable.String() != "1" {
		t.Errorf("updateStrategy %+v: want RollingUpdate with maxUnavailable 1", ds.Spec.UpdateStrategy)
	}
	if len(pod.InitContainers) != 0 || len(pod.Containers) != 1 {
		t.Fatalf("want exactly one container, got %d (and %d init containers)", len(pod.Containers), len(pod.InitContainers))
	}
	if psc := pod.SecurityContext; psc != nil && (psc.Sysctls != nil || psc.RunAsNonRoot != nil && *psc.RunAsNonRoot) {
		t.Errorf("pod securityContext %+v", psc)
	}
	c := pod.Containers[0]

	// Security context: not privileged, every capability dropped but the
	// documented ones.
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("container without securityContext.capabilities")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("the container must not be privileged")
	}
	if !slices.Equal(capNames(sc.Capabilities.Drop), []string{"ALL"}) {
		t.Errorf("capabilities.drop %v, want [ALL]", sc.Capabilities.Drop)
	}
	if got := sorted(capNames(sc.Capabilities.Add)); !slices.Equal(got, sorted(agentCaps)) {
		t.Errorf("capabilities.add %v, want exactly %v", got, sorted(agentCaps))
	}
	if sc.RunAsUser == nil || *sc.RunAsUser != 0 {
		t.Errorf("runAsUser %v: the agent runs as root", sc.RunAsUser)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem should be true")
	}
	if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccompProfile %+v: want RuntimeDefault", sc.SeccompProfile)
	}
	if sc.AppArmorProfile == nil || sc.AppArmorProfile.Type != corev1.AppArmorProfileTypeUnconfined {
		t.Errorf("appArmorProfile %+v: want Unconfined (the default profile forbids pinning in /sys/fs/bpf)", sc.AppArmorProfile)
	}

	// NODE_NAME for the pod informer.
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName"
	}) {
		t.Errorf("env %+v: want NODE_NAME from spec.nodeName", c.Env)
	}

	// Probes on the metrics listener, which must be reachable on the pod IP.
	host, port, err := net.SplitHostPort(cfg.MetricsAddress)
	if err != nil {
		t.Fatalf("metrics_address %q: the probes need it (%v)", cfg.MetricsAddress, err)
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		t.Errorf("metrics_address %q: kubelet probes the pod IP, not %s", cfg.MetricsAddress, host)
	}
	metricsPort, _ := strconv.Atoi(port)
	for what, p := range map[string]*corev1.Probe{"/readyz": c.ReadinessProbe, "/healthz": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("no httpGet probe on %s", what)
			continue
		}
		if p.HTTPGet.Path != what {
			t.Errorf("probe path %s, want %s", p.HTTPGet.Path, what)
		}
		if got := resolvePort(c, p.HTTPGet.Port.String()); got != metricsPort {
			t.Errorf("probe %s on port %s (%d), want metrics_address's %d", what, p.HTTPGet.Port.String(), got, metricsPort)
		}
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
	}

	// The command: the host's cgroup namespace, then the agent with the
	// mounted configuration, keeping its links pinned across restarts.
	cmd := slices.Concat(c.Command, c.Args)
	if len(cmd) < 3 || cmd[0] != "nsenter" || !slices.Contains(cmd, "--cgroup=/proc/1/ns/cgroup") {
		t.Errorf("command %v: want nsenter --cgroup=/proc/1/ns/cgroup first", cmd)
	}
	i := slices.Index(cmd, "agent")
	if i < 0 || !strings.HasSuffix(cmd[i-1], "/corral") || i+2 >= len(cmd) || cmd[i+1] != "--config" {
		t.Fatalf("command %v: want .../corral agent --config FILE", cmd)
	}
	if !slices.Contains(cmd[i:], "--keep-pinned") {
		t.Errorf("command %v: want --keep-pinned (fail closed across restarts)", cmd)
	}
	configFile := cmd[i+2]

	// Mounts: what each path of the configuration needs.
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	hostPath := func(mountPath string) string {
		m, ok := mounts[mountPath]
		if !ok {
			t.Errorf("nothing is mounted at %s", mountPath)
			return ""
		}
		v := volumes[m.Name]
		if v.HostPath == nil {
			t.Errorf("%s: volume %s is not a hostPath", mountPath, m.Name)
			return ""
		}
		return v.HostPath.Path
	}
	if m, ok := mounts[filepath.Dir(configFile)]; !ok || volumes[m.Name].ConfigMap == nil || filepath.Base(configFile) != "corral.yaml" {
		t.Errorf("--config %s is not the corral.yaml of a mounted ConfigMap", configFile)
	}
	for mountPath, want := range map[string]string{
		"/sys/fs/bpf":                 "/sys/fs/bpf",
		"/sys/fs/cgroup":              "/sys/fs/cgroup",
		cfg.StateDir:                  cfg.StateDir,
		filepath.Dir(cfg.AdminSocket): filepath.Dir(cfg.AdminSocket),
	} {
		if got := hostPath(mountPath); got != want {
			t.Errorf("%s: hostPath %q, want %q", mountPath, got, want)
		}
	}
	if !strings.HasPrefix(cfg.BPFPinDir, "/sys/fs/bpf/") {
		t.Errorf("bpf_pin_dir %s is not on the host's bpffs (/sys/fs/bpf)", cfg.BPFPinDir)
	}
	if !strings.HasPrefix(cfg.Recording.Dir, cfg.StateDir+"/") || !strings.HasPrefix(cfg.AuditLog, cfg.StateDir+"/") {
		t.Errorf("recording.dir %s and audit_log %s should be under state_dir %s (the hostPath that outlives the pod)", cfg.Recording.Dir, cfg.AuditLog, cfg.StateDir)
	}
	if cfg.CgroupPath != "" {
		t.Errorf("cgroup_path %q: want the default, the host's cgroup2 root", cfg.CgroupPath)
	}
	for p, m := range mounts {
		if m.MountPropagation != nil && *m.MountPropagation == corev1.MountPropagationBidirectional {
			t.Errorf("%s: Bidirectional propagation needs a privileged container", p)
		}
		if p == "/proc" || strings.HasPrefix(p, "/proc/") {
			t.Errorf("%s: /proc comes with hostPID; runtimes refuse mounts over it", p)
		}
	}
	if m := mounts["/sys/fs/cgroup"]; !m.ReadOnly {
		t.Error("/sys/fs/cgroup should be read-only: the agent only reads it")
	}
}

func capNames(cs []corev1.Capability) []string {
	var out []string
	for _, c := range cs {
		out = append(out, string(c))
	}
	return out
}

func resolvePort(c corev1.Container, port string) int {
	if n, err := strconv.Atoi(port); err == nil {
		return n
	}
	for _, p := range c.Ports {
		if p.Name == port {
			return int(p.ContainerPort)
		}
	}
	return -1
}

// checkCRDs: every CRD file of daemonset/base/crds is listed in its
// kustomization (so it is applied), and is a corral.dev definition.
func checkCRDs(t *testing.T, b *built) {
	t.Helper()
	dir := filepath.Join(repo(t), "daemonset", "base", "crds")
	files, err := filepath.Glob(filepath.Join(dir, "*.y*ml"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range documents(t, raw) {
			tm, obj, err := decodeStrict(doc)
			if err != nil || tm.Kind != "CustomResourceDefinition" {
				t.Errorf("%s: want only CustomResourceDefinitions (apiextensions.k8s.io/v1): %s %v", f, tm.Kind, err)
				continue
			}
			md, _ := obj.(map[string]any)["metadata"].(map[string]any)
			name, _ := md["name"].(string)
			want[name] = filepath.Base(f)
		}
	}
	for name, file := range want {
		if _, ok := b.crds[name]; !ok {
			t.Errorf("CRD %s (crds/%s) is not in the build: list the file in crds/kustomization.yaml", name, file)
		}
	}
	plurals := map[string]bool{}
	for name, crd := range b.crds {
		spec, _ := crd["spec"].(map[string]any)
		if spec["group"] != "corral.dev" {
			t.Errorf("CRD %s: group %v, want corral.dev", name, spec["group"])
		}
		names, _ := spec["names"].(map[string]any)
		if p, ok := names["plural"].(string); ok {
			plurals[p] = true
		}
	}
	if len(b.crds) == 0 {
		t.Log("no CRD files in daemonset/base/crds yet: nothing to check against the ClusterRole")
		return
	}
	for res := range clusterRules {
		if g, r, _ := strings.Cut(res, "/"); g == "corral.dev" && !strings.Contains(r, "/") && !plurals[r] {
			t.Errorf("the ClusterRole grants %s, which no CRD defines", res)
		}
	}
}
