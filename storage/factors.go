package storage

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/identity/totp"
)

var (
	_ identity.FactorStore       = (*Store)(nil)
	_ identity.RecoveryCodeStore = (*Store)(nil)
	_ totp.ResealStore           = (*Store)(nil)
)

// factorRow is the user_factors table (migration 00015).
type factorRow struct {
	ID           string       `gorm:"column:id;primaryKey"`
	UserID       string       `gorm:"column:user_id"`
	Kind         string       `gorm:"column:kind"`
	Sealed       []byte       `gorm:"column:sealed"`
	WrapKeyID    string       `gorm:"column:wrap_key_id"`
	ConfirmedAt  sql.NullTime `gorm:"column:confirmed_at"`
	LastUsedStep int64        `gorm:"column:last_used_step"`
	CreatedAt    time.Time    `gorm:"column:created_at;autoCreateTime:false"`
}

func (factorRow) TableName() string { return "user_factors" }

func (r *factorRow) factor() *identity.Factor {
	return &identity.Factor{
		ID: r.ID, UserID: r.UserID, Kind: r.Kind, Sealed: r.Sealed, WrapKeyID: r.WrapKeyID,
		ConfirmedAt: fromNullTime(r.ConfirmedAt), LastUsedStep: r.LastUsedStep, CreatedAt: r.CreatedAt.UTC(),
	}
}

// recoveryCodeRow is the user_recovery_codes table (migration 00016).
type recoveryCodeRow struct {
	UserID   string       `gorm:"column:user_id;primaryKey"`
	CodeHash []byte       `gorm:"column:code_hash;primaryKey"`
	UsedAt   sql.NullTime `gorm:"column:used_at"`
}

func (recoveryCodeRow) TableName() string { return "user_recovery_codes" }

// errRecoveryHash is ReplaceRecoveryCodes' answer to a digest that is not
// a SHA-256.
var errRecoveryHash = errors.New("storage: replace recovery codes: a code hash is not 32 bytes")

// padded reports whether an ID ends with a space: on MySQL, whose PAD
// SPACE collations match "id " to "id", a conditional write by such an ID
// could change the row of another; no stored ID ends with one.
func padded(id string) bool { return strings.HasSuffix(id, " ") }

// lockUserRow takes the row lock of user id in tx, so that a concurrent
// DeleteUser through the same server waits, or fails with
// gorm.ErrRecordNotFound when there is no such user (byte for byte: MySQL's
// PAD SPACE collations match "id " to "id").
func lockUserRow(tx *gorm.DB, id string) error {
	var rows []userRow
	if err := tx.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate}).
		Select("id").Where("id = ?", id).Find(&rows).Error; err != nil {
		return err
	}
	if len(rows) == 0 || rows[0].ID != id {
		return gorm.ErrRecordNotFound
	}
	return nil
}

// CreateFactor implements identity.FactorStore. A zero CreatedAt is set to
// the current time (and written back to f). In one transaction it locks
// the user's row and inserts the factor: an unknown user fails with
// ErrNotFound, a taken ID with ErrAlreadyExists, and nothing is written.
// On a Galera cluster the row lock is local to a node, so a factor created
// through one node while the user is deleted through another may outlive
// the user; it is then unreachable (user IDs are never reused) and harmless.
func (s *Store) CreateFactor(ctx context.Context, f *identity.Factor) error {
	if f.CreatedAt.IsZero() {
		f.CreatedAt = s.now().UTC()
	}
	row := &factorRow{
		ID: f.ID, UserID: f.UserID, Kind: f.Kind, Sealed: f.Sealed, WrapKeyID: f.WrapKeyID,
		ConfirmedAt: nullTime(f.ConfirmedAt), LastUsedStep: f.LastUsedStep, CreatedAt: dbTime(f.CreatedAt),
	}
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		if err := lockUserRow(tx, f.UserID); err != nil {
			return err
		}
		return tx.Create(row).Error
	})
	if err != nil {
		return s.wrapf(err, "storage: create factor %s", f.ID)
	}
	return nil
}

