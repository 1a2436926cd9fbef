package postgres

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/corral-dev/corral/policy"
)

var testKey = []byte("corral test key")

func TestMaskValueRedact(t *testing.T) {
	for _, v := range []string{"secret", "", "a", "4111111111111111", "日本語"} {
		if got := maskValue("redact", []byte(v), testKey); string(got) != "****" {
			t.Errorf("redact(%q) = %q", v, got)
		}
	}
	// An unknown method redacts rather than passing the value on.
	if got := maskValue("bogus", []byte("secret"), testKey); string(got) != "****" {
		t.Errorf("unknown method: %q", got)
	}
}

func TestMaskValuePartial(t *testing.T) {
	cases := map[string]string{
		"":                    "",
		"a":                   "*",
		"abcd":                "****",
		"abcde":               "*bcde",
		"4111111111111111":    "************1111",
		"4111 1111 1111 1111": "***************1111",
		"+1 555-123-4567":     "***********4567",
		"héllo wörld":         "*******örld",
		"日本語テキスト":             "***テキスト",
		"ab🙂🙂🙂🙂":              "**🙂🙂🙂🙂",
		"ééééé":               "*éééé",
	}
	for in, want := range cases {
		got := maskValue("partial", []byte(in), testKey)
		if string(got) != want {
			t.Errorf("partial(%q) = %q, want %q", in, got, want)
		}
		if utf8.RuneCount(got) != utf8.RuneCountInString(in) {
			t.Errorf("partial(%q) = %q: rune count changed", in, got)
		}
	}
	// Invalid UTF-8: no panic, the length in runes is kept.
	bad := []byte{0xff, 'a', 0xfe, 'b', 'c', 'd', 'e'}
	if got := maskValue("partial", bad, testKey); utf8.RuneCount(got) != utf8.RuneCount(bad) || !bytes.HasSuffix(got, []byte("bcde")) {
		t.Errorf("partial(invalid) = %q", got)
	}
}

func TestMaskValueHash(t *testing.T) {
	a1 := maskValue("hash", []byte("alice@example.com"), testKey)
	a2 := maskValue("hash", []byte("alice@example.com"), testKey)
	b := maskValue("hash", []byte("bob@example.com"), testKey)
	other := maskValue("hash", []byte("alice@example.com"), []byte("another key"))
	none := maskValue("hash", []byte("alice@example.com"), nil)
	if !bytes.Equal(a1, a2) {
		t.Errorf("not deterministic: %q, %q", a1, a2)
	}
	if bytes.Equal(a1, b) {
		t.Errorf("different values, same hash %q", a1)
	}
	if bytes.Equal(a1, other) || bytes.Equal(a1, none) {
		t.Errorf("the key does not change the hash: %q %q %q", a1, other, none)
	}
	for _, h := range [][]byte{a1, b, other, none} {
		if len(h) != 16 {
			t.Errorf("hash %q: length %d, want 16", h, len(h))
		}
		if _, err := hex.DecodeString(string(h)); err != nil {
			t.Errorf("hash %q is not hex", h)
		}
	}
	if bytes.Contains(a1, []byte("alice")) {
		t.Errorf("hash reveals the value: %q", a1)
	}
}

func TestMaskValueNull(t *testing.T) {
	for _, v := range []string{"x", "", "4111111111111111"} {
		if got := maskValue("null", []byte(v), testKey); got != nil {
			t.Errorf("null(%q) = %q, want nil", v, got)
		}
	}
}

func TestLuhn(t *testing.T) {
	valid := []string{
		"4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111",
		"5500000000000004", "5555555555554444", "378282246310005", "371449635398431",
		"6011111111111117", "4012888888881881", "3530111333300000", "4222222222222",
	}
	invalid := []string{
		"4111111111111112", "4111 1111 1111 1110", "5500000000000005", "378282246310006",
		"1234567890123", "0000000000", "000000000000", // too short even though the sum is 0
		"", "abcdefghijklmnop", "79927398713", // valid Luhn but only 11 digits
	}
	for _, v := range valid {
		if !luhn([]byte(v)) {
			t.Errorf("luhn(%q) = false", v)
		}
	}
	for _, v := range invalid {
		if luhn([]byte(v)) {
			t.Errorf("luhn(%q) = true", v)
		}
	}
	if !luhn([]byte("0000000000000")) {
		t.Error("13 zeros pass Luhn")
	}
}

