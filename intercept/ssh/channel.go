package ssh

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/policy"
	"github.com/corral-dev/corral/recorder"
)

// deniedStatus is the exit status of a command corral refused: the
// client's ssh exits with it, so scripts see the failure.
const deniedStatus = 1

// channel serves one channel the client opened.
func (s *session) channel(nch gossh.NewChannel) {
	switch nch.ChannelType() {
	case "session":
		s.sessionChannel(nch)
	case "direct-tcpip":
		s.directTCPIP(nch)
	default:
		nch.Reject(gossh.UnknownChannelType, "corral: channel type "+nch.ChannelType()+" is not supported")
	}
}

// sessionCh is a session channel: the client's end, the target's, and
// what was asked on it.
type sessionCh struct {
	s    *session
	cli  gossh.Channel
	up   gossh.Channel
	upRq <-chan *gossh.Request

	pty    *ptyReq
	gone   <-chan struct{} // closed when the client closes the channel
	asked  int             // requests decided and recorded that start nothing (env, ...)
	seq    uint64
	began  time.Time
	review *intercept.Review // the request a reviewed start waits for

	castMu     sync.Mutex
	cast       *recorder.Cast
	recLimit   int64 // bound of the output kept in the cast
	inLimit    int64 // bound of the input kept in the cast
	shellInput bool  // the input is a shell's: its commands
	outKept    int64 // output kept in the cast
	inKept     int64 // input kept in the cast
	// outPast, inPast: a chunk went past its bound, and no later one is
	// kept either: the recording holds a beginning, not pieces picked by
	// their sizes (a small chunk after a dropped large one).
	outPast, inPast bool
	unrecorded      uint64
	out, in         uint64

	exitMu     sync.Mutex
	exitStatus *int
	exitSignal string

	// replied is closed once the client's start request (shell, exec,
	// subsystem) has its answer: the program's end is not passed on
	// before it. A quick program ends at the target while corral is still
	// answering, and a client told of the end of what it was not yet told
	// started (OpenSSH's multiplexing master) loses its exit status.
	replied     chan struct{}
	repliedOnce sync.Once
}

func (ch *sessionCh) markReplied() { ch.repliedOnce.Do(func() { close(ch.replied) }) }

type ptyReq struct {
	Term          string
	Columns, Rows uint32
	Width, Height uint32
	Modes         string
}

func (s *session) sessionChannel(nch gossh.NewChannel) {
	up, upReqs, err := s.upstream.OpenChannel("session", nch.ExtraData())
	if err != nil {
		var oe *gossh.OpenChannelError
		if errors.As(err, &oe) {
			nch.Reject(oe.Reason, "target: "+oe.Message)
		} else {
			nch.Reject(gossh.ConnectionFailed, "corral: the target did not open the channel")
		}
		return
	}
	cli, reqs, err := nch.Accept()
	if err != nil {
		up.Close()
		return
	}
	ch := &sessionCh{s: s, cli: cli, up: up, upRq: upReqs, replied: make(chan struct{})}
	ch.serve(reqs)
}

// phases of a session channel.
type phase int

const (
	setup     phase = iota // before shell, exec or subsystem
	reviewing              // a start waits for approval
	running                // the program runs on the target
	ended                  // refused, or over
)

