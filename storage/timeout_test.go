package storage_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/storage"
	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

// Bounds for a hung database. The store's default query timeout is a few
// seconds; these are generous for a loaded 2-CPU machine.
const (
	hungBound  = 6 * time.Second  // a call must fail within this
	hungGiveUp = 15 * time.Second // the test stops waiting after this
)

// hungCall is one store call made while the database hangs.
type hungCall struct {
	name string
	call func(ctx context.Context) error
}

// storeCalls lists calls covering every way a method reaches the
// database: plain statements, gorm transactions (UpdateUser), fosite
// transactions (BeginTX) and the pool itself.
func storeCalls(s *storage.Store, userID string) []hungCall {
	return []hungCall{
		{"Ping", s.Ping},
		{"GetUser", func(ctx context.Context) error { _, err := s.GetUser(ctx, userID); return err }},
		{"GetUserByUsername", func(ctx context.Context) error { _, err := s.GetUserByUsername(ctx, "x"); return err }},
		{"CreateUser", func(ctx context.Context) error {
			return s.CreateUser(ctx, &identity.User{ID: "hung-" + time.Now().Format("150405.000000000"), Username: "hung" + time.Now().Format("150405000000000"), PasswordHash: "h"})
		}},
		{"UpdateUser", func(ctx context.Context) error {
			_, err := s.UpdateUser(ctx, userID, func(u *identity.User) error { u.Disabled = true; return nil })
			return err
		}},
		{"ListUsers", func(ctx context.Context) error { _, err := s.ListUsers(ctx); return err }},
		{"GetClient", func(ctx context.Context) error { _, err := s.GetClient(ctx, "x"); return err }},
		{"GetRefreshTokenSession", func(ctx context.Context) error { _, err := s.GetRefreshTokenSession(ctx, "x", nil); return err }},
		{"RevocationsAfter", func(ctx context.Context) error { _, err := s.RevocationsAfter(ctx, 0, 10); return err }},
		{"RevokeSubject", func(ctx context.Context) error { return s.RevokeSubject(ctx, userID) }},
		{"BeginTX", func(ctx context.Context) error {
			txCtx, err := s.BeginTX(ctx)
			if err != nil {
				return err
			}
			_, err = s.GetUser(txCtx, userID)
			_ = s.Rollback(txCtx)
			return err
		}},
		{"DeleteExpired", func(ctx context.Context) error { _, err := s.DeleteExpired(ctx, time.Now()); return err }},
		{"ListKeys", func(ctx context.Context) error { _, err := s.ListKeys(ctx); return err }},
		{"AddProof", func(ctx context.Context) error {
			_, err := s.AddProof(ctx, newProofID(), time.Now().Add(time.Minute))
			return err
		}},
	}
}

// newProofID returns a random DPoP proof ID (43 base64url characters, as
// package dpop derives them).
func newProofID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// checkHungCalls runs every call at once against a hung database: each
// must fail, within hungBound, with an error matching
// apperr.ErrUnavailable. It logs the measured times.
func checkHungCalls(t *testing.T, calls []hungCall) {
	t.Helper()
	type result struct {
		err     error
		elapsed time.Duration
	}
	results := make([]chan result, len(calls))
	for i, c := range calls {
		results[i] = make(chan result, 1)
		go func() {
			start := time.Now()
			err := c.call(context.Background()) // no deadline of the caller's own
			results[i] <- result{err, time.Since(start)}
		}()
	}
	wait, stop := context.WithTimeout(context.Background(), hungGiveUp)
	defer stop()
	var times []string
	for i, c := range calls {
		select {
		case r := <-results[i]:
			times = append(times, c.name+"="+r.elapsed.Round(time.Millisecond).String())
			if !errors.Is(r.err, apperr.ErrUnavailable) {
				t.Errorf("%s: got %v after %v, want an error matching apperr.ErrUnavailable", c.name, r.err, r.elapsed)
			}
			if r.elapsed > hungBound {
				t.Errorf("%s: failed after %v, want within %v", c.name, r.elapsed, hungBound)
			}
		case <-wait.Done():
			times = append(times, c.name+"=blocked")
			t.Errorf("%s: still blocked after %v", c.name, hungGiveUp)
		}
	}
	t.Logf("times with the database hung: %s", strings.Join(times, " "))
}

// TestSilentMySQL points a store with default options at a server that
// accepts connections and never answers: every call fails as unavailable
// within a few seconds instead of hanging.
func TestSilentMySQL(t *testing.T) {
	p := storagetest.NewFaultProxy(t, "")
	s, err := storage.Open(t.Context(), "mysql://root:@tcp("+p.Addr()+")/portcullis", storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.SetCut(true); _ = s.Close() }) // unblock, then close
	checkHungCalls(t, storeCalls(s, "u1"))
}

