// Package adminapi is Portcullis's administration API, served on the admin
// listener: clients, users and signing keys. Every route requires a Bearer
// access token issued by this server with scope "admin": a client's token
// (client_credentials), or a user's token whose user currently holds role
// "admin". The admin API is a resource server with its own audience
// identifier (Handler.Audience): a token whose aud lacks it is refused
// (RFC 9068 §4), so a token meant for another resource server cannot be
// replayed here. The token is introspected through fosite, so revoked
// tokens stop working at once; refresh tokens are refused.
package adminapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/httpjson"
	"github.com/portcullis-auth/portcullis/keys"
	"github.com/portcullis-auth/portcullis/oauth"
	"github.com/portcullis-auth/portcullis/oauth/clients"
	"github.com/portcullis-auth/portcullis/oauth/dpop"
)

// Scope is the scope an access token needs to call the admin API.
const Scope = "admin"

// Role is the role a user must hold for a user's access token (password
// grant) to be accepted by the admin API; tokens of clients (grant
// client_credentials, sub = client_id) need only the scope.
const Role = "admin"

// Handler serves the admin API. All fields are required except Logger.
type Handler struct {
	// Audience is the admin API's audience identifier: every token it
	// accepts carries it in aud. (An empty Audience accepts no token.)
	Audience string
	Provider fosite.OAuth2Provider
	// Revocations, when set, is brought up to date once a token has
	// verified (revocation.List.Sync) and asked again about the token's
	// grant: a token revoked on another replica is refused here at once,
	// not within the sync interval. A token that does not verify costs no
	// database read.
	Revocations interface {
		Sync(ctx context.Context) error
		Revoked(ctx context.Context, grantID string) (bool, error)
	}
	Clients *clients.Service
	Users   *identity.Service
	Keys    *keys.Manager
	// Prepublication is how long a rotated key is published before it
	// signs (keys.prepublication).
	Prepublication time.Duration
	MaxBytes       int64
	Logger         *slog.Logger
	// DPoP, when set, accepts DPoP-bound tokens with "Authorization:
	// DPoP" and a proof (RFC 9449 §7) whose htu is ExternalURL plus the
	// request's path, or without ExternalURL the URL the request names
	// (its Host header). A bound token is never accepted as a Bearer
	// token, whether or not DPoP is set.
	DPoP *dpop.Verifier
	// ExternalURL is this listener's base URL as clients reach it
	// (configuration admin_url), e.g. behind a TLS-terminating proxy.
	ExternalURL string
}

// Routes mounts the admin API on mux.
func (h *Handler) Routes(mux *http.ServeMux) {
	handle := func(pattern string, fn func(http.ResponseWriter, *http.Request) error) {
		mux.Handle(pattern, h.authorize(fn))
	}
	handle("POST /admin/clients", h.createClient)
	handle("GET /admin/clients", h.listClients)
	handle("GET /admin/clients/{id}", h.getClient)
	handle("PUT /admin/clients/{id}", h.updateClient)
	handle("DELETE /admin/clients/{id}", h.deleteClient)
	handle("POST /admin/clients/{id}/secret", h.rotateSecret)
	handle("POST /admin/users", h.createUser)
	handle("GET /admin/users", h.listUsers)
	handle("GET /admin/users/{id}", h.getUser)
	handle("PATCH /admin/users/{id}", h.patchUser)
	handle("DELETE /admin/users/{id}", h.deleteUser)
	handle("GET /admin/keys", h.listKeys)
	handle("POST /admin/keys/rotate", h.rotateKey)
}

