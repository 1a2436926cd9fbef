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
	b = optString(b, "error", e.Error)
	b = optString(b, "decision", e.Decision)
	b = optString(b, "reason", e.Reason)
	b = optString(b, "rule", e.Rule)
	if e.PolicyVersion != 0 {
		b = jsonenc.Key(b, "policy_version")
		b = jsonenc.Uint(b, e.PolicyVersion)
	}
	if s := e.Statement; s != nil {
		b = jsonenc.Key(b, "statement")
		b = append(b, '{')
		b = jsonenc.Key(b, "text")
		b = jsonenc.String(b, s.Text)
		b = jsonenc.Key(b, "operations")
		b = jsonenc.Strings(b, s.Operations)
		b = jsonenc.Key(b, "decision")
		b = jsonenc.String(b, s.Decision)
		b = optString(b, "reason", s.Reason)
		b = optString(b, "rule", s.Rule)
		if s.PolicyVersion != 0 {
			b = jsonenc.Key(b, "policy_version")
			b = jsonenc.Uint(b, s.PolicyVersion)
		}
		b = optString(b, "request", s.Request)
		b = append(b, '}')
	}
	return append(b, '}'), true
}

func optString(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	return jsonenc.String(jsonenc.Key(b, key), v)
}
