package storage

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/portcullis-auth/portcullis/oauth/challenge"
)

const tableAuthSessions = "auth_sessions"

// authSessionRow is the auth_sessions table (migration 00020).
type authSessionRow struct {
	Handle    string    `gorm:"column:handle;primaryKey"`
	ClientID  string    `gorm:"column:client_id"`
	UserID    string    `gorm:"column:user_id"`
	GrantID   string    `gorm:"column:grant_id"`
	JKT       string    `gorm:"column:jkt"`
	State     string    `gorm:"column:state"`
	ExpiresAt time.Time `gorm:"column:expires_at"`
	CreatedAt time.Time `gorm:"column:created_at;autoCreateTime:false"`
}

func (authSessionRow) TableName() string { return tableAuthSessions }

func toAuthSessionRow(r *challenge.Record) *authSessionRow {
	return &authSessionRow{
		Handle: r.Handle, ClientID: r.ClientID, UserID: r.UserID, GrantID: r.GrantID, JKT: r.JKT, State: string(r.State),
		ExpiresAt: dbTime(r.ExpiresAt), CreatedAt: dbTime(r.CreatedAt),
	}
}

func (r *authSessionRow) record() *challenge.Record {
	return &challenge.Record{
		Handle: r.Handle, ClientID: r.ClientID, UserID: r.UserID, GrantID: r.GrantID, JKT: r.JKT, State: []byte(r.State),
		ExpiresAt: r.ExpiresAt.UTC(), CreatedAt: r.CreatedAt.UTC(),
	}
}

// CreateAuthSession implements challenge.Store.
func (s *Store) CreateAuthSession(ctx context.Context, r *challenge.Record) error {
	row := toAuthSessionRow(r)
	if err := s.write(ctx, func(db *gorm.DB) error { return db.Create(row).Error }); err != nil {
		return s.wrapf(err, "storage: create auth session")
	}
	return nil
}

// GetAuthSession implements challenge.Store. It reads from the primary
// (never a read replica): a handle replaced a moment ago must not be
// found.
func (s *Store) GetAuthSession(ctx context.Context, handle string) (*challenge.Record, error) {
	var rows []authSessionRow
	if err := s.db(ctx).Where("handle = ?", handle).Limit(1).Find(&rows).Error; err != nil {
		return nil, s.wrapf(err, "storage: get auth session")
	}
	if len(rows) == 0 {
		return nil, s.wrapf(gorm.ErrRecordNotFound, "storage: get auth session")
	}
	return rows[0].record(), nil
}

// ReplaceAuthSession implements challenge.Store with one UPDATE … WHERE
// handle = oldHandle: the primary key decides which of concurrent uses of
// one handle wins, on every backend and through any Galera node (a
// certification conflict is retried and then finds the handle gone).
func (s *Store) ReplaceAuthSession(ctx context.Context, oldHandle string, r *challenge.Record) (bool, error) {
	row := toAuthSessionRow(r)
	var n int64
	err := s.write(ctx, func(db *gorm.DB) error {
		res := db.Model(&authSessionRow{}).Where("handle = ?", oldHandle).Updates(map[string]any{
			"handle": row.Handle, "client_id": row.ClientID, "user_id": row.UserID, "grant_id": row.GrantID, "jkt": row.JKT,
			"state": row.State, "expires_at": row.ExpiresAt,
		})
		n = res.RowsAffected
		return res.Error
	})
	if err != nil {
		return false, s.wrapf(err, "storage: replace auth session")
	}
	return n == 1, nil
}

// DeleteAuthSession implements challenge.Store.
func (s *Store) DeleteAuthSession(ctx context.Context, handle string) (bool, error) {
	var n int64
	err := s.write(ctx, func(db *gorm.DB) error {
		res := db.Where("handle = ?", handle).Delete(&authSessionRow{})
		n = res.RowsAffected
		return res.Error
	})
	if err != nil {
		return false, s.wrapf(err, "storage: delete auth session")
	}
	return n == 1, nil
}
