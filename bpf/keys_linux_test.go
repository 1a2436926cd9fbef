package bpf

import (
	"net/netip"
	"testing"
)

// The kernel and the agent must agree on every byte of a key; these pin
// down the encoding the C side expects (see corral.bpf.c).
func TestTargetKeyEncoding(t *testing.T) {
	for _, c := range []struct {
		prefix  string
		port    uint16
		bits    uint32
		portHex [2]byte
		addr    string
	}{
		{"10.0.0.5/32", 5432, 16 + 128, [2]byte{0x15, 0x38}, "::ffff:10.0.0.5"},
		{"10.1.0.0/24", 5432, 16 + 96 + 24, [2]byte{0x15, 0x38}, "::ffff:10.1.0.0"},
		{"10.1.0.77/24", 22, 16 + 96 + 24, [2]byte{0, 22}, "::ffff:10.1.0.0"}, // masked
		{"2001:db8::7/128", 443, 16 + 128, [2]byte{0x01, 0xbb}, "2001:db8::7"},
		{"2001:db8:1::/48", 443, 16 + 48, [2]byte{0x01, 0xbb}, "2001:db8:1::"},
		{"0.0.0.0/0", 80, 16 + 96, [2]byte{0, 80}, "::ffff:0.0.0.0"},
	} {
		k, err := targetKey(Target{Prefix: netip.MustParsePrefix(c.prefix), Port: c.port})
		if err != nil {
			t.Fatal(err)
		}
		if k.Prefixlen != c.bits || k.Port != c.portHex || netip.AddrFrom16(k.Addr) != netip.MustParseAddr(c.addr) {
			t.Errorf("%s:%d -> %+v", c.prefix, c.port, k)
		}
	}
	if _, err := targetKey(Target{}); err == nil {
		t.Error("invalid prefix accepted")
	}
}

func TestTupleKeyAndOrigin(t *testing.T) {
	k := tupleKey(7, netip.MustParseAddrPort("127.0.0.1:40000"), 15001)
	if k.NetnsCookie != 7 || netip.AddrFrom16(k.Addr) != netip.MustParseAddr("::ffff:127.0.0.1") || k.Sport != 40000 || k.Dport != 15001 {
		t.Errorf("v4 tuple %+v", k)
	}
	k = tupleKey(7, netip.MustParseAddrPort("[::1]:40000"), 15001)
	if netip.AddrFrom16(k.Addr) != netip.IPv6Loopback() {
		t.Errorf("v6 tuple %+v", k)
	}
	rec := corralOrigRec{Addr: netip.MustParseAddr("::ffff:10.0.0.5").As16(), Port: 5432, TargetId: 3, Pid: 9}
	copy(rec.Comm[:], []int8{'p', 's', 'q', 'l', 0, 'x'})
	o := originFrom(&rec)
	if o.Dst != netip.MustParseAddrPort("10.0.0.5:5432") || o.Comm != "psql" || o.TargetID != 3 || o.PID != 9 {
		t.Errorf("origin %+v", o)
	}
}
