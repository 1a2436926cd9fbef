package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestIndexListFiltersAndPrefixes(t *testing.T) {
	ctx := context.Background()
	ix, err := OpenIndex(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	now := time.Now()
	for i, e := range []Entry{
		{ID: "s-aa01", Target: "orders-db", Protocol: "postgres", Unit: "etl-nightly.service", Exe: "/usr/bin/psql", State: StateComplete, Denied: 1},
		{ID: "s-aa02", Target: "orders-db", Protocol: "postgres", PodNamespace: "etl", PodName: "job-1", ServiceAccount: "migrator", State: StateOpen},
		{ID: "s-bb01", Target: "billing", Protocol: "tcp", Unit: "billing.service", OIDCSubject: "ada", State: StateTruncated},
	} {
		e.Name = e.ID + Ext
		e.Started = now.Add(time.Duration(i) * time.Minute)
		if err := ix.Put(ctx, &e); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(f Filter) string {
		t.Helper()
		list, err := ix.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range list {
			out = append(out, e.ID)
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		f    Filter
		want string
	}{
		{Filter{}, "s-bb01,s-aa02,s-aa01"},
		{Filter{Target: "orders-db"}, "s-aa02,s-aa01"},
		{Filter{Unit: "etl-*"}, "s-aa01"},
		{Filter{ServiceAccount: "migrator", PodNamespace: "etl"}, "s-aa02"},
		{Filter{OIDCSubject: "ada"}, "s-bb01"},
		{Filter{HasDenied: true}, "s-aa01"},
		{Filter{State: StateTruncated}, "s-bb01"},
		{Filter{Since: now.Add(30 * time.Second)}, "s-bb01,s-aa02"},
		{Filter{Until: now.Add(30 * time.Second)}, "s-aa01"},
		{Filter{Limit: 1}, "s-bb01"},
		{Filter{Target: "orders%"}, ""}, // no SQL wildcards
	} {
		if got := ids(c.f); got != c.want {
			t.Errorf("List(%+v) = %q, want %q", c.f, got, c.want)
		}
	}
	if e, err := ix.Get(ctx, "s-bb"); err != nil || e.ID != "s-bb01" {
		t.Errorf("Get(prefix) = %v, %v", e, err)
	}
	if _, err := ix.Get(ctx, "s-aa"); err == nil || !strings.Contains(err.Error(), "more than one") {
		t.Errorf("Get(ambiguous prefix): %v", err)
	}
	if _, err := ix.Get(ctx, "s-a_01"); err == nil {
		t.Error("an underscore matched as a wildcard")
	}
	if err := ix.Update(ctx, []Progress{{ID: "s-aa02", Records: 7, LastHash: "h", Bytes: 99, State: StateComplete, Ended: now}}); err != nil {
		t.Fatal(err)
	}
	e, _ := ix.Get(ctx, "s-aa02")
	if e.State != StateComplete || e.Records != 7 || e.Bytes != 99 || e.Ended.IsZero() {
		t.Errorf("after Update: %+v", e)
	}
	if n, size, err := ix.Usage(ctx); err != nil || n != 3 || size != 99 {
		t.Errorf("Usage = %d, %d, %v", n, size, err)
	}
}

func TestDirRefusesEscapingNames(t *testing.T) {
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"../x.jsonl", "/etc/passwd", "a/../../b", "", "a\\b"} {
		if _, err := d.Create(name); err == nil {
			t.Errorf("Create(%q) succeeded", name)
		}
	}
	o, err := d.Create("2026/11/26/s-1" + Ext)
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
	if _, err := d.Create("2026/11/26/s-1" + Ext); err == nil {
		t.Error("an existing recording was overwritten")
	}
	var names []string
	d.Walk(func(n string) error { names = append(names, n); return nil })
	if strings.Join(names, ",") != "2026/11/26/s-1"+Ext {
		t.Errorf("Walk = %v", names)
	}
	if err := d.Remove("2026/11/26/s-1" + Ext); err != nil {
		t.Fatal(err)
	}
	names = nil
	d.Walk(func(n string) error { names = append(names, n); return nil })
	if len(names) != 0 {
		t.Errorf("after Remove: %v", names)
	}
}

// A symbolic link planted in the directory that leads out of it is not
// followed: nothing outside is created, read, listed or removed through it
// (retention runs as root).
func TestDirStaysInside(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	victim := filepath.Join(outside, "s-old"+Ext)
	os.WriteFile(victim, []byte("keep\n"), 0o600)
	d, err := NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "2026", "11"), 0o700)
	if err := os.Symlink(outside, filepath.Join(dir, "2026", "11", "27")); err != nil {
		t.Fatal(err)
	}
	name := "2026/11/27/s-old" + Ext
	if err := d.Remove(name); err == nil {
		t.Error("Remove through a link out of the directory succeeded")
	}
	if _, err := os.Stat(victim); err != nil {
		t.Fatalf("the file outside is gone: %v", err)
	}
	if f, err := d.Open(name); err == nil {
		f.Close()
		t.Error("Open through a link out of the directory succeeded")
	}
	if o, err := d.Create("2026/11/27/s-new" + Ext); err == nil {
		o.Close()
		t.Error("Create through a link out of the directory succeeded")
	}
	if _, err := d.Size(name); err == nil {
		t.Error("Size through a link out of the directory succeeded")
	}
	d.Walk(func(n string) error {
		t.Errorf("Walk went through the link: %s", n)
		return nil
	})
}

// Only regular files are read back: a FIFO in a recording's place would
// block the reader, and a link to /dev/zero never end.
func TestDirReadsRegularFilesOnly(t *testing.T) {
	dir := t.TempDir()
	d, err := NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.cast"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero.cast")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"fifo.cast", "zero.cast"} {
		if r, err := d.Open(name); err == nil {
			r.Close()
			t.Errorf("Open(%s) succeeded", name)
		}
		if _, err := d.Size(name); err == nil {
			t.Errorf("Size(%s) succeeded", name)
		}
	}
}