func TestIBANValid(t *testing.T) {
	valid := []string{
		"GB82 WEST 1234 5698 7654 32", "GB82WEST12345698765432", "DE89370400440532013000",
		"DE89 3704 0044 0532 0130 00", "FR1420041010050500013M02606", "NL91ABNA0417164300",
		"BE68539007547034", "CH9300762011623852957",
	}
	invalid := []string{
		"GB82 WEST 1234 5698 7654 33", "DE89370400440532013001", "NL91ABNA0417164301",
		"gb82west12345698765432", // lower case
		"GB82-WEST-1234-5698-7654-32",
		"GB82WEST", "DE8937040044",
		"XX00000000000000000000000000000000000", // too long
		"", "GB82 WEST 1234 5698 7654 3!",
	}
	for _, v := range valid {
		if !ibanValid([]byte(v)) {
			t.Errorf("ibanValid(%q) = false", v)
		}
	}
	for _, v := range invalid {
		if ibanValid([]byte(v)) {
			t.Errorf("ibanValid(%q) = true", v)
		}
	}
}

func rules(method string, names ...string) []detectRule {
	r := detectRule{method: method}
	for _, n := range names {
		d, ok := detectors[n]
		if !ok {
			panic("no detector " + n)
		}
		r.detectors = append(r.detectors, d)
	}
	return []detectRule{r}
}

func TestScrubDetectors(t *testing.T) {
	gcp := "AIza" + strings.Repeat("Sy0-_aB9", 4) + "xyz" // 35 after AIza
	ghp := "ghp_" + strings.Repeat("a1B2", 9)             // 36
	pat := "github_pat_" + strings.Repeat("A1_b", 6)      // 24
	jwt := "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	cases := []struct {
		detector string
		in, want string // want == in: nothing found
	}{
		{"credit_card", "card 4111 1111 1111 1111 ok", "card **** ok"},
		{"credit_card", "4111111111111111", "****"},
		{"credit_card", "amex 378282246310005.", "amex ****."},
		{"credit_card", "card 4111-1111-1111-1111", "card ****"},
		{"credit_card", "not a card 4111111111111112", "not a card 4111111111111112"},
		{"credit_card", "order 123456789012", "order 123456789012"},
		{"credit_card", "id 41111111111111111111111", "id 41111111111111111111111"},
		{"credit_card", "Ada4111 1111 1111 1111", "Ada****"}, // run together with a name
		{"credit_card", "card4111111111111111x", "card****x"},

		{"email", "mail bob@example.com now", "mail **** now"},
		{"email", "<first.last+tag@sub.example.co.uk>", "<****>"},
		{"email", "bob@localhost", "bob@localhost"},
		{"email", "a@b.c", "a@b.c"},
		{"email", "no at sign example.com", "no at sign example.com"},

		{"ssn", "ssn 123-45-6789.", "ssn ****."},
		{"ssn", "123-456-789", "123-456-789"},
		{"ssn", "1234-56-7890", "1234-56-7890"},
		{"ssn", "123456789", "123456789"},
		{"ssn", "id123-45-6789x", "id****x"},
		{"ssn", "123-45-67890", "123-45-67890"},

		{"phone", "call +1 555-123-4567", "call ****"},
		{"phone", "(555) 123-4567", "****"},
		{"phone", "555.123.4567 x", "**** x"},
		{"phone", "5551234567", "5551234567"},
		{"phone", "12-34-56", "12-34-56"},
		{"phone", "call 555-123-4567x", "call ****x"},
		{"phone", "tel:555-123-4567", "tel:****"},
		{"phone", "5555-123-4567", "5555-123-4567"},
		{"phone", "555-123-45678", "555-123-45678"},

		{"iban", "pay GB82 WEST 1234 5698 7654 32 today", "pay **** today"},
		{"iban", "DE89370400440532013000", "****"},
		{"iban", "pay GB82 WEST 1234 5698 7654 33 today", "pay GB82 WEST 1234 5698 7654 33 today"},
		{"iban", "ABCD EFGH", "ABCD EFGH"},

		{"aws_key", "key=AKIAIOSFODNN7EXAMPLE;", "key=****;"},
		{"aws_key", "ASIAY34FZKBOKMUTVV7A", "****"},
		{"aws_key", "AKIAshort", "AKIAshort"},
		{"aws_key", "AKIAIOSFODNN7EXAMPLEX", "AKIAIOSFODNN7EXAMPLEX"}, // 17 after the prefix

		{"gcp_key", "k " + gcp, "k ****"},
		{"gcp_key", "AIzaShort", "AIzaShort"},

		{"github_token", "token " + ghp, "token ****"},
		{"github_token", pat, "****"},
		{"github_token", "ghp_short", "ghp_short"},
		{"github_token", "ghx_" + strings.Repeat("a", 36), "ghx_" + strings.Repeat("a", 36)},

		{"jwt", "Bearer " + jwt, "Bearer ****"},
		{"jwt", "eyJhbGciOiJIUzI1NiJ9", "eyJhbGciOiJIUzI1NiJ9"},
		{"jwt", "eyJhbGciOiJIUzI1NiJ9.notjwt", "eyJhbGciOiJIUzI1NiJ9.notjwt"},
	}
	for _, c := range cases {
		got, changed := scrub([]byte(c.in), rules("redact", c.detector), testKey)
		if string(got) != c.want {
			t.Errorf("%s: scrub(%q) = %q, want %q", c.detector, c.in, got, c.want)
		}
		if changed != (c.want != c.in) {
			t.Errorf("%s: scrub(%q) changed = %v", c.detector, c.in, changed)
		}
	}
	// Every detector the policy accepts exists.
	for _, name := range policy.MaskDetectors {
		if _, ok := detectors[name]; !ok {
			t.Errorf("policy accepts detector %q that masking does not have", name)
		}
	}
}

