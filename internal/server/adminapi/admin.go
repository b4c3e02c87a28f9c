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
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/portcullis-auth/portcullis/audit"
	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/httpjson"
	"github.com/portcullis-auth/portcullis/internal/server/bearer"
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
	Revocations bearer.Revocations
	Clients     *clients.Service
	Users       *identity.Service
	Keys        *keys.Manager
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
	// Audit, when set, serves GET /admin/audit. The changes the API makes
	// are recorded by the services (Clients, Users, Keys) with the
	// caller as actor: "client:ID" for a client's token, "user:ID" for a
	// user's.
	Audit *audit.Log
}

// Mux is what Routes mounts the admin API on: an *http.ServeMux, or a
// wrapper that also records the patterns (server.Handlers.AdminRoutes).
type Mux interface {
	Handle(pattern string, handler http.Handler)
}

// Routes mounts the admin API on mux.
func (h *Handler) Routes(mux Mux) {
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
	handle("POST /admin/users/import", h.importUsers)
	handle("GET /admin/users", h.listUsers)
	handle("GET /admin/users/{id}", h.getUser)
	handle("PATCH /admin/users/{id}", h.patchUser)
	handle("DELETE /admin/users/{id}", h.deleteUser)
	handle("POST /admin/users/{id}/mfa/reset", h.resetMFA)
	handle("POST /admin/users/{id}/unlock", h.unlockUser)
	handle("GET /admin/keys", h.listKeys)
	handle("POST /admin/keys/rotate", h.rotateKey)
	if h.Audit != nil {
		handle("GET /admin/audit", h.listAudit)
	}
}

// guard is the admin API's access-token check (package bearer).
func (h *Handler) guard() *bearer.Guard {
	return &bearer.Guard{Realm: "portcullis-admin", Provider: h.Provider, Revocations: h.Revocations, DPoP: h.DPoP,
		ExternalURL: h.ExternalURL, Name: "admin API", Logger: h.Logger}
}

// authorize checks the Bearer token (RFC 6750) and runs fn, writing any
// error it returns as JSON.
func (h *Handler) authorize(fn func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g := h.guard()
		tok := g.Verify(w, r, "a Bearer access token with scope admin is required", Scope)
		if tok == nil {
			return
		}
		ctx, ar, scheme := r.Context(), tok.Request, tok.Scheme
		forbid := func(msg string) { g.Forbid(w, r, scheme, `error="insufficient_scope", scope="admin"`, msg) }
		if h.Audience == "" || !slices.Contains(ar.GetGrantedAudience(), h.Audience) {
			// RFC 9068 §4: the resource server must check that aud names
			// it; such a token is invalid here (RFC 6750 §3.1).
			w.Header().Set("WWW-Authenticate", g.Challenge(scheme, `error="invalid_token"`))
			httpjson.WriteError(w, r, h.Logger, &apperr.Error{Code: apperr.EUnauthorized, Message: "the access token's audience does not include the admin API"})
			return
		}
		// The token's client must still be registered for scope admin: a
		// client whose admin scope was withdrawn (or that was deleted, which
		// fails the lookup above) loses access at once, not at exp.
		if !slices.Contains(ar.GetClient().GetScopes(), Scope) {
			forbid("the token's client is no longer registered for scope admin")
			return
		}
		subject := ar.GetSession().GetSubject()
		actor := audit.ClientTarget(ar.GetClient().GetID())
		if userID, isUser := oauth.UserID(ar); isUser {
			actor = audit.UserTarget(userID)
			// A user's token: scope admin alone would make every user of a
			// password client registered with that scope an administrator.
			u, err := h.Users.Get(ctx, userID)
			switch {
			case errors.Is(err, apperr.ErrUnavailable):
				httpjson.WriteError(w, r, h.Logger, apperr.ErrUnavailable)
				return
			case err != nil, u.Disabled, !slices.Contains(u.Roles, Role):
				forbid("a user's token needs the user to hold role admin")
				return
			}
		}
		// Last, once the token is otherwise accepted: a DPoP proof is
		// spent (a database write) only for a request that will be served.
		if !g.Bind(w, r, tok) {
			return
		}
		r = r.WithContext(audit.WithActor(ctx, actor))
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

// clientRequest is the body of POST /admin/clients and PUT
// /admin/clients/{id}. PUT replaces the client's settings: an omitted field
// takes its default (RFC 7592 §2.2), so a PUT without
// introspection_allowed withdraws that permission, one without
// dpop_bound_access_tokens stops requiring DPoP, and one without
// mfa_required stops requiring a second factor. Members not named here
// (redirect_uris, logo_uri, contacts, … which this server does not
// support) are ignored, as RFC 7591 §2 requires, and absent from the
// answer, which shows what was registered (§3.2.1); an invalid value of a
// member named here is refused.
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
	// MFARequired: every user logging in through the client must prove
	// a second factor; omitted means false.
	MFARequired bool `json:"mfa_required"`
	// ClientID, CreatedAt and UpdatedAt are read-only members of the
	// representation, accepted so that a representation read with GET can
	// be sent back with PUT (RFC 7592 §2.2 has the client include its
	// client_id there): client_id must then name the client being updated
	// and the timestamps are ignored. Creation refuses them.
	ClientID  *string         `json:"client_id"`
	CreatedAt json.RawMessage `json:"created_at"`
	UpdatedAt json.RawMessage `json:"updated_at"`
	// ClientIDIssuedAt and ClientSecretExpiresAt (RFC 7591 §3.2.1) are
	// read-only like the timestamps: ignored by PUT, refused by POST.
	ClientIDIssuedAt      json.RawMessage `json:"client_id_issued_at"`
	ClientSecretExpiresAt json.RawMessage `json:"client_secret_expires_at"`
	// ClientSecret is issued by the server (RFC 7591 §3.2.1), never
	// chosen by the caller: refused by POST and PUT alike (rotate it with
	// POST /admin/clients/{id}/secret).
	ClientSecret json.RawMessage `json:"client_secret"`
}

