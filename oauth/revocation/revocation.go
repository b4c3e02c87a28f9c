// Package revocation keeps the server's list of revoked grants in memory,
// so that checking whether a stateless JWT access token was revoked costs
// no database round trip.
//
// Access tokens are not stored: a token is valid while its signature and
// lifetime are, unless its grant (the JWT's sid claim: the request ID
// fosite keeps across a refresh chain) was revoked. Revoking writes a row
// to the database (the Source) that lives until every access token the
// grant could have had has expired; every replica keeps the live rows in
// a List and polls the Source for new ones.
//
// Staleness: a revocation is seen at once by the replica that made it
// (its store calls List.Sync after committing), and by every other replica
// within Options.Interval plus one query (the bound documented for
// revocation_sync_interval). If polling fails for longer than
// Options.MaxStale, Revoked queries the Source itself and fails when it
// cannot: a replica cut off from the database never answers from a stale
// list.
package revocation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/portcullis-auth/portcullis/internal/apperr"
)

// Entry is one revoked grant, as stored. IDs increase in insertion order
// (an auto-increment key); a transaction that has not committed yet may
// hold a lower ID than rows already visible.
type Entry struct {
	ID        int64
	GrantID   string
	ExpiresAt time.Time
}

// Source reads stored revocations.
type Source interface {
	// RevocationsAfter returns up to limit entries with ID greater than
	// after, in ID order, expired ones included.
	RevocationsAfter(ctx context.Context, after int64, limit int) ([]Entry, error)
}

