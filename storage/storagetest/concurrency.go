package storagetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/apperr"
)

// RunConcurrency runs the race conformance tests: concurrent refresh-token
// rotation (exactly one winner), concurrent user creation with duplicate
// names (exactly one ErrAlreadyExists per duplicate), concurrent key
// rotation, one DPoP proof added concurrently (exactly one new), and one
// TOTP step or recovery code used concurrently (exactly one succeeds).
func RunConcurrency[S Store](t *testing.T, openS func(*testing.T) S) {
	open := opener(openS)
	t.Run("RefreshRotationRace", func(t *testing.T) { testRotationRace(t, open) })
	t.Run("IndependentRotations", func(t *testing.T) { testIndependentRotations(t, open) })
	t.Run("CreateUserRace", func(t *testing.T) { testCreateUserRace(t, open) })
	t.Run("KeyRotationRace", func(t *testing.T) { testKeyRotationRace(t, open) })
	t.Run("DPoPProofRace", func(t *testing.T) { testDPoPProofRace(t, open) })
	t.Run("TOTPStepRace", func(t *testing.T) { testTOTPStepRace(t, open) })
	t.Run("RecoveryCodeRace", func(t *testing.T) { testRecoveryCodeRace(t, open) })
}

// testKeyRotationRace has 10 replicas insert the next key generation at
// once: exactly one wins, the others get ErrAlreadyExists.
func testKeyRotationRace(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxTimeout(t)
	wantErr(t, "create k1", s.CreateKey(ctx, newKey("k1", 1), t0), nil)
	const n = 10
	var (
		wg              sync.WaitGroup
		mu              sync.Mutex
		wins, conflicts int
		unexpected      []error
	)
	for i := range n {
		wg.Go(func() {
			err := s.CreateKey(ctx, newKey(fmt.Sprintf("k2-%d", i), 2), t0.Add(time.Hour))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, apperr.ErrAlreadyExists):
				conflicts++
			default:
				unexpected = append(unexpected, err)
			}
		})
	}
	wg.Wait()
	if len(unexpected) > 0 || wins != 1 || conflicts != n-1 {
		t.Fatalf("wins %d, conflicts %d, unexpected %v; want 1, %d, none", wins, conflicts, unexpected, n-1)
	}
	recs, err := s.ListKeys(ctx)
	wantErr(t, "list", err, nil)
	if len(recs) != 2 || !recs[0].RetiredAt.Equal(t0.Add(time.Hour)) || !recs[1].RetiredAt.IsZero() {
		t.Fatalf("keys after race: %+v", recs)
	}
}

