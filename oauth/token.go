package oauth

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/ratelimit"
)

// UserLookup finds users by ID; the token handler uses it to re-check the
// account on every refresh, so disabled or deleted users lose access and
// role changes reach the next access token.
type UserLookup interface {
	GetUser(ctx context.Context, id string) (*identity.User, error)
}

// GrantObserver is told the outcome of every token request (for metrics).
type GrantObserver func(grantType, result string)

// TokenHandler serves POST /oauth2/token (RFC 6749 §3.2).
type TokenHandler struct {
	Provider fosite.OAuth2Provider
	Store    TokenStore
	Users    UserLookup
	// Limiter, when set, throttles password grants per client IP.
	Limiter *ratelimit.Keyed
	// ClientIP returns the rate-limit key of a request; default: the
	// connection's remote address.
	ClientIP func(*http.Request) string
	MaxBytes int64
	Now      func() time.Time
	Logger   *slog.Logger
	Observe  GrantObserver
}

// ServeHTTP implements http.Handler.
func (h *TokenHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := parseForm(w, r, h.MaxBytes); err != nil {
		h.fail(ctx, w, r, nil, err)
		return
	}
	grant := r.PostForm.Get("grant_type")
	if grant == GrantPassword && h.Limiter != nil && !h.Limiter.Allow(h.clientIP(r)) {
		w.Header().Set("Retry-After", "1")
		h.fail(ctx, w, r, nil, errTooManyRequests)
		return
	}
	var user *identity.User
	ctx = context.WithValue(ctx, authedUserKey{}, &user)
	ar, err := h.Provider.NewAccessRequest(ctx, r, NewSession())
	if err != nil {
		h.fail(ctx, w, r, ar, err)
		return
	}
	// The refresh handler replaces the session with a clone of the stored
	// one, so always work on the request's current session.
	session, ok := ar.GetSession().(*oauth2.JWTSession)
	if !ok {
		h.fail(ctx, w, r, ar, fosite.ErrServerError.WithHint("unexpected session type"))
		return
	}
	client := ar.GetClient()
	claims := session.JWTClaims
	switch {
	case ar.GetGrantTypes().ExactOne(GrantPassword):
		if user == nil {
			h.fail(ctx, w, r, ar, fosite.ErrServerError.WithHint("authenticated user missing"))
			return
		}
		setUserClaims(session, user)
		grantRequested(ar)
	case ar.GetGrantTypes().ExactOne(GrantClientCredentials):
		claims.Subject = client.GetID()
		session.Subject = client.GetID()
		grantRequested(ar)
	case ar.GetGrantTypes().ExactOne(GrantRefreshToken):
		// fosite replaced the session with the stored one; a user token's
		// owner must still exist and be enabled.
		if _, isUser := claims.Extra["preferred_username"]; isUser {
			u, err := h.Users.GetUser(ctx, claims.Subject)
			switch {
			case errors.Is(err, apperr.ErrNotFound), err == nil && u.Disabled:
				h.fail(ctx, w, r, ar, fosite.ErrInvalidGrant.WithHint("The resource owner's account no longer exists or is disabled."))
				return
			case err != nil:
				h.fail(ctx, w, r, ar, err)
				return
			}
			setUserClaims(session, u)
		}
	}
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	// Rounded like fosite rounds exp, so that exp - iat is the lifetime.
	t := now().UTC().Round(time.Second)
	claims.Extra["client_id"] = client.GetID()
	claims.JTI = uuid.NewString()
	claims.IssuedAt, claims.NotBefore = t, t

	// Refresh runs its own transaction inside fosite; the other grants
	// write an access-token row and maybe a refresh-token row, which must
	// land together or not at all.
	txCtx := ctx
	transactional := !ar.GetGrantTypes().ExactOne(GrantRefreshToken)
	if transactional {
		if txCtx, err = h.Store.BeginTX(ctx); err != nil {
			h.fail(ctx, w, r, ar, err)
			return
		}
	}
	resp, err := h.Provider.NewAccessResponse(txCtx, ar)
	if err == nil && transactional {
		err = h.Store.Commit(txCtx)
	}
	if err != nil {
		if transactional {
			_ = h.Store.Rollback(txCtx)
		}
		h.fail(ctx, w, r, ar, err)
		return
	}
	if !client.GetGrantTypes().Has(GrantRefreshToken) {
		// fosite issues refresh tokens regardless (FOSITE-NOTES §7); a
		// client not registered for the grant could never use one.
		if ext, ok := resp.(*fosite.AccessResponse); ok {
			delete(ext.Extra, "refresh_token")
		}
	}
	h.observe(ar.GetGrantTypes(), "success")
	h.Provider.WriteAccessResponse(ctx, w, ar, resp)
}

func setUserClaims(s *oauth2.JWTSession, u *identity.User) {
	s.Subject = u.ID
	s.Username = u.Username
	s.JWTClaims.Subject = u.ID
	s.JWTClaims.Extra["preferred_username"] = u.Username
	roles := u.Roles
	if roles == nil {
		roles = []string{}
	}
	s.JWTClaims.Extra["roles"] = roles
}

