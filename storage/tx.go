package storage

import (
	"context"
	"database/sql"
	"errors"
	"sync/atomic"

	"gorm.io/gorm"
)

// txKey is the context key under which BeginTX stores a *txState.
type txKey struct{}

// txState is one BeginTX caller's view of a transaction. The caller that
// began it owns it; a nested BeginTX returns a non-owning view of the same
// transaction whose Commit does nothing and whose Rollback marks the
// transaction rollback-only, so the owner's Commit fails.
type txState struct {
	store  *Store
	tx     *gorm.DB
	owner  bool
	shared *txShared
}

type txShared struct {
	rollbackOnly atomic.Bool
	done         atomic.Bool
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

// db returns the transaction carried by ctx, or the base handle, bound to
// ctx. Every method issues its statements through it.
func (s *Store) db(ctx context.Context) *gorm.DB {
	if st := s.txFrom(ctx); st != nil && !st.shared.done.Load() {
		return st.tx.WithContext(ctx)
	}
	return s.gdb.WithContext(ctx)
}

// inTx runs fn in a transaction: a new one, or a savepoint inside the one
// ctx carries. An error from fn rolls back and is returned unchanged.
func (s *Store) inTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	if s.txFrom(ctx) != nil {
		return s.db(ctx).Transaction(fn)
	}
	return s.db(ctx).Transaction(fn, s.txOptions())
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
func (s *Store) BeginTX(ctx context.Context) (context.Context, error) {
	if st := s.txFrom(ctx); st != nil && !st.shared.done.Load() {
		return context.WithValue(ctx, txKey{}, &txState{store: s, tx: st.tx, shared: st.shared}), nil
	}
	tx := s.gdb.WithContext(ctx).Begin(s.txOptions())
	if tx.Error != nil {
		return ctx, s.wrapFosite(tx.Error, "storage: begin transaction")
	}
	return context.WithValue(ctx, txKey{}, &txState{store: s, tx: tx, owner: true, shared: &txShared{}}), nil
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
	if st.shared.rollbackOnly.Load() {
		_ = st.tx.Rollback().Error
		return errRollbackOnly
	}
	if err := st.tx.Commit().Error; err != nil {
		return s.wrapFosite(err, "storage: commit")
	}
	return nil
}

// Rollback implements fosite's storage.Transactional. It rolls back the
// transaction BeginTX put in ctx; for a nested BeginTX it marks the
// transaction so that the owner's Commit fails. Rolling back a finished
// transaction is a no-op.
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
	if err := st.tx.Rollback().Error; err != nil {
		return s.wrapFosite(err, "storage: rollback")
	}
	return nil
}
