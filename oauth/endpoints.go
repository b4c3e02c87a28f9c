package oauth

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/portcullis-auth/portcullis/internal/ratelimit"
	"github.com/portcullis-auth/portcullis/oauth/clients"
	"github.com/portcullis-auth/portcullis/oauth/dpop"
)

// RevokeHandler serves POST /oauth2/revoke (RFC 7009). Revoking either
// token of a grant revokes the whole refresh chain and its access tokens.
type RevokeHandler struct {
	// Provider must authenticate clients (fosite's AuthenticateClient, as
	// the *fosite.Fosite returned by NewProvider does) and introspect
	// access tokens (NewProvider's jwtIntrospector).
	Provider fosite.OAuth2Provider
	// Store records the revocation of an access token's grant.
	Store TokenStore
	// Limiter, when set, bounds per client ID how many of its own
	// client_credentials access tokens a client revokes (each revocation
	// is kept in memory by every replica until the token's exp): over it,
	// 429 with Retry-After.
	Limiter  *ratelimit.Keyed
	MaxBytes int64
	Logger   *slog.Logger
}

// ServeHTTP implements http.Handler.
func (h *RevokeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := readForm(w, r, h.MaxBytes); err != nil {
		writeOAuthError(w, r, err)
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		writeOAuthError(w, r, errNoToken)
		return
	}
	var err error
	if strings.Count(token, ".") == 2 {
		// An access token (refresh tokens have one dot). It is not stored,
		// so fosite's revocation handler would not find it.
		err = h.revokeAccessToken(r.Context(), r, token)
	} else {
		err = h.Provider.NewRevocationRequest(r.Context(), r)
	}
	if err != nil {
		rfc := toRFC6749(err)
		// RFC 7009 §2.1-2.2: an unknown or invalid token is answered 200,
		// but client and request errors are reported, including a token
		// issued to another client (unauthorized_client), and a storage
		// outage must not pretend the token was revoked.
		if rfc.CodeField == http.StatusServiceUnavailable || rfc.CodeField == http.StatusTooManyRequests || rfc.ErrorField == fosite.ErrInvalidClient.ErrorField ||
			rfc.ErrorField == fosite.ErrInvalidRequest.ErrorField || rfc.ErrorField == fosite.ErrUnauthorizedClient.ErrorField ||
			rfc.CodeField >= 500 {
			if rfc.CodeField >= 500 && h.Logger != nil {
				h.Logger.ErrorContext(r.Context(), "revocation failed", "err", err.Error())
			}
			writeOAuthError(w, r, rfc)
			return
		}
	}
	writeRevoked(w)
}

// revokeAccessToken revokes the grant of an access token, as fosite's
// revocation handler does for stored tokens: the client authenticates
// first (RFC 7009 §2.1); a token that is not a live access token this
// server signed (expired, forged, already revoked) is answered 200 without
// changing anything, so an old token can never revoke a grant; a token of
// another client is unauthorized_client. The grant's refresh tokens are
// marked inactive and its revocation recorded in one transaction.
func (h *RevokeHandler) revokeAccessToken(ctx context.Context, r *http.Request, token string) error {
	authn, ok := h.Provider.(clientAuthenticator)
	if !ok || h.Store == nil {
		return errServer
	}
	client, err := authn.AuthenticateClient(ctx, r, r.PostForm)
	if err != nil {
		return err
	}
	_, ar, err := h.Provider.IntrospectToken(ctx, token, fosite.AccessToken, NewSession())
	if err != nil {
		if rfc := toRFC6749(err); rfc.CodeField >= 500 {
			return err
		}
		return nil // RFC 7009 §2.2: an invalid token is answered 200
	}
	if ar.GetClient().GetID() != client.GetID() {
		return fosite.ErrUnauthorizedClient
	}
	if _, isUser := UserID(ar); !isUser && h.Limiter != nil && !h.Limiter.Allow(client.GetID()) {
		return errRevocationsThrottled
	}
	txCtx, err := h.Store.BeginTX(ctx)
	if err != nil {
		return err
	}
	if err = h.Store.RevokeRefreshToken(txCtx, ar.GetID()); err == nil {
		err = h.Store.RevokeAccessToken(txCtx, ar.GetID())
	}
	if err == nil {
		err = h.Store.Commit(txCtx)
	}
	if err != nil {
		_ = h.Store.Rollback(txCtx)
	}
	return err
}

// writeRevoked writes RFC 7009 §2.2's success response.
func writeRevoked(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(http.StatusOK)
}

