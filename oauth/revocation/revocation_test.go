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
				// t.Context, not ctx: cancelling ctx stops Run, and a
				// check whose own context ended fails (as it should).
				if err := l.Sync(t.Context()); err != nil {
					t.Error(err)
					return
				}
				if ok, err := l.Revoked(t.Context(), g); err != nil || !ok {
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

// hungSource is a Source whose queries hang until released, as a
// database that stops answering (not one that refuses connections), and
// then fail.
type hungSource struct {
	mu      sync.Mutex
	queries int
	entered chan struct{} // receives once per query
	release chan struct{} // closed: every query fails at once
}

func (s *hungSource) RevocationsAfter(ctx context.Context, _ int64, _ int) ([]revocation.Entry, error) {
	s.mu.Lock()
	s.queries++
	s.mu.Unlock()
	s.entered <- struct{}{}
	select {
	case <-s.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("query: %w", apperr.ErrUnavailable)
}

// TestStaleChecksShareOneSync: when the list is stale and the database
// hangs, the introspections that arrive meanwhile wait for the one read in
// flight and fail with it, each as soon as it fails or its own context
// ends. (Found by red-teaming issue 9: each waited for the sync lock and
// then ran its own read, so the k-th concurrent introspection answered 503
// only after k query timeouts — measured in-process on MariaDB with the
// revocation table locked, query_timeout 500ms: ten concurrent
// introspections answered after 0.5, 1.1, 1.6, … 5.2 s — and one whose
// client had gone waited all the same.)
func TestStaleChecksShareOneSync(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	src := &hungSource{entered: make(chan struct{}, 100), release: make(chan struct{})}
	close(src.release)
	l := revocation.New(src, revocation.Options{Now: clock.Now, Interval: time.Second, MaxStale: 3 * time.Second})
	_ = l.Sync(t.Context()) // fails: the list is not loaded
	<-src.entered
	src.mu.Lock()
	src.queries = 0
	src.release = make(chan struct{})
	src.mu.Unlock()

	first := make(chan error, 1)
	go func() { _, err := l.Revoked(context.Background(), "g"); first <- err }()
	<-src.entered // its read hangs

	gone, cancel := context.WithCancel(context.Background())
	cancel()
	left := make(chan error, 1)
	go func() { _, err := l.Revoked(gone, "g"); left <- err }()
	select {
	case err := <-left:
		if err == nil {
			t.Fatal("a stale check answered without reading the revocations")
		}
	case <-time.After(10 * time.Second): // a watchdog, not a measurement
		t.Fatal("a check whose context had ended kept waiting for another caller's hung read")
	}

	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() { _, err := l.Revoked(context.Background(), "g"); errs <- err }()
	}
	time.Sleep(100 * time.Millisecond) // let them reach the read in flight
	close(src.release)
	for range n + 1 {
		var err error
		select {
		case err = <-errs:
		case err = <-first:
		}
		if !errors.Is(err, apperr.ErrUnavailable) {
			t.Fatalf("a stale check with the database down: err %v, want apperr.ErrUnavailable", err)
		}
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	// One read shared by all; a check arriving after it failed may start
	// another, but not one each.
	if src.queries > n/2 {
		t.Fatalf("%d concurrent stale checks made %d reads of a hung database, want them to share the one in flight", n+1, src.queries)
	}
}

// TestLateCommitAfterABurstIsSeen: a revocation whose transaction is still
// open while more than 4096 later ones commit between two polls (one
// client revoking its cheap client_credentials tokens in a loop, on a
// larger cluster) must still be picked up when it commits. (Found by
// red-teaming issue 9, failing: Sync tracks at most maxNewGaps = 4096
// missing IDs below the new maximum, taking a larger jump for IDs an
// engine reserved and never used, so the open transaction's lower ID is
// never read again: the grant — a password change's, say — stays active
// on that replica until it restarts.)
func TestLateCommitAfterABurstIsSeen(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	tb := &table{}
	l := revocation.New(tb, revocation.Options{Now: clock.Now})
	if err := l.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	exp := clock.Now().Add(time.Hour)
	slow := tb.reserve("password-change", exp)
	for i := range 5000 {
		tb.commit(tb.reserve(fmt.Sprintf("burst-%d", i), exp))
	}
	if err := l.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	tb.commit(slow)
	clock.Advance(time.Second)
	if err := l.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !revoked(t, l, "password-change") {
		t.Fatal("a revocation committed after a burst of 5000 later ones was never seen")
	}
}
