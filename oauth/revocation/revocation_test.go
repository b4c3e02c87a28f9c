package revocation_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/oauth/revocation"
)

// table is a Source whose rows become visible when "committed", in any
// order, as auto-increment rows of concurrent transactions do.
type table struct {
	mu      sync.Mutex
	rows    []revocation.Entry // committed
	nextID  int64
	down    bool
	queries int
}

// reserve allocates an ID, as an INSERT does before its commit.
func (tb *table) reserve(grant string, exp time.Time) revocation.Entry {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.nextID++
	return revocation.Entry{ID: tb.nextID, GrantID: grant, ExpiresAt: exp}
}

func (tb *table) commit(e revocation.Entry) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.rows = append(tb.rows, e)
	slices.SortFunc(tb.rows, func(a, b revocation.Entry) int { return int(a.ID - b.ID) })
}

func (tb *table) RevocationsAfter(_ context.Context, after int64, limit int) ([]revocation.Entry, error) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.queries++
	if tb.down {
		return nil, fmt.Errorf("query: %w", apperr.ErrUnavailable)
	}
	var out []revocation.Entry
	for _, e := range tb.rows {
		if e.ID > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func revoked(t *testing.T, l *revocation.List, grant string) bool {
	t.Helper()
	ok, err := l.Revoked(t.Context(), grant)
	if err != nil {
		t.Fatalf("Revoked(%s): %v", grant, err)
	}
	return ok
}

// TestLateCommitIsSeen: a revocation whose transaction commits after a
// later one (a lower ID appearing after a higher one was read) is still
// picked up.
func TestLateCommitIsSeen(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	tb := &table{}
	l := revocation.New(tb, revocation.Options{Now: clock.Now})
	exp := clock.Now().Add(time.Hour)
	slow, fast := tb.reserve("slow", exp), tb.reserve("fast", exp)
	tb.commit(fast)
	if err := l.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !revoked(t, l, "fast") || revoked(t, l, "slow") {
		t.Fatal("after the first sync: want fast revoked, slow not yet")
	}
	tb.commit(slow)
	clock.Advance(time.Second)
	if err := l.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !revoked(t, l, "slow") {
		t.Fatal("a revocation committed after a later one was never seen")
	}
	// Many rows (more than one page) arrive in one sync.
	for i := range 2500 {
		tb.commit(tb.reserve(fmt.Sprintf("bulk-%d", i), exp))
	}
	if err := l.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !revoked(t, l, "bulk-0") || !revoked(t, l, "bulk-2499") || l.Len() != 2502 {
		t.Fatalf("after a bulk of 2500: %d grants", l.Len())
	}
}

// TestGapsGiveUp: an ID that never appears (a rolled back insert) is
// looked for only until GapTimeout, so polling goes back to reading only
// new rows.
func TestGapsGiveUp(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	tb := &table{}
	l := revocation.New(tb, revocation.Options{Now: clock.Now, GapTimeout: 10 * time.Second})
	exp := clock.Now().Add(time.Hour)
	tb.reserve("rolled-back", exp)
	tb.commit(tb.reserve("a", exp))
	if err := l.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(11 * time.Second)
	if err := l.Sync(t.Context()); err != nil { // the gap expires here
		t.Fatal(err)
	}
	// A row with the rolled-back ID can no longer matter; a new one can.
	tb.commit(tb.reserve("b", exp))
	if err := l.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !revoked(t, l, "a") || !revoked(t, l, "b") {
		t.Fatal("lost a revocation")
	}
}

// TestExpiredRevocationsAreDropped: a revocation is kept until its expiry
// (every access token of the grant has expired), then forgotten.
func TestExpiredRevocationsAreDropped(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	tb := &table{}
	l := revocation.New(tb, revocation.Options{Now: clock.Now})
	tb.commit(tb.reserve("short", clock.Now().Add(time.Minute)))
	tb.commit(tb.reserve("long", clock.Now().Add(time.Hour)))
	tb.commit(tb.reserve("dead", clock.Now().Add(-time.Minute)))
	if err := l.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !revoked(t, l, "short") || !revoked(t, l, "long") || revoked(t, l, "dead") {
		t.Fatal("want short and long revoked; an already expired row is not kept")
	}
	clock.Advance(2 * time.Minute)
	if err := l.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if l.Len() != 1 || !revoked(t, l, "long") {
		t.Fatalf("after short's expiry: %d grants", l.Len())
	}
}

// TestStaleListFailsClosed: when polling has failed for longer than
// MaxStale, Revoked reads the source itself, and when that fails too it
// reports the database as unavailable instead of answering from an old
// list.
func TestStaleListFailsClosed(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	tb := &table{}
	l := revocation.New(tb, revocation.Options{Now: clock.Now, Interval: time.Second, MaxStale: 3 * time.Second})
	if err := l.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	tb.commit(tb.reserve("g", clock.Now().Add(time.Hour)))
	before := tb.queries
	if revoked(t, l, "g") || tb.queries != before {
		t.Fatal("a fresh list answers from memory, without a query")
	}
	clock.Advance(4 * time.Second)
	if !revoked(t, l, "g") {
		t.Fatal("a stale list did not read the source before answering")
	}
	tb.down = true
	clock.Advance(4 * time.Second)
	if _, err := l.Revoked(t.Context(), "other"); !errors.Is(err, apperr.ErrUnavailable) {
		t.Fatalf("stale list, source down: err %v, want apperr.ErrUnavailable", err)
	}
	tb.down = false
	if revoked(t, l, "other") || !revoked(t, l, "g") {
		t.Fatal("after the source came back")
	}
}

// TestConcurrentUse exercises Revoked, Sync and Run together under -race.
func TestConcurrentUse(t *testing.T) {
	tb := &table{}
	l := revocation.New(tb, revocation.Options{Interval: time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { l.Run(ctx) })
	exp := time.Now().Add(time.Hour)
	for i := range 4 {
		wg.Go(func() {
			for j := range 200 {
				g := fmt.Sprintf("g-%d-%d", i, j)
				tb.commit(tb.reserve(g, exp))
				if err := l.Sync(ctx); err != nil {
					t.Error(err)
					return
				}
				if ok, err := l.Revoked(ctx, g); err != nil || !ok {
					t.Errorf("%s: revoked %v, %v right after Sync", g, ok, err)
					return
				}
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	wg.Wait()
}