// IntrospectHandler serves POST /oauth2/introspect (RFC 7662).
//
// Only a confidential client registered with IntrospectionAllowed may call
// it (RFC 7662 §2.1 and §4: protected resources specifically authorised
// to), authenticating as it does at the token endpoint, with its registered
// client_secret_basic or client_secret_post. An access token is never a
// credential here, whether in the Authorization header or as an
// access_token parameter: fosite's introspection would accept any user's
// valid access token as the caller's credential.
//
// Errors are RFC 6749 §5.2 JSON with fixed descriptions:
//   - 401 invalid_client, with a Basic challenge: no or wrong client
//     credentials, an unknown or public client, a Bearer token or any
//     Authorization scheme other than Basic, an access_token parameter;
//   - 403 unauthorized_client: an authenticated client without the
//     permission, whatever the token (no oracle for active tokens);
//   - 400 invalid_request: two client authentication methods in one
//     request (RFC 6749 §2.3); no token parameter (checked after the
//     caller);
//   - 503 temporarily_unavailable: the database is unreachable.
//
// Any token that is not active (unknown, expired, revoked, malformed, or
// lacking the scopes of the optional scope parameter) is 200
// {"active":false} (RFC 7662 §2.2).
type IntrospectHandler struct {
	// Provider introspects tokens and must also authenticate clients
	// (fosite's AuthenticateClient, as the *fosite.Fosite returned by
	// NewProvider does); otherwise every request fails with server_error.
	Provider fosite.OAuth2Provider
	MaxBytes int64
	Logger   *slog.Logger
}

// clientAuthenticator is the client authentication of the token and
// revocation endpoints (RFC 6749 §2.3; NewProvider installs clientAuth as
// fosite's strategy), which enforces the methods each client accepts;
// fosite's OAuth2Provider interface does not include it.
type clientAuthenticator interface {
	AuthenticateClient(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error)
}

var _ clientAuthenticator = (*fosite.Fosite)(nil)

// The introspection endpoint's own errors; fixed texts that echo nothing
// from the request.
var (
	errIntrospectUnauthenticated = rfcError("invalid_client", http.StatusUnauthorized,
		"Client authentication failed: introspection needs the credentials of a confidential client; access tokens are not accepted.")
	errIntrospectForbidden = rfcError("unauthorized_client", http.StatusForbidden,
		"The client is not allowed to introspect tokens.")
)

// ServeHTTP implements http.Handler.
func (h *IntrospectHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := readForm(w, r, h.MaxBytes); err != nil {
		writeOAuthError(w, r, err)
		return
	}
	ctx := r.Context()
	client, rfc := h.authenticate(ctx, r)
	if rfc != nil {
		writeOAuthError(w, r, rfc)
		return
	}
	if !client.IntrospectionAllowed {
		h.debug(ctx, "introspection refused: client not allowed", "client_id", client.ID)
		writeOAuthError(w, r, errIntrospectForbidden)
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		writeOAuthError(w, r, errNoToken)
		return
	}
	// As fosite's NewIntrospectionRequest: the hint orders the lookups and
	// the scope parameter lists scopes the token must carry.
	hint := fosite.TokenUse(r.PostForm.Get("token_type_hint"))
	scopes := fosite.RemoveEmpty(strings.Split(r.PostForm.Get("scope"), " "))
	use, ar, err := h.Provider.IntrospectToken(ctx, token, hint, NewSession(), scopes...)
	if err != nil {
		if rfc := toRFC6749(err); rfc.CodeField >= 500 {
			if h.Logger != nil {
				h.Logger.ErrorContext(ctx, "introspection failed", "err", err.Error())
			}
			writeOAuthError(w, r, rfc)
			return
		}
		// Unknown, expired, revoked or malformed token (RFC 7662 §2.2).
		writeJSONNoStore(w, http.StatusOK, map[string]bool{"active": false})
		return
	}
	writeJSONNoStore(w, http.StatusOK, introspection(&fosite.IntrospectionResponse{Active: true, AccessRequester: ar, TokenUse: use}))
}

