package netns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Registry is where listeners are announced to the kernel (the eBPF maps).
type Registry interface {
	SetListener(netnsCookie uint64, port4, port6 uint16) error
	DeleteListener(netnsCookie uint64) error
}

// Listener is corral's pair of loopback listeners in one namespace. V6 is
// nil where the namespace has no usable ::1.
type Listener struct {
	NS     Namespace
	Cookie uint64
	V4     *net.TCPListener
	V6     *net.TCPListener
}

// Port returns the port of the IPv4 listener.
func (l *Listener) Port() uint16 { return uint16(l.V4.Addr().(*net.TCPAddr).Port) }

func (l *Listener) close() {
	l.V4.Close()
	if l.V6 != nil {
		l.V6.Close()
	}
}

// Manager keeps one Listener in every network namespace that holds a
// process, and only there: a namespace whose last process is gone has its
// listener closed, which also lets the kernel free the namespace.
type Manager struct {
	procRoot string
	reg      Registry
	mark     uint32
	serve    func(*Listener)
	log      *slog.Logger

	kick chan struct{}
	mu   sync.Mutex
	open map[ID]*Listener
}

// NewManager returns a manager that scans procRoot, marks listeners with
// mark (0: none), announces them to reg and hands each new one to serve
// (which must not block).
func NewManager(procRoot string, reg Registry, mark uint32, serve func(*Listener), log *slog.Logger) *Manager {
	return &Manager{
		procRoot: procRoot,
		reg:      reg,
		mark:     mark,
		serve:    serve,
		log:      log,
		kick:     make(chan struct{}, 1),
		open:     map[ID]*Listener{},
	}
}

// Sync scans once: opens listeners in new namespaces and closes those of
// namespaces that are gone. Failing to open one listener is logged, not
// fatal: connects from that namespace are refused by the kernel until a
// later scan succeeds.
func (m *Manager) Sync() error {
	nss, err := Scan(m.procRoot)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	live := make(map[ID]bool, len(nss))
	for _, ns := range nss {
		live[ns.ID] = true
		if m.open[ns.ID] != nil {
			continue
		}
		l, err := m.openIn(ns)
		if err != nil {
			if errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ESRCH) {
				// Loopback down, or the process left: nothing there can
				// reach a loopback listener anyway.
				m.log.Debug("no listener in network namespace", "netns", ns.Path, "err", err)
			} else {
				m.log.Warn("cannot open listener in network namespace; connects from it are refused", "netns", ns.Path, "err", err)
			}
			continue
		}
		m.open[ns.ID] = l
		m.log.Debug("listening in network namespace", "netns", ns.Path, "netns_inode", ns.ID.Ino, "cookie", l.Cookie, "port", l.Port())
		m.serve(l)
	}
	for id, l := range m.open {
		if !live[id] {
			m.drop(id, l)
		}
	}
	return nil
}

func (m *Manager) openIn(ns Namespace) (*Listener, error) {
	l := &Listener{NS: ns}
	err := Do(ns.Path, func() error {
		v4, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		l.V4 = v4.(*net.TCPListener)
		port := strconv.Itoa(int(l.Port()))
		if v6, err := net.Listen("tcp6", "[::1]:"+port); err == nil {
			l.V6 = v6.(*net.TCPListener)
		} else if v6, err := net.Listen("tcp6", "[::1]:0"); err == nil {
			l.V6 = v6.(*net.TCPListener)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := m.announce(l); err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

func (m *Manager) announce(l *Listener) error {
	rc, err := l.V4.SyscallConn()
	if err != nil {
		return err
	}
	if l.Cookie, err = Cookie(rc); err != nil {
		return err
	}
	if err := m.setMark(rc); err != nil {
		return err
	}
	var port6 uint16
	if l.V6 != nil {
		rc6, err := l.V6.SyscallConn()
		if err == nil {
			err = m.setMark(rc6)
		}
		if err != nil {
			return err
		}
		port6 = uint16(l.V6.Addr().(*net.TCPAddr).Port)
	}
	if err := m.reg.SetListener(l.Cookie, l.Port(), port6); err != nil {
		return fmt.Errorf("register listener: %w", err)
	}
	return nil
}

// setMark puts the agent's mark on a listener: the kernel only redirects to
// marked listeners.
func (m *Manager) setMark(c syscall.RawConn) error {
	if m.mark == 0 {
		return nil
	}
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(m.mark))
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("mark listener (SO_MARK needs CAP_NET_ADMIN or CAP_NET_RAW): %w", serr)
	}
	return nil
}

func (m *Manager) drop(id ID, l *Listener) {
	if err := m.reg.DeleteListener(l.Cookie); err != nil {
		m.log.Warn("cannot unregister listener", "netns", l.NS.Path, "err", err)
	}
	l.close()
	delete(m.open, id)
	m.log.Debug("network namespace gone, listener closed", "netns", l.NS.Path)
}

// Kick asks Run for a scan now, e.g. because the kernel refused a connect
// from a namespace that has no listener yet.
func (m *Manager) Kick() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Run rescans every interval and on Kick until ctx ends, then closes every
// listener.
func (m *Manager) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	defer m.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.kick:
		}
		if err := m.Sync(); err != nil {
			m.log.Error("network namespace scan failed", "err", err)
		}
	}
}

// Close closes and unregisters every listener.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, l := range m.open {
		m.drop(id, l)
	}
}

// Len is the number of namespaces with a listener.
func (m *Manager) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.open)
}
