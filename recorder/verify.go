package recorder

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// maxLine bounds one record when reading: a statement is at most 1 MiB of
// SQL, and a damaged file must not make a reader allocate without limit.
const maxLine = 16 << 20

// Report is what Verify found.
type Report struct {
	Records  uint64 // records that verified, in order
	LastHash string // hash of the last record that verified
	// Complete: the recording ends with its end record.
	Complete bool
	// Truncated: no end record (the session was cut short, e.g. the agent
	// was killed); everything before the cut verified.
	Truncated bool
	// Broken, when set, is the first record that does not verify; nothing
	// from it on can be trusted.
	Broken *Broken
	Header *Header
	// Seals are the terminal recordings the verified records seal.
	Seals []CastSeal
}

// OK reports whether the chain verified (complete or truncated).
func (r *Report) OK() bool { return r.Broken == nil }

// Status is a one-word summary: ok, truncated or corrupt.
func (r *Report) Status() string {
	switch {
	case r.Broken != nil:
		return "corrupt"
	case r.Truncated:
		return "truncated"
	}
	return "ok"
}

// Broken locates a verification failure.
type Broken struct {
	Seq    uint64 // the record's position (0 is the header)
	Line   int    // 1-based line in the file
	Reason string
}

func (b *Broken) Error() string {
	return fmt.Sprintf("record %d (line %d): %s", b.Seq, b.Line, b.Reason)
}

// Read decodes a recording record by record, checking the chain as it
// goes; fn sees only records that verified. It stops at the first broken
// record (reported, not returned as an error); err is for I/O failures and
// for fn's own errors.
func Read(r io.Reader, fn func(*Record) error) (*Report, error) {
	rep := &Report{}
	br := bufio.NewReaderSize(r, 64<<10)
	var prev *Record
	for line := 1; ; line++ {
		b, err := readLine(br)
		if errors.Is(err, io.EOF) {
			if len(b) > 0 && prev != nil && prev.Type == TypeEnd {
				// Nothing is written after the end record, not even
				// in part.
				rep.Broken = &Broken{Seq: rep.Records, Line: line, Reason: "bytes follow the end record"}
				return rep, nil
			}
			if len(b) > 0 {
				// A write the crash interrupted: never acknowledged,
				// not part of the recording.
				rep.Truncated = true
			}
			break
		}
		seq := rep.Records
		fail := func(format string, a ...any) (*Report, error) {
			rep.Broken = &Broken{Seq: seq, Line: line, Reason: fmt.Sprintf(format, a...)}
			return rep, nil
		}
		if errors.Is(err, errLongLine) {
			// corral writes no such line: what comes before it is
			// shown, as before any other break.
			return fail("%v", err)
		}
		if err != nil {
			return rep, err
		}
		if prev != nil && prev.Type == TypeEnd {
			return fail("a record follows the end record")
		}
		rec, err := open(b)
		if err != nil {
			if prev != nil {
				return fail("%v (changed after it was written)", err)
			}
			return fail("%v", err)
		}
		switch {
		case rec.Seq != seq:
			return fail("out of order: seq %d where %d belongs", rec.Seq, seq)
		case seq == 0 && (rec.Type != TypeHeader || rec.Header == nil):
			return fail("the recording does not start with its header")
		case seq == 0 && rec.Prev != "":
			return fail("the header names a previous record")
		case seq == 0 && rec.Header.Format > FormatVersion:
			return fail("format %d is newer than this reader (%d)", rec.Header.Format, FormatVersion)
		case seq > 0 && rec.Type == TypeHeader:
			return fail("a second header")
		case seq > 0 && rec.Prev != prev.Hash:
			return fail("does not follow record %d: the chain is broken (a record was changed, removed or inserted)", seq-1)
		}
		if seq == 0 {
			rep.Header = rec.Header
		}
		if fn != nil {
			if err := fn(rec); err != nil {
				return rep, err
			}
		}
		rep.Seals = append(rep.Seals, rec.Seals()...)
		rep.Records++
		rep.LastHash = rec.Hash
		prev = rec
	}
	switch {
	case prev == nil:
		rep.Broken = &Broken{Line: 1, Reason: "the recording is empty"}
	case prev.Type == TypeEnd:
		rep.Complete = !rep.Truncated
	default:
		rep.Truncated = true
	}
	return rep, nil
}

// Verify checks a whole recording.
func Verify(r io.Reader) (*Report, error) { return Read(r, nil) }

var errLongLine = fmt.Errorf("a line longer than %d bytes", maxLine)

// readLine returns one line without its newline; at the end of input it
// returns what is left (a partial line) with io.EOF.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxLine {
			return nil, errLongLine
		}
		if err == nil {
			return line[:len(line)-1], nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return line, err
		}
	}
}
