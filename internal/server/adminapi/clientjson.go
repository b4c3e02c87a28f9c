package adminapi

import (
	"strings"
	"time"

	"github.com/portcullis-auth/portcullis/oauth/clients"
)

// ClientJSON is the one JSON representation of a client (RFC 7591 names),
// used by the admin API and the CLI's --output json.
type ClientJSON struct {
	ClientID     string `json:"client_id"`
	ClientName   string `json:"client_name"`
	ClientSecret string `json:"client_secret,omitempty"`
	// ClientIDIssuedAt and ClientSecretExpiresAt are RFC 7591 §3.2.1's
	// members, present when ClientSecret is (creation and secret
	// rotation): when the client was registered (created_at, in seconds
	// since the epoch) and when the secret expires, 0 for never, which is
	// always the case here (a secret lasts until rotated).
	ClientIDIssuedAt        *int64   `json:"client_id_issued_at,omitempty"`
	ClientSecretExpiresAt   *int64   `json:"client_secret_expires_at,omitempty"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	Scope                   string   `json:"scope"`
	Audience                []string `json:"audience"`
	// TokenEndpointAuthMethodsAccepted lists every method the client may
	// use (not an RFC 7591 name): one for a client registered with a
	// method, both client_secret_basic and client_secret_post for a
	// confidential client registered without one (whose
	// token_endpoint_auth_method shows RFC 7591's default,
	// client_secret_basic).
	TokenEndpointAuthMethodsAccepted []string `json:"token_endpoint_auth_methods_accepted"`
	// IntrospectionAllowed: the client may call the introspection
	// endpoint (RFC 7662 §2.1). Not an RFC 7591 name; false by default.
	IntrospectionAllowed bool      `json:"introspection_allowed"`
	CreatedAt            time.Time `json:"created_at"`
	UpdatedAt            time.Time `json:"updated_at"`

	// AccessTokenSignedResponseAlg is the JWS algorithm of the client's
	// access tokens when it is not the server's default (ES256 or RS256);
	// omitted for the default. Named after RFC 7591's *_signed_response_alg
	// members, as Keycloak's access.token.signed.response.alg.
	AccessTokenSignedResponseAlg string `json:"access_token_signed_response_alg,omitempty"`

	// AllowedCORSOrigins are the browser origins that may call the token
	// and revocation endpoints as this client (Hydra's name; Keycloak's
	// web origins). Not an RFC 7591 name; empty by default.
	AllowedCORSOrigins []string `json:"allowed_cors_origins"`

	// DPoPBoundAccessTokens is RFC 9449 §5.2's client metadata: when
	// true, the client's token requests must carry a DPoP proof. Always
	// present; false by default.
	DPoPBoundAccessTokens bool `json:"dpop_bound_access_tokens"`

	// MFARequired: every user who logs in through the client must prove
	// a second factor (not an RFC 7591 name). Always present; false by
	// default.
	MFARequired bool `json:"mfa_required"`
}

// NewClientJSON returns the representation of c (never its secret hash);
// secret, the client's secret in clear, is included when non-empty, which
// only creation and secret rotation do.
func NewClientJSON(c *clients.Client, secret string) ClientJSON {
	j := clientJSON(c, secret)
	if secret != "" {
		issued, never := c.CreatedAt.Unix(), int64(0)
		j.ClientIDIssuedAt, j.ClientSecretExpiresAt = &issued, &never
	}
	return j
}

func clientJSON(c *clients.Client, secret string) ClientJSON {
	return ClientJSON{
		ClientID: c.ID, ClientName: c.Name, ClientSecret: secret,
		TokenEndpointAuthMethod: c.AuthMethodName(), TokenEndpointAuthMethodsAccepted: c.AcceptedAuthMethods(),
		GrantTypes: nonNil(c.GrantTypes), Scope: strings.Join(c.Scopes, " "),
		Audience: nonNil(c.Audience), IntrospectionAllowed: c.IntrospectionAllowed, AccessTokenSignedResponseAlg: c.AccessTokenSigningAlg,
		CreatedAt: c.CreatedAt.UTC(), UpdatedAt: c.UpdatedAt.UTC(), AllowedCORSOrigins: nonNil(c.CORSOrigins),
		DPoPBoundAccessTokens: c.DPoPBoundAccessTokens, MFARequired: c.MFARequired,
	}
}

// nonNil returns s, or an empty list for nil, so that JSON shows [].
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
