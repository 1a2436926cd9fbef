package shellcmd

import (
	"strings"
	"unicode/utf8"

	"mvdan.cc/sh/v3/syntax"
)

// arg is one word of a simple command as far as it can be known before the
// command runs.
type arg struct {
	// text is the word after quote removal when lit, else its source text.
	text string
	// src is the word as written; error messages quote it.
	src string
	// lit is set when nothing in the word expands at run time except,
	// possibly, globs, ~ and braces, which are kept as written.
	lit bool
	// plain is set when the word is exactly text once the command runs. Only
	// plain words may decide what runs: a program name, a wrapper option or
	// a script to parse.
	plain bool
	// single is set when the word becomes exactly one word at run time,
	// whatever its value, so it cannot shift the words after it.
	single bool
	// lits joins the literal parts of the word after quote removal, so that
	// text hidden in quotes is seen even when the word also expands.
	lits string
	// filled is set when a wrapper puts text of its input in the word at
	// run time (xargs -I, find -exec {}).
	filled bool
}

// analyze works out what a word is before the command runs. src is the
// script the word was parsed from.
func analyze(w *syntax.Word, src string) arg {
	a := scan(w)
	a.src = sourceOf(w, src)
	if !a.lit {
		a.text = a.src
	}
	return a
}

// scan is analyze without the source text, which is costly to find for
// deeply nested arithmetic; text is only set for literal words.
func scan(w *syntax.Word) arg {
	a := arg{lit: true, single: true}
	var text, lits, shape strings.Builder
	expands := false
	for _, part := range w.Parts {
		if _, ok := part.(*syntax.Lit); !ok {
			// Quoted text and expansions cannot make braces expand.
			shape.WriteByte('_')
		}
		switch p := part.(type) {
		case *syntax.Lit:
			v, sh, glob, tilde := unquoteLit(p.Value)
			text.WriteString(v)
			lits.WriteString(v)
			shape.WriteString(sh)
			// A lone "[" is the test command, not a bracket expression,
			// and so is "[[" where it is no keyword (sh).
			if glob && !(len(w.Parts) == 1 && (p.Value == "[" || p.Value == "[[")) {
				expands = true
				a.single = false
			}
			if tilde {
				expands = true
			}
			continue
		case *syntax.SglQuoted:
			if !p.Dollar {
				text.WriteString(p.Value)
				lits.WriteString(p.Value)
				continue
			}
			v, ok := ansiC(p.Value)
			if !ok {
				a.lit = false
			}
			text.WriteString(v)
			lits.WriteString(v)
		case *syntax.DblQuoted:
			if p.Dollar {
				// $"..." is looked up in a message catalog at run time.
				a.lit = false
			}
			for _, dp := range p.Parts {
				if l, ok := dp.(*syntax.Lit); ok {
					v := unquoteDbl(l.Value)
					text.WriteString(v)
					lits.WriteString(v)
					continue
				}
				a.lit = false
				if splitsInQuotes(dp) {
					a.single = false
				}
			}
		default:
			// Unquoted expansions are split into fields and globbed.
			a.lit = false
			a.single = false
		}
	}
	if isBraceShape(shape.String()) {
		expands = true
		a.single = false
	}
	a.lits = lits.String()
	if a.lit {
		a.text = text.String()
	}
	a.plain = a.lit && !expands
	return a
}

// sourceOf returns the word as it was written.
func sourceOf(w *syntax.Word, src string) string {
	if len(w.Parts) == 0 {
		return ""
	}
	start, end := w.Pos().Offset(), w.End().Offset()
	if start < end && end <= uint(len(src)) {
		return src[start:end]
	}
	// Positions should always fall inside the source; printing the node is
	// a fallback that keeps error messages useful if they do not.
	var b strings.Builder
	if err := syntax.NewPrinter().Print(&b, w); err != nil {
		return "?"
	}
	return b.String()
}

// unquoteLit removes backslash quoting from an unquoted literal and reports
// which characters the shell would still expand: glob characters and ~.
// shape is s with every quoted character replaced by "_", for brace checks.
func unquoteLit(s string) (v, shape string, glob, tilde bool) {
	var b, sh strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' {
			if i+1 < len(s) {
				i++
				if s[i] != '\n' {
					b.WriteByte(s[i])
					sh.WriteByte('_')
				}
				continue
			}
			b.WriteByte(c)
			sh.WriteByte('_')
			continue
		}
		sh.WriteByte(c)
		switch c {
		case '*', '?', '[':
			glob = true
		case '~':
			// bash also expands ~ after = and : in words that look like
			// assignments; any unquoted ~ is treated as expanding.
			tilde = true
		}
		b.WriteByte(c)
	}
	return b.String(), sh.String(), glob, tilde
}

// isBraceShape reports whether unquoted text may hold a brace expansion:
// a "{" followed by "," or ".." and then "}". It errs towards yes, as
// bash's rules for which braces expand are intricate; "{}" is no.
func isBraceShape(s string) bool {
	open := strings.IndexByte(s, '{')
	if open < 0 {
		return false
	}
	rest := s[open+1:]
	sep := strings.IndexAny(rest, ",")
	if dots := strings.Index(rest, ".."); dots >= 0 && (sep < 0 || dots < sep) {
		sep = dots
	}
	return sep >= 0 && strings.IndexByte(rest[sep:], '}') >= 0
}

