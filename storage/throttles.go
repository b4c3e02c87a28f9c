package storage

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/portcullis-auth/portcullis/identity"
)

// throttleRow is the login_throttles table.
type throttleRow struct {
	Key        string    `gorm:"column:throttle_key;primaryKey"`
	AccountKey string    `gorm:"column:account_key"`
	Failures   int       `gorm:"column:failures"`
	LastAt     time.Time `gorm:"column:last_at"`
	ExpiresAt  time.Time `gorm:"column:expires_at"`
}

func (throttleRow) TableName() string { return "login_throttles" }

var _ identity.ThrottleStore = (*Store)(nil)

// maxThrottleAttempts bounds the retries of UpdateThrottles after a MySQL
// deadlock or lock-wait timeout (another replica's update of the same
// counters won).
const maxThrottleAttempts = 3

// throttleLocks serializes, within one process, the updates of an
// account's counters: 64 stripes, picked by a hash of the account key.
type throttleLocks struct {
	once    sync.Once
	stripes [64]chan struct{}
}

// lock waits for account's stripe and returns the function that releases
// it, or ctx's error.
func (l *throttleLocks) lock(ctx context.Context, account string) (unlock func(), err error) {
	l.once.Do(func() {
		for i := range l.stripes {
			l.stripes[i] = make(chan struct{}, 1)
		}
	})
	h := fnv.New32a()
	_, _ = h.Write([]byte(account))
	c := l.stripes[h.Sum32()%uint32(len(l.stripes))]
	select {
	case c <- struct{}{}:
		return func() { <-c }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("storage: update login throttles: %w", context.Cause(ctx))
	}
}

// UpdateThrottles implements identity.ThrottleStore. Each counter row is
// created if missing and locked (INSERT … ON DUPLICATE KEY UPDATE on MySQL,
// which takes the row's exclusive lock whether or not it existed; SQLite's
// single writer serializes), in sorted key order so that concurrent
// updates cannot deadlock each other. They still can on MySQL (a missing
// row is locked through its gap, and rows at zero are deleted), so this
// process runs one update per account at a time, and a deadlock with
// another replica's update is retried.
func (s *Store) UpdateThrottles(ctx context.Context, account string, keys []string, update func([]*identity.Throttle) error) error {
	unlock, err := s.throttleMu.lock(ctx, account)
	if err != nil {
		return err
	}
	defer unlock()
	var updateErr error
	for range maxThrottleAttempts {
		updateErr = nil
		err = s.inTx(ctx, func(tx *gorm.DB) error {
			sorted := slices.Clone(keys)
			slices.Sort(sorted)
			sorted = slices.Compact(sorted)
			placeholder := time.Unix(0, 0).UTC()
			missing := make([]throttleRow, len(sorted))
			for i, k := range sorted {
				missing[i] = throttleRow{Key: k, AccountKey: account, LastAt: placeholder, ExpiresAt: placeholder}
			}
			// One statement creates the missing rows and locks them all,
			// in key order.
			if err := tx.Clauses(clause.OnConflict{
				Columns:   []clause.Column{{Name: "throttle_key"}},
				DoUpdates: clause.Assignments(map[string]any{"failures": gorm.Expr("failures")}),
			}).Create(&missing).Error; err != nil {
				return err
			}
			var rows []throttleRow
			if err := tx.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate}).
				Where("throttle_key IN ?", sorted).Find(&rows).Error; err != nil {
				return err
			}
			byKey := make(map[string]*identity.Throttle, len(rows))
			loaded := make(map[string]identity.Throttle, len(rows))
			for _, r := range rows {
				t := &identity.Throttle{Key: r.Key, Failures: r.Failures}
				if t.Failures > 0 {
					t.LastAt, t.Expires = r.LastAt.UTC(), r.ExpiresAt.UTC()
				}
				byKey[r.Key], loaded[r.Key] = t, *t
			}
			ts := make([]*identity.Throttle, len(keys))
			for i, k := range keys {
				t, ok := byKey[k]
				if !ok {
					return fmt.Errorf("throttle %s vanished", k)
				}
				ts[i] = t
			}
			if updateErr = update(ts); updateErr != nil {
				return updateErr
			}
			// Write back only what changed: one update per counter left
			// changed, one delete for those at zero.
			var changed []throttleRow
			var zero []string
			for _, k := range sorted {
				t := byKey[k]
				if t.Failures <= 0 {
					zero = append(zero, k)
					continue
				}
				if was := loaded[k]; t.Failures == was.Failures && t.LastAt.Equal(was.LastAt) && t.Expires.Equal(was.Expires) {
					continue
				}
				changed = append(changed, throttleRow{Key: k, AccountKey: account, Failures: t.Failures,
					LastAt: dbTime(t.LastAt), ExpiresAt: dbTime(t.Expires)})
			}
			// UPDATE, not an upsert: on MySQL an INSERT … ON DUPLICATE KEY
			// also takes gap locks, and concurrent attempts deadlock.
			for _, r := range changed {
				if err := tx.Model(&throttleRow{}).Where("throttle_key = ?", r.Key).Updates(map[string]any{
					"failures": r.Failures, "last_at": r.LastAt, "expires_at": r.ExpiresAt,
				}).Error; err != nil {
					return err
				}
			}
			if len(zero) > 0 {
				if err := tx.Where("throttle_key IN ?", zero).Delete(&throttleRow{}).Error; err != nil {
					return err
				}
			}
			return nil
		})
		if updateErr != nil && errors.Is(err, updateErr) {
			return updateErr
		}
		if classify(err) != classConflict {
			break
		}
	}
	if err != nil {
		return s.wrapf(err, "storage: update login throttles")
	}
	return nil
}

// AccountThrottles implements identity.ThrottleStore, in queries of at
// most 500 accounts.
func (s *Store) AccountThrottles(ctx context.Context, accounts []string) (map[string][]identity.Throttle, error) {
	out := map[string][]identity.Throttle{}
	for chunk := range slices.Chunk(accounts, 500) {
		var rows []throttleRow
		if err := s.db(ctx).Where("account_key IN ? AND failures > 0", chunk).Order("throttle_key").Find(&rows).Error; err != nil {
			return nil, s.wrapf(err, "storage: read login throttles")
		}
		for _, r := range rows {
			out[r.AccountKey] = append(out[r.AccountKey], identity.Throttle{Key: r.Key, Failures: r.Failures,
				LastAt: r.LastAt.UTC(), Expires: r.ExpiresAt.UTC()})
		}
	}
	return out, nil
}

// ClearThrottles implements identity.ThrottleStore.
func (s *Store) ClearThrottles(ctx context.Context, account string) error {
	if err := s.write(ctx, func(db *gorm.DB) error {
		return db.Where("account_key = ?", account).Delete(&throttleRow{}).Error
	}); err != nil {
		return s.wrapf(err, "storage: clear login throttles")
	}
	return nil
}

// DeleteStaleThrottles implements identity.ThrottleStore.
func (s *Store) DeleteStaleThrottles(ctx context.Context, before time.Time) (int64, error) {
	res := s.db(ctx).Where("expires_at < ?", dbTime(before)).Delete(&throttleRow{})
	if res.Error != nil {
		return 0, s.wrapf(res.Error, "storage: delete stale login throttles")
	}
	return res.RowsAffected, nil
}
