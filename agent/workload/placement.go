package workload

import "strings"

// Placement is what a cgroup path says about the workload in it.
type Placement struct {
	// Unit is set only when the path names neither a pod nor a container:
	// inside those, a .service or .scope belongs to the container's own
	// init, or to the runtime that hosts it, not to the workload.
	Unit string
	// PodUID is the pod's metadata.uid: a UUID, or the 32 hex digits the
	// kubelet derives for static pods.
	PodUID string
	// QoS is set with PodUID.
	QoS         string
	ContainerID string
	// Runtime may be set with an empty ContainerID: CRI-O's conmon runs in
	// a scope of its own that is runtime plumbing, not the container.
	Runtime string
}

// containerPrefixes are the leaf names runtimes give container cgroups, with
// or without systemd's ".scope". The conmon prefix must precede "crio-".
var containerPrefixes = []struct {
	prefix  string
	runtime string
	conmon  bool
}{
	{"cri-containerd-", RuntimeContainerd, false},
	{"crio-conmon-", RuntimeCRIO, true},
	{"crio-", RuntimeCRIO, false},
	{"docker-", RuntimeDocker, false},
}

// colonRuntimes are the runtime names containerd and CRI-O write into the
// "slice:prefix:id" form, which shows up verbatim as a directory name when a
// runtime configured for the systemd driver ends up creating cgroups itself.
var colonRuntimes = map[string]string{
	"cri-containerd": RuntimeContainerd,
	"crio":           RuntimeCRIO,
	"docker":         RuntimeDocker,
}

// parseState remembers what the previous path element allows next: the
// cgroupfs driver spells the hierarchy one plain directory per level, so a
// bare hex name is a container only right below a pod or /docker.
type parseState int

const (
	stateNone parseState = iota
	stateKubepods
	stateQoS
	statePod
	stateDocker
)

// ParseCgroupPath reads the systemd unit, pod and container a cgroup path
// names. It understands the kubelet's systemd and cgroupfs driver layouts,
// containerd, CRI-O and docker leaf names, and finds them at any depth, since
// kind, k3s and docker-in-docker nest whole hierarchies under a prefix.
// When several are nested, the innermost pod wins and, within it or outside
// any pod, the outermost container: that is the one the pod's status, or the
// host's runtime, knows by that id. Elements that only look like a pod or
// container (bad UID, bad id) are ignored whole, never half-used.
//
// The path is taken at its word; see Resolver for which parts of a real
// path deserve that.
func ParseCgroupPath(p string) Placement {
	var (
		pl            Placement
		unit          string
		state         parseState
		qos           string
		haveContainer bool
	)
	setPod := func(uid, q string) {
		pl = Placement{PodUID: uid, QoS: q}
		haveContainer = false
	}
	setContainer := func(runtime, id string) {
		if haveContainer {
			return
		}
		pl.Runtime, pl.ContainerID = runtime, id
		haveContainer = true
	}
	for e := range strings.SplitSeq(p, "/") {
		if e == "" {
			continue
		}
		next := stateNone
		switch {
		case e == "kubepods":
			next, qos = stateKubepods, ""
		case state == stateKubepods && (e == QoSBurstable || e == QoSBestEffort):
			next, qos = stateQoS, e
		case (state == stateKubepods || state == stateQoS) && strings.HasPrefix(e, "pod"):
			if uid := e[len("pod"):]; validPodUID(uid) {
				if qos == "" {
					qos = QoSGuaranteed
				}
				setPod(uid, qos)
				next = statePod
			}
		case e == "docker":
			next = stateDocker
		case (state == statePod || state == stateDocker) && validContainerID(e):
			runtime := ""
			if state == stateDocker {
				runtime = RuntimeDocker
			}
			setContainer(runtime, e)
		default:
			if runtime, id, isContainer, ok := containerName(e); isContainer {
				if ok {
					setContainer(runtime, id)
				}
			} else if q, uid, runtime, id, ok := colonName(e); ok {
				setPod(uid, q)
				setContainer(runtime, id)
			} else if q, uid, isKube, ok := kubeSlice(e); isKube {
				if ok && uid != "" {
					setPod(uid, q)
					next = statePod
				}
			} else if isUnit(e) {
				unit = e
			}
		}
		state = next
	}
	if pl.PodUID == "" && pl.ContainerID == "" && pl.Runtime == "" {
		pl.Unit = unit
	}
	return pl
}

