package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	builtin "github.com/corral-dev/corral/policy/rego"
)

// Query is the Rego rule every decision comes from.
const Query = "decision = data.corral.decision; cache = data.corral.cacheable"

// Policy is everything a decision depends on: the declarative rules and any
// custom Rego modules (file name → source).
type Policy struct {
	Rules   []Rule
	Modules map[string]string
}

// Compiled is a policy prepared for evaluation. Compiling is the slow part;
// it happens once per policy version, never per decision.
type Compiled struct {
	query rego.PreparedEvalQuery
	// statementDetail: a decision may depend on more of an SQL action than
	// its kind and operations (its text, tables, fingerprint). The built-in
	// module does not look at them; a custom module may.
	statementDetail bool
	// matchers say which rules apply (input.applicable).
	matchers []ruleMatcher
}

// Compile prepares p. Its errors name the module and line at fault.
func Compile(ctx context.Context, p Policy) (*Compiled, error) {
	matchers, err := compileMatchers(p.Rules)
	if err != nil {
		return nil, fmt.Errorf("compile policy: %w", err)
	}
	opts := []func(*rego.Rego){
		rego.Query(Query),
		rego.Store(inmem.NewFromObjectWithOpts(map[string]any{"declared": Data(p.Rules)}, inmem.OptReturnASTValuesOnRead(true))),
		rego.StrictBuiltinErrors(true),
		rego.StoreReadAST(true),
	}
	mods, err := BuiltinModules(false)
	if err != nil {
		return nil, err
	}
	for name, src := range mods {
		opts = append(opts, rego.Module(name, src))
	}
	names := make([]string, 0, len(p.Modules))
	for name := range p.Modules {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		// A module of another package could define what the built-in
		// one decides with (applicable, rules): custom ones extend it
		// through data.corral.custom only.
		m, err := ast.ParseModule(name, p.Modules[name])
		if err != nil {
			return nil, fmt.Errorf("compile policy: %w", err)
		}
		if path := m.Package.Path.String(); path != "data.corral.custom" && !strings.HasPrefix(path, "data.corral.custom.") {
			return nil, fmt.Errorf("compile policy: %s: package %s: policy files are in package corral.custom", name, strings.TrimPrefix(path, "data."))
		}
		opts = append(opts, rego.Module(name, p.Modules[name]))
	}
	pq, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("compile policy: %w", err)
	}
	return &Compiled{query: pq, statementDetail: len(p.Modules) > 0, matchers: matchers}, nil
}

// BuiltinModules returns the embedded Rego modules, with or without their
// tests, keyed by file name.
func BuiltinModules(withTests bool) (map[string]string, error) {
	out := map[string]string{}
	err := fs.WalkDir(builtin.Files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasSuffix(path, "_test.rego") && !withTests {
			return nil
		}
		b, err := fs.ReadFile(builtin.Files, path)
		if err != nil {
			return err
		}
		out["corral/"+path] = string(b)
		return nil
	})
	return out, err
}

// ruleData is a Rule as the Rego module reads it: every field present, so
// the module never has to guess at absent ones.
type ruleData struct {
	Name       string     `json:"name"`
	Who        whoData    `json:"who"`
	Targets    []string   `json:"targets"`
	Allow      []string   `json:"allow"`
	Deny       []string   `json:"deny"`
	Review     reviewData `json:"review"`
	Mask       []Mask     `json:"mask"`
	Credential string     `json:"credential"`
	Cluster    bool       `json:"cluster,omitempty"`
	Commands   struct {
		Allow  []string `json:"allow"`
		Review []string `json:"review"`
		Deny   []string `json:"deny"`
	} `json:"commands"`
}

type whoData struct {
	Any bool `json:"any"`
	// Checks are the matchers the rule gives, and only those, so the
	// module evaluates what was written, not every possible field.
	Checks     []check  `json:"checks"`
	Unit       []string `json:"unit"`
	Exe        []string `json:"exe"`
	UID        []uint32 `json:"uid"`
	User       []string `json:"user"`
	Cgroup     []string `json:"cgroup"`
	Kubernetes struct {
		Namespace      []string          `json:"namespace"`
		Name           []string          `json:"name"`
		ServiceAccount []string          `json:"service_account"`
		Labels         map[string]string `json:"labels"`
	} `json:"kubernetes"`
	OIDC struct {
		Issuer  []string `json:"issuer"`
		Subject []string `json:"subject"`
		Email   []string `json:"email"`
		Groups  []string `json:"groups"`
	} `json:"oidc"`
}

