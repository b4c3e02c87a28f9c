package storage

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// migrationsFS holds the schema of record, one directory per dialect. Files
// are numbered and append-only: never edit or renumber an applied one.
//
//go:embed migrations/sqlite/*.sql migrations/mysql/*.sql
var migrationsFS embed.FS

// MigrationStatus describes one known migration.
type MigrationStatus struct {
	// Version is the migration's number.
	Version int64 `json:"version"`
	// Name is the file name without extension, e.g. "00001_create_users".
	Name string `json:"name"`
	// Applied reports whether the migration has run on this database.
	Applied bool `json:"applied"`
	// AppliedAt is when it ran; zero when pending.
	AppliedAt time.Time `json:"applied_at,omitzero"`
}

// provider returns a goose provider for this store's dialect. On MySQL it
// serializes concurrent runs with a named lock; on SQLite the single
// connection and goose's per-migration transaction suffice.
func (s *Store) provider() (*goose.Provider, error) {
	dialect, dir := goose.DialectSQLite3, "migrations/sqlite"
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	if s.driver == DriverMySQL {
		dialect, dir = goose.DialectMySQL, "migrations/mysql"
		opts = append(opts, goose.WithSessionLocker(mysqlLocker{timeout: 60 * time.Second}))
	}
	fsys, err := fs.Sub(migrationsFS, dir)
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(dialect, s.sqlDB, fsys, opts...)
}

// Migrate applies every pending migration in order and returns the names
// of those it applied ("00001_create_users", …); none when the schema is
// current. It is safe to run from several replicas at once: on MySQL they
// queue on a named lock (for up to 60s) and each migration is idempotent.
// Do not call it with a context carrying a transaction.
func (s *Store) Migrate(ctx context.Context) ([]string, error) {
	p, err := s.provider()
	if err != nil {
		return nil, fmt.Errorf("storage: migrate: %w", err)
	}
	results, err := p.Up(ctx)
	var applied []string
	for _, r := range results {
		if r.Error == nil {
			name := migrationName(r.Source.Path)
			applied = append(applied, name)
			s.logger.InfoContext(ctx, "schema migration applied", "migration", name, "duration", r.Duration)
		}
	}
	if err != nil {
		return applied, s.wrapf(err, "storage: migrate")
	}
	return applied, nil
}

// MigrationStatus lists every known migration and whether it has been
// applied, in order.
func (s *Store) MigrationStatus(ctx context.Context) ([]MigrationStatus, error) {
	p, err := s.provider()
	if err != nil {
		return nil, fmt.Errorf("storage: migration status: %w", err)
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, s.wrapf(err, "storage: migration status")
	}
	out := make([]MigrationStatus, 0, len(st))
	for _, m := range st {
		ms := MigrationStatus{Version: m.Source.Version, Name: migrationName(m.Source.Path), Applied: m.State == goose.StateApplied}
		if ms.Applied {
			ms.AppliedAt = m.AppliedAt.UTC()
		}
		out = append(out, ms)
	}
	return out, nil
}

func migrationName(p string) string { return strings.TrimSuffix(path.Base(p), ".sql") }

// mysqlLocker is a goose lock.SessionLocker over MySQL's GET_LOCK, named
// after the current database so that databases on one server do not
// block each other. goose v3.30 ships only a table-based MySQL locker;
// a named lock needs no extra table and is released by the server when
// the session dies.
type mysqlLocker struct {
	timeout time.Duration
}

var _ lock.SessionLocker = mysqlLocker{}

func lockName(ctx context.Context, conn *sql.Conn) (string, error) {
	var db sql.NullString
	if err := conn.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&db); err != nil {
		return "", err
	}
	name := "portcullis_migrate:" + db.String
	if len(name) > 64 { // MySQL's limit on lock names
		sum := sha256.Sum256([]byte(db.String))
		name = "portcullis_migrate:" + hex.EncodeToString(sum[:])[:40]
	}
	return name, nil
}

// SessionLock implements lock.SessionLocker. It waits up to the timeout
// for the lock.
func (l mysqlLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	name, err := lockName(ctx, conn)
	if err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", name, int(l.timeout.Seconds())).Scan(&got); err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	if !got.Valid || got.Int64 != 1 {
		return fmt.Errorf("migration lock: %s still held by another process after %s", name, l.timeout)
	}
	return nil
}

// SessionUnlock implements lock.SessionLocker.
func (l mysqlLocker) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	name, err := lockName(ctx, conn)
	if err != nil {
		return fmt.Errorf("migration unlock: %w", err)
	}
	var released sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT RELEASE_LOCK(?)", name).Scan(&released); err != nil {
		return fmt.Errorf("migration unlock: %w", err)
	}
	if !released.Valid || released.Int64 != 1 {
		return errors.New("migration unlock: lock " + name + " was not held")
	}
	return nil
}
