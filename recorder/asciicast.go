package recorder

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/corral-dev/corral/internal/termsafe"
)

// Terminal sessions (SSH shells, Kubernetes exec) are also written as
// asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/) beside
// their recording, so standard players replay them. The cast is not
// chained line by line; its SHA-256 and size seal it in a record of the
// recording instead (Record.Seals), which the chain protects.

// CastHeader is the first line of an asciicast v2 file.
type CastHeader struct {
	Version   int               `json:"version"`
	Width     int               `json:"width"`
	Height    int               `json:"height"`
	Timestamp int64             `json:"timestamp,omitempty"`
	Title     string            `json:"title,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
}

// CastSeal is what the recording says of a terminal recording: the
// result of the command it shows, or the end record, holds it.
type CastSeal struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
}

// Cast writes one terminal session as asciicast v2. Its methods are safe
// for concurrent use (input and output come from different goroutines).
type Cast struct {
	mu    sync.Mutex
	w     *bufio.Writer
	sum   hash.Hash
	n     int64
	start time.Time
	err   error
	// pending holds the start of a UTF-8 sequence split across writes:
	// asciicast events are JSON strings, which must be whole characters.
	pending map[string][]byte
}

// NewCast starts a cast on w with its header.
func NewCast(w io.Writer, h CastHeader, start time.Time) (*Cast, error) {
	h.Version = 2
	if len(h.Title) > maxField {
		// The command line: its statement record keeps more.
		h.Title = termsafe.Cut(h.Title, maxField)
	}
	if h.Timestamp == 0 {
		h.Timestamp = start.Unix()
	}
	c := &Cast{sum: sha256.New(), start: start, pending: map[string][]byte{}}
	c.w = bufio.NewWriterSize(io.MultiWriter(w, c.sum), 4096)
	b, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	if err := c.line(b); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cast) line(b []byte) error {
	if c.err != nil {
		return c.err
	}
	if _, err := c.w.Write(append(b, '\n')); err != nil {
		c.err = err
		return err
	}
	c.n += int64(len(b)) + 1
	return nil
}

// Output records what the terminal showed at t.
func (c *Cast) Output(t time.Time, data []byte) error { return c.event(t, "o", data) }

// Input records what was typed at t.
func (c *Cast) Input(t time.Time, data []byte) error { return c.event(t, "i", data) }

// Resize records a new terminal size.
func (c *Cast) Resize(t time.Time, width, height int) error {
	return c.event(t, "r", []byte(fmt.Sprintf("%dx%d", width, height)))
}

func (c *Cast) event(t time.Time, kind string, data []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if kind != "r" {
		data = append(c.pending[kind], data...)
		cut := completeUTF8(data)
		c.pending[kind] = append([]byte(nil), data[cut:]...)
		data = data[:cut]
		if len(data) == 0 {
			return c.err
		}
	}
	b, err := json.Marshal([]any{float64(t.Sub(c.start).Microseconds()) / 1e6, kind, string(data)})
	if err != nil {
		return err
	}
	return c.line(b)
}

// completeUTF8 returns how much of b ends on a character boundary: an
// incomplete sequence at the end waits for the next write (invalid bytes
// elsewhere are left to JSON, which replaces them).
func completeUTF8(b []byte) int {
	for i := 1; i <= 3 && i <= len(b); i++ {
		r := b[len(b)-i]
		if r < utf8.RuneSelf {
			return len(b)
		}
		if utf8.RuneStart(r) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return len(b) - i
			}
			return len(b)
		}
	}
	return len(b)
}

// Flush writes out what is buffered.
func (c *Cast) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = c.w.Flush()
	}
	return c.err
}

// Size is how many bytes the cast holds, buffered ones included.
func (c *Cast) Size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// ErrSealed is what writing to a sealed cast returns: what it shows was
// fixed by its seal.
var ErrSealed = errors.New("the terminal recording is sealed")

// Seal flushes the cast and returns its hash and size; the cast takes no
// more writes.
func (c *Cast) Seal(name string) (CastSeal, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// An incomplete character still pending at the very end is dropped:
	// no terminal showed it either.
	if c.err == nil {
		c.err = c.w.Flush()
	}
	if c.err != nil {
		return CastSeal{}, c.err
	}
	c.err = ErrSealed
	return CastSeal{Name: name, SHA256: hex.EncodeToString(c.sum.Sum(nil)), Bytes: c.n}, nil
}

// CheckCast compares a cast with its seal.
func CheckCast(r io.Reader, seal CastSeal) error {
	h := sha256.New()
	// One byte past the seal is enough to tell it does not match: a file
	// that grows without end is not read to its end.
	n, err := io.Copy(h, io.LimitReader(r, max(seal.Bytes, 0)+1))
	if err != nil {
		return err
	}
	if n != seal.Bytes || hex.EncodeToString(h.Sum(nil)) != seal.SHA256 {
		return fmt.Errorf("the terminal recording %s does not match its seal (%d bytes, expected %d)", seal.Name, n, seal.Bytes)
	}
	return nil
}

// PlayOptions control playback.
type PlayOptions struct {
	// Speed multiplies playback speed (2 = twice as fast); 0 means 1.
	Speed float64
	// NoWait writes everything at once.
	NoWait bool
	// MaxIdle caps a pause between events (0: 2 s), so an idle terminal
	// does not stall a replay.
	MaxIdle time.Duration
}

// Play writes a cast's output to w with its original timing.
func Play(ctx context.Context, w io.Writer, r io.Reader, o PlayOptions) error {
	if o.Speed <= 0 {
		o.Speed = 1
	}
	if o.MaxIdle <= 0 {
		o.MaxIdle = 2 * time.Second
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	if !sc.Scan() {
		return errors.New("empty terminal recording")
	}
	var h CastHeader
	if err := json.Unmarshal(sc.Bytes(), &h); err != nil || h.Version != 2 {
		return errors.New("not an asciicast v2 recording")
	}
	last := 0.0
	for sc.Scan() {
		var ev []json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || len(ev) != 3 {
			return fmt.Errorf("bad event line: %q", sc.Bytes())
		}
		var (
			at         float64
			kind, data string
		)
		if json.Unmarshal(ev[0], &at) != nil || json.Unmarshal(ev[1], &kind) != nil || json.Unmarshal(ev[2], &data) != nil {
			return fmt.Errorf("bad event line: %q", sc.Bytes())
		}
		if kind != "o" {
			continue
		}
		if !o.NoWait {
			d := min(time.Duration((at-last)/o.Speed*float64(time.Second)), o.MaxIdle)
			if d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-t.C:
				}
			}
		}
		last = at
		if _, err := io.WriteString(w, data); err != nil {
			return err
		}
	}
	return sc.Err()
}