// authenticate returns the calling client, or the error to answer: only a
// confidential client's own credentials are accepted.
func (h *IntrospectHandler) authenticate(ctx context.Context, r *http.Request) (*Client, *fosite.RFC6749Error) {
	if scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " "); scheme != "" && !strings.EqualFold(scheme, "Basic") {
		h.debug(ctx, "introspection refused: an Authorization scheme other than Basic")
		return nil, errIntrospectUnauthenticated
	}
	if r.Form.Has("access_token") { // RFC 6750 §2.2 and §2.3: a bearer token in the body or query
		h.debug(ctx, "introspection refused: access_token parameter")
		return nil, errIntrospectUnauthenticated
	}
	authn, ok := h.Provider.(clientAuthenticator)
	if !ok {
		if h.Logger != nil {
			h.Logger.ErrorContext(ctx, "introspection: the provider cannot authenticate clients")
		}
		return nil, errServer
	}
	fc, err := authn.AuthenticateClient(ctx, r, r.PostForm)
	if err != nil {
		if rfc := toRFC6749(err); rfc.CodeField >= 500 {
			if h.Logger != nil {
				h.Logger.ErrorContext(ctx, "introspection: client authentication failed", "err", err.Error())
			}
			return nil, rfc
		}
		if rfc := toRFC6749(err); rfc.ErrorField == "invalid_request" {
			// As at the token endpoint: two authentication methods in one
			// request, or undecodable Basic credentials (RFC 6749 §2.3).
			return nil, rfc
		}
		h.debug(ctx, "introspection refused: client authentication failed", "err", err.Error())
		return nil, errIntrospectUnauthenticated
	}
	c, ok := fc.(*Client)
	if !ok || c.IsPublic() {
		// A public client proves nothing: fosite authenticates it by
		// client_id alone.
		h.debug(ctx, "introspection refused: public client", "client_id", fc.GetID())
		return nil, errIntrospectUnauthenticated
	}
	return c, nil
}

func (h *IntrospectHandler) debug(ctx context.Context, msg string, args ...any) {
	if h.Logger != nil {
		h.Logger.DebugContext(ctx, msg, args...)
	}
}

// introspection builds the RFC 7662 §2.2 response for an active token.
// fosite's own writer reports an access token's expiry even for a refresh
// token and leaks the session's extra claims; this one reports the token's
// own expiry, the RFC's members, and token_use (as Hydra does).
func introspection(ir fosite.IntrospectionResponder) map[string]any {
	ar := ir.GetAccessRequester()
	sess := ar.GetSession()
	use := ir.GetTokenUse()
	out := map[string]any{"active": true, "client_id": ar.GetClient().GetID(), "token_use": string(use)}
	if exp := sess.GetExpiresAt(use); !exp.IsZero() {
		out["exp"] = exp.Unix()
	}
	if scopes := ar.GetGrantedScopes(); len(scopes) > 0 {
		out["scope"] = strings.Join(scopes, " ")
	}
	if aud := ar.GetGrantedAudience(); len(aud) > 0 {
		out["aud"] = []string(aud)
	}
	if sub := sess.GetSubject(); sub != "" {
		out["sub"] = sub
	}
	if name := sess.GetUsername(); name != "" {
		out["username"] = name
	}
	if js, ok := sess.(*oauth2.JWTSession); ok && js.JWTClaims != nil {
		if js.JWTClaims.Issuer != "" {
			out["iss"] = js.JWTClaims.Issuer
		}
		if use == fosite.AccessToken {
			out["token_type"] = "Bearer"
			if jkt := BoundKey(js); jkt != "" {
				// RFC 9449 §6.2: the key the token is bound to.
				out["token_type"] = dpop.Scheme
				out[cnfClaim] = map[string]string{"jkt": jkt}
			}
			if js.JWTClaims.JTI != "" {
				out["jti"] = js.JWTClaims.JTI
			}
			if !js.JWTClaims.IssuedAt.IsZero() {
				out["iat"] = js.JWTClaims.IssuedAt.Unix()
			}
			if !js.JWTClaims.NotBefore.IsZero() {
				out["nbf"] = js.JWTClaims.NotBefore.Unix()
			}
		}
	}
	if _, ok := out["iat"]; !ok && !ar.GetRequestedAt().IsZero() {
		out["iat"] = ar.GetRequestedAt().Unix()
	}
	return out
}

