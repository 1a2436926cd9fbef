// Package jsonenc appends JSON values byte for byte as encoding/json's
// Marshal writes them, without reflection.
//
// Audit events and recording records are written for every statement a
// workload sends, on the data path; encoding them through reflection was a
// measurable share of the proxy's time per statement. The types written
// there encode themselves with these functions, and their tests hold the
// output equal to json.Marshal's, so readers (and hashes over the bytes)
// see no difference.
package jsonenc

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// plain marks the ASCII bytes json.Marshal copies as they are: printable,
// and neither a quote, a backslash nor one of the HTML-sensitive <, >, &.
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = true
	}
	for _, c := range `"\<>&` {
		t[c] = false
	}
	return t
}()

// String appends s as a JSON string the way json.Marshal does: HTML-safe,
// invalid UTF-8 replaced by U+FFFD, and U+2028 and U+2029 escaped.
func String(b []byte, s string) []byte {
	b = append(b, '"')
	from := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			b = append(b, s[from:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			from = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[from:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[from:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		from = i
	}
	b = append(b, s[from:]...)
	return append(b, '"')
}

// Strings appends a JSON array of strings; a nil slice is null, as
// json.Marshal writes it.
func Strings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = String(b, s)
	}
	return append(b, ']')
}

// Float appends f as json.Marshal writes a float64. ok is false for NaN
// and the infinities, which JSON cannot carry (json.Marshal fails on them).
func Float(b []byte, f float64) (_ []byte, ok bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// A two-digit negative exponent is written without its leading
		// zero: 1e-07 becomes 1e-7.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

// Time appends t as time.Time's MarshalJSON writes it (RFC 3339 with
// nanoseconds, quoted). ok is false for the years and zone offsets
// MarshalJSON refuses.
func Time(b []byte, t time.Time) (_ []byte, ok bool) {
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false
	}
	if _, off := t.Zone(); off <= -24*3600 || off >= 24*3600 {
		return b, false
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), true
}

// Uint appends n in decimal.
func Uint(b []byte, n uint64) []byte { return strconv.AppendUint(b, n, 10) }

// Int appends n in decimal.
func Int(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }

// Key appends a comma unless b ends an opening brace, then "name":. The
// name is written as it is: callers pass their fields' JSON names, which
// need no escaping.
func Key(b []byte, name string) []byte {
	if n := len(b); n > 0 && b[n-1] != '{' {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

// OptString appends the member key: v, unless v is empty (omitempty).
func OptString(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	return String(Key(b, key), v)
}

// OptUint appends the member key: n, unless n is zero (omitempty).
func OptUint(b []byte, key string, n uint64) []byte {
	if n == 0 {
		return b
	}
	return Uint(Key(b, key), n)
}
