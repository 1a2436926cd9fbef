package recorder

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// The hand encoding is held to json.Marshal's bytes: the hash of every
// line depends on them, and readers decode them with encoding/json.
func TestAppendJSONAsMarshal(t *testing.T) {
	exit := 3
	zero := 0
	at := time.Date(2026, 11, 26, 15, 4, 5, 123456789, time.UTC)
	records := []Record{
		{Seq: 1, Time: at, Type: TypeStatement, Prev: "ab12", Statement: &Statement{Text: "SELECT $1 <x> & \"y\"", Operations: []string{"select"}, Decision: "allow", Rule: "r", PolicyVersion: 9}},
		{Seq: 2, Time: at, Type: TypeStatement, Statement: &Statement{Text: "DROP TABLE t", Operations: []string{}, Decision: "deny", Reason: "no \u2028 drops\n", Request: "req-1"}},
		{Seq: 3, Time: at, Type: TypeStatement, Statement: &Statement{}},
		{Seq: 4, Time: at, Type: TypeResult, Result: &Result{Of: 3, Command: "SELECT 1", Rows: 1, Bytes: 17, MaskedColumns: []string{"public.customers.email"}, MaskedValues: 1, DurationMS: 0.042}},
		{Seq: 5, Time: at, Type: TypeResult, Result: &Result{Of: 4, DurationMS: 0, Code: "42501", Message: "permission denied: \xff"}},
		{Seq: 6, Time: at, Type: TypeResult, Result: &Result{ExitStatus: &exit, Signal: "KILL", BytesIn: 5, Unrecorded: 7, DurationMS: 1e-9}},
		{Seq: 7, Time: at, Type: TypeResult, Result: &Result{ExitStatus: &zero, DurationMS: 12345678.5}},
		{Seq: 8, Time: at, Type: TypeApproval, Approval: &Approval{Request: "r", State: "approved", Reviewer: "ana", Reason: "ok", WaitMS: 1500.25}},
		{Seq: 9, Time: at, Type: TypeApproval, Approval: &Approval{Request: "r", State: "requested"}},
		{Seq: 10, Time: at, Type: TypeError, Error: &Error{Message: "upstream \t closed"}},
		{Seq: 11, Time: at, Type: TypeEnd, End: &End{BytesUp: 1, BytesDown: 2, DurationMS: 3.5}},
		{Seq: 12, Time: at, Type: TypeEnd, End: &End{Reason: "client", Error: "x", DurationMS: 0.001, Terminal: &CastSeal{Name: "c", SHA256: "s", Bytes: 4}}},
		{Seq: 14, Time: at, Type: TypeEnd, End: &End{Terminals: []CastSeal{{Name: "a", SHA256: "s", Bytes: 1}, {Name: "b"}}}},
		{Seq: 15, Time: at, Type: TypeResult, Result: &Result{ExitStatus: &zero, Terminal: &CastSeal{Name: "t.2.cast", SHA256: "s", Bytes: 9}}},
		{Seq: 0, Time: at.In(time.FixedZone("x", 3600)), Type: TypeHeader, Header: &Header{Format: 1, SessionID: "s", Workload: json.RawMessage(`{"pid": 7}`), Decision: "allow"}},
		{Seq: 13, Type: TypeStatement, Statement: &Statement{Text: "zero time"}},
	}
	for i, r := range records {
		want, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.appendJSON([]byte("prefix"))
		if err != nil || string(got) != "prefix"+string(want) {
			t.Errorf("record %d:\n got %s (%v)\nwant prefix%s", i, got, err, want)
		}
	}
}

// Random records, each field set or left empty, encode as json.Marshal
// encodes them.
func TestAppendJSONRandomAsMarshal(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	str := func() string {
		if rnd.IntN(3) == 0 {
			return ""
		}
		b := make([]byte, rnd.IntN(12))
		for i := range b {
			b[i] = byte(rnd.IntN(256))
		}
		return string(b)
	}
	strs := func() []string {
		switch rnd.IntN(3) {
		case 0:
			return nil
		case 1:
			return []string{}
		}
		return []string{str(), str()}
	}
	num := func() uint64 {
		if rnd.IntN(2) == 0 {
			return 0
		}
		return rnd.Uint64() >> rnd.IntN(64)
	}
	flt := func() float64 {
		if rnd.IntN(3) == 0 {
			return 0
		}
		return math.Float64frombits(rnd.Uint64() >> 2)
	}
	for i := 0; i < 5000; i++ {
		r := Record{Seq: num(), Time: time.Unix(rnd.Int64N(1<<34), rnd.Int64N(1e9)).UTC(), Type: str(), Prev: str()}
		switch rnd.IntN(5) {
		case 0:
			r.Statement = &Statement{Text: str(), Operations: strs(), Decision: str(), Reason: str(), Rule: str(), PolicyVersion: num(), Request: str()}
		case 1:
			r.Result = &Result{Of: num(), Command: str(), Rows: num(), Bytes: num(), MaskedColumns: strs(), MaskedValues: num(), DurationMS: flt(), Code: str(), Message: str(), Signal: str(), BytesIn: num(), Unrecorded: num()}
			if rnd.IntN(2) == 0 {
				n := int(int32(rnd.Uint32()))
				r.Result.ExitStatus = &n
			}
		case 2:
			r.Approval = &Approval{Request: str(), State: str(), Reviewer: str(), Reason: str(), WaitMS: flt()}
		case 3:
			r.Error = &Error{Message: str()}
		case 4:
			r.End = &End{Reason: str(), BytesUp: num(), BytesDown: num(), DurationMS: flt(), Error: str()}
		}
		want, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.appendJSON(nil)
		if err != nil || string(got) != string(want) {
			t.Fatalf("record %+v:\n got %s (%v)\nwant %s", r, got, err, want)
		}
	}
}

// What JSON cannot carry fails as json.Marshal fails, and the line is not
// written.
func TestSealRefusesWhatJSONCannotCarry(t *testing.T) {
	for _, r := range []Record{
		{Type: TypeResult, Result: &Result{DurationMS: math.NaN()}},
		{Type: TypeEnd, End: &End{DurationMS: math.Inf(1)}},
		{Type: TypeStatement, Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Statement: &Statement{}},
	} {
		dst := []byte("kept\n")
		out, _, err := sealTo(dst, &r)
		if err == nil {
			t.Errorf("%+v sealed", r)
		}
		if string(out) != "kept\n" {
			t.Errorf("a refused record left %q", out)
		}
	}
}
