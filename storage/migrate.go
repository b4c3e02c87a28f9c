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

// provider returns a goose provider for this store's dialect.
func (s *Store) provider() (*goose.Provider, error) {
	dialect, dir := goose.DialectSQLite3, "migrations/sqlite"
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	if s.driver == DriverMySQL {
		dialect, dir = goose.DialectMySQL, "migrations/mysql"
	}
	fsys, err := fs.Sub(migrationsFS, dir)
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(dialect, s.sqlDB, fsys, opts...)
}

// Migrate applies every pending migration in order and returns the names
// of those it applied ("00001_create_users", …); none when the schema is
// current. It is safe to run from several replicas at once, also through
// different nodes of a Galera cluster: on MySQL they queue on a lease in
// a replicated table (for up to 60s; see lockMigrations) and each
// migration is idempotent; on SQLite, a process that loses a race with
// another one migrating the same file reads the schema version again.
// Do not call it with a context carrying a transaction.
func (s *Store) Migrate(ctx context.Context) (applied []string, err error) {
	p, err := s.provider()
	if err != nil {
		return nil, fmt.Errorf("storage: migrate: %w", err)
	}
	unlock, err := s.lockMigrations(ctx, true)
	if err != nil {
		return nil, s.wrapf(err, "storage: migrate")
	}
	defer unlock()
	for attempt := 1; ; attempt++ {
		results, err := p.Up(ctx)
		for _, r := range results {
			if r.Error == nil {
				name := migrationName(r.Source.Path)
				applied = append(applied, name)
				s.logger.InfoContext(ctx, "schema migration applied", "migration", name, "duration", r.Duration)
			}
		}
		if err == nil {
			return applied, nil
		}
		// SQLite: processes starting at once on one file (replicas, or
		// serve and a CLI command) are not serialized by lockMigrations.
		// One that read the schema version before another committed a
		// migration fails running it again; each SQLite migration is one
		// transaction with its version row, so nothing of it was applied,
		// and reading the version again finds it done.
		if s.driver != DriverSQLite || attempt == sqliteMigrateAttempts || ctx.Err() != nil {
			return applied, s.wrapf(err, "storage: migrate")
		}
		s.logger.InfoContext(ctx, "schema migration raced another process; reading the schema version again", "err", err.Error())
		select {
		case <-ctx.Done():
			return applied, s.wrapf(err, "storage: migrate")
		case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
		}
	}
}

// sqliteMigrateAttempts bounds how often Migrate reads the schema version
// again on SQLite after losing a race with another process.
const sqliteMigrateAttempts = 5

