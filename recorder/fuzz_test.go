package recorder

import (
	"bytes"
	"testing"
	"time"
)

// FuzzRead feeds damaged and hostile recordings to the reader: it must
// never panic, and whatever it accepts must be a chain it can seal again
// record by record.
func FuzzRead(f *testing.F) {
	var rec bytes.Buffer
	prev := ""
	for i, r := range []Record{
		{Type: TypeHeader, Header: &Header{Format: FormatVersion, SessionID: "s-1", Target: "db", Protocol: "postgres"}},
		{Type: TypeStatement, Statement: &Statement{Text: "SELECT $1", Decision: "allow"}},
		{Type: TypeEnd, End: &End{BytesUp: 1}},
	} {
		r.Seq, r.Prev, r.Time = uint64(i), prev, time.Unix(1700000000, 0).UTC()
		line, h, err := sealTo(nil, &r)
		if err != nil {
			f.Fatal(err)
		}
		rec.Write(line)
		prev = h
	}
	f.Add(rec.Bytes())
	f.Add([]byte("{}\n"))
	f.Add([]byte(`{"seq":0,"type":"header","hash":"00"}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 64<<10 {
			return // long lines are TestReadRejectsHugeLines's; here, variety
		}
		var got []*Record
		rep, err := Read(bytes.NewReader(b), func(r *Record) error {
			got = append(got, r)
			return nil
		})
		if err != nil {
			return
		}
		if uint64(len(got)) != rep.Records {
			t.Fatalf("%d records seen, %d reported", len(got), rep.Records)
		}
		for i, r := range got {
			if r.Seq != uint64(i) || (i > 0 && r.Prev != got[i-1].Hash) {
				t.Fatalf("record %d accepted out of chain: %+v", i, r)
			}
		}
	})
}