// Options tune a List. Zero values take the documented defaults.
type Options struct {
	// Interval is how often Run polls the Source (default 1s).
	Interval time.Duration
	// MaxStale is how old the last successful poll may be before Revoked
	// polls itself (default 3 × Interval).
	MaxStale time.Duration
	// GapTimeout is how long a missing ID below the highest one seen is
	// looked for again: an insert whose transaction had not committed
	// when a later one was read. After it, the ID counts as rolled back
	// (default 30s, well beyond any transaction's lifetime, which the
	// store bounds by its query timeout).
	GapTimeout time.Duration
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// pageSize bounds one query's rows.
const pageSize = 1000

// initialGapWindow is how far below the highest ID the first load still
// looks for uncommitted inserts; older missing IDs are rows already
// deleted as expired.
const initialGapWindow = 256

// maxNewGaps bounds the missing IDs one Sync starts looking for.
const maxNewGaps = 4096

// List is the in-memory list of revoked grants. It is safe for concurrent
// use.
type List struct {
	src  Source
	opts Options

	syncMu sync.Mutex // serialises Sync

	mu     sync.RWMutex
	shared *sharedSync          // the stale checks' read in flight, if any
	grants map[string]time.Time // grant ID → when its last access token expires
	maxID  int64
	gaps   map[int64]time.Time // missing IDs below maxID → when first missed
	// floors are IDs above which every row is read again, until
	// GapTimeout: a jump of more than maxNewGaps IDs in one Sync, too
	// many to track one by one (reserved but unused IDs, or a burst of
	// revocations that may hide an open transaction's lower ID).
	floors   map[int64]time.Time
	loaded   bool
	lastSync time.Time // start of the last successful Sync
}

// New returns an empty List reading src. Call Sync (or Run) before use;
// Revoked syncs first if it was not.
func New(src Source, opts Options) *List {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.MaxStale <= 0 {
		opts.MaxStale = 3 * opts.Interval
	}
	if opts.GapTimeout <= 0 {
		opts.GapTimeout = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &List{src: src, opts: opts, grants: map[string]time.Time{}, gaps: map[int64]time.Time{}, floors: map[int64]time.Time{}}
}

// Revoked reports whether the grant was revoked. It answers from memory
// unless the list is older than MaxStale; it then syncs first, and if
// that fails returns an error matching apperr.ErrUnavailable: the caller
// must not treat the token as valid.
func (l *List) Revoked(ctx context.Context, grantID string) (bool, error) {
	now := l.opts.Now()
	l.mu.RLock()
	fresh := l.loaded && now.Sub(l.lastSync) <= l.opts.MaxStale
	_, ok := l.grants[grantID]
	l.mu.RUnlock()
	if fresh {
		return ok, nil
	}
	if err := l.syncShared(ctx); err != nil {
		return false, fmt.Errorf("revocation: list is stale: %w", errors.Join(apperr.ErrUnavailable, err))
	}
	l.mu.RLock()
	_, ok = l.grants[grantID]
	l.mu.RUnlock()
	return ok, nil
}

// sharedSync is one Sync that every stale check arriving while it runs
// waits for.
type sharedSync struct {
	done chan struct{}
	err  error
}

// syncShared syncs for a stale check: it joins the stale checks' Sync in
// flight or starts one, and returns its result, or ctx's error as soon as
// ctx ends. While the database hangs, concurrent checks then fail together
// after one query timeout, not one after another. The Sync runs with ctx's
// values but not its cancellation (the Source bounds its queries), so that
// one caller leaving does not fail the others.
func (l *List) syncShared(ctx context.Context) error {
	l.mu.Lock()
	c := l.shared
	if c == nil {
		c = &sharedSync{done: make(chan struct{})}
		l.shared = c
		go func() {
			c.err = l.Sync(context.WithoutCancel(ctx))
			l.mu.Lock()
			l.shared = nil
			l.mu.Unlock()
			close(c.done)
		}()
	}
	l.mu.Unlock()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Len returns the number of revoked grants held.
func (l *List) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.grants)
}

// Sync reads the revocations the list has not seen yet, including any
// inserted earlier than those seen whose transaction has committed since.
// Concurrent calls are serialised; each reads the Source at least once
// after it was called.
func (l *List) Sync(ctx context.Context) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	start := l.opts.Now()

	l.mu.RLock()
	after := l.maxID
	for id := range l.gaps {
		if id-1 < after {
			after = id - 1
		}
	}
	for id := range l.floors {
		if id < after {
			after = id
		}
	}
	first := !l.loaded
	l.mu.RUnlock()

	var rows []Entry
	for {
		page, err := l.src.RevocationsAfter(ctx, after, pageSize)
		if err != nil {
			return err
		}
		rows = append(rows, page...)
		if len(page) < pageSize {
			break
		}
		after = page[len(page)-1].ID
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	prevMax := l.maxID
	seen := make(map[int64]bool, len(rows))
	for _, e := range rows {
		seen[e.ID] = true
		delete(l.gaps, e.ID)
		if e.ExpiresAt.After(start) {
			if cur, ok := l.grants[e.GrantID]; !ok || e.ExpiresAt.After(cur) {
				l.grants[e.GrantID] = e.ExpiresAt
			}
		}
		if e.ID > l.maxID {
			l.maxID = e.ID
		}
	}
	// IDs skipped between the previous maximum and the new one belong to
	// transactions still open (or rolled back): look again next time.
	low := prevMax
	if first && l.maxID-initialGapWindow > low {
		low = l.maxID - initialGapWindow
	}
	if l.maxID-maxNewGaps > low {
		// A jump this large is too many IDs to track one by one: reserved
		// but unused IDs (an engine that allocates in batches) or a burst
		// of revocations, which may hide an open transaction's lower ID.
		// Read everything above the old maximum again for a while.
		if !first {
			l.floors[low] = start
		}
		low = l.maxID - maxNewGaps
	}
	for id := low + 1; id < l.maxID; id++ {
		if !seen[id] {
			if _, ok := l.gaps[id]; !ok {
				l.gaps[id] = start
			}
		}
	}
	for id, since := range l.gaps {
		if start.Sub(since) > l.opts.GapTimeout {
			delete(l.gaps, id)
		}
	}
	for id, since := range l.floors {
		if start.Sub(since) > l.opts.GapTimeout {
			delete(l.floors, id)
		}
	}
	for g, exp := range l.grants {
		if !exp.After(start) {
			delete(l.grants, g)
		}
	}
	l.loaded = true
	l.lastSync = start
	return nil
}

// Run syncs every Interval until ctx is done, logging failures.
func (l *List) Run(ctx context.Context) {
	t := time.NewTicker(l.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := l.Sync(ctx); err != nil && ctx.Err() == nil && l.opts.Logger != nil {
				l.opts.Logger.Warn("revocation list sync failed", "err", err.Error())
			}
		}
	}
}