// authorize checks the Bearer token (RFC 6750) and runs fn, writing any
// error it returns as JSON.
func (h *Handler) authorize(fn func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, scheme, ok := credentials(r, h.DPoP != nil)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="portcullis-admin"`)
			if h.DPoP != nil {
				w.Header().Add("WWW-Authenticate", `DPoP algs="`+strings.Join(h.DPoP.Algorithms(), " ")+`"`)
			}
			httpjson.WriteError(w, r, h.Logger, &apperr.Error{Code: apperr.EUnauthorized, Message: "a Bearer access token with scope admin is required"})
			return
		}
		ctx := r.Context()
		tokenType, ar, err := h.Provider.IntrospectToken(ctx, token, fosite.AccessToken, oauth.NewSession(), Scope)
		if err != nil {
			if errors.Is(err, apperr.ErrUnavailable) {
				httpjson.WriteError(w, r, h.Logger, apperr.ErrUnavailable)
				return
			}
			if errors.Is(err, fosite.ErrInvalidScope) {
				h.forbid(w, r, scheme, "the access token lacks scope admin")
				return
			}
			h.unauthorized(w, r, scheme)
			return
		}
		// fosite also introspects refresh tokens; only access tokens are
		// bearer credentials.
		if tokenType != fosite.AccessToken {
			h.unauthorized(w, r, scheme)
			return
		}
		if h.Revocations != nil {
			err := h.Revocations.Sync(ctx)
			revoked := false
			if err == nil {
				revoked, err = h.Revocations.Revoked(ctx, ar.GetID())
			}
			if err != nil {
				if h.Logger != nil {
					h.Logger.ErrorContext(ctx, "admin API: reading revocations failed", "err", err.Error())
				}
				httpjson.WriteError(w, r, h.Logger, apperr.ErrUnavailable)
				return
			}
			if revoked {
				h.unauthorized(w, r, scheme)
				return
			}
		}
		if h.Audience == "" || !slices.Contains(ar.GetGrantedAudience(), h.Audience) {
			// RFC 9068 §4: the resource server must check that aud names
			// it; such a token is invalid here (RFC 6750 §3.1).
			w.Header().Set("WWW-Authenticate", h.challenge(scheme, `error="invalid_token"`))
			httpjson.WriteError(w, r, h.Logger, &apperr.Error{Code: apperr.EUnauthorized, Message: "the access token's audience does not include the admin API"})
			return
		}
		// The token's client must still be registered for scope admin: a
		// client whose admin scope was withdrawn (or that was deleted, which
		// fails the lookup above) loses access at once, not at exp.
		if !slices.Contains(ar.GetClient().GetScopes(), Scope) {
			h.forbid(w, r, scheme, "the token's client is no longer registered for scope admin")
			return
		}
		subject := ar.GetSession().GetSubject()
		if userID, isUser := oauth.UserID(ar); isUser {
			// A user's token: scope admin alone would make every user of a
			// password client registered with that scope an administrator.
			u, err := h.Users.Get(ctx, userID)
			switch {
			case errors.Is(err, apperr.ErrUnavailable):
				httpjson.WriteError(w, r, h.Logger, apperr.ErrUnavailable)
				return
			case err != nil, u.Disabled, !slices.Contains(u.Roles, Role):
				h.forbid(w, r, scheme, "a user's token needs the user to hold role admin")
				return
			}
		}
		// Last, once the token is otherwise accepted: a DPoP proof is
		// spent (a database write) only for a request that will be served.
		if !h.checkBinding(w, r, scheme, token, oauth.BoundKey(ar.GetSession())) {
			return
		}
		if err := fn(w, r); err != nil {
			httpjson.WriteError(w, r, h.Logger, identity.AsAppError(err))
			return
		}
		if h.Logger != nil {
			h.Logger.InfoContext(ctx, "admin action", "method", r.Method, "path", r.URL.Path,
				"client_id", ar.GetClient().GetID(), "sub", subject)
		}
	})
}

// noBody reads and discards the body of a route that takes none, within
// MaxBytes, so an oversized request is refused (413) before it acts.
func (h *Handler) noBody(w http.ResponseWriter, r *http.Request) error {
	_, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, h.MaxBytes))
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return apperr.Errorf(apperr.ETooLarge, "request body exceeds %d bytes", h.MaxBytes)
	}
	if err != nil {
		return apperr.Errorf(apperr.EInvalid, "unreadable request body")
	}
	return nil
}

// challenge is the WWW-Authenticate challenge of a refusal in the scheme
// the request used (RFC 9449 §7.1, RFC 6750 §3), with params.
func (h *Handler) challenge(scheme, params string) string {
	if scheme == dpop.Scheme && h.DPoP != nil {
		return `DPoP realm="portcullis-admin", ` + params + `, algs="` + strings.Join(h.DPoP.Algorithms(), " ") + `"`
	}
	return `Bearer realm="portcullis-admin", ` + params
}

func (h *Handler) unauthorized(w http.ResponseWriter, r *http.Request, scheme string) {
	w.Header().Set("WWW-Authenticate", h.challenge(scheme, `error="invalid_token"`))
	httpjson.WriteError(w, r, h.Logger, &apperr.Error{Code: apperr.EUnauthorized, Message: "the access token is invalid, expired or revoked"})
}

func (h *Handler) forbid(w http.ResponseWriter, r *http.Request, scheme, msg string) {
	w.Header().Set("WWW-Authenticate", h.challenge(scheme, `error="insufficient_scope", scope="admin"`))
	httpjson.WriteError(w, r, h.Logger, &apperr.Error{Code: apperr.EForbidden, Message: msg})
}

// credentials returns the access token of r's Authorization header and
// its scheme: Bearer, or DPoP when withDPoP.
func credentials(r *http.Request, withDPoP bool) (token, scheme string, ok bool) {
	scheme, token, ok = strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	switch {
	case !ok || token == "":
		return "", "", false
	case strings.EqualFold(scheme, "Bearer"):
		return token, "Bearer", true
	case withDPoP && strings.EqualFold(scheme, dpop.Scheme):
		return token, dpop.Scheme, true
	}
	return "", "", false
}

// checkBinding enforces RFC 9449 §7 on a verified token bound to jkt (""
// when unbound) presented with scheme: a bound token only with the DPoP
// scheme and a proof by its key, an unbound one only as Bearer. It writes
// the refusal and reports false.
func (h *Handler) checkBinding(w http.ResponseWriter, r *http.Request, scheme, token, jkt string) bool {
	if scheme != dpop.Scheme {
		if jkt != "" {
			h.unauthorized(w, r, scheme)
			return false
		}
		return true
	}
	refuse := func(code, msg string) bool {
		w.Header().Set("WWW-Authenticate", `DPoP error="`+code+`", algs="`+strings.Join(h.DPoP.Algorithms(), " ")+`"`)
		httpjson.WriteError(w, r, h.Logger, &apperr.Error{Code: apperr.EUnauthorized, Message: msg})
		return false
	}
	if jkt == "" {
		return refuse("invalid_token", "the access token is not DPoP-bound")
	}
	raw, err := dpop.ProofFromHeader(r.Header)
	var proof *dpop.Proof
	if err == nil {
		// The path as the request names it: "%2F" is not "/".
		uri := strings.TrimSuffix(h.ExternalURL, "/") + r.URL.EscapedPath()
		if h.ExternalURL == "" {
			scheme := "http"
			if r.TLS != nil {
				scheme = "https"
			}
			uri = scheme + "://" + r.Host + r.URL.EscapedPath()
		}
		if _, uerr := dpop.NormalizeURI(uri); uerr != nil {
			// A Host header that makes no URI (none, in HTTP/1.0): no
			// proof can name this request. A refused proof, not a replay
			// store failure, which any other error of Check is taken for.
			return refuse(dpop.CodeInvalidProof, "DPoP proof htu does not match the request")
		}
		proof, err = h.DPoP.Check(raw, dpop.Request{Method: r.Method, URI: uri, AccessToken: token})
	}
	if err == nil && subtle.ConstantTimeCompare([]byte(proof.JKT), []byte(jkt)) != 1 {
		// RFC 9449 §7.1's example: a proof by another key than the
		// token's is an invalid token, not a bad proof.
		return refuse("invalid_token", "the DPoP proof is not signed by the key the token is bound to")
	}
	if err == nil {
		// Spent only once everything else holds.
		err = h.DPoP.Spend(r.Context(), proof)
	}
	if e, ok := errors.AsType[*dpop.Error](err); ok {
		if e.Code == dpop.CodeUseNonce && h.DPoP.Nonces() != nil {
			w.Header().Set(dpop.NonceHeader, h.DPoP.Nonces().Current())
		}
		return refuse(e.Code, e.Description)
	}
	if err != nil {
		if h.Logger != nil {
			h.Logger.ErrorContext(r.Context(), "admin API: DPoP replay check failed", "err", err.Error())
		}
		httpjson.WriteError(w, r, h.Logger, apperr.ErrUnavailable)
		return false
	}
	return true
}

// clientRequest is the body of POST /admin/clients and PUT
// /admin/clients/{id}. PUT replaces the client's settings: an omitted field
// takes its default (RFC 7592 §2.2), so a PUT without
// introspection_allowed withdraws that permission, and one without
// dpop_bound_access_tokens stops requiring DPoP.
type clientRequest struct {
	ClientName              string   `json:"client_name"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	Scope                   string   `json:"scope"`
	Audience                []string `json:"audience"`
	IntrospectionAllowed    bool     `json:"introspection_allowed"`
	// AccessTokenSignedResponseAlg: ES256 or RS256; omitted means the
	// server's default.
	AccessTokenSignedResponseAlg string `json:"access_token_signed_response_alg"`
	// TokenEndpointAuthMethodsAccepted is optional; as in the client
	// representation (see clients.Spec.AcceptedAuthMethods).
	TokenEndpointAuthMethodsAccepted []string `json:"token_endpoint_auth_methods_accepted"`
	// AllowedCORSOrigins: browser origins allowed to call the token and
	// revocation endpoints as the client; omitted means none.
	AllowedCORSOrigins []string `json:"allowed_cors_origins"`
	// DPoPBoundAccessTokens (RFC 9449 §5.2): the client's token requests
	// must carry a DPoP proof; omitted means false.
	DPoPBoundAccessTokens bool `json:"dpop_bound_access_tokens"`
	// ClientID, CreatedAt and UpdatedAt are read-only members of the
	// representation, accepted so that a representation read with GET can
	// be sent back with PUT (RFC 7592 §2.2 has the client include its
	// client_id there): client_id must then name the client being updated
	// and the timestamps are ignored. Creation refuses them.
	ClientID  *string         `json:"client_id"`
	CreatedAt json.RawMessage `json:"created_at"`
	UpdatedAt json.RawMessage `json:"updated_at"`
}