func (c clientRequest) spec() clients.Spec {
	return clients.Spec{
		Name: c.ClientName, Public: c.TokenEndpointAuthMethod == clients.AuthNone, AuthMethod: c.TokenEndpointAuthMethod,
		GrantTypes: c.GrantTypes, Scopes: strings.Fields(c.Scope), Audience: c.Audience, AccessTokenSigningAlg: c.AccessTokenSignedResponseAlg,
		IntrospectionAllowed:  c.IntrospectionAllowed,
		AcceptedAuthMethods:   c.TokenEndpointAuthMethodsAccepted,
		CORSOrigins:           c.AllowedCORSOrigins,
		DPoPBoundAccessTokens: c.DPoPBoundAccessTokens,
		MFARequired:           c.MFARequired,
	}
}

// errClientSecretSet answers a body that names a client_secret.
var errClientSecretSet = &apperr.Error{Code: apperr.EInvalid,
	Message: "client_secret is issued by the server; rotate it with POST /admin/clients/{id}/secret"}

func (h *Handler) createClient(w http.ResponseWriter, r *http.Request) error {
	var req clientRequest
	if err := httpjson.DecodeIgnoringUnknown(w, r, h.MaxBytes, &req); err != nil {
		return err
	}
	if req.ClientSecret != nil {
		return errClientSecretSet
	}
	if req.ClientID != nil || req.CreatedAt != nil || req.UpdatedAt != nil || req.ClientIDIssuedAt != nil || req.ClientSecretExpiresAt != nil {
		return &apperr.Error{Code: apperr.EInvalid, Message: "client_id, client_id_issued_at, client_secret_expires_at, created_at and updated_at are assigned by the server"}
	}
	c, secret, err := h.Clients.Create(r.Context(), req.spec())
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/admin/clients/"+c.ID)
	setETag(w, c.Version())
	noStore(w, secret)
	httpjson.Write(w, http.StatusCreated, NewClientJSON(c, secret))
	return nil
}

func (h *Handler) getClient(w http.ResponseWriter, r *http.Request) error {
	c, err := h.Clients.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if match := ifMatch(r); match != nil && !match(c.Version()) {
		return clients.ErrVersionMismatch
	}
	setETag(w, c.Version())
	httpjson.Write(w, http.StatusOK, NewClientJSON(c, ""))
	return nil
}

func (h *Handler) updateClient(w http.ResponseWriter, r *http.Request) error {
	var req clientRequest
	if err := httpjson.DecodeIgnoringUnknown(w, r, h.MaxBytes, &req); err != nil {
		return err
	}
	if req.ClientSecret != nil {
		return errClientSecretSet
	}
	if req.ClientID != nil && *req.ClientID != r.PathValue("id") {
		return &apperr.Error{Code: apperr.EInvalid, Message: "client_id does not match the client being updated"}
	}
	c, err := h.Clients.UpdateIf(r.Context(), r.PathValue("id"), req.spec(), ifMatch(r))
	if err != nil {
		return err
	}
	setETag(w, c.Version())
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
	setETag(w, c.Version())
	noStore(w, secret)
	httpjson.Write(w, http.StatusOK, NewClientJSON(c, secret))
	return nil
}

