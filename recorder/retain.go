package recorder

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"time"

	"github.com/corral-dev/corral/recorder/store"
)

// recover settles what a previous agent left: recordings still open in
// the index were cut short, and files the index does not hold (a lost or
// deleted index) are indexed again from their own records.
func (r *Recorder) recover(ctx context.Context) error {
	open, err := r.o.Index.InState(ctx, store.StateOpen)
	if err != nil {
		return err
	}
	for _, e := range open {
		// The index's synced count and last hash are the anchor a
		// verify checks the file against: the file must still hold
		// those records, unchanged. A file that does not keeps the
		// index's view, and verifies as corrupt.
		var seen uint64
		var synced string
		p, err := r.readProgress(e.Name, func(rec *Record) {
			if seen++; seen == e.Records {
				synced = rec.Hash
			}
		})
		if err == nil && e.Records > 0 && (p.Records < e.Records || synced != e.LastHash) {
			r.o.Log.Warn("recording changed after its last sync; the index keeps what it saw synced", "session_id", e.ID,
				"synced_records", e.Records, "file_records", p.Records)
			p.Records, p.LastHash = e.Records, e.LastHash
		}
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				// The index writes an entry only once the header is
				// durable, and retention leaves open recordings alone:
				// a missing file was removed. The entry stays, cut
				// short, for verify to report.
				r.o.Log.Warn("recording missing; the index keeps it, and verify reports it", "session_id", e.ID, "name", e.Name)
				p = store.Progress{ID: e.ID, Statements: e.Statements, Denied: e.Denied, Records: e.Records, LastHash: e.LastHash, State: store.StateTruncated}
				if err := r.o.Index.Update(ctx, []store.Progress{p}); err != nil {
					return err
				}
				continue
			}
			r.o.Log.Warn("recording unreadable", "session_id", e.ID, "err", err)
			continue
		}
		p.ID = e.ID
		if err := r.o.Index.Update(ctx, []store.Progress{p}); err != nil {
			return err
		}
	}
	return r.o.Backend.Walk(func(name string) error {
		known, err := r.o.Index.Has(ctx, name)
		if err != nil || known {
			return err
		}
		var h *Header
		var started time.Time
		p, err := r.readProgress(name, func(rec *Record) {
			if rec.Header != nil {
				h, started = rec.Header, rec.Time
			}
		})
		if err != nil || h == nil {
			r.o.Log.Warn("recording not indexed: unreadable", "name", name, "err", err)
			return nil
		}
		// A file is taken up only under the name its session's is made
		// of, and only for a session the index does not hold: a copy
		// (forged or not) must not replace the entry, and its anchor,
		// of the recording the index saw written.
		if want := Name(started, h.SessionID); name != want {
			r.o.Log.Warn("recording not indexed: its name is not its session's", "name", name, "session_id", h.SessionID, "want", want)
			return nil
		}
		if _, err := r.o.Index.ByID(ctx, h.SessionID); err == nil {
			r.o.Log.Warn("recording not indexed: its session is indexed under another file", "name", name, "session_id", h.SessionID)
			return nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		e := entryOf(h, name, started)
		e.State, e.Ended = p.State, p.Ended
		e.Statements, e.Denied, e.Records, e.LastHash, e.Bytes = p.Statements, p.Denied, p.Records, p.LastHash, p.Bytes
		return r.o.Index.Put(ctx, e)
	})
}

// readProgress reads a recording to its end (or first broken record) and
// says how far it goes.
func (r *Recorder) readProgress(name string, each func(*Record)) (store.Progress, error) {
	f, err := r.o.Backend.Open(name)
	if err != nil {
		return store.Progress{}, err
	}
	defer f.Close()
	var p store.Progress
	rep, err := Read(f, func(rec *Record) error {
		if each != nil {
			each(rec)
		}
		if rec.Statement != nil {
			p.Statements++
			if rec.Statement.Decision == "deny" {
				p.Denied++
			}
		}
		if rec.Approval.Refused() {
			p.Denied++
		}
		if rec.End != nil {
			p.Ended = rec.Time
		}
		return nil
	})
	if err != nil {
		return p, err
	}
	p.Records, p.LastHash = rep.Records, rep.LastHash
	p.Bytes, _ = r.o.Backend.Size(name)
	casts, _ := Casts(r.o.Backend, name) // sizes only: what cannot be listed is not counted
	for _, c := range casts {
		if n, err := r.o.Backend.Size(c); err == nil {
			p.Bytes += n
		}
	}
	p.State = store.StateTruncated
	if rep.Complete {
		p.State = store.StateComplete
	} else {
		p.Ended = time.Time{}
	}
	return p, nil
}

// Casts returns the names of the terminal recordings beside a recording,
// in the order they began. They are numbered without gaps (a terminal
// that could not be created ends the recording), so the first name
// missing ends the list.
func Casts(b store.Backend, name string) ([]string, error) {
	var out []string
	for n := 1; ; n++ {
		c := CastName(name, n)
		if _, err := b.Size(c); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return out, nil
			}
			return out, err
		}
		out = append(out, c)
	}
}

// Retain deletes the oldest finished recordings while any is older than
// MaxAge or all of them together are larger than MaxBytes.
func (r *Recorder) Retain(ctx context.Context, now time.Time) error {
	if r.o.MaxAge <= 0 && r.o.MaxBytes <= 0 {
		return nil
	}
	for {
		_, total, err := r.o.Index.Usage(ctx)
		if err != nil {
			return err
		}
		oldest, err := r.o.Index.Oldest(ctx, 100)
		if err != nil {
			return err
		}
		if len(oldest) == 0 {
			return nil
		}
		removed := 0
		for _, e := range oldest {
			old := r.o.MaxAge > 0 && now.Sub(e.Started) > r.o.MaxAge
			big := r.o.MaxBytes > 0 && total > r.o.MaxBytes
			if !old && !big {
				return nil
			}
			if err := r.o.Backend.Remove(e.Name); err != nil {
				return fmt.Errorf("remove recording %s: %w", e.Name, err)
			}
			casts, err := Casts(r.o.Backend, e.Name)
			// Last first: an interrupted removal leaves the list without
			// gaps, for the next one to find.
			for _, c := range slices.Backward(casts) {
				if err == nil {
					err = r.o.Backend.Remove(c)
				}
			}
			if err != nil {
				// Kept in the index, to be tried again at the next run;
				// the others go on.
				r.o.Log.Warn("terminal recordings not removed", "name", e.Name, "err", err)
				total -= e.Bytes
				continue
			}
			if err := r.o.Index.Delete(ctx, e.ID); err != nil {
				return err
			}
			total -= e.Bytes
			removed++
		}
		if removed < len(oldest) {
			return nil
		}
	}
}
