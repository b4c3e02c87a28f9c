package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/portcullis-auth/portcullis/identity"
)

// userRow is the users table.
type userRow struct {
	ID                 string    `gorm:"column:id;primaryKey"`
	Username           string    `gorm:"column:username"`
	UsernameNormalized string    `gorm:"column:username_normalized"`
	PasswordHash       string    `gorm:"column:password_hash"`
	Roles              string    `gorm:"column:roles"`
	Disabled           bool      `gorm:"column:disabled"`
	MFARequired        bool      `gorm:"column:mfa_required"` // migration 00017
	CreatedAt          time.Time `gorm:"column:created_at;autoCreateTime:false"`
	UpdatedAt          time.Time `gorm:"column:updated_at;autoUpdateTime:false"`
	// The columns failed_logins, first_failed_at and locked_until are no
	// longer used (guessing counters live in login_throttles since
	// migration 7); they stay until every replica runs this version.
}

func (userRow) TableName() string { return "users" }

func toUserRow(u *identity.User) (*userRow, error) {
	roles := u.Roles
	if roles == nil {
		roles = []string{}
	}
	b, err := json.Marshal(roles)
	if err != nil {
		return nil, fmt.Errorf("encode roles: %w", err)
	}
	return &userRow{
		ID: u.ID, Username: u.Username, UsernameNormalized: identity.NormalizeUsername(u.Username),
		PasswordHash: u.PasswordHash, Roles: string(b), Disabled: u.Disabled, MFARequired: u.MFARequired,
		CreatedAt: dbTime(u.CreatedAt), UpdatedAt: dbTime(u.UpdatedAt),
	}, nil
}

func (r *userRow) user() (*identity.User, error) {
	u := &identity.User{
		ID: r.ID, Username: r.Username, PasswordHash: r.PasswordHash, Disabled: r.Disabled, MFARequired: r.MFARequired,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
	if err := json.Unmarshal([]byte(r.Roles), &u.Roles); err != nil {
		return nil, fmt.Errorf("decode roles of user %s: %w", r.ID, err)
	}
	if u.Roles == nil {
		u.Roles = []string{}
	}
	return u, nil
}

// CreateUser implements identity.Store. A zero CreatedAt or UpdatedAt is
// set to the current time (and written back to u). It fails with an error
// matching ErrAlreadyExists, writing nothing, when u.ID or
// identity.NormalizeUsername(u.Username) is taken.
func (s *Store) CreateUser(ctx context.Context, u *identity.User) error {
	now := s.now().UTC()
	if u.CreatedAt.IsZero() {
		u.CreatedAt = now
	}
	if u.UpdatedAt.IsZero() {
		u.UpdatedAt = u.CreatedAt
	}
	row, err := toUserRow(u)
	if err != nil {
		return fmt.Errorf("storage: create user: %w", err)
	}
	if err := s.write(ctx, func(db *gorm.DB) error { return db.Create(row).Error }); err != nil {
		return s.wrapf(err, "storage: create user %q", u.Username)
	}
	return nil
}

// GetUser implements identity.Store: the user with the given ID, or an
// error matching ErrNotFound.
func (s *Store) GetUser(ctx context.Context, id string) (*identity.User, error) {
	var row userRow
	if err := s.reader(ctx).Where("id = ?", id).Take(&row).Error; err != nil {
		return nil, s.wrapf(err, "storage: get user %s", id)
	}
	if row.ID != id { // exact match on every backend (MySQL pads with spaces)
		return nil, fmt.Errorf("storage: get user: %w", ErrNotFound)
	}
	return row.user()
}

// GetUserByUsername implements identity.Store: the user whose normalized
// username equals identity.NormalizeUsername(username) byte for byte, or an
// error matching ErrNotFound. The comparison is repeated in Go because
// MySQL's PAD SPACE collations ignore trailing spaces ("alice  " would
// match "alice"), which SQLite does not: both backends match identically.
func (s *Store) GetUserByUsername(ctx context.Context, username string) (*identity.User, error) {
	norm := identity.NormalizeUsername(username)
	var row userRow
	if err := s.reader(ctx).Where("username_normalized = ?", norm).Take(&row).Error; err != nil {
		return nil, s.wrapf(err, "storage: get user by name")
	}
	if row.UsernameNormalized != norm {
		return nil, fmt.Errorf("storage: get user by name: %w", ErrNotFound)
	}
	return row.user()
}

// ListUsers implements identity.Store: every user ordered by normalized
// username.
func (s *Store) ListUsers(ctx context.Context) ([]*identity.User, error) {
	var rows []userRow
	if err := s.db(ctx).Order("username_normalized").Find(&rows).Error; err != nil {
		return nil, s.wrapf(err, "storage: list users")
	}
	return usersOf(rows)
}

// usersOf decodes rows in order.
func usersOf(rows []userRow) ([]*identity.User, error) {
	out := make([]*identity.User, 0, len(rows))
	for i := range rows {
		u, err := rows[i].user()
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// UpdateUser implements identity.Store. It reads the user with SELECT …
// FOR UPDATE (SQLite's single connection serializes instead), calls update
// and writes every field back in the same transaction. The ID cannot be
// changed. An error from update is returned unchanged and nothing is
// written; a username taken by another user fails with ErrAlreadyExists.
func (s *Store) UpdateUser(ctx context.Context, id string, update func(*identity.User) error) (*identity.User, error) {
	var (
		out       *identity.User
		updateErr error
	)
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		var row userRow
		if err := tx.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate}).Where("id = ?", id).Take(&row).Error; err != nil {
			return err
		}
		u, err := row.user()
		if err != nil {
			return err
		}
		if updateErr = update(u); updateErr != nil {
			return updateErr
		}
		u.ID = id
		next, err := toUserRow(u)
		if err != nil {
			return err
		}
		if err := tx.Model(&userRow{}).Where("id = ?", id).Updates(map[string]any{
			"username":            next.Username,
			"username_normalized": next.UsernameNormalized,
			"password_hash":       next.PasswordHash,
			"roles":               next.Roles,
			"disabled":            next.Disabled,
			"mfa_required":        next.MFARequired,
			"created_at":          next.CreatedAt,
			"updated_at":          next.UpdatedAt,
		}).Error; err != nil {
			return err
		}
		out, err = next.user()
		return err
	})
	if updateErr != nil && errors.Is(err, updateErr) {
		return nil, updateErr
	}
	if err != nil {
		return nil, s.wrapf(err, "storage: update user %s", id)
	}
	return out, nil
}

