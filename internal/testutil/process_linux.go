package testutil

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	cnetns "github.com/corral-dev/corral/agent/netns"
	"github.com/corral-dev/corral/intercept"
)

// clientEnv, when set, makes the test binary act as a client process (see
// Main): tests need workloads that are separate processes in their own
// cgroups and namespaces, and the test binary is always at hand.
const clientEnv = "CORRAL_TEST_CLIENT"

var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Main runs the tests, or the client when the binary was started as one.
// Call it from TestMain.
func Main(m *testing.M) {
	if spec := os.Getenv(clientEnv); spec != "" {
		os.Exit(runClient(spec))
	}
	if spec := os.Getenv(funcEnv); spec != "" {
		os.Exit(runFunc(spec))
	}
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// Client says what a client process does: connect to Addr over Network
// from inside NetNS (if set), send Payload, close its sending side and read
// the reply to the end. Network is tcp, tcp4, tcp6, udp4 (send only), or
// tcp6-mapped: an
// AF_INET6 socket connecting to the v4-mapped form of an IPv4 Addr, which
// Go's dialer never does by itself.
type Client struct {
	Network string `json:"network"`
	Addr    string `json:"addr"`
	Payload string `json:"payload"`
	NetNS   string `json:"netns,omitempty"`
	Mark    int    `json:"mark,omitempty"`
	// Bind is the local address (ip:0) a tcp, tcp4 or tcp6 socket binds
	// before it connects.
	Bind string `json:"bind,omitempty"`
	// Then, with Network "tcp6-v6only": the socket first connects to Addr
	// (IPv4) as ::ffff:Addr, which an IPv6-only socket cannot reach, and
	// then, the same socket, to Then (an IPv6 address).
	Then string `json:"then,omitempty"`
}

// ClientResult is what the client process saw.
type ClientResult struct {
	PID    int    `json:"pid"`
	Local  string `json:"local"`  // its own address
	Remote string `json:"remote"` // its peer's address, as its socket says
	Reply  string `json:"reply"`
	Err    string `json:"err"`
}

// RunClient runs a client process in cgroup dir and returns what it saw.
func RunClient(t testing.TB, cgroup string, c Client) ClientResult {
	t.Helper()
	spec, _ := json.Marshal(c)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), clientEnv+"="+string(spec))
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: CgroupFD(t, cgroup)}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client process: %v\n%s", err, stderr.String())
	}
	var r ClientResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("client output %q: %v", out, err)
	}
	r.PID = cmd.Process.Pid
	return r
}

func runClient(spec string) int {
	var c Client
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var r ClientResult
	dial := func() error {
		d := net.Dialer{Timeout: 10 * time.Second}
		if c.Bind != "" {
			a, err := net.ResolveTCPAddr("tcp", c.Bind)
			if err != nil {
				return err
			}
			d.LocalAddr = a
		}
		if c.Mark != 0 {
			d.Control = func(_, _ string, rc syscall.RawConn) error {
				return rc.Control(func(fd uintptr) {
					unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, c.Mark)
				})
			}
		}
		var (
			conn net.Conn
			err  error
		)
		switch c.Network {
		case "tcp6-mapped":
			conn, err = dialMapped(c.Addr)
		case "tcp6-v6only":
			conn, err = dialAfterFailure(c.Addr, c.Then)
		default:
			conn, err = d.Dial(c.Network, c.Addr)
		}
		if err != nil {
			return err
		}
		defer conn.Close()
		r.Local, r.Remote = conn.LocalAddr().String(), conn.RemoteAddr().String()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.WriteString(conn, c.Payload); err != nil {
			return err
		}
		tc, ok := conn.(*net.TCPConn)
		if !ok {
			return nil // datagrams: where the socket is connected is the answer
		}
		tc.CloseWrite()
		b, err := io.ReadAll(conn)
		r.Reply = string(b)
		return err
	}
	var err error
	if c.NetNS != "" {
		err = cnetns.Do(c.NetNS, dial)
	} else {
		err = dial()
	}
	if err != nil {
		r.Err = err.Error()
	}
	json.NewEncoder(os.Stdout).Encode(r)
	return 0
}

