package workload

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// fileIDKernfs is the kernel's FILEID_KERNFS handle type: a cgroup2 file
// handle is the 64-bit kernfs node id, which is the cgroup id.
const fileIDKernfs = 0xfe

const (
	// walkInterval bounds full-tree walks: a flood of connects from unknown
	// cgroup ids must not turn into a flood of walks over a tree with
	// thousands of directories.
	walkInterval = time.Second
	// maxPaths bounds the id → path cache between walks, which rebuild it.
	maxPaths = 1 << 16
)

// Cgroups resolves cgroup ids to paths in one cgroup2 mount. It is safe for
// concurrent use.
type Cgroups struct {
	root string

	// noHandles is set once the kernel refuses file handles (no
	// CAP_DAC_READ_SEARCH, no kernfs export support), so every later miss
	// goes straight to the walk instead of failing a syscall first.
	noHandles atomic.Bool

	mu    sync.Mutex
	paths map[uint64]string

	// walkMu serialises walks; it is never held together with mu.
	walkMu   sync.Mutex
	lastWalk time.Time
}

// NewCgroups prepares lookups under root, which must be the root of a cgroup2
// mount (see Cgroup2Root).
func NewCgroups(root string) (*Cgroups, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("workload: cgroup2 root %q: %w", root, err)
	}
	// /proc/self/fd links are canonical; the prefix stripped from them must
	// be too.
	abs, err = filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("workload: cgroup2 root %q: %w", root, err)
	}
	if err := checkCgroup2(abs); err != nil {
		return nil, err
	}
	if abs != "/" {
		var self, parent unix.Stat_t
		if err := unix.Stat(abs, &self); err != nil {
			return nil, fmt.Errorf("workload: cgroup2 root %q: %w", abs, err)
		}
		if err := unix.Stat(filepath.Dir(abs), &parent); err != nil {
			return nil, fmt.Errorf("workload: cgroup2 root %q: %w", abs, err)
		}
		// Paths are reported relative to this directory and matched against
		// what the kubelet and systemd created, so a cgroup below the mount
		// root would silently shorten every path.
		if self.Dev == parent.Dev {
			return nil, fmt.Errorf("workload: %s is inside a cgroup2 mount, not its root", abs)
		}
	}
	return &Cgroups{root: abs, paths: make(map[uint64]string)}, nil
}

// Root returns the mount root paths are relative to.
func (c *Cgroups) Root() string { return c.root }

// Path returns the cgroup's path relative to the root: "/" for the root
// itself, else "/a/b". Without file handles a miss walks the tree, at most
// once a second; a cgroup created since the last walk may then be reported
// as ErrNotFound until the next one is allowed.
func (c *Cgroups) Path(id uint64) (string, error) {
	if id == 0 {
		return "", fmt.Errorf("workload: cgroup id 0: %w", ErrNotFound)
	}
	if p, ok := c.cached(id); ok {
		return p, nil
	}
	if !c.noHandles.Load() {
		p, err := c.pathByHandle(id)
		if err == nil {
			c.store(id, p)
			return p, nil
		}
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
			c.noHandles.Store(true)
		}
	}
	return c.pathByWalk(id)
}

func (c *Cgroups) cached(id uint64) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.paths[id]
	return p, ok
}

func (c *Cgroups) store(id uint64, p string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.paths) >= maxPaths {
		// Cgroup ids are never reused, so any entry is safe to drop; the next
		// walk rebuilds the map from what still exists.
		for k := range c.paths {
			delete(c.paths, k)
			break
		}
	}
	c.paths[id] = p
}

// pathByHandle asks the kernel directly: one open_by_handle_at and one
// readlink, however large the tree.
func (c *Cgroups) pathByHandle(id uint64) (string, error) {
	mfd, err := unix.Open(c.root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("workload: open %s: %w", c.root, err)
	}
	defer unix.Close(mfd)
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], id)
	fd, err := unix.OpenByHandleAt(mfd, unix.NewFileHandle(fileIDKernfs, b[:]), unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		return "", fmt.Errorf("workload: open_by_handle_at cgroup %d: %w", id, err)
	}
	defer unix.Close(fd)
	// Kernfs ids also number the files inside cgroup directories; only a
	// directory whose inode is the id is the cgroup asked for.
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", fmt.Errorf("workload: fstat cgroup %d: %w", id, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Ino != id {
		return "", fmt.Errorf("workload: cgroup id %d: %w", id, ErrNotFound)
	}
	link, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return "", fmt.Errorf("workload: cgroup %d: %w", id, err)
	}
	if trimmed, ok := strings.CutSuffix(link, " (deleted)"); ok && !sameInode(link, id) {
		link = trimmed
	}
	rel, ok := relPath(c.root, link)
	if !ok {
		return "", fmt.Errorf("workload: cgroup %d resolved to %s, outside %s: %w", id, link, c.root, ErrNotFound)
	}
	return rel, nil
}

