package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	gomysql "github.com/go-sql-driver/mysql"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"

	"github.com/portcullis-auth/portcullis/audit"
	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/keys"
	"github.com/portcullis-auth/portcullis/oauth"
	"github.com/portcullis-auth/portcullis/oauth/clients"
	"github.com/portcullis-auth/portcullis/oauth/dpop"
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

// DSN schemes understood by Open.
const (
	sqliteScheme = "sqlite://"
	mysqlScheme  = "mysql://"
)

// Interface guards.
var (
	_ identity.Store          = (*Store)(nil)
	_ identity.SessionRevoker = (*Store)(nil)
	_ clients.Store           = (*Store)(nil)
	_ oauth.TokenStore        = (*Store)(nil)
	_ keys.Store              = (*Store)(nil)
	_ dpop.ReplayCache        = (*Store)(nil)
)

// Options tune the connection pool and logging. Zero values take the
// documented defaults.
type Options struct {
	// MaxOpenConns caps open connections (MySQL only; default 20). SQLite
	// writes through exactly one connection, and reads outside
	// transactions through a pool of four read-only ones (WAL readers).
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
	// QueryTimeout bounds the database work of every call (default 2s):
	// each statement, waiting for a pool connection included, and each
	// transaction as a whole, from BeginTX or its first statement to its
	// commit. Work cut off by it is rolled back and fails with an error
	// matching apperr.ErrUnavailable, so a request on a database that
	// stopped answering gets 503 within a few seconds instead of hanging.
	// A sooner deadline of the caller's context wins. On MySQL it is also
	// the driver's readTimeout and writeTimeout unless the DSN sets them,
	// which bounds COMMIT and ROLLBACK (the driver sends them without a
	// context). Migrate and MigrationStatus are not bounded by it: they use
	// a connection pool of their own without those socket timeouts, since
	// a migration may wait up to 60s for the migration lock or run long
	// DDL.
	QueryTimeout time.Duration
	// Now is the clock of every timestamp the store writes or compares:
	// default created_at and updated_at, a refresh token's rotated_at and
	// its age against RefreshReuseGrace, and gorm's NowFunc. Nil means
	// time.Now. Deadlines (QueryTimeout) always use the wall clock. Tests
	// pass a fake clock to step past a grace without sleeping.
	Now func() time.Time
	// RefreshReuseGrace is how long after its rotation a refresh token
	// presented again is treated as a concurrent duplicate (the request is
	// refused, the grant survives) rather than as reuse (the whole grant is
	// revoked, RFC 9700 §4.14.2). Zero is strict: any reuse revokes.
	RefreshReuseGrace time.Duration
	// AccessTokenTTL is the longest lifetime of an access token the server
	// issues: a revoked grant is remembered that long (plus a minute)
	// after its revocation. Default 24h, the most the configuration
	// allows.
	AccessTokenTTL time.Duration
	// RequireSchema makes Open fail with a *SchemaError unless the
	// database's schema is at this binary's version, for commands that
	// must not migrate. It checks before changing anything: a SQLite
	// file that does not exist is not created, and an existing one is
	// neither switched to WAL journaling nor made private until it has
	// passed.
	RequireSchema bool
	// Logger receives SQL statements at debug level (without their
	// arguments, which include secrets) and migration progress at info.
	// Nil discards everything.
	Logger *slog.Logger
}

// Store is the gorm-backed implementation of every Portcullis storage
// interface. Its methods are safe for concurrent use. Create it with Open,
// release it with Close.
type Store struct {
	gdb *gorm.DB
	// pool is gdb's connection pool, through which every method but the
	// migration ones runs.
	pool *sql.DB
	// sqlDB is the pool of Migrate and MigrationStatus. On MySQL it is a
	// second pool, idle after start-up, whose connections have no read or
	// write timeout unless the DSN sets one; on SQLite it is pool.
	sqlDB        *sql.DB
	driver       string
	logger       *slog.Logger
	reuseGrace   time.Duration
	queryTimeout time.Duration
	now          func() time.Time // Options.Now
	accessTTL    time.Duration    // Options.AccessTokenTTL
	// readers, on SQLite in WAL mode, is a pool of read-only connections
	// for reads outside transactions (reader): WAL readers do not wait for
	// the one writer connection, and see every commit that completed
	// before they started. Nil elsewhere.
	readers    *gorm.DB
	onRevoke   func(context.Context)
	onAudit    func(audit.Event)
	throttleMu throttleLocks // UpdateThrottles, per account
	// refreshSelect is GetRefreshTokenSession's query (refreshSelectSQL).
	refreshSelect string
	// sessions sets up MySQL connections (causal reads on a Galera node);
	// nil on SQLite.
	sessions *galeraSessions
	// sqlitePath is the database file of a SQLite store ("" in memory),
	// next to which Migrate takes its cross-process lock.
	sqlitePath string
}

