package clients

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Grant types a client may be registered for (RFC 6749 grant_type values).
const (
	GrantPassword          = "password"
	GrantClientCredentials = "client_credentials"
	GrantRefreshToken      = "refresh_token"
	// GrantAuthorizationCode redeems the codes of the authorization
	// challenge endpoint (draft-ietf-oauth-first-party-apps): a client
	// registered for it may use that endpoint.
	GrantAuthorizationCode = "authorization_code"
)

// Client authentication methods at the token endpoint (RFC 7591 names).
const (
	AuthSecretBasic = "client_secret_basic"
	AuthSecretPost  = "client_secret_post"
	AuthNone        = "none"
	// AuthSecretDefault is the AuthMethod of a confidential client
	// registered without a token_endpoint_auth_method: it accepts both
	// client_secret_basic and client_secret_post (see
	// Client.AcceptedAuthMethods), so that client libraries work at their
	// defaults. Its representation shows RFC 7591's default,
	// client_secret_basic, and lists both in
	// token_endpoint_auth_methods_accepted.
	AuthSecretDefault = ""
)

// Client is a registered OAuth2 client. Package oauth presents it to fosite
// (oauth.Client); its token_endpoint_auth_method is enforced by oauth's own
// client authentication, not fosite's.
type Client struct {
	ID         string
	Name       string
	SecretHash []byte // HashSecret of the secret; empty for public clients
	// AuthMethod is the registered token_endpoint_auth_method:
	// AuthSecretBasic or AuthSecretPost (only that one is accepted),
	// AuthNone (public), or AuthSecretDefault (confidential, registered
	// without one: both secret methods are accepted).
	AuthMethod string
	GrantTypes []string
	Scopes     []string
	Audience   []string
	CreatedAt  time.Time
	UpdatedAt  time.Time

	// IntrospectionAllowed lets the client call the introspection endpoint
	// (RFC 7662 §2.1) about any token; only a confidential client may hold
	// it. Default false.
	IntrospectionAllowed bool

	// AccessTokenSigningAlg is the JWS algorithm of the client's access
	// tokens (access_token_signed_response_alg): ES256 or RS256, for
	// resource servers that only speak RS256 (RFC 9068 §2.1); empty means
	// the server's default (keys.algorithm).
	AccessTokenSigningAlg string

	// CORSOrigins are the browser origins (scheme://host[:port], as
	// normalised by cors.ParseOrigin) that may read this client's token
	// and revocation responses: Keycloak's web origins, Hydra's
	// allowed_cors_origins. Default none.
	CORSOrigins []string

	// DPoPBoundAccessTokens is RFC 9449 §5.2's dpop_bound_access_tokens:
	// when true, the token endpoint must refuse the client's token
	// requests that carry no DPoP proof, so that every access token it
	// obtains is bound to a key it holds. Public and confidential clients
	// may both set it. Default false.
	DPoPBoundAccessTokens bool

	// MFARequired makes every user who logs in through the client prove a
	// second factor (TOTP or a recovery code) at the authorization
	// challenge endpoint; the password grant refuses such logins with
	// insufficient_authorization. Default false.
	MFARequired bool
}

// IsPublic reports whether c is a public client (RFC 6749 §2.1): it has no
// secret and authenticates with token_endpoint_auth_method none.
func (c *Client) IsPublic() bool { return c.AuthMethod == AuthNone }

// AuthMethodName returns the RFC 7591 token_endpoint_auth_method of c:
// AuthMethod, or client_secret_basic (RFC 7591 §2's default) for a client
// registered without one, which also accepts client_secret_post (see
// AcceptedAuthMethods).
func (c *Client) AuthMethodName() string {
	if c.AuthMethod == AuthSecretDefault {
		return AuthSecretBasic
	}
	return c.AuthMethod
}

// AcceptedAuthMethods returns the token_endpoint_auth_method values c
// accepts (RFC 7591 names): none for a public client, the registered method
// for a client registered with one, and client_secret_basic and
// client_secret_post for a confidential client registered without one
// (AuthMethod empty).
func (c *Client) AcceptedAuthMethods() []string {
	switch {
	case c.IsPublic():
		return []string{AuthNone}
	case c.AuthMethod == AuthSecretDefault:
		return []string{AuthSecretBasic, AuthSecretPost}
	default:
		return []string{c.AuthMethod}
	}
}

// spec returns the settable fields of c.
func (c *Client) spec() Spec {
	return Spec{
		Name: c.Name, Public: c.IsPublic(), AuthMethod: c.AuthMethod,
		GrantTypes: slices.Clone(c.GrantTypes), Scopes: slices.Clone(c.Scopes), Audience: slices.Clone(c.Audience),
		IntrospectionAllowed: c.IntrospectionAllowed, AccessTokenSigningAlg: c.AccessTokenSigningAlg,
		CORSOrigins: slices.Clone(c.CORSOrigins), DPoPBoundAccessTokens: c.DPoPBoundAccessTokens,
		MFARequired: c.MFARequired,
	}
}

// Version returns a digest of everything stored about c (its secret's
// hash included, so a rotation changes it), for optimistic concurrency:
// two reads return the same version exactly when nothing changed in
// between, since every change also sets UpdatedAt. It reveals nothing
// about the secret.
func (c *Client) Version() string {
	fields := []string{c.ID, c.Name, hex.EncodeToString(c.SecretHash), c.AuthMethod,
		strings.Join(c.GrantTypes, " "), strings.Join(c.Scopes, " "), strings.Join(c.Audience, " "),
		strconv.FormatInt(c.CreatedAt.UnixMicro(), 10), strconv.FormatInt(c.UpdatedAt.UnixMicro(), 10),
		strconv.FormatBool(c.IntrospectionAllowed), c.AccessTokenSigningAlg, strings.Join(c.CORSOrigins, " "),
		strconv.FormatBool(c.DPoPBoundAccessTokens), strconv.FormatBool(c.MFARequired)}
	sum := sha256.Sum256([]byte(strings.Join(fields, "\x00")))
	return hex.EncodeToString(sum[:16])
}
