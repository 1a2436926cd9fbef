package recorder

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/corral-dev/corral/internal/termsafe"
)

// FormatVersion is written in every header; readers refuse newer major
// formats instead of misreading them. Format 2 seals a terminal per SSH
// channel (Result.Terminal, End.Terminals): a format-1 reader would find
// none of them and pass a recording whose terminals it never checked.
// Readers of format 2 read format 1 as well.
const FormatVersion = 2

// Record types.
const (
	TypeHeader    = "header"
	TypeStatement = "statement"
	TypeResult    = "result"
	TypeApproval  = "approval"
	TypeError     = "error"
	TypeEnd       = "end"
)

// Record is one line of a session recording.
type Record struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	Type string    `json:"type"`
	Prev string    `json:"prev,omitempty"`

	Header    *Header    `json:"header,omitempty"`
	Statement *Statement `json:"statement,omitempty"`
	Result    *Result    `json:"result,omitempty"`
	Approval  *Approval  `json:"approval,omitempty"`
	Error     *Error     `json:"error,omitempty"`
	End       *End       `json:"end,omitempty"`

	// Hash is filled in when a record is read back.
	Hash string `json:"-"`
}

// Header opens a recording: who connected to what, and why they were let in.
type Header struct {
	Format    int    `json:"format"`
	SessionID string `json:"session_id"`
	Node      string `json:"node,omitempty"`
	Agent     string `json:"agent_version,omitempty"`
	Target    string `json:"target"`
	Protocol  string `json:"protocol"`
	Client    string `json:"client"`
	OrigDst   string `json:"orig_dst"`
	// Database is the database a PostgreSQL session opened.
	Database string `json:"database,omitempty"`
	// Workload is the workload identity exactly as the audit log carries
	// it (the agent's identity contract).
	Workload json.RawMessage `json:"workload,omitempty"`
	// The admission decision.
	Decision      string `json:"decision"`
	Rule          string `json:"rule,omitempty"`
	Reason        string `json:"reason,omitempty"`
	PolicyVersion uint64 `json:"policy_version,omitempty"`
	Credential    string `json:"credential,omitempty"`
}

// Statement is one operation the workload asked for and the decision on it.
// Text is normalised: literals are replaced by $n, so values (and any
// password in ALTER ROLE ... PASSWORD) never reach a recording.
type Statement struct {
	Text          string   `json:"text"`
	Operations    []string `json:"operations,omitempty"`
	Decision      string   `json:"decision"`
	Reason        string   `json:"reason,omitempty"`
	Rule          string   `json:"rule,omitempty"`
	PolicyVersion uint64   `json:"policy_version,omitempty"`
	// Request is the approval request a review created.
	Request string `json:"request,omitempty"`
}

// Result summarises the response to an allowed statement.
type Result struct {
	// Of is the seq of the statement record this answers.
	Of            uint64   `json:"of"`
	Command       string   `json:"command,omitempty"` // the server's tag: "SELECT 3"
	Rows          uint64   `json:"rows"`
	Bytes         uint64   `json:"bytes"`
	MaskedColumns []string `json:"masked_columns,omitempty"`
	MaskedValues  uint64   `json:"masked_values,omitempty"`
	DurationMS    float64  `json:"duration_ms"`
	Code          string   `json:"code,omitempty"` // SQLSTATE of an error
	Message       string   `json:"message,omitempty"`
	// A command's end (SSH): its exit status, or the signal that killed
	// it; BytesIn is what the workload sent it.
	ExitStatus *int   `json:"exit_status,omitempty"`
	Signal     string `json:"signal,omitempty"`
	BytesIn    uint64 `json:"bytes_in,omitempty"`
	// Unrecorded is output (and, for shells, input) beyond the terminal
	// recording's bound: counted, not kept.
	Unrecorded uint64 `json:"unrecorded,omitempty"`
	// Terminal seals the terminal recording of what this answers (an SSH
	// channel's shell or command).
	Terminal *CastSeal `json:"terminal,omitempty"`
}

// Approval is a step of a review: requested, approved, denied, expired.
type Approval struct {
	Request  string  `json:"request"`
	State    string  `json:"state"`
	Reviewer string  `json:"reviewer,omitempty"`
	Reason   string  `json:"reason,omitempty"`
	WaitMS   float64 `json:"wait_ms,omitempty"`
}

