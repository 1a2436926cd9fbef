package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/internal/testutil"
)

// corralCLI runs the corral binary's command line against the test's
// configuration.
func (e *env) corralCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(testutil.CorralBinary(t), append(args, "--config", e.config)...).CombinedOutput()
	return string(out), err
}

// waitClosed waits for the close event of as many sessions.
func (p *pgEnv) waitClosed(t *testing.T, from, n int) []string {
	t.Helper()
	var ids []string
	for len(ids) < n {
		e := p.a.WaitEvent(t, from, func(e intercept.Event) bool {
			if e.Event != intercept.EventClose {
				return false
			}
			for _, id := range ids {
				if id == e.SessionID {
					return false
				}
			}
			return true
		})
		ids = append(ids, e.SessionID)
	}
	return ids
}

type listed struct {
	ID         string `json:"session_id"`
	State      string `json:"state"`
	Target     string `json:"target"`
	Statements int    `json:"statements"`
	Denied     int    `json:"denied"`
	File       string `json:"file"`
	Workload   struct {
		Exe string `json:"exe"`
	} `json:"workload"`
}

func (p *pgEnv) sessions(t *testing.T, args ...string) map[string]listed {
	t.Helper()
	out, err := p.corralCLI(t, append([]string{"sessions", "--json"}, args...)...)
	if err != nil {
		t.Fatalf("corral sessions: %v\n%s", err, out)
	}
	got := map[string]listed{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var l listed
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("corral sessions --json: %v\n%s", err, out)
		}
		got[l.ID] = l
	}
	return got
}

// A psql session through corral is listed, replays with its statements and
// decisions, and verifies; changing one byte of it is caught at that
// record.
func TestRecordingListReplayVerify(t *testing.T) {
	p := newPGEnv(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "")
	from := p.a.Mark()
	if out, err := p.psql(t, "SELECT id, email FROM customers ORDER BY id"); err != nil || !strings.Contains(out, "****") {
		t.Fatalf("select: %v\n%s", err, out)
	}
	if out, err := p.psql(t, "DROP TABLE customers"); err == nil {
		t.Fatalf("drop was allowed:\n%s", out)
	}
	ids := p.waitClosed(t, from, 2)

	list := p.sessions(t, "--target", "orders-db")
	sel, drop := list[ids[0]], list[ids[1]]
	if sel.State != "complete" || sel.Statements != 1 || sel.Denied != 0 || !strings.HasSuffix(sel.Workload.Exe, "/psql") {
		t.Fatalf("listed select session: %+v (all: %v)", sel, list)
	}
	if drop.State != "complete" || drop.Denied != 1 {
		t.Fatalf("listed drop session: %+v", drop)
	}
	if denied := p.sessions(t, "--denied"); len(denied) != 1 || denied[ids[1]].ID == "" {
		t.Fatalf("--denied lists %v", denied)
	}

	out, err := p.corralCLI(t, "replay", ids[0])
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	for _, want := range []string{"orders-db (postgres)", "ALLOW  SELECT id, email FROM customers ORDER BY id", "SELECT 2: 2 rows", "2 values masked (email)", "hash chain verified"} {
		if !strings.Contains(out, want) {
			t.Errorf("replay lacks %q:\n%s", want, out)
		}
	}
	out, err = p.corralCLI(t, "replay", ids[1][:8]) // a prefix names it
	if err != nil || !strings.Contains(out, "DENY   DROP TABLE customers") {
		t.Errorf("replay of the denial: %v\n%s", err, out)
	}
	// No secret reaches a recording: not the upstream password, not a
	// masked value.
	raw, _ := os.ReadFile(filepath.Join(p.stateDir, "sessions", sel.File))
	for _, secret := range []string{"app-pw", "ada@example.com"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the recording holds %q", secret)
		}
	}

	if out, err := p.corralCLI(t, "verify", "--all"); err != nil || strings.Count(out, " ok ") != 2 {
		t.Fatalf("verify --all: %v\n%s", err, out)
	}

	// One byte of the statement record (line 2) changes.
	path := filepath.Join(p.stateDir, "sessions", sel.File)
	line2 := bytes.IndexByte(raw, '\n') + 1
	i := line2 + bytes.Index(raw[line2:], []byte("customers ORDER BY"))
	raw[i] = 'C'
	os.WriteFile(path, raw, 0o600)
	out, err = p.corralCLI(t, "verify", ids[0])
	if err == nil || !strings.Contains(out, "corrupt") || !strings.Contains(out, "record 1 (line 2)") {
		t.Fatalf("verify after an edit: %v\n%s", err, out)
	}
	if out, err := p.corralCLI(t, "replay", ids[0]); err == nil || !strings.Contains(out, "does not verify") {
		t.Fatalf("replay after an edit: %v\n%s", err, out)
	}
	// Removing the last records is caught too: the index saw them synced.
	lines := bytes.SplitAfter(raw, []byte("\n"))
	os.WriteFile(path, bytes.Join(lines[:1], nil), 0o600)
	if out, err := p.corralCLI(t, "verify", ids[0]); err == nil || !strings.Contains(out, "removed from the end") {
		t.Fatalf("verify after a cut: %v\n%s", err, out)
	}
}

