package oauth

import (
	"context"
	"errors"

	jose3 "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"

	"github.com/portcullis-auth/portcullis/oauth/clients"
)

// Client is a registered client as fosite sees it: it adapts a
// *clients.Client, whose fields and methods it promotes, to fosite.Client
// and fosite.OpenIDConnectClient. The store's GetClient returns a *Client,
// and so does fosite's Requester.GetClient for every request Portcullis
// builds or loads; the client's token_endpoint_auth_method is enforced by
// NewProvider's own client authentication, not fosite's.
//
// The embedded *clients.Client must not be nil.
type Client struct {
	*clients.Client
}

var (
	_ fosite.Client              = (*Client)(nil)
	_ fosite.OpenIDConnectClient = (*Client)(nil)
)

// GetID implements fosite.Client.
func (c *Client) GetID() string { return c.ID }

// GetHashedSecret implements fosite.Client.
func (c *Client) GetHashedSecret() []byte { return c.SecretHash }

// GetRedirectURIs implements fosite.Client; Portcullis has no redirect flows.
func (c *Client) GetRedirectURIs() []string { return nil }

// GetGrantTypes implements fosite.Client.
func (c *Client) GetGrantTypes() fosite.Arguments { return c.GrantTypes }

// GetResponseTypes implements fosite.Client.
func (c *Client) GetResponseTypes() fosite.Arguments { return nil }

// GetScopes implements fosite.Client.
func (c *Client) GetScopes() fosite.Arguments { return c.Scopes }

// IsPublic implements fosite.Client (clients.Client.IsPublic).
func (c *Client) IsPublic() bool { return c.Client.IsPublic() }

// GetAudience implements fosite.Client.
func (c *Client) GetAudience() fosite.Arguments { return c.Audience }

// GetRequestURIs implements fosite.OpenIDConnectClient.
func (c *Client) GetRequestURIs() []string { return nil }

// GetJSONWebKeys implements fosite.OpenIDConnectClient.
func (c *Client) GetJSONWebKeys() *jose3.JSONWebKeySet { return nil }

// GetJSONWebKeysURI implements fosite.OpenIDConnectClient.
func (c *Client) GetJSONWebKeysURI() string { return "" }

// GetRequestObjectSigningAlgorithm implements fosite.OpenIDConnectClient.
func (c *Client) GetRequestObjectSigningAlgorithm() string { return "" }

// GetTokenEndpointAuthMethod implements fosite.OpenIDConnectClient:
// clients.Client.AuthMethodName.
func (c *Client) GetTokenEndpointAuthMethod() string { return c.AuthMethodName() }

// DPoPBoundAccessTokens reports whether the client is registered with
// dpop_bound_access_tokens (RFC 9449 §5.2): if so, the token endpoint must
// refuse its token requests that carry no DPoP header. It is the
// clients.Client field of that name, which this method shadows: find it
// on a fosite.Client by asserting interface{ DPoPBoundAccessTokens() bool }
// (false for a client without the method).
func (c *Client) DPoPBoundAccessTokens() bool { return c.Client.DPoPBoundAccessTokens }

// RequiresMFA reports whether every user logging in through the client
// must prove a second factor (clients.Client.MFARequired); find it on a
// fosite.Client by asserting interface{ RequiresMFA() bool }.
func (c *Client) RequiresMFA() bool { return c.MFARequired }

// GetTokenEndpointAuthSigningAlgorithm implements fosite.OpenIDConnectClient.
func (c *Client) GetTokenEndpointAuthSigningAlgorithm() string { return "" }

// SecretHasher implements fosite.Hasher with the client-secret hash of
// package clients: SHA-256, compared in constant time (clients.HashSecret
// says why not bcrypt).
type SecretHasher struct{}

var _ fosite.Hasher = SecretHasher{}

// Hash implements fosite.Hasher: clients.HashSecret.
func (SecretHasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	return clients.HashSecret(data), nil
}

// Compare implements fosite.Hasher. It returns an error when data does not
// hash to hash.
func (SecretHasher) Compare(_ context.Context, hash, data []byte) error {
	if !clients.SecretMatches(hash, data) {
		return errors.New("client secret mismatch")
	}
	return nil
}
