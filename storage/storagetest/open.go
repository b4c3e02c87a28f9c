package storagetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/portcullis-auth/portcullis/storage"
)

// MySQLEnv names the environment variable holding the go-sql-driver DSN
// (without the mysql:// prefix) of a MySQL or MariaDB server for tests,
// e.g. "root:@tcp(127.0.0.1:3306)/portcullis_test?parseTime=true".
const MySQLEnv = "PORTCULLIS_TEST_MYSQL_DSN"

// SQLiteDSN returns a "sqlite://" DSN of a new database file in
// t.TempDir().
func SQLiteDSN(t testing.TB) string {
	t.Helper()
	return "sqlite://" + filepath.Join(t.TempDir(), "portcullis.db")
}

// RequireMySQL skips the test when $PORTCULLIS_TEST_MYSQL_DSN is unset and
// fails it when the server it names is unreachable. Call it first in a
// MySQL test so that one skip message is printed, not one per subtest.
func RequireMySQL(t testing.TB) {
	t.Helper()
	db, _ := mysqlAdmin(t)
	_ = db.Close()
}

// mysqlAdmin connects to the server of $PORTCULLIS_TEST_MYSQL_DSN without
// selecting a database, with RequireMySQL's skip and fail behaviour.
func mysqlAdmin(t testing.TB) (*sql.DB, *gomysql.Config) {
	t.Helper()
	raw := os.Getenv(MySQLEnv)
	if raw == "" {
		t.Skip(MySQLEnv + " not set; skipping this MySQL test (set it to a DSN such as root:@tcp(127.0.0.1:3306)/test?parseTime=true)")
	}
	cfg, err := gomysql.ParseDSN(raw)
	if err != nil {
		t.Fatalf("%s: %v", MySQLEnv, err)
	}
	admin := cfg.Clone()
	admin.DBName = ""
	conn, err := gomysql.NewConnector(admin)
	if err != nil {
		t.Fatalf("%s: %v", MySQLEnv, err)
	}
	db := sql.OpenDB(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		t.Fatalf("%s is set but the server is unreachable: %v", MySQLEnv, err)
	}
	return db, cfg
}

// MySQLDSN creates a fresh, empty database on the server named by
// $PORTCULLIS_TEST_MYSQL_DSN, drops it when the test ends, and returns a
// "mysql://" DSN for it. It skips the test when the variable is unset and
// fails it when the server is unreachable.
func MySQLDSN(t testing.TB) string {
	t.Helper()
	db, cfg := mysqlAdmin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "portcullis_t_" + hex.EncodeToString(b[:])
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		_ = db.Close()
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
		_ = db.Close()
	})
	cfg.DBName = name
	return "mysql://" + cfg.FormatDSN()
}

// OpenDSN opens dsn (with opts, if given), migrates it, and closes the
// store when the test ends.
func OpenDSN(t testing.TB, dsn string, opts ...storage.Options) *storage.Store {
	t.Helper()
	var o storage.Options
	if len(opts) > 0 {
		o = opts[0]
	}
	s, err := storage.Open(t.Context(), dsn, o)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return s
}

// OpenSQLite returns a migrated store on a new SQLite file; pass it to Run.
func OpenSQLite(t *testing.T) *storage.Store {
	t.Helper()
	return OpenDSN(t, SQLiteDSN(t))
}

// OpenMySQL returns a migrated store on a fresh MySQL database (see
// MySQLDSN); pass it to Run.
func OpenMySQL(t *testing.T) *storage.Store {
	t.Helper()
	return OpenDSN(t, MySQLDSN(t))
}