func TestScrubMethodsAndMatches(t *testing.T) {
	in := []byte("a@b.com and c@d.org, then 4111111111111111")
	got, changed := scrub(in, rules("redact", "email", "credit_card"), testKey)
	if string(got) != "**** and ****, then ****" || !changed {
		t.Errorf("redact: %q %v", got, changed)
	}
	if string(in) != "a@b.com and c@d.org, then 4111111111111111" {
		t.Errorf("input modified: %q", in)
	}

	got, _ = scrub([]byte("card 4111 1111 1111 1111"), rules("partial", "credit_card"), testKey)
	if string(got) != "card ***************1111" {
		t.Errorf("partial: %q", got)
	}

	got, _ = scrub([]byte("x a@b.com y a@b.com"), rules("hash", "email"), testKey)
	h := string(maskValue("hash", []byte("a@b.com"), testKey))
	if string(got) != "x "+h+" y "+h {
		t.Errorf("hash: %q", got)
	}

	// null: one match nulls the whole value.
	got, changed = scrub([]byte("name: Bob, mail: bob@example.com"), rules("null", "email"), testKey)
	if got != nil || !changed {
		t.Errorf("null: %q %v", got, changed)
	}
	// ... but only a real match: an invalid card number is left alone.
	got, changed = scrub([]byte("ref 4111111111111112"), rules("null", "credit_card"), testKey)
	if string(got) != "ref 4111111111111112" || changed {
		t.Errorf("null, invalid card: %q %v", got, changed)
	}

	// Nothing found: the value is returned as it is.
	in = []byte("nothing to see")
	got, changed = scrub(in, rules("redact", "email", "ssn", "phone", "credit_card", "iban", "aws_key", "gcp_key", "github_token", "jwt"), testKey)
	if changed || &got[0] != &in[0] {
		t.Errorf("clean value: %q %v (copied: %v)", got, changed, &got[0] != &in[0])
	}

	// Several rules apply in turn.
	rs := append(rules("partial", "ssn"), rules("redact", "email")...)
	got, _ = scrub([]byte("123-45-6789 / bob@example.com"), rs, testKey)
	if string(got) != "*******6789 / ****" {
		t.Errorf("two rules: %q", got)
	}
	// No rules, no change.
	if got, changed := scrub([]byte("bob@example.com"), nil, testKey); changed || string(got) != "bob@example.com" {
		t.Errorf("no rules: %q %v", got, changed)
	}
}

