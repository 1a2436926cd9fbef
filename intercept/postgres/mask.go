package postgres

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/corral-dev/corral/policy"
)

// Type OIDs whose text form any string can stand in for. Masking any other
// type with a string would break the client's parsing, so those are masked
// to NULL.
var textTypes = map[uint32]bool{25: true, 1043: true, 1042: true, 19: true, 18: true, 705: true}

// textualTypes carry text inside: json, jsonb, xml, and arrays of text,
// json and xml. Detectors read them too (`to_json(body)`, `ARRAY[body]`).
var textualTypes = map[uint32]bool{114: true, 3802: true, 142: true, 1009: true, 1015: true, 1014: true, 1003: true, 199: true, 3807: true, 143: true}

// plainTypes hold no text: numbers, times, addresses, identifiers, and
// arrays and ranges of them. Detectors read every other type's values.
// (A card number stored as a number is not read: one 16-digit identifier
// in ten passes Luhn.)
var plainTypes = map[uint32]bool{
	16: true, 20: true, 21: true, 23: true, 26: true, 27: true, 28: true, 29: true, 5069: true, // bool, integers, oid, tid, xid, cid
	700: true, 701: true, 1700: true, 790: true, // floats, numeric, money
	1082: true, 1083: true, 1266: true, 1114: true, 1184: true, 1186: true, // dates and times
	2950: true, 869: true, 650: true, 829: true, 774: true, 1560: true, 1562: true, 3220: true, // uuid, inet, cidr, macaddr, bit, pg_lsn
	600: true, 601: true, 602: true, 603: true, 604: true, 628: true, 718: true, // geometry
	1000: true, 1005: true, 1007: true, 1016: true, 1028: true, 1021: true, 1022: true, 1231: true, // arrays of the above
	1182: true, 1183: true, 1115: true, 1185: true, 1187: true, 2951: true, 1041: true,
	3904: true, 3926: true, 3906: true, 3912: true, 3908: true, 3910: true, // ranges
}

// maskValue applies method to v (text format); nil means SQL NULL.
func maskValue(method string, v []byte, key []byte) []byte {
	switch method {
	case "null":
		return nil
	case "partial":
		return partial(v)
	case "hash":
		m := hmac.New(sha256.New, key)
		m.Write(v)
		return []byte(hex.EncodeToString(m.Sum(nil))[:16])
	}
	return []byte("****")
}

// partial keeps the last four characters: enough to recognise a card or a
// phone number, not enough to use it.
func partial(v []byte) []byte {
	n := utf8.RuneCount(v)
	if n <= 4 {
		return []byte(strings.Repeat("*", n))
	}
	out := make([]byte, 0, len(v))
	i := 0
	for len(v) > 0 {
		r, size := utf8.DecodeRune(v)
		if i < n-4 {
			out = append(out, '*')
		} else {
			out = utf8.AppendRune(out, r)
		}
		v = v[size:]
		i++
	}
	return out
}

// detector finds one kind of sensitive value inside text.
type detector struct {
	re    *regexp.Regexp
	check func([]byte) bool // extra validation of a match (Luhn, IBAN checksum)
	// within finds the valid values inside a match that fails check as a
	// whole (a card number run together with an expiry date).
	within func([]byte) [][2]int
	// digitBound: a match counts when no digit touches it, whatever else
	// does. A word boundary would let a number run together with a name
	// (`name || card`) through.
	digitBound bool
}

// anything stands in for a detector corral does not know: the whole
// (non-empty) value is a finding.
var anything = detector{re: regexp.MustCompile(`(?s).+`)}

