package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"

	"github.com/portcullis-auth/portcullis/audit"
	"github.com/portcullis-auth/portcullis/internal/apperr"
)

// txKey is the context key under which BeginTX stores a *txState.
type txKey struct{}

// txState is one BeginTX caller's view of a transaction. The caller that
// began it owns it; a nested BeginTX returns a non-owning view of the same
// transaction whose Commit does nothing and whose Rollback marks the
// transaction rollback-only, so the owner's Commit fails.
type txState struct {
	store  *Store
	owner  bool
	shared *txShared
}

type txShared struct {
	rollbackOnly atomic.Bool
	done         atomic.Bool
	// revoked records a revocation written in the transaction: Commit
	// then runs the store's OnRevoke hook.
	revoked atomic.Bool

	// The database transaction begins with its first statement (begin):
	// work done between BeginTX and the first statement (fosite signs the
	// new access token there) holds no connection, which with SQLite's
	// single connection would serialise every other request behind it.
	mu       sync.Mutex
	tx       *gorm.DB // nil until begun
	beginErr error
	// audited holds the audit events written in the transaction, for
	// the OnAudit hook once it commits.
	audited []audit.Event
	// ctx is the transaction's lifetime: the caller's context of BeginTX
	// bounded by the query timeout. database/sql rolls the transaction
	// back when it ends; every statement of the transaction gets its
	// deadline.
	ctx      context.Context
	deadline time.Time
	cancel   context.CancelFunc
}

// errRollbackOnly is returned by the owner's Commit after a nested
// Rollback.
var errRollbackOnly = errors.New("storage: transaction rolled back by a nested caller")

// errNoTx is returned by Commit and Rollback without BeginTX.
var errNoTx = errors.New("storage: no transaction in context")

func (s *Store) txFrom(ctx context.Context) *txState {
	st, ok := ctx.Value(txKey{}).(*txState)
	if !ok || st.store != s {
		return nil
	}
	return st
}

// activeTx is txFrom for a transaction that is not finished yet.
func (s *Store) activeTx(ctx context.Context) *txState {
	if st := s.txFrom(ctx); st != nil && !st.shared.done.Load() {
		return st
	}
	return nil
}

// db returns the transaction carried by ctx (beginning it if this is its
// first statement), or the base handle, bound to ctx. Every method issues
// its statements through it, and every statement gets a deadline
// (startDeadline). If the transaction cannot begin, the returned handle
// carries the error, which its first statement returns.
func (s *Store) db(ctx context.Context) *gorm.DB {
	if st := s.activeTx(ctx); st != nil {
		tx, err := s.begin(st.shared)
		if err != nil {
			g := s.gdb.WithContext(ctx)
			_ = g.AddError(err)
			return g
		}
		return tx.WithContext(ctx)
	}
	return s.gdb.WithContext(ctx)
}

// begin begins sh's database transaction unless it has begun, bounded by
// its deadline.
func (s *Store) begin(sh *txShared) (*gorm.DB, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.tx != nil || sh.beginErr != nil {
		return sh.tx, sh.beginErr
	}
	if sh.done.Load() {
		return nil, errors.New("storage: transaction already finished")
	}
	tx := s.gdb.WithContext(sh.ctx).Begin(s.txOptions())
	if tx.Error != nil {
		sh.beginErr = s.wrapFosite(ended(sh.ctx, tx.Error), "storage: begin transaction")
		return nil, sh.beginErr
	}
	sh.tx = tx
	return tx, nil
}

// begun returns sh's database transaction, nil if no statement began it,
// and the error of a BEGIN that failed.
func (sh *txShared) begun() (*gorm.DB, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.tx, sh.beginErr
}

// inTx runs fn in a transaction: a new one, bounded as a whole by the
// query timeout and run again from the start when it loses to a
// concurrent writer (a deadlock, or a Galera certification conflict:
// retryConflicts), or a savepoint inside the one ctx carries (bounded by
// that one's deadline; the owner of that one decides). An error from fn rolls back and is returned
// unchanged; a transaction cut off by the timeout is rolled back and
// reported with context.DeadlineExceeded in its chain.
func (s *Store) inTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	if st := s.activeTx(ctx); st != nil {
		// Begin (or join) the caller's transaction first: gorm's
		// Transaction on a handle carrying a BEGIN error would begin
		// another transaction on the base pool and, returning that error,
		// never end it.
		tx, err := s.begin(st.shared)
		if err != nil {
			return err
		}
		return tx.WithContext(ctx).Transaction(fn)
	}
	ctx, cancel := context.WithTimeout(ctx, s.queryTimeout)
	defer cancel()
	return retryConflicts(ctx, func() error {
		return ended(ctx, s.db(ctx).Transaction(fn, s.txOptions()))
	})
}