func TestCompileMasks(t *testing.T) {
	if compileMasks(nil) != nil || compileMasks([]policy.Mask{}) != nil {
		t.Error("no masks should compile to nil")
	}
	for _, order := range [][]string{{"partial", "redact"}, {"redact", "partial"}} {
		m := compileMasks([]policy.Mask{
			{Columns: []string{"customers.email"}, Method: order[0]},
			{Columns: []string{"customers.email"}, Method: order[1]},
		})
		if got := m.method("public", "customers", "email"); got != "redact" {
			t.Errorf("%v: method = %q, want redact", order, got)
		}
	}
	strictest := func(methods ...string) string {
		var ms []policy.Mask
		for _, x := range methods {
			ms = append(ms, policy.Mask{Columns: []string{"t.c"}, Method: x})
		}
		return compileMasks(ms).method("", "t", "c")
	}
	for _, c := range []struct {
		methods []string
		want    string
	}{
		{[]string{"partial", "hash"}, "hash"},
		{[]string{"hash", "partial"}, "hash"},
		{[]string{"hash", "redact"}, "redact"},
		{[]string{"null", "redact", "hash", "partial"}, "null"},
		{[]string{"partial", "hash", "redact", "null"}, "null"},
		{[]string{"partial"}, "partial"},
	} {
		if got := strictest(c.methods...); got != c.want {
			t.Errorf("%v: %q, want %q", c.methods, got, c.want)
		}
	}

	m := compileMasks([]policy.Mask{
		{Columns: []string{"Customers.Email", "public.orders.card"}, Method: "partial"},
		{Detect: []string{"email", "ssn"}, Method: "redact"},
		{Columns: []string{"t.x"}, Detect: []string{"jwt"}, Method: "null"},
	})
	for _, tbl := range []string{"customers", "public.orders", "orders", "t"} {
		if !m.tables[tbl] {
			t.Errorf("table %q not marked masked (%v)", tbl, m.tables)
		}
	}
	if len(m.detect) != 2 || len(m.detect[0].detectors) != 2 || m.detect[0].method != "redact" || len(m.detect[1].detectors) != 1 || m.detect[1].method != "null" {
		t.Errorf("detect rules: %+v", m.detect)
	}
}

func TestMasksMethod(t *testing.T) {
	m := compileMasks([]policy.Mask{
		{Columns: []string{"customers.email"}, Method: "partial"},
		{Columns: []string{"billing.invoices.iban"}, Method: "hash"},
	})
	cases := []struct {
		schema, table, column, want string
	}{
		{"public", "customers", "email", "partial"},
		{"sales", "customers", "email", "partial"}, // no schema in the mask: any schema
		{"", "customers", "email", "partial"},
		{"PUBLIC", "Customers", "EMAIL", "partial"},
		{"public", "customers", "id", ""},
		{"public", "orders", "email", ""},
		{"billing", "invoices", "iban", "hash"},
		{"Billing", "INVOICES", "Iban", "hash"},
		{"public", "invoices", "iban", ""}, // schema in the mask: that schema only
		{"", "invoices", "iban", ""},
	}
	for _, c := range cases {
		if got := m.method(c.schema, c.table, c.column); got != c.want {
			t.Errorf("method(%q, %q, %q) = %q, want %q", c.schema, c.table, c.column, got, c.want)
		}
	}
	if got := (*masks)(nil).method("public", "customers", "email"); got != "" {
		t.Errorf("nil masks: %q", got)
	}
}

