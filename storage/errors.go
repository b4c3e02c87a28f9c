package storage

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	gosqlite "github.com/glebarez/go-sqlite"
	gomysql "github.com/go-sql-driver/mysql"
	"github.com/ory/fosite"
	"gorm.io/gorm"

	"github.com/portcullis-auth/portcullis/internal/apperr"
)

// errClass is what an error from the driver means to callers.
type errClass int

const (
	classOther errClass = iota
	classNotFound
	classDuplicate
	classUnavailable
	classConflict // deadlock or Galera certification conflict: retry may succeed
)

// SQLite result codes (primary codes; extended codes carry them in the
// low byte).
const (
	sqliteBusy       = 5
	sqliteLocked     = 6
	sqliteConstraint = 19
	sqliteUnique     = 2067 // SQLITE_CONSTRAINT_UNIQUE
	sqlitePrimaryKey = 1555 // SQLITE_CONSTRAINT_PRIMARYKEY
)

// MySQL server error numbers.
const (
	mysqlDupEntry        = 1062
	mysqlLockWaitTimeout = 1205
	mysqlDeadlock        = 1213
	mysqlServerShutdown  = 1053
	mysqlTooManyConns    = 1040
	mysqlConnKilled      = 1927 // MariaDB ER_CONNECTION_KILLED
	mysqlQueryKilled     = 1317
	mysqlReadOnly        = 1290 // --read-only during fail-over
	mysqlReadOnlyTx      = 1792
	// mysqlWsrepNotReady is ER_UNKNOWN_COM_ERROR, which a Galera node
	// answers ("WSREP has not yet prepared node for application use")
	// to every statement that touches a table, BEGIN and COMMIT included,
	// while it is outside the primary component (it lost quorum, or is
	// shutting down) or set to wsrep_reject_queries. Only SET, SHOW and
	// table-less SELECTs still pass.
	mysqlWsrepNotReady = 1047
)

// classify maps a driver or gorm error to its class.
func classify(err error) errClass {
	if err == nil {
		return classOther
	}
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return classNotFound
	}
	if me, ok := errors.AsType[*gomysql.MySQLError](err); ok {
		switch me.Number {
		case mysqlDupEntry:
			return classDuplicate
		case mysqlDeadlock:
			return classConflict
		case mysqlServerShutdown, mysqlTooManyConns, mysqlConnKilled, mysqlQueryKilled, mysqlReadOnly, mysqlReadOnlyTx,
			mysqlWsrepNotReady:
			return classUnavailable
		case mysqlLockWaitTimeout:
			// A Galera node reports a causal read (wsrep_sync_wait) that
			// cannot complete, because it is losing or has lost the
			// primary component, as a lock-wait timeout. InnoDB's own
			// lock wait (innodb_lock_wait_timeout, 50s by default) is far
			// longer than the query timeout that bounds every statement,
			// so here this error means the node cannot serve: retry
			// later, and never read it as a lost race (a refresh would
			// answer invalid_grant).
			return classUnavailable
		}
		return classOther
	}
	if se, ok := errors.AsType[*gosqlite.Error](err); ok {
		switch code := se.Code(); {
		case code == sqliteUnique || code == sqlitePrimaryKey:
			return classDuplicate
		case code&0xff == sqliteConstraint && strings.Contains(se.Error(), "UNIQUE constraint failed"):
			return classDuplicate
		case code&0xff == sqliteBusy || code&0xff == sqliteLocked:
			return classUnavailable
		}
		return classOther
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return classUnavailable
	}
	switch {
	case errors.Is(err, driver.ErrBadConn),
		errors.Is(err, errNodeNotReady),
		errors.Is(err, gomysql.ErrInvalidConn),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE),
		errors.Is(err, context.DeadlineExceeded):
		return classUnavailable
	}
	return classOther
}

// wrapf translates err for identity, client and key methods and adds
// context: not-found and duplicate errors become ErrNotFound and
// ErrAlreadyExists, unreachable-database errors and conflicts (deadlocks,
// Galera certification failures) that outlasted their retries match
// apperr.ErrUnavailable, anything else is wrapped with %w.
func (s *Store) wrapf(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	msg := fmt.Sprintf(format, args...)
	switch classify(err) {
	case classNotFound:
		return fmt.Errorf("%s: %w", msg, ErrNotFound)
	case classDuplicate:
		return fmt.Errorf("%s: %w: %w", msg, ErrAlreadyExists, err)
	case classUnavailable, classConflict:
		// A conflict still here lost to concurrent writers through
		// every retry: the client may retry later (503).
		return fmt.Errorf("%s: %w: %w", msg, apperr.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// wrapFosite translates err for the fosite methods: not-found becomes
// fosite.ErrNotFound, MySQL deadlocks (and Galera certification
// conflicts) an error wrapping fosite.ErrSerializationFailure (with %w, which leaves the
// shared sentinel untouched), the rest as in wrapf.
func (s *Store) wrapFosite(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	switch classify(err) {
	case classNotFound:
		return fosite.ErrNotFound
	case classConflict:
		return fmt.Errorf("%s: %w: %w", fmt.Sprintf(format, args...), fosite.ErrSerializationFailure, err)
	}
	return s.wrapf(err, format, args...)
}
