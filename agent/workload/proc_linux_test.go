package workload

import (
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startProcess runs argv until the test ends.
func startProcess(t *testing.T, argv ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	// Start returns once the kernel has closed the child's close-on-exec
	// descriptors, before the new image's arguments are in place; until then
	// /proc/<pid>/cmdline reads empty.
	cmdline := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/cmdline"
	deadline := time.Now().Add(5 * time.Second)
	for {
		if b, err := os.ReadFile(cmdline); err == nil && len(b) > 0 {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still empty", cmdline)
		}
		time.Sleep(time.Millisecond)
	}
}

// exitedPID returns the pid of a process that has exited and been reaped.
func exitedPID(t *testing.T) uint32 {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return uint32(cmd.Process.Pid)
}

func realPath(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReadProcessSelf(t *testing.T) {
	p, err := ReadProcess("/proc", uint32(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if p.Exe != realPath(t, exe) {
		t.Errorf("Exe = %q, want %q", p.Exe, exe)
	}
	if !slices.Equal(p.Cmdline, os.Args) {
		t.Errorf("Cmdline = %q, want %q", p.Cmdline, os.Args)
	}
	if p.UID != uint32(os.Getuid()) {
		t.Errorf("UID = %d, want %d", p.UID, os.Getuid())
	}
	if u, err := user.Current(); err == nil && p.User != u.Username {
		t.Errorf("User = %q, want %q", p.User, u.Username)
	}
	if p.StartTime == 0 || p.PID != uint32(os.Getpid()) || p.Comm == "" {
		t.Errorf("ReadProcess(self) = %+v", p)
	}
}

func TestReadProcessChild(t *testing.T) {
	self, err := ReadProcess("/proc", uint32(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip(err)
	}
	cmd := startProcess(t, sleep, "30")
	p, err := ReadProcess("/proc", uint32(cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if p.Exe != realPath(t, sleep) {
		t.Errorf("Exe = %q, want %q", p.Exe, realPath(t, sleep))
	}
	if !slices.Equal(p.Cmdline, []string{sleep, "30"}) {
		t.Errorf("Cmdline = %q", p.Cmdline)
	}
	if p.Comm != "sleep" {
		t.Errorf("Comm = %q", p.Comm)
	}
	if p.StartTime < self.StartTime {
		t.Errorf("child StartTime %d before parent's %d", p.StartTime, self.StartTime)
	}
}

func TestReadProcessDeletedExe(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	exe := filepath.Join(dir, "doomed sleep")
	copyFile(t, sleep, exe)
	cmd := startProcess(t, exe, "30")
	if err := os.Remove(exe); err != nil {
		t.Fatal(err)
	}
	p, err := ReadProcess("/proc", uint32(cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if want := realPath(t, dir) + "/doomed sleep"; p.Exe != want {
		t.Errorf("Exe = %q, want %q", p.Exe, want)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestReadProcessExited(t *testing.T) {
	pid := exitedPID(t)
	if _, err := ReadProcess("/proc", pid); err == nil {
		t.Errorf("ReadProcess(exited %d) succeeded", pid)
	} else if !strings.Contains(err.Error(), "process") {
		t.Errorf("error does not say which process: %v", err)
	}
}
