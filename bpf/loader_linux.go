package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Options say where to attach and what the agent's own connections look like.
type Options struct {
	// CgroupPath is the cgroup2 directory whose processes (and descendants)
	// are intercepted: the host's cgroup2 root in production, a per-test
	// cgroup in tests.
	CgroupPath string
	// PinDir is a bpffs directory for the links. Empty: links are not pinned
	// and vanish with the agent.
	PinDir string
	// AgentCgroupID is the cgroup whose connects are never redirected.
	AgentCgroupID uint64
	// Mark, when non-zero, exempts sockets carrying this SO_MARK as well.
	Mark uint32
}

// Programs are corral's loaded (and, after Attach, attached) programs and maps.
type Programs struct {
	objs  corralObjects
	opts  Options
	links map[string]link.Link
}

// attachments must list linkNames, in order.
var attachments = []struct {
	name   string
	attach ebpf.AttachType
	prog   func(*corralObjects) *ebpf.Program
}{
	{"connect4", ebpf.AttachCGroupInet4Connect, func(o *corralObjects) *ebpf.Program { return o.CorralConnect4 }},
	{"connect6", ebpf.AttachCGroupInet6Connect, func(o *corralObjects) *ebpf.Program { return o.CorralConnect6 }},
	{"sockops", ebpf.AttachCGroupSockOps, func(o *corralObjects) *ebpf.Program { return o.CorralSockops }},
}

// Load loads the programs and maps into the kernel without attaching them,
// so the maps can be filled before the first connect is redirected.
func Load(opts Options) (*Programs, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("raise memlock limit: %w", err)
	}
	spec, err := loadCorral()
	if err != nil {
		return nil, err
	}
	if err := spec.Variables[corralVarAgentCgroupId].Set(opts.AgentCgroupID); err != nil {
		return nil, fmt.Errorf("set agent cgroup id: %w", err)
	}
	if err := spec.Variables[corralVarAgentMark].Set(opts.Mark); err != nil {
		return nil, fmt.Errorf("set agent mark: %w", err)
	}
	p := &Programs{opts: opts, links: map[string]link.Link{}}
	if err := spec.LoadAndAssign(&p.objs, nil); err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return nil, fmt.Errorf("kernel rejected corral's programs: %+v", verr)
		}
		return nil, fmt.Errorf("load corral's programs: %w", err)
	}
	return p, nil
}

// Attach attaches the programs to the cgroup. Links already pinned by a
// previous agent on the same cgroup are taken over and switched to these
// programs atomically, so no connect slips through during a restart.
func (p *Programs) Attach() error {
	cgroupID, err := cgroupID(p.opts.CgroupPath)
	if err != nil {
		return err
	}
	if p.opts.PinDir != "" {
		if err := os.MkdirAll(p.opts.PinDir, 0o700); err != nil {
			return fmt.Errorf("create pin directory: %w", err)
		}
	}
	for _, a := range attachments {
		prog := a.prog(&p.objs)
		if l, err := p.takeOver(a.name, cgroupID, prog); err != nil {
			return err
		} else if l != nil {
			p.links[a.name] = l
			continue
		}
		l, err := link.AttachCgroup(link.CgroupOptions{Path: p.opts.CgroupPath, Attach: a.attach, Program: prog})
		if err != nil {
			return fmt.Errorf("attach %s to %s: %w", a.name, p.opts.CgroupPath, err)
		}
		p.links[a.name] = l
		if p.opts.PinDir != "" {
			if err := l.Pin(filepath.Join(p.opts.PinDir, a.name)); err != nil {
				return fmt.Errorf("pin %s: %w", a.name, err)
			}
		}
	}
	return nil
}

// takeOver returns the pinned link for name switched to prog, or nil when
// there is none to take over. A pinned link on another cgroup is removed:
// the configuration moved, and leaving it would keep intercepting there.
func (p *Programs) takeOver(name string, cgroupID uint64, prog *ebpf.Program) (link.Link, error) {
	if p.opts.PinDir == "" {
		return nil, nil
	}
	path := filepath.Join(p.opts.PinDir, name)
	l, err := link.LoadPinnedLink(path, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load pinned link %s: %w", path, err)
	}
	info, err := l.Info()
	if err == nil && info.Cgroup() != nil && info.Cgroup().CgroupId == cgroupID {
		if err := l.Update(prog); err != nil {
			l.Close()
			return nil, fmt.Errorf("switch pinned link %s to the new program: %w", path, err)
		}
		return l, nil
	}
	if err := l.Unpin(); err != nil {
		l.Close()
		return nil, fmt.Errorf("unpin stale link %s: %w", path, err)
	}
	return nil, l.Close()
}

