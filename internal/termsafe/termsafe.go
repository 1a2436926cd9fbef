// Package termsafe keeps text a workload chose (a statement, a command
// line, a program's name, a database's) from acting on the terminal of
// the person reading corral's output: control characters would move the
// cursor, erase what a reviewer is about to approve, or retitle the
// window, and bidirectional overrides would reorder what is shown. They
// are written as escapes instead (\x1b, \u202e), visible and inert.
// Newlines and tabs pass: corral's own output is made of them; the text
// it prints from workloads is kept on one line where it is built.
package termsafe

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// String returns s with what would act on a terminal escaped, newlines
// and tabs included.
func String(s string) string { return escape(s, false) }

// Text returns s with what would act on a terminal or reorder text
// escaped, but for newlines and tabs: for text shown as written, over
// several lines (a statement on a web page).
func Text(s string) string { return escape(s, true) }

func escape(s string, lines bool) string {
	if clean(s, lines) {
		return s
	}
	var b strings.Builder
	write(&b, s, lines)
	return b.String()
}

// Cut returns s cut to at most n bytes on a character's start, marked
// with an ellipsis where it was cut.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Line returns s on one line, for a field of a table or a transcript:
// runs of white space (newlines, tabs, carriage returns) become one space,
// so that text a workload chose cannot start a line that passes for
// corral's own, and what else would act on a terminal is escaped.
func Line(s string) string {
	return String(strings.Join(strings.Fields(s), " "))
}

// NewWriter returns a writer that escapes, in what is written through it,
// what would act on a terminal, but for newlines and tabs.
func NewWriter(w io.Writer) io.Writer { return &writer{w: w} }

type writer struct {
	w    io.Writer
	tail []byte // an incomplete UTF-8 sequence held for the next write
}

func (t *writer) Write(p []byte) (int, error) {
	s := string(append(t.tail, p...))
	t.tail = t.tail[:0]
	// A sequence cut by the end of this write is completed by the next.
	if i := lastStart(s); i >= 0 && !utf8.FullRuneInString(s[i:]) {
		t.tail = append(t.tail, s[i:]...)
		s = s[:i]
	}
	if clean(s, true) {
		_, err := io.WriteString(t.w, s)
		return len(p), err
	}
	var b strings.Builder
	write(&b, s, true)
	_, err := io.WriteString(t.w, b.String())
	return len(p), err
}

// lastStart is the index of the last byte that may start a UTF-8
// sequence among the last three, or -1.
func lastStart(s string) int {
	for i := len(s) - 1; i >= 0 && i >= len(s)-3; i-- {
		if utf8.RuneStart(s[i]) {
			return i
		}
	}
	return -1
}

// clean reports whether s has nothing to escape. Bytes that are not
// UTF-8 count: a lone 0x9b is a control sequence to an 8-bit terminal.
func clean(s string, lines bool) bool {
	for i, r := range s {
		if acts(r, lines) || r == utf8.RuneError && !validAt(s, i) {
			return false
		}
	}
	return true
}

func write(b *strings.Builder, s string, lines bool) {
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !validAt(s, i):
			fmt.Fprintf(b, `\x%02x`, s[i])
		case acts(r, lines):
			if r < 0x80 {
				fmt.Fprintf(b, `\x%02x`, r)
			} else {
				fmt.Fprintf(b, `\u%04x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
}

func validAt(s string, i int) bool {
	r, n := utf8.DecodeRuneInString(s[i:])
	return r != utf8.RuneError || n > 1
}

// acts reports whether r acts on a terminal, reorders text or hides:
// C0 and C1 controls, DEL, the bidirectional embeddings, overrides and
// isolates, format characters and blank fillers.
// With lines, newlines and tabs do not count.
func acts(r rune, lines bool) bool {
	switch {
	case lines && (r == '\n' || r == '\t'):
		return false
	case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true
	case r == 0x2028, r == 0x2029:
		return true
	case unicode.Is(unicode.Cf, r):
		// Format characters show as nothing (U+200B, U+2060, U+FEFF):
		// DR\u200bOP reads as DROP and matches no search for it.
		return true
	case r == 0x115f, r == 0x1160, r == 0x3164, r == 0xffa0, r == 0x2800:
		// Fillers that show as blank without being white space: a run of
		// them pushes what follows onto a line of its own, where it could
		// pass for corral's output.
		return true
	}
	return false
}