// dialAfterFailure connects an IPv6-only socket to first as a v4-mapped
// address, which fails, and then the same socket to then.
func dialAfterFailure(first, then string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(first)
	if err != nil || !ap.Addr().Is4() {
		return nil, fmt.Errorf("tcp6-v6only needs an IPv4 address first: %q", first)
	}
	next, err := netip.ParseAddrPort(then)
	if err != nil || !next.Addr().Is6() {
		return nil, fmt.Errorf("tcp6-v6only needs an IPv6 address then: %q", then)
	}
	fd, f, err := socket6()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
		return nil, err
	}
	if unix.Connect(fd, sockaddr6(ap)) == nil {
		return nil, errors.New("an IPv6-only socket reached a v4-mapped address")
	}
	return connect6(fd, f, next)
}

// socket6 is a TCP socket of the IPv6 family, for dials the net package
// does not offer; f owns fd.
func socket6() (int, *os.File, error) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, nil, err
	}
	return fd, os.NewFile(uintptr(fd), "tcp6"), nil
}

// sockaddr6 is ap as an IPv6 address, v4-mapped for IPv4.
func sockaddr6(ap netip.AddrPort) *unix.SockaddrInet6 {
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

// connect6 connects fd to ap and returns it as a net.Conn.
func connect6(fd int, f *os.File, ap netip.AddrPort) (net.Conn, error) {
	if err := unix.Connect(fd, sockaddr6(ap)); err != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp6", Err: os.NewSyscallError("connect", err)}
	}
	return net.FileConn(f)
}

func dialMapped(addr string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return nil, fmt.Errorf("tcp6-mapped needs an IPv4 address: %q", addr)
	}
	fd, f, err := socket6()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return connect6(fd, f, ap)
}

// CorralBinary builds cmd/corral once per test process and returns its
// path; CORRAL_BINARY names a binary to use instead.
func CorralBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CORRAL_BINARY"); p != "" {
		return p
	}
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "corral-bin-")
		if built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "corral")
		out, err := exec.Command("go", "build", "-o", built.path, "github.com/corral-dev/corral/cmd/corral").CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

// Agent is a `corral agent` process started by a test.
type Agent struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error

	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every new line
}

// StartAgent runs `corral agent --config config args...` inside cgroup and
// waits until it reports ready. It is killed at cleanup if still running.
func StartAgent(t testing.TB, config, cgroup string, args ...string) *Agent {
	t.Helper()
	cmd := exec.Command(CorralBinary(t), append([]string{"agent", "--config", config}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: CgroupFD(t, cgroup)}
	return StartAgentCommand(t, cmd)
}

// StartAgentCommand runs cmd, an agent command line the caller prepared
// (under a wrapper such as setpriv, in a cgroup of its choosing), and
// follows it as StartAgent does.
func StartAgentCommand(t testing.TB, cmd *exec.Cmd) *Agent {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{cmd: cmd, done: make(chan struct{}), changed: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			a.mu.Lock()
			a.lines = append(a.lines, sc.Text())
			close(a.changed)
			a.changed = make(chan struct{})
			a.mu.Unlock()
		}
		a.err = cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() {
		select {
		case <-a.done:
		default:
			cmd.Process.Kill()
			<-a.done
		}
		if t.Failed() {
			t.Logf("agent output:\n%s", strings.Join(a.Lines(), "\n"))
		}
	})
	a.WaitLine(t, 0, func(l string) bool { return strings.Contains(l, "corral agent ready") })
	return a
}

// PID of the agent process.
func (a *Agent) PID() int { return a.cmd.Process.Pid }

// ProcessCPU is the CPU time (user and system, all threads) process pid
// has used so far, at the kernel's 10 ms accounting resolution.
func ProcessCPU(t testing.TB, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name (field 2) may hold spaces; fields count from its
	// closing parenthesis. utime and stime are fields 14 and 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		t.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * (time.Second / 100) // USER_HZ
}

// Lines returns everything the agent wrote to stderr so far.
func (a *Agent) Lines() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.lines...)
}

// Mark is the number of lines so far: pass it to WaitLine to look only at
// what comes after.
func (a *Agent) Mark() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.lines)
}

// WaitLine waits for a line at index from or later that satisfies match.
func (a *Agent) WaitLine(t testing.TB, from int, match func(string) bool) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for i := from; ; {
		a.mu.Lock()
		lines, changed := a.lines, a.changed
		a.mu.Unlock()
		for ; i < len(lines); i++ {
			if match(lines[i]) {
				return lines[i]
			}
		}
		select {
		case <-changed:
		case <-a.done:
			a.mu.Lock()
			n := len(a.lines)
			a.mu.Unlock()
			if i >= n {
				t.Fatalf("agent exited (%v) before the expected line", a.err)
			}
		case <-deadline:
			t.Fatalf("timed out waiting for an agent line")
		}
	}
}