// MigrationStatus lists every known migration and whether it has been
// applied, in order.
func (s *Store) MigrationStatus(ctx context.Context) ([]MigrationStatus, error) {
	p, err := s.provider()
	if err != nil {
		return nil, fmt.Errorf("storage: migration status: %w", err)
	}
	unlock, err := s.lockMigrations(ctx, false)
	if err != nil {
		return nil, s.wrapf(err, "storage: migration status")
	}
	defer unlock()
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

// SchemaVersion returns the database's schema version, the version of the
// last migration applied in order (0 when none is), and the latest version
// this binary knows; the schema is current when the two are equal. Unlike
// MigrationStatus it writes nothing: on a database never migrated it does
// not create goose's version table. Callers that must not touch the schema
// (every command but migrate and serve) check it with this.
func (s *Store) SchemaVersion(ctx context.Context) (current, latest int64, err error) {
	p, err := s.provider()
	if err != nil {
		return 0, 0, fmt.Errorf("storage: schema version: %w", err)
	}
	if sources := p.ListSources(); len(sources) > 0 {
		latest = sources[len(sources)-1].Version
	}
	q := "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
	if s.driver == DriverMySQL {
		q = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?"
	}
	var tables int
	if err := s.sqlDB.QueryRowContext(ctx, q, goose.DefaultTablename).Scan(&tables); err != nil {
		return 0, 0, s.wrapf(err, "storage: schema version")
	}
	if tables == 0 {
		return 0, latest, nil
	}
	st, err := s.MigrationStatus(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, m := range st {
		if !m.Applied {
			break
		}
		current = m.Version
	}
	return current, latest, nil
}

func migrationName(p string) string { return strings.TrimSuffix(path.Base(p), ".sql") }

// migrateLockSuffix names the file next to a SQLite database that
// processes migrating it lock (lockFile): PATH.migrate-lock.
const migrateLockSuffix = ".migrate-lock"

// lockMigrations serializes migration runs (and status reads) across
// processes. On MySQL it holds a named lock on a dedicated connection for
// the whole goose run, including goose's own checks of its version table,
// which goose's session locker would leave outside the lock (two replicas
// starting at once then saw a half-created version table: "missing zero
// version migration"). GET_LOCK holds only on the node it is taken on,
// so a migration (cluster) first takes a lease in the replicated
// portcullis_locks table (leaseLock): replicas migrating through
// different nodes of a Galera cluster at once then run one after the
// other, and the second finds every migration applied. Status reads take
// the named lock only: they write nothing. On SQLite, a migration takes
// an exclusive flock on PATH.migrate-lock (processes starting at once on
// one new file, such as two replicas or serve and a CLI command, would
// otherwise both read the schema version and both apply a migration
// written with IF NOT EXISTS, recording it twice); status reads need
// none. The returned function releases the lock.
func (s *Store) lockMigrations(ctx context.Context, cluster bool) (func(), error) {
	if s.driver == DriverSQLite {
		if !cluster || s.sqlitePath == "" {
			return func() {}, nil
		}
		unlock, err := lockFile(ctx, s.sqlitePath+migrateLockSuffix, 60*time.Second)
		if err != nil {
			return nil, fmt.Errorf("migration lock %s: %w", s.sqlitePath+migrateLockSuffix, err)
		}
		return unlock, nil
	}
	if s.driver != DriverMySQL {
		return func() {}, nil
	}
	var lease *leaseLock
	if cluster {
		var err error
		if lease, err = acquireLease(ctx, s.sqlDB, "migrate", 60*time.Second); err != nil {
			return nil, err
		}
	}
	releaseLease := func() {
		if lease == nil {
			return
		}
		if err := lease.release(context.WithoutCancel(ctx)); err != nil {
			s.logger.WarnContext(ctx, "migration lease: "+err.Error()+"; an unreleased lease is taken over once not renewed for its ttl",
				"ttl", leaseTTL)
		}
	}
	conn, err := s.sqlDB.Conn(ctx)
	if err != nil {
		releaseLease()
		return nil, err
	}
	l := mysqlLocker{timeout: 60 * time.Second}
	if err := l.SessionLock(ctx, conn); err != nil {
		_ = conn.Close()
		releaseLease()
		return nil, err
	}
	return func() {
		if err := l.SessionUnlock(context.WithoutCancel(ctx), conn); err != nil {
			s.logger.WarnContext(ctx, "releasing the migration lock failed; it ends with the connection", "err", err)
		}
		_ = conn.Close()
		releaseLease()
	}, nil
}

// mysqlLocker is a lock over MySQL's GET_LOCK, named after the current
// database so that databases on one server do not block each other. A
// named lock needs no extra table and is released by the server when the
// session dies. It has goose's lock.SessionLocker shape.
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

// latestVersion is the version of the newest migration for driver.
func latestVersion(driver string) (int64, error) {
	dir := "migrations/sqlite"
	if driver == DriverMySQL {
		dir = "migrations/mysql"
	}
	entries, err := fs.ReadDir(migrationsFS, dir)
	if err != nil {
		return 0, fmt.Errorf("storage: migrations: %w", err)
	}
	var latest int64
	for _, e := range entries {
		if v, err := goose.NumericComponent(e.Name()); err == nil && v > latest {
			latest = v
		}
	}
	return latest, nil
}
