package bpf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Key encoding lives here, in one place, because the kernel and the agent
// must agree byte for byte: ports in the targets map are big-endian bytes
// ahead of the address; addresses are always in 16-byte form (IPv4 mapped);
// tuple ports are host order, as sockops reports local_port and as the
// program converts remote_port.

const portBits = 16

func targetKey(t Target) (corralTargetKey, error) {
	var k corralTargetKey
	if !t.Prefix.IsValid() {
		return k, fmt.Errorf("invalid prefix")
	}
	p := t.Prefix.Masked()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	k.Prefixlen = uint32(portBits + bits)
	binary.BigEndian.PutUint16(k.Port[:], t.Port)
	k.Addr = p.Addr().As16()
	return k, nil
}

func tupleKey(netnsCookie uint64, client netip.AddrPort, listenerPort uint16) corralTupleKey {
	return corralTupleKey{
		NetnsCookie: netnsCookie,
		Addr:        client.Addr().As16(),
		Sport:       client.Port(),
		Dport:       listenerPort,
	}
}

func originFrom(r *corralOrigRec) Origin {
	comm := make([]byte, 0, len(r.Comm))
	for _, c := range r.Comm {
		comm = append(comm, byte(c))
	}
	if i := bytes.IndexByte(comm, 0); i >= 0 {
		comm = comm[:i]
	}
	return Origin{
		Dst:         netip.AddrPortFrom(netip.AddrFrom16(r.Addr).Unmap(), r.Port),
		TargetID:    r.TargetId,
		Family:      r.Family,
		CgroupID:    r.CgroupId,
		NetnsCookie: r.NetnsCookie,
		PID:         r.Pid,
		UID:         r.Uid,
		GID:         r.Gid,
		Comm:        string(comm),
	}
}
