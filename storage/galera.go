package storage

import (
	"context"
	crand "crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
)

// This file holds what makes the store correct on a MariaDB Galera
// cluster (synchronous multi-primary replication), where replicas write
// to different nodes at once:
//
//   - Sessions read causally (galeraSessions): a read waits until the node
//     has applied every write committed anywhere before it began, so a
//     user who signed up through one replica can log in at once through
//     another.
//   - Certification conflicts are retried where a retry is correct
//     (retryConflicts): Galera certifies a transaction at commit, and a
//     conflicting one on another node fails with a deadlock error (1213),
//     which a single server returns only for real deadlocks.
//   - Migrations are serialized by a lease in a replicated table
//     (leaseLock), since GET_LOCK is local to a node.
//   - A login writes its user's row (LockUser), since row locks are local
//     to a node and would not stop a concurrent password change.

// maxConflictAttempts bounds the attempts of a transaction that keeps
// losing certification (or a deadlock) to concurrent writers. A password
// change races every login of its user (both write the user's row): with
// logins streaming through the other nodes, it may lose several times
// before it wins.
const maxConflictAttempts = 12

// retryConflicts runs attempt until it returns an error that is not a
// deadlock or certification conflict (classConflict), at most
// maxConflictAttempts times, with a short randomized pause between
// attempts, and returns its last error. Use it only for work that is
// correct to repeat from the start: a whole transaction, or a statement
// outside one; never for a statement inside a transaction the caller
// owns, whose earlier statements a conflict has rolled back.
func retryConflicts(ctx context.Context, attempt func() error) error {
	var err error
	for i := range maxConflictAttempts {
		if err = attempt(); classify(err) != classConflict || i == maxConflictAttempts-1 {
			return err
		}
		pause := time.Duration(1+rand.IntN(2+3*i)) * time.Millisecond
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
	}
	return err
}

// write runs fn once on the transaction ctx carries, or, outside one,
// as its own statement(s) retried on conflicts (retryConflicts).
func (s *Store) write(ctx context.Context, fn func(db *gorm.DB) error) error {
	if s.activeTx(ctx) != nil {
		return fn(s.db(ctx))
	}
	return retryConflicts(ctx, func() error { return fn(s.db(ctx)) })
}

// galeraSessions wraps the MySQL connector: on every new connection it
// asks whether the server is a Galera node (wsrep_on) and, if so and the
// DSN does not choose wsrep_sync_wait itself, turns on causal reads for
// the session (wsrep_sync_wait bit 1: SELECT, SHOW and BEGIN wait for the
// node to catch up with the cluster). A plain MySQL or MariaDB server is
// left alone; the check costs one round trip per new connection.
type galeraSessions struct {
	driver.Connector
	// keepSyncWait is set when the DSN sets wsrep_sync_wait itself.
	keepSyncWait bool
	// galera is 1 once a connection found wsrep_on, 2 once one found a
	// server without it.
	galera atomic.Int32
}

// Connect implements driver.Connector.
func (c *galeraSessions) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.setUp(ctx, conn); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}

func (c *galeraSessions) setUp(ctx context.Context, conn driver.Conn) error {
	q, ok := conn.(driver.QueryerContext)
	if !ok {
		return errors.New("storage: mysql connection cannot query")
	}
	vars, err := showValues(ctx, q, "SHOW VARIABLES WHERE Variable_name IN ('wsrep_on', 'wsrep_sync_wait')")
	if err != nil {
		return err
	}
	if !strings.EqualFold(vars["wsrep_on"], "ON") {
		c.galera.Store(2)
		return nil
	}
	c.galera.Store(1)
	if c.keepSyncWait {
		return nil
	}
	if n, err := strconv.Atoi(vars["wsrep_sync_wait"]); err == nil && n&1 == 1 {
		return nil
	}
	e, ok := conn.(driver.ExecerContext)
	if !ok {
		return errors.New("storage: mysql connection cannot execute")
	}
	_, err = e.ExecContext(ctx, "SET SESSION wsrep_sync_wait = @@session.wsrep_sync_wait | 1", nil)
	return err
}

func asString(v driver.Value) string {
	switch v := v.(type) {
	case []byte:
		return string(v)
	case string:
		return v
	}
	return fmt.Sprint(v)
}

// Galera reports whether the store's MySQL server is a Galera cluster
// node (wsrep_on), as seen by the connections made so far: false until
// one is made, and always false on SQLite.
func (s *Store) Galera() bool {
	return s.sessions != nil && s.sessions.galera.Load() == 1
}

// leaseLock is a lock held as a row of the portcullis_locks table, which
// every node of a Galera cluster replicates (GET_LOCK holds only on the
// node it is taken on). The holder renews it every ttl/3, which changes
// the row. A waiter takes the lease over only after it has seen the row
// unchanged for a whole ttl by its own clock: a holder that died frees
// the lease, and the nodes' and replicas' clocks need not agree (the row's
// expires_at, by the holder's node's clock, is only informational).
type leaseLock struct {
	db    *sql.DB
	name  string
	owner string
	ttl   time.Duration
	stop  chan struct{}
	done  chan struct{}
	// lost is set when a renewal found the row no longer ours.
	lost atomic.Bool
}

