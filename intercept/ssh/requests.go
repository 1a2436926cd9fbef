package ssh

import (
	gossh "golang.org/x/crypto/ssh"
)

// maxQueued bounds the requests a channel, or the connection's global
// requests, may have waiting behind the one being handled, and
// maxQueuedBytes their payloads (a request's may be 256 KiB).
const (
	maxQueued      = 1024
	maxQueuedBytes = 1 << 20
)

// queued reads in as fast as x/crypto delivers it, and hands the requests
// on in order, one at a time. x/crypto stops reading the whole connection
// (every channel, keepalives, the client's hangup) while one channel's or
// the global request queue is full, and a request may wait on an approval
// for minutes: 16 more env requests, or keepalives behind a reviewed
// remote forward, froze the connection, and a client that hung up then
// was not seen to. gone is closed as soon as in is (the client closed the
// channel, or the connection ended); what was still queued is dropped,
// declined where the client waits for an answer. More than maxQueued
// waiting calls, or more than maxQueuedBytes of their payloads, overflow,
// which ends what in belongs to; keepalives and window changes that want
// no answer do not pile up.
func queued(in <-chan *gossh.Request, overflow func()) (out <-chan *gossh.Request, gone <-chan struct{}) {
	o, g := make(chan *gossh.Request), make(chan struct{})
	go func() {
		defer close(o)
		var q []*gossh.Request
		overflowed, bytes := false, 0
		for {
			var next chan *gossh.Request
			var head *gossh.Request
			if len(q) > 0 {
				next, head = o, q[0]
			}
			select {
			case r, ok := <-in:
				if !ok {
					close(g)
					for _, r := range q {
						decline(r)
					}
					return
				}
				if overflowed {
					decline(r)
					continue
				}
				if !r.WantReply && len(q) > 0 {
					// What needs no answer takes no place behind a
					// request that waits: a keepalive says nothing, and
					// a window change only the last size.
					if r.Type == "keepalive@openssh.com" {
						continue
					}
					if last := q[len(q)-1]; r.Type == "window-change" && last.Type == r.Type && !last.WantReply {
						bytes += len(r.Payload) - len(last.Payload)
						q[len(q)-1] = r
						continue
					}
				}
				q = append(q, r)
				bytes += len(r.Payload)
				if len(q) > maxQueued || bytes > maxQueuedBytes {
					overflowed = true
					overflow()
				}
			case next <- head:
				bytes -= len(head.Payload)
				q[0] = nil
				q = q[1:]
			}
		}
	}()
	return o, g
}