// check is one who matcher: kind glob (a fact against patterns), uid,
// labels or groups.
type check struct {
	Kind     string            `json:"kind"`
	Fact     []string          `json:"fact,omitempty"`
	Patterns []string          `json:"patterns,omitempty"`
	Delims   []string          `json:"delims"` // null: no delimiter
	UIDs     []uint32          `json:"uids,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
}

func whoChecks(w Who) []check {
	var cs []check
	glob := func(fact []string, patterns []string, delims []string) {
		if len(patterns) > 0 {
			cs = append(cs, check{Kind: "glob", Fact: fact, Patterns: patterns, Delims: delims})
		}
	}
	slash := []string{"/"}
	glob([]string{"unit"}, w.Unit, nil)
	glob([]string{"exe"}, w.Exe, slash)
	glob([]string{"cgroup_path"}, w.Cgroup, slash)
	glob([]string{"user"}, w.User, nil)
	if len(w.UID) > 0 {
		cs = append(cs, check{Kind: "uid", UIDs: w.UID})
	}
	if k := w.Kubernetes; k != nil {
		glob([]string{"pod", "namespace"}, k.Namespace, nil)
		glob([]string{"pod", "name"}, k.Name, nil)
		glob([]string{"pod", "service_account"}, k.ServiceAccount, nil)
		if len(k.Labels) > 0 {
			cs = append(cs, check{Kind: "labels", Labels: k.Labels})
		}
	}
	if o := w.OIDC; o != nil {
		glob([]string{"oidc", "issuer"}, o.Issuer, nil)
		glob([]string{"oidc", "subject"}, o.Subject, nil)
		glob([]string{"oidc", "email"}, o.Email, nil)
		if len(o.Groups) > 0 {
			cs = append(cs, check{Kind: "groups", Patterns: o.Groups})
		}
	}
	if cs == nil {
		cs = []check{}
	}
	return cs
}

type reviewData struct {
	Operations []string `json:"operations"`
	Reviewers  []string `json:"reviewers"`
	Grant      string   `json:"grant"`
	Window     string   `json:"window"`
	Timeout    string   `json:"timeout"`
	Webhook    string   `json:"webhook"`
}

func list[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

// Data is the document (data.declared) the built-in module interprets. It goes
// through JSON so the store holds plain values, as OPA expects.
func Data(rules []Rule) map[string]any {
	out := make([]ruleData, 0, len(rules))
	for _, r := range rules {
		d := ruleData{
			Name:       r.Name,
			Targets:    list(r.Targets),
			Allow:      list(r.Allow),
			Deny:       list(r.Deny),
			Mask:       list(r.Mask),
			Credential: r.Credential,
			Cluster:    r.Cluster,
		}
		if d.Credential == "" {
			d.Credential = "default"
		}
		cs := r.Commands
		if cs == nil {
			cs = &CommandSet{}
		}
		d.Commands.Allow, d.Commands.Review, d.Commands.Deny = list(cs.Allow), list(cs.Review), list(cs.Deny)
		w := &d.Who
		w.Any = r.Who.Any
		w.Checks = whoChecks(r.Who)
		w.Unit, w.Exe, w.UID, w.User, w.Cgroup = list(r.Who.Unit), list(r.Who.Exe), list(r.Who.UID), list(r.Who.User), list(r.Who.Cgroup)
		k := r.Who.Kubernetes
		if k == nil {
			k = &KubernetesWho{}
		}
		w.Kubernetes.Namespace, w.Kubernetes.Name, w.Kubernetes.ServiceAccount = list(k.Namespace), list(k.Name), list(k.ServiceAccount)
		w.Kubernetes.Labels = k.Labels
		if w.Kubernetes.Labels == nil {
			w.Kubernetes.Labels = map[string]string{}
		}
		o := r.Who.OIDC
		if o == nil {
			o = &OIDCWho{}
		}
		w.OIDC.Issuer, w.OIDC.Subject, w.OIDC.Email, w.OIDC.Groups = list(o.Issuer), list(o.Subject), list(o.Email), list(o.Groups)
		d.Review = reviewData{Operations: []string{}, Reviewers: []string{}, Grant: "once"}
		if rv := r.Review; rv != nil {
			d.Review.Operations, d.Review.Reviewers = list(rv.Operations), list(rv.Reviewers)
			if rv.Grant != "" {
				d.Review.Grant = rv.Grant
			}
			d.Review.Window, d.Review.Timeout, d.Review.Webhook = rv.Window, rv.Timeout, rv.Webhook
		}
		out = append(out, d)
	}
	vocab := map[string][]string{}
	for k, v := range Vocabulary {
		vocab[k] = v
	}
	var doc map[string]any
	b, _ := json.Marshal(map[string]any{"rules": out, "vocabulary": vocab})
	json.Unmarshal(b, &doc)
	return doc
}

// Engine answers Decide from the current policy version, which Load swaps
// atomically: a decision in flight finishes on the version it started with,
// the next one sees the new version.
type Engine struct {
	log     *slog.Logger
	cur     atomic.Pointer[version]
	seq     atomic.Uint64
	cache   decisionCache
	loadMu  sync.Mutex
	maxSize int
}

type version struct {
	n        uint64
	compiled *Compiled
}

// NewEngine returns an engine with no policy: it denies everything until
// Load succeeds.
func NewEngine(log *slog.Logger) *Engine {
	return &Engine{log: log, maxSize: 16384}
}

// Load compiles p and makes it the current policy. On error the previous
// policy stays in force.
func (e *Engine) Load(ctx context.Context, p Policy) (uint64, error) {
	c, err := Compile(ctx, p)
	if err != nil {
		return e.Version(), err
	}
	e.loadMu.Lock()
	defer e.loadMu.Unlock()
	v := &version{n: e.seq.Add(1), compiled: c}
	e.cur.Store(v)
	e.cache.clear()
	return v.n, nil
}

// Version is the current policy version (0: none loaded).
func (e *Engine) Version() uint64 {
	if v := e.cur.Load(); v != nil {
		return v.n
	}
	return 0
}

// Decide answers in. It never returns an Allow together with an error:
// anything that goes wrong is a Deny whose reason a client can be shown, and
// the error says what went wrong for the operator's log.
func (e *Engine) Decide(ctx context.Context, in Input) (Decision, error) {
	v := e.cur.Load()
	if v == nil {
		return denied("no policy is loaded", 0), errors.New("no policy loaded")
	}
	key := cacheKeyOf(v.n, &in, v.compiled.statementDetail)
	if d, ok := e.cache.get(key); ok {
		return owned(d), nil
	}
	d, cacheable, err := v.compiled.eval(ctx, &in)
	d.PolicyVersion = v.n
	if err != nil {
		return d, err
	}
	if cacheable {
		e.cache.put(key, owned(d), e.maxSize)
	}
	return d, nil
}

// owned copies what a decision shares: callers own what they get, and no
// change of theirs (or of the cache's) reaches the other.
func owned(d Decision) Decision {
	d.Reviewers = slices.Clone(d.Reviewers)
	d.Mask = slices.Clone(d.Mask)
	for i := range d.Mask {
		d.Mask[i].Columns = slices.Clone(d.Mask[i].Columns)
		d.Mask[i].Detect = slices.Clone(d.Mask[i].Detect)
	}
	return d
}

func denied(reason string, version uint64) Decision {
	return Decision{Result: Deny, Reason: reason, Record: true, PolicyVersion: version}
}

// Eval decides without a cache (the CLI's `policy eval`).
func (c *Compiled) Eval(ctx context.Context, in Input) (Decision, error) {
	d, _, err := c.eval(ctx, &in)
	return d, err
}

func (c *Compiled) eval(ctx context.Context, in *Input) (Decision, bool, error) {
	value, err := inputValue(in)
	if err != nil {
		return denied("the request could not be put to the policy", 0), false, err
	}
	value.Insert(ast.InternedTerm("applicable"), applicableTerm(c.matchers, in))
	// A custom module that runs long must not hold a statement (and a CPU)
	// for as long as it likes: past the bound it is a deny. The built-in
	// module's time grows with the rules that apply, not with any code of
	// the operator's: it is not bounded.
	if c.statementDetail {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, evalTimeout)
		defer cancel()
	}
	rs, err := c.query.Eval(ctx, rego.EvalParsedInput(value))
	if err != nil {
		return denied("the policy could not be evaluated", 0), false, fmt.Errorf("evaluate policy: %w", err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return denied("the policy gave no decision", 0), false, errors.New("policy returned no decision")
	}
	obj, ok := rs[0].Bindings["decision"].(map[string]any)
	if !ok {
		return denied("the policy gave an invalid decision", 0), false, fmt.Errorf("decision is %T, not an object", rs[0].Bindings["decision"])
	}
	d, cacheable, err := parseDecision(obj)
	// A module's `cache := false` holds for a decision it returns as much
	// as for the built-in one's; anything but true keeps it out.
	if rs[0].Bindings["cache"] != true {
		cacheable = false
	}
	return d, cacheable, err
}

// evalTimeout bounds one evaluation with custom modules; the built-in
// module takes well under a millisecond.
var evalTimeout = 2 * time.Second

// parseDecision turns the Rego object into a Decision, refusing anything
// that is not a well-formed allow, deny or review.
func parseDecision(obj map[string]any) (Decision, bool, error) {
	str := func(k string) string { s, _ := obj[k].(string); return s }
	d := Decision{
		Result:     str("result"),
		Reason:     str("reason"),
		Rule:       str("rule"),
		Grant:      str("grant"),
		Credential: str("credential"),
		Record:     true,
	}
	if rec, ok := obj["record"].(bool); ok {
		d.Record = rec
	}
	// Anything but a boolean true keeps the decision out of the cache
	// ("false" as a string must not cache a decision that varies).
	cacheable := true
	if raw, present := obj["cache"]; present {
		c, ok := raw.(bool)
		cacheable = ok && c
	}
	switch d.Result {
	case Allow, Deny, Review:
	default:
		return denied("the policy gave an invalid decision", 0), false, fmt.Errorf("decision result %q is not allow, deny or review", d.Result)
	}
	if d.Reason == "" {
		d.Reason = d.Result
	}
	if rs, ok := obj["reviewers"].([]any); ok {
		for _, r := range rs {
			if s, ok := r.(string); ok {
				d.Reviewers = append(d.Reviewers, s)
			}
		}
	}
	if raw, present := obj["mask"]; present && raw != nil {
		ms, ok := raw.([]any)
		if !ok {
			return denied("the policy gave an invalid mask", 0), false, fmt.Errorf("decision mask is %T, not a list", raw)
		}
		b, _ := json.Marshal(ms)
		// Strictly: a misspelt key ("column") would leave a mask that
		// masks nothing, and the data would go out in clear.
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&d.Mask); err != nil {
			return denied("the policy gave an invalid mask", 0), false, fmt.Errorf("decision mask: %w", err)
		}
		for _, m := range d.Mask {
			if len(m.Columns) == 0 && len(m.Detect) == 0 {
				return denied("the policy gave an invalid mask", 0), false, errors.New("decision mask names no column and no detector")
			}
			if !slices.Contains(MaskMethods, m.Method) {
				return denied("the policy gave an invalid mask", 0), false, fmt.Errorf("decision mask method %q", m.Method)
			}
			if m.Filters != "" && !slices.Contains(MaskFilters, m.Filters) {
				return denied("the policy gave an invalid mask", 0), false, fmt.Errorf("decision mask filters %q", m.Filters)
			}
			for _, c := range m.Columns {
				parts := strings.Split(c, ".")
				if len(parts) < 2 || len(parts) > 3 || slices.Contains(parts, "") {
					return denied("the policy gave an invalid mask", 0), false, fmt.Errorf("decision mask column %q is not table.column", c)
				}
			}
			for _, det := range m.Detect {
				if !slices.Contains(MaskDetectors, det) {
					return denied("the policy gave an invalid mask", 0), false, fmt.Errorf("decision mask detector %q", det)
				}
			}
		}
		if len(d.Mask) == 0 {
			d.Mask = nil
		}
	}
	if d.Result == Review {
		if len(d.Reviewers) == 0 {
			return denied("the operation needs review but the policy names no reviewer", 0), false, errors.New("review decision without reviewers")
		}
		switch d.Grant {
		case "":
			d.Grant = "once"
		case "once", "window":
		default:
			return denied("the policy gave an invalid grant", 0), false, fmt.Errorf("grant %q is not once or window", d.Grant)
		}
		d.Timeout = DefaultReviewTimeout
		if t := str("timeout"); t != "" {
			v, err := time.ParseDuration(t)
			if err != nil || v <= 0 || v > MaxReviewTimeout {
				return denied("the policy gave an invalid review timeout", 0), false, fmt.Errorf("review timeout %q", t)
			}
			d.Timeout = v
		}
		if w := str("webhook"); w != "" {
			u, err := url.Parse(w)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return denied("the policy gave an invalid review webhook", 0), false, errors.New("review webhook is not an http(s) URL")
			}
			d.Webhook = w
		}
		if d.Grant == "window" {
			v, err := time.ParseDuration(str("window"))
			if err != nil || v <= 0 {
				return denied("the policy gave an invalid grant window", 0), false, fmt.Errorf("grant window %q", str("window"))
			}
			d.Window = v
		}
	} else {
		d.Grant = ""
	}
	if d.Result == Deny {
		// Nothing to inject or mask for an operation that will not run.
		d.Credential, d.Mask = "", nil
	}
	return d, cacheable, nil
}

// --- cache ---

// cacheKey holds what a decision depends on: the policy version, the
// workload facts rules can match (not the pid: every process of the same
// workload shares decisions), the target, and the operation: its kind and
// operations, and its details, where the policy can read them. The
// built-in module reads no SQL statement's text or tables, so without
// custom modules every statement of the same operations shares one
// decision, and a workload sending new statements does not pay for an
// evaluation each.
type cacheKey struct {
	version uint64
	who     string
	target  string
	action  string
	grants  string
}

func cacheKeyOf(v uint64, in *Input, statementDetail bool) cacheKey {
	who := in.IdentityKey
	if who == "" {
		who = IdentityKey(&in.Workload)
	}
	var target keyWriter
	target.Grow(len(in.Target.Name) + len(in.Target.Protocol) + 8)
	target.field(in.Target.Name)
	target.field(in.Target.Protocol)
	if statementDetail {
		// The built-in module matches none of these; a custom one may
		// (the primary's address, not the replica's; a database; a
		// quarantined container), and a decision for one must not answer
		// for another.
		target.field(in.Target.Address)
		target.field(in.Target.Database)
		var more keyWriter
		more.WriteString(who)
		more.WriteByte('|')
		more.field(in.Workload.ContainerID)
		more.field(in.Workload.Pod.UID)
		more.num(int(in.Workload.CgroupID))
		who = more.String()
	}
	return cacheKey{
		version: v,
		who:     compactKey(who),
		target:  target.String(),
		action:  compactKey(actionKey(&in.Action, statementDetail)),
		grants:  grantsKey(in.Grants),
	}
}

// compactKey stands a long key part in by its SHA-256, so that the cache's
// size bounds its memory: an SSH command may be 64 KiB, and a workload
// sending ever-new ones would otherwise have the cache hold a gigabyte.
// Key parts start with a length digit, never with the NUL marking a
// digest.
func compactKey(s string) string {
	if len(s) <= 256 {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return "\x00" + string(sum[:])
}

// keyWriter builds a cache key out of fields whose bounds cannot be
// forged: each is written after its length, so a value that holds what
// would have been a separator (a token's group "dba\x00x", a command with
// a NUL in it) can never pass for two fields, nor two for one, and share a
// decision it was not given.
type keyWriter struct{ strings.Builder }

// num writes n and a colon: a length, or a number field.
func (k *keyWriter) num(n int) {
	var tmp [20]byte
	k.Write(strconv.AppendInt(tmp[:0], int64(n), 10))
	k.WriteByte(':')
}

func (k *keyWriter) field(s string) {
	k.num(len(s))
	k.WriteString(s)
}

func (k *keyWriter) list(ss []string) {
	k.num(len(ss))
	for _, s := range ss {
		k.field(s)
	}
}

// IdentityKey is the part of a decision's cache key that stands for the
// workload: the facts rules can match, not the pid (every process of the
// same workload shares decisions). A handler computes it once per session
// and puts it in Input.IdentityKey.
func IdentityKey(w *Workload) string {
	var k keyWriter
	for _, s := range [...]string{w.Unit, w.Exe, w.CgroupPath, w.User, w.Pod.Namespace, w.Pod.Name, w.Pod.ServiceAccount, w.Pod.Container, w.Pod.Image} {
		k.field(s)
	}
	k.num(int(w.UID))
	keys := make([]string, 0, len(w.Pod.Labels))
	for key := range w.Pod.Labels {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	k.num(len(keys))
	for _, key := range keys {
		k.field(key)
		k.field(w.Pod.Labels[key])
	}
	if o := w.OIDC; o != nil {
		k.WriteByte('+')
		k.field(o.Issuer)
		k.field(o.Subject)
		k.field(o.Email)
		k.list(o.Groups)
	}
	return k.String()
}

func actionKey(a *Action, statementDetail bool) string {
	var k keyWriter
	n := len(a.Kind) + 8
	for _, op := range a.Operations {
		n += len(op) + 4
	}
	k.Grow(n)
	k.field(a.Kind)
	if a.Operations == nil {
		k.WriteByte('n') // no list, which a module can tell from an empty one
	}
	k.list(a.Operations)
	switch {
	case a.SQL != nil && !statementDetail:
	case a.SQL != nil:
		// What a module can read of the statement: a fast-path function
		// call has no text, only its command and function.
		k.field(a.SQL.Command)
		k.list(a.SQL.Tables)
		k.list(a.SQL.Functions)
		k.field(strconv.FormatBool(a.SQL.HasWhere))
		if a.SQL.Fingerprint != "" {
			k.WriteByte('f')
			k.field(a.SQL.Fingerprint)
		} else {
			k.WriteByte('t')
			k.field(a.SQL.Text)
		}
	case a.SSH != nil:
		k.WriteByte('s')
		k.field(a.SSH.Command)
		k.list(a.SSH.Argv)
		k.num(a.SSH.Known)
		k.field(strconv.FormatBool(a.SSH.Appends))
		k.field(strconv.FormatBool(a.SSH.Interactive))
		k.field(a.SSH.Subsystem)
		k.field(a.SSH.Forward)
		k.field(a.SSH.Env)
		k.field(a.SSH.User)
		k.list(a.SSH.Via)
	case a.HTTP != nil:
		k.WriteByte('h')
		k.field(a.HTTP.Method)
		k.field(a.HTTP.Host)
		k.field(a.HTTP.Path)
	case a.Kubernetes != nil:
		c := a.Kubernetes
		k.WriteByte('k')
		for _, s := range [...]string{c.Verb, c.APIGroup, c.Resource, c.Subresource, c.Namespace, c.Name} {
			k.field(s)
		}
	}
	return k.String()
}

func grantsKey(gs []Grant) string {
	if len(gs) == 0 {
		return ""
	}
	ids := make([]string, len(gs))
	for i, g := range gs {
		var k keyWriter
		k.field(g.ID)
		k.field(g.Expires.UTC().Format(time.RFC3339Nano))
		k.list(g.Operations)
		ids[i] = k.String()
	}
	slices.Sort(ids)
	var k keyWriter
	k.list(ids)
	return k.String()
}

type decisionCache struct {
	mu sync.RWMutex
	m  map[cacheKey]Decision
}

func (c *decisionCache) get(k cacheKey) (Decision, bool) {
	c.mu.RLock()
	d, ok := c.m[k]
	c.mu.RUnlock()
	return d, ok
}

func (c *decisionCache) put(k cacheKey, d Decision, max int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= max {
		// Full: start over rather than track recency on the hot path; the
		// working set refills in one round of decisions.
		c.m = make(map[cacheKey]Decision, 64)
	}
	c.m[k] = d
}

func (c *decisionCache) clear() {
	c.mu.Lock()
	c.m = nil
	c.mu.Unlock()
}
