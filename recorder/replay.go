package recorder

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/corral-dev/corral/internal/termsafe"
)

// Replay writes a recording as a readable transcript: the session's
// header, then every statement with its decision and the summary of its
// response, in order. It stops at the first record that does not verify
// and says so; the report tells the caller how it ended.
func Replay(w io.Writer, r io.Reader) (*Report, error) {
	var (
		start time.Time
		proto string
		// above is the statement the last line shown belongs to: a
		// result of another (SSH commands on one connection end in any
		// order) names its own.
		above uint64
	)
	rep, err := Read(r, func(rec *Record) error {
		switch {
		case rec.Header != nil:
			start, proto = rec.Time, rec.Header.Protocol
			writeHeader(w, rec)
		case rec.Statement != nil:
			st := rec.Statement
			line := fmt.Sprintf("%s  #%-4d %-6s %s", clock(rec.Time, start), rec.Seq, strings.ToUpper(st.Decision), termsafe.Line(st.Text))
			switch {
			case st.Decision != "allow" && st.Reason != "":
				line += "\n" + pad + "↳ " + termsafe.Line(st.Reason)
			case st.Rule != "":
				line += fmt.Sprintf("   [rule %s]", st.Rule)
			}
			fmt.Fprintln(w, line)
			above = rec.Seq
		case rec.Result != nil:
			of := ""
			if rec.Result.Of != above {
				of = fmt.Sprintf("#%d ", rec.Result.Of)
			}
			fmt.Fprintln(w, pad+"→ "+of+termsafe.Line(describeResult(rec.Result, proto)))
		case rec.Approval != nil:
			a := rec.Approval
			line := fmt.Sprintf("%s  approval %s: %s %s", clock(rec.Time, start), a.Request, a.State, termsafe.Line(a.Reviewer))
			if a.Reason != "" {
				line += ": " + termsafe.Line(a.Reason)
			}
			if a.WaitMS > 0 {
				line += fmt.Sprintf(" (after %s)", ms(a.WaitMS))
			}
			fmt.Fprintln(w, line)
		case rec.Error != nil:
			fmt.Fprintf(w, "%s  error: %s\n", clock(rec.Time, start), termsafe.Line(rec.Error.Message))
			above = 0
		case rec.End != nil:
			e := rec.End
			fmt.Fprintf(w, "%s  session ended after %s: %d bytes from the workload, %d to it", clock(rec.Time, start), ms(e.DurationMS), e.BytesUp, e.BytesDown)
			if e.Error != "" {
				fmt.Fprintf(w, " (%s)", termsafe.Line(e.Error))
			}
			fmt.Fprintln(w)
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	switch {
	case rep.Broken != nil:
		fmt.Fprintf(w, "\n!! the recording does not verify from here: %v\n", rep.Broken)
	case rep.Truncated:
		fmt.Fprintf(w, "\n-- the recording ends here: the session was cut short (%d records, all verified)\n", rep.Records)
	default:
		fmt.Fprintf(w, "\n-- %d records, hash chain verified\n", rep.Records)
	}
	return rep, nil
}

// pad indents what belongs to the statement above it.
var pad = strings.Repeat(" ", 38)

func writeHeader(w io.Writer, rec *Record) {
	h := rec.Header
	db := ""
	if h.Database != "" {
		db = fmt.Sprintf(", database %q", h.Database)
	}
	fmt.Fprintf(w, "session %s: %s (%s) at %s%s, from %s\n", h.SessionID, h.Target, h.Protocol, h.OrigDst, db, h.Client)
	if who := describeWorkload(h.Workload); who != "" {
		fmt.Fprintf(w, "workload %s\n", termsafe.Line(who))
	}
	fmt.Fprintf(w, "started %s, %s", rec.Time.UTC().Format("2006-01-02 15:04:05.000 MST"), h.Decision)
	if h.Rule != "" {
		fmt.Fprintf(w, " by rule %q", h.Rule)
	}
	if h.PolicyVersion != 0 {
		fmt.Fprintf(w, " (policy version %d)", h.PolicyVersion)
	}
	if h.Credential != "" {
		fmt.Fprintf(w, ", credential %q", h.Credential)
	}
	fmt.Fprint(w, "\n\n")
}

func describeWorkload(raw json.RawMessage) string {
	var w struct {
		Exe        string `json:"exe"`
		PID        uint32 `json:"pid"`
		User       string `json:"user"`
		UID        uint32 `json:"uid"`
		Unit       string `json:"unit"`
		CgroupPath string `json:"cgroup_path"`
		Pod        struct {
			Namespace, Name string
			SA              string `json:"service_account"`
		} `json:"pod"`
		OIDC *struct {
			Subject string `json:"subject"`
			Issuer  string `json:"issuer"`
		} `json:"oidc"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &w) != nil {
		return ""
	}
	var parts []string
	if w.Exe != "" {
		parts = append(parts, fmt.Sprintf("%s (pid %d)", w.Exe, w.PID))
	}
	user := w.User
	if user == "" {
		user = fmt.Sprint(w.UID)
	}
	parts = append(parts, "user "+user)
	switch {
	case w.Pod.Name != "":
		parts = append(parts, fmt.Sprintf("pod %s/%s (service account %s)", w.Pod.Namespace, w.Pod.Name, w.Pod.SA))
	case w.Unit != "":
		parts = append(parts, "unit "+w.Unit)
	case w.CgroupPath != "":
		parts = append(parts, "cgroup "+w.CgroupPath)
	}
	if w.OIDC != nil {
		parts = append(parts, fmt.Sprintf("token %s from %s", w.OIDC.Subject, w.OIDC.Issuer))
	}
	return strings.Join(parts, ", ")
}

func describeResult(r *Result, proto string) string {
	var b strings.Builder
	switch {
	case r.Code != "":
		fmt.Fprintf(&b, "error %s: %s", r.Code, r.Message)
	case r.ExitStatus != nil || r.Signal != "":
		switch {
		case r.Signal != "":
			fmt.Fprintf(&b, "killed by SIG%s", r.Signal)
		default:
			fmt.Fprintf(&b, "exit status %d", *r.ExitStatus)
		}
		fmt.Fprintf(&b, ", %d bytes out, %d in", r.Bytes, r.BytesIn)
		if r.Unrecorded > 0 {
			fmt.Fprintf(&b, " (%d bytes beyond the terminal recording's bound not kept)", r.Unrecorded)
		}
		if r.Message != "" {
			b.WriteString(", " + r.Message)
		}

	case r.Command == "" && r.Message != "":
		b.WriteString(r.Message) // an SSH start the target refused
	case r.Command == "" && proto == "ssh":
		// The channel closed without the target saying how it ended.
		fmt.Fprintf(&b, "ended without an exit status, %d bytes out, %d in", r.Bytes, r.BytesIn)
	default:
		b.WriteString(r.Command)
		fmt.Fprintf(&b, ": %d row", r.Rows)
		if r.Rows != 1 {
			b.WriteString("s")
		}
		fmt.Fprintf(&b, ", %d bytes", r.Bytes)
	}
	if len(r.MaskedColumns) > 0 || r.MaskedValues > 0 {
		fmt.Fprintf(&b, ", %d values masked", r.MaskedValues)
		if len(r.MaskedColumns) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(r.MaskedColumns, ", "))
		}
	}
	if r.Terminal != nil {
		fmt.Fprintf(&b, ", terminal %d", CastNumber(r.Terminal.Name))
	}
	fmt.Fprintf(&b, ", %s", ms(r.DurationMS))
	return b.String()
}

// CastNumber is the position of a terminal recording among its session's,
// from its name (see CastName).
func CastNumber(name string) int {
	base := strings.TrimSuffix(name, ".cast")
	if i := strings.LastIndexByte(base, '.'); i >= 0 {
		if n, err := strconv.Atoi(base[i+1:]); err == nil && n > 1 {
			return n
		}
	}
	return 1
}

func clock(t, start time.Time) string {
	return fmt.Sprintf("%s +%8.3fs", t.UTC().Format("15:04:05.000"), t.Sub(start).Seconds())
}

func ms(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2f s", v/1000)
	}
	return fmt.Sprintf("%.2f ms", v)
}
