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
// fosite leaves them unset (sub, client_id, jti) or carries them over
// from the stored session on refresh (iat, nbf).
func NewSession() *oauth2.JWTSession {
	return &oauth2.JWTSession{
		JWTClaims: &jwt.JWTClaims{Extra: map[string]any{}},
		JWTHeader: &jwt.Headers{Extra: map[string]any{}},
		ExpiresAt: map[fosite.TokenType]time.Time{},
	}
}

// UserID returns the ID of the user a grant belongs to, and false for a
// client's own grant (client_credentials). It is the server's one rule for
// "is this a user's token": a client's grant has the client's ID as its
// subject and no preferred_username; anything else is a user's, so an
// inconsistent session fails closed (it must then name an existing user).
// On every token the server issues this agrees with the resource
// library's Claims.IsUser.
func UserID(ar fosite.Requester) (string, bool) {
	sess := ar.GetSession()
	if sess == nil {
		return "", false
	}
	sub := sess.GetSubject()
	var username any
	if js, ok := sess.(*oauth2.JWTSession); ok && js.JWTClaims != nil {
		if sub == "" {
			sub = js.JWTClaims.Subject
		}
		username = js.JWTClaims.Extra["preferred_username"]
	}
	if sub == ar.GetClient().GetID() && username == nil {
		return "", false
	}
	return sub, true
}