// Open returns a Store for dsn, which is either "sqlite://PATH" or
// "mysql://USER:PASS@tcp(HOST:PORT)/DB?...". It does not migrate the
// schema; call Migrate.
//
// SQLite: PATH is opened (and the file created, mode 0600, see
// privateSQLiteFiles) at once, with WAL
// journaling, a busy timeout of Options.QueryTimeout, foreign keys and a
// single connection; the parent directory must exist. MySQL:
// parseTime=true, loc=UTC and a utf8mb4 connection charset are enforced;
// interpolateParams=true unless the DSN turns it off (see ParseDSN);
// unless the DSN sets them, the driver's timeout (dial) is 5s (per host,
// 1s or half of Options.QueryTimeout if less, for a DSN listing several
// hosts: see ParseDSN) and its readTimeout and writeTimeout are
// Options.QueryTimeout. No connection is
// made until the first query, so an unreachable server is reported by
// Ping, Migrate or the first method call, as an error matching
// apperr.ErrUnavailable.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if !opts.RequireSchema {
		return open(ctx, dsn, opts, true)
	}
	parsed, err := ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("storage: DSN: %w", err)
	}
	if parsed.Driver == DriverSQLite {
		if _, err := os.Stat(parsed.Path); errors.Is(err, fs.ErrNotExist) {
			latest, err := latestVersion(DriverSQLite)
			if err != nil {
				return nil, err
			}
			return nil, &SchemaError{Latest: latest}
		}
	}
	s, err := open(ctx, dsn, opts, false)
	if err != nil {
		return nil, err
	}
	current, latest, err := s.SchemaVersion(ctx)
	if err == nil && current != latest {
		err = &SchemaError{Current: current, Latest: latest}
	}
	if err == nil && parsed.Driver == DriverSQLite {
		err = privateSQLiteFiles(parsed.Path, s.logger)
	}
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// SchemaError is Open's answer, with Options.RequireSchema, for a database
// whose schema is not at this binary's version (Current is 0 for an empty
// or missing database).
type SchemaError struct {
	Current, Latest int64
}

// Error implements error.
func (e *SchemaError) Error() string {
	return fmt.Sprintf("the database schema is at version %d, this binary needs version %d", e.Current, e.Latest)
}

