// Package storage is Portcullis's one persistence layer: a single concrete
// *Store, built on gorm, that implements every storage interface the
// server declares — identity.Store, clients.Store, oauth.TokenStore
// (fosite's client, token, revocation and transaction storage, with
// clients presented as oauth.Client) and keys.Store — over two backends:
//
//   - SQLite, embedded and pure Go (github.com/glebarez/sqlite), the
//     default: "sqlite://PATH". The database runs in WAL mode with
//     foreign keys on and exactly one open connection, so writers never
//     race each other for the file lock.
//   - MySQL or MariaDB (gorm.io/driver/mysql):
//     "mysql://USER:PASS@tcp(HOST:PORT)/DB?parseTime=true".
//
// # Schema
//
// The schema of record is the numbered, append-only list of SQL
// migrations embedded under migrations/sqlite and migrations/mysql, run by
// goose (Store.Migrate) and recorded in the goose_db_version table. Every
// MySQL migration holds exactly one DDL statement, because MySQL commits
// DDL implicitly, and every statement is idempotent (CREATE TABLE IF NOT
// EXISTS with its indexes inline). Concurrent Migrate calls from several
// replicas serialize on a MySQL named lock (GET_LOCK). gorm's AutoMigrate
// is never used. Open does not migrate.
//
// # Errors
//
// Methods of identity.Store, clients.Store and keys.Store return errors
// matching ErrNotFound and ErrAlreadyExists (errors.Is). The fosite methods
// return fosite.ErrNotFound for unknown tokens and clients, and a used or
// revoked refresh token comes back as its stored requester together with
// fosite.ErrInactiveToken. MySQL deadlocks and lock-wait timeouts in token
// methods match fosite.ErrSerializationFailure. Any error caused by an
// unreachable or overloaded database matches apperr.ErrUnavailable, which
// the HTTP layer turns into 503 temporarily_unavailable.
//
// # Transactions
//
// BeginTX stores a transaction in the returned context and every method
// uses it when present. With SQLite's single writer connection a method that
// ignored it would wait for itself forever, so callers must pass the
// context BeginTX returned to every call made inside the transaction.
//
// # Tokens
//
// Only refresh tokens are stored: access tokens are stateless JWTs.
// Refresh-token rows are keyed by the hex SHA-256 of fosite's signature, so
// the raw signature is never stored. Rotating marks the old refresh token
// inactive; revoking a token family marks its refresh tokens inactive and
// records the revocation of the grant in oauth2_revocations
// (RevokeAccessToken, RevokeSubject), which replicas poll through
// RevocationsAfter (oauth/revocation). Inactive refresh tokens stay until
// they expire so that reuse is detected. DeleteExpired removes expired
// refresh tokens and revocations.
//
// The conformance suite every backend must pass lives in
// storage/storagetest.
package storage
