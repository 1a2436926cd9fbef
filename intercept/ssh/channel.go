package ssh

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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

	pty        *ptyReq
	started    bool // shell, exec or subsystem
	seq        uint64
	began      time.Time
	cast       *recorder.Cast
	interact   bool // record input too (a terminal)
	recLimit   int64
	recorded   int64 // bytes of output and input kept in the cast
	unrecorded uint64
	out, in    uint64
	castMu     sync.Mutex

	exitMu     sync.Mutex
	exitStatus *int
	exitSignal string
}

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
	limit := s.h.MaxRecordedOutput
	if limit == 0 {
		limit = DefaultMaxRecordedOutput
	}
	ch := &sessionCh{s: s, cli: cli, up: up, upRq: upReqs, recLimit: limit}
	ch.serve(reqs)
}

// serve handles the client's requests until it closes the channel; the
// target's requests (exit status, signal) go to the client as they come.
func (ch *sessionCh) serve(reqs <-chan *gossh.Request) {
	defer ch.cli.Close()
	defer ch.up.Close()
	var pumps sync.WaitGroup
	upDone := make(chan struct{})
	go func() {
		defer close(upDone)
		for r := range ch.upRq {
			ch.fromTarget(r)
		}
	}()
	for r := range reqs {
		if ch.request(r, &pumps) {
			break
		}
	}
	if !ch.started {
		return
	}
	// The client's requests after the program started (window changes,
	// signals) go on in the background until the channel ends.
	go func() {
		for r := range reqs {
			ch.later(r)
		}
		// The client closed its end: the program's output has nowhere to
		// go, and it must not run on unwatched.
		ch.up.Close()
	}()
	pumps.Wait() // the target's output, to its end
	<-upDone     // its exit status, and its close
	ch.finish()
}

// request handles one request before the program starts; it reports
// whether the program was started (or refused, which ends the channel).
func (ch *sessionCh) request(r *gossh.Request, pumps *sync.WaitGroup) bool {
	s := ch.s
	switch r.Type {
	case "pty-req":
		var p ptyReq
		if err := gossh.Unmarshal(r.Payload, &p); err != nil {
			r.Reply(false, nil)
			return false
		}
		ok, _ := ch.up.SendRequest(r.Type, true, r.Payload)
		if ok {
			ch.pty = &p
		}
		r.Reply(ok, nil)
	case "env":
		var e struct{ Name, Value string }
		if err := gossh.Unmarshal(r.Payload, &e); err != nil {
			r.Reply(false, nil)
			return false
		}
		d := s.decideAndRecord([]string{"env"}, &policy.SSH{Env: e.Name, User: s.user}, "env "+e.Name)
		if !d.Allowed() {
			r.Reply(false, nil)
			return false
		}
		ok, _ := ch.up.SendRequest(r.Type, true, r.Payload)
		r.Reply(ok, nil)
	case "auth-agent-req@openssh.com":
		d := s.decideAndRecord([]string{"agent-forward"}, &policy.SSH{User: s.user}, "agent forwarding")
		if !d.Allowed() {
			r.Reply(false, nil)
			return false
		}
		s.mu.Lock()
		s.agentAllowed = true
		s.mu.Unlock()
		ok, _ := ch.up.SendRequest(r.Type, true, r.Payload)
		r.Reply(ok, nil)
	case "x11-req":
		s.decideAndRecord(nil, nil, "X11 forwarding")
		r.Reply(false, nil)
	case "shell", "exec", "subsystem":
		return ch.start(r, pumps)
	case "window-change", "signal", "break", "xon-xoff":
		ok, _ := ch.up.SendRequest(r.Type, r.WantReply, r.Payload)
		if r.WantReply {
			r.Reply(ok, nil)
		}
	default:
		if r.WantReply {
			r.Reply(false, nil)
		}
	}
	return false
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
		ok, _ := ch.up.SendRequest(r.Type, r.WantReply, r.Payload)
		if r.WantReply {
			r.Reply(ok, nil)
		}
	default:
		if r.WantReply {
			r.Reply(false, nil)
		}
	}
}

