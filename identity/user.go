package identity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// User is an account that can obtain tokens with the resource-owner password
// grant.
type User struct {
	// ID is the stable, opaque identifier used as the token subject.
	ID string
	// Username is the name as the user chose it; uniqueness is
	// case-insensitive (see NormalizeUsername).
	Username string
	// PasswordHash is the argon2id PHC string, or a bcrypt hash imported
	// from another system (ParseBcrypt) until the user's first successful
	// login rehashes it; never logged or returned.
	PasswordHash string
	// Roles are carried in the user's access tokens.
	Roles []string
	// Disabled users cannot obtain tokens.
	Disabled bool
	// MFARequired is set by an administrator: the user must prove a
	// second factor at every login (enrolling one at the next login if
	// they have none), so the password grant refuses them.
	MFARequired bool
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// UserRange is what Store.ListUsersRange reads.
type UserRange struct {
	// Prefix and After are normalized usernames (NormalizeUsername).
	Prefix, After string
	Disabled      *bool
	Limit         int
}

// Store persists users. Implementations return errors matching
// apperr.ErrNotFound and apperr.ErrAlreadyExists (errors.Is).
type Store interface {
	// CreateUser inserts u. It fails with apperr.ErrAlreadyExists when the
	// ID or the normalized username is taken; nothing is written then.
	CreateUser(ctx context.Context, u *User) error
	// GetUser returns the user with the given ID or apperr.ErrNotFound.
	GetUser(ctx context.Context, id string) (*User, error)
	// GetUserByUsername looks a user up by name, case-insensitively, or
	// returns apperr.ErrNotFound.
	GetUserByUsername(ctx context.Context, username string) (*User, error)
	// ListUsers returns every user ordered by username.
	ListUsers(ctx context.Context) ([]*User, error)
	// ListUsersRange returns at most r.Limit users in normalized-username
	// byte order whose normalized username follows r.After and starts
	// with r.Prefix, and whose Disabled is *r.Disabled when that is set.
	// (A backend may return a few more users whose names differ from
	// r.Prefix only by trailing spaces of the prefix; ListPage compares
	// again.)
	ListUsersRange(ctx context.Context, r UserRange) ([]*User, error)
	// UpdateUser loads the user with the given ID under a row lock, calls
	// update, and stores the result in the same transaction. If update
	// returns an error nothing is written and that error is returned.
	UpdateUser(ctx context.Context, id string, update func(*User) error) (*User, error)
	// DeleteUser removes a user or returns apperr.ErrNotFound.
	DeleteUser(ctx context.Context, id string) error
	// InTx runs fn in one transaction: every Store, SessionRevoker and
	// ThrottleStore call fn makes with the context it is given belongs to
	// it. If fn fails, nothing it wrote is kept and its error is returned
	// unchanged; otherwise the result of the commit is returned.
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
}

// SessionRevoker ends every grant (refresh tokens and the access tokens
// recorded with them) issued to a user. The Service calls it when the
// user's password changes, or the user is disabled or deleted, so a stolen
// refresh token does not outlive a password reset.
type SessionRevoker interface {
	RevokeSubject(ctx context.Context, userID string) error
}

// Version returns a digest of everything stored about u (its password
// hash included, so a password change changes it), for optimistic
// concurrency: two reads return the same version exactly when nothing
// changed in between, since every change also sets UpdatedAt. It reveals
// nothing about the password.
func (u *User) Version() string {
	fields := []string{u.ID, u.Username, u.PasswordHash, strings.Join(u.Roles, " "),
		strconv.FormatBool(u.Disabled), strconv.FormatBool(u.MFARequired),
		strconv.FormatInt(u.CreatedAt.UnixMicro(), 10), strconv.FormatInt(u.UpdatedAt.UnixMicro(), 10)}
	sum := sha256.Sum256([]byte(strings.Join(fields, "\x00")))
	return hex.EncodeToString(sum[:16])
}