// serve reads the client's requests for the channel's whole life: x/crypto
// stops reading the connection (every channel, keepalives, the hangup of
// the client) while a channel's request queue is full, so they are queued
// here (queued), and a start that waits for approval or a running program
// holds up no request: only a setting waiting for approval holds up those
// sent after it on the channel.
func (ch *sessionCh) serve(reqs <-chan *gossh.Request) {
	defer ch.cli.Close()
	defer ch.up.Close()
	defer ch.markReplied()
	reqs, ch.gone = queued(reqs, func() {
		ch.s.h.Log.Warn("a channel queued too many requests; it is closed", "session_id", ch.s.c.SessionID, "limit", maxQueued)
		ch.cli.Close()
	})
	upDone := make(chan struct{})
	go func() {
		defer close(upDone)
		for r := range ch.upRq {
			ch.fromTarget(r)
		}
	}()
	var (
		ph       = setup
		started  *gossh.Request // the approved request, to send on
		q        question
		reviewed = make(chan string, 1)
		finished = make(chan struct{})
	)
	// run starts an allowed program: recorded first, then sent on. The
	// caller answers the client's request before it pumps the program's
	// streams: a program that ends at once must not close the channel
	// before the client has its answer.
	run := func(r *gossh.Request, q question) (string, bool) {
		if err := ch.record(q); err != nil {
			return err.Error(), false
		}
		ok, err := ch.up.SendRequest(r.Type, true, r.Payload)
		if err != nil || !ok {
			// Its result seals the terminal recording begun for it.
			ch.end(recorder.Result{Of: ch.seq, Message: "the target refused to start it"})
			return "", false
		}
		return "", true
	}
	for {
		select {
		case r, ok := <-reqs:
			if !ok {
				// The client closed the channel: a pending request is
				// withdrawn, and nothing runs on unwatched.
				if ch.review != nil && ph == reviewing {
					ch.review.Abandon("the client closed the channel")
				}
				ch.up.Close()
				if ph == running {
					<-finished
				}
				return
			}
			switch ph {
			case setup:
				if r.Type != "shell" && r.Type != "exec" && r.Type != "subsystem" {
					ch.request(r)
					continue
				}
				var d policy.Decision
				q, d = ch.decideStart(r)
				switch d.Result {
				case policy.Allow:
					refusal, ok := run(r, q)
					switch {
					case ok:
						r.Reply(true, nil)
						ch.pump(upDone, finished)
						ph = running
					case refusal != "":
						r.Reply(true, nil)
						ch.refuse(refusal)
						ph = ended
					default:
						r.Reply(false, nil) // the target refused; the client says so
					}
				case policy.Review:
					r.Reply(true, nil)
					ph, started = reviewing, r
					ch.review = ch.s.c.Review(ch.s.ctx, d, policy.Action{Kind: policy.KindSSH, Operations: q.ops}, q.text, "")
					ch.review.Redecide = func(context.Context) policy.Decision { return ch.s.decideAll(q) }
					go func() { reviewed <- ch.wait(ch.review, d) }()
				default:
					r.Reply(true, nil)
					ch.refuse(d.Reason)
					ph = ended
				}
				ch.markReplied()
			case reviewing:
				if r.Type == "window-change" {
					ch.up.SendRequest(r.Type, false, r.Payload)
				}
				decline(r)
			case running:
				ch.later(r)
			default:
				decline(r)
			}
		case reason := <-reviewed:
			if ph != reviewing {
				continue
			}
			if reason != "" {
				ch.refuse(reason)
				ph = ended
				continue
			}
			if refusal, ok := run(started, q); !ok {
				if refusal == "" {
					refusal = "the target refused to start it"
				}
				ch.refuse(refusal)
				ph = ended
				continue
			}
			ch.pump(upDone, finished) // the request was answered when it was held
			ph = running
		}
	}
}

// decideStart decides a shell, exec or subsystem request and records it.
func (ch *sessionCh) decideStart(r *gossh.Request) (question, policy.Decision) {
	s := ch.s
	q, err := s.question(r, ch.pty != nil)
	var d policy.Decision
	if err != nil {
		d = policy.Decision{Result: policy.Deny, Reason: err.Error(), Record: true}
	} else {
		d = s.decideAll(q)
	}
	seq, emitErr := s.c.Emit(intercept.Event{Event: intercept.EventStatement, Statement: &intercept.StatementInfo{
		Text: q.text, Operations: q.ops, Decision: d.Result, Reason: d.Reason, Rule: d.Rule, PolicyVersion: d.PolicyVersion,
	}})
	s.c.Metrics().Operations(d.Result, 1)
	if emitErr != nil {
		d = policy.Decision{Result: policy.Deny, Reason: emitErr.Error()}
	}
	ch.seq = seq
	return q, d
}

// maxAsked bounds the requests a channel may have decided and recorded
// that start nothing: each writes an audit record, and a client sending
// env requests in a loop would fill the disk.
const maxAsked = 256

