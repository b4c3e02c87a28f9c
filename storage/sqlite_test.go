package storage_test

import (
	"testing"

	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

func TestSQLiteConformance(t *testing.T) {
	storagetest.Run(t, storagetest.OpenSQLite)
	storagetest.RunConcurrency(t, storagetest.OpenSQLite)
}

func TestSQLiteMigrate(t *testing.T) {
	testMigrateFresh(t, storagetest.SQLiteDSN(t))
}

func TestSQLiteClock(t *testing.T) {
	storagetest.RunClock(t, storagetest.SQLiteDSN)
}