// Value detectors. Regular expressions here scan result values for known
// shapes of secrets; they never interpret SQL.
var detectors = map[string]detector{
	"credit_card":  {re: regexp.MustCompile(`(?:\d[ -]?){12,}\d`), check: cardDigits, within: cardWithin, digitBound: true},
	"email":        {re: regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`)},
	"ssn":          {re: regexp.MustCompile(`\d{3}-\d{2}-\d{4}`), digitBound: true},
	"phone":        {re: regexp.MustCompile(`(?:\+\d{1,3}[ .-]?)?\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}`), digitBound: true},
	"iban":         {re: regexp.MustCompile(`\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b`), check: ibanValid},
	"aws_key":      {re: regexp.MustCompile(`\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`)},
	"gcp_key":      {re: regexp.MustCompile(`\bAIza[0-9A-Za-z_-]{35}\b`)},
	"github_token": {re: regexp.MustCompile(`\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b`)},
	"jwt":          {re: regexp.MustCompile(`\beyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*`)},
}

func luhn(b []byte) bool {
	sum, n := 0, 0
	for i := len(b) - 1; i >= 0; i-- {
		c := b[i]
		if c < '0' || c > '9' {
			continue
		}
		d := int(c - '0')
		if n%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		n++
	}
	return n >= 13 && sum%10 == 0
}

// cardDigits is a whole match that is a card number: 13 to 19 digits
// passing Luhn.
func cardDigits(b []byte) bool {
	n := 0
	for _, c := range b {
		if c >= '0' && c <= '9' {
			n++
		}
	}
	return n <= 19 && luhn(b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// digitGroups returns where each run of digits in b starts and ends.
func digitGroups(b []byte) (starts, ends []int) {
	for i := range b {
		digit := isDigit(b[i])
		if digit && (i == 0 || !isDigit(b[i-1])) {
			starts = append(starts, i)
		}
		if digit && (i == len(b)-1 || !isDigit(b[i+1])) {
			ends = append(ends, i+1)
		}
	}
	return starts, ends
}

// cardWithin finds, inside a run of digit groups, the card numbers made
// of whole groups: from the left, the longest valid span at each start.
// Windows inside an unbroken run of digits are not tried: one in ten passes
// Luhn by chance.
func cardWithin(b []byte) [][2]int {
	starts, ends := digitGroups(b)
	var spans [][2]int
	pos := 0
	for i, st := range starts {
		if st < pos {
			continue
		}
		// Only spans of at most 19 digits can be cards: look no further.
		// Luhn doubles every second digit from the right, so the sums
		// doubling the even and the odd digits from the left are kept
		// both, and each span's end picks one: the groups are read once
		// from each start, not again for each end.
		best, digits, sums := -1, 0, [2]int{}
		for j := i; j < len(ends) && j < len(starts); j++ {
			for _, c := range b[starts[j]:ends[j]] {
				d := int(c - '0')
				dd := 2 * d
				if dd > 9 {
					dd -= 9
				}
				// sums[0] doubles the digits at even places, sums[1] odd.
				if digits%2 == 0 {
					sums[0] += dd
					sums[1] += d
				} else {
					sums[0] += d
					sums[1] += dd
				}
				digits++
			}
			if digits > 19 {
				break
			}
			// The last digit, at place digits-1, is not doubled: those
			// doubled are at the places of digits' parity.
			if digits >= 13 && sums[digits%2]%10 == 0 {
				best = ends[j]
			}
		}
		if best > 0 {
			spans = append(spans, [2]int{st, best})
			pos = best
		}
	}
	return spans
}

func ibanValid(b []byte) bool {
	s := strings.ReplaceAll(string(b), " ", "")
	if len(s) < 15 || len(s) > 34 {
		return false
	}
	s = s[4:] + s[:4]
	rem := 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			rem = (rem*10 + int(r-'0')) % 97
		case r >= 'A' && r <= 'Z':
			v := int(r-'A') + 10
			rem = (rem*100 + v) % 97
		default:
			return false
		}
	}
	return rem == 1
}

// detectRule is one `detect` mask: these detectors, this method.
type detectRule struct {
	detectors []detector
	method    string
}

// maxScan bounds the text detectors read in one value: all of them
// together read about 4 MiB a second, and a workload could have the
// server return values up to a gigabyte. A longer value is withheld.
const maxScan = 1 << 20

// withheldText stands in for a message detectors did not read.
const withheldText = "corral: withheld, longer than corral's detectors read"

// scrub masks every detected value inside v; out is nil when the method
// is null and something was found (the whole value becomes NULL), and
// for a value longer than maxScan.
func scrub(v []byte, rules []detectRule, key []byte) (out []byte, changed bool) {
	if len(rules) > 0 && len(v) > maxScan {
		return nil, true
	}
	out = v
	for _, r := range rules {
		for _, d := range r.detectors {
			locs := d.re.FindAllIndex(out, -1)
			if len(locs) == 0 {
				continue
			}
			var b []byte
			last := 0
			hit := false
			var spans [][2]int
			for _, l := range locs {
				m := out[l[0]:l[1]]
				if d.digitBound && (l[0] > 0 && isDigit(out[l[0]-1]) || l[1] < len(out) && isDigit(out[l[1]])) {
					continue
				}
				switch {
				case d.check == nil || d.check(m):
					spans = append(spans, [2]int{l[0], l[1]})
				case d.within != nil:
					for _, sp := range d.within(m) {
						spans = append(spans, [2]int{l[0] + sp[0], l[0] + sp[1]})
					}
				}
			}
			for _, l := range spans {
				m := out[l[0]:l[1]]
				if r.method == "null" {
					return nil, true
				}
				hit = true
				b = append(b, out[last:l[0]]...)
				b = append(b, maskValue(r.method, m, key)...)
				last = l[1]
			}
			if hit {
				out = append(b, out[last:]...)
				changed = true
			}
		}
	}
	return out, changed
}

// detected reports whether detectors find anything in v, a value of type
// typ (0: not known) that is withheld if so. A binary array or row is read
// element by element: each element follows its length in 4 bytes, whose
// last may be an ASCII digit or letter that would touch the value and hide
// it from a bounded detector (or, read as one with it, make a card number
// of an ordinary one). A text element is then read as text is; any other
// binary value (a range, a tsvector: counts and lengths inside it) is read
// without digit bounds.
func detected(v []byte, binary bool, typ uint32, rules []detectRule) bool {
	if len(rules) > 0 && len(v) > maxScan {
		return true
	}
	if binary {
		return binaryFinds(v, typ, rules, 0)
	}
	_, found := scrub(v, rules, nil)
	return found
}

// maxNesting bounds how deep binary arrays and rows are read apart.
const maxNesting = 8

// textLeaf: a binary value of the type is its text (json, xml, bytea's
// bytes as they are) or almost (jsonb: a version byte).
func textLeaf(typ uint32) bool {
	return textTypes[typ] || typ == 114 || typ == 3802 || typ == 142 || typ == 17
}

func binaryFinds(v []byte, typ uint32, rules []detectRule, depth int) bool {
	if depth < maxNesting {
		elems, ok := binaryArray(v)
		if !ok {
			elems, ok = binaryRow(v)
		}
		if ok {
			for _, e := range elems {
				if binaryFinds(e.v, e.typ, rules, depth+1) {
					return true
				}
			}
			return false
		}
	}
	if textLeaf(typ) {
		_, found := scrub(v, rules, nil)
		return found
	}
	return unboundedFinds(v, rules)
}

// unboundedFinds reads v without digit bounds, and tries a card number
// also without one or two digits in front (a count or length before it).
func unboundedFinds(v []byte, rules []detectRule) bool {
	for _, r := range rules {
		for _, d := range r.detectors {
			for _, l := range d.re.FindAllIndex(v, -1) {
				m := v[l[0]:l[1]]
				for cut := 0; cut <= 2 && len(m) > cut && (cut == 0 || isDigit(m[cut-1])); cut++ {
					if d.check == nil || d.check(m[cut:]) || d.within != nil && len(d.within(m[cut:])) > 0 {
						return true
					}
				}
			}
		}
	}
	return false
}

// element is one value of a binary array or row, and its type.
type element struct {
	v   []byte
	typ uint32
}

// binaryArray splits a value in PostgreSQL's binary array format (array_send)
// into its elements; false when v is not one.
func binaryArray(v []byte) ([]element, bool) {
	if len(v) < 12 {
		return nil, false
	}
	ndim, flags := binary.BigEndian.Uint32(v[0:4]), binary.BigEndian.Uint32(v[4:8])
	if ndim > 6 || flags > 1 || len(v) < 12+8*int(ndim) {
		return nil, false
	}
	n := 1
	if ndim == 0 {
		n = 0
	}
	for d := range int(ndim) {
		size := int(int32(binary.BigEndian.Uint32(v[12+8*d:])))
		if size < 0 || size > len(v) {
			return nil, false
		}
		n *= size
		if n > len(v) {
			return nil, false
		}
	}
	return lengthPrefixed(v, 12+8*int(ndim), n, false, binary.BigEndian.Uint32(v[8:12]))
}

// binaryRow splits a value in PostgreSQL's binary row format (record_send)
// into its fields; false when v is not one.
func binaryRow(v []byte) ([]element, bool) {
	if len(v) < 4 {
		return nil, false
	}
	n := binary.BigEndian.Uint32(v[0:4])
	if n > 1664 { // PostgreSQL's bound on a row's columns
		return nil, false
	}
	return lengthPrefixed(v, 4, int(n), true, 0)
}

// lengthPrefixed reads n values from v at pos, each after its type when
// typed (else of type typ) and its length (-1: NULL); false unless they
// fill v.
func lengthPrefixed(v []byte, pos, n int, typed bool, typ uint32) ([]element, bool) {
	var out []element
	for range n {
		t := typ
		if typed {
			if pos+4 > len(v) {
				return nil, false
			}
			t = binary.BigEndian.Uint32(v[pos:])
			pos += 4
		}
		if pos+4 > len(v) {
			return nil, false
		}
		l := int(int32(binary.BigEndian.Uint32(v[pos:])))
		pos += 4
		if l == -1 {
			continue
		}
		if l < 0 || l > len(v)-pos {
			return nil, false
		}
		out = append(out, element{v[pos : pos+l], t})
		pos += l
	}
	return out, pos == len(v)
}

// masks is what a session's decision says to mask, in a form the result
// path can use quickly.
type masks struct {
	columns map[string]string // "table.column" and "schema.table.column" -> method
	tables  map[string]bool   // tables (bare and qualified) with masked columns
	detect  []detectRule
	// filters: masked columns that statements may filter by only for
	// equality ("equality") or not at all ("none"); strictFilters is the
	// strictest of them, for what names no column (a view's, a whole row).
	filters       map[string]string
	strictFilters string
	keys          []string // of columns, sorted: matches are found in one order
}

func compileMasks(ms []policy.Mask) *masks {
	if len(ms) == 0 {
		return nil
	}
	m := &masks{columns: map[string]string{}, tables: map[string]bool{}}
	for _, mk := range ms {
		for _, c := range mk.Columns {
			c = strings.ToLower(c)
			if n := strings.Count(c, "."); n < 1 || n > 2 {
				continue // the policy engine refuses such decisions
			}
			if prev, ok := m.columns[c]; !ok || strictness(mk.Method) > strictness(prev) {
				m.columns[c] = mk.Method
			}
			if f := mk.Filters; f == "equality" || f == "none" {
				if m.filters == nil {
					m.filters = map[string]string{}
				}
				m.filters[c] = stricterFilter(m.filters[c], f)
				m.strictFilters = stricterFilter(m.strictFilters, f)
			}
			parts := strings.Split(c, ".")
			m.tables[strings.Join(parts[:len(parts)-1], ".")] = true
			m.tables[parts[len(parts)-2]] = true
			if !slices.Contains(m.keys, c) {
				m.keys = append(m.keys, c)
			}
		}
		if len(mk.Detect) > 0 {
			r := detectRule{method: mk.Method}
			for _, name := range mk.Detect {
				d, ok := detectors[name]
				if !ok {
					// The policy engine refuses decisions naming an
					// unknown detector; should one get here anyway, it
					// finds everything: a value is masked, never leaked.
					d = anything
				}
				r.detectors = append(r.detectors, d)
			}
			m.detect = append(m.detect, r)
		}
	}
	slices.Sort(m.keys)
	return m
}

// restricts reports whether m restricts filters by some column more than
// before did.
func (m *masks) restricts(before *masks) bool {
	if m == nil {
		return false
	}
	for c, f := range m.filters {
		old := ""
		if before != nil {
			old = before.filters[c]
		}
		if stricterFilter(old, f) != old {
			return true
		}
	}
	return false
}

// stricterFilter returns the stricter of two filters settings ("" is any).
func stricterFilter(a, b string) string {
	if a == "none" || b == "" {
		return a
	}
	if b == "none" || a == "" {
		return b
	}
	return a // both equality
}

// strictness orders methods by how little they reveal.
func strictness(method string) int {
	switch method {
	case "null":
		return 3
	case "redact":
		return 2
	case "hash":
		return 1
	}
	return 0
}

// method returns the mask method for schema.table.column, "" if none: the
// stricter of a schema-qualified and a bare rule, when both exist.
func (m *masks) method(schema, table, column string) string {
	if m == nil {
		return ""
	}
	table, column = strings.ToLower(table), strings.ToLower(column)
	return stricter(m.columns[strings.ToLower(schema)+"."+table+"."+column], m.columns[table+"."+column])
}

// tableMethod is the strictest method of the masked columns of a table, ""
// if it has none: what a whole row of it, or a view over it, gets.
func (m *masks) tableMethod(schema, table string) string {
	if m == nil {
		return ""
	}
	best := ""
	for c, method := range m.columns {
		parts := strings.Split(c, ".")
		tbl := parts[len(parts)-2]
		if !strings.EqualFold(tbl, table) || (len(parts) == 3 && !strings.EqualFold(parts[0], schema)) {
			continue
		}
		if best == "" || strictness(method) > strictness(best) {
			best = method
		}
	}
	return best
}

// stricter returns the stricter of two methods ("" is none).
func stricter(a, b string) string {
	if a == "" || (b != "" && strictness(b) > strictness(a)) {
		return b
	}
	return a
}

// sqlRunners run SQL given as text, or read tables by name: their results
// say nothing of where values came from.
var sqlRunners = []string{
	"query_to_xml", "query_to_xml_and_xmlschema", "query_to_xmlschema", "cursor_to_xml", "cursor_to_xmlschema",
	"table_to_xml", "table_to_xml_and_xmlschema", "table_to_xmlschema", "schema_to_xml", "schema_to_xml_and_xmlschema",
	"schema_to_xmlschema", "database_to_xml", "database_to_xml_and_xmlschema", "database_to_xmlschema",
	"ts_stat", "ts_rewrite", "dblink", "dblink_exec", "dblink_send_query", "dblink_open", "dblink_fetch", "dblink_get_result",
	"crosstab", "crosstab2", "crosstab3", "crosstab4", "connectby", // tablefunc
	"xpath_table",                                                                   // xml2: also runs statements appended to its arguments
	"dblink_build_sql_insert", "dblink_build_sql_update", "dblink_build_sql_delete", // a row, read by the table's name
	// pageinspect: a table's pages, raw or split into its rows' values.
	"get_raw_page", "heap_page_items", "heap_page_item_attrs", "tuple_data_split", "bt_page_items",
	"brin_page_items", "gist_page_items", "hash_page_items",
	"pg_stat_get_activity", "pg_stat_get_backend_activity", "pg_stat_statements", // other sessions' statements
}

// sideChannels are functions that take a value somewhere a later
// statement reads it back: a notification, a setting, a sequence, a
// large object, an advisory lock's key (pg_locks shows it).
var sideChannels = append([]string{"pg_notify", "set_config", "setval", "lo_from_bytea", "lo_put", "lowrite", "lo_write",
	// A large object's number, position or length, read back later.
	"lo_create", "lo_creat", "lo_import", "lo_lseek", "lo_lseek64", "lo_truncate", "lo_truncate64", "lo_open"},
	advisoryLocks...)

// statsViews hold samples of column values.
var statsViews = []string{"pg_stats", "pg_stats_ext", "pg_stats_ext_exprs", "pg_statistic", "pg_statistic_ext_data"}

// activityViews show other sessions' statements, literals included.
var activityViews = []string{"pg_stat_activity", "pg_stat_statements"}

// lineage names the relations of a statement through which masked values
// flow under other names (see session.lineage); names are lower case.
type lineage struct {
	views map[string]bool // views that read masked columns
	// kin: parents and children of tables with masked columns -> those
	// tables (inheritance, partitions).
	kin map[string][]string
	// function is a function of the database's own that a statement
	// whose values escape calls: its body may read masked columns.
	function string
	// rowFunctions are the names after a dot that may call a function
	// with the whole row (c.to_jsonb is to_jsonb(c)), lower case.
	rowFunctions map[string]bool
}

// rowCall reports whether r, a qualified reference, may be attribute
// notation: a function given its qualifier's whole row. PostgreSQL reads
// c.name as a column when c has one of the name; corral does not ask, and
// takes it as the row.
func (l lineage) rowCall(r colRef) bool {
	return r.qual != "" && !r.star && l.rowFunctions[strings.ToLower(r.name)]
}

// masked reports whether rel, a relation name, has masked columns, or is
// a view or parent through which some flow.
func (m *masks) masked(rel string, l lineage) bool {
	rel = strings.ToLower(rel)
	return m.tables[rel] || l.views[rel] || len(l.kin[rel]) > 0
}

// renamed returns the relation with masked columns that a statement
// renames or moves, or "".
func (m *masks) renamed(s *Statement, l lineage) string {
	if m == nil || len(m.columns) == 0 || !s.renames {
		return ""
	}
	if s.renamesSchema {
		return "a schema" // masks may name it; which tables it holds is not looked up
	}
	for _, t := range s.Tables {
		if m.masked(t, l) || m.masked(lastName(t), l) {
			return t
		}
	}
	return ""
}

// maskedRel reports whether name (an alias or a relation) names, in any
// scope of the statement, a relation with masked columns.
func (m *masks) maskedRel(s *Statement, name string, l lineage) (string, bool) {
	for _, rel := range s.aliases[name] {
		if m.masked(rel, l) {
			return rel, true
		}
	}
	return "", false
}

// names reports whether rel, as the statement writes it, is table or kin
// of it.
func (l lineage) names(rel, table string) bool {
	return strings.EqualFold(rel, table) || slices.Contains(l.kin[strings.ToLower(rel)], strings.ToLower(table))
}

// escapes reports whether values the statement reads may leave other than
// as its result rows: into a table, a file or a copy, or a side channel.
func (s *Statement) escapes() bool {
	if s.CopyTo || s.Into || s.writes {
		return true
	}
	for _, c := range s.Calls {
		if slices.Contains(sideChannels, c) {
			return true
		}
	}
	return false
}

// leak returns why the statement would let a masked value out of reach of
// result masking — a masked column inside an expression, a subquery, a
// CTE, a set operation, a whole-row reference, a copy or a side channel —
// or "" if it would not. Such a statement is refused: its result could not
// be masked by column. Names are matched in every scope at once: an alias
// that names a masked table anywhere counts as masked everywhere.
func (m *masks) leak(s *Statement, l lineage) string {
	if m != nil && len(m.detect) > 0 && s.CopyTo {
		// COPY's rows are not result rows: detectors never see them.
		return "COPY ... TO (detectors do not read copied rows)"
	}
	if m == nil || len(m.columns) == 0 {
		return ""
	}
	for _, t := range s.Tables {
		base := strings.ToLower(lastName(t))
		if slices.Contains(statsViews, base) {
			return t + " (column statistics hold sample values)"
		}
		if slices.Contains(activityViews, base) {
			return t + " (other sessions' statements hold their values)"
		}
	}
	for _, c := range s.Calls {
		if slices.Contains(sqlRunners, c) {
			return c + "() (runs SQL, or reads a table by its name, out of reach of masking)"
		}
	}
	if l.function != "" {
		return l.function + "() (a function of the database's own may read masked columns, and its result would be copied out)"
	}
	for _, t := range s.hooked {
		if m.maskedName(t, l) {
			return t + " (a rule or trigger on a table with masked columns sees its rows, and may copy them elsewhere)"
		}
	}
	masked, view := m.maskedTable(s, l), ""
	for _, t := range s.Tables {
		if view == "" && l.views[strings.ToLower(lastName(t))] {
			view = t
		}
	}
	if masked == "" {
		return ""
	}
	for _, c := range s.Calls {
		if slices.Contains(sideChannels, c) {
			return masked + " with " + c + "()"
		}
	}
	if s.CopyTo {
		return masked + " (COPY ... TO)"
	}
	if s.Into {
		return masked + " (copied into a new table)"
	}
	for _, r := range s.renamed {
		if m.masked(r, l) {
			return r + " (column aliases rename masked columns)"
		}
	}
	write := s.writes
	for _, r := range s.refs {
		if r.ctx == ctxFilter {
			continue // see filtered
		}
		// A view does not say which of its columns carry masked values:
		// any of them may, and a write would keep it unmasked.
		if write && view != "" && r.ctx == ctxExpr {
			if r.qual == "" {
				return view + " (a view over masked columns, copied into a table)"
			}
			for _, rel := range s.aliases[r.qual] {
				if l.views[strings.ToLower(rel)] {
					return rel + " (a view over masked columns, copied into a table)"
				}
			}
		}
		switch {
		case r.star:
			if r.ctx != ctxPlain {
				if r.qual == "" {
					return masked + ".*"
				}
				if rel, ok := m.maskedRel(s, r.qual, l); ok {
					return rel + ".*"
				}
			}
		case l.rowCall(r) && (r.ctx != ctxPlain || write):
			if rel, ok := m.maskedRel(s, r.qual, l); ok {
				return fmt.Sprintf("%s (whole row, as %s.%s passes it to %s())", rel, r.qual, r.name, r.name)
			}
			if col := m.refersTo(s, r, l); col != "" {
				return col
			}
		case r.qual == "" && len(s.aliases[r.name]) > 0:
			if rel, ok := m.maskedRel(s, r.name, l); ok {
				return rel + " (whole row)"
			}
			// PostgreSQL reads a bare name as a column before a table:
			// an alias named like a masked column does not hide it.
			if r.ctx != ctxPlain {
				if col := m.refersTo(s, r, l); col != "" {
					return col
				}
			}
		case r.ctx != ctxPlain:
			if col := m.refersTo(s, r, l); col != "" {
				return col
			}
		}
	}
	return ""
}

// refersTo returns a masked column (table.column) a column reference may
// name, "" when it names none.
func (m *masks) refersTo(s *Statement, r colRef, l lineage) string {
	col, _ := m.strictestRef(s, r, l)
	return col
}

// strictestRef returns, of the masked columns a column reference may name
// (an unqualified name: those of the relations the statement names), the
// one whose filters setting is strictest, and that setting.
func (m *masks) strictestRef(s *Statement, r colRef, l lineage) (col, mode string) {
	for _, c := range m.keys {
		parts := strings.Split(c, ".")
		name, tbl := parts[len(parts)-1], parts[len(parts)-2]
		if !strings.EqualFold(r.name, name) {
			continue
		}
		// An unqualified name is a column of a relation of the
		// statement; a qualified one, of what its qualifier names.
		rels := s.aliases[r.qual]
		if r.qual == "" {
			rels = s.Tables
		}
		names := false
		for _, rel := range rels {
			names = names || l.names(lastName(rel), tbl)
		}
		if names && (col == "" || stricterFilter(mode, m.filters[c]) != mode) {
			col, mode = tbl+"."+name, m.filters[c]
		}
	}
	return col, mode
}

// filtered returns why the statement filters, sorts or groups by a masked
// column more than its mask's filters setting allows, or "".
func (m *masks) filtered(s *Statement, l lineage) string {
	if m == nil || m.strictFilters == "" {
		return ""
	}
	masked := m.maskedTable(s, l)
	if s.reorders && (masked != "" || len(s.Tables) == 0) {
		// A bare CLUSTER reorders every table clustered before.
		return "the statement would lay out a table's rows in the order of an index, which may be on a masked column, while masks restrict filters"
	}
	if masked == "" {
		return ""
	}
	for _, r := range s.refs {
		if r.ctx != ctxFilter {
			continue
		}
		if why := m.filterLeak(s, r, l); why != "" {
			return why
		}
	}
	return ""
}

// correlated returns why a filter term of the statement matches a part
// of a masked column with values of another row source, or "": rows of
// generate_series, or of any table, kept where ascii(substr(email, i,
// 1)) = g spell the value out in one statement, into the result or into
// a table. A term over the masked row alone (lower(email) LIKE $1) tells
// a bit a row, as filters: any allows; one comparing the column whole
// (a.email = c.email) confirms whole guesses only. Whatever the masks'
// filters setting.
func (m *masks) correlated(s *Statement, l lineage) string {
	if m == nil || len(m.columns) == 0 || m.maskedTable(s, l) == "" {
		return ""
	}
	units := map[int][]colRef{}
	for _, r := range s.refs {
		if r.ctx == ctxFilter && r.unit > 0 {
			units[r.unit] = append(units[r.unit], r)
		}
	}
	for _, refs := range units {
		for i, r := range refs {
			if r.whole {
				continue
			}
			what := m.carries(s, r, l)
			if what == "" {
				continue
			}
			if r.limit {
				return fmt.Sprintf("the statement counts rows by the masked %s (LIMIT, OFFSET or a window frame's offset): the rows it keeps, of any source, could spell out the value", what)
			}
			if s.rowFns[r.unit] {
				return fmt.Sprintf("the statement matches part of the masked %s against an aggregate, a window, set-returning or volatile function, which stand for other rows, in one filter: its rows could spell out the value", what)
			}
			for j, o := range refs {
				if i != j && !sameSource(s, r, o) {
					return fmt.Sprintf("the statement matches part of the masked %s against %s, a column of another row source, in one filter: its rows could spell out the value; compare the column whole (col = other.col) or filter by it alone", what, refName(o))
				}
			}
		}
	}
	return ""
}

// carries returns the masked column, whole row or view column a column
// reference may read, or "".
func (m *masks) carries(s *Statement, r colRef, l lineage) string {
	if what, ok := m.wholeRow(s, r, l); ok {
		return what
	}
	if col := m.refersTo(s, r, l); col != "" {
		return "column " + col
	}
	if v := m.viewColumn(s, r, l); v != "" {
		return "view column " + v
	}
	return ""
}

// wholeRow returns the masked relation a reference reads as a whole row
// (t.*, a bare alias, a function called on it by attribute notation), and
// whether it is settled as one: a star always is; an alias or a call that
// names no masked relation may still be a column of that name.
func (m *masks) wholeRow(s *Statement, r colRef, l lineage) (string, bool) {
	switch {
	case r.star && r.qual == "":
		if t := m.maskedTable(s, l); t != "" {
			return t + ".*", true
		}
		return "", true
	case r.star:
		if rel, ok := m.maskedRel(s, r.qual, l); ok {
			return rel + " (whole row)", true
		}
		return "", true
	case l.rowCall(r):
		if rel, ok := m.maskedRel(s, r.qual, l); ok {
			return fmt.Sprintf("%s (whole row, as %s.%s passes it to %s())", rel, r.qual, r.name, r.name), true
		}
	case r.qual == "" && r.name != "" && len(s.aliases[r.name]) > 0:
		// PostgreSQL reads a bare name as a column first.
		if rel, ok := m.maskedRel(s, r.name, l); ok {
			return rel + " (whole row)", true
		}
	}
	return "", false
}

// viewColumn returns the column (relation.column) of a view over masked
// columns a reference may read, or "".
func (m *masks) viewColumn(s *Statement, r colRef, l lineage) string {
	rels := s.aliases[r.qual]
	if r.qual == "" {
		rels = s.Tables
	}
	for _, rel := range rels {
		if l.views[strings.ToLower(lastName(rel))] {
			return rel + "." + r.name
		}
	}
	return ""
}

// sameSource reports whether two column references of a statement are
// sure to read the same row: written in the same query, and qualified
// alike (at one level a qualifier names one relation) or the statement
// has a single row source.
func sameSource(s *Statement, a, b colRef) bool {
	if a.level != b.level {
		// An outer query's row, or a subquery's: a qualifier may name
		// another relation at each level.
		return false
	}
	// As written: public.customers.email may name a table a subquery's
	// alias customers hides from customers.email.
	qa, qb := a.path, b.path
	if qa == "" && !a.star && len(s.aliases[a.name]) > 0 {
		qa = a.name // a bare alias: the whole row
	}
	if qb == "" && !b.star && len(s.aliases[b.name]) > 0 {
		qb = b.name
	}
	if qa != "" && qb != "" {
		// A join's alias names every relation in it.
		return strings.EqualFold(qa, qb) && len(s.aliases[lastName(qa)]) <= 1
	}
	return s.sources <= 1
}

// refName writes a column reference as the statement does.
func refName(r colRef) string {
	switch {
	case r.star && r.qual != "":
		return r.qual + ".*"
	case r.star:
		return "*"
	case r.qual != "":
		return r.qual + "." + r.name
	}
	return r.name
}

// plannerChange returns why the statement may not change a setting of
// the planner while masks restrict filters, or "": forced onto an index
// (enable_seqscan = off, a low random_page_cost), a plan returns rows in
// the order of an index on a masked column without sorting by it.
func (m *masks) plannerChange(s *Statement) string {
	if m == nil || m.strictFilters == "" {
		return ""
	}
	if name := plannerSetting(slices.Concat(s.Sets, s.defaults)); name != "" {
		return fmt.Sprintf("changing the planner setting %s is refused while masks restrict filters: a plan could return rows in the order of a masked column's index", name)
	}
	return ""
}

// plannerSetting returns a setting of the planner's among names, or "".
func plannerSetting(names []string) string {
	for _, name := range names {
		if strings.HasPrefix(name, "enable_") || strings.HasSuffix(name, "_cost") || name == "effective_cache_size" {
			return name
		}
	}
	return ""
}

// filterLeak returns why a filter (WHERE, JOIN ON, ORDER BY, GROUP BY,
// ...) by r is more than the masks' filters settings allow, or "". A
// column of a view over masked columns and a whole row are held to the
// strictest setting: which masked column they carry is not known. A
// parent's or child's column goes by the masked column's name.
func (m *masks) filterLeak(s *Statement, r colRef, l lineage) string {
	why := func(what, mode string) string {
		if mode == "none" {
			return fmt.Sprintf("the statement filters, sorts or groups by the masked column %s, which its mask does not allow (filters: none)", what)
		}
		return fmt.Sprintf("the statement filters, sorts or groups by the masked column %s other than comparing it whole with a value (filters: equality allows col = $1, col IN (...), col IS NULL)", what)
	}
	if what, ok := m.wholeRow(s, r, l); ok {
		// A whole row: compared or sorted, it is compared by its columns.
		if what == "" {
			return ""
		}
		return why(what, m.strictFilters)
	}
	col, mode := m.strictestRef(s, r, l)
	if col == "" {
		// A view's column may carry a masked one under its own name,
		// or any function of it (left(email, 3)): comparing it whole
		// with a value is no lookup of the masked value, so it may not
		// be filtered by at all while masks restrict filters.
		if v := m.viewColumn(s, r, l); v != "" {
			return fmt.Sprintf("the statement filters, sorts or groups by %s, a column of a view over masked columns, which may be any function of them (left(email, 3)): while masks restrict filters, such a column is not filtered by", v)
		}
	}
	if col == "" || mode == "" || mode == "equality" && r.lookup && !s.lossyParams {
		return ""
	}
	return why(col, mode)
}

// maskedTable returns a relation of the statement with masked columns (or
// a view or kin of one), or "".
func (m *masks) maskedTable(s *Statement, l lineage) string {
	for _, t := range s.Tables {
		if m.maskedName(t, l) {
			return t
		}
	}
	return ""
}

// maskedName reports whether a relation, as a statement names it, has
// masked columns (or is a view or kin of one).
func (m *masks) maskedName(t string, l lineage) bool {
	return m.tables[strings.ToLower(t)] || m.masked(lastName(t), l)
}
