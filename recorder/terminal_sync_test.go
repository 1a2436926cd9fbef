package recorder

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/corral-dev/corral/recorder/store"
)

// heldSyncs is a directory backend on which the first cast fsync after
// it is armed waits for release.
type heldSyncs struct {
	*store.Dir
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

type heldObject struct {
	store.Object
	b *heldSyncs
}

func (b *heldSyncs) Create(name string) (store.Object, error) {
	o, err := b.Dir.Create(name)
	if err != nil || !strings.HasSuffix(name, ".cast") {
		return o, err
	}
	return heldObject{o, b}, nil
}

func (o heldObject) Sync() error {
	if o.b.armed.CompareAndSwap(true, false) {
		o.b.entered <- struct{}{}
		<-o.b.release
	}
	return o.Object.Sync()
}

// A terminal's fsync at its end holds no lock the session's other
// records need, and a session ending meanwhile waits for the terminal's
// result: its end record seals the terminal still open, the result the
// other, and nothing is left unsealed.
func TestEndTerminalSyncsOutsideTheLock(t *testing.T) {
	dirBackend, index := testStore(t)
	synctest.Test(t, func(t *testing.T) {
		backend := &heldSyncs{Dir: dirBackend, entered: make(chan struct{}), release: make(chan struct{})}
		r := testRecorder(t, backend, index)
		start := time.Now()
		s, err := r.Start(Header{SessionID: "s-held", Target: "web", Protocol: "ssh"}, start, Strict, nil)
		if err != nil {
			t.Fatal(err)
		}
		one, err := s.Terminal(CastHeader{Width: 80, Height: 24, Title: "one"}, start)
		if err != nil {
			t.Fatal(err)
		}
		one.Output(start, []byte("one\r\n"))
		exit := 0
		ended := make(chan error, 1)
		// Armed here, the hold is EndTerminal's: no sync tick runs before
		// this goroutine blocks, as the bubble's time stands still.
		backend.armed.Store(true)
		go func() { ended <- s.EndTerminal(one, Result{Of: 1, ExitStatus: &exit}) }()
		<-backend.entered // the terminal's fsync has begun, and waits

		// The session records on meanwhile: a new terminal opens.
		two, err := s.Terminal(CastHeader{Width: 80, Height: 24, Title: "two"}, start)
		if err != nil {
			t.Fatal(err)
		}
		two.Output(start, []byte("two\r\n"))
		var done atomic.Bool
		sessionEnded := make(chan error, 1)
		go func() { sessionEnded <- s.End(End{}); done.Store(true) }()
		synctest.Wait()
		if done.Load() {
			t.Fatal("the session ended while a terminal's result was still to be recorded")
		}
		close(backend.release)
		if err := <-ended; err != nil {
			t.Fatalf("EndTerminal: %v", err)
		}
		if err := <-sessionEnded; err != nil {
			t.Fatalf("End: %v", err)
		}

		f, err := os.Open(filepath.Join(dirBackend.Path, filepath.FromSlash(s.name)))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Read(f, nil)
		f.Close()
		if err != nil || !rep.Complete {
			t.Fatalf("recording: %+v, %v", rep, err)
		}
		sealed := map[string]bool{}
		for _, sl := range rep.Seals {
			sealed[sl.Name] = true
		}
		for _, n := range []int{1, 2} {
			if name := CastName(s.name, n); !sealed[name] {
				t.Errorf("%s is not sealed; seals %+v", name, rep.Seals)
			}
		}
	})
}

// failingCast is a directory backend on which the second terminal cannot
// be created.
type failingCast struct{ *store.Dir }

func (b failingCast) Create(name string) (store.Object, error) {
	if strings.HasSuffix(name, ".2.cast") {
		return nil, errors.New("no space left on device")
	}
	return b.Dir.Create(name)
}

// A terminal that cannot be created fails the recording, and no later
// one is created: casts are numbered without gaps, which Casts and
// retention rely on.
func TestFailedTerminalEndsTheCasts(t *testing.T) {
	backend, index := testStore(t)
	r := testRecorder(t, failingCast{backend}, index)
	start := time.Now()
	s, err := r.Start(Header{SessionID: "s-gap", Target: "web", Protocol: "ssh"}, start, BestEffort, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		c, err := s.Terminal(CastHeader{Width: 80, Height: 24}, start)
		if err != nil || (c != nil) != (i == 1) {
			t.Fatalf("terminal %d: %v, %v", i, c, err)
		}
	}
	s.End(End{})
	for i, want := range []bool{true, false, false} {
		_, err := os.Stat(filepath.Join(backend.Path, filepath.FromSlash(CastName(s.name, i+1))))
		if (err == nil) != want {
			t.Errorf("cast %d on disk: %v, want %v", i+1, err == nil, want)
		}
	}
}