// open opens the store; prepare creates a missing SQLite file, makes it
// private and switches it to WAL journaling (a persistent setting).
func open(ctx context.Context, dsn string, opts Options, prepare bool) (*Store, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{logger: logger, reuseGrace: opts.RefreshReuseGrace, queryTimeout: cmpOr(opts.QueryTimeout, DefaultQueryTimeout), now: opts.Now,
		accessTTL: cmpOr(opts.AccessTokenTTL, 24*time.Hour)}
	if s.now == nil {
		s.now = time.Now
	}
	gcfg := &gorm.Config{
		Logger:                 newGormLogger(logger),
		SkipDefaultTransaction: true,
		TranslateError:         false,
		NowFunc:                func() time.Time { return dbTime(s.now()) },
	}
	parsed, err := ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("storage: DSN: %w", err)
	}
	s.driver = parsed.Driver
	switch parsed.Driver {
	case DriverSQLite:
		if prepare && !inMemorySQLite(parsed.Path) && !strings.HasPrefix(parsed.Path, "file:") {
			// Processes opening one new file together take turns (the
			// lock migrations take too): turning a new file to WAL needs
			// an exclusive lock, and SQLite answers SQLITE_BUSY at once,
			// without waiting, when another connection holds one.
			unlock, err := lockFile(ctx, parsed.Path+migrateLockSuffix, 60*time.Second)
			if err != nil {
				return nil, fmt.Errorf("storage: open sqlite: lock %s: %w", parsed.Path+migrateLockSuffix, err)
			}
			defer unlock()
		}
		if prepare {
			if err := privateSQLiteFiles(parsed.Path, logger); err != nil {
				return nil, fmt.Errorf("storage: open sqlite: %w", err)
			}
		}
		s.gdb, err = openSQLite(parsed.Path, gcfg, s.queryTimeout, prepare)
		if !inMemorySQLite(parsed.Path) && !strings.HasPrefix(parsed.Path, "file:") {
			s.sqlitePath = parsed.Path
		}
	case DriverMySQL:
		s.gdb, s.sqlDB, s.sessions, err = openMySQL(parsed.MySQL, parsed.Hosts, gcfg, s.queryTimeout, logger)
	}
	if err != nil {
		return nil, s.wrapf(err, "storage: open %s", s.driver)
	}
	if s.pool, err = s.gdb.DB(); err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", s.driver, err)
	}
	if s.refreshSelect, err = refreshSelectSQL(s.gdb); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("storage: open %s: %w", s.driver, err)
	}
	if err := registerDeadlines(s, s.gdb); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("storage: open %s: %w", s.driver, err)
	}
	if s.driver == DriverSQLite {
		s.sqlDB = s.pool
		if prepare && !inMemorySQLite(parsed.Path) {
			if err := s.openReaders(ctx, parsed.Path, logger); err != nil {
				_ = s.Close()
				return nil, fmt.Errorf("storage: open sqlite: %w", err)
			}
		}
		// One writer connection (reads outside transactions use the
		// read-only pool): SQLite allows one writer at a time, and queuing
		// in database/sql is fairer and cheaper than SQLITE_BUSY retries.
		s.pool.SetMaxOpenConns(1)
		s.pool.SetMaxIdleConns(1)
		s.pool.SetConnMaxLifetime(0)
		s.pool.SetConnMaxIdleTime(0)
		if err := s.Ping(ctx); err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("storage: open sqlite: %w", err)
		}
		return s, nil
	}
	maxOpen := cmpOr(opts.MaxOpenConns, 20)
	lifetime := cmpOr(opts.ConnMaxLifetime, 30*time.Minute)
	s.pool.SetMaxOpenConns(maxOpen)
	s.pool.SetMaxIdleConns(cmpOr(opts.MaxIdleConns, maxOpen))
	s.pool.SetConnMaxLifetime(lifetime)
	s.pool.SetConnMaxIdleTime(cmpOr(opts.ConnMaxIdleTime, 5*time.Minute))
	// The migration pool is used at start-up and by `portcullis migrate`:
	// it must not pin connections afterwards.
	// A migration holds one connection for GET_LOCK while goose runs on
	// another and the lease is renewed on a third: with fewer, Migrate
	// waited for itself forever (database.max_open_conns: 1).
	s.sqlDB.SetMaxOpenConns(max(maxOpen, 4))
	s.sqlDB.SetMaxIdleConns(1)
	s.sqlDB.SetConnMaxLifetime(lifetime)
	s.sqlDB.SetConnMaxIdleTime(time.Minute)
	return s, nil
}

// DefaultQueryTimeout is Options.QueryTimeout's default. A request on a
// database that stopped answering fails with 503 within 5s even when it
// makes two store calls one after the other before giving up (fosite
// looks a token up as an access token, then as a refresh token), while a
// healthy database answers any of the store's statements in milliseconds.
const DefaultQueryTimeout = 2 * time.Second

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// sqliteParams are appended to every SQLite DSN, after the busy timeout.
// _txlock=immediate takes the write lock at BEGIN, so a transaction never
// fails half-way when another process (the CLI) holds the file.
const sqliteParams = "_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"

// sqliteWAL switches the database to WAL journaling, which persists in the
// file: Open sets it unless Options.RequireSchema holds it back.
const sqliteWAL = "_pragma=journal_mode(WAL)"

// privateSQLiteFiles makes the SQLite database at path readable and
// writable by its owner only: the file holds password hashes, token
// sessions and the sealed signing keys. A missing file is created empty
// with mode 0600 (exactly, whatever the umask) before the driver opens
// it; SQLite then gives the -wal and -shm files it creates the database
// file's mode. Existing files (the database, -wal, -shm) with wider
// permissions, left by an earlier version or a copy, are tightened to 0600
// with a warning: anyone else who needs to read them (a backup job) must
// run as their owner. Failing to tighten (not the owner) is only logged,
// so that the server still starts. PATH's query (after "?") is ignored;
// ":memory:" and "file:" URIs are left to the driver.
func privateSQLiteFiles(path string, logger *slog.Logger) error {
	path, _, _ = strings.Cut(path, "?")
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		err = f.Chmod(0o600)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("create database file: %w", err)
		}
		return nil
	case !errors.Is(err, fs.ErrExist):
		return fmt.Errorf("create database file: %w", err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&^0o600 == 0 {
			continue
		}
		if err := os.Chmod(p, 0o600); err != nil {
			logger.Warn("the database file is readable by other users and could not be made private; it holds password hashes and sealed keys",
				"file", p, "mode", fmt.Sprintf("%#o", fi.Mode().Perm()), "err", err)
			continue
		}
		logger.Warn("the database file was readable by other users; made it private (mode 0600)",
			"file", p, "was", fmt.Sprintf("%#o", fi.Mode().Perm()))
	}
	return nil
}

