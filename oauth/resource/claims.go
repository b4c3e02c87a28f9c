package resource

import (
	"slices"
	"strings"
	"time"
)

// Claims are the verified claims of an RFC 9068 access token.
//
// A *Claims returned by [Verifier.Verify] or [ClaimsFromContext] belongs to
// the caller: Verify returns a fresh copy each time, so modifying it does
// not affect other requests or the verified-token cache.
type Claims struct {
	// Issuer is "iss", equal to the Verifier's Options.Issuer.
	Issuer string
	// Subject is "sub": a user id, or the client id for client_credentials
	// (see IsUser).
	Subject string
	// Audience is "aud" (a single-string aud becomes a one-element slice).
	Audience []string
	// ExpiresAt is "exp".
	ExpiresAt time.Time
	// IssuedAt is "iat".
	IssuedAt time.Time
	// NotBefore is "nbf"; the zero time when absent.
	NotBefore time.Time
	// ID is "jti".
	ID string
	// ClientID is "client_id" (RFC 9068 §2.2).
	ClientID string
	// Scope is "scope", space-separated (RFC 8693 §4.2).
	Scope string
	// Username is "preferred_username"; empty for client_credentials tokens.
	Username string
	// Roles is "roles"; nil for client_credentials tokens.
	Roles []string
	// JKT is "cnf"."jkt" (RFC 9449 §6.1, RFC 7800): the base64url SHA-256
	// JWK thumbprint (RFC 7638) of the key the token is bound to; empty
	// for a bearer token. [Middleware] accepts a token with a JKT only
	// under the DPoP scheme, with a proof signed by that key.
	JKT string
	// ACR is "acr" (OpenID Connect Core §2, RFC 9068 §2.2.3.1): the
	// authentication context class the user's authentication satisfied,
	// such as "1" for a password alone and "2" for a second factor at
	// Portcullis. Empty when absent, as in client_credentials tokens.
	ACR string
	// AMR is "amr" (RFC 8176): the authentication methods used, such as
	// "pwd", "otp" and "mfa". Nil when absent.
	AMR []string
	// AuthTime is "auth_time" (OpenID Connect Core §2, RFC 9068
	// §2.2.3.1): when the user last authenticated. The zero time when
	// absent.
	AuthTime time.Time
}

// Scopes returns the scope values of c.Scope, in order, without empty
// entries. It returns nil when there are none.
func (c *Claims) Scopes() []string {
	return strings.Fields(c.Scope)
}

// HasScope reports whether scope is one of the token's scope values (exact,
// case-sensitive match as in RFC 6749 §3.3).
func (c *Claims) HasScope(scope string) bool {
	for s := range strings.FieldsSeq(c.Scope) {
		if s == scope {
			return true
		}
	}
	return false
}

// IsUser reports whether the token was issued for a user (the resource
// owner of RFC 6749 §1.1, as with the password grant), rather than to a
// client acting on its own behalf (client_credentials, RFC 6749 §4.4),
// whose token has no user. A Portcullis user token carries
// preferred_username and a sub (the user id) different from client_id; a
// client_credentials token has sub = client_id and no preferred_username.
// Both conditions must hold, so a token matching neither shape counts as
// not a user's.
func (c *Claims) IsUser() bool {
	return c.Username != "" && c.Subject != c.ClientID
}

// HasRole reports whether role is one of the token's roles (exact match).
func (c *Claims) HasRole(role string) bool {
	return slices.Contains(c.Roles, role)
}

// HasAMR reports whether method is one of the token's authentication
// methods (the "amr" claim; exact match, RFC 8176 §1).
func (c *Claims) HasAMR(method string) bool {
	return slices.Contains(c.AMR, method)
}

// clone returns a deep copy of c.
func (c *Claims) clone() *Claims {
	cp := *c
	cp.Audience = slices.Clone(c.Audience)
	cp.Roles = slices.Clone(c.Roles)
	cp.AMR = slices.Clone(c.AMR)
	return &cp
}
