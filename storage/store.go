package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	gomysql "github.com/go-sql-driver/mysql"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/keys"
	"github.com/portcullis-auth/portcullis/oauth"
)

// Sentinel errors, re-exported from apperr so callers of this package need
// not import it. Match them with errors.Is.
var (
	// ErrNotFound is returned when the requested record does not exist.
	ErrNotFound = apperr.ErrNotFound
	// ErrAlreadyExists is returned when an insert or update would violate
	// a primary or unique key.
	ErrAlreadyExists = apperr.ErrAlreadyExists
)

// Driver names returned by Store.Driver.
const (
	DriverSQLite = "sqlite"
	DriverMySQL  = "mysql"
)

// Interface guards.
var (
	_ identity.Store          = (*Store)(nil)
	_ identity.SessionRevoker = (*Store)(nil)
	_ oauth.ClientStore       = (*Store)(nil)
	_ oauth.TokenStore        = (*Store)(nil)
	_ keys.Store              = (*Store)(nil)
)

// Options tune the connection pool and logging. Zero values take the
// documented defaults.
type Options struct {
	// MaxOpenConns caps open connections (MySQL only; default 20). SQLite
	// always uses exactly one connection.
	MaxOpenConns int
	// MaxIdleConns caps idle connections (MySQL only; default
	// MaxOpenConns).
	MaxIdleConns int
	// ConnMaxLifetime closes connections older than this (MySQL only;
	// default 30m, keep it below the server's wait_timeout).
	ConnMaxLifetime time.Duration
	// ConnMaxIdleTime closes connections idle for longer (MySQL only;
	// default 5m).
	ConnMaxIdleTime time.Duration
	// RefreshReuseGrace is how long after its rotation a refresh token
	// presented again is treated as a concurrent duplicate (the request is
	// refused, the grant survives) rather than as reuse (the whole grant is
	// revoked, RFC 9700 §4.14.2). Zero is strict: any reuse revokes.
	RefreshReuseGrace time.Duration
	// Logger receives SQL statements at debug level (without their
	// arguments, which include secrets) and migration progress at info.
	// Nil discards everything.
	Logger *slog.Logger
}

// Store is the gorm-backed implementation of every Portcullis storage
// interface. Its methods are safe for concurrent use. Create it with Open,
// release it with Close.
type Store struct {
	gdb        *gorm.DB
	sqlDB      *sql.DB
	driver     string
	logger     *slog.Logger
	reuseGrace time.Duration
}

// Open returns a Store for dsn, which is either "sqlite://PATH" or
// "mysql://USER:PASS@tcp(HOST:PORT)/DB?...". It does not migrate the
// schema; call Migrate.
//
// SQLite: PATH is opened (and the file created) at once, with WAL
// journaling, a 5s busy timeout, foreign keys and a single connection; the
// parent directory must exist. MySQL: parseTime=true, loc=UTC and a utf8mb4
// connection charset are enforced; no connection is made until the first
// query, so an unreachable server is reported by Ping, Migrate or the
// first method call, as an error matching apperr.ErrUnavailable.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	gcfg := &gorm.Config{
		Logger:                 newGormLogger(logger),
		SkipDefaultTransaction: true,
		TranslateError:         false,
		NowFunc:                func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
	}
	s := &Store{logger: logger, reuseGrace: opts.RefreshReuseGrace}
	var err error
	switch {
	case strings.HasPrefix(dsn, "sqlite://"):
		s.driver = DriverSQLite
		s.gdb, err = openSQLite(strings.TrimPrefix(dsn, "sqlite://"), gcfg)
	case strings.HasPrefix(dsn, "mysql://"):
		s.driver = DriverMySQL
		s.gdb, err = openMySQL(strings.TrimPrefix(dsn, "mysql://"), gcfg)
	default:
		return nil, fmt.Errorf("storage: unsupported DSN %q: want sqlite://PATH or mysql://USER:PASS@tcp(HOST:PORT)/DB", redactDSN(dsn))
	}
	if err != nil {
		return nil, s.wrapf(err, "storage: open %s", s.driver)
	}
	if s.sqlDB, err = s.gdb.DB(); err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", s.driver, err)
	}
	if s.driver == DriverSQLite {
		// One connection: SQLite allows one writer at a time, and queuing
		// in database/sql is fairer and cheaper than SQLITE_BUSY retries.
		s.sqlDB.SetMaxOpenConns(1)
		s.sqlDB.SetMaxIdleConns(1)
		s.sqlDB.SetConnMaxLifetime(0)
		s.sqlDB.SetConnMaxIdleTime(0)
		if err := s.sqlDB.PingContext(ctx); err != nil {
			_ = s.sqlDB.Close()
			return nil, s.wrapf(err, "storage: open sqlite")
		}
		return s, nil
	}
	maxOpen := cmpOr(opts.MaxOpenConns, 20)
	s.sqlDB.SetMaxOpenConns(maxOpen)
	s.sqlDB.SetMaxIdleConns(cmpOr(opts.MaxIdleConns, maxOpen))
	s.sqlDB.SetConnMaxLifetime(cmpOr(opts.ConnMaxLifetime, 30*time.Minute))
	s.sqlDB.SetConnMaxIdleTime(cmpOr(opts.ConnMaxIdleTime, 5*time.Minute))
	return s, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// sqliteParams are appended to every SQLite DSN. _txlock=immediate takes