// inMemorySQLite reports whether path names an in-memory database, which
// belongs to the one connection that opened it: a read-only pool beside
// it would read other, empty, databases.
func inMemorySQLite(path string) bool {
	return path == ":memory:" || strings.HasPrefix(path, "file::memory:")
}

// sqliteReaders is the size of the SQLite read-only pool.
const sqliteReaders = 4

// openReaders opens the read-only SQLite pool (Store.readers) on path, in
// WAL mode by now (the writer's open switched it).
func (s *Store) openReaders(ctx context.Context, path string, logger *slog.Logger) error {
	gcfg := &gorm.Config{
		Logger:                 newGormLogger(logger),
		SkipDefaultTransaction: true,
		NowFunc:                func() time.Time { return dbTime(s.now()) },
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	dsn := path + sep + fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=query_only(1)", max(s.queryTimeout.Milliseconds(), 1))
	readers, err := gorm.Open(sqlite.Open(dsn), gcfg)
	if err != nil {
		return err
	}
	pool, err := readers.DB()
	if err != nil {
		return err
	}
	pool.SetMaxOpenConns(sqliteReaders)
	pool.SetMaxIdleConns(sqliteReaders)
	pool.SetConnMaxLifetime(0)
	pool.SetConnMaxIdleTime(0)
	if err := registerDeadlines(s, readers); err != nil {
		_ = pool.Close()
		return err
	}
	if err := pool.PingContext(ctx); err != nil {
		_ = pool.Close()
		return err
	}
	s.readers = readers
	return nil
}

// reader returns the handle for a read: the transaction ctx carries, else
// the read-only SQLite pool when there is one, else db(ctx).
func (s *Store) reader(ctx context.Context) *gorm.DB {
	if s.readers != nil && s.activeTx(ctx) == nil {
		return s.readers.WithContext(ctx)
	}
	return s.db(ctx)
}

// openSQLite opens path. The busy timeout, how long a statement waits for
// another process's write lock, is the query timeout: SQLite's busy
// handler does not watch the context.
func openSQLite(path string, gcfg *gorm.Config, busyTimeout time.Duration, wal bool) (*gorm.DB, error) {
	if path == "" {
		return nil, errors.New("empty path in sqlite:// DSN")
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	// busy_timeout first: the driver runs the pragmas in order, and
	// journal_mode (which turns a new file to WAL) must wait for another
	// process's locks like every other statement, not fail at once with
	// SQLITE_BUSY (processes opening one new file together).
	params := fmt.Sprintf("_pragma=busy_timeout(%d)&", max(busyTimeout.Milliseconds(), 1)) + sqliteParams
	if wal {
		params += "&" + sqliteWAL
	}
	return gorm.Open(sqlite.Open(path+sep+params), gcfg)
}

// openMySQL returns gorm over a pool whose connections have the driver's
// readTimeout and writeTimeout set to queryTimeout unless the DSN sets
// them, and a second pool, for migrations, with the DSN's own socket
// timeouts (none by default). Both fail over between hosts when the DSN
// lists several (mysqlConnector).
func openMySQL(cfg *gomysql.Config, hosts []MySQLHost, gcfg *gorm.Config, queryTimeout time.Duration, logger *slog.Logger) (*gorm.DB, *sql.DB, *galeraSessions, error) {
	cfg = cfg.Clone()
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
		return nil, nil, nil, fmt.Errorf("mysql DSN: %w", err)
	}
	if cfg.Timeout == 0 && len(hosts) > 1 {
		cfg.Timeout = min(failoverDialTimeout, queryTimeout/2)
	} else if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	cfg.Logger = mysqlLogger{logger}
	_, keepSyncWait := cfg.Params["wsrep_sync_wait"]
	migrateConn, err := mysqlConnector(cfg.Clone(), hosts, logger)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("mysql DSN: %w", err)
	}
	// A statement's context deadline closes its connection when it
	// passes, but COMMIT and ROLLBACK are sent without one: only a socket
	// timeout stops them waiting on a server that stopped answering.
	cfg.ReadTimeout = cmpOr(cfg.ReadTimeout, queryTimeout)
	cfg.WriteTimeout = cmpOr(cfg.WriteTimeout, queryTimeout)
	conn, err := mysqlConnector(cfg, hosts, logger)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("mysql DSN: %w", err)
	}
	sessions := &galeraSessions{Connector: conn, keepSyncWait: keepSyncWait}
	gcfg.DisableAutomaticPing = true
	gdb, err := gorm.Open(mysql.New(mysql.Config{
		Conn:                      sql.OpenDB(sessions),
		SkipInitializeWithVersion: true, // connect lazily; Ping reports reachability
	}), gcfg)
	if err != nil {
		return nil, nil, nil, err
	}
	return gdb, sql.OpenDB(&galeraSessions{Connector: migrateConn, keepSyncWait: keepSyncWait}), sessions, nil
}

