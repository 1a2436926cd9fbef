package recorder

import (
	"encoding/json"

	"github.com/corral-dev/corral/internal/jsonenc"
)

// appendJSON appends r as json.Marshal writes it. The records written for
// every statement (statement, result, approval) are encoded by hand; the
// rarer header, which carries the workload's raw JSON, and the records
// sealing terminals go through json.Marshal.
func (r *Record) appendJSON(b []byte) ([]byte, error) {
	if r.Header != nil || r.End != nil && (r.End.Terminal != nil || len(r.End.Terminals) > 0) || r.Result != nil && r.Result.Terminal != nil {
		return marshalFrom(b, r)
	}
	start := len(b)
	b = append(b, '{')
	b = jsonenc.Key(b, "seq")
	b = jsonenc.Uint(b, r.Seq)
	b = jsonenc.Key(b, "time")
	b, ok := jsonenc.Time(b, r.Time)
	if !ok {
		return marshalFrom(b[:start], r)
	}
	b = jsonenc.Key(b, "type")
	b = jsonenc.String(b, r.Type)
	b = jsonenc.OptString(b, "prev", r.Prev)
	if s := r.Statement; s != nil {
		b = jsonenc.Key(b, "statement")
		b = append(b, '{')
		b = jsonenc.Key(b, "text")
		b = jsonenc.String(b, s.Text)
		if len(s.Operations) > 0 {
			b = jsonenc.Key(b, "operations")
			b = jsonenc.Strings(b, s.Operations)
		}
		b = jsonenc.Key(b, "decision")
		b = jsonenc.String(b, s.Decision)
		b = jsonenc.OptString(b, "reason", s.Reason)
		b = jsonenc.OptString(b, "rule", s.Rule)
		b = jsonenc.OptUint(b, "policy_version", s.PolicyVersion)
		b = jsonenc.OptString(b, "request", s.Request)
		b = append(b, '}')
	}
	if res := r.Result; res != nil {
		b = jsonenc.Key(b, "result")
		b = append(b, '{')
		b = jsonenc.Key(b, "of")
		b = jsonenc.Uint(b, res.Of)
		b = jsonenc.OptString(b, "command", res.Command)
		b = jsonenc.Key(b, "rows")
		b = jsonenc.Uint(b, res.Rows)
		b = jsonenc.Key(b, "bytes")
		b = jsonenc.Uint(b, res.Bytes)
		if len(res.MaskedColumns) > 0 {
			b = jsonenc.Key(b, "masked_columns")
			b = jsonenc.Strings(b, res.MaskedColumns)
		}
		b = jsonenc.OptUint(b, "masked_values", res.MaskedValues)
		b = jsonenc.Key(b, "duration_ms")
		if b, ok = jsonenc.Float(b, res.DurationMS); !ok {
			return marshalFrom(b[:start], r)
		}
		b = jsonenc.OptString(b, "code", res.Code)
		b = jsonenc.OptString(b, "message", res.Message)
		if res.ExitStatus != nil {
			b = jsonenc.Key(b, "exit_status")
			b = jsonenc.Int(b, int64(*res.ExitStatus))
		}
		b = jsonenc.OptString(b, "signal", res.Signal)
		b = jsonenc.OptUint(b, "bytes_in", res.BytesIn)
		b = jsonenc.OptUint(b, "unrecorded", res.Unrecorded)
		b = append(b, '}')
	}
	if a := r.Approval; a != nil {
		b = jsonenc.Key(b, "approval")
		b = append(b, '{')
		b = jsonenc.Key(b, "request")
		b = jsonenc.String(b, a.Request)
		b = jsonenc.Key(b, "state")
		b = jsonenc.String(b, a.State)
		b = jsonenc.OptString(b, "reviewer", a.Reviewer)
		b = jsonenc.OptString(b, "reason", a.Reason)
		if a.WaitMS != 0 {
			b = jsonenc.Key(b, "wait_ms")
			if b, ok = jsonenc.Float(b, a.WaitMS); !ok {
				return marshalFrom(b[:start], r)
			}
		}
		b = append(b, '}')
	}
	if e := r.Error; e != nil {
		b = jsonenc.Key(b, "error")
		b = append(b, '{')
		b = jsonenc.Key(b, "message")
		b = jsonenc.String(b, e.Message)
		b = append(b, '}')
	}
	if e := r.End; e != nil {
		b = jsonenc.Key(b, "end")
		b = append(b, '{')
		b = jsonenc.OptString(b, "reason", e.Reason)
		b = jsonenc.Key(b, "bytes_up")
		b = jsonenc.Uint(b, e.BytesUp)
		b = jsonenc.Key(b, "bytes_down")
		b = jsonenc.Uint(b, e.BytesDown)
		b = jsonenc.Key(b, "duration_ms")
		if b, ok = jsonenc.Float(b, e.DurationMS); !ok {
			return marshalFrom(b[:start], r)
		}
		b = jsonenc.OptString(b, "error", e.Error)
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

// marshalFrom encodes r with json.Marshal after b: for the records and
// values the hand encoding does not write (a time or number JSON cannot
// carry: the error is then json.Marshal's own).
func marshalFrom(b []byte, r *Record) ([]byte, error) {
	body, err := json.Marshal(r)
	return append(b, body...), err
}
