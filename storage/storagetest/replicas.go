package storagetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/apperr"
)

// OpenReplicas returns several stores over one fresh, migrated database,
// each as a replica would open it: on a multi-primary cluster, each
// through a different node. They are closed when t ends.
type OpenReplicas func(t *testing.T) []Store

// RunReplicas runs the cross-replica race tests: what is atomic on one
// database server must stay atomic when replicas write through different
// nodes at once (a MariaDB Galera cluster certifies transactions at
// commit, and its row locks are local to a node). Work is spread over the
// replicas round-robin.
func RunReplicas(t *testing.T, open OpenReplicas) {
	t.Run("RefreshRotationRace", func(t *testing.T) { testReplicaRotationRace(t, open) })
	t.Run("CreateUserRace", func(t *testing.T) { testReplicaCreateUserRace(t, open) })
	t.Run("KeyRotationRace", func(t *testing.T) { testReplicaKeyRotationRace(t, open) })
	t.Run("ThrottleIncrements", func(t *testing.T) { testReplicaThrottles(t, open) })
	t.Run("UpdateUserSerialized", func(t *testing.T) { testReplicaUpdateUser(t, open) })
	t.Run("LoginDuringPasswordChange", func(t *testing.T) { testReplicaLoginDuringPasswordChange(t, open) })
	t.Run("Revocations", func(t *testing.T) { testReplicaRevocations(t, open) })
	t.Run("DPoPProofRace", func(t *testing.T) { testReplicaDPoPProofRace(t, open) })
	t.Run("TOTPStepRace", func(t *testing.T) { testReplicaTOTPStepRace(t, open) })
	t.Run("RecoveryCodeRace", func(t *testing.T) { testReplicaRecoveryCodeRace(t, open) })
}

// race runs n calls of fn at once, call i on replica i mod len(rs), and
// returns their errors by call.
func race(rs []Store, n int, fn func(i int, s Store) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i, rs[i%len(rs)])
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// testReplicaRotationRace presents one refresh token on every replica at
// once, as fosite's refresh flow does: exactly one rotation commits, the
// others fail as a used token (ErrInactiveToken) or a lost conflict
// (ErrSerializationFailure, which the token endpoint answers with
// invalid_grant), never anything else; exactly one new token is stored,
// and the grant stays intact: the winner's token is active everywhere.
func testReplicaRotationRace(t *testing.T, open OpenReplicas) {
	rs := open(t)
	ctx := ctxTimeout(t)
	c := newClient("app")
	wantErr(t, "create client", rs[0].CreateClient(ctx, c), nil)
	for round := range 5 {
		req := newRequest(c, fmt.Sprintf("user-%d", round))
		old := fmt.Sprintf("r%d-rt-0", round)
		wantErr(t, "create rt", rs[round%len(rs)].CreateRefreshTokenSession(ctx, old, "", req), nil)
		const n = 12
		errs := race(rs, n, func(i int, s Store) error {
			tx, err := s.BeginTX(ctx)
			if err != nil {
				return err
			}
			if _, err := s.GetRefreshTokenSession(tx, old, newSession()); err != nil {
				_ = s.Rollback(tx)
				return err
			}
			if err := s.RotateRefreshToken(tx, req.ID, old); err != nil {
				_ = s.Rollback(tx)
				return err
			}
			if err := s.CreateRefreshTokenSession(tx, fmt.Sprintf("r%d-rt-%d", round, i+1), "", req); err != nil {
				_ = s.Rollback(tx)
				return err
			}
			return s.Commit(tx)
		})
		wins, winner := 0, -1
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
				winner = i
			case errors.Is(err, fosite.ErrInactiveToken), errors.Is(err, fosite.ErrSerializationFailure):
			default:
				t.Fatalf("round %d: rotation %d: unexpected error %v", round, i, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d rotations committed, want exactly 1", round, wins)
		}
		for ri, s := range rs {
			active := 0
			for i := 1; i <= n; i++ {
				_, err := s.GetRefreshTokenSession(ctx, fmt.Sprintf("r%d-rt-%d", round, i), newSession())
				switch {
				case err == nil:
					active++
					if i != winner+1 {
						t.Fatalf("round %d: replica %d: token %d is active, but rotation %d won", round, ri, i, winner)
					}
				case !errors.Is(err, fosite.ErrNotFound):
					t.Fatalf("round %d: replica %d: get token %d: %v", round, ri, i, err)
				}
			}
			if active != 1 {
				t.Fatalf("round %d: replica %d sees %d new refresh tokens, want 1", round, ri, active)
			}
		}
	}
}

