package ssh

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/recorder"
)

// What a terminal recording keeps is bounded in its bytes on disk: one
// control byte a packet takes some 24 there, so counting what passed let
// a "64 MiB" terminal hold 1.5 GiB. A connection's terminals share a
// bound of four times a terminal's on their output, however many channels
// it opens.
func TestTerminalRecordingBoundedOnDisk(t *testing.T) {
	const limit = 64 << 10
	s := &session{h: &Handler{MaxRecordedTerminal: limit, Log: slog.New(slog.DiscardHandler)}, c: &intercept.Conn{}}
	newCh := func() (*sessionCh, *bytes.Buffer) {
		var disk bytes.Buffer
		cast, err := recorder.NewCast(&disk, recorder.CastHeader{Width: 80, Height: 24}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return &sessionCh{s: s, cast: cast, recLimit: limit, inLimit: limit, pty: &ptyReq{}}, &disk
	}
	ch, _ := newCh()
	for range limit {
		if !ch.tee([]byte{0x1b}, false) {
			t.Fatal("cut")
		}
	}
	if ch.outKept > limit+64 || ch.cast.Size() > limit+1024 {
		t.Errorf("the recording holds %d bytes (counted %d) for a bound of %d", ch.cast.Size(), ch.outKept, limit)
	}
	if ch.unrecorded == 0 || ch.out != limit {
		t.Errorf("%d bytes passed, %d unrecorded", ch.out, ch.unrecorded)
	}

	var total int64
	for range 8 {
		ch, _ := newCh()
		ch.tee(bytes.Repeat([]byte("x"), limit-256), false)
		total += ch.cast.Size()
	}
	if got := s.castBytes.Load(); got > 4*limit || total > 4*limit+8*1024 {
		t.Errorf("the connection's terminals hold %d bytes (counted %d) for a bound of %d", total, got, 4*limit)
	}
	// What is typed into a shell counts against its own bound alone: no
	// output elsewhere leaves its commands unrecorded.
	sh, _ := newCh()
	sh.tee([]byte("rm -rf /srv\r"), true)
	if sh.inKept == 0 || sh.unrecorded != 0 {
		t.Errorf("a shell's input past the connection's output bound: kept %d, unrecorded %d", sh.inKept, sh.unrecorded)
	}
}

// A recording past its bound holds the beginning: a small chunk after one
// too large to keep is not kept either (it would show a program's end
// without the middle that made sense of it).
func TestRecordingKeepsABeginning(t *testing.T) {
	const limit = 64 << 10
	s := &session{h: &Handler{MaxRecordedTerminal: limit, Log: slog.New(slog.DiscardHandler)}, c: &intercept.Conn{}}
	var disk bytes.Buffer
	cast, err := recorder.NewCast(&disk, recorder.CastHeader{Width: 80, Height: 24}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ch := &sessionCh{s: s, cast: cast, recLimit: -1, inLimit: limit}
	ch.tee(bytes.Repeat([]byte("#"), limit/2), true)
	ch.tee(bytes.Repeat([]byte("#"), limit), true)
	ch.tee([]byte("system('touch', 'ran')"), true)
	if bytes.Contains(disk.Bytes(), []byte("system(")) {
		t.Error("a chunk after one past the bound was recorded")
	}
	if ch.unrecorded != uint64(limit+len("system('touch', 'ran')")) {
		t.Errorf("unrecorded %d", ch.unrecorded)
	}
}
