package oauth

import (
	"context"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	fositestorage "github.com/ory/fosite/storage"

	"github.com/portcullis-auth/portcullis/identity"
)

// TokenStore is the storage fosite needs for the grants, revocation and
// introspection Portcullis registers (Hydra's FositeStorer, trimmed).
//
// Semantics fosite relies on (its refresh and revocation handlers assume
// them): every method takes the
// transaction from ctx when BeginTX put one there; GetRefreshTokenSession
// returns the stored requester together with fosite.ErrInactiveToken for a
// used or revoked token and fosite.ErrNotFound for an unknown one;
// RotateRefreshToken is a conditional update that fails with
// fosite.ErrInactiveToken when the token was already rotated, so that of
// two concurrent refreshes exactly one succeeds. Errors caused by an
// unreachable database match apperr.ErrUnavailable.
type TokenStore interface {
	fosite.ClientManager
	oauth2.CoreStorage
	oauth2.TokenRevocationStorage
	fositestorage.Transactional
}

// Authenticator checks resource-owner credentials of a login from
// clientIP (identity.Service.Authenticate).
type Authenticator interface {
	Authenticate(ctx context.Context, username, password, clientIP string) (*identity.User, error)
}

// grantStore is the storage handed to fosite: the TokenStore, with refresh
// sessions stored under the scope a refresh narrowed them to
// (CreateRefreshTokenSession, scope.go).
type grantStore struct {
	TokenStore
}