// Detach removes the links: with keepPinned, pinned links stay in the
// kernel, so connects to targets keep being redirected and, with no agent
// listening, are refused until an agent takes over; without it they are
// removed and connects go where they were going. Attach may be called again.
func (p *Programs) Detach(keepPinned bool) error {
	var errs []error
	for name, l := range p.links {
		if !keepPinned && p.opts.PinDir != "" {
			if err := l.Unpin(); err != nil {
				errs = append(errs, fmt.Errorf("unpin %s: %w", name, err))
			}
		}
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", name, err))
		}
	}
	p.links = map[string]link.Link{}
	return errors.Join(errs...)
}

// Close detaches (see Detach) and releases the programs and maps.
func (p *Programs) Close(keepPinned bool) error {
	return errors.Join(p.Detach(keepPinned), p.objs.Close())
}

// SetTargets makes ts the complete set of redirected destinations.
func (p *Programs) SetTargets(ts []Target) error {
	want := make(map[corralTargetKey]uint32, len(ts))
	for _, t := range ts {
		k, err := targetKey(t)
		if err != nil {
			return fmt.Errorf("target %d %v:%d: %w", t.ID, t.Prefix, t.Port, err)
		}
		want[k] = t.ID
	}
	for k, id := range want {
		if err := p.objs.Targets.Update(k, corralTargetVal{Id: id}, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("update targets map: %w", err)
		}
	}
	var (
		k     corralTargetKey
		v     corralTargetVal
		stale []corralTargetKey
	)
	it := p.objs.Targets.Iterate()
	for it.Next(&k, &v) {
		if _, ok := want[k]; !ok {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate targets map: %w", err)
	}
	for _, k := range stale {
		if err := p.objs.Targets.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete from targets map: %w", err)
		}
	}
	return nil
}

// SetListener registers the agent's listener ports (host order, 0 = none)
// for the network namespace with the given cookie. The kernel redirects to a
// port only while a socket carrying the agent's mark listens on it.
func (p *Programs) SetListener(netnsCookie uint64, port4, port6 uint16) error {
	return p.objs.NetnsListener.Update(netnsCookie, corralListener{Port4: port4, Port6: port6}, ebpf.UpdateAny)
}

// DeleteListener forgets the listeners of a network namespace.
func (p *Programs) DeleteListener(netnsCookie uint64) error {
	err := p.objs.NetnsListener.Delete(netnsCookie)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	}
	return err
}

// Origin returns, and forgets, the record of the connection whose client end
// is client, accepted on listenerPort in the netns with netnsCookie.
func (p *Programs) Origin(netnsCookie uint64, client netip.AddrPort, listenerPort uint16) (Origin, error) {
	var rec corralOrigRec
	err := p.objs.ConnByTuple.LookupAndDelete(tupleKey(netnsCookie, client, listenerPort), &rec)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return Origin{}, ErrNoOrigin
	}
	if err != nil {
		return Origin{}, fmt.Errorf("look up original destination: %w", err)
	}
	return originFrom(&rec), nil
}

// Counters sums the per-CPU counters.
func (p *Programs) Counters() (Counters, error) {
	var c Counters
	dst := []*uint64{&c.Passed, &c.Redirected, &c.Refused, &c.Exempt}
	for i, d := range dst {
		var per []uint64
		if err := p.objs.Counters.Lookup(uint32(i), &per); err != nil {
			return c, fmt.Errorf("read counters: %w", err)
		}
		for _, v := range per {
			*d += v
		}
	}
	return c, nil
}

// EventReader reads refusals reported by the kernel.
type EventReader struct{ r *ringbuf.Reader }

// Events opens a reader on the refusal ring buffer.
func (p *Programs) Events() (*EventReader, error) {
	r, err := ringbuf.NewReader(p.objs.Events)
	if err != nil {
		return nil, fmt.Errorf("open event ring buffer: %w", err)
	}
	return &EventReader{r: r}, nil
}

// ErrClosed is returned by Read after Close.
var ErrClosed = ringbuf.ErrClosed

// Read blocks for the next event.
func (e *EventReader) Read() (Event, error) {
	rec, err := e.r.Read()
	if err != nil {
		return Event{}, err
	}
	if len(rec.RawSample) < 16 {
		return Event{}, fmt.Errorf("short event: %d bytes", len(rec.RawSample))
	}
	return Event{
		NetnsCookie: binary.NativeEndian.Uint64(rec.RawSample[0:8]),
		PID:         binary.NativeEndian.Uint32(rec.RawSample[8:12]),
		Reason:      RefuseReason(binary.NativeEndian.Uint32(rec.RawSample[12:16])),
	}, nil
}

// Close unblocks Read.
func (e *EventReader) Close() error { return e.r.Close() }

func cgroupID(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("cgroup %s: %w", path, err)
	}
	return st.Ino, nil
}