// containerName recognises runtime-prefixed container leaves. isContainer
// reports that e carries a runtime's naming, so that a malformed one is not
// mistaken for a systemd unit either.
func containerName(e string) (runtime, id string, isContainer, ok bool) {
	name, scope := strings.CutSuffix(e, ".scope")
	for _, c := range containerPrefixes {
		rest, found := strings.CutPrefix(name, c.prefix)
		if !found {
			continue
		}
		if !validContainerID(rest) {
			// "docker-compose@x.service" is a unit, not a broken container.
			return "", "", scope, false
		}
		if c.conmon {
			return c.runtime, "", true, true
		}
		return c.runtime, rest, true, true
	}
	return "", "", false, false
}

// colonName parses "kubepods-...-pod<uid>.slice:<runtime>:<id>".
func colonName(e string) (qos, uid, runtime, id string, ok bool) {
	slice, rest, found := strings.Cut(e, ":")
	if !found {
		return "", "", "", "", false
	}
	name, id, found := strings.Cut(rest, ":")
	if !found || !validContainerID(id) {
		return "", "", "", "", false
	}
	runtime, known := colonRuntimes[name]
	if !known {
		return "", "", "", "", false
	}
	qos, uid, _, ok = kubeSlice(slice)
	if !ok || uid == "" {
		return "", "", "", "", false
	}
	return qos, uid, runtime, id, true
}

// kubeSlice parses the systemd driver's slice names. systemd encodes the
// slice hierarchy in the name with "-" separators (a literal dash is escaped
// as \x2d), so the last slice alone says prefix, QoS class and pod, and the
// kubelet writes the pod UID's dashes as underscores. isKube reports a
// "kubepods" component; ok that the rest is well formed.
func kubeSlice(e string) (qos, uid string, isKube, ok bool) {
	name, found := strings.CutSuffix(e, ".slice")
	if !found {
		return "", "", false, false
	}
	parts := strings.Split(name, "-")
	i := 0
	for i < len(parts) && parts[i] != "kubepods" {
		if parts[i] == "" {
			return "", "", false, false
		}
		i++
	}
	if i == len(parts) {
		return "", "", false, false
	}
	rest := parts[i+1:]
	qos = QoSGuaranteed
	if len(rest) > 0 && (rest[0] == QoSBurstable || rest[0] == QoSBestEffort) {
		qos, rest = rest[0], rest[1:]
	}
	switch {
	case len(rest) == 0:
		return "", "", true, true
	case len(rest) == 1 && strings.HasPrefix(rest[0], "pod"):
		raw := rest[0][len("pod"):]
		if strings.Contains(raw, "-") {
			return "", "", true, false
		}
		uid := strings.ReplaceAll(raw, "_", "-")
		if !validPodUID(uid) {
			return "", "", true, false
		}
		return qos, uid, true, true
	default:
		return "", "", true, false
	}
}

func isUnit(e string) bool {
	for _, suffix := range []string{".service", ".scope"} {
		if name, ok := strings.CutSuffix(e, suffix); ok && name != "" {
			return true
		}
	}
	return false
}

// validPodUID accepts the two forms the kubelet produces: API-server UUIDs
// and the unhyphenated md5 it assigns to static pods (kube-apiserver, etcd,
// …), whose mirror pods carry it in the kubernetes.io/config.mirror
// annotation.
func validPodUID(s string) bool {
	switch len(s) {
	case 32:
		return isLowerHex(s)
	case 36:
		for i := 0; i < len(s); i++ {
			switch i {
			case 8, 13, 18, 23:
				if s[i] != '-' {
					return false
				}
			default:
				if !isLowerHexByte(s[i]) {
					return false
				}
			}
		}
		return true
	default:
		return false
	}
}

// validContainerID accepts full 64-digit ids and the shortened forms some
// tools write, but nothing shorter than docker's 12-digit short id: fewer
// digits are more likely a coincidence than an id.
func validContainerID(s string) bool {
	return len(s) >= 12 && len(s) <= 64 && isLowerHex(s)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isLowerHexByte(s[i]) {
			return false
		}
	}
	return true
}

func isLowerHexByte(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f'
}
