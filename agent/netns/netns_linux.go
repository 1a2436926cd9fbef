package netns

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ID identifies a network namespace by the inode of its nsfs file.
type ID struct {
	Dev uint64
	Ino uint64
}

// Namespace is one network namespace found on the host, with a path that
// can be opened to enter it while the process that holds it lives.
type Namespace struct {
	ID   ID
	Path string
}

// Scan lists the distinct network namespaces of all processes under
// procRoot (normally /proc). Processes that exit during the scan are
// skipped.
func Scan(procRoot string) ([]Namespace, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", procRoot, err)
	}
	seen := map[ID]bool{}
	var out []Namespace
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		path := filepath.Join(procRoot, e.Name(), "ns", "net")
		id, err := Stat(path)
		if err != nil {
			continue
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, Namespace{ID: id, Path: path})
		}
	}
	return out, nil
}

// Stat returns the namespace id of an nsfs path such as /proc/PID/ns/net or
// a bind mount under /run/netns.
func Stat(path string) (ID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return ID{}, err
	}
	return ID{Dev: st.Dev, Ino: st.Ino}, nil
}

// Do runs fn on a thread that has entered the network namespace at path.
// Sockets fn creates belong to that namespace for their whole life.
func Do(path string, fn func() error) error {
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer target.Close()

	// A goroutine of its own: should the thread fail to return to its
	// namespace, it exits still locked and the runtime discards the thread,
	// so no other code ever runs in the wrong namespace.
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("open current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("enter network namespace %s: %w", path, err)
			return
		}
		fnErr := fn()
		if err := netns.Set(orig); err != nil {
			done <- errors.Join(fnErr, fmt.Errorf("return to the original network namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		done <- fnErr
	}()
	return <-done
}

// Cookie returns the kernel's network namespace cookie of a socket: the
// value the eBPF programs see through bpf_get_netns_cookie.
func Cookie(c syscall.RawConn) (uint64, error) {
	var (
		cookie uint64
		serr   error
	)
	err := c.Control(func(fd uintptr) {
		cookie, serr = unix.GetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	})
	if err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, fmt.Errorf("SO_NETNS_COOKIE: %w", serr)
	}
	return cookie, nil
}

// Listen opens a TCP listener on addr inside the namespace at path.
func Listen(path, network, addr string) (*net.TCPListener, error) {
	var l net.Listener
	err := Do(path, func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		return nil, err
	}
	return l.(*net.TCPListener), nil
}