// grantRequested grants the requested scopes and audiences, which fosite
// has already checked against the client's registration; without a
// request it grants everything the client is registered for (the
// client's default scope, RFC 6749 §3.3, and every registered audience).
func grantRequested(ar fosite.AccessRequester) {
	client := ar.GetClient()
	scopes := ar.GetRequestedScopes()
	if len(scopes) == 0 {
		scopes = client.GetScopes()
	}
	for _, s := range scopes {
		ar.GrantScope(s)
	}
	aud := ar.GetRequestedAudience()
	if len(aud) == 0 {
		aud = client.GetAudience()
	}
	for _, a := range aud {
		ar.GrantAudience(a)
	}
}

func (h *TokenHandler) observe(grants fosite.Arguments, result string) {
	if h.Observe == nil {
		return
	}
	g := "unknown"
	if len(grants) == 1 {
		switch grants[0] {
		case GrantPassword, GrantClientCredentials, GrantRefreshToken:
			g = grants[0]
		}
	}
	h.Observe(g, result)
}

var errTooManyRequests = &fosite.RFC6749Error{
	ErrorField:       "temporarily_unavailable",
	DescriptionField: "Too many password attempts from this address; retry later.",
	CodeField:        http.StatusTooManyRequests,
}

// fail writes err as an RFC 6749 §5.2 error response.
func (h *TokenHandler) fail(ctx context.Context, w http.ResponseWriter, r *http.Request, ar fosite.AccessRequester, err error) {
	rfc := toRFC6749(err)
	if g := r.PostForm.Get("grant_type"); rfc.ErrorField == fosite.ErrInvalidRequest.ErrorField && g != "" &&
		g != GrantPassword && g != GrantClientCredentials && g != GrantRefreshToken {
		// fosite answers invalid_request; RFC 6749 §5.2 has a code for it.
		rfc = fosite.ErrUnsupportedGrantType.WithHintf("The grant type %q is not supported.", g)
	}
	if ar != nil && ar.GetGrantTypes().ExactOne(GrantRefreshToken) &&
		(errors.Is(err, fosite.ErrInactiveToken) || errors.Is(err, fosite.ErrSerializationFailure)) {
		// The loser of a concurrent refresh: its token was just used.
		rfc = fosite.ErrInvalidGrant.WithHint("The refresh token was already used.")
	}
	h.log(ctx, r, rfc, err)
	var grants fosite.Arguments
	if ar != nil {
		grants = ar.GetGrantTypes()
	} else if r.PostForm != nil {
		grants = fosite.Arguments{r.PostForm.Get("grant_type")}
	}
	h.observe(grants, rfc.ErrorField)
	writeOAuthError(w, r, rfc)
}

func (h *TokenHandler) log(ctx context.Context, r *http.Request, rfc *fosite.RFC6749Error, err error) {
	if h.Logger == nil {
		return
	}
	if rfc.CodeField >= 500 {
		h.Logger.ErrorContext(ctx, "token request failed", "error", rfc.ErrorField, "err", err)
		return
	}
	h.Logger.DebugContext(ctx, "token request rejected", "error", rfc.ErrorField, "err", err)
}

// toRFC6749 maps any error to the RFC 6749 error to send: storage outages
// become temporarily_unavailable (503) rather than fosite's 500 or 401.
func toRFC6749(err error) *fosite.RFC6749Error {
	if errors.Is(err, apperr.ErrUnavailable) {
		return fosite.ErrTemporarilyUnavailable.WithHint("The database is unreachable; retry shortly.")
	}
	if e, ok := errors.AsType[*apperr.Error](err); ok && e.Code == apperr.ETooLarge {
		return &fosite.RFC6749Error{ErrorField: "invalid_request", DescriptionField: e.Message, CodeField: http.StatusRequestEntityTooLarge}
	}
	if e, ok := errors.AsType[*fosite.RFC6749Error](err); ok {
		if e.CodeField >= 500 && e.ErrorField != fosite.ErrTemporarilyUnavailable.ErrorField {
			return fosite.ErrServerError
		}
		return e
	}
	return fosite.ErrServerError
}

// writeOAuthError writes an RFC 6749 §5.2 JSON error with no-store caching,
// Retry-After on 503, and WWW-Authenticate on 401 (RFC 6749 §5.2 requires
// it when the client authenticated with the Authorization header).
func writeOAuthError(w http.ResponseWriter, r *http.Request, e *fosite.RFC6749Error) {
	if e.CodeField == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	if e.CodeField == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="portcullis", charset="UTF-8"`)
	}
	desc := e.GetDescription()
	writeJSONNoStore(w, e.CodeField, map[string]string{"error": e.ErrorField, "error_description": desc})
}

// parseForm reads a form-encoded body within maxBytes. An oversized body is
// an apperr.ETooLarge error; fosite then reads the already-parsed form.
func parseForm(w http.ResponseWriter, r *http.Request, maxBytes int64) error {
	if r.Method != http.MethodPost {
		return fosite.ErrInvalidRequest.WithHint("HTTP method must be POST.")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBytes)
	if err := r.ParseForm(); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return apperr.Errorf(apperr.ETooLarge, "request body exceeds %d bytes", maxBytes)
		}
		return fosite.ErrInvalidRequest.WithHint("The request body is not a valid form.")
	}
	return nil
}

func (h *TokenHandler) clientIP(r *http.Request) string {
	if h.ClientIP != nil {
		return h.ClientIP(r)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