// setETag sets the strong entity tag of a client's or user's
// representation (RFC 9110 §8.8.3): its Version, which changes with every
// stored change (a lockout state read from the counters does not).
func setETag(w http.ResponseWriter, version string) {
	w.Header().Set("ETag", `"`+version+`"`)
}

// ifMatch returns the If-Match condition of r (RFC 9110 §13.1.1) as a test
// of the resource's current version: nil when r has no If-Match or
// "If-Match: *" (the resource exists, which every route checks anyway),
// else a test that accepts a version whose strong entity tag is listed.
// Weak tags never match (strong comparison), so a list of only weak or
// malformed tags matches nothing.
func ifMatch(r *http.Request) func(version string) bool {
	values := r.Header.Values("If-Match")
	if len(values) == 0 {
		return nil
	}
	var tags []string
	for _, v := range values {
		for tag := range strings.SplitSeq(v, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" {
				return nil
			}
			if len(tag) >= 2 && tag[0] == '"' && tag[len(tag)-1] == '"' {
				tags = append(tags, tag[1:len(tag)-1])
			}
		}
	}
	return func(version string) bool { return slices.Contains(tags, version) }
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
	ID       string   `json:"id"`
	Username string   `json:"username"`
	Roles    []string `json:"roles"`
	Disabled bool     `json:"disabled"`
	// MFARequired: an administrator requires the user to prove a second
	// factor at every login.
	MFARequired bool `json:"mfa_required"`
	// MFAEnabled: the user has a confirmed second factor.
	MFAEnabled bool `json:"mfa_enabled"`
	// Locked: the lockout policy holds back some login attempts on the
	// account now (identity.LockState): the account-wide delay is in
	// force, or at least one client network is locked out of it. It never
	// means that every login is refused: the owner on a network they
	// logged in from recently skips the account-wide delay, and a
	// network's lock holds back only that network.
	Locked bool `json:"locked"`
	// LockedUntil is when the last hold ends if no further attempt fails;
	// null when not locked.
	LockedUntil *time.Time `json:"locked_until"`
	// LockedNetworks is how many client networks are locked out of the
	// account (0 while only the account-wide delay holds).
	LockedNetworks int       `json:"locked_networks"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// NewUserJSON returns the representation of u (never its password hash);
// mfaEnabled says whether u has a confirmed second factor
// (identity.Service.ConfirmedFactor).
func NewUserJSON(u *identity.User, mfaEnabled bool) UserJSON {
	j := UserJSON{ID: u.ID, Username: u.Username, Roles: u.Roles, Disabled: u.Disabled,
		MFARequired: u.MFARequired, MFAEnabled: mfaEnabled,
		CreatedAt: u.CreatedAt.UTC(), UpdatedAt: u.UpdatedAt.UTC()}
	if j.Roles == nil {
		j.Roles = []string{}
	}
	return j
}

// withLock returns j with the lockout state st.
func (j UserJSON) withLock(st identity.LockState) UserJSON {
	j.Locked, j.LockedNetworks, j.LockedUntil = st.Locked, st.LockedNetworks, nil
	if st.Locked {
		until := st.Until.UTC()
		j.LockedUntil = &until
	}
	return j
}

// UserJSONOf returns the representation of u, looking up whether it has a
// confirmed second factor and its lockout state.
func UserJSONOf(ctx context.Context, users *identity.Service, u *identity.User) (UserJSON, error) {
	f, err := users.ConfirmedFactor(ctx, u.ID)
	if err != nil {
		return UserJSON{}, err
	}
	locks, err := users.LockStates(ctx, []*identity.User{u})
	if err != nil {
		return UserJSON{}, err
	}
	return NewUserJSON(u, f != nil).withLock(locks[u.ID]), nil
}

// UsersJSON returns the representations of us, with three queries in all
// (identity.Service.UsersWithConfirmedFactor, LockStates) rather than
// some per user.
func UsersJSON(ctx context.Context, users *identity.Service, us []*identity.User) ([]UserJSON, error) {
	enabled, err := users.UsersWithConfirmedFactor(ctx)
	if err != nil {
		return nil, err
	}
	locks, err := users.LockStates(ctx, us)
	if err != nil {
		return nil, err
	}
	out := make([]UserJSON, 0, len(us))
	for _, u := range us {
		out = append(out, NewUserJSON(u, enabled[u.ID]).withLock(locks[u.ID]))
	}
	return out, nil
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
	setETag(w, u.Version())
	httpjson.Write(w, http.StatusCreated, NewUserJSON(u, false))
	return nil
}

func (h *Handler) getUser(w http.ResponseWriter, r *http.Request) error {
	u, err := h.Users.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if match := ifMatch(r); match != nil && !match(u.Version()) {
		return identity.ErrVersionMismatch
	}
	return h.writeUser(w, r, u)
}

// writeUser answers 200 with the representation of u and its ETag.
func (h *Handler) writeUser(w http.ResponseWriter, r *http.Request, u *identity.User) error {
	j, err := UserJSONOf(r.Context(), h.Users, u)
	if err != nil {
		return err
	}
	setETag(w, u.Version())
	httpjson.Write(w, http.StatusOK, j)
	return nil
}

type patchUserRequest struct {
	Roles       *[]string `json:"roles"`
	Disabled    *bool     `json:"disabled"`
	Password    *string   `json:"password"`
	Unlock      bool      `json:"unlock"`
	MFARequired *bool     `json:"mfa_required"`
}

func (h *Handler) patchUser(w http.ResponseWriter, r *http.Request) error {
	var req patchUserRequest
	if err := httpjson.Decode(w, r, h.MaxBytes, &req); err != nil {
		return err
	}
	u, err := h.Users.Update(r.Context(), r.PathValue("id"), identity.Change{
		Roles: req.Roles, Disabled: req.Disabled, Password: req.Password, Unlock: req.Unlock, MFARequired: req.MFARequired,
		IfMatch: ifMatch(r),
	})
	if err != nil {
		return err
	}
	return h.writeUser(w, r, u)
}

// unlockUser clears the user's lockout counters (every network's lock,
// the account-wide delay and the trusted networks), as PATCH with
// {"unlock": true} does: 200 with the user's representation, 404 for no
// such user.
func (h *Handler) unlockUser(w http.ResponseWriter, r *http.Request) error {
	if err := h.noBody(w, r); err != nil {
		return err
	}
	u, err := h.Users.Update(r.Context(), r.PathValue("id"), identity.Change{Unlock: true})
	if err != nil {
		return err
	}
	return h.writeUser(w, r, u)
}

func (h *Handler) deleteUser(w http.ResponseWriter, r *http.Request) error {
	if err := h.Users.Delete(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// resetMFA deletes every second factor and recovery code of the user (a
// user who lost their device): 204, 404 for no such user.
func (h *Handler) resetMFA(w http.ResponseWriter, r *http.Request) error {
	if err := h.noBody(w, r); err != nil {
		return err
	}
	if err := h.Users.ResetFactors(r.Context(), r.PathValue("id")); err != nil {
		if errors.Is(err, apperr.ErrNotFound) {
			return &apperr.Error{Code: apperr.ENotFound, Message: "user not found"}
		}
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

// importResponse is the body of POST /admin/users/import: the report, and
// when the import stopped early the error (as in every error body).
type importResponse struct {
	*identity.ImportReport
	Error            string `json:"error,omitempty"`
	ErrorDescription string `json:"error_description,omitempty"`
}

// importUsers imports users with their existing password hashes
// (identity.Service.Import): the body is JSON Lines (Content-Type
// application/x-ndjson) or CSV with a header line (text/csv), within
// MaxBytes, read whole before anything is
// written. ?update=true replaces the hash, roles and disabled state of
// users that exist. It answers 200 with the report, whatever the lines'
// outcomes; when a storage error stopped the import, the status of that
// error with the report of what was committed and error and
// error_description.
func (h *Handler) importUsers(w http.ResponseWriter, r *http.Request) error {
	var format identity.ImportFormat
	switch mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt {
	case "application/x-ndjson":
		format = identity.ImportJSONLines
	case "text/csv":
		format = identity.ImportCSV
	default:
		return &apperr.Error{Code: apperr.EInvalid, Message: "the body must be JSON Lines (Content-Type application/x-ndjson) or CSV (text/csv)"}
	}
	var update bool
	switch r.URL.Query().Get("update") {
	case "", "false":
	case "true":
		update = true
	default:
		return &apperr.Error{Code: apperr.EInvalid, Message: "update must be true or false"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.MaxBytes))
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return apperr.Errorf(apperr.ETooLarge, "request body exceeds %d bytes; split the import", h.MaxBytes)
	}
	if err != nil {
		return apperr.Errorf(apperr.EInvalid, "unreadable request body")
	}
	report, err := h.Users.Import(r.Context(), bytes.NewReader(body), identity.ImportOptions{Update: update, Format: format})
	if err != nil {
		if apperr.CodeOf(err) == apperr.EInternal && h.Logger != nil {
			h.Logger.ErrorContext(r.Context(), "import stopped", "err", err)
		}
		httpjson.Write(w, httpjson.Status(err), importResponse{ImportReport: report,
			Error: string(apperr.CodeOf(err)), ErrorDescription: apperr.MessageOf(err)})
		return nil
	}
	httpjson.Write(w, http.StatusOK, importResponse{ImportReport: report})
	return nil
}
