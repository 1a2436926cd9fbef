package termsafe

import (
	"bytes"
	"testing"
)

func TestString(t *testing.T) {
	for in, want := range map[string]string{
		"SELECT 1":                      "SELECT 1",
		"naïve ✓":                       "naïve ✓",
		"true #\r\x1b[2Ktouch approved": `true #\x0d\x1b[2Ktouch approved`,
		"a\nb\tc":                       `a\x0ab\x09c`,
		"x\u009b31m":                    `x\u009b31m`,
		"x\x9by":                        `x\x9by`,
		"admin\u202etxt.exe":            `admin\u202etxt.exe`,
		"\x7f":                          `\x7f`,
		"line\u2028sep":                 `line\u2028sep`,
		"\xe2\x80":                      `\xe2\x80`,
		"DR\u200bOP \ufeff\u2060":       `DR\u200bOP \ufeff\u2060`,
		"x\u3164\u3164\u2800\u115fy":    `x\u3164\u3164\u2800\u115fy`,
		"e\u0301 日本":                    "e\u0301 日本",
	} {
		if got := String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
}

// The writer lets newlines and tabs through, and completes a UTF-8
// sequence split between writes before it judges it.
func TestWriter(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out)
	for _, p := range []string{"ok\tfine\n", "evil \x1b]0;title\x07\n", "split \xe2\x80", "\xae here\n", "é\xc2", "\x9b\n"} {
		if n, err := w.Write([]byte(p)); n != len(p) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", p, n, err)
		}
	}
	want := "ok\tfine\nevil \\x1b]0;title\\x07\nsplit \\u202e here\né\\u009b\n"
	if out.String() != want {
		t.Errorf("wrote %q, want %q", out.String(), want)
	}
}

func TestLine(t *testing.T) {
	for in, want := range map[string]string{
		"DROP TABLE x\nr-2  2026 pending orders SELECT 1": "DROP TABLE x r-2 2026 pending orders SELECT 1",
		"a\r\n\tb":        "a b",
		"  x \x1b[2K y  ": `x \x1b[2K y`,
		"ok":              "ok",
	} {
		if got := Line(in); got != want {
			t.Errorf("Line(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCut(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"longer text", 6, "longer…"},
		{"aé", 2, "a…"}, // é is two bytes: not cut through
	} {
		if got := Cut(c.s, c.n); got != c.want {
			t.Errorf("Cut(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
}