// WaitEvent waits for an audit event (the agent must log audit lines to
// stderr, `audit_log: "-"`) at line index from or later.
func (a *Agent) WaitEvent(t testing.TB, from int, match func(intercept.Event) bool) intercept.Event {
	t.Helper()
	var ev intercept.Event
	a.WaitLine(t, from, func(l string) bool {
		if !strings.HasPrefix(l, "{") {
			return false
		}
		var e intercept.Event
		if json.Unmarshal([]byte(l), &e) != nil || e.Event == "" {
			return false
		}
		if match(e) {
			ev = e
			return true
		}
		return false
	})
	return ev
}

// Events returns every audit event logged so far.
func (a *Agent) Events() []intercept.Event {
	var out []intercept.Event
	for _, l := range a.Lines() {
		var e intercept.Event
		if strings.HasPrefix(l, "{") && json.Unmarshal([]byte(l), &e) == nil && e.Event != "" {
			out = append(out, e)
		}
	}
	return out
}

// Stop sends sig and waits for the agent to exit, returning its exit error.
func (a *Agent) Stop(t testing.TB, sig os.Signal) error {
	t.Helper()
	a.cmd.Process.Signal(sig)
	select {
	case <-a.done:
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not exit")
	}
	return a.err
}

// Hold starts a process whose main thread lives in the network namespace at
// nsPath, inside cgroup, as a pod's pause container does; it is killed at
// cleanup. corral finds namespaces through the processes in them.
func Hold(t testing.TB, cgroup, nsPath string) *os.Process {
	t.Helper()
	cmd := exec.Command("nsenter", "--net="+nsPath, "sleep", "3600")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: CgroupFD(t, cgroup)}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start a process in %s: %v", nsPath, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd.Process
}

// funcEnv, when set, makes the test binary run a registered client function
// (see RegisterFunc) instead of the tests.
const funcEnv = "CORRAL_TEST_FUNC"

var funcs = map[string]func(args []string, in *bufio.Scanner, out io.Writer) error{}

// RegisterFunc names a client function a test can run as a separate
// process with StartFunc. It reads lines from in (the test writes them) and
// writes lines to out (the test reads them). Register from an init func.
func RegisterFunc(name string, fn func(args []string, in *bufio.Scanner, out io.Writer) error) {
	funcs[name] = fn
}

func runFunc(spec string) int {
	var call struct {
		Name string
		Args []string
	}
	if err := json.Unmarshal([]byte(spec), &call); err != nil || funcs[call.Name] == nil {
		fmt.Fprintln(os.Stderr, "unknown client function", spec)
		return 2
	}
	if err := funcs[call.Name](call.Args, bufio.NewScanner(os.Stdin), os.Stdout); err != nil {
		fmt.Fprintln(os.Stdout, "error:", err)
		return 1
	}
	return 0
}

// Func is a running client function process.
type Func struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
	PID int
}

// StartFunc runs the registered function name as a process in cgroup.
func StartFunc(t testing.TB, cgroup, name string, args ...string) *Func {
	t.Helper()
	spec, _ := json.Marshal(struct {
		Name string
		Args []string
	}{name, args})
	self, _ := os.Executable()
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), funcEnv+"="+string(spec))
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: CgroupFD(t, cgroup)}
	in, _ := cmd.StdinPipe()
	outR, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	sc := bufio.NewScanner(outR)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	return &Func{cmd: cmd, in: in, out: sc, PID: cmd.Process.Pid}
}

// Close ends the function's input and waits for it to exit.
func (f *Func) Close() error {
	f.in.Close()
	return f.cmd.Wait()
}

// Send writes a line to the function.
func (f *Func) Send(t testing.TB, line string) {
	t.Helper()
	if _, err := io.WriteString(f.in, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

// Recv reads the function's next line.
func (f *Func) Recv(t testing.TB) string {
	t.Helper()
	if !f.out.Scan() {
		t.Fatalf("client function ended: %v", f.out.Err())
	}
	return f.out.Text()
}
