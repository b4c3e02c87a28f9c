package challenge

import (
	"context"
	"time"
)

// Record is one stored auth_session (draft-ietf-oauth-first-party-apps
// §5.3): the state of a login under way, or of a finished login kept for
// step-up. The client holds an opaque value; the store keeps only its
// SHA-256 (Handle), so a leaked table hands out no session.
type Record struct {
	// Handle is the hex SHA-256 of the auth_session value the client
	// holds now; each use of the session replaces it.
	Handle string
	// ClientID is the client the session belongs to; no other client may
	// continue it.
	ClientID string
	// UserID is the user once identified (by a password), else "".
	UserID string
	// GrantID is the grant whose token response carried the session (a
	// step-up session), else "": revoking the grant deletes the session.
	GrantID string
	// JKT is the thumbprint of the DPoP key the session is bound to (the
	// key of the proof that came with its first request), else "".
	JKT string
	// State is the flow's JSON state, owned by this package.
	State     []byte
	ExpiresAt time.Time
	CreatedAt time.Time
}

// Store persists auth_sessions; storage.Store implements it on every
// backend, shared by all replicas. Errors match apperr.ErrNotFound and
// apperr.ErrUnavailable (errors.Is).
type Store interface {
	// CreateAuthSession inserts r.
	CreateAuthSession(ctx context.Context, r *Record) error
	// GetAuthSession returns the session whose current handle is handle,
	// expired or not, or apperr.ErrNotFound.
	GetAuthSession(ctx context.Context, handle string) (*Record, error)
	// ReplaceAuthSession stores r in place of the session whose current
	// handle is oldHandle, in one conditional update, and reports true; it
	// reports false, without error, when no session has that handle any
	// more (used, replaced or deleted meanwhile): of concurrent calls with
	// one oldHandle, on any replicas, at most one reports true.
	ReplaceAuthSession(ctx context.Context, oldHandle string, r *Record) (bool, error)
	// DeleteAuthSession deletes the session whose current handle is
	// handle and reports whether it existed: of concurrent calls, at most
	// one reports true.
	DeleteAuthSession(ctx context.Context, handle string) (bool, error)
}