func TestMaskKnownBugs(t *testing.T) {
	t.Run("card next to other digits", func(t *testing.T) {
		// The Luhn check runs on the greedy regexp match only: a valid card
		// with a digit group before or after it is never checked alone.
		var missed []string
		for _, in := range []string{
			"card 4111 1111 1111 1111 12/27", // expiry after the number
			"qty 2 4111111111111111",
			"4111111111111111 1",
		} {
			got, _ := scrub([]byte(in), rules("redact", "credit_card"), testKey)
			if bytes.Contains(bytes.ReplaceAll(got, []byte(" "), nil), []byte("4111111111111111")) {
				missed = append(missed, fmt.Sprintf("%q -> %q", in, got))
			}
		}
		if len(missed) > 0 {
			knownBug(t, "credit_card misses adjacent digits", "%v", missed)
		}
	})
	t.Run("stricter method across schema", func(t *testing.T) {
		// The schema-qualified entry is found first even when the bare
		// table.column entry asks for a stricter method.
		m := compileMasks([]policy.Mask{
			{Columns: []string{"public.customers.email"}, Method: "partial"},
			{Columns: []string{"customers.email"}, Method: "null"},
		})
		if got := m.method("public", "customers", "email"); got != "null" {
			knownBug(t, "method prefers schema match over stricter", "method = %q, want null", got)
		}
	})
	t.Run("malformed column", func(t *testing.T) {
		// Custom Rego decisions are checked for the method only
		// (policy/engine.go), so a bare column name reaches compileMasks.
		var p any
		func() {
			defer func() { p = recover() }()
			compileMasks([]policy.Mask{{Columns: []string{"email"}, Method: "redact"}})
		}()
		if p != nil {
			knownBug(t, "compileMasks panics on a one-part column", "panic: %v", p)
		}
	})
	t.Run("unknown detector", func(t *testing.T) {
		// The policy engine refuses such decisions; past it, an unknown
		// detector masks whole values rather than nothing.
		m := compileMasks([]policy.Mask{{Detect: []string{"creditcard"}, Method: "redact"}})
		got, changed := scrub([]byte("4111 1111 1111 1111"), m.detect, testKey)
		if !changed || bytes.Contains(got, []byte("4111")) {
			t.Fatalf("unknown detector: %q, changed %v", got, changed)
		}
	})
}

