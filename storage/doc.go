// Package storage is Portcullis's one persistence layer: a single concrete
// *Store, built on gorm, that implements every storage interface the
// server declares — identity.Store, identity.FactorStore,
// identity.RecoveryCodeStore, clients.Store, oauth.TokenStore
// (fosite's client, token, revocation and transaction storage, with
// clients presented as oauth.Client), keys.Store and dpop.ReplayCache —
// over two backends:
//
//   - SQLite, embedded and pure Go (github.com/glebarez/sqlite), the
//     default: "sqlite://PATH". The database runs in WAL mode with
//     foreign keys on and exactly one open connection, so writers never
//     race each other for the file lock.
//   - MySQL or MariaDB (gorm.io/driver/mysql):
//     "mysql://USER:PASS@tcp(HOST:PORT)/DB?parseTime=true", or with
//     several servers for fail-over, such as the nodes of a MariaDB Galera
//     cluster: "mysql://USER:PASS@tcp(H1:3306),tcp(H2:3306),tcp(H3:3306)/DB".
//
// # Fail-over
//
// A MySQL DSN that lists several servers (ParseDSN) gets a connector that
// sends each new connection to the first server, in the DSN's order, that
// accepts it within the per-host timeout (the timeout parameter; default
// 1s, or half the query timeout if less) and can serve: a server without
// wsrep, or a Galera node that is synced (wsrep_ready ON,
// wsrep_local_state 4), as MariaDB Connector/J's "sequential" mode and
// libpq's multi-host strings do. It does not balance load. A server found
// dead or not ready (refused or reset connections, a statement cut off by
// the query timeout, errors 1047 or 1205) is tried after the others for
// 30s, and every pooled connection made to it before is dropped instead
// of being used again. A statement that such a server refused without
// running it, outside a transaction, runs again on another connection,
// so the request does not fail; a transaction cut off by a node's failure
// fails with an error matching apperr.ErrUnavailable (503). Connections
// do not move back to a recovered server until they are recycled
// (Options.ConnMaxLifetime, ConnMaxIdleTime).
//
// # Schema
//
// The schema of record is the numbered, append-only list of SQL
// migrations embedded under migrations/sqlite and migrations/mysql, run by
// goose (Store.Migrate) and recorded in the goose_db_version table. Every
// MySQL migration holds exactly one DDL statement, because MySQL commits
// DDL implicitly, and every statement is idempotent (CREATE TABLE IF NOT
// EXISTS with its indexes inline). Concurrent Migrate calls from several
// replicas serialize on a lease in a replicated table and a MySQL named
// lock (GET_LOCK; see the Galera section). gorm's AutoMigrate is never
// used. Open does not migrate.
//
// # Errors
//
// Methods of identity.Store, clients.Store and keys.Store return errors
// matching ErrNotFound and ErrAlreadyExists (errors.Is). The fosite methods
// return fosite.ErrNotFound for unknown tokens and clients, and a used or
// revoked refresh token comes back as its stored requester together with
// fosite.ErrInactiveToken. MySQL deadlocks and Galera certification
// conflicts in token methods match fosite.ErrSerializationFailure. Any
// error caused by an unreachable or overloaded database matches
// apperr.ErrUnavailable, which the HTTP layer turns into 503
// temporarily_unavailable: among them a Galera node that is not ready
// (error 1047, outside the primary component or rejecting queries) and a
// lock-wait timeout (1205, which is also how a Galera node reports a
// causal read it cannot complete).
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
// # DPoP proofs
//
// AddProof (dpop.ReplayCache, RFC 9449 §11.1) records each accepted DPoP
// proof in dpop_proofs, keyed by the ID package oauth/dpop derives from
// the proof's key and jti, so that a proof replayed to any replica is
// found: the primary key lets exactly one of concurrent inserts of an ID
// succeed, on a Galera cluster too (the loser's certification conflict is
// retried and then finds the row). DeleteExpired removes proofs whose
// expiry has passed.
//
// # Second factors
//
// user_factors holds the users' TOTP factors (identity.FactorStore) with
// their secrets sealed by package identity/totp: the store keeps and
// returns the sealed bytes and the wrap-key ID, as for signing keys, and
// never handles a secret. user_recovery_codes holds the SHA-256 digests of
// recovery codes (identity.RecoveryCodeStore). A TOTP step or a recovery
// code is used with one conditional UPDATE (last_used_step < step, used_at
// IS NULL), so that of concurrent uses on any replicas, through any nodes
// of a Galera cluster, exactly one succeeds. DeleteUser deletes a user's
// factors and codes in its transaction (SQLite's foreign keys would too;
// MySQL's tables have none, as for refresh tokens).
//
// # MariaDB Galera (multi-primary)
//
// Replicas may write through different nodes of a MariaDB Galera cluster
// at once (galera.go). Open's connections find out whether their server
// is a Galera node (wsrep_on) and then read causally (wsrep_sync_wait
// bit 1, unless the DSN sets wsrep_sync_wait itself), so a write committed
// through one node is read at once through another. A transaction that
// loses certification to a concurrent one on another node fails with a
// deadlock error (1213); whole transactions the store owns, and single
// statements outside a transaction, are run again (up to 12 attempts),
// and a conflict that outlasts them matches apperr.ErrUnavailable (503),
// in token methods also fosite.ErrSerializationFailure, on which the
// token endpoint runs its transaction again. Row locks are local to a
// node, so nothing relies on a read lock against another node's writer:
// LockUser writes the user's row (last_login_at), which certification
// compares with a password change's write of that row. Migrate takes a
// lease in the portcullis_locks table (created outside the migrations),
// which every node replicates, besides the node-local GET_LOCK. Every
// table has a primary key, as Galera needs. CheckGalera reports the
// node's settings that differ from what Portcullis needs
// (deploy/galera/portcullis.cnf).
//
// The conformance suite every backend must pass lives in
// storage/storagetest; its cross-replica race suite (RunReplicas) runs on
// SQLite, MySQL and a three-node Galera cluster.
package storage