// testIndependentRotations refreshes 8 unrelated token families 10 times
// each, all at once: none may fail, in particular not with a deadlock
// between families.
func testIndependentRotations(t *testing.T, open Open) {
	s, ctx, c := tokenFixture(t, open)
	const families, rounds = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, families)
	for f := range families {
		wg.Go(func() {
			req := newRequest(c, fmt.Sprintf("user-%d", f))
			sig := fmt.Sprintf("f%d-rt-0", f)
			if err := s.CreateRefreshTokenSession(ctx, sig, "", req); err != nil {
				errs <- err
				return
			}
			for r := 1; r <= rounds; r++ {
				at, rt := fmt.Sprintf("f%d-at-%d", f, r), fmt.Sprintf("f%d-rt-%d", f, r)
				if _, err := s.GetRefreshTokenSession(ctx, sig, newSession()); err != nil {
					errs <- fmt.Errorf("family %d round %d: get: %w", f, r, err)
					return
				}
				tx, err := s.BeginTX(ctx)
				if err == nil {
					err = s.RotateRefreshToken(tx, req.ID, sig)
				}
				if err == nil {
					err = s.CreateRefreshTokenSession(tx, rt, at, req)
				}
				if err == nil {
					err = s.Commit(tx)
				} else if tx != nil {
					_ = s.Rollback(tx)
				}
				if err != nil {
					errs <- fmt.Errorf("family %d round %d: %w", f, r, err)
					return
				}
				sig = rt
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// testRotationRace mimics fosite's refresh flow from 20 requests carrying
// the same refresh token: BeginTX, RotateRefreshToken, create the new
// access and refresh tokens, Commit (Rollback on error).
func testRotationRace(t *testing.T, open Open) {
	s, ctx, c := tokenFixture(t, open)
	req := newRequest(c, "user-1")
	wantErr(t, "create rt", s.CreateRefreshTokenSession(ctx, "rt-0", "at-0", req), nil)

	const n = 20
	var (
		wg                  sync.WaitGroup
		mu                  sync.Mutex
		wins, inactive, ser int
		unexpected          []error
	)
	for i := range n {
		wg.Go(func() {
			err := func() error {
				tx, err := s.BeginTX(ctx)
				if err != nil {
					return err
				}
				if err := s.RotateRefreshToken(tx, req.ID, "rt-0"); err != nil {
					_ = s.Rollback(tx)
					return err
				}
				if err := s.CreateRefreshTokenSession(tx, fmt.Sprintf("rt-%d", i+1), fmt.Sprintf("at-%d", i+1), req); err != nil {
					_ = s.Rollback(tx)
					return err
				}
				return s.Commit(tx)
			}()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, fosite.ErrInactiveToken):
				inactive++
			case errors.Is(err, fosite.ErrSerializationFailure):
				ser++ // a retryable conflict is an acceptable loss
			default:
				unexpected = append(unexpected, err)
			}
		})
	}
	wg.Wait()
	if len(unexpected) > 0 {
		t.Fatalf("unexpected errors: %v", unexpected)
	}
	if wins != 1 || inactive+ser != n-1 {
		t.Fatalf("%d rotations succeeded (%d inactive, %d serialization failures); want exactly 1", wins, inactive, ser)
	}
	active := 0
	for i := 1; i <= n; i++ {
		_, err := s.GetRefreshTokenSession(ctx, fmt.Sprintf("rt-%d", i), newSession())
		switch {
		case err == nil:
			active++
		case !errors.Is(err, fosite.ErrNotFound):
			t.Fatalf("get rt-%d: %v", i, err)
		}
	}
	if active != 1 {
		t.Fatalf("%d new refresh tokens were stored, want 1", active)
	}
}

// testCreateUserRace creates 50 users concurrently, 10 of them duplicates
// (in another case) of earlier names.
func testCreateUserRace(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxTimeout(t)
	const distinct, dups = 40, 10
	var names []string
	for i := range distinct {
		names = append(names, fmt.Sprintf("user%02d", i))
	}
	for i := range dups {
		names = append(names, strings.ToUpper(names[i]))
	}
	var (
		wg         sync.WaitGroup
		mu         sync.Mutex
		created    int
		duplicates int
		unexpected []error
	)
	for _, name := range names {
		wg.Go(func() {
			err := s.CreateUser(ctx, newUser(name))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
			case errors.Is(err, apperr.ErrAlreadyExists):
				duplicates++
			default:
				unexpected = append(unexpected, err)
			}
		})
	}
	wg.Wait()
	if len(unexpected) > 0 {
		t.Fatalf("unexpected errors: %v", unexpected)
	}
	if created != distinct || duplicates != dups {
		t.Fatalf("created %d, duplicates %d; want %d and %d", created, duplicates, distinct, dups)
	}
	users, err := s.ListUsers(ctx)
	wantErr(t, "list", err, nil)
	seen := map[string]bool{}
	for _, u := range users {
		key := identity.NormalizeUsername(u.Username)
		if seen[key] {
			t.Fatalf("username %q stored twice", key)
		}
		seen[key] = true
	}
	if len(users) != distinct {
		t.Fatalf("%d users stored, want %d", len(users), distinct)
	}
}