// DeleteUser implements identity.Store: in one transaction it removes the
// user with their second factors and recovery codes (no foreign key does
// it on MySQL), or returns an error matching ErrNotFound and deletes
// nothing. Tokens already issued to the user stay valid until they expire
// or are revoked.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		res := tx.Where("id = ?", id).Delete(&userRow{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return gorm.ErrRecordNotFound
		}
		if err := tx.Where("user_id = ?", id).Delete(&factorRow{}).Error; err != nil {
			return err
		}
		return tx.Where("user_id = ?", id).Delete(&recoveryCodeRow{}).Error
	})
	if err != nil {
		return s.wrapf(err, "storage: delete user %s", id)
	}
	return nil
}

// LockUser implements oauth.UserLookup: it sets the user's last_login_at
// to now (always changing it, so that the row is written) and returns the
// user as read after that write, or an error matching ErrNotFound. The
// write's row lock is held until the transaction ctx carries ends. It is a
// write, not a shared lock, because on a MariaDB Galera cluster row locks
// are local to a node: only rows both transactions write make
// certification abort a login whose tokens would otherwise outlive a
// concurrent password change, disabling or deletion committed on another
// node (write skew).
func (s *Store) LockUser(ctx context.Context, id string) (*identity.User, error) {
	now := dbTime(s.now())
	db := s.db(ctx)
	var res *gorm.DB
	if s.driver == DriverMySQL {
		res = db.Exec("UPDATE users SET last_login_at = CASE WHEN last_login_at >= ? "+
			"THEN last_login_at + INTERVAL 1 MICROSECOND ELSE ? END WHERE id = ?", now, now, id)
	} else {
		res = db.Exec("UPDATE users SET last_login_at = ? WHERE id = ?", now, id)
	}
	if res.Error != nil {
		return nil, s.wrapLocked(res.Error, id)
	}
	if res.RowsAffected == 0 {
		return nil, fmt.Errorf("storage: lock user %s: %w", id, ErrNotFound)
	}
	var rows []userRow
	if err := db.Raw("SELECT * FROM users WHERE id = ?", id).Find(&rows).Error; err != nil {
		return nil, s.wrapLocked(err, id)
	}
	if len(rows) == 0 || rows[0].ID != id {
		return nil, fmt.Errorf("storage: lock user %s: %w", id, ErrNotFound)
	}
	return rows[0].user()
}

// wrapLocked translates LockUser's errors: a deadlock, or a Galera
// brute-force abort by a conflicting write replicated from another node,
// matches fosite.ErrSerializationFailure (the token handler runs the
// transaction again); the rest as in wrapf.
func (s *Store) wrapLocked(err error, id string) error {
	if classify(err) == classConflict {
		return s.wrapFosite(err, "storage: lock user %s", id)
	}
	return s.wrapf(err, "storage: lock user %s", id)
}