// sameInode tells a directory really named "x (deleted)" from the suffix the
// kernel appends to a removed one.
func sameInode(p string, id uint64) bool {
	var st unix.Stat_t
	return unix.Lstat(p, &st) == nil && st.Ino == id
}

// pathByWalk is the fallback for kernels or capabilities without file
// handles: on cgroup2 a directory's inode number is its cgroup id.
func (c *Cgroups) pathByWalk(id uint64) (string, error) {
	c.walkMu.Lock()
	defer c.walkMu.Unlock()
	// Another caller may have walked while this one waited.
	if p, ok := c.cached(id); ok {
		return p, nil
	}
	if since := time.Since(c.lastWalk); !c.lastWalk.IsZero() && since < walkInterval {
		return "", fmt.Errorf("workload: cgroup id %d under %s (last walked %v ago): %w", id, c.root, since.Round(time.Millisecond), ErrNotFound)
	}
	c.lastWalk = time.Now()
	found, err := c.walk()
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.paths = found
	c.mu.Unlock()
	if p, ok := found[id]; ok {
		return p, nil
	}
	return "", fmt.Errorf("workload: cgroup id %d under %s: %w", id, c.root, ErrNotFound)
}

func (c *Cgroups) walk() (map[uint64]string, error) {
	found := make(map[uint64]string)
	err := filepath.WalkDir(c.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == c.root {
				return err
			}
			// Cgroups come and go during the walk; a vanished one is simply
			// not there any more.
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return filepath.SkipDir
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return filepath.SkipDir
		}
		if rel, ok := relPath(c.root, p); ok {
			found[st.Ino] = rel
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("workload: walk %s: %w", c.root, err)
	}
	return found, nil
}

func relPath(root, p string) (string, bool) {
	if p == root {
		return "/", true
	}
	if root == "/" {
		return p, strings.HasPrefix(p, "/")
	}
	rest, ok := strings.CutPrefix(p, root)
	if !ok || !strings.HasPrefix(rest, "/") {
		return "", false
	}
	return rest, true
}

// ID returns the cgroup id of a cgroup2 directory, as bpf_get_current_cgroup_id
// reports it for tasks inside.
func ID(path string) (uint64, error) {
	if err := checkCgroup2(path); err != nil {
		return 0, err
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("workload: cgroup %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return 0, fmt.Errorf("workload: cgroup %s: not a directory", path)
	}
	return st.Ino, nil
}

// cgroup2Candidates are where unified and hybrid hosts mount cgroup2.
var cgroup2Candidates = []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}

// Cgroup2Root finds the cgroup2 mount: /sys/fs/cgroup on unified hosts,
// /sys/fs/cgroup/unified on hybrid ones.
func Cgroup2Root() (string, error) {
	for _, p := range cgroup2Candidates {
		if checkCgroup2(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("workload: no cgroup2 mount at %s", strings.Join(cgroup2Candidates, " or "))
}

func checkCgroup2(p string) error {
	var sfs unix.Statfs_t
	if err := unix.Statfs(p, &sfs); err != nil {
		return fmt.Errorf("workload: statfs %s: %w", p, err)
	}
	if sfs.Type != unix.CGROUP2_SUPER_MAGIC {
		return fmt.Errorf("workload: %s is not on a cgroup2 file system (magic %#x)", p, sfs.Type)
	}
	return nil
}

// SelfPath returns the calling process's cgroup2 path from /proc/self/cgroup.
func SelfPath() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("workload: %w", err)
	}
	return parseProcCgroup(b)
}

// parseProcCgroup picks the cgroup2 entry, hierarchy 0 with no controllers,
// out of a /proc/<pid>/cgroup file.
func parseProcCgroup(b []byte) (string, error) {
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if p, ok := bytes.CutPrefix(line, []byte("0::")); ok && len(p) > 0 {
			return string(p), nil
		}
	}
	return "", errors.New("workload: no cgroup2 entry (0::) in /proc/self/cgroup")
}

// rootOnlyDir reports whether only root can create entries in directory p:
// owned by uid 0 and writable by nobody else.
func rootOnlyDir(p string) bool {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Uid == 0 && st.Mode&0o022 == 0
}
