package recorder_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/corral-dev/corral/recorder"
	"github.com/corral-dev/corral/recorder/store"
)

type env struct {
	dir     string
	backend *store.Dir
	index   *store.Index
	rec     *recorder.Recorder
}

func newEnvB(b *testing.B, dir string) *env {
	b.Helper()
	e := &env{dir: dir}
	var err error
	if e.backend, err = store.NewDir(filepath.Join(dir, "sessions")); err != nil {
		b.Fatal(err)
	}
	if e.index, err = store.OpenIndex(filepath.Join(dir, "index.db")); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.index.Close() })
	if e.rec, err = recorder.New(context.Background(), recorder.Options{Backend: e.backend, Index: e.index, Log: slog.New(slog.DiscardHandler)}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.rec.Close() })
	return e
}

func newEnv(t *testing.T, dir string, o recorder.Options) *env {
	t.Helper()
	e := &env{dir: dir}
	var err error
	if e.backend, err = store.NewDir(filepath.Join(dir, "sessions")); err != nil {
		t.Fatal(err)
	}
	if e.index, err = store.OpenIndex(filepath.Join(dir, "index.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.index.Close() })
	if kd, ok := o.Backend.(*keepDisk); ok {
		kd.Dir = e.backend
	}
	if o.Backend == nil {
		o.Backend = e.backend
	}
	o.Index = e.index
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if e.rec, err = recorder.New(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.rec.Close() })
	return e
}

func header(id string) recorder.Header {
	return recorder.Header{
		SessionID: id, Target: "orders-db", Protocol: "postgres", Client: "10.0.0.1:5000", OrigDst: "10.0.0.5:5432",
		Workload: []byte(`{"exe":"/usr/bin/psql","unit":"etl.service","uid":1000,"user":"etl","cgroup_path":"/system.slice/etl.service","pod":{"namespace":"","name":"","service_account":""}}`),
		Decision: "allow", Rule: "etl",
	}
}

// session records a short session and returns it unended.
func session(t *testing.T, e *env, id string, started time.Time) *recorder.Session {
	t.Helper()
	s, err := e.rec.Start(header(id), started, recorder.Strict, nil)
	if err != nil {
		t.Fatal(err)
	}
	seq, err := s.Record(recorder.Record{Type: recorder.TypeStatement, Statement: &recorder.Statement{Text: "SELECT * FROM customers WHERE id = $1", Operations: []string{"select"}, Decision: "allow", Rule: "etl"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(recorder.Record{Type: recorder.TypeResult, Result: &recorder.Result{Of: seq, Command: "SELECT 1", Rows: 1, Bytes: 80, MaskedColumns: []string{"public.customers.email"}, MaskedValues: 1, DurationMS: 0.4}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(recorder.Record{Type: recorder.TypeStatement, Statement: &recorder.Statement{Text: "DROP TABLE customers", Operations: []string{"drop"}, Decision: "deny", Reason: "no rule allows drop"}}); err != nil {
		t.Fatal(err)
	}
	return s
}

func file(t *testing.T, e *env, id string) string {
	t.Helper()
	en, err := e.index.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(e.backend.Path, filepath.FromSlash(en.Name))
}

func verify(t *testing.T, path string) *recorder.Report {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := recorder.Verify(f)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestCompleteSessionVerifiesAndIsIndexed(t *testing.T) {
	e := newEnv(t, t.TempDir(), recorder.Options{})
	s := session(t, e, "s-1", time.Now())
	if err := s.End(recorder.End{Reason: "client closed", BytesUp: 10, BytesDown: 20, DurationMS: 5}); err != nil {
		t.Fatal(err)
	}
	rep := verify(t, file(t, e, "s-1"))
	if !rep.OK() || !rep.Complete || rep.Records != 5 || rep.Status() != "ok" {
		t.Fatalf("report = %+v, broken %v", rep, rep.Broken)
	}
	if rep.Header.SessionID != "s-1" || rep.Header.Format != recorder.FormatVersion {
		t.Fatalf("header = %+v", rep.Header)
	}
	en, err := e.index.Get(context.Background(), "s-1")
	if err != nil {
		t.Fatal(err)
	}
	if en.State != store.StateComplete || en.Statements != 2 || en.Denied != 1 || en.Records != 5 || en.LastHash != rep.LastHash || en.Exe != "/usr/bin/psql" || en.Unit != "etl.service" {
		t.Fatalf("index entry = %+v", en)
	}
	if fi, _ := os.Stat(file(t, e, "s-1")); fi.Mode().Perm() != 0o600 || en.Bytes != fi.Size() {
		t.Fatalf("file mode %v size %d, index bytes %d", fi.Mode().Perm(), fi.Size(), en.Bytes)
	}
	// The records read back as written.
	f, _ := os.Open(file(t, e, "s-1"))
	defer f.Close()
	var types []string
	recorder.Read(f, func(r *recorder.Record) error {
		types = append(types, r.Type)
		if r.Result != nil && (r.Result.Of != 1 || r.Result.MaskedColumns[0] != "public.customers.email") {
			t.Errorf("result = %+v", r.Result)
		}
		return nil
	})
	if strings.Join(types, ",") != "header,statement,result,statement,end" {
		t.Fatalf("types = %v", types)
	}
}

// Changing any single byte of a recording is caught, at the record that
// holds it.
func TestVerifyFindsEveryEditedByte(t *testing.T) {
	e := newEnv(t, t.TempDir(), recorder.Options{})
	s := session(t, e, "s-edit", time.Now())
	s.End(recorder.End{Reason: "client closed"})
	orig, err := os.ReadFile(file(t, e, "s-edit"))
	if err != nil {
		t.Fatal(err)
	}
	lineOf := func(i int) int { return bytes.Count(orig[:i], []byte("\n")) }
	for i := 0; i < len(orig); i++ {
		if orig[i] == '\n' {
			continue
		}
		b := bytes.Clone(orig)
		b[i] ^= 0x01
		rep, err := recorder.Verify(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK() {
			t.Fatalf("byte %d (%q in line %d) changed and the recording still verifies", i, orig[i], lineOf(i)+1)
		}
		if rep.Broken.Seq != uint64(lineOf(i)) || rep.Broken.Line != lineOf(i)+1 {
			t.Fatalf("byte %d of record %d changed; reported at %+v", i, lineOf(i), rep.Broken)
		}
	}
}

func TestVerifyFindsRemovedInsertedAndReorderedRecords(t *testing.T) {
	e := newEnv(t, t.TempDir(), recorder.Options{})
	s := session(t, e, "s-order", time.Now())
	s.End(recorder.End{})
	orig, _ := os.ReadFile(file(t, e, "s-order"))
	lines := strings.SplitAfter(string(orig), "\n")
	lines = lines[:len(lines)-1]
	cases := map[string][]string{
		"removed":   append(append([]string{}, lines[:2]...), lines[3:]...),
		"swapped":   {lines[0], lines[2], lines[1], lines[3], lines[4]},
		"duplicate": {lines[0], lines[1], lines[1], lines[2], lines[3], lines[4]},
		"after end": append(append([]string{}, lines...), lines[4]),
		"no header": lines[1:],
	}
	for name, ls := range cases {
		rep, err := recorder.Verify(strings.NewReader(strings.Join(ls, "")))
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK() {
			t.Errorf("%s: verifies", name)
		}
	}
	// Removing the end record leaves a truncated recording, not a corrupt one.
	rep, _ := recorder.Verify(strings.NewReader(strings.Join(lines[:4], "")))
	if !rep.OK() || !rep.Truncated || rep.Complete {
		t.Fatalf("without its end: %+v", rep)
	}
}

// An agent killed mid-session: the next agent finds the recording open in
// the index, and closes it as truncated; what was synced verifies, and an
// interrupted last line is not part of it.
func TestRecoveryMarksCutSessionsTruncated(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir, recorder.Options{SyncInterval: time.Hour})
	session(t, e, "s-cut", time.Now())
	e.rec.Close() // syncs; the session never ends
	path := file(t, e, "s-cut")
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"seq":4,"time":"2026-`) // the write the crash cut
	f.Close()
	e.index.Close()

	e2 := newEnv(t, dir, recorder.Options{})
	en, err := e2.index.Get(context.Background(), "s-cut")
	if err != nil {
		t.Fatal(err)
	}
	if en.State != store.StateTruncated || en.Records != 4 || en.Statements != 2 || en.Denied != 1 {
		t.Fatalf("after recovery: %+v", en)
	}
	rep := verify(t, path)
	if !rep.OK() || !rep.Truncated || rep.Records != 4 || rep.Status() != "truncated" {
		t.Fatalf("report = %+v", rep)
	}
}

// A lost index is rebuilt from the recordings themselves.
func TestReindexFromFiles(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir, recorder.Options{})
	session(t, e, "s-a", time.Now()).End(recorder.End{})
	session(t, e, "s-b", time.Now())
	e.rec.Close()
	e.index.Close()
	for _, f := range []string{"index.db", "index.db-wal", "index.db-shm"} {
		os.Remove(filepath.Join(dir, f))
	}
	e2 := newEnv(t, dir, recorder.Options{})
	list, err := e2.index.List(context.Background(), store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, en := range list {
		states[en.ID] = en.State
	}
	if states["s-a"] != store.StateComplete || states["s-b"] != store.StateTruncated || len(states) != 2 {
		t.Fatalf("rebuilt index: %v", states)
	}
}

// fullDisk is a store whose every write fails with ENOSPC: the kernel's
// /dev/full.
type fullDisk struct{ *store.Dir }

func (fullDisk) Create(string) (store.Object, error) {
	return os.OpenFile("/dev/full", os.O_WRONLY, 0)
}

// keepDisk is the local store, keeping the last file it created.
type keepDisk struct {
	*store.Dir
	last *os.File
}

func (d *keepDisk) Create(name string) (store.Object, error) {
	o, err := d.Dir.Create(name)
	if f, ok := o.(*os.File); ok {
		d.last = f
	}
	return o, err
}

func TestStrictRefusesWhatCannotBeRecorded(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	e := newEnv(t, t.TempDir(), recorder.Options{})
	rec, err := recorder.New(context.Background(), recorder.Options{Backend: fullDisk{e.backend}, Index: e.index, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	if _, err := rec.Start(header("s-full"), time.Now(), recorder.Strict, nil); err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("strict start on a full disk: %v", err)
	}
	if rec.Failures() != 1 {
		t.Fatalf("failures = %d", rec.Failures())
	}
}

// A recording that fails mid-session: strict cuts the session and refuses
// every later record; best-effort goes on, counting the failure once.
func TestFailureMidSession(t *testing.T) {
	for _, mode := range []recorder.Mode{recorder.Strict, recorder.BestEffort} {
		t.Run(string(mode), func(t *testing.T) {
			disk := &keepDisk{}
			e := newEnv(t, t.TempDir(), recorder.Options{SyncInterval: 10 * time.Millisecond, Backend: disk})
			var cut atomic.Bool
			cutc := make(chan struct{})
			s, err := e.rec.Start(header("s-mid"), time.Now(), mode, func() { cut.Store(true); close(cutc) })
			if err != nil {
				t.Fatal(err)
			}
			// The disk fills: the recording's descriptor now refers to
			// /dev/full, where every write fails with ENOSPC.
			full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
			if err != nil {
				t.Skip("no /dev/full")
			}
			defer full.Close()
			if err := syscall.Dup2(int(full.Fd()), int(disk.last.Fd())); err != nil {
				t.Fatal(err)
			}
			big := strings.Repeat("x", 8192)
			var lastErr error
			for i := 0; i < 100 && lastErr == nil && e.rec.Failures() == 0; i++ {
				_, lastErr = s.Record(recorder.Record{Type: recorder.TypeError, Error: &recorder.Error{Message: big}})
			}
			_, err = s.Record(recorder.Record{Type: recorder.TypeStatement, Statement: &recorder.Statement{Text: "SELECT 1", Decision: "allow"}})
			if e.rec.Failures() == 0 {
				t.Fatal("the failure was not counted")
			}
			switch mode {
			case recorder.Strict:
				if err == nil {
					t.Fatal("strict: a record after the failure was accepted")
				}
				<-cutc
			case recorder.BestEffort:
				if err != nil || cut.Load() {
					t.Fatalf("best-effort: err %v, cut %v", err, cut.Load())
				}
			}
			// The index keeps what reached the disk (the header), not
			// what the failed writes held: verify holds the file to it.
			s.End(recorder.End{})
			entry, err := e.index.ByID(context.Background(), "s-mid")
			if err != nil || entry.Records != 1 || entry.State != store.StateTruncated {
				t.Errorf("index after the failure: %+v, %v; want 1 record, truncated", entry, err)
			}
		})
	}
}

func TestRetention(t *testing.T) {
	e := newEnv(t, t.TempDir(), recorder.Options{})
	now := time.Now()
	for i, id := range []string{"s-old", "s-mid", "s-new"} {
		session(t, e, id, now.Add(time.Duration(i-3)*24*time.Hour)).End(recorder.End{})
	}
	// An open recording is never removed, however old.
	session(t, e, "s-open", now.Add(-10*24*time.Hour))
	if err := e.rec.Retain(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	e.rec.Close()
	ctx := context.Background()
	// By age: older than 2.5 days goes (the open session too, now: a new
	// recorder finds it cut short).
	rec, err := recorder.New(ctx, recorder.Options{Backend: e.backend, Index: e.index, MaxAge: 60 * time.Hour, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	rec.Close()
	ids := func() string {
		list, _ := e.index.List(ctx, store.Filter{})
		var out []string
		for _, en := range list {
			out = append(out, en.ID)
		}
		return strings.Join(out, ",")
	}
	if got := ids(); got != "s-new,s-mid" {
		t.Fatalf("after age retention: %s", got)
	}
	// By size: keep at most about one recording.
	en, _ := e.index.Get(ctx, "s-new")
	rec, err = recorder.New(ctx, recorder.Options{Backend: e.backend, Index: e.index, MaxBytes: en.Bytes + 1, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	rec.Close()
	if got := ids(); got != "s-new" {
		t.Fatalf("after size retention: %s", got)
	}
	if _, err := os.Stat(filepath.Join(e.backend.Path, filepath.FromSlash(recorder.Name(now.Add(-3*24*time.Hour), "s-old")))); !os.IsNotExist(err) {
		t.Fatalf("the old recording's file is still there: %v", err)
	}
}

func TestReadRejectsHugeLines(t *testing.T) {
	r := io.MultiReader(strings.NewReader(`{"seq":0,"x":"`), strings.NewReader(strings.Repeat("a", 17<<20)))
	rep, err := recorder.Verify(r)
	if err != nil || rep.Broken == nil || !strings.Contains(rep.Broken.Reason, "a line longer than") {
		t.Fatalf("a 17 MiB line: %v %+v", err, rep)
	}
}

// A workload's text is kept up to a bound in each record, so no record
// it fills can make the recording unreadable: a server's error quoting a
// value of 3 million '<' (six bytes each in JSON) once made an 18 MiB
// line, which every reader refuses, and the recording's denied DROP with it.
func TestRecordsBoundTheirTexts(t *testing.T) {
	e := newEnv(t, t.TempDir(), recorder.Options{})
	s := session(t, e, "s-1", time.Now())
	seq, err := s.Record(recorder.Record{Type: recorder.TypeStatement, Statement: &recorder.Statement{Text: "DO " + strings.Repeat("x", 2<<20), Decision: "allow"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(recorder.Record{Type: recorder.TypeResult, Result: &recorder.Result{Of: seq, Code: "P0001", Message: strings.Repeat("<", 3_000_000)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.End(recorder.End{Error: strings.Repeat("é", 1<<20)}); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(file(t, e, "s-1"))
	defer f.Close()
	var texts []string
	rep, err := recorder.Read(f, func(r *recorder.Record) error {
		switch {
		case r.Statement != nil:
			texts = append(texts, r.Statement.Text)
		case r.Result != nil:
			texts = append(texts, r.Result.Message)
		case r.End != nil:
			texts = append(texts, r.End.Error)
		}
		return nil
	})
	if err != nil || !rep.OK() || !rep.Complete {
		t.Fatalf("%v %+v %v", err, rep, rep.Broken)
	}
	want := []string{"(2097155 bytes, cut)", "(3000000 bytes, cut)", "(2097152 bytes, cut)"}
	texts = texts[len(texts)-len(want):]
	for i, w := range want {
		if !strings.HasSuffix(texts[i], w) || len(texts[i]) > 1<<20+64 || !utf8.ValidString(texts[i]) {
			t.Errorf("text %d: %d bytes, ends %q", i, len(texts[i]), texts[i][max(0, len(texts[i])-30):])
		}
	}
}

func TestReplayTranscript(t *testing.T) {
	e := newEnv(t, t.TempDir(), recorder.Options{})
	s := session(t, e, "s-replay", time.Now())
	s.End(recorder.End{BytesUp: 100, BytesDown: 2000, DurationMS: 1500})
	f, err := os.Open(file(t, e, "s-replay"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out strings.Builder
	rep, err := recorder.Replay(&out, f)
	if err != nil || !rep.Complete {
		t.Fatalf("replay: %v, %+v", err, rep)
	}
	for _, want := range []string{
		"session s-replay: orders-db (postgres) at 10.0.0.5:5432",
		"/usr/bin/psql (pid 0), user etl, unit etl.service",
		`allow by rule "etl"`,
		"ALLOW  SELECT * FROM customers WHERE id = $1   [rule etl]",
		"→ SELECT 1: 1 row, 80 bytes, 1 values masked (public.customers.email), 0.40 ms",
		"DENY   DROP TABLE customers",
		"↳ no rule allows drop",
		"session ended after 1.50 s: 100 bytes from the workload, 2000 to it",
		"-- 5 records, hash chain verified",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("transcript lacks %q:\n%s", want, out.String())
		}
	}
}

// sessionsDir is the store newEnv(t, dir, ...) uses, for a backend that
// wraps it.
func sessionsDir(t *testing.T, dir string) *store.Dir {
	t.Helper()
	d, err := store.NewDir(filepath.Join(dir, "sessions"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// gatedDisk holds every Sync until the test lets one through, and counts
// how many wait at once.
type gatedDisk struct {
	*store.Dir
	entered         chan struct{}
	gate            chan struct{}
	inSync, maxSync atomic.Int32
}

type gatedObject struct {
	store.Object
	d *gatedDisk
}

func (d *gatedDisk) Create(name string) (store.Object, error) {
	o, err := d.Dir.Create(name)
	if err != nil {
		return nil, err
	}
	return gatedObject{o, d}, nil
}

func (o gatedObject) Sync() error {
	n := o.d.inSync.Add(1)
	for m := o.d.maxSync.Load(); n > m && !o.d.maxSync.CompareAndSwap(m, n); m = o.d.maxSync.Load() {
	}
	o.d.entered <- struct{}{}
	<-o.d.gate
	o.d.inSync.Add(-1)
	return o.Object.Sync()
}

// A burst of sessions starting at once syncs their headers a few at a time:
// each sync holds an OS thread.
func TestStartsSyncAFewAtATime(t *testing.T) {
	const burst = 16
	dir := t.TempDir()
	sessions := sessionsDir(t, dir)
	disk := &gatedDisk{Dir: sessions, entered: make(chan struct{}, burst), gate: make(chan struct{})}
	e := newEnv(t, dir, recorder.Options{Backend: disk})
	errs := make(chan error, burst)
	for i := range burst {
		go func() {
			s, err := e.rec.Start(header(fmt.Sprintf("s-%d", i)), time.Now(), recorder.Strict, nil)
			if err == nil {
				err = s.End(recorder.End{})
			}
			errs <- err
		}()
	}
	for range 4 {
		<-disk.entered
	}
	// Four wait in Sync; nothing else may join them. (An absence has no
	// event to wait for: a moment of quiet stands for it.)
	select {
	case <-disk.entered:
		t.Fatal("a fifth sync began while four were waiting")
	case <-time.After(100 * time.Millisecond):
	}
	// Each session syncs twice, its header and its end: each one let
	// through makes way for the next.
	for range 2*burst - 4 {
		disk.gate <- struct{}{}
		<-disk.entered
	}
	for range 4 {
		disk.gate <- struct{}{}
	}
	for range burst {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if m := disk.maxSync.Load(); m > 4 {
		t.Fatalf("%d syncs waited at once; starts and ends are bounded to 4", m)
	}
}

// panicDisk panics in Create while panics > 0.
type panicDisk struct {
	*store.Dir
	panics atomic.Int32
}

func (d *panicDisk) Create(name string) (store.Object, error) {
	if d.panics.Add(-1) >= 0 {
		panic("backend failure")
	}
	return d.Dir.Create(name)
}

// A backend that panics (the agent recovers a handler's panic) leaves no
// sync slot taken: later sessions still start.
func TestPanickingBackendKeepsNoSlot(t *testing.T) {
	dir := t.TempDir()
	sessions := sessionsDir(t, dir)
	disk := &panicDisk{Dir: sessions}
	disk.panics.Store(8)
	e := newEnv(t, dir, recorder.Options{Backend: disk})
	for i := range 8 {
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("the backend's panic did not reach the caller")
				}
			}()
			e.rec.Start(header(fmt.Sprintf("s-p%d", i)), time.Now(), recorder.Strict, nil)
		}()
	}
	s, err := e.rec.Start(header("s-after"), time.Now(), recorder.Strict, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.End(recorder.End{}); err != nil {
		t.Fatal(err)
	}
}

// partialDisk lets a recording's first writes through, then writes only
// the first line of a write and fails: a disk that fills in the middle of
// a sync leaves whole records past the last one synced.
type partialDisk struct {
	*store.Dir
	writes int
}

func (d *partialDisk) Create(name string) (store.Object, error) {
	o, err := d.Dir.Create(name)
	if err != nil {
		return nil, err
	}
	return &partialObject{Object: o, d: d}, nil
}

type partialObject struct {
	store.Object
	d *partialDisk
}

func (o *partialObject) Write(b []byte) (int, error) {
	if o.d.writes++; o.d.writes == 1 {
		return o.Object.Write(b) // the header
	}
	i := bytes.IndexByte(b, '\n')
	n, _ := o.Object.Write(b[:i+1])
	return n, syscall.ENOSPC
}

// The index of a recording a failing disk cut short holds what reached
// the file, whole records past the last sync included: verify finds the
// file as the index says, not "records added after it ended".
func TestFailureLeavesTheIndexAsTheFile(t *testing.T) {
	e := newEnv(t, t.TempDir(), recorder.Options{SyncInterval: time.Hour})
	disk := &partialDisk{Dir: e.backend}
	rec, err := recorder.New(context.Background(), recorder.Options{Backend: disk, Index: e.index, SyncInterval: time.Hour, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	s, err := rec.Start(header("s-part"), time.Now(), recorder.BestEffort, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"SELECT 1", "SELECT 2", "SELECT 3"} {
		s.Record(recorder.Record{Type: recorder.TypeStatement, Statement: &recorder.Statement{Text: q, Decision: "allow"}})
	}
	s.End(recorder.End{})
	entry, err := e.index.ByID(context.Background(), "s-part")
	if err != nil {
		t.Fatal(err)
	}
	f, err := e.backend.Open(entry.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := recorder.Verify(f)
	if err != nil || rep.Broken != nil {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
	if rep.Records != 2 || entry.Records != rep.Records || entry.LastHash != rep.LastHash || entry.State != store.StateTruncated {
		t.Errorf("file holds %d records, the index says %d (%s)", rep.Records, entry.Records, entry.State)
	}
}

// Commands on one SSH connection end in any order: a result that does not
// answer the statement shown just above it names its own. A command that
// ended without an exit status says so (not "0 rows"), and a review's
// reason and wait are shown.
func TestReplayNamesWhatAResultAnswers(t *testing.T) {
	e := newEnv(t, t.TempDir(), recorder.Options{})
	h := header("s-ssh")
	h.Protocol = "ssh"
	s, err := e.rec.Start(h, time.Now(), recorder.Strict, nil)
	if err != nil {
		t.Fatal(err)
	}
	stmt := func(text string) uint64 {
		seq, err := s.Record(recorder.Record{Type: recorder.TypeStatement, Statement: &recorder.Statement{Text: text, Operations: []string{"exec"}, Decision: "allow"}})
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	zero, one := 0, 1
	rm, tr := stmt("rm -rf /srv/data"), stmt("true")
	s.Record(recorder.Record{Type: recorder.TypeResult, Result: &recorder.Result{Of: tr, ExitStatus: &zero}})
	s.Record(recorder.Record{Type: recorder.TypeResult, Result: &recorder.Result{Of: rm, ExitStatus: &one}})
	sl := stmt("sleep 100")
	s.Record(recorder.Record{Type: recorder.TypeApproval, Approval: &recorder.Approval{Request: "r-1", State: "denied", Reviewer: "alice", Reason: "not now", WaitMS: 2500}})
	s.Record(recorder.Record{Type: recorder.TypeResult, Result: &recorder.Result{Of: sl, Bytes: 3}})
	s.End(recorder.End{})
	f, _ := os.Open(file(t, e, "s-ssh"))
	defer f.Close()
	var out strings.Builder
	if _, err := recorder.Replay(&out, f); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"→ exit status 0,",
		fmt.Sprintf("→ #%d exit status 1,", rm),
		"approval r-1: denied alice: not now (after 2.50 s)",
		"→ ended without an exit status, 3 bytes out, 0 in",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "rows") {
		t.Errorf("an SSH command's rows:\n%s", out.String())
	}
}