// Metadata is the RFC 8414 authorization server metadata document, served
// at /.well-known/oauth-authorization-server (RFC 8414 section 3).
//
// Every member is registered in IANA's OAuth Authorization Server Metadata
// registry except access_token_signing_alg_values_supported and
// signup_endpoint, which are Portcullis's own: clients ignore them (RFC 8414
// section 2), and nothing depends on them alone. In particular a verifier
// learns the signing algorithm from the registered "alg" member that every
// key in jwks_uri carries (RFC 7517 section 4.4).
//
// The auth-method lists are exact: the token endpoint accepts
// client_secret_basic, client_secret_post and none (public clients); the
// revocation endpoint the same (RFC 7009 section 2.1); the introspection
// endpoint only client_secret_basic and client_secret_post, from
// confidential clients (RFC 7662 section 2.1).
type Metadata struct {
	Issuer                                    string   `json:"issuer"`
	TokenEndpoint                             string   `json:"token_endpoint"`
	JWKSURI                                   string   `json:"jwks_uri"`
	RevocationEndpoint                        string   `json:"revocation_endpoint"`
	IntrospectionEndpoint                     string   `json:"introspection_endpoint"`
	GrantTypesSupported                       []string `json:"grant_types_supported"`
	ResponseTypesSupported                    []string `json:"response_types_supported"`
	TokenEndpointAuthMethodsSupported         []string `json:"token_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethodsSupported    []string `json:"revocation_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthMethodsSupported []string `json:"introspection_endpoint_auth_methods_supported"`
	AccessTokenSigningAlgValuesSupported      []string `json:"access_token_signing_alg_values_supported"`
	ScopesSupported                           []string `json:"scopes_supported,omitempty"`
	// DPoPSigningAlgValuesSupported lists the algorithms of DPoP proofs
	// the server accepts (RFC 9449 §5.1); absent when DPoP is off.
	DPoPSigningAlgValuesSupported []string `json:"dpop_signing_alg_values_supported,omitempty"`
	ServiceDocumentation          string   `json:"service_documentation,omitempty"`
	// AuthorizationChallengeEndpoint is the first-party apps' endpoint
	// (draft-ietf-oauth-first-party-apps-04 §4.1, §8);
	// CodeChallengeMethodsSupported (RFC 8414 §2) says its codes need
	// PKCE S256; ACRValuesSupported (OpenID Connect Discovery) lists the
	// acr values tokens carry.
	AuthorizationChallengeEndpoint string   `json:"authorization_challenge_endpoint,omitempty"`
	CodeChallengeMethodsSupported  []string `json:"code_challenge_methods_supported,omitempty"`
	ACRValuesSupported             []string `json:"acr_values_supported,omitempty"`
	SignupEndpoint                 string   `json:"signup_endpoint,omitempty"`
}

// NewMetadata describes a server at issuer whose tokens are signed with
// alg by default; ES256 and RS256 are always available per client
// (access_token_signed_response_alg), so they are listed too.
func NewMetadata(issuer, alg string, signup bool) Metadata {
	m := Metadata{
		Issuer:                                    issuer,
		TokenEndpoint:                             issuer + "/oauth2/token",
		JWKSURI:                                   issuer + "/.well-known/jwks.json",
		RevocationEndpoint:                        issuer + "/oauth2/revoke",
		IntrospectionEndpoint:                     issuer + "/oauth2/introspect",
		GrantTypesSupported:                       []string{clients.GrantPassword, clients.GrantClientCredentials, clients.GrantRefreshToken},
		ResponseTypesSupported:                    []string{},
		TokenEndpointAuthMethodsSupported:         []string{clients.AuthSecretBasic, clients.AuthSecretPost, clients.AuthNone},
		RevocationEndpointAuthMethodsSupported:    []string{clients.AuthSecretBasic, clients.AuthSecretPost, clients.AuthNone},
		IntrospectionEndpointAuthMethodsSupported: []string{clients.AuthSecretBasic, clients.AuthSecretPost},
		AccessTokenSigningAlgValuesSupported:      signingAlgs(alg),
	}
	if signup {
		m.SignupEndpoint = issuer + "/signup"
	}
	return m
}

// WithChallengeEndpoint adds the authorization challenge endpoint at url,
// the authorization_code grant its codes are redeemed with, PKCE S256 and
// the acr values to m.
func (m *Metadata) WithChallengeEndpoint(url string, acr ACRValues) {
	m.AuthorizationChallengeEndpoint = url
	m.GrantTypesSupported = append(m.GrantTypesSupported, clients.GrantAuthorizationCode)
	m.CodeChallengeMethodsSupported = []string{"S256"}
	m.ACRValuesSupported = []string{acr.Single, acr.Multi}
}

// signingAlgs returns alg followed by ES256 and RS256 unless alg is one.
func signingAlgs(alg string) []string {
	out := []string{alg}
	for _, a := range []string{"ES256", "RS256"} {
		if a != alg {
			out = append(out, a)
		}
	}
	return out
}
