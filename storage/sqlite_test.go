package storage_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/storage"
	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

// The conformance suite checks the storagetest.Store interface; this store
// implements all of it.
var _ storagetest.Store = (*storage.Store)(nil)

func TestSQLiteConformance(t *testing.T) {
	storagetest.Run(t, storagetest.OpenSQLite)
	storagetest.RunConcurrency(t, storagetest.OpenSQLite)
}

func TestSQLiteMigrate(t *testing.T) {
	testMigrateFresh(t, storagetest.SQLiteDSN(t), storage.DriverSQLite)
}

func TestSQLiteClock(t *testing.T) {
	storagetest.RunClock(t, storagetest.OpenClockedDSN(storagetest.SQLiteDSN))
}

// TestSQLiteBeginTXHoldsNoConnection: a transaction takes SQLite's one
// connection with its first statement, not at BeginTX, so work done
// between BeginTX and the first statement (fosite signs a refreshed
// access token there) does not stall every other request. Before, a read
// by another request waited for the whole transaction.
func TestSQLiteBeginTXHoldsNoConnection(t *testing.T) {
	s := storagetest.OpenSQLite(t)
	tx, err := s.BeginTX(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	if _, err := s.GetUser(ctx, "nobody"); !errors.Is(err, apperr.ErrNotFound) {
		t.Fatalf("a read while another request's transaction had made no statement: %v, want ErrNotFound", err)
	}
	// Its first statement takes the connection; the transaction works as
	// before.
	if _, err := s.GetUser(tx, "nobody"); !errors.Is(err, apperr.ErrNotFound) {
		t.Fatalf("read in the transaction: %v", err)
	}
	if err := s.Commit(tx); err != nil {
		t.Fatal(err)
	}
	// A transaction without statements commits and rolls back as a no-op.
	for _, end := range []func(context.Context) error{s.Commit, s.Rollback} {
		tx, err := s.BeginTX(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := end(tx); err != nil {
			t.Fatalf("ending an empty transaction: %v", err)
		}
	}
}

// TestSQLiteReadsDoNotWaitForTheWriter: on SQLite, reads outside
// transactions use a pool of read-only connections (WAL readers), so they
// are answered while another request's transaction holds the one writer
// connection, and they see every commit that completed before they
// started. Before, every read queued behind the writer.
func TestSQLiteReadsDoNotWaitForTheWriter(t *testing.T) {
	s := storagetest.OpenSQLite(t)
	ctx := t.Context()
	u := &identity.User{ID: "u1", Username: "alice", PasswordHash: "h"}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	tx, err := s.BeginTX(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The transaction writes: it holds the writer connection and SQLite's
	// write lock until it ends.
	if _, err := s.UpdateUser(tx, u.ID, func(u *identity.User) error { u.Roles = []string{"changed"}; return nil }); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	got, err := s.GetUser(rctx, u.ID)
	if err != nil {
		t.Fatalf("a read while another transaction held the writer: %v", err)
	}
	if len(got.Roles) != 0 {
		t.Fatalf("a read saw an uncommitted write: %v", got.Roles)
	}
	if err := s.Commit(tx); err != nil {
		t.Fatal(err)
	}
	// Committed before the read started: seen.
	if got, err = s.GetUser(ctx, u.ID); err != nil || len(got.Roles) != 1 {
		t.Fatalf("after the commit: %+v, %v", got, err)
	}
}

// TestSQLiteFailedBeginLeaksNoTransaction: when a transaction cannot begin
// (its deadline passed before its first statement), a later call in it
// that runs a transaction of its own (UpdateUser: inTx, a savepoint in
// the caller's transaction) fails and leaves nothing behind. Before, gorm's
// Transaction on the handle carrying the BEGIN error began a real
// transaction on the base pool and returned that error without rolling it
// back: SQLite's one writer connection stayed taken (BEGIN IMMEDIATE) until
// the caller's context ended, and every other write waited for it.
func TestSQLiteFailedBeginLeaksNoTransaction(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s := storagetest.OpenDSN(t, storagetest.SQLiteDSN(t), storage.Options{QueryTimeout: timeout})
	ctx := t.Context()
	if err := s.CreateUser(ctx, &identity.User{ID: "u1", Username: "alice", PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	txCtx, err := s.BeginTX(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(timeout + 200*time.Millisecond) // past the deadline, no statement yet
	_, err = s.UpdateUser(txCtx, "u1", func(u *identity.User) error { u.Disabled = true; return nil })
	if !errors.Is(err, apperr.ErrUnavailable) {
		t.Errorf("UpdateUser in a transaction past its deadline: %v, want apperr.ErrUnavailable", err)
	}
	_ = s.Rollback(txCtx) // the caller gives up; txCtx itself stays alive (a request still running)
	if err := s.CreateUser(ctx, &identity.User{ID: "u2", Username: "bob", PasswordHash: "h"}); err != nil {
		t.Fatalf("a write after the failed transaction: %v (the writer connection is still held)", err)
	}
}

// TestSQLiteInMemory: an in-memory database (":memory:", "file::memory:")
// is one connection's own; reads see what was written. Before, reads
// outside transactions went to the read-only pool, each connection of
// which opened another, empty, in-memory database ("no such table").
func TestSQLiteInMemory(t *testing.T) {
	for _, dsn := range []string{"sqlite://:memory:", "sqlite://file::memory:"} {
		t.Run(dsn, func(t *testing.T) {
			s := storagetest.OpenDSN(t, dsn)
			if err := s.CreateUser(t.Context(), &identity.User{ID: "u1", Username: "alice", PasswordHash: "h"}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.GetUser(t.Context(), "u1"); err != nil {
				t.Errorf("GetUser after CreateUser: %v", err)
			}
			if _, err := s.GetUserByUsername(t.Context(), "alice"); err != nil {
				t.Errorf("GetUserByUsername after CreateUser: %v", err)
			}
		})
	}
}

// TestSQLiteReplicas runs the cross-replica race suite with two stores on
// one SQLite file, as two processes (the server and the CLI) share it.
func TestSQLiteReplicas(t *testing.T) {
	storagetest.RunReplicas(t, func(t *testing.T) []storagetest.Store {
		dsn := storagetest.SQLiteDSN(t)
		return []storagetest.Store{storagetest.OpenDSN(t, dsn), openStore(t, dsn)}
	})
}

// TestSQLiteConcurrentMigrate: processes started at once on one new SQLite
// file (two replicas, or serve and a CLI command) migrate it at the same
// time. Every Migrate call succeeds and each migration is applied once.
// Before, the loser of a race read the schema version before the winner
// committed, then ran the winner's migration again ("duplicate column
// name"), and its process exited (seen in TestDPoPNonce, 2 runs in 6).
func TestSQLiteConcurrentMigrate(t *testing.T) {
	for round := range 8 {
		dsn := storagetest.SQLiteDSN(t)
		const n = 3
		stores := make([]*storage.Store, n)
		for i := range stores {
			stores[i] = openStore(t, dsn)
		}
		applied := make([][]string, n)
		errs := make([]error, n)
		start := make(chan struct{})
		done := make(chan int)
		for i := range stores {
			go func() {
				<-start
				applied[i], errs[i] = stores[i].Migrate(t.Context())
				done <- i
			}()
		}
		close(start)
		for range stores {
			<-done
		}
		seen := map[string]int{}
		for i := range stores {
			if errs[i] != nil {
				t.Fatalf("round %d: store %d: %v", round, i, errs[i])
			}
			for _, m := range applied[i] {
				seen[m]++
			}
		}
		for m, k := range seen {
			if k != 1 {
				t.Fatalf("round %d: %s applied %d times", round, m, k)
			}
		}
	}
}

// TestSQLiteOpenWhileMigrating: processes opening a new SQLite file at
// once while one of them migrates it (replicas, or serve and a CLI
// command, started together) wait for each other's locks instead of
// failing with SQLITE_BUSY (seen in CI: "open sqlite: … database is
// locked"). The journal_mode pragma, which turns a new file to WAL, ran
// before busy_timeout was set, so it did not wait.
func TestSQLiteOpenWhileMigrating(t *testing.T) {
	for round := range 10 {
		dsn := storagetest.SQLiteDSN(t)
		errs := make(chan error, 8)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				s, err := storage.Open(t.Context(), dsn, storage.Options{})
				if err == nil {
					_, err = s.Migrate(t.Context())
					_ = s.Close()
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: open and migrate at once: %v", round, err)
			}
		}
	}
}
