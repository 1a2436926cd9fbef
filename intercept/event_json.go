package intercept

import "github.com/corral-dev/corral/internal/jsonenc"

// AppendJSON appends e as json.Marshal writes it, for the statement events
// written on the data path. ok is false for an event that carries a
// workload identity or an approval (session and review events, which are
// rare): those are left to json.Marshal.
func (e *Event) AppendJSON(b []byte) (_ []byte, ok bool) {
	if e.Workload != nil || e.Approval != nil {
		return b, false
	}
	start := len(b)
	b = append(b, '{')
	b = jsonenc.Key(b, "time")
	if b, ok = jsonenc.Time(b, e.Time); !ok {
		return b[:start], false
	}
	b = jsonenc.Key(b, "event")
	b = jsonenc.String(b, e.Event)
	b = jsonenc.Key(b, "session_id")
	b = jsonenc.String(b, e.SessionID)
	b = jsonenc.Key(b, "target")
	b = jsonenc.String(b, e.Target)
	b = jsonenc.Key(b, "protocol")
	b = jsonenc.String(b, e.Protocol)
	b = jsonenc.Key(b, "orig_dst")
	b = jsonenc.String(b, e.OrigDst)
	b = jsonenc.Key(b, "client")
	b = jsonenc.String(b, e.Client)
	if e.Database != "" {
		b = jsonenc.Key(b, "database")
		b = jsonenc.String(b, e.Database)
	}
	b = jsonenc.Key(b, "bytes_up")
	b = jsonenc.Uint(b, e.BytesUp)
	b = jsonenc.Key(b, "bytes_down")
	b = jsonenc.Uint(b, e.BytesDown)
	if e.DurationMS != nil {
		b = jsonenc.Key(b, "duration_ms")
		if b, ok = jsonenc.Float(b, *e.DurationMS); !ok {
			return b[:start], false
		}
	}
	b = jsonenc.OptString(b, "error", e.Error)
	b = jsonenc.OptString(b, "decision", e.Decision)
	b = jsonenc.OptString(b, "reason", e.Reason)
	b = jsonenc.OptString(b, "rule", e.Rule)
	b = jsonenc.OptUint(b, "policy_version", e.PolicyVersion)
	if s := e.Statement; s != nil {
		b = jsonenc.Key(b, "statement")
		b = append(b, '{')
		b = jsonenc.Key(b, "text")
		b = jsonenc.String(b, s.Text)
		b = jsonenc.Key(b, "operations")
		b = jsonenc.Strings(b, s.Operations)
		b = jsonenc.Key(b, "decision")
		b = jsonenc.String(b, s.Decision)
		b = jsonenc.OptString(b, "reason", s.Reason)
		b = jsonenc.OptString(b, "rule", s.Rule)
		b = jsonenc.OptUint(b, "policy_version", s.PolicyVersion)
		b = jsonenc.OptString(b, "request", s.Request)
		b = append(b, '}')
	}
	return append(b, '}'), true
}