// TestMySQLHang runs a store with default options through a proxy to
// MariaDB and stalls the proxy with connections open and in use: every
// call fails as unavailable within a few seconds, a transaction cut off
// by the stall leaves nothing behind, and the store recovers once the
// network does.
func TestMySQLHang(t *testing.T) {
	dsn := storagetest.MySQLDSN(t)
	hostPort := dsn[strings.Index(dsn, "tcp(")+4 : strings.Index(dsn, ")/")]
	p := storagetest.NewFaultProxy(t, hostPort)
	s := storagetest.OpenDSN(t, strings.Replace(dsn, "tcp("+hostPort+")", "tcp("+p.Addr()+")", 1))
	ctx := t.Context()
	u := &identity.User{ID: "u1", Username: "alice", PasswordHash: "h"}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	// Fill the pool so that the stall catches established connections.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { _, _ = s.GetUser(ctx, u.ID) })
	}
	wg.Wait()

	// A fosite transaction that has written a row when the network stalls.
	txCtx, err := s.BeginTX(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(txCtx, &identity.User{ID: "u2", Username: "bob", PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}

	p.SetHung(true)
	calls := append(storeCalls(s, u.ID), hungCall{"statement in a transaction", func(context.Context) error {
		err := s.CreateUser(txCtx, &identity.User{ID: "u3", Username: "carol", PasswordHash: "h"})
		_ = s.Rollback(txCtx)
		return err
	}})
	checkHungCalls(t, calls)

	p.SetHung(false)
	start := time.Now()
	for {
		err := s.Ping(ctx)
		if err == nil {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("store did not recover within 10 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("recovered %v after the network resumed", time.Since(start).Round(time.Millisecond))
	for _, id := range []string{"u2", "u3"} {
		if _, err := s.GetUser(ctx, id); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("user %s of the stalled transaction: got %v, want ErrNotFound (rolled back)", id, err)
		}
	}
	if got, err := s.GetUser(ctx, u.ID); err != nil || got.Disabled {
		t.Errorf("UpdateUser cut off by the stall was applied: %+v %v", got, err)
	}
}

// TestTransactionDeadline checks that a transaction still open at the
// query timeout is rolled back and reported unavailable, that the store
// keeps working (SQLite's one connection is released), and that the
// timeout never shortens the caller's own context.
func TestTransactionDeadline(t *testing.T) {
	const timeout = 500 * time.Millisecond // ample for one statement on a loaded machine
	past := func() { time.Sleep(timeout + 500*time.Millisecond) }
	for _, backend := range []struct {
		name string
		dsn  func(testing.TB) string
	}{
		{"sqlite", storagetest.SQLiteDSN},
		{"mysql", storagetest.MySQLDSN},
	} {
		t.Run(backend.name, func(t *testing.T) {
			s := storagetest.OpenDSN(t, backend.dsn(t), storage.Options{QueryTimeout: timeout})
			ctx := t.Context()
			if err := s.CreateUser(ctx, &identity.User{ID: "u1", Username: "alice", PasswordHash: "h"}); err != nil {
				t.Fatal(err)
			}
			absent := func(id string) {
				t.Helper()
				if _, err := s.GetUser(ctx, id); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("user %s written by a timed-out transaction: GetUser = %v, want ErrNotFound", id, err)
				}
			}
			unavailable := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, apperr.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("%s after the deadline: %v, want an error matching apperr.ErrUnavailable and context.DeadlineExceeded", what, err)
				}
			}

			t.Run("BeginTX, then statement and commit after the deadline", func(t *testing.T) {
				txCtx, err := s.BeginTX(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := txCtx.Deadline(); ok {
					t.Error("BeginTX put a deadline on the caller's context")
				}
				if err := s.CreateUser(txCtx, &identity.User{ID: "u2", Username: "bob", PasswordHash: "h"}); err != nil {
					t.Fatal(err)
				}
				past()
				unavailable("statement", s.CreateUser(txCtx, &identity.User{ID: "u3", Username: "carol", PasswordHash: "h"}))
				unavailable("Commit", s.Commit(txCtx))
				if err := s.Rollback(txCtx); err != nil {
					t.Errorf("Rollback of a transaction the deadline rolled back: %v", err)
				}
				absent("u2")
				absent("u3")
			})
			t.Run("BeginTX, then commit after the deadline", func(t *testing.T) {
				txCtx, err := s.BeginTX(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := s.CreateUser(txCtx, &identity.User{ID: "u4", Username: "dave", PasswordHash: "h"}); err != nil {
					t.Fatal(err)
				}
				past()
				unavailable("Commit", s.Commit(txCtx))
				absent("u4")
			})
			t.Run("update closure outlives the deadline", func(t *testing.T) {
				_, err := s.UpdateUser(ctx, "u1", func(u *identity.User) error { past(); u.Disabled = true; return nil })
				unavailable("UpdateUser", err)
				if u, err := s.GetUser(ctx, "u1"); err != nil || u.Disabled {
					t.Errorf("timed-out UpdateUser was applied: %+v %v", u, err)
				}
			})
			t.Run("slow caller between calls", func(t *testing.T) {
				// Each call gets its own deadline: time spent by the caller
				// between calls (hashing a password) does not count.
				txCtx, err := s.BeginTX(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := s.CreateUser(txCtx, &identity.User{ID: "u5", Username: "erin", PasswordHash: "h"}); err != nil {
					t.Fatal(err)
				}
				if err := s.Commit(txCtx); err != nil {
					t.Fatal(err)
				}
				past()
				if _, err := s.GetUser(txCtx, "u5"); err != nil {
					t.Errorf("GetUser with the context of a committed transaction, after the timeout: %v", err)
				}
				if _, err := s.UpdateUser(ctx, "u5", func(u *identity.User) error { u.Roles = []string{"admin"}; return nil }); err != nil {
					t.Errorf("UpdateUser: %v", err)
				}
			})
		})
	}
}

// TestMySQLMigrateOutlivesQueryTimeout: Migrate waits for another
// replica's migration lock longer than the query timeout, and succeeds.
// Migrations run on a pool of their own without the socket timeouts the
// query timeout sets.
func TestMySQLMigrateOutlivesQueryTimeout(t *testing.T) {
	dsn := storagetest.MySQLDSN(t)
	s, err := storage.Open(t.Context(), dsn, storage.Options{QueryTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })

	other, err := sql.Open("mysql", strings.TrimPrefix(dsn, "mysql://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	conn, err := other.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	var got int
	if err := conn.QueryRowContext(t.Context(), "SELECT GET_LOCK(CONCAT('portcullis_migrate:', DATABASE()), 5)").Scan(&got); err != nil || got != 1 {
		t.Fatalf("take the migration lock: %d %v", got, err)
	}
	const held = 2 * time.Second
	go func() {
		time.Sleep(held)
		_, _ = conn.ExecContext(context.Background(), "DO RELEASE_LOCK(CONCAT('portcullis_migrate:', DATABASE()))")
	}()
	start := time.Now()
	applied, err := s.Migrate(t.Context())
	if err != nil {
		t.Fatalf("Migrate after waiting %v for the lock: %v", time.Since(start), err)
	}
	if time.Since(start) < held-100*time.Millisecond || len(applied) != len(wantMigrations) {
		t.Fatalf("Migrate returned %v after %v: it did not wait for the lock", applied, time.Since(start))
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping after Migrate: %v", err)
	}
}

// TestSQLiteLockedByAnotherProcess: while another connection (the CLI,
// another process) holds SQLite's write lock, a write waits at most about
// the query timeout for it, then fails as unavailable.
func TestSQLiteLockedByAnotherProcess(t *testing.T) {
	const timeout = 300 * time.Millisecond
	dsn := storagetest.SQLiteDSN(t)
	s := storagetest.OpenDSN(t, dsn, storage.Options{QueryTimeout: timeout})
	other, err := sql.Open("sqlite", strings.TrimPrefix(dsn, "sqlite://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	conn, err := other.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if _, err := conn.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	calls := []hungCall{
		{"CreateUser", func(ctx context.Context) error {
			return s.CreateUser(ctx, &identity.User{ID: "u1", Username: "alice", PasswordHash: "h"})
		}},
		// The transaction begins (BEGIN IMMEDIATE) with its first
		// statement.
		{"BeginTX", func(ctx context.Context) error {
			tx, err := s.BeginTX(ctx)
			if err == nil {
				_, err = s.GetUser(tx, "u1")
				_ = s.Rollback(tx)
			}
			return err
		}},
		{"RevokeSubject", func(ctx context.Context) error { return s.RevokeSubject(ctx, "u1") }},
	}
	for _, c := range calls {
		start := time.Now()
		err := c.call(t.Context())
		elapsed := time.Since(start)
		t.Logf("%s: %v after %v", c.name, err, elapsed.Round(time.Millisecond))
		if !errors.Is(err, apperr.ErrUnavailable) {
			t.Errorf("%s: %v, want an error matching apperr.ErrUnavailable", c.name, err)
		}
		if elapsed > 2*time.Second {
			t.Errorf("%s waited %v for the lock, want about the query timeout (%v)", c.name, elapsed.Round(time.Millisecond), timeout)
		}
	}
	if _, err := conn.ExecContext(t.Context(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(t.Context(), &identity.User{ID: "u1", Username: "alice", PasswordHash: "h"}); err != nil {
		t.Fatalf("CreateUser once the lock is free: %v", err)
	}
}
