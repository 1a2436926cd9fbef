package jsonenc

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func marshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var strings = []string{
	"", "plain", `quote " and \ backslash`, "<script>&amp;</script>",
	"\x00\x01\b\f\n\r\t\x1f\x7f", "é ü 日本 🦀", "\u2028\u2029",
	"bad \xff utf-8 \xe2\x82", "\xed\xa0\x80 surrogate", "SELECT * FROM t WHERE a = $1",
}

func TestStringAsMarshal(t *testing.T) {
	for _, s := range strings {
		if got, want := string(String(nil, s)), marshal(t, s); got != want {
			t.Errorf("String(%q) = %s, json.Marshal = %s", s, got, want)
		}
	}
}

func FuzzString(f *testing.F) {
	for _, s := range strings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(String([]byte("x"), s)), "x"+marshal(t, s); got != want {
			t.Fatalf("String(%q) = %s, json.Marshal = %s", s, got, want)
		}
	})
}

func TestStringsAsMarshal(t *testing.T) {
	for _, ss := range [][]string{nil, {}, {"select"}, {"a", "<b>"}} {
		if got, want := string(Strings(nil, ss)), marshal(t, ss); got != want {
			t.Errorf("Strings(%q) = %s, json.Marshal = %s", ss, got, want)
		}
	}
}

var floats = []float64{
	0, math.Copysign(0, -1), 1, -1, 0.5, 1.25, 0.001, 123.456, 1e-6, 9.99e-7, 1e-7, 1.5e-10,
	1e20, 1e21, 1.2345e22, -3e-9, math.MaxFloat64, math.SmallestNonzeroFloat64, 1e-100, 12.345678,
}

func TestFloatAsMarshal(t *testing.T) {
	for _, f := range floats {
		got, ok := Float(nil, f)
		if want := marshal(t, f); !ok || string(got) != want {
			t.Errorf("Float(%v) = %s (%v), json.Marshal = %s", f, got, ok, want)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, ok := Float(nil, f); ok {
			t.Errorf("Float(%v) accepted a value JSON cannot carry", f)
		}
	}
}

func FuzzFloat(f *testing.F) {
	for _, v := range floats {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v float64) {
		got, ok := Float(nil, v)
		want, err := json.Marshal(v)
		if ok != (err == nil) || ok && string(got) != string(want) {
			t.Fatalf("Float(%v) = %s (%v), json.Marshal = %s (%v)", v, got, ok, want, err)
		}
	})
}

func TestTimeAsMarshal(t *testing.T) {
	east := time.FixedZone("east", 5*3600+30*60)
	odd := time.FixedZone("odd", -(3*3600 + 17*60 + 11))
	for _, tm := range []time.Time{
		time.Date(2026, 11, 26, 15, 4, 5, 123456789, time.UTC),
		time.Date(2026, 11, 26, 15, 4, 5, 0, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 120000000, east),
		time.Date(1999, 12, 31, 23, 59, 59, 1, odd),
		time.Unix(0, 0).UTC(), time.Now(), {},
	} {
		got, ok := Time(nil, tm)
		if want := marshal(t, tm); !ok || string(got) != want {
			t.Errorf("Time(%v) = %s (%v), json.Marshal = %s", tm, got, ok, want)
		}
	}
	for _, tm := range []time.Time{
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("far", 24*3600)),
	} {
		if _, err := json.Marshal(tm); err == nil {
			t.Fatalf("json.Marshal(%v) no longer fails; the case is moot", tm)
		}
		if _, ok := Time(nil, tm); ok {
			t.Errorf("Time(%v) accepted a time json.Marshal refuses", tm)
		}
	}
}

func TestKey(t *testing.T) {
	b := []byte{'{'}
	b = Key(b, "a")
	b = Int(b, -3)
	b = Key(b, "b")
	b = Uint(b, 7)
	if got := string(b) + "}"; got != `{"a":-3,"b":7}` {
		t.Fatalf("got %s", got)
	}
}