// Factors implements identity.FactorStore: the user's factors ordered by
// creation time, then ID.
func (s *Store) Factors(ctx context.Context, userID string) ([]*identity.Factor, error) {
	var rows []factorRow
	if err := s.reader(ctx).Where("user_id = ?", userID).Order("created_at, id").Find(&rows).Error; err != nil {
		return nil, s.wrapf(err, "storage: list factors of user %s", userID)
	}
	out := make([]*identity.Factor, 0, len(rows))
	for i := range rows {
		if rows[i].UserID == userID { // byte for byte on every backend
			out = append(out, rows[i].factor())
		}
	}
	return out, nil
}

// ConfirmFactor implements identity.FactorStore with one conditional
// UPDATE … WHERE confirmed_at IS NULL AND last_used_step < step: the
// database decides which of concurrent calls wins, on a Galera cluster
// too (the loser's certification conflict is retried and then matches no
// row).
func (s *Store) ConfirmFactor(ctx context.Context, userID, factorID string, step int64, at time.Time) (bool, error) {
	if padded(userID) || padded(factorID) {
		return false, nil
	}
	var updated int64
	if err := s.write(ctx, func(db *gorm.DB) error {
		res := db.Model(&factorRow{}).
			Where("id = ? AND user_id = ? AND confirmed_at IS NULL AND last_used_step < ?", factorID, userID, step).
			Updates(map[string]any{"confirmed_at": dbTime(at), "last_used_step": step})
		updated = res.RowsAffected
		return res.Error
	}); err != nil {
		return false, s.wrapf(err, "storage: confirm factor %s", factorID)
	}
	return updated > 0, nil
}

// UseTOTPStep implements identity.FactorStore with one conditional
// UPDATE user_factors SET last_used_step = step WHERE id = ? AND
// confirmed_at IS NOT NULL AND last_used_step < step: an unconfirmed
// factor takes codes only through ConfirmFactor, and of concurrent calls
// with one step, on any replicas and through any nodes of a Galera
// cluster, exactly one changes the row (the loser's certification
// conflict is retried and then matches no row). Inside a transaction
// carried by ctx the update is part of it.
func (s *Store) UseTOTPStep(ctx context.Context, factorID string, step int64) (bool, error) {
	if padded(factorID) {
		return false, nil
	}
	var updated int64
	if err := s.write(ctx, func(db *gorm.DB) error {
		res := db.Model(&factorRow{}).Where("id = ? AND confirmed_at IS NOT NULL AND last_used_step < ?", factorID, step).
			Update("last_used_step", step)
		updated = res.RowsAffected
		return res.Error
	}); err != nil {
		return false, s.wrapf(err, "storage: use TOTP step of factor %s", factorID)
	}
	return updated > 0, nil
}

// DeleteFactor implements identity.FactorStore.
func (s *Store) DeleteFactor(ctx context.Context, userID, factorID string) error {
	if padded(userID) || padded(factorID) {
		return fmt.Errorf("storage: delete factor: %w", ErrNotFound)
	}
	var deleted int64
	if err := s.write(ctx, func(db *gorm.DB) error {
		res := db.Where("id = ? AND user_id = ?", factorID, userID).Delete(&factorRow{})
		deleted = res.RowsAffected
		return res.Error
	}); err != nil {
		return s.wrapf(err, "storage: delete factor %s", factorID)
	}
	if deleted == 0 {
		return fmt.Errorf("storage: delete factor %s: %w", factorID, ErrNotFound)
	}
	return nil
}

// SealedFactorSecrets implements totp.ResealStore. It reads the
// primary database, never a read-only pool, so that a rewrap sees every
// factor written before it began.
func (s *Store) SealedFactorSecrets(ctx context.Context, notUnder, after string, limit int) ([]totp.SealedSecret, error) {
	var rows []factorRow
	if err := s.db(ctx).Select("id", "wrap_key_id", "sealed").
		Where("kind = ? AND wrap_key_id <> ? AND id > ?", identity.FactorTOTP, notUnder, after).
		Order("id").Limit(limit).Find(&rows).Error; err != nil {
		return nil, s.wrapf(err, "storage: list sealed factor secrets")
	}
	out := make([]totp.SealedSecret, 0, len(rows))
	for _, r := range rows {
		out = append(out, totp.SealedSecret{FactorID: r.ID, WrapKeyID: r.WrapKeyID, Sealed: r.Sealed})
	}
	return out, nil
}