// request handles a request that starts nothing.
func (ch *sessionCh) request(r *gossh.Request) {
	s := ch.s
	switch r.Type {
	case "env", "auth-agent-req@openssh.com", "x11-req":
		if ch.asked++; ch.asked > maxAsked {
			if ch.asked == maxAsked+1 {
				s.h.Log.Warn("a channel asked for too many settings; the rest are refused unrecorded", "session_id", s.c.SessionID, "limit", maxAsked)
			}
			r.Reply(false, nil)
			return
		}
	}
	switch r.Type {
	case "pty-req":
		var p ptyReq
		// TERM reaches the login shell's environment like an env
		// request's value, and is held to the same characters.
		if err := gossh.Unmarshal(r.Payload, &p); err != nil || !plainEnvValue(p.Term) {
			r.Reply(false, nil)
			return
		}
		ok, _ := ch.up.SendRequest(r.Type, true, r.Payload)
		if ok {
			ch.pty = &p
		}
		r.Reply(ok, nil)
	case "env":
		var e struct{ Name, Value string }
		if err := gossh.Unmarshal(r.Payload, &e); err != nil || !forwardableEnv(e.Name) || !plainEnvValue(e.Value) {
			r.Reply(false, nil)
			return
		}
		d := s.decideAndRecord([]string{"env"}, &policy.SSH{Env: e.Name, User: s.user}, "env "+e.Name, ch.gone)
		if !d.Allowed() {
			r.Reply(false, nil)
			return
		}
		ok, _ := ch.up.SendRequest(r.Type, true, r.Payload)
		r.Reply(ok, nil)
	case "auth-agent-req@openssh.com":
		d := s.decideAndRecord([]string{"agent-forward"}, &policy.SSH{User: s.user}, "agent forwarding", ch.gone)
		if !d.Allowed() {
			r.Reply(false, nil)
			return
		}
		s.mu.Lock()
		s.agentAllowed = true
		s.mu.Unlock()
		ok, _ := ch.up.SendRequest(r.Type, true, r.Payload)
		r.Reply(ok, nil)
	case "x11-req":
		s.decideAndRecord(nil, nil, "X11 forwarding", ch.gone)
		r.Reply(false, nil)
	case "window-change", "signal", "break", "xon-xoff":
		ch.pass(r)
	default:
		decline(r)
	}
}

// pass sends a request on to the target, and its answer back.
func (ch *sessionCh) pass(r *gossh.Request) {
	ok, _ := ch.up.SendRequest(r.Type, r.WantReply, r.Payload)
	if r.WantReply {
		r.Reply(ok, nil)
	}
}

// decline refuses a request that wants an answer.
func decline(r *gossh.Request) {
	if r.WantReply {
		r.Reply(false, nil)
	}
}

// forwardableEnv lists the variables a client may ask to set: locale and
// terminal. Others (BASH_ENV, LD_PRELOAD, BASH_FUNC_*, PATH) change what
// the target runs for a command corral decided, so they never reach it.
func forwardableEnv(name string) bool {
	switch name {
	case "LANG", "LANGUAGE", "TERM", "TZ", "COLORTERM", "NO_COLOR":
		return true
	}
	return strings.HasPrefix(name, "LC_") && len(name) > 3 && strings.Trim(name[3:], "ABCDEFGHIJKLMNOPQRSTUVWXYZ_") == ""
}

// plainEnvValue reports whether an environment value is what locales,
// terminals and time zones are named with. The shell may read any
// variable as arithmetic, which runs the command substitution of a
// subscript in its value (LC_X='a[$(cmd)]'; echo $((LC_X))): a value the
// command line cannot be checked against must hold nothing of the kind.
func plainEnvValue(v string) bool {
	if len(v) > 256 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._@:+/,=-", c) >= 0) {
			return false
		}
	}
	return true
}

// later handles the client's requests once the program runs.
func (ch *sessionCh) later(r *gossh.Request) {
	switch r.Type {
	case "window-change":
		var w struct{ Columns, Rows, Width, Height uint32 }
		if gossh.Unmarshal(r.Payload, &w) == nil {
			ch.castMu.Lock()
			if ch.cast != nil {
				ch.cast.Resize(time.Now(), int(w.Columns), int(w.Rows))
			}
			ch.castMu.Unlock()
		}
		fallthrough
	case "signal", "break", "xon-xoff":
		ch.pass(r)
	default:
		decline(r)
	}
}

