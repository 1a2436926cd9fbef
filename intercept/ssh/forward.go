package ssh

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"

	gossh "golang.org/x/crypto/ssh"

	"github.com/corral-dev/corral/policy"
)

// directTCPIP decides a local port forward (ssh -L, ssh -W): the client
// asks the target to connect somewhere on its behalf.
func (s *session) directTCPIP(nch gossh.NewChannel) {
	var p struct {
		Host       string
		Port       uint32
		OriginHost string
		OriginPort uint32
	}
	if err := gossh.Unmarshal(nch.ExtraData(), &p); err != nil || !cstring(p.Host) || !cstring(p.OriginHost) {
		nch.Reject(gossh.ConnectionFailed, "corral: malformed forwarding request")
		return
	}
	to := net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port)))
	d := s.decideForward(&policy.SSH{Forward: to, User: s.user}, "forward to "+to, nil)
	if !d.Allowed() {
		nch.Reject(gossh.Prohibited, "corral: "+d.Reason)
		return
	}
	up, upReqs, err := s.upstream.OpenChannel(nch.ChannelType(), nch.ExtraData())
	if err != nil {
		rejectLike(nch, err)
		return
	}
	s.bridge(nch, up, upReqs)
}

// decideForward decides a port forward as decideAndRecord does, but for
// the connection's denials past maxAsked, which are refused unrecorded: a
// client asking in a loop would fill the disk with audit records. (Allowed
// forwards are recorded however many: a SOCKS proxy opens one for every
// connection it carries.)
func (s *session) decideForward(in *policy.SSH, text string, gone <-chan struct{}) policy.Decision {
	ops := []string{"forward"}
	s.mu.Lock()
	quiet := s.deniedForwards >= maxAsked
	s.mu.Unlock()
	if quiet {
		if d := s.decide(ops, in); d.Result == policy.Deny {
			s.c.Metrics().Operations(d.Result, 1)
			return d
		}
	}
	d := s.decideAndRecord(ops, in, text, gone)
	if d.Result == policy.Deny {
		s.mu.Lock()
		if s.deniedForwards++; s.deniedForwards == maxAsked {
			s.h.Log.Warn("a client asked for too many forwards the policy denies; the rest are refused unrecorded", "session_id", s.c.SessionID, "limit", maxAsked)
		}
		s.mu.Unlock()
	}
	return d
}

// clientGlobal handles the client's global requests: remote port
// forwards are decided; the rest (keepalives) are answered here.
func (s *session) clientGlobal(reqs <-chan *gossh.Request) {
	reqs, gone := queued(reqs, func() {
		s.h.Log.Warn("a client queued too many global requests; the connection is closed", "session_id", s.c.SessionID, "limit", maxQueued)
		s.client.Close()
	})
	for r := range reqs {
		switch r.Type {
		case "tcpip-forward", "cancel-tcpip-forward":
			<-s.ready
			if s.upstream == nil {
				r.Reply(false, nil)
				continue
			}
		}
		switch r.Type {
		case "tcpip-forward":
			var p struct {
				Addr string
				Port uint32
			}
			if err := gossh.Unmarshal(r.Payload, &p); err != nil || !cstring(p.Addr) {
				r.Reply(false, nil)
				continue
			}
			from := net.JoinHostPort(p.Addr, strconv.Itoa(int(p.Port)))
			d := s.decideForward(&policy.SSH{Forward: from, User: s.user}, "remote forward from "+from, gone)
			if !d.Allowed() {
				r.Reply(false, nil)
				continue
			}
			ok, payload, err := s.upstream.SendRequest(r.Type, true, r.Payload)
			if ok && err == nil {
				bound := p.Port
				if p.Port == 0 && len(payload) >= 4 {
					bound = binary.BigEndian.Uint32(payload) // the port the target chose
				}
				s.mu.Lock()
				if s.forwards == nil {
					s.forwards = map[string]int{}
				}
				s.forwards[net.JoinHostPort(p.Addr, strconv.Itoa(int(bound)))]++
				s.mu.Unlock()
			}
			r.Reply(ok && err == nil, payload)
		case "cancel-tcpip-forward":
			var p struct {
				Addr string
				Port uint32
			}
			if err := gossh.Unmarshal(r.Payload, &p); err != nil || !cstring(p.Addr) {
				r.Reply(false, nil)
				continue
			}
			ok, payload, _ := s.upstream.SendRequest(r.Type, true, r.Payload)
			if ok {
				k := net.JoinHostPort(p.Addr, strconv.Itoa(int(p.Port)))
				s.mu.Lock()
				if s.forwards[k] > 0 {
					s.forwards[k]--
				}
				s.mu.Unlock()
			}
			r.Reply(ok, payload)
		default:
			if r.WantReply {
				r.Reply(false, nil)
			}
		}
	}
}

// upstreamGlobal answers the target's global requests (keepalives, host
// key announcements): nothing of the target's reaches the client
// unasked.
func (s *session) upstreamGlobal() {
	for r := range s.upstreamReqs {
		if r.WantReply {
			r.Reply(false, nil)
		}
	}
}

// upstreamChannels takes the channels the target opens: connections to a
// remote forward the policy allowed, and the agent channel where agent
// forwarding was allowed. Anything else is refused.
func (s *session) upstreamChannels() {
	for nch := range s.upstreamChans {
		s.mu.Lock()
		ok := (nch.ChannelType() == "forwarded-tcpip" && s.forwards[forwardedTo(nch.ExtraData())] > 0) ||
			(nch.ChannelType() == "auth-agent@openssh.com" && s.agentAllowed)
		s.mu.Unlock()
		if !ok {
			nch.Reject(gossh.Prohibited, "corral: not allowed")
			continue
		}
		cli, cliReqs, err := s.client.OpenChannel(nch.ChannelType(), nch.ExtraData())
		if err != nil {
			rejectLike(nch, err)
			continue
		}
		s.bridges.Add(1)
		go func() {
			defer s.bridges.Done()
			s.bridge(nch, cli, cliReqs)
		}()
	}
}

// bridge accepts nch and copies both ways between it and other, which is
// already open, until both directions end.
func (s *session) bridge(nch gossh.NewChannel, other gossh.Channel, otherReqs <-chan *gossh.Request) {
	ch, reqs, err := nch.Accept()
	if err != nil {
		other.Close()
		return
	}
	go gossh.DiscardRequests(reqs)
	go gossh.DiscardRequests(otherReqs)
	done := make(chan struct{}, 2)
	cp := func(dst, src gossh.Channel) {
		io.Copy(dst, src)
		dst.CloseWrite()
		done <- struct{}{}
	}
	go cp(ch, other)
	go cp(other, ch)
	<-done
	<-done
	ch.Close()
	other.Close()
}

// forwardedTo is the bound address a forwarded-tcpip channel says it
// arrived on; only an address a remote forward the policy allowed is
// bound to is let through.
func forwardedTo(extra []byte) string {
	var p struct {
		Addr       string
		Port       uint32
		OriginAddr string
		OriginPort uint32
	}
	if gossh.Unmarshal(extra, &p) != nil {
		return ""
	}
	return net.JoinHostPort(p.Addr, strconv.Itoa(int(p.Port)))
}

// rejectLike passes the target's refusal of a channel on to the client.
func rejectLike(nch gossh.NewChannel, err error) {
	var oe *gossh.OpenChannelError
	if errors.As(err, &oe) {
		nch.Reject(oe.Reason, oe.Message)
		return
	}
	nch.Reject(gossh.ConnectionFailed, "corral: the channel could not be opened")
}
