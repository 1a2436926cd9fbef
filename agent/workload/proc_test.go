package workload

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// fakeProc writes a /proc/<pid> that ReadProcess can read, for the cases a
// real process cannot be made to show (odd comms, reused pids).
func fakeProc(t *testing.T, procRoot string, pid uint32, comm string, start uint64, uid uint32, exe string, cmdline string) {
	t.Helper()
	dir := filepath.Join(procRoot, strconv.FormatUint(uint64(pid), 10))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stat := fmt.Sprintf("%d (%s) S 1 %d %d 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 %d 1000000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n", pid, comm, pid, pid, start)
	status := fmt.Sprintf("Name:\t%s\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t%d\nPid:\t%d\nPPid:\t1\nUid:\t%d\t0\t0\t0\nGid:\t0\t0\t0\t0\n", comm, pid, pid, uid)
	for name, data := range map[string]string{"stat": stat, "status": status, "cmdline": cmdline} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "exe")
	if err := os.Remove(link); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if exe != "" {
		if err := os.Symlink(exe, link); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadProcessFake(t *testing.T) {
	procRoot := t.TempDir()
	fakeProc(t, procRoot, 42, "we(ird) ) name", 987654, 1234, "/usr/bin/python3 (deleted)", "python3\x00-c\x00print('a b')\x00")
	fakeProc(t, procRoot, 43, "kworker/0:1", 5, 0, "", "")

	p, err := ReadProcess(procRoot, 42)
	if err != nil {
		t.Fatal(err)
	}
	want := Process{PID: 42, Exe: "/usr/bin/python3", Cmdline: []string{"python3", "-c", "print('a b')"}, Comm: "we(ird) ) name", UID: 1234, User: lookupUser(1234), StartTime: 987654}
	if !procEqual(p, want) {
		t.Errorf("ReadProcess = %+v\nwant %+v", p, want)
	}

	p, err = ReadProcess(procRoot, 43)
	if err != nil {
		t.Fatal(err)
	}
	if p.Exe != "" || p.Cmdline != nil || p.Comm != "kworker/0:1" || p.StartTime != 5 {
		t.Errorf("kernel thread: %+v", p)
	}

	for _, pid := range []uint32{0, 44} {
		if _, err := ReadProcess(procRoot, pid); err == nil {
			t.Errorf("ReadProcess(%d) succeeded", pid)
		}
	}
}

func procEqual(a, b Process) bool {
	return a.PID == b.PID && a.Exe == b.Exe && slices.Equal(a.Cmdline, b.Cmdline) && a.Comm == b.Comm &&
		a.UID == b.UID && a.User == b.User && a.StartTime == b.StartTime
}

func TestParseStat(t *testing.T) {
	tail := " S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0"
	for _, tt := range []struct {
		in    string
		comm  string
		start uint64
		ok    bool
	}{
		{"1 (init)" + tail, "init", 777, true},
		{"1 (a b)" + tail, "a b", 777, true},
		{"1 (x) (y)" + tail, "x) (y", 777, true},
		{"1 ())" + tail, ")", 777, true},
		{"1 ()" + tail, "", 777, true},
		{"1 (x) S 1", "", 0, false},
		{"1 x" + tail, "", 0, false},
		{")(" + tail, "", 0, false},
		{"1 (x)" + " S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 -5 0", "", 0, false},
		{"", "", 0, false},
	} {
		comm, start, err := parseStat([]byte(tt.in))
		if (err == nil) != tt.ok || comm != tt.comm || start != tt.start {
			t.Errorf("parseStat(%q) = %q, %d, %v; want %q, %d, ok=%v", tt.in, comm, start, err, tt.comm, tt.start, tt.ok)
		}
	}
}

func TestParseStatusUID(t *testing.T) {
	for _, tt := range []struct {
		in  string
		uid uint32
		ok  bool
	}{
		{"Name:\tx\nUid:\t1000\t0\t0\t0\n", 1000, true},
		{"Uid:\t4294967294\t1\t1\t1", 4294967294, true},
		{"Name:\tx\n", 0, false},
		{"Uid:\n", 0, false},
		{"Uid:\t-1\t0\t0\t0\n", 0, false},
	} {
		uid, err := parseStatusUID([]byte(tt.in))
		if (err == nil) != tt.ok || uid != tt.uid {
			t.Errorf("parseStatusUID(%q) = %d, %v; want %d ok=%v", tt.in, uid, err, tt.uid, tt.ok)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1 (a) b) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0"))
	f.Add([]byte(")("))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = parseStat(b)
		_, _ = parseStatusUID(b)
	})
}
