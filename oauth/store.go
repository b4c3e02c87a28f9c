package oauth

import (
	"context"
	"errors"

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

// grantStore is the storage handed to fosite: the TokenStore plus the
// resource-owner password check, delegated to identity.
type grantStore struct {
	TokenStore
	users Authenticator
}

var _ oauth2.ResourceOwnerPasswordCredentialsGrantStorage = grantStore{}

// Authenticate implements fosite's ResourceOwnerPasswordCredentialsGrantStorage.
// Bad credentials of any kind become fosite.ErrNotFound (invalid_grant).
// It returns the user's ID, which fosite makes the session's subject; the
// token handler loads the user by it.
func (s grantStore) Authenticate(ctx context.Context, username, password string) (string, error) {
	u, err := s.users.Authenticate(ctx, username, password, clientIPFrom(ctx))
	if errors.Is(err, identity.ErrInvalidCredentials) {
		return "", fosite.ErrNotFound
	}
	if err != nil {
		return "", err
	}
	return u.ID, nil
}
