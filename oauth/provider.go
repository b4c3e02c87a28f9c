package oauth

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/jwt"

	"github.com/portcullis-auth/portcullis/audit"
	"github.com/portcullis-auth/portcullis/keys"
)

// ProviderConfig configures the fosite provider.
type ProviderConfig struct {
	// Issuer is the iss of every token.
	Issuer          string
	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration
	// RefreshSecret is the HMAC key of refresh tokens (at least 32 bytes),
	// shared by every replica; RotatedRefreshSecrets are still accepted.
	RefreshSecret         []byte
	RotatedRefreshSecrets [][]byte
	// Revocations tells introspection which grants were revoked
	// (revocation.List over the same store); required.
	Revocations RevocationChecker
	// Audit records the grants fosite revokes because a used refresh
	// token or a redeemed authorization code was presented again
	// (audit.TokenRefreshReuse, audit.TokenCodeReplay), in the
	// revocation's transaction; nil records nothing. An event that
	// cannot be written is logged with Logger (optional) and the
	// revocation stands.
	Audit  audit.Recorder
	Logger *slog.Logger
}

// verifiedTokenCacheSize bounds the introspection cache of verified
// access tokens (about 1 KiB each).
const verifiedTokenCacheSize = 10000

// NewProvider composes fosite explicitly with exactly the handlers
// Portcullis offers: resource-owner password (passwordGrant: the password
// itself is checked by TokenHandler), authorization code with PKCE (the
// codes of the challenge endpoint, CodeIssuer; fosite's authorize-endpoint
// half is registered but never served), client credentials, refresh token
// (with rotation), revocation, and introspection. Access tokens are RFC
// 9068 JWTs signed by km's active key and never stored: introspection
// verifies them (the key by kid) and checks cfg.Revocations
// (jwtIntrospector); refresh tokens are opaque HMAC tokens, introspected
// from storage.
func NewProvider(cfg ProviderConfig, store TokenStore, km *keys.Manager) (fosite.OAuth2Provider, error) {
	if len(cfg.RefreshSecret) < 32 {
		return nil, fmt.Errorf("refresh-token secret must be at least 32 bytes")
	}
	if cfg.Revocations == nil {
		return nil, fmt.Errorf("no revocation list")
	}
	fc := &fosite.Config{
		AccessTokenLifespan:      cfg.AccessTokenTTL,
		RefreshTokenLifespan:     cfg.RefreshTokenTTL,
		AccessTokenIssuer:        cfg.Issuer,
		IDTokenIssuer:            cfg.Issuer,
		TokenURL:                 cfg.Issuer + "/oauth2/token",
		GlobalSecret:             cfg.RefreshSecret,
		RotatedGlobalSecrets:     cfg.RotatedRefreshSecrets,
		JWTScopeClaimKey:         jwt.JWTScopeFieldString,
		RefreshTokenScopes:       []string{}, // refresh tokens do not need an offline scope
		ScopeStrategy:            fosite.ExactScopeStrategy,
		AudienceMatchingStrategy: anyAudience, // TokenHandler checks audiences (AudiencePolicy)
		ClientSecretsHasher:      SecretHasher{},
		// Codes of the challenge endpoint (CodeIssuer): short-lived, PKCE
		// with S256 only, always.
		AuthorizeCodeLifespan:          CodeLifetime,
		EnforcePKCE:                    true,
		EnablePKCEPlainChallengeMethod: false,
	}
	hmacStrategy := compose.NewOAuth2HMACStrategy(fc)
	// Client authentication per RFC 6749 §2.3 and §5.2, with the methods
	// each client accepts (clients.Client.AcceptedAuthMethods); fosite's own allows
	// one method per client.
	fc.ClientAuthenticationStrategy = clientAuth{clients: store, hasher: fc.ClientSecretsHasher}.authenticate
	signer := &jwtSigner{keys: km}
	strategy := &oauth2.DefaultJWTStrategy{
		Signer:          signer,
		HMACSHAStrategy: hmacStrategy,
		Config:          fc,
	}
	gs := grantStore{TokenStore: store, audit: cfg.Audit, logger: cfg.Logger}
	p := compose.Compose(fc, gs, strategy,
		passwordGrantFactory,
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2PKCEFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2TokenRevocationFactory,
	)
	if err := auditReplays(fc.TokenEndpointHandlers); err != nil {
		return nil, err
	}
	// Access tokens without storage, refresh tokens from storage. fosite
	// runs every introspector; all but one must answer ErrUnknownRequest.
	fc.TokenIntrospectionHandlers = append(fc.TokenIntrospectionHandlers,
		&jwtIntrospector{signer: signer, clients: gs, revoked: cfg.Revocations, scopes: fc.ScopeStrategy,
			cache: newVerifiedTokens(verifiedTokenCacheSize)},
		refreshIntrospector{&oauth2.CoreValidator{CoreStrategy: strategy, CoreStorage: gs, Config: fc}},
	)
	return p, nil
}

// refreshIntrospector is fosite's stateful CoreValidator for every token
// jwtIntrospector leaves alone: refresh tokens, never JWTs.
type refreshIntrospector struct {
	*oauth2.CoreValidator
}

// IntrospectToken implements fosite.TokenIntrospector.
func (v refreshIntrospector) IntrospectToken(ctx context.Context, token string, use fosite.TokenUse, ar fosite.AccessRequester, scopes []string) (fosite.TokenUse, error) {
	if strings.Count(token, ".") == 2 {
		return "", fosite.ErrUnknownRequest
	}
	return v.CoreValidator.IntrospectToken(ctx, token, use, ar, scopes)
}