// the write lock at BEGIN, so a transaction never fails half-way when
// another process (the CLI) holds the file.
const sqliteParams = "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"

func openSQLite(path string, gcfg *gorm.Config) (*gorm.DB, error) {
	if path == "" {
		return nil, errors.New("empty path in sqlite:// DSN")
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return gorm.Open(sqlite.Open(path+sep+sqliteParams), gcfg)
}

func openMySQL(dsn string, gcfg *gorm.Config) (*gorm.DB, error) {
	cfg, err := gomysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse mysql DSN: %w", err)
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	// Report matched rather than changed rows, as SQLite does, so that a
	// conditional UPDATE that rewrites equal values still counts.
	cfg.ClientFoundRows = true
	collation := cfg.Collation
	if !strings.HasPrefix(collation, "utf8mb4") {
		collation = ""
	}
	if err := cfg.Apply(gomysql.Charset("utf8mb4", collation)); err != nil {
		return nil, fmt.Errorf("mysql DSN: %w", err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	conn, err := gomysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql DSN: %w", err)
	}
	gcfg.DisableAutomaticPing = true
	return gorm.Open(mysql.New(mysql.Config{
		Conn:                      sql.OpenDB(conn),
		SkipInitializeWithVersion: true, // connect lazily; Ping reports reachability
	}), gcfg)
}

// redactDSN hides a password in a DSN for error messages.
func redactDSN(dsn string) string {
	if at := strings.LastIndex(dsn, "@"); at >= 0 {
		if colon := strings.Index(dsn, ":"); colon >= 0 && colon < at {
			rest := dsn[colon+1 : at]
			if i := strings.Index(rest, "//"); i >= 0 { // scheme://user:pass@
				if c := strings.Index(rest[i+2:], ":"); c >= 0 {
					return dsn[:colon+1+i+2+c+1] + "***" + dsn[at:]
				}
				return dsn
			}
			return dsn[:colon+1] + "***" + dsn[at:]
		}
	}
	return dsn
}

// Driver returns "sqlite" or "mysql".
func (s *Store) Driver() string { return s.driver }

// Ping checks that the database answers, for readiness probes. An
// unreachable database yields an error matching apperr.ErrUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db(ctx).Exec("SELECT 1").Error; err != nil {
		return s.wrapf(err, "storage: ping")
	}
	return nil
}

// Close closes the connection pool. Calls made after Close fail.
func (s *Store) Close() error {
	return s.sqlDB.Close()
}

// DeleteExpired removes access and refresh token rows that expired before
// before and returns how many it removed. Rows without an expiry (refresh
// tokens issued with an unlimited lifespan) are kept. On MySQL it deletes
// in batches so that no long lock is held.
func (s *Store) DeleteExpired(ctx context.Context, before time.Time) (int64, error) {
	before = dbTime(before)
	var total int64
	for _, table := range []string{tableAccessTokens, tableRefreshTokens} {
		for {
			q := "DELETE FROM " + table + " WHERE expires_at < ?"
			if s.driver == DriverMySQL {
				q += " LIMIT 1000"
			}
			res := s.db(ctx).Exec(q, before)
			if res.Error != nil {
				return total, s.wrapf(res.Error, "storage: delete expired %s", table)
			}
			total += res.RowsAffected
			if s.driver != DriverMySQL || res.RowsAffected < 1000 {
				break
			}
		}
	}
	return total, nil
}

// dbTime normalizes t for storage: UTC, microsecond precision (MySQL
// DATETIME(6)), so values read back compare Equal to values written.
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// nullTime stores the zero time as NULL.
func nullTime(t time.Time) sql.NullTime {
	if t.IsZero() {
		return sql.NullTime{}
	}
	return sql.NullTime{Time: dbTime(t), Valid: true}
}

// fromNullTime is the inverse of nullTime.
func fromNullTime(t sql.NullTime) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}
