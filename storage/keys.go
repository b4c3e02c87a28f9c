package storage

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/portcullis-auth/portcullis/keys"
)

// keyRow is the signing_keys table.
type keyRow struct {
	ID          string       `gorm:"column:id;primaryKey"`
	Generation  int64        `gorm:"column:generation"`
	Algorithm   string       `gorm:"column:algorithm"`
	PublicJWK   string       `gorm:"column:public_jwk"`
	Sealed      []byte       `gorm:"column:sealed"`
	WrapKeyID   string       `gorm:"column:wrap_key_id"`
	CreatedAt   time.Time    `gorm:"column:created_at;autoCreateTime:false"`
	ActivatesAt time.Time    `gorm:"column:activates_at"`
	RetiredAt   sql.NullTime `gorm:"column:retired_at"`
}

func (keyRow) TableName() string { return "signing_keys" }

func (r *keyRow) record() keys.Record {
	return keys.Record{
		ID: r.ID, Algorithm: keys.Algorithm(r.Algorithm), Generation: r.Generation,
		PublicJWK: []byte(r.PublicJWK), Sealed: r.Sealed, WrapKeyID: r.WrapKeyID,
		CreatedAt: r.CreatedAt.UTC(), ActivatesAt: r.ActivatesAt.UTC(), RetiredAt: fromNullTime(r.RetiredAt),
	}
}

// ListKeys implements keys.Store: every stored key ordered by generation.
func (s *Store) ListKeys(ctx context.Context) ([]keys.Record, error) {
	var rows []keyRow
	if err := s.db(ctx).Order("generation").Find(&rows).Error; err != nil {
		return nil, s.wrapf(err, "storage: list signing keys")
	}
	out := make([]keys.Record, 0, len(rows))
	for i := range rows {
		out = append(out, rows[i].record())
	}
	return out, nil
}

// CreateKey implements keys.Store. In one transaction it inserts rec and
// sets retired_at to retireAt on every key of rec's algorithm and a lower
// generation that is not yet retired or is due to retire later (so an
// immediate rotation during a pending pre-published one retires the old
// keys now); keys of other algorithms are left alone, each algorithm has
// its own signing key. A taken ID or generation fails with ErrAlreadyExists
// and writes nothing: two replicas rotating at once insert the same
// generation, and exactly one wins.
func (s *Store) CreateKey(ctx context.Context, rec keys.Record, retireAt time.Time) error {
	if rec.CreatedAt.IsZero() {
		rec.CreatedAt = s.now().UTC()
	}
	row := &keyRow{
		ID: rec.ID, Generation: rec.Generation, Algorithm: string(rec.Algorithm),
		PublicJWK: string(rec.PublicJWK), Sealed: rec.Sealed, WrapKeyID: rec.WrapKeyID,
		CreatedAt: dbTime(rec.CreatedAt), ActivatesAt: dbTime(rec.ActivatesAt), RetiredAt: nullTime(rec.RetiredAt),
	}
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(row).Error; err != nil {
			return err
		}
		return tx.Model(&keyRow{}).
			Where("algorithm = ? AND generation < ? AND (retired_at IS NULL OR retired_at > ?)",
				string(rec.Algorithm), rec.Generation, dbTime(retireAt)).
			Update("retired_at", dbTime(retireAt)).Error
	})
	if err != nil {
		return s.wrapf(err, "storage: create signing key %s (generation %d)", rec.ID, rec.Generation)
	}
	return nil
}

// DeleteKey implements keys.Store; deleting a missing key is not an error.
func (s *Store) DeleteKey(ctx context.Context, id string) error {
	if err := s.write(ctx, func(db *gorm.DB) error { return db.Where("id = ?", id).Delete(&keyRow{}).Error }); err != nil {
		return s.wrapf(err, "storage: delete signing key %s", id)
	}
	return nil
}

// ResealKey implements keys.Store: it replaces the sealed private key and
// its wrap-key ID only while the stored wrap-key ID is still oldWrapID,
// and otherwise (or for an unknown key) returns an error matching
// ErrNotFound.
func (s *Store) ResealKey(ctx context.Context, id, oldWrapID, newWrapID string, sealed []byte) error {
	var updated int64
	if err := s.write(ctx, func(db *gorm.DB) error {
		res := db.Model(&keyRow{}).Where("id = ? AND wrap_key_id = ?", id, oldWrapID).
			Updates(map[string]any{"sealed": sealed, "wrap_key_id": newWrapID})
		updated = res.RowsAffected
		return res.Error
	}); err != nil {
		return s.wrapf(err, "storage: reseal signing key %s", id)
	}
	if updated == 0 {
		return fmt.Errorf("storage: reseal signing key %s sealed under %s: %w", id, oldWrapID, ErrNotFound)
	}
	return nil
}
