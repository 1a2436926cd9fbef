//go:build linux

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/internal/testutil"
)

func init() { testutil.RegisterFunc("ssh-held", sshHeld) }

// sshHeld is a workload that speaks SSH itself: one channel runs cat, and
// the test's lines make it send requests on another channel or on the
// connection, check that cat still echoes, and hang up.
func sshHeld(args []string, in *bufio.Scanner, out io.Writer) error {
	c, err := gossh.Dial("tcp", args[0], &gossh.ClientConfig{
		User: "deploy", HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 15 * time.Second,
	})
	if err != nil {
		return err
	}
	defer c.Close()
	a, err := c.NewSession()
	if err != nil {
		return err
	}
	aIn, _ := a.StdinPipe()
	aOut, _ := a.StdoutPipe()
	if err := a.Start("cat"); err != nil {
		return err
	}
	echoed := bufio.NewScanner(aOut)
	fmt.Fprintln(out, "ready")
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "env": // N env requests on a second channel, no reply wanted
			b, _, err := c.OpenChannel("session", nil)
			if err != nil {
				return err
			}
			var n int
			fmt.Sscan(arg, &n)
			for range n {
				b.SendRequest("env", false, gossh.Marshal(struct{ Name, Value string }{"LANG", "C"}))
			}
			fmt.Fprintln(out, "sent")
		case "forward": // a remote forward, then N keepalives behind it
			go c.SendRequest("tcpip-forward", true, gossh.Marshal(struct {
				Addr string
				Port uint32
			}{"127.0.0.1", 0}))
			var n int
			fmt.Sscan(arg, &n)
			for range n {
				c.SendRequest("keepalive@openssh.com", false, nil)
			}
			fmt.Fprintln(out, "sent")
		case "direct": // N local forwards, each its own channel
			var n, refused int
			fmt.Sscan(arg, &n)
			for range n {
				if _, _, err := c.OpenChannel("direct-tcpip", gossh.Marshal(struct {
					Host       string
					Port       uint32
					OriginHost string
					OriginPort uint32
				}{"127.0.0.1", 9, "127.0.0.1", 1})); err != nil {
					refused++
				}
			}
			fmt.Fprintln(out, "refused", refused)
		case "echo":
			fmt.Fprintln(aIn, "ping")
			got := make(chan bool, 1)
			go func() { got <- echoed.Scan() && echoed.Text() == "ping" }()
			select {
			case ok := <-got:
				fmt.Fprintln(out, "echo", ok)
			case <-time.After(10 * time.Second):
				fmt.Fprintln(out, "echo none")
			}
		case "close":
			c.Close()
			fmt.Fprintln(out, "closed")
			return nil
		}
	}
	return nil
}

// startHeld starts the ssh-held workload in cgroup, logged in.
func (s *sshEnv) startHeld(t *testing.T, cgroup string) *testutil.Func {
	t.Helper()
	w := testutil.StartFunc(t, cgroup, "ssh-held", addr(s.host.Addr, 22))
	if got := w.Recv(t); got != "ready" {
		t.Fatalf("workload: %s", got)
	}
	return w
}

// hangUp has the ssh-held workload close its connection, waits for the
// agent to see its session end (not another's: setting up may leave one
// closing), and returns the session's id.
func (s *sshEnv) hangUp(t *testing.T, w *testutil.Func, from int) string {
	t.Helper()
	open := s.a.WaitEvent(t, from, func(e intercept.Event) bool {
		return e.Event == intercept.EventOpen && e.Workload != nil && int(e.Workload.PID) == w.PID
	})
	w.Send(t, "close")
	w.Recv(t)
	s.a.WaitEvent(t, from, func(e intercept.Event) bool {
		return e.Event == intercept.EventClose && e.SessionID == open.SessionID
	})
	return open.SessionID
}

// A request waiting for approval holds up only the requests sent after it
// where the protocol orders their answers (the same channel, or the
// connection's global requests): x/crypto stops reading the connection
// while a request queue is full, so 40 env requests behind a reviewed one
// froze every channel, and a client that hung up was not seen to, while
// each queued request became a review of its own.
func TestSSHRequestWaitingForApprovalHoldsUpNothingElse(t *testing.T) {
	s := newSSHEnv(t)
	s.rules += fmt.Sprintf(`  - name: held
    who: {cgroup: %q}
    targets: [web]
    allow: [exec, shell]
    review: {operations: [env, forward], reviewers: ["user:root"], timeout: 10m}
`, s.rel(s.otherCg))
	from := s.a.Mark()
	s.write(t, s.known)
	s.a.WaitLine(t, from, func(l string) bool { return strings.Contains(l, "configuration reloaded") })

	approvals := func(from int, step string) int {
		n := 0
		for _, l := range s.a.Lines()[from:] {
			if strings.Contains(l, `"event":"approval"`) && strings.Contains(l, `"step":"`+step+`"`) {
				n++
			}
		}
		return n
	}
	for _, c := range []string{"env 40", "forward 40"} {
		t.Run(c, func(t *testing.T) {
			from := s.a.Mark()
			w := s.startHeld(t, s.otherCg)
			w.Send(t, c)
			if got := w.Recv(t); got != "sent" {
				t.Fatalf("workload: %s", got)
			}
			s.a.WaitLine(t, from, func(l string) bool {
				return strings.Contains(l, `"event":"approval"`) && strings.Contains(l, `"step":"requested"`)
			})
			w.Send(t, "echo")
			if got := w.Recv(t); got != "echo true" {
				t.Errorf("the other channel, while a request waits for approval: %s", got)
			}
			s.hangUp(t, w, from)
			s.a.WaitLine(t, from, func(l string) bool {
				return strings.Contains(l, `"event":"approval"`) && strings.Contains(l, `"step":"cancelled"`)
			})
			if n := approvals(from, "requested"); n != 1 {
				t.Errorf("%d approval requests, want the one the client waited on", n)
			}
		})
	}
}

// Forwards the policy denies are refused, however many, and recorded up to
// 256 a connection: a client asking in a loop would fill the disk.
func TestSSHDeniedForwardsRecordedUpToABound(t *testing.T) {
	s := newSSHEnv(t)
	from := s.a.Mark()
	w := s.startHeld(t, s.workCg)
	w.Send(t, "direct 300")
	if got := w.Recv(t); got != "refused 300" {
		t.Fatalf("workload: %s", got)
	}
	first := s.hangUp(t, w, from)
	// Statements reach the audit log in order: once another session's
	// denial is there, so is every record of the first.
	w = s.startHeld(t, s.workCg)
	w.Send(t, "direct 1")
	w.Recv(t)
	second := s.hangUp(t, w, from)
	s.a.WaitEvent(t, from, func(e intercept.Event) bool {
		return e.Event == intercept.EventStatement && e.SessionID == second && e.Statement != nil && e.Statement.Text == "forward to 127.0.0.1:9"
	})
	n := 0
	for _, e := range s.a.Events() {
		if e.Event == intercept.EventStatement && e.SessionID == first && e.Statement != nil && e.Statement.Text == "forward to 127.0.0.1:9" {
			n++
		}
	}
	if n != 256 {
		t.Errorf("%d denied forwards recorded, want 256", n)
	}
}