// cardWithin keeps running Luhn sums; it finds what trying every span of
// whole groups with cardDigits finds.
func TestCardWithinAsEverySpanTried(t *testing.T) {
	slow := func(b []byte) [][2]int {
		starts, ends := digitGroups(b)
		var spans [][2]int
		pos := 0
		for i, st := range starts {
			if st < pos {
				continue
			}
			best, digits := -1, 0
			for j := i; j < len(ends) && j < len(starts); j++ {
				digits += ends[j] - starts[j]
				if digits > 19 {
					break
				}
				if cardDigits(b[st:ends[j]]) {
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
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		var b []byte
		for range 1 + rng.IntN(12) {
			for range 1 + rng.IntN(8) {
				b = append(b, byte('0'+rng.IntN(10)))
			}
			b = append(b, " -x"[rng.IntN(3)])
		}
		if got, want := cardWithin(b), slow(b); !slices.Equal(got, want) {
			t.Fatalf("%q: %v, want %v", b, got, want)
		}
	}
	if got := cardWithin([]byte("4111 1111 1111 1111")); len(got) != 1 {
		t.Errorf("a test card number: %v", got)
	}
}

// Detectors read at most maxScan of a value; a longer value is withheld,
// a message replaced by a note.
func TestScrubBounded(t *testing.T) {
	r := rules("redact", "credit_card")
	if out, changed := scrub(bytes.Repeat([]byte("1 "), maxScan/2), r, testKey); changed || len(out) != maxScan {
		t.Errorf("a value of maxScan: changed %v, %d bytes", changed, len(out))
	}
	if out, changed := scrub(bytes.Repeat([]byte("x"), maxScan+1), r, testKey); !changed || out != nil {
		t.Errorf("a value past maxScan: changed %v, %d bytes", changed, len(out))
	}
	if out, changed := scrub(bytes.Repeat([]byte("x"), maxScan+1), nil, testKey); changed || len(out) != maxScan+1 {
		t.Error("a value with no detectors to read it was changed")
	}
	mk := compileMasks([]policy.Mask{{Detect: []string{"credit_card"}, Method: "redact"}})
	m := &pgproto3.ErrorResponse{Message: strings.Repeat("x", maxScan+1)}
	scrubMessage(mk, testKey, false, m)
	if m.Message != withheldText {
		t.Errorf("a message past maxScan: %d bytes", len(m.Message))
	}
}

// Binary arrays and rows are read element by element: the length in
// front of each may end in a digit or a letter, which must neither hide a
// value (a JWT of 353 bytes: 0x61, "a") nor make one (a 20-digit number
// after a digit).
func TestDetectedInBinaryContainers(t *testing.T) {
	r := rules("redact", "credit_card", "phone", "ssn", "jwt", "iban")
	be := func(n int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(n)) }
	array := func(elems ...string) []byte {
		v := slices.Concat(be(1), be(0), be(25), be(len(elems)), be(1))
		for _, e := range elems {
			v = append(append(v, be(len(e))...), e...)
		}
		return v
	}
	row := func(fields ...string) []byte {
		v := be(len(fields))
		for _, f := range fields {
			v = append(append(append(v, be(25)...), be(len(f))...), f...)
		}
		return v
	}
	jwt := "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0." + strings.Repeat("x", 353-41)
	for _, v := range [][]byte{
		array("555-123-4567 (mobile, call after six, ask for Ada)"), // 50 bytes: "2" in front
		array(jwt),
		array("GB82 WEST 1234 5698 7654 32" + strings.Repeat(".", 65-27)), // 65: "A" in front
		array("x", "078-05-1120 (Ada L.)"+strings.Repeat(".", 30)),
		row("4012888888881881 exp 12/29" + strings.Repeat(".", 27)), // 53: "5" in front
		array(string(row("call 555-123-4567"))),                     // a row inside an array: read as one
	} {
		if !detected(v, true, 1009, r) {
			t.Errorf("not found in %q", v)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		n := fmt.Sprintf("tracking 9%019d", rng.Uint64()%1e19)
		if v := array(n); detected(v, true, 1009, r) {
			t.Fatalf("found in an ordinary number: %q", v)
		}
	}
	// Other binary values are read without digit bounds: a tsvector of
	// 52 lexemes (a count ending in "4") and a range over text (a length
	// ending in "5").
	tsv := slices.Concat(be(52), []byte("4111111111111111\x00\x00\x01\x00\x01w1\x00\x00\x01\x00\x0b"))
	textRange := []byte("\x12\x00\x00\x005555-123-4567 (mobile, call after six, ask for Ada...)")
	for _, v := range [][]byte{tsv, textRange} {
		if !detected(v, true, 3614, r) {
			t.Errorf("not found in %q", v)
		}
	}
	// bytea in binary is its bytes: read as text is.
	if detected([]byte("order 2024 555 1234 shipped"), true, 17, r) || !detected([]byte("call 555-123-4567"), true, 17, r) {
		t.Error("binary bytea is read as text")
	}
	if !detected([]byte("(1,call 555-123-4567)"), false, 2249, r) || detected([]byte("(1,tracking 91836450128836450128)"), false, 2249, r) {
		t.Error("a row in text format is read as text")
	}
}

// What the database's own code raises loses its text and name fields
// under any SQLSTATE; the server's own errors keep theirs.
func TestScrubRaisedMessages(t *testing.T) {
	mk := compileMasks(customersMasks)
	raised := &pgproto3.ErrorResponse{Severity: "ERROR", Code: "42501", Message: "not for ada@example.com", Hint: "4111",
		ColumnName: "ada@example.com", ConstraintName: "4111", File: "pl_exec.c", Routine: "exec_stmt_raise"}
	scrubMessage(mk, testKey, true, raised)
	if strings.Contains(raised.Message, "ada") || raised.Hint != "" || raised.ColumnName != "" || raised.ConstraintName != "" {
		t.Errorf("a RAISE with a class 42 code: %+v", raised)
	}
	server := &pgproto3.ErrorResponse{Severity: "ERROR", Code: "23505", Message: `duplicate key value violates unique constraint "customers_pkey"`,
		TableName: "customers", ConstraintName: "customers_pkey", File: "nbtinsert.c", Routine: "_bt_check_unique"}
	scrubMessage(mk, testKey, true, server)
	if server.ConstraintName != "customers_pkey" || server.TableName != "customers" {
		t.Errorf("the server's own unique violation lost its names: %+v", server)
	}
	// The server's own notice of code 00000 keeps its text; a pooler's
	// error, which names no routine, keeps its names.
	skip := &pgproto3.ErrorResponse{Severity: "NOTICE", Code: "00000", Message: `table "gone" does not exist, skipping`, File: "tablecmds.c", Routine: "DropErrorMsgNonExistent"}
	scrubMessage(mk, testKey, false, skip)
	if !strings.HasPrefix(skip.Message, "table ") {
		t.Errorf("DROP TABLE IF EXISTS's notice: %q", skip.Message)
	}
	pooler := &pgproto3.ErrorResponse{Severity: "ERROR", Code: "08P01", Message: "query_wait_timeout", ConstraintName: "c"}
	scrubMessage(mk, testKey, true, pooler)
	if pooler.ConstraintName != "c" {
		t.Errorf("a pooler's error: %+v", pooler)
	}
}