// ResealFactorSecret implements totp.ResealStore with one conditional
// UPDATE user_factors SET sealed = ?, wrap_key_id = newWrapID WHERE id = ?
// AND wrap_key_id = oldWrapID (like ResealKey, but a factor that changed
// meanwhile is reported, not an error: users delete factors at any time).
func (s *Store) ResealFactorSecret(ctx context.Context, factorID, oldWrapID, newWrapID string, sealed []byte) (bool, error) {
	if padded(factorID) || padded(oldWrapID) {
		return false, nil
	}
	var updated int64
	if err := s.write(ctx, func(db *gorm.DB) error {
		res := db.Model(&factorRow{}).Where("id = ? AND wrap_key_id = ?", factorID, oldWrapID).
			Updates(map[string]any{"sealed": sealed, "wrap_key_id": newWrapID})
		updated = res.RowsAffected
		return res.Error
	}); err != nil {
		return false, s.wrapf(err, "storage: reseal secret of factor %s", factorID)
	}
	return updated > 0, nil
}

// UsersWithConfirmedFactor implements identity.FactorStore with one
// SELECT DISTINCT user_id … WHERE confirmed_at IS NOT NULL.
func (s *Store) UsersWithConfirmedFactor(ctx context.Context) ([]string, error) {
	var ids []string
	if err := s.reader(ctx).Model(&factorRow{}).Where("confirmed_at IS NOT NULL").Distinct().Pluck("user_id", &ids).Error; err != nil {
		return nil, s.wrapf(err, "storage: list users with a confirmed factor")
	}
	return ids, nil
}

// ReplaceRecoveryCodes implements identity.RecoveryCodeStore: in one
// transaction it locks the user's row, deletes the user's codes and
// inserts hashes. An unknown user fails with ErrNotFound, a hash of
// another length than 32 bytes with an error, a hash given twice with
// ErrAlreadyExists; nothing is written then.
func (s *Store) ReplaceRecoveryCodes(ctx context.Context, userID string, hashes [][]byte) error {
	rows := make([]recoveryCodeRow, 0, len(hashes))
	for _, h := range hashes {
		if len(h) != sha256.Size {
			return errRecoveryHash
		}
		rows = append(rows, recoveryCodeRow{UserID: userID, CodeHash: h})
	}
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		if err := lockUserRow(tx, userID); err != nil {
			return err
		}
		if err := tx.Where("user_id = ?", userID).Delete(&recoveryCodeRow{}).Error; err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		return tx.Create(&rows).Error
	})
	if err != nil {
		return s.wrapf(err, "storage: replace recovery codes of user %s", userID)
	}
	return nil
}

// UseRecoveryCode implements identity.RecoveryCodeStore with one
// conditional UPDATE … WHERE used_at IS NULL, which exactly one of
// concurrent calls wins, on a Galera cluster too.
func (s *Store) UseRecoveryCode(ctx context.Context, userID string, hash []byte) (bool, error) {
	if len(hash) != sha256.Size || padded(userID) {
		return false, nil
	}
	var updated int64
	if err := s.write(ctx, func(db *gorm.DB) error {
		res := db.Model(&recoveryCodeRow{}).
			Where("user_id = ? AND code_hash = ? AND used_at IS NULL", userID, hash).
			Update("used_at", dbTime(s.now()))
		updated = res.RowsAffected
		return res.Error
	}); err != nil {
		return false, s.wrapf(err, "storage: use recovery code of user %s", userID)
	}
	return updated > 0, nil
}

// RecoveryCodesLeft implements identity.RecoveryCodeStore.
func (s *Store) RecoveryCodesLeft(ctx context.Context, userID string) (int, error) {
	var rows []recoveryCodeRow
	if err := s.reader(ctx).Select("user_id").Where("user_id = ? AND used_at IS NULL", userID).Find(&rows).Error; err != nil {
		return 0, s.wrapf(err, "storage: count recovery codes of user %s", userID)
	}
	n := 0
	for _, r := range rows {
		if r.UserID == userID { // byte for byte on every backend
			n++
		}
	}
	return n, nil
}
