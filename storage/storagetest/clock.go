package storagetest

import (
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/keys"
	"github.com/portcullis-auth/portcullis/oauth"
	"github.com/portcullis-auth/portcullis/storage"
)

// OpenClocked returns a fresh, migrated store, closed when t ends, whose
// clock is now and which treats a refresh token presented again within
// grace of its rotation as a concurrent duplicate, not as reuse
// (storage.Options.Now and RefreshReuseGrace).
type OpenClocked func(t *testing.T, now func() time.Time, grace time.Duration) Store

// OpenClockedDSN returns an OpenClocked of *storage.Store on fresh
// databases from dsn (SQLiteDSN, MySQLDSN).
func OpenClockedDSN(dsn func(testing.TB) string) OpenClocked {
	return func(t *testing.T, now func() time.Time, grace time.Duration) Store {
		return OpenDSN(t, dsn(t), storage.Options{Now: now, RefreshReuseGrace: grace})
	}
}

// RunClock checks that a store opened with a clock reads that clock, not
// the wall clock, wherever it writes or compares a timestamp: default
// created and updated times, and a rotated refresh token's age against the
// reuse grace.
func RunClock(t *testing.T, openS OpenClocked) {
	// A clock far from the wall clock, so that either one being used
	// where the other should shows.
	open := func(t *testing.T, grace time.Duration) (Store, *testkit.Clock) {
		c := testkit.NewClock(time.Date(2031, 7, 1, 9, 30, 0, 123456000, time.UTC))
		return openS(t, c.Now, grace), c
	}
	t.Run("DefaultTimestamps", func(t *testing.T) {
		s, c := open(t, 0)
		ctx := ctxTimeout(t)
		now := c.Now()
		u := newUser("clocked")
		u.CreatedAt, u.UpdatedAt = time.Time{}, time.Time{}
		wantErr(t, "create user", s.CreateUser(ctx, u), nil)
		got, err := s.GetUser(ctx, u.ID)
		wantErr(t, "get user", err, nil)
		if !got.CreatedAt.Equal(now) || !got.UpdatedAt.Equal(now) {
			t.Errorf("user created %v, updated %v; want the store's clock, %v", got.CreatedAt, got.UpdatedAt, now)
		}
		cl := newClient("clocked")
		cl.CreatedAt, cl.UpdatedAt = time.Time{}, time.Time{}
		wantErr(t, "create client", s.CreateClient(ctx, cl), nil)
		fc, err := s.GetClient(ctx, cl.ID)
		wantErr(t, "get client", err, nil)
		if gotc := fc.(*oauth.Client); !gotc.CreatedAt.Equal(now) || !gotc.UpdatedAt.Equal(now) {
			t.Errorf("client created %v, updated %v; want the store's clock, %v", gotc.CreatedAt, gotc.UpdatedAt, now)
		}
		wantErr(t, "create key", s.CreateKey(ctx, keys.Record{
			ID: "k-clocked", Algorithm: keys.ES256, Generation: 1, PublicJWK: []byte("{}"),
			Sealed: []byte{1}, WrapKeyID: "wrap-1", ActivatesAt: now,
		}, now), nil)
		recs, err := s.ListKeys(ctx)
		wantErr(t, "list keys", err, nil)
		if len(recs) != 1 || !recs[0].CreatedAt.Equal(now) {
			t.Errorf("keys %+v; want one created at the store's clock, %v", recs, now)
		}
	})
	t.Run("ReuseGrace", func(t *testing.T) {
		s, c := open(t, time.Minute)
		ctx := ctxTimeout(t)
		cl := newClient("app")
		wantErr(t, "create client", s.CreateClient(ctx, cl), nil)
		req := newRequest(cl, "user-1")
		wantErr(t, "create rt-1", s.CreateRefreshTokenSession(ctx, "rt-1", "", req), nil)
		rotate := func(old, next string) {
			t.Helper()
			tx, err := s.BeginTX(ctx)
			wantErr(t, "begin", err, nil)
			wantErr(t, "rotate "+old, s.RotateRefreshToken(tx, req.ID, old), nil)
			wantErr(t, "create "+next, s.CreateRefreshTokenSession(tx, next, "", req), nil)
			wantErr(t, "commit", s.Commit(tx), nil)
		}
		get := func(sig string) error {
			_, err := s.GetRefreshTokenSession(ctx, sig, newSession())
			return err
		}

		rotate("rt-1", "rt-2")
		c.Advance(59 * time.Second)
		wantErr(t, "rt-1 59s after its rotation, successor unused: a duplicate", get("rt-1"), nil)
		c.Advance(time.Second)
		wantErr(t, "rt-1 60s after its rotation: a replay", get("rt-1"), fosite.ErrInactiveToken)

		rotate("rt-2", "rt-3")
		c.Advance(time.Second)
		rotate("rt-3", "rt-4")
		wantErr(t, "rt-2, rotated 1s ago, successor used: a replay", get("rt-2"), fosite.ErrInactiveToken)
		wantErr(t, "rt-3, rotated now, successor unused: a duplicate", get("rt-3"), nil)
	})
}