// Refused reports whether the review ended without the operation running
// (denied, expired, cancelled). A nil Approval is not refused.
func (a *Approval) Refused() bool {
	return a != nil && (a.State == "denied" || a.State == "expired" || a.State == "cancelled")
}

// Error is a failure of the session itself (not of one statement).
type Error struct {
	Message string `json:"message"`
}

// End seals a recording.
type End struct {
	Reason     string  `json:"reason,omitempty"`
	BytesUp    uint64  `json:"bytes_up"`
	BytesDown  uint64  `json:"bytes_down"`
	DurationMS float64 `json:"duration_ms"`
	Error      string  `json:"error,omitempty"`
	// Terminals seals the terminal recordings still open when the session
	// ended; the others are sealed by their results.
	Terminals []CastSeal `json:"terminals,omitempty"`
	// Terminal is where recordings written before terminals were sealed
	// one by one sealed the session's only one; read, no longer written.
	Terminal *CastSeal `json:"terminal,omitempty"`
}

// Seals returns the terminal recordings this record seals.
func (r *Record) Seals() []CastSeal {
	var out []CastSeal
	if r.Result != nil && r.Result.Terminal != nil {
		out = append(out, *r.Result.Terminal)
	}
	if r.End != nil {
		if r.End.Terminal != nil {
			out = append(out, *r.End.Terminal)
		}
		out = append(out, r.End.Terminals...)
	}
	return out
}

// hashSuffix is what follows the body of every line: `,"hash":"` + 64 hex
// digits + `"}`.
const (
	hashPrefix = `,"hash":"`
	hashLen    = sha256.Size * 2
	suffixLen  = len(hashPrefix) + hashLen + len(`"}`)
)

// sealTo appends r as one line (with its newline) to dst and returns the
// result and the line's hash; on error dst is returned unchanged.
func sealTo(dst []byte, r *Record) ([]byte, string, error) {
	start := len(dst)
	out, err := r.appendJSON(dst)
	if err != nil {
		return dst[:start], "", err
	}
	sum := sha256.Sum256(out[start:])
	out = append(out[:len(out)-1], hashPrefix...)
	out = hex.AppendEncode(out, sum[:])
	h := string(out[len(out)-hashLen:])
	return append(out, '"', '}', '\n'), h, nil
}

var errNoHash = errors.New("the line does not end with its hash")

// open checks one line (without its newline) against its own hash and
// decodes it.
func open(line []byte) (*Record, error) {
	if len(line) < suffixLen+2 || !bytes.HasSuffix(line, []byte(`"}`)) ||
		!bytes.Equal(line[len(line)-suffixLen:len(line)-suffixLen+len(hashPrefix)], []byte(hashPrefix)) {
		return nil, errNoHash
	}
	want := string(line[len(line)-hashLen-2 : len(line)-2])
	body := make([]byte, 0, len(line)-suffixLen+1)
	body = append(body, line[:len(line)-suffixLen]...)
	body = append(body, '}')
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != want {
		return nil, fmt.Errorf("the line does not match its hash")
	}
	var r Record
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("the line is not a record: %w", err)
	}
	r.Hash = want
	return &r, nil
}

// What a record keeps of a text: a statement's whole (corral parses at
// most 1 MiB of one), the first 64 KiB of anything else. The workload
// chooses most of these texts (a server's error can quote a value it
// made, gigabytes long), and a reader takes lines of at most maxLine
// (JSON may write a byte as six): unbounded, one text would make the
// whole recording unreadable.
const (
	maxText  = 1 << 20
	maxField = 64 << 10
)

// bound cuts the record's texts to what it keeps, each saying how long
// it was.
func (r *Record) bound() {
	cut := func(s *string, n int) {
		if len(*s) > n {
			*s = fmt.Sprintf("%s (%d bytes, cut)", termsafe.Cut(*s, n), len(*s))
		}
	}
	if h := r.Header; h != nil {
		cut(&h.Reason, maxField)
		cut(&h.Database, maxField)
	}
	if st := r.Statement; st != nil {
		cut(&st.Text, maxText)
		cut(&st.Reason, maxField)
	}
	if res := r.Result; res != nil {
		cut(&res.Command, maxField)
		cut(&res.Message, maxField)
	}
	if a := r.Approval; a != nil {
		cut(&a.Reason, maxField)
	}
	if e := r.Error; e != nil {
		cut(&e.Message, maxField)
	}
	if e := r.End; e != nil {
		cut(&e.Reason, maxField)
		cut(&e.Error, maxField)
	}
}