// testReplicaCreateUserRace signs one username (in different cases) up
// on every replica at once: exactly one succeeds, the others get
// ErrAlreadyExists.
func testReplicaCreateUserRace(t *testing.T, open OpenReplicas) {
	rs := open(t)
	ctx := ctxTimeout(t)
	for round := range 5 {
		name := fmt.Sprintf("racer%d", round)
		const n = 9
		errs := race(rs, n, func(i int, s Store) error {
			u := newUser(name)
			if i%2 == 1 {
				u = newUser(fmt.Sprintf("RACER%d", round))
			}
			return s.CreateUser(ctx, u)
		})
		created := 0
		for i, err := range errs {
			switch {
			case err == nil:
				created++
			case errors.Is(err, apperr.ErrAlreadyExists):
			default:
				t.Fatalf("round %d: sign-up %d: unexpected error %v", round, i, err)
			}
		}
		if created != 1 {
			t.Fatalf("round %d: %d sign-ups of one name succeeded, want 1", round, created)
		}
	}
	for i, s := range rs {
		users, err := s.ListUsers(ctx)
		wantErr(t, "list", err, nil)
		if len(users) != 5 {
			t.Fatalf("replica %d lists %d users, want 5", i, len(users))
		}
	}
}

// testReplicaKeyRotationRace has every replica insert the next signing
// key generation at once: exactly one key is created.
func testReplicaKeyRotationRace(t *testing.T, open OpenReplicas) {
	rs := open(t)
	ctx := ctxTimeout(t)
	wantErr(t, "create k1", rs[0].CreateKey(ctx, newKey("k1", 1), t0), nil)
	for gen := int64(2); gen <= 4; gen++ {
		const n = 9
		errs := race(rs, n, func(i int, s Store) error {
			return s.CreateKey(ctx, newKey(fmt.Sprintf("k%d-%d", gen, i), gen), t0.Add(time.Duration(gen)*time.Hour))
		})
		wins := 0
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
			case errors.Is(err, apperr.ErrAlreadyExists):
			default:
				t.Fatalf("generation %d: replica call %d: unexpected error %v", gen, i, err)
			}
		}
		if wins != 1 {
			t.Fatalf("generation %d: %d keys created, want 1", gen, wins)
		}
	}
	for i, s := range rs {
		recs, err := s.ListKeys(ctx)
		wantErr(t, "list", err, nil)
		if len(recs) != 4 {
			t.Fatalf("replica %d lists %d keys, want 4: %+v", i, len(recs), recs)
		}
		for j, r := range recs[:3] {
			if r.RetiredAt.IsZero() {
				t.Fatalf("replica %d: key %d (%s) not retired: %+v", i, j, r.ID, recs)
			}
		}
	}
}