// fromTarget passes a request of the target's to the client, noting how
// the program ended.
func (ch *sessionCh) fromTarget(r *gossh.Request) {
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

// start decides a shell, exec or subsystem request and, allowed, starts
// it on the target. The client is answered first in every case but a
// plain allow: a refusal is written to its stderr with an exit status,
// which every client shows, where a failed request would only say
// "exec request failed".
func (ch *sessionCh) start(r *gossh.Request, pumps *sync.WaitGroup) bool {
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
	switch d.Result {
	case policy.Allow:
	case policy.Review:
		r.Reply(true, nil)
		if reason := ch.review(d, q); reason != "" {
			ch.refuse(reason)
			return true
		}
		ok, err := ch.up.SendRequest(r.Type, true, r.Payload)
		if err != nil || !ok {
			ch.refuse("the target refused to start it")
			return true
		}
		return ch.run(q, pumps)
	default:
		r.Reply(true, nil)
		ch.refuse(d.Reason)
		return true
	}
	if err := ch.record(q); err != nil {
		r.Reply(true, nil)
		ch.refuse(err.Error())
		return true
	}
	ok, err := ch.up.SendRequest(r.Type, true, r.Payload)
	r.Reply(ok && err == nil, nil)
	if !ok || err != nil {
		return false
	}
	ch.pump(pumps)
	return true
}

// run starts the pumps of a program approved after review.
func (ch *sessionCh) run(q question, pumps *sync.WaitGroup) bool {
	if err := ch.record(q); err != nil {
		ch.refuse(err.Error())
		return true
	}
	ch.pump(pumps)
	return true
}

// review holds a request until a person decides; "" means it may run.
func (ch *sessionCh) review(d policy.Decision, q question) string {
	s := ch.s
	rv := s.c.Review(s.ctx, d, policy.Action{Kind: policy.KindSSH, Operations: q.ops}, q.text)
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
}

// record starts the channel's terminal recording.
func (ch *sessionCh) record(q question) error {
	ch.started = true
	ch.began = time.Now()
	if q.binary {
		return nil // sftp and other subsystems: counted, not cast
	}
	w, hgt := 80, 24
	title := q.text
	if ch.pty != nil {
		w, hgt = int(ch.pty.Columns), int(ch.pty.Rows)
		ch.interact = true
	}
	env := map[string]string{"SHELL": "/bin/sh"}
	if ch.pty != nil && ch.pty.Term != "" {
		env["TERM"] = ch.pty.Term
	}
	cast, err := ch.s.c.Terminal(recorder.CastHeader{Version: 2, Width: w, Height: hgt, Timestamp: ch.began.Unix(), Title: title, Env: env})
	if err != nil {
		return err
	}
	ch.cast = cast
	return nil
}

// pump copies the program's output to the client and the client's input
// to the program.
func (ch *sessionCh) pump(pumps *sync.WaitGroup) {
	pumps.Add(2)
	go func() {
		defer pumps.Done()
		io.Copy(&teeWriter{w: ch.cli, ch: ch}, ch.up)
	}()
	go func() {
		defer pumps.Done()
		io.Copy(&teeWriter{w: ch.cli.Stderr(), ch: ch}, ch.up.Stderr())
	}()
	go func() {
		io.Copy(&teeWriter{w: ch.up, ch: ch, input: true}, ch.cli)
		ch.up.CloseWrite()
	}()
}

// teeWriter writes to w and to the channel's terminal recording.
type teeWriter struct {
	w     io.Writer
	ch    *sessionCh
	input bool
}

func (t *teeWriter) Write(b []byte) (int, error) {
	n, err := t.w.Write(b)
	t.ch.tee(b[:n], t.input)
	return n, err
}

func (ch *sessionCh) tee(b []byte, input bool) {
	ch.castMu.Lock()
	defer ch.castMu.Unlock()
	if input {
		ch.in += uint64(len(b))
	} else {
		ch.out += uint64(len(b))
	}
	if ch.cast == nil || (input && !ch.interact) {
		return
	}
	if ch.recLimit >= 0 && ch.recorded+int64(len(b)) > ch.recLimit {
		ch.unrecorded += uint64(len(b))
		return
	}
	ch.recorded += int64(len(b))
	now := time.Now()
	var err error
	if input {
		err = ch.cast.Input(now, b)
	} else {
		err = ch.cast.Output(now, b)
	}
	if err != nil && ch.s.c.RecordingStrict() {
		ch.s.h.Log.Error("terminal recording failed; session cut", "session_id", ch.s.c.SessionID, "err", err)
		ch.s.client.Close()
	}
}

// finish records how the program ended and closes the client's end.
func (ch *sessionCh) finish() {
	ch.cli.CloseWrite()
	ch.exitMu.Lock()
	res := recorder.Result{Of: ch.seq, ExitStatus: ch.exitStatus, Signal: ch.exitSignal}
	ch.exitMu.Unlock()
	ch.castMu.Lock()
	res.Bytes, res.BytesIn, res.Unrecorded = ch.out, ch.in, ch.unrecorded
	ch.castMu.Unlock()
	res.DurationMS = float64(time.Since(ch.began).Microseconds()) / 1000
	if ch.seq != 0 || ch.s.c.Recording() {
		if err := ch.s.c.Result(res); err != nil {
			ch.s.h.Log.Warn("cannot record a command's end", "session_id", ch.s.c.SessionID, "err", err)
		}
	}
}
