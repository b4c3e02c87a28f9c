package storage_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/identity"
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

// TestMySQLInterpolationCharset: with interpolateParams, the driver quotes
// arguments for utf8mb4, so a DSN that switches the connection's client
// charset, through a session variable parameter, to a multi-byte one where
// a byte such as 0xbf swallows the backslash of an escaped quote (GBK,
// Big5, SJIS) is refused. Before, it was accepted and an argument such as
// "\xbf' OR 1=1 -- " ended its string literal: SQL injection.
func TestMySQLInterpolationCharset(t *testing.T) {
	storagetest.RequireMySQL(t)
	for _, param := range []string{"character_set_client=gbk", "character_set_client=big5", "CHARACTER_SET_CLIENT=sjis"} {
		t.Run(param, func(t *testing.T) {
			s, err := storage.Open(t.Context(), storagetest.MySQLDSN(t)+"&"+param, storage.Options{})
			if err != nil {
				return // refused: fine
			}
			defer func() { _ = s.Close() }()
			if _, err := s.Migrate(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := s.CreateUser(t.Context(), &identity.User{ID: "u1", Username: "alice", PasswordHash: "h"}); err != nil {
				t.Fatal(err)
			}
			_ = s.DeleteUser(t.Context(), "\xbf' OR 1=1 -- ") // names no user
			if _, err := s.GetUser(t.Context(), "u1"); err != nil {
				t.Errorf("user u1 after deleting the user \"\\xbf' OR 1=1 -- \" under %s: %v", param, err)
			}
		})
	}
}

// TestMySQLReplicas runs the cross-replica race suite with three stores
// on one database of one server, as three replicas share it.
func TestMySQLReplicas(t *testing.T) {
	storagetest.RequireMySQL(t)
	storagetest.RunReplicas(t, func(t *testing.T) []storagetest.Store {
		dsn := storagetest.MySQLDSN(t)
		return []storagetest.Store{storagetest.OpenDSN(t, dsn), openStore(t, dsn), openStore(t, dsn)}
	})
}

// TestMySQLCheckGalera: a server that is not a Galera node reports none.
func TestMySQLCheckGalera(t *testing.T) {
	s := storagetest.OpenMySQL(t)
	if r, err := s.CheckGalera(t.Context()); err != nil || r != nil {
		t.Fatalf("CheckGalera on a plain server = %+v, %v; want nil, nil", r, err)
	}
	if s.Galera() {
		t.Fatal("Galera() on a plain server")
	}
}

// TestMySQLMigrateWithOneConnection: with a pool of one connection
// (database.max_open_conns: 1) Migrate still finishes. Before, it held
// the pool's only connection for its lock and waited forever for another
// to run the migrations on.
func TestMySQLMigrateWithOneConnection(t *testing.T) {
	dsn := storagetest.MySQLDSN(t)
	s, err := storage.Open(t.Context(), dsn, storage.Options{MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate with one connection: %v", err)
	}
}