// testReplicaThrottles counts failed logins for one account on every
// replica at once: no increment is lost.
func testReplicaThrottles(t *testing.T, open OpenReplicas) {
	rs := open(t)
	ctx := ctxTimeout(t)
	const n = 30
	now := time.Now().UTC().Truncate(time.Second)
	errs := race(rs, n, func(i int, s Store) error {
		return s.UpdateThrottles(ctx, "acct", []string{"acct-key", fmt.Sprintf("ip-%d", i%3)}, func(ts []*identity.Throttle) error {
			for _, th := range ts {
				th.Failures++
				th.LastAt, th.Expires = now, now.Add(time.Hour)
			}
			return nil
		})
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	for ri, s := range rs {
		var got, perIP []int
		err := s.UpdateThrottles(ctx, "acct", []string{"acct-key", "ip-0", "ip-1", "ip-2"}, func(ts []*identity.Throttle) error {
			got = append(got, ts[0].Failures)
			for _, th := range ts[1:] {
				perIP = append(perIP, th.Failures)
			}
			return nil
		})
		wantErr(t, "read throttles", err, nil)
		if got[0] != n || perIP[0]+perIP[1]+perIP[2] != n {
			t.Fatalf("replica %d: account counter %d, per-address %v after %d failures; an increment was lost", ri, got[0], perIP, n)
		}
	}
}

// testReplicaUpdateUser adds a role to one user on every replica at once:
// no update is lost.
func testReplicaUpdateUser(t *testing.T, open OpenReplicas) {
	rs := open(t)
	ctx := ctxTimeout(t)
	u := newUser("locky")
	wantErr(t, "create", rs[0].CreateUser(ctx, u), nil)
	const n = 15
	errs := race(rs, n, func(i int, s Store) error {
		_, err := s.UpdateUser(ctx, u.ID, func(u *identity.User) error {
			u.Roles = append(u.Roles, fmt.Sprintf("r%02d", i))
			return nil
		})
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	for ri, s := range rs {
		got, err := s.GetUser(ctx, u.ID)
		wantErr(t, "get", err, nil)
		if len(got.Roles) != n+1 {
			t.Fatalf("replica %d: %d roles after %d concurrent additions: %v", ri, len(got.Roles), n, got.Roles)
		}
	}
}

// testReplicaLoginDuringPasswordChange runs a password grant's token
// transaction (LockUser, then the new refresh token) on one replica and,
// while it is open, a password change with the revocation of the user's
// grants (one InTx) on another. Whatever order they commit in, the
// login's refresh token must not outlive the change: either the login's
// commit fails, or the change revokes the token it wrote.
func testReplicaLoginDuringPasswordChange(t *testing.T, open OpenReplicas) {
	rs := open(t)
	if len(rs) < 2 {
		t.Skip("needs two replicas")
	}
	ctx := ctxTimeout(t)
	c := newClient("app")
	wantErr(t, "create client", rs[0].CreateClient(ctx, c), nil)
	for round := range 6 {
		login, change := rs[round%len(rs)], rs[(round+1)%len(rs)]
		u := newUser(fmt.Sprintf("victim%d", round))
		wantErr(t, "create user", login.CreateUser(ctx, u), nil)
		// Both sides see the user before racing.
		_, err := change.GetUser(ctx, u.ID)
		wantErr(t, "get user", err, nil)

		tx, err := login.BeginTX(ctx)
		wantErr(t, "begin", err, nil)
		_, err = login.LockUser(tx, u.ID)
		wantErr(t, "lock user", err, nil)
		req := newRequest(c, u.ID)
		sig := fmt.Sprintf("login-%d", round)
		wantErr(t, "create rt", login.CreateRefreshTokenSession(tx, sig, "", req), nil)

		changed := make(chan error, 1)
		go func() {
			changed <- change.InTx(ctx, func(ctx context.Context) error {
				if _, err := change.UpdateUser(ctx, u.ID, func(u *identity.User) error {
					u.PasswordHash = "$argon2id$v=19$m=65536,t=3,p=4$bmV3$bmV3"
					return nil
				}); err != nil {
					return err
				}
				return change.RevokeSubject(ctx, u.ID)
			})
		}()
		// On one server the change waits for the login's row lock; on a
		// cluster it commits on its own node meanwhile.
		var changeErr error
		finished := false
		select {
		case changeErr = <-changed:
			finished = true
		case <-time.After(500 * time.Millisecond):
		}
		commitErr := login.Commit(tx)
		if commitErr != nil {
			_ = login.Rollback(tx)
		}
		if !finished {
			select {
			case changeErr = <-changed:
			case <-time.After(30 * time.Second):
				t.Fatalf("round %d: the password change did not finish", round)
			}
		}
		t.Logf("round %d: login commit %v; change %v", round, commitErr, changeErr)
		wantErr(t, "password change", changeErr, nil)
		if commitErr != nil && !errors.Is(commitErr, fosite.ErrSerializationFailure) {
			t.Fatalf("round %d: login commit: %v", round, commitErr)
		}
		for ri, s := range rs {
			_, err := s.GetRefreshTokenSession(ctx, sig, newSession())
			if err == nil {
				t.Fatalf("round %d: replica %d: the login's refresh token is active after the password change (login commit: %v)", round, ri, commitErr)
			}
			if !errors.Is(err, fosite.ErrInactiveToken) && !errors.Is(err, fosite.ErrNotFound) {
				t.Fatalf("round %d: replica %d: get token: %v", round, ri, err)
			}
		}
	}
}

// testReplicaRevocations revokes grants on every replica at once: every
// replica then lists every revocation, each once.
func testReplicaRevocations(t *testing.T, open OpenReplicas) {
	rs := open(t)
	ctx := ctxTimeout(t)
	const n = 30
	errs := race(rs, n, func(i int, s Store) error {
		return s.RevokeAccessToken(ctx, fmt.Sprintf("grant-%02d", i))
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("revoke %d: %v", i, err)
		}
	}
	for ri, s := range rs {
		es, err := s.RevocationsAfter(ctx, 0, 1000)
		wantErr(t, "revocations", err, nil)
		seen := map[string]bool{}
		var last int64
		for _, e := range es {
			if e.ID <= last {
				t.Fatalf("replica %d: revocations out of ID order: %+v", ri, es)
			}
			last = e.ID
			if seen[e.GrantID] {
				t.Fatalf("replica %d: grant %s listed twice", ri, e.GrantID)
			}
			seen[e.GrantID] = true
		}
		if len(seen) != n {
			t.Fatalf("replica %d lists %d revoked grants, want %d", ri, len(seen), n)
		}
	}
}
