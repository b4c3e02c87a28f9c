package storagetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/apperr"
)

// testThrottles checks the guessing counters: a missing counter loads as
// zero, updates land atomically (20 concurrent increments of two counters
// all count, on every backend), an update error writes nothing, zero
// counters disappear, ClearThrottles clears one account only, and stale
// counters are deleted.
func testThrottles(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxTimeout(t)
	const acct, net, other = "acct-a", "net-a", "acct-b"
	incr := func(account string, keys ...string) error {
		return s.UpdateThrottles(ctx, account, keys, func(ts []*identity.Throttle) error {
			for i, th := range ts {
				if th.Key != keys[i] {
					t.Errorf("throttle %d has key %q, want %q", i, th.Key, keys[i])
				}
				th.Failures++
				th.LastAt, th.Expires = t0, t0.Add(time.Hour)
			}
			return nil
		})
	}
	read := func(account string, keys ...string) []identity.Throttle {
		var out []identity.Throttle
		wantErr(t, "read", s.UpdateThrottles(ctx, account, keys, func(ts []*identity.Throttle) error {
			for _, th := range ts {
				out = append(out, *th)
			}
			return nil
		}), nil)
		return out
	}

	same(t, "fresh counters", read(acct, acct, net), []identity.Throttle{{Key: acct}, {Key: net}})
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() { errs <- incr(acct, net, acct) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		wantErr(t, "concurrent update", err, nil)
	}
	counted := func(key string, failures int) identity.Throttle {
		return identity.Throttle{Key: key, Failures: failures, LastAt: t0, Expires: t0.Add(time.Hour)}
	}
	same(t, "counters after 20 concurrent increments", read(acct, acct, net), []identity.Throttle{counted(acct, n), counted(net, n)})

	boom := errors.New("boom")
	err := s.UpdateThrottles(ctx, acct, []string{acct}, func(ts []*identity.Throttle) error {
		ts[0].Failures = 99
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("update error = %v, want %v", err, boom)
	}
	same(t, "counter after a failed update", read(acct, acct), []identity.Throttle{counted(acct, n)})

	wantErr(t, "other account", incr(other, other), nil)
	// AccountThrottles: every counter of each account asked about, none of
	// another account's, nothing for an account without counters.
	byAccount, err := s.AccountThrottles(ctx, []string{acct, "acct-none"})
	wantErr(t, "AccountThrottles", err, nil)
	if len(byAccount) != 1 {
		t.Fatalf("AccountThrottles = %v, want the counters of %s only", byAccount, acct)
	}
	same(t, "AccountThrottles", byAccount[acct], []identity.Throttle{counted(acct, n), counted(net, n)})
	wantErr(t, "clear", s.ClearThrottles(ctx, acct), nil)
	same(t, "counters after clear", read(acct, acct, net), []identity.Throttle{{Key: acct}, {Key: net}})
	same(t, "another account's counter after clear", read(other, other), []identity.Throttle{counted(other, 1)})

	wantErr(t, "zero", s.UpdateThrottles(ctx, other, []string{other}, func(ts []*identity.Throttle) error {
		ts[0].Failures = 0
		return nil
	}), nil)
	n0, err := s.DeleteStaleThrottles(ctx, t0.Add(2*time.Hour))
	wantErr(t, "delete stale", err, nil)
	if n0 != 0 {
		t.Fatalf("a zeroed counter was kept (%d deleted later)", n0)
	}
	wantErr(t, "again", incr(other, other), nil)
	if n1, err := s.DeleteStaleThrottles(ctx, t0.Add(time.Hour)); err != nil || n1 != 0 {
		t.Fatalf("DeleteStaleThrottles(expiry) = %d, %v; want 0 (it expires at, not before, that time)", n1, err)
	}
	if n2, err := s.DeleteStaleThrottles(ctx, t0.Add(time.Hour+time.Second)); err != nil || n2 != 1 {
		t.Fatalf("DeleteStaleThrottles(expiry+1s) = %d, %v; want 1", n2, err)
	}
}

// testUsernameExact checks that a lookup by username compares the
// normalized form exactly on every backend: no trailing-space padding
// (MySQL PAD SPACE collations), no Unicode case folding.
func testUsernameExact(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxTimeout(t)
	wantErr(t, "create", s.CreateUser(ctx, newUser("alice")), nil)
	if _, err := s.GetUserByUsername(ctx, "ALICE"); err != nil {
		t.Fatalf("ASCII case-insensitive lookup: %v", err)
	}
	for _, name := range []string{"alice ", "alice  ", "ALİCE", "alice\x00", " alice"} {
		if u, err := s.GetUserByUsername(ctx, name); !errors.Is(err, apperr.ErrNotFound) {
			t.Errorf("GetUserByUsername(%q) = %v, %v; want not found", name, u, err)
		}
	}
	u := newUser("bob")
	wantErr(t, "create bob", s.CreateUser(ctx, u), nil)
	if got, err := s.GetUser(ctx, u.ID+" "); !errors.Is(err, apperr.ErrNotFound) {
		t.Errorf("GetUser(id+space) = %v, %v; want not found", got, err)
	}
	c := newClient("padded")
	wantErr(t, "create client", s.CreateClient(ctx, c), nil)
	if got, err := s.FindClient(ctx, c.ID+"  "); !errors.Is(err, apperr.ErrNotFound) {
		t.Errorf("FindClient(id+spaces) = %v, %v; want not found", got, err)
	}
	if _, err := s.GetClient(ctx, c.ID+" "); err == nil {
		t.Error("fosite GetClient(id+space) found the client")
	}
}