// ended adds ctx's error to err when ctx is done: database/sql reports a
// transaction it rolled back at the deadline as sql.ErrTxDone, which alone
// would not say why.
func ended(ctx context.Context, err error) error {
	cerr := ctx.Err()
	if err == nil || cerr == nil || errors.Is(err, cerr) {
		return err
	}
	return fmt.Errorf("%w: %w", cerr, err)
}

// deadlineSetting is the gorm statement setting under which startDeadline
// leaves what endDeadline restores.
const deadlineSetting = "portcullis:deadline"

type stmtDeadline struct {
	parent context.Context
	cancel context.CancelFunc
}

// registerDeadlines makes every statement gorm runs on db for store s carry a
// deadline: the one of the transaction ctx carries (BeginTX), else now
// plus the query timeout, unless the caller's own is sooner. Waiting for a
// pool connection counts against it. The row processor (Row, Rows, Scan)
// is left alone, since its rows are read after the callbacks return; the
// store does not use it.
func registerDeadlines(s *Store, db *gorm.DB) error {
	const start, end = "portcullis:deadline", "portcullis:deadline_end"
	cb := db.Callback()
	return errors.Join(
		cb.Create().Before("*").Register(start, s.startDeadline),
		cb.Create().After("*").Register(end, endDeadline),
		cb.Query().Before("*").Register(start, s.startDeadline),
		cb.Query().After("*").Register(end, endDeadline),
		cb.Update().Before("*").Register(start, s.startDeadline),
		cb.Update().After("*").Register(end, endDeadline),
		cb.Delete().Before("*").Register(start, s.startDeadline),
		cb.Delete().After("*").Register(end, endDeadline),
		cb.Raw().Before("*").Register(start, s.startDeadline),
		cb.Raw().After("*").Register(end, endDeadline),
	)
}

func (s *Store) startDeadline(db *gorm.DB) {
	ctx := db.Statement.Context
	deadline := time.Now().Add(s.queryTimeout)
	if st := s.activeTx(ctx); st != nil {
		deadline = st.shared.deadline
	}
	if d, ok := ctx.Deadline(); ok && !d.After(deadline) {
		return
	}
	bounded, cancel := context.WithDeadline(ctx, deadline)
	db.Statement.Context = bounded
	db.Statement.Settings.Store(deadlineSetting, stmtDeadline{parent: ctx, cancel: cancel})
}

func endDeadline(db *gorm.DB) {
	if v, ok := db.Statement.Settings.LoadAndDelete(deadlineSetting); ok {
		d := v.(stmtDeadline)
		d.cancel()
		db.Statement.Context = d.parent
	}
}

// txOptions selects READ COMMITTED on MySQL. Our transactions need no
// snapshot: every check-then-write is a locking read (SELECT … FOR
// UPDATE) or a conditional UPDATE, which read the latest committed row at
// any level. InnoDB's default REPEATABLE READ additionally takes gap
// locks on index ranges (DELETE … WHERE request_id = ?), and with those,
// refreshes of unrelated token families deadlock each other under load
// (measured: BenchmarkRefreshRotation/mysql/parallel). SQLite transactions
// are serializable whatever is asked, so it gets the default.
func (s *Store) txOptions() *sql.TxOptions {
	if s.driver == DriverMySQL {
		return &sql.TxOptions{Isolation: sql.LevelReadCommitted}
	}
	return nil
}