func (c clientRequest) spec() clients.Spec {
	return clients.Spec{
		Name: c.ClientName, Public: c.TokenEndpointAuthMethod == clients.AuthNone, AuthMethod: c.TokenEndpointAuthMethod,
		GrantTypes: c.GrantTypes, Scopes: strings.Fields(c.Scope), Audience: c.Audience, AccessTokenSigningAlg: c.AccessTokenSignedResponseAlg,
		IntrospectionAllowed:  c.IntrospectionAllowed,
		AcceptedAuthMethods:   c.TokenEndpointAuthMethodsAccepted,
		CORSOrigins:           c.AllowedCORSOrigins,
		DPoPBoundAccessTokens: c.DPoPBoundAccessTokens,
	}
}

func (h *Handler) createClient(w http.ResponseWriter, r *http.Request) error {
	var req clientRequest
	if err := httpjson.Decode(w, r, h.MaxBytes, &req); err != nil {
		return err
	}
	if req.ClientID != nil || req.CreatedAt != nil || req.UpdatedAt != nil {
		return &apperr.Error{Code: apperr.EInvalid, Message: "client_id, created_at and updated_at are assigned by the server"}
	}
	c, secret, err := h.Clients.Create(r.Context(), req.spec())
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/admin/clients/"+c.ID)
	noStore(w, secret)
	httpjson.Write(w, http.StatusCreated, NewClientJSON(c, secret))
	return nil
}

