package policy

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// inputValue is in as the module's `input`: the value encoding/json and
// OPA's parser would make of it, built directly. Going through JSON text
// cost about 45 µs of an uncached decision. TestInputValueMatchesJSON holds
// the two to the same value over random inputs, including strings that are
// not valid UTF-8 and every field of every type (a field added later and
// not here fails it).
func inputValue(in *Input) (ast.Object, error) {
	if len(in.Grants) > 0 {
		// Grants are rare (no handler fills them in); they go the long way.
		return inputValueJSON(in)
	}
	return object(
		item("workload", workloadTerm(&in.Workload)),
		item("target", object(
			str("name", in.Target.Name),
			str("protocol", in.Target.Protocol),
			optStr("address", in.Target.Address),
			optStr("database", in.Target.Database),
		)),
		item("action", actionTerm(&in.Action)),
	).Value.(ast.Object), nil
}

// inputValueJSON is the reference: what inputValue must equal.
func inputValueJSON(in *Input) (ast.Object, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	v, err := ast.ValueFromReader(strings.NewReader(string(b)))
	if err != nil {
		return nil, err
	}
	o, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("input is %T, not an object", v)
	}
	return o, nil
}

func workloadTerm(w *Workload) *ast.Term {
	pod := object(
		str("uid", w.Pod.UID),
		str("namespace", w.Pod.Namespace),
		str("name", w.Pod.Name),
		str("service_account", w.Pod.ServiceAccount),
		optMap("labels", w.Pod.Labels),
		optStr("container", w.Pod.Container),
		optStr("image", w.Pod.Image),
	)
	items := []*[2]*ast.Term{
		num("cgroup_id", w.CgroupID),
		str("cgroup_path", w.CgroupPath),
		num("pid", uint64(w.PID)),
		str("exe", w.Exe),
		num("uid", uint64(w.UID)),
		str("user", w.User),
		str("unit", w.Unit),
		item("pod", pod),
		str("container_id", w.ContainerID),
	}
	if o := w.OIDC; o != nil {
		items = append(items, item("oidc", object(
			str("issuer", o.Issuer),
			str("subject", o.Subject),
			optStr("email", o.Email),
			optList("groups", o.Groups),
		)))
	}
	return object(items...)
}

func actionTerm(a *Action) *ast.Term {
	ops := ast.NullTerm()
	if a.Operations != nil {
		ops = strArray(a.Operations)
	}
	items := []*[2]*ast.Term{
		str("kind", a.Kind),
		item("operations", ops),
	}
	if q := a.SQL; q != nil {
		items = append(items, item("sql", object(
			str("command", q.Command),
			optList("tables", q.Tables),
			optList("functions", q.Functions),
			item("has_where", ast.InternedTerm(q.HasWhere)),
			optStr("text", q.Text),
			optStr("fingerprint", q.Fingerprint),
		)))
	}
	if s := a.SSH; s != nil {
		items = append(items, item("ssh", object(
			optStr("command", s.Command),
			optList("argv", s.Argv),
			item("known", ast.InternedTerm(s.Known)),
			optTrue("appends", s.Appends),
			item("interactive", ast.InternedTerm(s.Interactive)),
			optStr("subsystem", s.Subsystem),
			optStr("forward", s.Forward),
			optStr("env", s.Env),
			optStr("user", s.User),
			optList("via", s.Via),
		)))
	}
	if h := a.HTTP; h != nil {
		items = append(items, item("http", object(
			str("method", h.Method),
			optStr("host", h.Host),
			str("path", h.Path),
		)))
	}
	if k := a.Kubernetes; k != nil {
		items = append(items, item("kubernetes", object(
			str("verb", k.Verb),
			optStr("api_group", k.APIGroup),
			str("resource", k.Resource),
			optStr("subresource", k.Subresource),
			optStr("namespace", k.Namespace),
			optStr("name", k.Name),
		)))
	}
	return object(items...)
}

func item(k string, v *ast.Term) *[2]*ast.Term {
	it := ast.Item(ast.InternedTerm(k), v)
	return &it
}

// object builds an object of the items given; nil items (an omitted
// optional member) are left out.
func object(items ...*[2]*ast.Term) *ast.Term {
	kept := make([][2]*ast.Term, 0, len(items))
	for _, it := range items {
		if it != nil {
			kept = append(kept, *it)
		}
	}
	return ast.NewTerm(ast.NewObject(kept...))
}

// Strings go through asJSON: encoding/json turns each byte that is not
// valid UTF-8 into U+FFFD, and the module must see the same.
func str(k, v string) *[2]*ast.Term {
	return item(k, ast.StringTerm(asJSON(v)))
}

func optStr(k, v string) *[2]*ast.Term {
	if v == "" {
		return nil
	}
	return str(k, v)
}

func num(k string, v uint64) *[2]*ast.Term {
	return item(k, ast.NumberTerm(json.Number(strconv.FormatUint(v, 10))))
}

func strArray(vs []string) *ast.Term {
	ts := make([]*ast.Term, len(vs))
	for i, v := range vs {
		ts[i] = ast.StringTerm(asJSON(v))
	}
	return ast.ArrayTerm(ts...)
}

func optTrue(k string, v bool) *[2]*ast.Term {
	if !v {
		return nil
	}
	return item(k, ast.InternedTerm(true))
}

func optList(k string, vs []string) *[2]*ast.Term {
	if len(vs) == 0 {
		return nil
	}
	return item(k, strArray(vs))
}

func optMap(k string, m map[string]string) *[2]*ast.Term {
	if len(m) == 0 {
		return nil
	}
	items := make([][2]*ast.Term, 0, len(m))
	for mk, mv := range m {
		items = append(items, [2]*ast.Term{ast.StringTerm(asJSON(mk)), ast.StringTerm(asJSON(mv))})
	}
	return item(k, ast.NewTerm(ast.NewObject(items...)))
}
