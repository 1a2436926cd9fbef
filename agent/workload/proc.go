package workload

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// maxCmdline caps what is kept of a command line: it ends up in every
// policy input and recording, and /proc will hand out megabytes.
const maxCmdline = 32 << 10

// Process is what /proc says about a process.
type Process struct {
	PID     uint32
	Exe     string
	Cmdline []string
	// Comm is the main thread's name; the kernel's capture at connect time
	// is the connecting thread's.
	Comm string
	// UID is the real uid.
	UID uint32
	// User is UID's name in the host's user database, or "".
	User string
	// StartTime is in clock ticks after boot; with PID it names one process
	// for as long as the machine is up, which a pid alone does not.
	StartTime uint64
}

// ReadProcess reads pid's facts under procRoot (normally "/proc"). It fails
// when the process does not exist; an executable or command line that cannot
// be read (kernel threads, zombies) is left empty instead.
func ReadProcess(procRoot string, pid uint32) (Process, error) {
	return readProcess(procRoot, pid, lookupUser)
}

// readProcess takes the user lookup as a parameter so the Resolver can put
// its cache in front of the user database.
func readProcess(procRoot string, pid uint32, userName func(uint32) string) (Process, error) {
	if pid == 0 {
		return Process{}, errors.New("workload: pid 0")
	}
	// Every read goes through one handle on /proc/<pid>: if the process
	// exits and its pid is reused meanwhile, the reads fail instead of
	// quietly describing the newcomer.
	dir, err := os.OpenRoot(filepath.Join(procRoot, strconv.FormatUint(uint64(pid), 10)))
	if err != nil {
		return Process{}, fmt.Errorf("workload: process %d: %w", pid, err)
	}
	defer dir.Close()

	stat, err := dir.ReadFile("stat")
	if err != nil {
		return Process{}, fmt.Errorf("workload: process %d: %w", pid, err)
	}
	comm, start, err := parseStat(stat)
	if err != nil {
		return Process{}, fmt.Errorf("workload: process %d: %w", pid, err)
	}
	status, err := dir.ReadFile("status")
	if err != nil {
		return Process{}, fmt.Errorf("workload: process %d: %w", pid, err)
	}
	uid, err := parseStatusUID(status)
	if err != nil {
		return Process{}, fmt.Errorf("workload: process %d: %w", pid, err)
	}
	p := Process{PID: pid, Comm: comm, UID: uid, StartTime: start, User: userName(uid)}
	if exe, err := dir.Readlink("exe"); err == nil {
		// A replaced or removed binary is still what the process runs, and
		// its path is still the best name for it.
		p.Exe = strings.TrimSuffix(exe, " (deleted)")
	}
	p.Cmdline = readCmdline(dir)
	return p, nil
}

func readCmdline(dir *os.Root) []string {
	f, err := dir.Open("cmdline")
	if err != nil {
		return nil
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCmdline))
	if err != nil || len(b) == 0 {
		return nil
	}
	b = bytes.TrimSuffix(b, []byte{0})
	return strings.Split(string(b), "\x00")
}

// readStat is the cheap check that a cached Process still describes the
// process now holding its pid.
func readStat(procRoot string, pid uint32) (comm string, start uint64, err error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.FormatUint(uint64(pid), 10), "stat"))
	if err != nil {
		return "", 0, err
	}
	return parseStat(b)
}

// parseStat returns comm (field 2) and starttime (field 22) of a
// /proc/<pid>/stat line. comm is whatever the process named itself,
// parentheses and spaces included, so fields are counted from the last ')'.
func parseStat(b []byte) (comm string, start uint64, err error) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return "", 0, errors.New("malformed stat: no (comm)")
	}
	fields := strings.Fields(string(b[end+1:]))
	// fields[0] is field 3 (state).
	const startField = 22 - 3
	if len(fields) <= startField {
		return "", 0, fmt.Errorf("malformed stat: %d fields after comm", len(fields))
	}
	start, err = strconv.ParseUint(fields[startField], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("malformed stat: starttime: %w", err)
	}
	return string(b[open+1 : end]), start, nil
}

// parseStatusUID returns the real uid, the first of the four on "Uid:".
func parseStatusUID(b []byte) (uint32, error) {
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("Uid:"))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) == 0 {
			break
		}
		uid, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("malformed status: Uid: %w", err)
		}
		return uint32(uid), nil
	}
	return 0, errors.New("malformed status: no Uid line")
}

// lookupUser names uid, or returns "": a uid without a name (common for
// container users) is not an error.
func lookupUser(uid uint32) string {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return ""
	}
	return u.Username
}