// fromTarget passes a request of the target's to the client, noting how
// the program ended.
func (ch *sessionCh) fromTarget(r *gossh.Request) {
	if r.Type == "exit-status" || r.Type == "exit-signal" {
		<-ch.replied
	}
	switch r.Type {
	case "exit-status":
		if len(r.Payload) >= 4 {
			v := int(binary.BigEndian.Uint32(r.Payload))
			ch.exitMu.Lock()
			ch.exitStatus = &v
			ch.exitMu.Unlock()
		}
	case "exit-signal":
		var sig struct {
			Signal     string
			CoreDumped bool
			Message    string
			Lang       string
		}
		if gossh.Unmarshal(r.Payload, &sig) == nil {
			ch.exitMu.Lock()
			ch.exitSignal = sig.Signal
			ch.exitMu.Unlock()
		}
	}
	ok, _ := ch.cli.SendRequest(r.Type, r.WantReply, r.Payload)
	if r.WantReply {
		r.Reply(ok, nil)
	}
}

// wait holds a reviewed start until a person decides; "" means it may
// run.
func (ch *sessionCh) wait(rv *intercept.Review, d policy.Decision) string {
	s := ch.s
	if err := rv.Err(); err != nil {
		s.h.Log.Error("approval request failed; request denied", "session_id", s.c.SessionID, "err", err)
	}
	reason := rv.Wait(s.ctx, func() error {
		_, err := fmt.Fprintf(ch.cli.Stderr(), "corral: %s: waiting for approval %s (reviewers: %s)\r\ncorral: a reviewer decides with: corral approve %s, or corral deny %s --reason REASON\r\n",
			d.Reason, rv.ID(), strings.Join(rv.Reviewers(), ", "), rv.ID(), rv.ID())
		return err
	})
	if err := rv.Err(); err != nil {
		s.h.Log.Warn("approval wait failed; request not run", "session_id", s.c.SessionID, "request", rv.ID(), "err", err)
	}
	return reason
}

// refuse tells the client why its request will not run and ends the
// channel with a failing exit status.
func (ch *sessionCh) refuse(reason string) {
	fmt.Fprintf(ch.cli.Stderr(), "corral: %s\r\n", reason)
	ch.cli.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, deniedStatus))
	ch.cli.CloseWrite()
	ch.cli.Close()
}

// record starts the channel's terminal recording, before the program
// starts: what cannot be recorded in strict mode does not run.
func (ch *sessionCh) record(q question) error {
	ch.began = time.Now()
	if q.binary {
		return nil // sftp and other subsystems: counted, not cast
	}
	w, hgt := 80, 24
	title := q.text
	ch.recLimit = bound(ch.s.h.MaxRecordedOutput, DefaultMaxRecordedOutput)
	if ch.pty != nil {
		w, hgt = int(ch.pty.Columns), int(ch.pty.Rows)
		ch.recLimit = bound(ch.s.h.MaxRecordedTerminal, DefaultMaxRecordedTerminal)
	}
	ch.inLimit = ch.recLimit
	if slices.Contains(q.ops, "shell") {
		// A shell without a terminal (ssh -T, sh -s, bash < script)
		// reads its commands from its input: not data to bound like a
		// file's, but what the session ran.
		ch.inLimit = bound(ch.s.h.MaxRecordedTerminal, DefaultMaxRecordedTerminal)
		ch.shellInput = true
	}
	env := map[string]string{"SHELL": "/bin/sh"}
	if ch.pty != nil && ch.pty.Term != "" {
		env["TERM"] = ch.pty.Term
	}
	cast, err := ch.s.c.Terminal(recorder.CastHeader{Version: 2, Width: w, Height: hgt, Timestamp: ch.began.Unix(), Title: title, Env: env}, ch.began)
	if err != nil {
		return err
	}
	ch.castMu.Lock()
	ch.cast = cast
	ch.castMu.Unlock()
	return nil
}

func bound(configured, def int64) int64 {
	if configured == 0 {
		return def
	}
	return configured
}

// pump copies the program's output to the client and the client's input
// to the program; when the output has ended and the target closed the
// channel, the end is recorded and finished closed.
func (ch *sessionCh) pump(upDone <-chan struct{}, finished chan<- struct{}) {
	var out sync.WaitGroup
	out.Add(2)
	go func() {
		defer out.Done()
		copyChannel(&teeWriter{w: ch.cli, ch: ch}, ch.up)
	}()
	go func() {
		defer out.Done()
		copyChannel(&teeWriter{w: ch.cli.Stderr(), ch: ch}, ch.up.Stderr())
	}()
	go func() {
		copyChannel(&teeWriter{w: ch.up, ch: ch, input: true}, ch.cli)
		ch.up.CloseWrite()
	}()
	go func() {
		out.Wait()
		// The end of the output goes to the client after the target's
		// requests (exit-status): a client that has sent its own EOF may
		// close the channel as soon as it sees ours, and an exit status
		// sent after that is lost (OpenSSH's multiplexing master then
		// exits 255).
		<-upDone
		ch.cli.CloseWrite()
		ch.finish()
		ch.cli.Close()
		close(finished)
	}()
}

