package storage_test

import (
	"testing"

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
