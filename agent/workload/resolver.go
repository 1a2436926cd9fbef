package workload

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Facts are what the kernel recorded when the connection was opened. They
// are authoritative: they cannot be forged by the workload and stay true
// after the process has exited.
type Facts struct {
	CgroupID uint64
	// PID is the tgid in the initial pid namespace.
	PID uint32
	// UID is the real uid in the initial user namespace.
	UID uint32
	// Comm is the connecting thread's name.
	Comm string
}

// PodLookup supplies pod metadata by pod UID, typically from an informer
// restricted to this node. Identify does not copy what it returns, so the
// Pod and its Labels must not be modified afterwards. A lookup may return a
// different UID than asked for: a static pod's cgroup carries the kubelet's
// hash, its mirror pod in the API another UID.
type PodLookup interface {
	Pod(uid string) (Pod, bool)
}

const (
	// defaultMaxProcs bounds the process cache to what a busy node keeps
	// connecting from without growing with every short-lived process.
	defaultMaxProcs = 4096
	// maxPlacements bounds the per-cgroup cache; cgroup ids are never
	// reused, so entries only go stale by the cgroup disappearing.
	maxPlacements = 16384
	maxUsers      = 1024
	// userTTL lets users created or renamed after the agent started show up.
	userTTL = 5 * time.Minute
)

// Resolver turns kernel facts into an Identity. Unit, pod and container are
// parsed only from the part of a cgroup path below directories that only root
// can write to, see the package documentation. It is safe for concurrent use.
type Resolver struct {
	cg       *Cgroups
	procRoot string
	log      *slog.Logger
	pods     atomic.Pointer[podLookupBox]
	maxProcs int

	mu sync.Mutex
	// procs is keyed by pid; the StartTime in each entry is compared with
	// the live one on every hit, so a reused pid never gets the previous
	// owner's facts. Comm is compared too, see process.
	procs      map[uint32]Process
	placements map[uint64]placed
	users      map[uint32]userEntry
}

type podLookupBox struct{ PodLookup }

type placed struct {
	path string
	pl   Placement
}

type userEntry struct {
	name string
	at   time.Time
}

// NewResolver resolves cgroups with cg (nil when the host has no cgroup2:
// identities then carry no cgroup placement) and processes under procRoot.
func NewResolver(cg *Cgroups, procRoot string, log *slog.Logger) *Resolver {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Resolver{
		cg:         cg,
		procRoot:   procRoot,
		log:        log,
		maxProcs:   defaultMaxProcs,
		procs:      make(map[uint32]Process),
		placements: make(map[uint64]placed),
		users:      make(map[uint32]userEntry),
	}
}

// SetPods installs (or, with nil, removes) the source of pod metadata. It
// may be called at any time, e.g. once the informer has synced.
func (r *Resolver) SetPods(p PodLookup) {
	if p == nil {
		r.pods.Store(nil)
		return
	}
	r.pods.Store(&podLookupBox{p})
}

// Identify describes the workload behind f. It never fails: what cannot be
// learned any more (the process exited, the cgroup was removed) is left
// empty, and the kernel facts are always kept.
func (r *Resolver) Identify(f Facts) Identity {
	id := Identity{CgroupID: f.CgroupID, PID: f.PID, UID: f.UID, Comm: f.Comm}
	if p, ok := r.placement(f.CgroupID); ok {
		id.CgroupPath = p.path
		id.Unit = p.pl.Unit
		id.ContainerID = p.pl.ContainerID
		id.Runtime = p.pl.Runtime
		if p.pl.PodUID != "" {
			id.Pod = r.pod(p.pl.PodUID, p.pl.ContainerID)
		}
	}
	if p, ok := r.process(f.PID); ok {
		if f.Comm != "" && p.Comm != f.Comm && !r.threadNamed(f.PID, f.Comm) {
			// No thread bears the name the connecting one had: the process
			// has run another program since it connected, and what /proc
			// says of it now is not what made the connection.
			r.log.Warn("the process that connected has run another program since; its executable is not taken", "pid", f.PID, "comm", f.Comm, "now", p.Comm)
		} else {
			id.Exe = p.Exe
			id.Cmdline = p.Cmdline
		}
		if id.Comm == "" {
			id.Comm = p.Comm
		}
	}
	id.User = r.userName(f.UID)
	return id
}

func (r *Resolver) placement(cgroupID uint64) (placed, bool) {
	if r.cg == nil || cgroupID == 0 {
		return placed{}, false
	}
	r.mu.Lock()
	p, ok := r.placements[cgroupID]
	r.mu.Unlock()
	if ok {
		return p, true
	}
	path, err := r.cg.Path(cgroupID)
	if err != nil {
		r.log.Warn("cgroup of a connection not resolved", "cgroup_id", cgroupID, "err", err)
		return placed{}, false
	}
	p = placed{path: path, pl: ParseCgroupPath(r.trustedPrefix(path))}
	if full := ParseCgroupPath(path); full.PodUID != p.pl.PodUID || full.ContainerID != p.pl.ContainerID || full.Runtime != p.pl.Runtime {
		r.log.Warn("cgroup names a pod or container inside a directory not owned by root; not believed",
			"cgroup_id", cgroupID, "cgroup_path", path, "pod_uid", full.PodUID, "container_id", full.ContainerID)
	}
	r.mu.Lock()
	if len(r.placements) >= maxPlacements {
		evictOne(r.placements)
	}
	r.placements[cgroupID] = p
	r.mu.Unlock()
	return p, true
}

