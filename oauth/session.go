package oauth

import (
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/jwt"
)

// NewSession returns the empty per-request session fosite fills. Access
// token claims live in its JWTClaims; the token handler sets sub,
// client_id, preferred_username, roles, jti, iat and nbf itself because
// fosite leaves them unset or stale (FOSITE-NOTES §3).
func NewSession() *oauth2.JWTSession {
	return &oauth2.JWTSession{
		JWTClaims: &jwt.JWTClaims{Extra: map[string]any{}},
		JWTHeader: &jwt.Headers{Extra: map[string]any{}},
		ExpiresAt: map[fosite.TokenType]time.Time{},
	}
}
