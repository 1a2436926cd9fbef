package postgres

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/sync/semaphore"
)

// A statement's parse tree takes hundreds of times its text in memory
// (a 1 MiB list of expressions: about 550 MiB, and seconds of CPU), so
// what is parsed at once is bounded agent-wide, not only each statement:
// a workload sending long statements on many connections would otherwise
// have the agent killed for its memory, and every protected connection of
// the node with it. Long statements are parsed one at a time in a lane of
// their own, so a workload sending them delays only the long statements
// of others; shorter ones share a budget of text.
const (
	// longStatement is where a statement starts to be long: beyond it, it
	// is not cached either (classifierEntryBytes).
	longStatement = classifierEntryBytes
	// shortBudget is the text of shorter statements parsed at once, each
	// counted as at least shortWeight.
	shortBudget = 1 << 20
	shortWeight = 1 << 10
)

// parseGate admits parses: one long statement at a time, and shorter ones
// up to shortBudget of text. Its zero value is ready for use.
type parseGate struct {
	once        sync.Once
	long, short *semaphore.Weighted
}

// enter waits for a parse of n bytes to be admitted, or for ctx to end,
// and returns what lets the next in.
func (g *parseGate) enter(ctx context.Context, n int) (release func(), err error) {
	g.once.Do(func() {
		g.long, g.short = semaphore.NewWeighted(1), semaphore.NewWeighted(shortBudget)
	})
	lane, w := g.short, int64(max(n, shortWeight))
	if n > longStatement {
		lane, w = g.long, 1
	}
	if !lane.TryAcquire(w) {
		if err := lane.Acquire(ctx, w); err != nil {
			return nil, fmt.Errorf("the session ended while its statement waited to be parsed: %w", err)
		}
	}
	return func() { lane.Release(w) }, nil
}