// TrustedCgroup is the part of a cgroup path only root could have made
// (see trustedPrefix): where a workload runs, whatever cgroups it made
// below a directory delegated to it.
func (r *Resolver) TrustedCgroup(path string) string { return r.trustedPrefix(path) }

// trustedPrefix cuts p after the last element only root could have created:
// every directory above it is root-owned and writable by nobody else. Below
// a delegated directory (a user's systemd manager, a rootless runtime) the
// owner can name cgroups as it likes, kubepods look-alikes included.
func (r *Resolver) trustedPrefix(p string) string {
	dir := r.cg.Root()
	var kept []string
	for e := range strings.SplitSeq(p, "/") {
		if e == "" {
			continue
		}
		if !rootOnlyDir(dir) {
			break
		}
		kept = append(kept, e)
		dir = filepath.Join(dir, e)
	}
	return "/" + strings.Join(kept, "/")
}

func (r *Resolver) pod(uid, containerID string) Pod {
	if b := r.pods.Load(); b != nil {
		if p, ok := b.Pod(uid); ok {
			if p.UID == "" {
				p.UID = uid
			}
			if cl, ok := b.PodLookup.(ContainerLookup); ok && containerID != "" {
				if c, ok := cl.Container(uid, containerID); ok {
					p.Container, p.Image = c.Name, c.Image
				}
			}
			return p
		}
	}
	return Pod{UID: uid}
}

func (r *Resolver) process(pid uint32) (Process, bool) {
	if pid == 0 {
		return Process{}, false
	}
	comm, start, err := readStat(r.procRoot, pid)
	if err != nil {
		r.forgetProcess(pid)
		r.log.Debug("process exited before it was identified", "pid", pid, "err", err)
		return Process{}, false
	}
	r.mu.Lock()
	p, ok := r.procs[pid]
	r.mu.Unlock()
	// exec keeps pid and start time but renames the process after the new
	// program, so comparing comm, which the same read of stat yields, catches the common
	// case of a process that connected and then exec'd something else. A
	// re-exec of a program with the same name keeps the earlier command line.
	if ok && p.StartTime == start && p.Comm == comm {
		return p, true
	}
	p, err = readProcess(r.procRoot, pid, r.userName)
	if err == nil && p.StartTime != start {
		// The pid changed hands between the two reads: the connection was
		// not made by what is there now.
		r.log.Debug("process exited before it was identified", "pid", pid, "reason", "pid reused")
		r.forgetProcess(pid)
		return Process{}, false
	}
	if err != nil {
		r.forgetProcess(pid)
		r.log.Debug("process facts unavailable", "pid", pid, "err", err)
		return Process{}, false
	}
	r.mu.Lock()
	if _, present := r.procs[pid]; !present && len(r.procs) >= r.maxProcs {
		evictOne(r.procs)
	}
	r.procs[pid] = p
	r.mu.Unlock()
	return p, true
}

// threadNamed reports whether a thread of process pid is named comm: the
// connecting thread may have a name of its own (pthread_setname_np).
func (r *Resolver) threadNamed(pid uint32, comm string) bool {
	dir := filepath.Join(r.procRoot, strconv.FormatUint(uint64(pid), 10), "task")
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, t := range tasks {
		if b, err := os.ReadFile(filepath.Join(dir, t.Name(), "comm")); err == nil && strings.TrimSuffix(string(b), "\n") == comm {
			return true
		}
	}
	return false
}

func (r *Resolver) forgetProcess(pid uint32) {
	r.mu.Lock()
	delete(r.procs, pid)
	r.mu.Unlock()
}

func (r *Resolver) userName(uid uint32) string {
	now := time.Now()
	r.mu.Lock()
	e, ok := r.users[uid]
	r.mu.Unlock()
	if ok && now.Sub(e.at) < userTTL {
		return e.name
	}
	name := lookupUser(uid)
	r.mu.Lock()
	if _, present := r.users[uid]; !present && len(r.users) >= maxUsers {
		evictOne(r.users)
	}
	r.users[uid] = userEntry{name: name, at: now}
	r.mu.Unlock()
	return name
}

// evictOne drops an arbitrary entry; Go's randomised map order makes that a
// cheap random eviction, which is all a bounded cache of cheap-to-rebuild
// entries needs.
func evictOne[K comparable, V any](m map[K]V) {
	for k := range m {
		delete(m, k)
		return
	}
}