// BeginTX implements fosite's storage.Transactional. It starts a
// transaction and returns a context carrying it; pass that context to
// every call that belongs to the transaction, then to Commit or Rollback.
// If ctx already carries a transaction of this Store, BeginTX joins it:
// the returned context's Commit is a no-op and its Rollback makes the
// outer Commit fail, so the outermost caller decides.
//
// The transaction, waiting for its connection included, must finish
// within the query timeout (Options.QueryTimeout) of BeginTX: at the
// deadline it is rolled back, and its statements and Commit fail with an
// error matching apperr.ErrUnavailable. The returned context itself gets
// no deadline, so the caller's other work is not cut short.
func (s *Store) BeginTX(ctx context.Context) (context.Context, error) {
	if st := s.activeTx(ctx); st != nil {
		return context.WithValue(ctx, txKey{}, &txState{store: s, shared: st.shared}), nil
	}
	txCtx, cancel := context.WithTimeout(ctx, s.queryTimeout)
	deadline, _ := txCtx.Deadline()
	shared := &txShared{ctx: txCtx, deadline: deadline, cancel: cancel}
	return context.WithValue(ctx, txKey{}, &txState{store: s, owner: true, shared: shared}), nil
}

// Commit implements fosite's storage.Transactional. It commits the
// transaction BeginTX put in ctx, or does nothing for a nested BeginTX.
// It fails if a nested caller rolled back (the transaction is then rolled
// back) or if ctx carries no transaction.
func (s *Store) Commit(ctx context.Context) error {
	st := s.txFrom(ctx)
	if st == nil {
		return errNoTx
	}
	if !st.owner {
		return nil
	}
	if st.shared.done.Swap(true) {
		return errors.New("storage: transaction already finished")
	}
	defer st.shared.cancel()
	tx, beginErr := st.shared.begun()
	if st.shared.rollbackOnly.Load() {
		if tx != nil {
			_ = tx.Rollback().Error
		}
		return errRollbackOnly
	}
	if beginErr != nil {
		return beginErr
	}
	if tx == nil {
		return nil // no statement: nothing to commit
	}
	if err := tx.Commit().Error; err != nil {
		return s.wrapFosite(ended(st.shared.ctx, err), "storage: commit")
	}
	if st.shared.revoked.Load() {
		s.notifyRevoked(ctx)
	}
	s.notifyAudited(st.shared)
	return nil
}

// Rollback implements fosite's storage.Transactional. It rolls back the
// transaction BeginTX put in ctx; for a nested BeginTX it marks the
// transaction so that the owner's Commit fails. Rolling back a finished
// transaction, or one the deadline already rolled back, is a no-op.
func (s *Store) Rollback(ctx context.Context) error {
	st := s.txFrom(ctx)
	if st == nil {
		return errNoTx
	}
	if !st.owner {
		st.shared.rollbackOnly.Store(true)
		return nil
	}
	if st.shared.done.Swap(true) {
		return nil
	}
	defer st.shared.cancel()
	tx, _ := st.shared.begun()
	if tx == nil {
		return nil
	}
	if err := tx.Rollback().Error; err != nil {
		if errors.Is(err, sql.ErrTxDone) && st.shared.ctx.Err() != nil {
			return nil
		}
		return s.wrapFosite(ended(st.shared.ctx, err), "storage: rollback")
	}
	return nil
}

// InTx implements identity.Store: it runs fn in a transaction carried by
// the context fn receives (BeginTX), so every method of this Store that
// fn calls with that context takes part in it. An error from fn, or a
// panic, rolls back; fn's error is returned unchanged. Otherwise the
// commit's result is returned. A transaction that loses to a concurrent
// writer (a deadlock, or a Galera certification conflict) is rolled back
// and fn runs again in a new one (retryConflicts), so fn must do nothing
// but its database work through ctx. Inside another transaction of this
// Store, fn joins it and the outermost caller commits.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	if s.activeTx(ctx) != nil {
		return s.inTxOnce(ctx, fn)
	}
	err := retryConflicts(ctx, func() error { return s.inTxOnce(ctx, fn) })
	if classify(err) == classConflict && !errors.Is(err, apperr.ErrUnavailable) {
		// Lost to concurrent writers through every retry (a hot row on a
		// Galera cluster): the caller may retry later (503), as for
		// every other conflict that outlasts its retries (wrapf).
		return fmt.Errorf("%w: %w", apperr.ErrUnavailable, err)
	}
	return err
}

func (s *Store) inTxOnce(ctx context.Context, fn func(ctx context.Context) error) (err error) {
	txCtx, err := s.BeginTX(ctx)
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			_ = s.Rollback(txCtx)
		}
	}()
	if err := fn(txCtx); err != nil {
		done = true
		if rerr := s.Rollback(txCtx); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	done = true
	return s.Commit(txCtx)
}
