package postgres

// fastKey returns a cache key for sql that is the same for statements that
// differ only in the values of their plain literals, without calling into
// the parser; ok is false whenever sql holds anything the scan is not
// certain how PostgreSQL reads.
//
// Why: the parser runs in C, and every cgo call leaves the goroutine's
// processor in the scheduler's syscall state. Made for each statement of a
// busy session (pg.Normalize, to find the classification cache entry), it
// keeps the runtime's monitor thread waking every 20 µs to take processors
// back, and on a 2-core node that alone cost a third of the throughput of
// simple-protocol clients that inline their values.
//
// Safety: a wrong key could hand a statement another statement's
// classification, so the scan only accepts a small, unambiguous subset and
// replaces only what PostgreSQL's own lexer reads as a literal constant:
//
//   - standard strings '...' (” inside; standard_conforming_strings is
//     forced on for every session, so a backslash is just a character),
//     on one line, not preceded by a letter, digit or underscore (E”, B”,
//     X”, U&”, N” prefixes are not accepted) and not continued on the
//     next line ('a'<newline>'b');
//   - unsigned numbers (digits, an optional fraction, an optional
//     exponent) that start a token and are followed by neither a letter,
//     digit, underscore nor dot;
//
// Everything else is kept byte for byte, case and spacing included, and the
// scan gives up at comments, quoted identifiers, dollar quotes and
// parameters ($), backslashes, and any byte outside printable ASCII. A
// statement is entered in the fast cache only after the parser classified
// it (see classifier.classify), and only plain SELECT, INSERT, UPDATE and
// DELETE statements whose classification reads no literal.
func fastKey(sql string) (key string, ok bool) {
	if len(sql) > 8<<10 {
		return "", false // long statements are rare; the parser can have them
	}
	b := make([]byte, 0, len(sql))
	prevIdent := false // the previous byte continues an identifier or number
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '\'':
			if prevIdent {
				return "", false // a prefixed string: E'..', B'..', X'..', N'..'
			}
			j := i + 1
			for {
				if j >= len(sql) {
					return "", false // unterminated
				}
				if sql[j] == '\'' {
					if j+1 < len(sql) && sql[j+1] == '\'' {
						j += 2
						continue
					}
					break
				}
				if sql[j] < 0x20 && sql[j] != '\t' {
					return "", false // newlines, and the rest: the parser's
				}
				j++
			}
			i = j + 1
			if i < len(sql) && (isIdent(sql[i]) || sql[i] == '\'') {
				return "", false
			}
			// 'a'<newline>'b' is one constant to PostgreSQL: leave
			// continued strings to the parser.
			newline := false
			for k := i; k < len(sql) && (sql[k] == ' ' || sql[k] == '\t' || sql[k] == '\n' || sql[k] == '\r'); k++ {
				newline = newline || sql[k] == '\n' || sql[k] == '\r'
				if newline && k+1 < len(sql) && sql[k+1] == '\'' {
					return "", false
				}
			}
			b = append(b, 0, 'S')
			prevIdent = false
		case c >= '0' && c <= '9' && !prevIdent:
			j := i
			for j < len(sql) && sql[j] >= '0' && sql[j] <= '9' {
				j++
			}
			if j < len(sql) && sql[j] == '.' {
				j++
				for j < len(sql) && sql[j] >= '0' && sql[j] <= '9' {
					j++
				}
			}
			if j < len(sql) && (sql[j] == 'e' || sql[j] == 'E') {
				k := j + 1
				if k < len(sql) && (sql[k] == '+' || sql[k] == '-') {
					k++
				}
				if k >= len(sql) || sql[k] < '0' || sql[k] > '9' {
					return "", false
				}
				for k < len(sql) && sql[k] >= '0' && sql[k] <= '9' {
					k++
				}
				j = k
			}
			if j < len(sql) && (isIdent(sql[j]) || sql[j] == '.') {
				return "", false // 1x, 1.2.3, 0x1F: not a plain number
			}
			i = j
			b = append(b, 0, 'N')
			prevIdent = false
		case isIdent(c):
			b = append(b, c)
			prevIdent = true
			i++
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
			c == ',' || c == '(' || c == ')' || c == ';' || c == '=' || c == '<' || c == '>' ||
			c == '+' || c == '*' || c == '%' || c == ':' || c == '|' || c == '!':
			b = append(b, c)
			prevIdent = false
			i++
		case c == '.':
			if i+1 < len(sql) && sql[i+1] >= '0' && sql[i+1] <= '9' && !prevIdent {
				return "", false // .5
			}
			b = append(b, c)
			prevIdent = false
			i++
		case c == '-':
			if i+1 < len(sql) && sql[i+1] == '-' {
				return "", false // a comment
			}
			b = append(b, c)
			prevIdent = false
			i++
		case c == '/':
			if i+1 < len(sql) && sql[i+1] == '*' {
				return "", false // a comment
			}
			b = append(b, c)
			prevIdent = false
			i++
		default:
			// " $ \ ` ? @ # & ^ ~ [ ] { } and anything not printable
			// ASCII.
			return "", false
		}
	}
	return string(b), true
}

func isIdent(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// fastCacheable reports whether a classification may be found by its
// fast key: plain DML whose reading depends on no literal, and no number
// naming an output column.
func fastCacheable(st *Statement) bool {
	if st.literalSensitive || st.positions {
		return false
	}
	switch st.Command {
	case "SELECT", "INSERT", "UPDATE", "DELETE":
		return true
	}
	return false
}
