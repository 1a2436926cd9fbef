package policy

import (
	"math/rand"
	"reflect"
	"testing"
	"testing/quick"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// TestInputValueMatchesJSON holds the input built directly to the one
// encoding/json and OPA's parser make, over random values of every field
// (testing/quick fills all of them, so a field added to the types and not
// to inputValue fails here), strings that are not valid UTF-8, and the
// empty and nil forms omitempty treats alike.
func TestInputValueMatchesJSON(t *testing.T) {
	rnd := rand.New(rand.NewSource(3))
	odd := []string{"", "a\xffb", "\xfe\xff", "\u2028<&>\"\\", "\x00", "ok"}
	var strs []*string
	var collect func(v reflect.Value)
	collect = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if !v.IsNil() {
				collect(v.Elem())
			}
		case reflect.Struct:
			for i := range v.NumField() {
				collect(v.Field(i))
			}
		case reflect.String:
			strs = append(strs, v.Addr().Interface().(*string))
		case reflect.Slice:
			// testing/quick gives nested slices no room: fill string
			// lists here, sometimes empty rather than nil.
			if v.Len() == 0 && v.Type().Elem().Kind() == reflect.String {
				switch rnd.Intn(3) {
				case 0:
					v.Set(reflect.ValueOf([]string{}))
				case 1:
					v.Set(reflect.ValueOf([]string{odd[rnd.Intn(len(odd))], "x"}))
				}
			}
			for i := range v.Len() {
				collect(v.Index(i))
			}
		}
	}
	for i := range 3000 {
		var in Input
		for _, f := range []any{&in.Workload, &in.Target, &in.Action} {
			v, ok := quick.Value(reflect.TypeOf(f).Elem(), rnd)
			if !ok {
				t.Fatalf("cannot generate %T", f)
			}
			reflect.ValueOf(f).Elem().Set(v)
		}
		// Some strings odd, some members empty or nil.
		strs = strs[:0]
		collect(reflect.ValueOf(&in).Elem())
		for _, s := range strs {
			if rnd.Intn(3) == 0 {
				*s = odd[rnd.Intn(len(odd))]
			}
		}
		if rnd.Intn(3) == 0 {
			in.Workload.Pod.Labels = map[string]string{"k\xff": "v\xfe", "k": ""}
		}
		switch rnd.Intn(4) {
		case 0:
			in.Action.Operations = nil
		case 1:
			in.Action.Operations = []string{}
		}
		if rnd.Intn(3) == 0 && in.Workload.OIDC != nil {
			in.Workload.OIDC.Groups = []string{}
		}
		if i%500 == 0 {
			in.Grants = []Grant{{ID: "g", Operations: []string{"select"}, Expires: time.Unix(1700000000, 5)}}
		}
		got, err := inputValue(&in)
		if err != nil {
			t.Fatal(err)
		}
		want, err := inputValueJSON(&in)
		if err != nil {
			t.Fatal(err)
		}
		if ast.Compare(got, want) != 0 {
			t.Fatalf("input %d differs:\n got %v\nwant %v", i, got, want)
		}
	}
}