const leaseTable = "portcullis_locks"

// leaseTTL is how long a lease survives without renewal (a variable for
// tests).
var leaseTTL = 30 * time.Second

// createLeaseTable creates the lock table unless it exists. It is not a
// migration: the migrations run under the lock. It looks for the table
// first: CREATE TABLE IF NOT EXISTS needs the CREATE privilege even when
// the table exists, which an account with data privileges only (replicas
// started after `portcullis migrate` ran as the schema's owner) lacks.
func createLeaseTable(ctx context.Context, db *sql.DB) error {
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.TABLES "+
		"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?", leaseTable).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	_, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+leaseTable+` (
    name       VARCHAR(64)  NOT NULL,
    owner      CHAR(32)     NOT NULL,
    expires_at DATETIME(6)  NOT NULL,
    PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=ascii COLLATE=ascii_bin`)
	return err
}

// acquireLease takes the lease name, waiting up to wait for a holder to
// release it or to stop renewing it for a ttl. The caller must release
// it.
func acquireLease(ctx context.Context, db *sql.DB, name string, wait time.Duration) (*leaseLock, error) {
	deadline := time.Now().Add(wait)
	// Nodes that start together all create the table: Galera runs their
	// DDL in total order, and a node's CREATE can fail with a deadlock
	// (1213) against another's; the table exists then, or soon will.
	for {
		err := createLeaseTable(ctx, db)
		if err == nil {
			break
		}
		if classify(err) != classConflict || time.Now().After(deadline) {
			return nil, fmt.Errorf("migration lock: %w", err)
		}
		if err := leaseBackoff(ctx); err != nil {
			return nil, err
		}
	}
	var b [16]byte
	_, _ = io.ReadFull(cryptoRand, b[:])
	l := &leaseLock{db: db, name: name, owner: hex.EncodeToString(b[:]), ttl: leaseTTL,
		stop: make(chan struct{}), done: make(chan struct{})}
	var seen leaseRow // the holder's row as last seen, and since when
	var since time.Time
	for {
		row, err := l.try(ctx)
		if err == nil && row.Owner != l.owner {
			now := time.Now()
			switch {
			case row != seen:
				seen, since = row, now
			case now.Sub(since) >= l.ttl:
				// Not renewed for a whole ttl: its holder is gone.
				row, err = l.takeOver(ctx, row)
			}
		}
		if err != nil && classify(err) != classConflict {
			return nil, fmt.Errorf("migration lock: %w", err)
		}
		if err == nil && row.Owner == l.owner {
			go l.renew()
			return l, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("migration lock: %s still held by another process after %s", name, wait)
		}
		if err := leaseBackoff(ctx); err != nil {
			return nil, err
		}
	}
}

// leaseBackoff waits 100 to 300 ms before acquireLease tries again, or
// returns the context's error.
func leaseBackoff(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return fmt.Errorf("migration lock: %w", ctx.Err())
	case <-time.After(time.Duration(100+rand.IntN(200)) * time.Millisecond):
		return nil
	}
}

// cryptoRand is the source of lease owner IDs.
var cryptoRand io.Reader = crand.Reader

// leaseRow is a lease's row as read.
type leaseRow struct {
	Owner   string
	Renewed string // expires_at as text: any change is a renewal
}

// try inserts the lease unless it exists and returns its row. The
// insert is one statement that every node certifies: of two nodes
// inserting at once, one commits and the other fails with a conflict
// (retried by the server or the caller), then sees the winner's row.
func (l *leaseLock) try(ctx context.Context) (leaseRow, error) {
	if _, err := l.db.ExecContext(ctx, "INSERT INTO "+leaseTable+" (name, owner, expires_at) "+
		"VALUES (?, ?, NOW(6) + INTERVAL ? SECOND) ON DUPLICATE KEY UPDATE owner = owner",
		l.name, l.owner, int(l.ttl/time.Second)); err != nil {
		return leaseRow{}, err
	}
	return l.read(ctx)
}

// read returns the lease's row; none (a zero leaseRow) when its holder
// released it since this process's INSERT found it there.
func (l *leaseLock) read(ctx context.Context) (leaseRow, error) {
	var r leaseRow
	err := l.db.QueryRowContext(ctx, "SELECT owner, CAST(expires_at AS CHAR) FROM "+leaseTable+" WHERE name = ?", l.name).
		Scan(&r.Owner, &r.Renewed)
	if errors.Is(err, sql.ErrNoRows) {
		return leaseRow{}, nil
	}
	return r, err
}

// takeOver replaces the lease row seen, unless it changed meanwhile,
// and returns the row as it is then.
func (l *leaseLock) takeOver(ctx context.Context, seen leaseRow) (leaseRow, error) {
	if _, err := l.db.ExecContext(ctx, "UPDATE "+leaseTable+" SET owner = ?, expires_at = NOW(6) + INTERVAL ? SECOND "+
		"WHERE name = ? AND owner = ? AND CAST(expires_at AS CHAR) = ?",
		l.owner, int(l.ttl/time.Second), l.name, seen.Owner, seen.Renewed); err != nil {
		return leaseRow{}, err
	}
	return l.read(ctx)
}

