package identity_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-auth/portcullis/identity"
)

// lockState is s.LockStates for one user.
func lockState(t *testing.T, s *identity.Service, u *identity.User) identity.LockState {
	t.Helper()
	st, err := s.LockStates(t.Context(), []*identity.User{u})
	if err != nil {
		t.Fatal(err)
	}
	return st[u.ID]
}

// TestLockStates: what an administrator is shown of the lockout (users
// list/get, the admin API) follows the policy's two holds: a network
// locked out for Duration after MaxFailures failures from it, the
// account-wide delay after MaxFailures failures in all; a trust marker
// left by a successful login is neither, and an unlock clears both.
func TestLockStates(t *testing.T) {
	p := testPolicy
	p.TrustedNetworkTTL = 24 * time.Hour
	s, _, clk := newService(t, p)
	alice, bob := signup(t, s, "alice"), signup(t, s, "bob")
	const attacker, home = "198.51.100.7", "203.0.113.9"

	if st := lockState(t, s, alice); st != (identity.LockState{}) {
		t.Fatalf("fresh account: %+v", st)
	}
	got, _ := attempt(t, s, "alice", goodPassword, home)
	want(t, "owner at home", got, "ok")
	if st := lockState(t, s, alice); st != (identity.LockState{}) {
		t.Fatalf("after a successful login (a trust marker): %+v, want not locked", st)
	}
	clk.Advance(p.Window) // the login's attempt is forgotten, the trust stays
	for range p.MaxFailures {
		got, _ := attempt(t, s, "alice", "wrong guess 1234", attacker)
		want(t, "guess", got, "invalid")
	}
	last := clk.Now().UTC().Truncate(time.Microsecond)
	wantState := identity.LockState{Locked: true, Until: last.Add(p.Duration), DelayedUntil: last.Add(p.Delay), LockedNetworks: 1}
	if diff := cmp.Diff(wantState, lockState(t, s, alice)); diff != "" {
		t.Fatalf("after MaxFailures guesses (-want +got):\n%s", diff)
	}
	if st := lockState(t, s, bob); st != (identity.LockState{}) {
		t.Fatalf("another account: %+v", st)
	}
	// The states of several users in one call.
	all, err := s.LockStates(t.Context(), []*identity.User{alice, bob})
	if err != nil || len(all) != 2 || all[alice.ID] != wantState || all[bob.ID] != (identity.LockState{}) {
		t.Fatalf("LockStates(alice, bob) = %+v, %v", all, err)
	}
	// Held back attempts extend nothing.
	got, _ = attempt(t, s, "alice", goodPassword, attacker)
	want(t, "right password from the locked network", got, "throttled")
	if diff := cmp.Diff(wantState, lockState(t, s, alice)); diff != "" {
		t.Fatalf("after a throttled attempt (-want +got):\n%s", diff)
	}
	clk.Advance(p.Delay)
	wantState.DelayedUntil = time.Time{}
	if diff := cmp.Diff(wantState, lockState(t, s, alice)); diff != "" {
		t.Fatalf("after the account-wide delay (-want +got):\n%s", diff)
	}
	clk.Advance(p.Duration)
	if st := lockState(t, s, alice); st != (identity.LockState{}) {
		t.Fatalf("after Duration: %+v, want not locked", st)
	}

	for range p.MaxFailures {
		attempt(t, s, "alice", "wrong guess 1234", "198.51.100.8")
	}
	if st := lockState(t, s, alice); !st.Locked {
		t.Fatalf("locked again: %+v", st)
	}
	if _, err := s.Update(t.Context(), alice.ID, identity.Change{Unlock: true}); err != nil {
		t.Fatal(err)
	}
	if st := lockState(t, s, alice); st != (identity.LockState{}) {
		t.Fatalf("after unlock: %+v", st)
	}
}

// TestLockStatesOneFailure: with lockout.max_failures 1 a network's
// counter and a trust marker both count 1; the marker of the owner's
// login is not shown as a locked network.
func TestLockStatesOneFailure(t *testing.T) {
	p := identity.LockoutPolicy{MaxFailures: 1, Window: 15 * time.Minute, Duration: 15 * time.Minute, TrustedNetworkTTL: 24 * time.Hour}
	s, _, _ := newService(t, p)
	alice := signup(t, s, "alice")
	got, _ := attempt(t, s, "alice", goodPassword, "203.0.113.9")
	want(t, "owner", got, "ok")
	if st := lockState(t, s, alice); st.LockedNetworks != 0 || st.Locked {
		t.Fatalf("after the owner's login: %+v, want no locked network", st)
	}
	got, _ = attempt(t, s, "alice", "wrong guess 1234", "198.51.100.7")
	want(t, "guess", got, "invalid")
	if st := lockState(t, s, alice); st.LockedNetworks != 1 || !st.Locked {
		t.Fatalf("after one guess: %+v, want one locked network", st)
	}
}

// TestLockStatesWithoutThrottling: no policy, no state (and no query).
func TestLockStatesWithoutThrottling(t *testing.T) {
	s, _, _ := newService(t, identity.LockoutPolicy{})
	alice := signup(t, s, "alice")
	attempt(t, s, "alice", "wrong guess 1234", "198.51.100.7")
	if st := lockState(t, s, alice); st != (identity.LockState{}) {
		t.Fatalf("without throttling: %+v", st)
	}
}
