package bpf

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrNoOrigin means the kernel holds no record for an accepted connection:
// it did not come through redirection (or its record was evicted), so the
// agent cannot know where it was going and must close it.
var ErrNoOrigin = errors.New("no original destination recorded for this connection")

// Target is one entry of the targets map: connections to an address in
// Prefix on Port are redirected and tagged with ID.
type Target struct {
	ID     uint32
	Prefix netip.Prefix
	Port   uint16
}

// Origin is what the kernel recorded when a workload's connect() was
// redirected: where it was going and who was calling.
type Origin struct {
	Dst         netip.AddrPort // original destination, IPv4 unmapped
	TargetID    uint32
	Family      uint16 // AF_INET or AF_INET6: the client's socket family
	CgroupID    uint64
	NetnsCookie uint64
	PID         uint32 // tgid in the initial pid namespace
	UID         uint32
	GID         uint32
	Comm        string
}

// Counters are the programs' per-CPU counters, summed.
type Counters struct {
	Passed     uint64 // connects to anything that is not a target
	Redirected uint64 // connects to a target, sent to corral
	Refused    uint64 // connects to a target refused with EPERM (no live listener)
	Exempt     uint64 // corral's own connects to a target
}

// RefuseReason says why the kernel refused a connect to a target.
type RefuseReason uint32

// Reasons match enum refuse_reason in corral.bpf.c.
const (
	RefuseNoListener   RefuseReason = 1
	RefuseDeadListener RefuseReason = 2
	RefuseNoStorage    RefuseReason = 3
)

func (r RefuseReason) String() string {
	switch r {
	case RefuseNoListener:
		return "no listener of corral's in this network namespace (for this address family)"
	case RefuseDeadListener:
		return "corral's listener in this network namespace is not listening"
	case RefuseNoStorage:
		return "could not record the original destination"
	}
	return fmt.Sprintf("reason %d", uint32(r))
}

// Event is a refusal reported by the kernel through the ring buffer.
type Event struct {
	NetnsCookie uint64
	PID         uint32
	Reason      RefuseReason
}

// Feature is one kernel capability corral relies on, and whether this
// kernel has it (Err == nil).
type Feature struct {
	Name string
	Err  error
}

// Missing joins the errors of the features the kernel lacks, nil if none.
func Missing(fs []Feature) error {
	var errs []error
	for _, f := range fs {
		if f.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.Name, f.Err))
		}
	}
	return errors.Join(errs...)
}