// renew extends the lease every ttl/3 until release. A renewal that finds
// the row no longer ours (taken over after a stall longer than the ttl)
// marks the lease lost.
func (l *leaseLock) renew() {
	defer close(l.done)
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), l.ttl/3)
			res, err := l.db.ExecContext(ctx, "UPDATE "+leaseTable+" SET expires_at = NOW(6) + INTERVAL ? SECOND "+
				"WHERE name = ? AND owner = ?", int(l.ttl/time.Second), l.name, l.owner)
			cancel()
			if err == nil {
				if n, err := res.RowsAffected(); err == nil && n == 0 {
					l.lost.Store(true)
				}
			}
		}
	}
}

// release stops renewing and deletes the lease if this owner still holds
// it. It reports a lease lost while held (another process may have run
// migrations at the same time).
func (l *leaseLock) release(ctx context.Context) error {
	close(l.stop)
	<-l.done
	err := retryConflicts(ctx, func() error {
		_, err := l.db.ExecContext(ctx, "DELETE FROM "+leaseTable+" WHERE name = ? AND owner = ?", l.name, l.owner)
		return err
	})
	if l.lost.Load() {
		return errors.Join(errors.New("the lease was taken over while held: it was not renewed for "+l.ttl.String()), err)
	}
	return err
}

// GaleraReport describes the Galera node a store's MySQL connection
// reaches, for the start-up log.
type GaleraReport struct {
	// ClusterSize is wsrep_cluster_size, the nodes in the primary
	// component.
	ClusterSize string
	// Problems lists settings that differ from what Portcullis needs (see
	// deploy/galera/portcullis.cnf), each as one sentence.
	Problems []string
}

// CheckGalera reads the settings Portcullis needs from a Galera node:
// binlog_format=ROW, innodb_autoinc_lock_mode=2 and, for the CLI and
// other clients (the store sets it on its own sessions), causal reads
// (wsrep_sync_wait). It returns nil when the server is not a Galera node.
func (s *Store) CheckGalera(ctx context.Context) (*GaleraReport, error) {
	if s.driver != DriverMySQL {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.queryTimeout)
	defer cancel()
	var on sql.NullString
	row := s.pool.QueryRowContext(ctx, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES WHERE VARIABLE_NAME = 'WSREP_ON'")
	if err := row.Scan(&on); errors.Is(err, sql.ErrNoRows) || (err == nil && !strings.EqualFold(on.String, "ON")) {
		return nil, nil
	} else if err != nil {
		return nil, s.wrapf(err, "storage: check galera")
	}
	var binlog, autoinc, syncWait, provider, size string
	if err := s.pool.QueryRowContext(ctx, "SELECT @@GLOBAL.binlog_format, @@GLOBAL.innodb_autoinc_lock_mode, @@GLOBAL.wsrep_sync_wait, "+
		"@@GLOBAL.wsrep_provider_options, "+
		"(SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_CLUSTER_SIZE')").
		Scan(&binlog, &autoinc, &syncWait, &provider, &size); err != nil {
		return nil, s.wrapf(err, "storage: check galera")
	}
	r := &GaleraReport{ClusterSize: size}
	if !strings.EqualFold(binlog, "ROW") {
		r.Problems = append(r.Problems, "binlog_format is "+binlog+", Galera needs ROW")
	}
	if autoinc != "2" {
		r.Problems = append(r.Problems, "innodb_autoinc_lock_mode is "+autoinc+", Galera needs 2 (interleaved)")
	}
	if n, err := strconv.Atoi(syncWait); err != nil || n&1 == 0 {
		r.Problems = append(r.Problems, "wsrep_sync_wait is "+syncWait+": Portcullis reads causally on its own sessions, "+
			"but the CLI's and other clients' reads through another node may miss a write just committed (set 1)")
	}
	if suspect, ok := providerDuration(provider, "evs.suspect_timeout"); ok && s.queryTimeout <= suspect+time.Second {
		r.Problems = append(r.Problems, fmt.Sprintf("database.query_timeout (%s) is not longer than the cluster's evs.suspect_timeout (%s) "+
			"plus a second: while the cluster evicts a crashed node, writes on every node wait that long, "+
			"and requests time out (503) on the surviving nodes too", s.queryTimeout, suspect))
	}
	return r, nil
}

// providerDuration reads an ISO 8601 duration of whole or fractional
// seconds and minutes ("PT5S", "PT1M30S", "PT0.5S") named key from
// wsrep_provider_options ("key = value; key = value").
func providerDuration(options, key string) (time.Duration, bool) {
	for _, kv := range strings.Split(options, ";") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) != key {
			continue
		}
		v = strings.ToUpper(strings.TrimSpace(v))
		rest, ok := strings.CutPrefix(v, "PT")
		if !ok {
			return 0, false
		}
		d, err := time.ParseDuration(strings.ToLower(rest))
		return d, err == nil
	}
	return 0, false
}
