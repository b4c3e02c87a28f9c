package storage_test

import (
	"sync"
	"testing"

	"github.com/portcullis-auth/portcullis/storage"
	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

// The MySQL tests need $PORTCULLIS_TEST_MYSQL_DSN (see storagetest.MySQLEnv);
// they skip without it and fail when it names an unreachable server. Each
// store lives in its own database, created and dropped by
// storagetest.MySQLDSN.

func TestMySQLConformance(t *testing.T) {
	storagetest.RequireMySQL(t)
	storagetest.Run(t, storagetest.OpenMySQL)
	storagetest.RunConcurrency(t, storagetest.OpenMySQL)
}

func TestMySQLClock(t *testing.T) {
	storagetest.RequireMySQL(t)
	storagetest.RunClock(t, storagetest.OpenClockedDSN(storagetest.MySQLDSN))
}

func TestMySQLMigrate(t *testing.T) {
	testMigrateFresh(t, storagetest.MySQLDSN(t), storage.DriverMySQL)
}

// TestMySQLConcurrentMigrate starts two "replicas" on one fresh database:
// both Migrate calls succeed and the migrations are applied exactly once.
func TestMySQLConcurrentMigrate(t *testing.T) {
	dsn := storagetest.MySQLDSN(t)
	const replicas = 3
	results := make([][]string, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		s, err := storage.Open(t.Context(), dsn, storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		wg.Go(func() { results[i], errs[i] = s.Migrate(t.Context()) })
	}
	wg.Wait()
	total := 0
	for i := range replicas {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		total += len(results[i])
	}
	if total != len(wantMigrations) {
		t.Fatalf("replicas applied %v in total, want each of %v once", results, wantMigrations)
	}
}
