package oauth

import (
	"fmt"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/jwt"

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
}

// NewProvider composes fosite explicitly with exactly the handlers
// Portcullis offers: resource-owner password (passwordGrant: the password
// itself is checked by TokenHandler), client credentials, refresh token
// (with rotation), revocation, and stateful introspection whose JWT check
// picks the key by kid. Access tokens are RFC 9068 JWTs signed by
// km's active key; refresh tokens are opaque HMAC tokens.
func NewProvider(cfg ProviderConfig, store TokenStore, km *keys.Manager) (fosite.OAuth2Provider, error) {
	if len(cfg.RefreshSecret) < 32 {
		return nil, fmt.Errorf("refresh-token secret must be at least 32 bytes")
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
	}
	hmacStrategy := compose.NewOAuth2HMACStrategy(fc)
	// Client authentication per RFC 6749 §2.3 and §5.2, with the methods
	// each client accepts (clients.Client.AcceptedAuthMethods); fosite's own allows
	// one method per client.
	fc.ClientAuthenticationStrategy = clientAuth{clients: store, hasher: fc.ClientSecretsHasher}.authenticate
	strategy := &oauth2.DefaultJWTStrategy{
		Signer:          &jwtSigner{keys: km},
		HMACSHAStrategy: hmacStrategy,
		Config:          fc,
	}
	gs := grantStore{TokenStore: store}
	return compose.Compose(fc, gs, strategy,
		passwordGrantFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2TokenRevocationFactory,
		compose.OAuth2TokenIntrospectionFactory,
	), nil
}
