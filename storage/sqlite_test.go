package storage_test

import (
	"context"
	"errors"
	"testing"
	"time"

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