func (h *Handler) listClients(w http.ResponseWriter, r *http.Request) error {
	cs, err := h.Clients.List(r.Context())
	if err != nil {
		return err
	}
	out := make([]ClientJSON, 0, len(cs))
	for _, c := range cs {
		out = append(out, NewClientJSON(c, ""))
	}
	httpjson.Write(w, http.StatusOK, out)
	return nil
}

func (h *Handler) getClient(w http.ResponseWriter, r *http.Request) error {
	c, err := h.Clients.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, NewClientJSON(c, ""))
	return nil
}

func (h *Handler) updateClient(w http.ResponseWriter, r *http.Request) error {
	var req clientRequest
	if err := httpjson.Decode(w, r, h.MaxBytes, &req); err != nil {
		return err
	}
	if req.ClientID != nil && *req.ClientID != r.PathValue("id") {
		return &apperr.Error{Code: apperr.EInvalid, Message: "client_id does not match the client being updated"}
	}
	c, err := h.Clients.Update(r.Context(), r.PathValue("id"), req.spec())
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, NewClientJSON(c, ""))
	return nil
}

func (h *Handler) deleteClient(w http.ResponseWriter, r *http.Request) error {
	if err := h.Clients.Delete(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) rotateSecret(w http.ResponseWriter, r *http.Request) error {
	if err := h.noBody(w, r); err != nil {
		return err
	}
	c, secret, err := h.Clients.RotateSecret(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	noStore(w, secret)
	httpjson.Write(w, http.StatusOK, NewClientJSON(c, secret))
	return nil
}

// noStore keeps a response that carries a client secret out of caches
// (RFC 9111 §5.2.2.5; as RFC 6749 §5.1 asks of token responses).
func noStore(w http.ResponseWriter, secret string) {
	if secret != "" {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
	}
}

// UserJSON is the representation of a user in the admin API and the CLI.
type UserJSON struct {
	ID        string    `json:"id"`
	Username  string    `json:"username"`
	Roles     []string  `json:"roles"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// NewUserJSON returns the representation of u (never its password hash).
func NewUserJSON(u *identity.User, now time.Time) UserJSON {
	j := UserJSON{ID: u.ID, Username: u.Username, Roles: u.Roles, Disabled: u.Disabled,
		CreatedAt: u.CreatedAt.UTC(), UpdatedAt: u.UpdatedAt.UTC()}
	if j.Roles == nil {
		j.Roles = []string{}
	}
	return j
}

type createUserRequest struct {
	Username string   `json:"username"`
	Password string   `json:"password"`
	Roles    []string `json:"roles"`
}

func (h *Handler) createUser(w http.ResponseWriter, r *http.Request) error {
	var req createUserRequest
	if err := httpjson.Decode(w, r, h.MaxBytes, &req); err != nil {
		return err
	}
	u, err := h.Users.Signup(r.Context(), req.Username, req.Password, req.Roles)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/admin/users/"+u.ID)
	httpjson.Write(w, http.StatusCreated, NewUserJSON(u, time.Now()))
	return nil
}

func (h *Handler) listUsers(w http.ResponseWriter, r *http.Request) error {
	us, err := h.Users.List(r.Context())
	if err != nil {
		return err
	}
	now := time.Now()
	out := make([]UserJSON, 0, len(us))
	for _, u := range us {
		out = append(out, NewUserJSON(u, now))
	}
	httpjson.Write(w, http.StatusOK, out)
	return nil
}

func (h *Handler) getUser(w http.ResponseWriter, r *http.Request) error {
	u, err := h.Users.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, NewUserJSON(u, time.Now()))
	return nil
}

type patchUserRequest struct {
	Roles    *[]string `json:"roles"`
	Disabled *bool     `json:"disabled"`
	Password *string   `json:"password"`
	Unlock   bool      `json:"unlock"`
}

func (h *Handler) patchUser(w http.ResponseWriter, r *http.Request) error {
	var req patchUserRequest
	if err := httpjson.Decode(w, r, h.MaxBytes, &req); err != nil {
		return err
	}
	u, err := h.Users.Update(r.Context(), r.PathValue("id"), identity.Change{
		Roles: req.Roles, Disabled: req.Disabled, Password: req.Password, Unlock: req.Unlock,
	})
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, NewUserJSON(u, time.Now()))
	return nil
}

func (h *Handler) deleteUser(w http.ResponseWriter, r *http.Request) error {
	if err := h.Users.Delete(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) listKeys(w http.ResponseWriter, r *http.Request) error {
	st, err := h.Keys.Status(r.Context())
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, st)
	return nil
}

type rotateResponse struct {
	KID         string    `json:"kid"`
	ActivatesAt time.Time `json:"activates_at"`
}

// rotateKey creates a new signing key that signs at once (the contract's
// "new active key"); resource servers learn it when they first see its kid.
// ?prepublish=true instead publishes it now and lets it sign only after the
// pre-publication window, so every resource-server cache knows it before
// any token carries it: the zero-failure way, which scheduled rotation uses.
func (h *Handler) rotateKey(w http.ResponseWriter, r *http.Request) error {
	if err := h.noBody(w, r); err != nil {
		return err
	}
	var after time.Duration
	switch r.URL.Query().Get("prepublish") {
	case "", "false":
	case "true":
		after = h.Prepublication
	default:
		return &apperr.Error{Code: apperr.EInvalid, Message: "prepublish must be true or false"}
	}
	k, err := h.Keys.Rotate(r.Context(), after)
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusCreated, rotateResponse{KID: k.ID, ActivatesAt: k.ActivatesAt.UTC()})
	return nil
}
