package storage

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/portcullis-auth/portcullis/oauth/revocation"
)

const tableRevocations = "oauth2_revocations"

// revocationRow is the oauth2_revocations table: one revoked grant (the
// request ID of a refresh chain, the sid claim of its access tokens).
type revocationRow struct {
	ID        int64     `gorm:"column:id;primaryKey;autoIncrement"`
	GrantID   string    `gorm:"column:grant_id"`
	RevokedAt time.Time `gorm:"column:revoked_at"`
	ExpiresAt time.Time `gorm:"column:expires_at"`
}

func (revocationRow) TableName() string { return tableRevocations }

// revocationLeeway is added to the access-token lifetime when a revocation
// expires: a replica whose clock runs ahead may stamp tokens a little
// late (the signer accepts iat up to 5s ahead).
const revocationLeeway = time.Minute

// revocationExpiry is when a revocation made now may be forgotten: every
// access token its grant could have had has expired by then.
func (s *Store) revocationExpiry(now time.Time) time.Time {
	return dbTime(now.Add(s.accessTTL + revocationLeeway))
}

// RevokeAccessToken implements oauth2.TokenRevocationStorage: access
// tokens are not stored, so it records the revocation of the grant
// requestID, which every replica's revocation.List picks up; the grant's
// access tokens then introspect as inactive. Revoking an unknown or
// already revoked grant is not an error.
func (s *Store) RevokeAccessToken(ctx context.Context, requestID string) error {
	now := s.now()
	row := &revocationRow{GrantID: requestID, RevokedAt: dbTime(now), ExpiresAt: s.revocationExpiry(now)}
	if err := s.write(ctx, func(db *gorm.DB) error { return db.Create(row).Error }); err != nil {
		return s.wrapFosite(err, "storage: revoke access tokens")
	}
	s.revoked(ctx)
	return nil
}

// RevokeSubject implements identity.SessionRevoker: in one transaction (or
// in the one ctx carries) it records the revocation of every grant of the
// subject that still has an active refresh token, and marks those refresh
// tokens inactive (no reuse grace applies to revoked tokens). Every user
// grant has a refresh-token row (fosite writes one with each password
// grant), so this reaches every access token the subject holds. A token
// being issued concurrently holds a shared lock on the user's row
// (LockUser, lockRefreshOwner) until it is committed; the caller locks
// that row for update first, so the grant is either found here or issued
// after the change.
func (s *Store) RevokeSubject(ctx context.Context, subject string) error {
	err := s.InTx(ctx, func(ctx context.Context) error {
		now := s.now()
		tx := s.db(ctx)
		res := tx.Exec("INSERT INTO "+tableRevocations+" (grant_id, revoked_at, expires_at) "+
			"SELECT DISTINCT request_id, ?, ? FROM "+tableRefreshTokens+" WHERE subject = ? AND active = ?",
			dbTime(now), s.revocationExpiry(now), subject, true)
		if res.Error != nil {
			return res.Error
		}
		revoked := res.RowsAffected
		// Grants of redeemed codes whose access tokens may still be
		// valid (the row outlives its code by that long), for clients
		// that get no refresh token.
		res = tx.Exec("INSERT INTO "+tableRevocations+" (grant_id, revoked_at, expires_at) "+
			"SELECT DISTINCT c.request_id, ?, ? FROM "+tableAuthorizationCodes+" c WHERE c.subject = ? AND c.active = ? AND c.expires_at > ?",
			dbTime(now), s.revocationExpiry(now), subject, false, dbTime(now))
		if res.Error != nil {
			return res.Error
		}
		if revoked+res.RowsAffected > 0 {
			s.revoked(ctx)
		}
		if err := tx.Model(&refreshTokenRow{}).Where("subject = ? AND active = ?", subject, true).
			Update("active", false).Error; err != nil {
			return err
		}
		// Codes not yet redeemed and auth_sessions (logins under way,
		// finished logins kept for step-up) end with the grants.
		if err := tx.Model(&authCodeRow{}).Where("subject = ? AND active = ?", subject, true).
			Update("active", false).Error; err != nil {
			return err
		}
		return tx.Where("user_id = ?", subject).Delete(&authSessionRow{}).Error
	})
	if err != nil {
		return s.wrapf(err, "storage: revoke tokens of %s", subject)
	}
	return nil
}

// RevocationsAfter implements revocation.Source: up to limit revocations
// with an ID above after, in ID order.
func (s *Store) RevocationsAfter(ctx context.Context, after int64, limit int) ([]revocation.Entry, error) {
	var rows []revocationRow
	if err := s.reader(ctx).Where("id > ?", after).Order("id").Limit(limit).Find(&rows).Error; err != nil {
		return nil, s.wrapf(err, "storage: read revocations")
	}
	out := make([]revocation.Entry, len(rows))
	for i, r := range rows {
		out[i] = revocation.Entry{ID: r.ID, GrantID: r.GrantID, ExpiresAt: r.ExpiresAt.UTC()}
	}
	return out, nil
}

// OnRevoke registers fn, called after every committed revocation made
// through this Store (RevokeAccessToken, RevokeSubject), with a context
// that is not cancelled with the caller's: a revocation.List's Sync, so
// that the replica that revoked a grant knows at once. Register before
// serving; fn must be safe for concurrent use.
func (s *Store) OnRevoke(fn func(ctx context.Context)) {
	s.onRevoke = fn
}

// revoked runs the OnRevoke hook now, or, inside a transaction, once it
// has committed.
func (s *Store) revoked(ctx context.Context) {
	if st := s.activeTx(ctx); st != nil {
		st.shared.revoked.Store(true)
		return
	}
	s.notifyRevoked(ctx)
}

func (s *Store) notifyRevoked(ctx context.Context) {
	if s.onRevoke == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.queryTimeout)
	defer cancel()
	s.onRevoke(ctx)
}
