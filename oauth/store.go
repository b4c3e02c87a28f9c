package oauth

import (
	"context"
	"log/slog"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/pkce"
	fositestorage "github.com/ory/fosite/storage"

	"github.com/portcullis-auth/portcullis/audit"
	"github.com/portcullis-auth/portcullis/identity"
)

// TokenStore is the storage fosite needs for the grants, revocation and
// introspection Portcullis registers (Hydra's FositeStorer, trimmed).
// Access tokens are stateless JWTs: they are never stored, and revoking
// one records the revocation of its grant (RevokeAccessToken), which
// revocation.List serves to introspection.
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
	oauth2.RefreshTokenStorage
	// Authorization codes of the challenge endpoint (CodeIssuer):
	// GetAuthorizeCodeSession returns the stored requester together with
	// fosite.ErrInvalidatedAuthorizeCode for a redeemed code, and
	// InvalidateAuthorizeCodeSession is a conditional update that fails
	// with fosite.ErrInvalidatedAuthorizeCode for a code already
	// redeemed, so that of two concurrent redemptions exactly one
	// succeeds. The PKCE storage hands back the code's own request (which
	// holds the code_challenge).
	oauth2.AuthorizeCodeStorage
	pkce.PKCERequestStorage
	// RevokeRefreshToken marks every refresh token of the grant inactive.
	RevokeRefreshToken(ctx context.Context, requestID string) error
	// RevokeAccessToken records that the grant's access tokens are
	// revoked.
	RevokeAccessToken(ctx context.Context, requestID string) error
	fositestorage.Transactional
}

// Authenticator checks resource-owner credentials of a login from
// clientIP (identity.Service.AuthenticateStep): step says whether a
// second factor must follow whatever the user's own settings (a client
// that requires one), which decides the login's audit event.
type Authenticator interface {
	AuthenticateStep(ctx context.Context, username, password, clientIP string, step identity.PasswordStep) (*identity.User, error)
}

// grantStore is the storage handed to fosite: the TokenStore, with refresh
// sessions stored under the scope a refresh narrowed them to
// (CreateRefreshTokenSession, scope.go), no access-token storage (fosite
// writes every access token it issues and reads it back to introspect or
// revoke it; here that is a no-op and an unknown token: introspection
// and revocation of access tokens verify the JWT instead, see
// jwtIntrospector and RevokeHandler), and authorization codes whose
// replay by someone who cannot prove the redemption's possession factors
// is reported as an unknown code (GetAuthorizeCodeSession).
//
// A grant fosite revokes for such a replay (RevokeRefreshToken from its
// refresh or code handler, whose requests carry a replayNote) is recorded
// with audit, in the revocation's transaction; a failure to record it is
// logged with logger.
type grantStore struct {
	TokenStore
	audit  audit.Recorder
	logger *slog.Logger
}

// RevokeRefreshToken implements oauth2.TokenRevocationStorage: the
// TokenStore's, and, when ctx's token request replays a used refresh
// token or a redeemed code of the grant (noteReplay), the replay's audit
// event in the same transaction (fosite's, for refresh-token reuse; else
// one of its own). The revocation is a security response and does not
// wait on the trail: an event that cannot be written is logged, and the
// revocation commits without it.
func (s grantStore) RevokeRefreshToken(ctx context.Context, requestID string) error {
	if !replayNoted(ctx) {
		return s.TokenStore.RevokeRefreshToken(ctx, requestID)
	}
	txCtx, err := s.BeginTX(ctx) // joins fosite's transaction, if any
	if err != nil {
		return err
	}
	if err := s.TokenStore.RevokeRefreshToken(txCtx, requestID); err != nil {
		_ = s.Rollback(txCtx)
		return err
	}
	if err := recordReplay(txCtx, s.audit); err != nil && s.logger != nil {
		s.logger.ErrorContext(ctx, "audit event not recorded", "action", "token replay", "err", err.Error())
	}
	return s.Commit(txCtx)
}

var (
	_ oauth2.CoreStorage            = grantStore{}
	_ oauth2.TokenRevocationStorage = grantStore{}
)

// CreateAccessTokenSession implements oauth2.AccessTokenStorage: access
// tokens are not stored.
func (grantStore) CreateAccessTokenSession(context.Context, string, fosite.Requester) error {
	return nil
}

// GetAccessTokenSession implements oauth2.AccessTokenStorage: no access
// token is stored, so every one is unknown here.
func (grantStore) GetAccessTokenSession(context.Context, string, fosite.Session) (fosite.Requester, error) {
	return nil, fosite.ErrNotFound
}

// DeleteAccessTokenSession implements oauth2.AccessTokenStorage; there is
// nothing to delete.
func (grantStore) DeleteAccessTokenSession(context.Context, string) error { return nil }