// unquoteDbl removes the backslashes that quote characters inside double
// quotes; elsewhere in double quotes a backslash is an ordinary character.
func unquoteDbl(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case '$', '`', '"', '\\':
				b.WriteByte(s[i+1])
				i++
				continue
			case '\n':
				i++
				continue
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// ansiC decodes the body of a $'...' string. It reports false when the
// result is not known exactly: a character outside ASCII (\u00e9, written
// as the locale says), a control character (\cX), or a NUL, where bash
// cuts the string short. The text it returns is still what bash would
// make of every ASCII character, so that quoting, $ and brackets built
// from escapes are seen in a word whose value is otherwise unknown.
func ansiC(s string) (string, bool) {
	if !strings.Contains(s, `\`) {
		return s, true
	}
	var b strings.Builder
	exact := true
	// char writes the character numbered n (\u, \U), and raw the byte
	// n (octal, \x); false: a NUL, which ends the string.
	char := func(n int, raw bool) bool {
		switch {
		case n == 0:
			return false
		case n < 0x80 || raw:
			b.WriteByte(byte(n))
		default:
			b.WriteRune(utf8.RuneError)
			exact = false
		}
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch e := s[i]; e {
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'e', 'E':
			b.WriteByte(0x1b)
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'v':
			b.WriteByte('\v')
		case '\\', '\'', '"', '?':
			b.WriteByte(e)
		case '0', '1', '2', '3', '4', '5', '6', '7':
			n, j := 0, i
			for ; j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7'; j++ {
				n = n*8 + int(s[j]-'0')
			}
			i = j - 1
			if !char(n&0xff, true) {
				return b.String(), false
			}
		case 'x':
			// Up to two hex digits; bash's \x{H...} takes every hex digit
			// up to a } it then skips if there is one, and keeps the
			// value's low byte (\x{124} is $).
			j := i + 1
			braced := j < len(s) && s[j] == '{'
			if braced {
				j++
			}
			n, k := 0, j
			for ; k < len(s) && (braced || k < j+2) && isHex(s[k]); k++ {
				n = (n*16 + hexVal(s[k])) & 0xff
			}
			if !braced && k == j {
				b.WriteString(`\x`)
				continue
			}
			if braced && k < len(s) && s[k] == '}' {
				k++
			}
			i = k - 1
			if !char(n, true) {
				return b.String(), false
			}
		case 'u', 'U':
			digits := 4
			if e == 'U' {
				digits = 8
			}
			n, k := 0, i+1
			for ; k < len(s) && k < i+1+digits && isHex(s[k]); k++ {
				n = n*16 + hexVal(s[k])
			}
			if k == i+1 {
				b.WriteByte('\\')
				b.WriteByte(e)
				continue
			}
			i = k - 1
			if !char(n, false) {
				return b.String(), false
			}
		case 'c':
			// A control character: never quoting or syntax. \c\\ is
			// control-backslash.
			if i+1 < len(s) {
				i++
				if s[i] == '\\' && i+1 < len(s) && s[i+1] == '\\' {
					i++
				}
			}
			b.WriteByte(0x1c)
			exact = false
		default:
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
	return b.String(), exact
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	default:
		return int(c-'A') + 10
	}
}

// splitsInQuotes reports whether a part inside double quotes can still
// become more than one word: "$@", "${a[@]}" and "${!prefix@}" do.
func splitsInQuotes(part syntax.WordPart) bool {
	found := false
	syntax.Walk(part, func(n syntax.Node) bool {
		if found {
			return false
		}
		switch n.(type) {
		case *syntax.CmdSubst, *syntax.ProcSubst, *syntax.ArithmExp:
			// Their output is one word inside quotes, whatever they hold.
			return false
		}
		pe, ok := n.(*syntax.ParamExp)
		if !ok {
			return true
		}
		if pe.Param != nil && pe.Param.Value == "@" || pe.Names != 0 {
			found = true
		}
		if w, ok := pe.Index.(*syntax.Word); ok && w.Lit() == "@" {
			found = true
		}
		return !found
	})
	return found
}

// isAssignWord reports whether env would take the word as NAME=VALUE
// whatever it expands to: the name and = are written out literally.
func isAssignWord(a arg) bool {
	if a.plain {
		return strings.IndexByte(a.text, '=') > 0
	}
	name, _, ok := strings.Cut(a.src, "=")
	return ok && isName(name)
}

func isName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// holdsSubst reports whether literal text would run a command if the shell
// evaluated it again, as bash does with prompt strings and array subscripts.
func holdsSubst(s string) bool {
	return strings.Contains(s, "$(") || strings.Contains(s, "`")
}

// holdsSubscriptSubst reports whether literal text is an array reference
// whose subscript runs a command when bash evaluates it, as in 'a[$(id)]'.
func holdsSubscriptSubst(s string) bool {
	i := strings.IndexByte(s, '[')
	return i >= 0 && holdsSubst(s[i:])
}