// mysqlLogger sends the MySQL driver's own messages (such as the i/o
// timeout behind an error it returns) to the store's logger at debug
// level, as gormLogger does with gorm's: the errors reach callers, who log
// them. Without it the driver prints to the standard logger.
type mysqlLogger struct{ log *slog.Logger }

// Print implements gomysql.Logger. The driver prefixes a message with its
// own source position ("packets.go:58 "); that is dropped, since logs carry
// no code positions or stack traces.
func (l mysqlLogger) Print(v ...any) {
	if len(v) > 0 {
		if s, ok := v[0].(string); ok && goSourcePos.MatchString(s) {
			v = v[1:]
		}
	}
	l.log.Debug("mysql driver: " + strings.TrimSpace(fmt.Sprintln(v...)))
}

// goSourcePos matches the driver's "file.go:123 " message prefix.
var goSourcePos = regexp.MustCompile(`^[A-Za-z0-9_.-]+\.go:\d+ $`)

// Redacted replaces the password in a DSN redacted by RedactDSN.
const Redacted = "[REDACTED]"

// RedactDSN returns dsn with its password replaced by Redacted, for logs
// and error messages. A "mysql://" DSN is split as go-sql-driver/mysql
// splits it (user up to the first ':', password up to the last '@' before
// the last '/'), so even one that does not parse keeps its password hidden;
// a "sqlite://" DSN holds none; any other DSN is treated as a URL (whose
// password becomes "REDACTED", brackets being invalid there), and one that
// is not a URL but holds an '@' is replaced by Redacted as a whole.
func RedactDSN(dsn string) string {
	if rest, ok := strings.CutPrefix(dsn, mysqlScheme); ok {
		head := rest
		if slash := strings.LastIndex(rest, "/"); slash >= 0 {
			head = rest[:slash]
		}
		at := strings.LastIndex(head, "@")
		if at < 0 {
			return dsn
		}
		user, _, hasPass := strings.Cut(rest[:at], ":")
		if !hasPass {
			return dsn
		}
		return mysqlScheme + user + ":" + Redacted + rest[at:]
	}
	if strings.HasPrefix(dsn, sqliteScheme) {
		return dsn
	}
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, hasPass := u.User.Password(); hasPass {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
			return u.String()
		}
		return dsn
	}
	if strings.Contains(dsn, "@") {
		return Redacted // not a URL and perhaps holding credentials
	}
	return dsn
}

// Driver returns "sqlite" or "mysql".
func (s *Store) Driver() string { return s.driver }

// Ping checks that the database answers, for readiness probes. An
// unreachable database, or a Galera node that is not ready to serve,
// yields an error matching apperr.ErrUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	q := "SELECT 1"
	if s.driver == DriverMySQL {
		// A Galera node that refuses queries (1047) still answers a
		// SELECT without tables; it refuses DO.
		q = "DO 1"
	}
	if err := s.db(ctx).Exec(q).Error; err != nil {
		return s.wrapf(err, "storage: ping")
	}
	return nil
}

// Close closes the connection pools. Calls made after Close fail.
func (s *Store) Close() error {
	err := s.pool.Close()
	if s.readers != nil {
		if rp, rerr := s.readers.DB(); rerr == nil {
			err = errors.Join(err, rp.Close())
		}
	}
	if s.sqlDB != nil && s.sqlDB != s.pool {
		err = errors.Join(err, s.sqlDB.Close())
	}
	return err
}

// tableLegacyAccessTokens held access-token rows until issue 9 made access
// tokens stateless; nothing writes it any more, and DeleteExpired empties
// it as the rows an older version wrote expire.
const tableLegacyAccessTokens = "oauth2_access_tokens"

// DeleteExpired removes refresh tokens, revocations and DPoP proofs
// (AddProof) that expired before before (and rows an older version left in
// the access-token table) and returns how many it removed. Rows without
// an expiry (refresh tokens issued with an unlimited lifespan) are kept.
// On MySQL it deletes in batches so that no long lock is held.
func (s *Store) DeleteExpired(ctx context.Context, before time.Time) (int64, error) {
	before = dbTime(before)
	var total int64
	for _, table := range []string{tableLegacyAccessTokens, tableRefreshTokens, tableRevocations, tableDPoPProofs, tableAuthorizationCodes, tableAuthSessions} {
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
