package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/ory/fosite"

	"github.com/portcullis-auth/portcullis/oauth/clients"
)

// Client authentication errors (RFC 6749 §2.3, §5.2), with fixed texts that
// neither echo the request nor say how a client is registered.
var (
	// errNoClientAuth: the request carries no client identity at all
	// (neither Basic credentials nor a client_id). RFC 6749 §5.2 names
	// this case "no client authentication included": invalid_client, 401.
	errNoClientAuth = rfcError("invalid_client", http.StatusUnauthorized,
		"Client authentication failed: no client credentials were included.")
	// errTwoAuthMethods: RFC 6749 §2.3: "The client MUST NOT use more than
	// one authentication method in each request."
	errTwoAuthMethods = rfcError("invalid_request", http.StatusBadRequest,
		"The request authenticates the client in more than one way.")
	// errClientAuth: unknown client, wrong secret, or a method the client
	// is not registered for; one text for all, so that clients cannot be
	// enumerated.
	errClientAuth = rfcError("invalid_client", http.StatusUnauthorized, "Client authentication failed.")
	// errClientAuthEncoding: a Basic credential that is not
	// application/x-www-form-urlencoded (RFC 6749 §2.3.1).
	errClientAuthEncoding = rfcError("invalid_request", http.StatusBadRequest,
		"The client credentials in the Authorization header are not form-urlencoded.")

	// errPublicClientCredentials: a public client asked for the
	// client_credentials grant (RFC 6749 §4.4, §5.2 unauthorized_client;
	// fosite says invalid_grant).
	errPublicClientCredentials = rfcError("unauthorized_client", http.StatusBadRequest,
		"The client is not authorized to use this grant type.")
)

// clientAuth authenticates clients at the token, revocation and
// introspection endpoints (RFC 6749 §2.3), replacing fosite's strategy
// (fosite.Config.ClientAuthenticationStrategy's default), which lets a
// client use exactly one method and answers a request without any client
// identity with invalid_request.
type clientAuth struct {
	clients fosite.ClientManager
	hasher  fosite.Hasher
}

// authenticate implements fosite's Config.ClientAuthenticationStrategy:
//
//   - Basic credentials (client_secret_basic, form-urlencoded per RFC 6749
//     §2.3.1) or client_id and client_secret in the body
//     (client_secret_post) or a client_id alone (none, public clients; a
//     public client may also send Basic with an empty secret, as Swagger UI
//     does);
//   - two methods in one request (Basic and a body client_secret, or a body
//     client_id other than the Basic one) → invalid_request (RFC 6749 §2.3);
//   - no client identity at all → invalid_client, 401 (RFC 6749 §5.2);
//   - unknown client, wrong secret, a confidential client without a secret
//     or a public client with one, a method the client does not accept
//     (clients.Client.AcceptedAuthMethods), or a client assertion
//     (private_key_jwt is not supported) → invalid_client, 401.
//
// Errors from the client store other than fosite.ErrNotFound are returned
// wrapped, so an outage stays distinguishable (503).
func (a clientAuth) authenticate(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	if form.Has("client_assertion") || form.Has("client_assertion_type") {
		return nil, errClientAuth
	}
	id, secret, method := form.Get("client_id"), form.Get("client_secret"), ""
	if bid, bsecret, ok := r.BasicAuth(); ok {
		var err1, err2 error
		bid, err1 = url.QueryUnescape(bid)
		bsecret, err2 = url.QueryUnescape(bsecret)
		if err1 != nil || err2 != nil {
			return nil, errClientAuthEncoding
		}
		if secret != "" || (id != "" && id != bid) {
			return nil, errTwoAuthMethods
		}
		id, secret, method = bid, bsecret, clients.AuthSecretBasic
	} else if secret != "" {
		method = clients.AuthSecretPost
	}
	if id == "" {
		return nil, errNoClientAuth
	}
	fc, err := a.clients.GetClient(ctx, id)
	if errors.Is(err, fosite.ErrNotFound) {
		return nil, errClientAuth
	}
	if err != nil {
		return nil, fmt.Errorf("client authentication: %w", err)
	}
	c, ok := fc.(*Client)
	if !ok {
		return nil, fmt.Errorf("client authentication: unexpected client type %T", fc)
	}
	if c.IsPublic() {
		// Authenticated by client_id alone (RFC 6749 §2.1, §3.2.1); a
		// secret proves nothing and is refused, as fosite does.
		if secret != "" {
			return nil, errClientAuth
		}
		return c, nil
	}
	if secret == "" || !slices.Contains(c.AcceptedAuthMethods(), method) {
		// Still compare, so that a refusal costs the same whatever the
		// reason.
		_ = a.hasher.Compare(ctx, c.GetHashedSecret(), []byte(secret))
		return nil, errClientAuth
	}
	if err := a.hasher.Compare(ctx, c.GetHashedSecret(), []byte(secret)); err != nil {
		return nil, errClientAuth
	}
	return c, nil
}