// kill -9 in the middle of a session: after the restart, the recording up
// to the last sync is there, listed as truncated, and verifies.
func TestRecordingSurvivesKill(t *testing.T) {
	p := newPGEnvWith(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "", func(h *testutil.Host) string { return addr(h.Addr, 5432) },
		"recording: {sync_interval: 100ms}")
	cmd := exec.Command("psql", "-X", "-w", "-At", "-h", p.host.Addr.String(), "-U", "whoever", "-d", "orders")
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: testutil.CgroupFD(t, p.workCg)}
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	for _, q := range []string{"SELECT 41 + 1;", "SELECT count(*) FROM orders;"} {
		fmt.Fprintln(stdin, q)
		if !lines.Scan() {
			t.Fatalf("psql gave no answer to %s", q)
		}
	}
	open := p.a.WaitEvent(t, 0, func(e intercept.Event) bool { return e.Event == intercept.EventOpen })

	// Both statements and their results are synced within the interval:
	// wait until the file holds them.
	var file string
	deadline := time.Now().Add(10 * time.Second)
	for {
		matches, _ := filepath.Glob(filepath.Join(p.stateDir, "sessions", "*", "*", "*", open.SessionID+".jsonl"))
		if len(matches) == 1 {
			file = matches[0]
			if b, _ := os.ReadFile(file); bytes.Count(b, []byte(`"type":"result"`)) == 2 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the statements never reached the recording")
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.a.Stop(t, syscall.SIGKILL)
	p.a = p.start(t)
	p.a.WaitLine(t, 0, func(l string) bool { return strings.Contains(l, "corral agent ready") })

	got := p.sessions(t, "--state", "truncated")
	if l, ok := got[open.SessionID]; !ok || l.Statements != 2 {
		t.Fatalf("after the restart, truncated sessions: %+v", got)
	}
	out, err := p.corralCLI(t, "verify", open.SessionID)
	if err != nil || !strings.Contains(out, "truncated") || !strings.Contains(out, "every record verified") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	if out, err := p.corralCLI(t, "replay", open.SessionID); err != nil || !strings.Contains(out, "SELECT count(*) FROM orders") || !strings.Contains(out, "cut short") {
		t.Fatalf("replay: %v\n%s", err, out)
	}
}

// A full disk: a strict target refuses the session with a message the
// client shows; best-effort lets it through and says so in the log.
func TestRecordingFullDisk(t *testing.T) {
	testutil.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "rec")
	os.MkdirAll(dir, 0o700)
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	metrics := freeLoopbackAddr(t)
	p := newPGEnvWith(t, testutil.PostgresOptions{}, "app", "app-secret-pw", "", func(h *testutil.Host) string { return addr(h.Addr, 5432) },
		"recording: {dir: "+dir+"}\nmetrics_address: "+metrics)
	p.a.WaitLine(t, 0, func(l string) bool { return strings.Contains(l, "corral agent ready") })
	// Fill the disk.
	f, _ := os.Create(filepath.Join(dir, "filler"))
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()

	out, err := p.psql(t, "SELECT 1")
	if err == nil || !strings.Contains(out, "cannot record the session") || !strings.Contains(out, "no space left on device") {
		t.Fatalf("strict target on a full disk: %v\n%s", err, out)
	}

	// Switch the target to best-effort (a reload) and try again.
	cfg, _ := os.ReadFile(p.config)
	cfg = bytes.Replace(cfg, []byte("    endpoints:"), []byte("    recording: best-effort\n    endpoints:"), 1)
	from := p.a.Mark()
	os.WriteFile(p.config, cfg, 0o600)
	p.a.WaitLine(t, from, func(l string) bool {
		return strings.Contains(l, "policy reloaded") || strings.Contains(l, "configuration reloaded")
	})
	from = p.a.Mark()
	if out, err := p.psql(t, "SELECT 41 + 1"); err != nil || out != "42" {
		t.Fatalf("best-effort target on a full disk: %v\n%s", err, out)
	}
	p.a.WaitLine(t, from, func(l string) bool {
		return strings.Contains(l, "recording failed") && strings.Contains(l, "best-effort")
	})
}