// teeWriter writes to w and to the channel's terminal recording.
type teeWriter struct {
	w     io.Writer
	ch    *sessionCh
	input bool
}

// Write records before it forwards: in strict mode, what could not be
// recorded never reaches the other side.
func (t *teeWriter) Write(b []byte) (int, error) {
	if !t.ch.tee(b, t.input) {
		return 0, errors.New("the session could not be recorded")
	}
	return t.w.Write(b)
}

// tee records b in the terminal recording, within the channel's bounds
// (one for output, one for input); false means it could not be recorded
// and the session was cut.
func (ch *sessionCh) tee(b []byte, input bool) bool {
	ch.castMu.Lock()
	defer ch.castMu.Unlock()
	kept, limit, past := &ch.outKept, ch.recLimit, &ch.outPast
	if input {
		ch.in += uint64(len(b))
		kept, limit, past = &ch.inKept, ch.inLimit, &ch.inPast
	} else {
		ch.out += uint64(len(b))
	}
	if ch.cast == nil {
		return true
	}
	// Bounds are of what the recording holds: escaped as JSON, a byte a
	// packet may take 24 bytes on disk. One connection's terminals share
	// a bound on what they show too, however many channels it opens;
	// what is typed into one counts against its own bound alone, so that
	// no output elsewhere leaves a shell's commands unrecorded.
	total, shared := bound(ch.s.h.MaxRecordedTerminal, DefaultMaxRecordedTerminal)*4, ch.pty != nil && !input
	if *past || limit >= 0 && *kept+int64(len(b)) > limit || shared && total >= 0 && ch.s.castBytes.Load()+int64(len(b)) > total {
		*past = true
		if input && ch.shellInput && ch.s.c.RecordingStrict() {
			// Past the bound a shell's commands would run unrecorded.
			ch.s.h.Log.Error("a shell's input passed the terminal recording's bound; session cut", "session_id", ch.s.c.SessionID, "bound", limit)
			ch.s.client.Close()
			return false
		}
		ch.unrecorded += uint64(len(b))
		return true
	}
	now := time.Now()
	was := ch.cast.Size()
	var err error
	if input {
		err = ch.cast.Input(now, b)
	} else {
		err = ch.cast.Output(now, b)
	}
	grown := ch.cast.Size() - was
	*kept += grown
	if shared {
		ch.s.castBytes.Add(grown)
	}
	if errors.Is(err, recorder.ErrSealed) {
		return true // the session's end sealed it: nothing more is shown
	}
	if err != nil && ch.s.c.RecordingStrict() {
		ch.s.h.Log.Error("terminal recording failed; session cut", "session_id", ch.s.c.SessionID, "err", err)
		ch.s.client.Close()
		return false
	}
	return true
}

// finish records how the program ended.
func (ch *sessionCh) finish() {
	ch.exitMu.Lock()
	res := recorder.Result{Of: ch.seq, ExitStatus: ch.exitStatus, Signal: ch.exitSignal}
	ch.exitMu.Unlock()
	ch.end(res)
}

// end records the result of the channel's program and seals its terminal
// recording in it. What the client still sends after this is counted, not
// recorded: the program has ended.
func (ch *sessionCh) end(res recorder.Result) {
	ch.castMu.Lock()
	res.Bytes, res.BytesIn, res.Unrecorded = ch.out, ch.in, ch.unrecorded
	cast := ch.cast
	ch.cast = nil
	ch.castMu.Unlock()
	res.DurationMS = float64(time.Since(ch.began).Microseconds()) / 1000
	if err := ch.s.c.EndTerminal(cast, res); err != nil {
		ch.s.h.Log.Warn("cannot record a command's end", "session_id", ch.s.c.SessionID, "err", err)
	}
}
