package ssh

import (
	"context"
	"errors"
	"fmt"
	"strings"

	gossh "golang.org/x/crypto/ssh"

	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/intercept/ssh/shellcmd"
	"github.com/corral-dev/corral/policy"
)

// question is a shell, exec or subsystem request as the policy sees it:
// one policy input per command the request would run.
type question struct {
	text   string   // the request as recorded: the command line, "shell", "subsystem sftp"
	ops    []string // every operation of the request
	inputs []policy.SSH
	opsOf  [][]string // operations of each input
	binary bool       // a subsystem: its bytes are not a terminal
}

// parsing bounds how many commands are parsed at once.
var parsing = make(chan struct{}, 2)

// question parses a shell, exec or subsystem request. An error means it
// cannot be checked, and is refused with it.
func (s *session) question(r *gossh.Request, pty bool) (question, error) {
	switch r.Type {
	case "shell":
		return question{text: "shell", ops: []string{"shell"}, inputs: []policy.SSH{{Interactive: true, User: s.user}}, opsOf: [][]string{{"shell"}}}, nil
	case "subsystem":
		var p struct{ Name string }
		if err := gossh.Unmarshal(r.Payload, &p); err != nil || !cstring(p.Name) {
			return question{text: "subsystem"}, errors.New("malformed subsystem request")
		}
		op := "subsystem"
		if p.Name == "sftp" {
			op = "sftp"
		}
		return question{text: "subsystem " + p.Name, ops: []string{op}, binary: true,
			inputs: []policy.SSH{{Subsystem: p.Name, User: s.user}}, opsOf: [][]string{{op}}}, nil
	}
	var p struct{ Command string }
	if err := gossh.Unmarshal(r.Payload, &p); err != nil || !cstring(p.Command) {
		return question{text: "exec"}, errors.New("malformed exec request")
	}
	q := question{text: p.Command, ops: []string{"exec"}}
	// A deeply nested script costs the parser much time and stack: a
	// workload sending many at once must not take the node's memory.
	parsing <- struct{}{}
	cmds, err := shellcmd.CommandsAs(p.Command, s.t.LoginShell)
	<-parsing
	if err != nil {
		return q, fmt.Errorf("corral cannot check this command, so it is refused: %v", err)
	}
	if len(cmds) == 0 {
		return q, errors.New("the command runs nothing corral can check: refused")
	}
	for _, k := range cmds {
		ops := []string{"exec"}
		// A shell reading its input, sudo -s, source: what runs cannot be
		// seen, so it is a shell as well as an exec.
		if k.ReadsInput {
			ops = append(ops, "shell")
			if len(q.ops) == 1 {
				q.ops = append(q.ops, "shell")
			}
		}
		q.inputs = append(q.inputs, policy.SSH{Command: k.Text, Argv: k.Argv, Known: k.Known, Appends: k.Appends, Via: k.Via, Interactive: pty, User: s.user})
		q.opsOf = append(q.opsOf, ops)
	}
	return q, nil
}

// decideAll puts every command of a request to the policy and gives the
// strictest answer: the first denial, else the first review, else allow.
// A denial's reason names the command it is about.
func (s *session) decideAll(q question) policy.Decision {
	var review *policy.Decision
	var last policy.Decision
	for i := range q.inputs {
		in := q.inputs[i]
		d := s.decide(q.opsOf[i], &in)
		last = d
		switch d.Result {
		case policy.Allow:
		case policy.Review:
			if review == nil {
				d.Reason = qualify(q, in, d.Reason)
				review = &d
			}
		default:
			d.Reason = qualify(q, in, d.Reason)
			return d
		}
	}
	if review != nil {
		return *review
	}
	return last
}

// qualify names the command a decision is about when the request has
// more than one, or the command was found inside another.
func qualify(q question, in policy.SSH, reason string) string {
	if in.Command == "" || (len(q.inputs) == 1 && in.Command == q.text) {
		return reason
	}
	return fmt.Sprintf("%s (in `%s`)", reason, in.Command)
}

// decide asks the policy about one operation. Anything but a clean answer
// is a deny.
func (s *session) decide(ops []string, in *policy.SSH) policy.Decision {
	d, err := s.h.Policy.Decide(s.ctx, s.c.Input(policy.Action{Kind: policy.KindSSH, Operations: ops, SSH: in}))
	if err != nil {
		s.h.Log.Error("policy failed; request denied", "session_id", s.c.SessionID, "err", err)
		if d.Result != policy.Deny || d.Reason == "" {
			d = policy.Decision{Result: policy.Deny, Reason: "the policy could not be evaluated", Record: true, PolicyVersion: d.PolicyVersion}
		}
	}
	return d
}

// decideAndRecord decides a request that starts nothing on its own
// (env, agent forwarding, a port forward), records it, and holds it for
// approval if the policy says so; the approval is withdrawn when gone
// closes (the client closed the channel it was asked on). ops nil: not
// supported, refused.
func (s *session) decideAndRecord(ops []string, in *policy.SSH, text string, gone <-chan struct{}) policy.Decision {
	var d policy.Decision
	if ops == nil {
		d = policy.Decision{Result: policy.Deny, Reason: text + " is not supported through corral", Record: true}
		ops = []string{}
	} else {
		d = s.decide(ops, in)
	}
	_, err := s.c.Emit(intercept.Event{Event: intercept.EventStatement, Statement: &intercept.StatementInfo{
		Text: text, Operations: ops, Decision: d.Result, Reason: d.Reason, Rule: d.Rule, PolicyVersion: d.PolicyVersion,
	}})
	s.c.Metrics().Operations(d.Result, 1)
	if err != nil {
		return policy.Decision{Result: policy.Deny, Reason: err.Error()}
	}
	if d.Result == policy.Review {
		rv := s.c.Review(s.ctx, d, policy.Action{Kind: policy.KindSSH, Operations: ops, SSH: in}, text, "")
		rv.Redecide = func(context.Context) policy.Decision { return s.decide(ops, in) }
		if gone != nil {
			waited := make(chan struct{})
			defer close(waited)
			go func() {
				select {
				case <-gone:
					rv.Abandon("the client closed the channel")
				case <-waited:
				}
			}()
		}
		if reason := rv.Wait(s.ctx, nil); reason != "" {
			return policy.Decision{Result: policy.Deny, Reason: reason, Rule: d.Rule}
		}
		d.Result = policy.Allow
	}
	return d
}

// cstring reports whether s reads the same as a C string, as sshd reads
// request fields: sshd drops a NUL at the end and refuses one inside, so
// "sftp\x00" names sftp to it, and corral would decide on another name.
func cstring(s string) bool {
	return strings.IndexByte(s, 0) < 0
}
