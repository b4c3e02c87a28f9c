package oauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/portcullis-auth/portcullis/audit"
	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/ratelimit"
	"github.com/portcullis-auth/portcullis/oauth/clients"
	"github.com/portcullis-auth/portcullis/oauth/dpop"
)

// UserLookup finds users by ID; the token handler uses it to re-check the
// account on every refresh, so disabled or deleted users lose access and
// role changes reach the next access token.
type UserLookup interface {
	GetUser(ctx context.Context, id string) (*identity.User, error)
	// LockUser records a login on the user with the given ID (a write to
	// the user's row, held until the transaction ctx carries ends) and
	// returns the user as GetUser does. A password change, disabling or
	// deletion (which write the row and revoke the user's grants in one
	// transaction) then either commits first, and the caller sees it, or
	// comes after the caller's tokens are committed, and revokes them. On
	// a multi-primary cluster, where row locks are node-local, the two
	// writes to one row make certification abort one of them.
	LockUser(ctx context.Context, id string) (*identity.User, error)
}

// GrantObserver is told the outcome of every token request (for metrics).
type GrantObserver func(grantType, result string)

// TokenHandler serves POST /oauth2/token (RFC 6749 §3.2).
type TokenHandler struct {
	Provider fosite.OAuth2Provider
	Store    TokenStore
	Users    UserLookup
	// Authenticator checks the password of a password grant, once fosite
	// has authenticated the client and validated the request.
	Authenticator Authenticator
	// Limiter, when set, throttles password grants per client IP.
	Limiter *ratelimit.Keyed
	// ClientIP returns the rate-limit key of a request; default: the
	// connection's remote address.
	ClientIP func(*http.Request) string
	MaxBytes int64
	Now      func() time.Time
	Logger   *slog.Logger
	Observe  GrantObserver
	// Audience decides each token's aud (RFC 9068 §2.2, RFC 8707);
	// Audience.Default is required.
	Audience AudiencePolicy
	// DPoP, when set, binds the tokens of requests with a DPoP proof to
	// the proof's key (RFC 9449); without it, proofs are ignored.
	DPoP *DPoPPolicy
	// ACR are the acr claims of user tokens.
	ACR ACRValues
	// FirstParty, when set, sends users who owe a second factor to the
	// authorization challenge endpoint and hands out step-up sessions.
	FirstParty FirstParty
	// Audit records the revocation of a grant whose code was redeemed
	// twice concurrently (audit.TokenCodeReplay; fosite's handlers record
	// the other replays, ProviderConfig.Audit); nil records nothing.
	Audit audit.Recorder
}

// ServeHTTP implements http.Handler.
func (h *TokenHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := readForm(w, r, h.MaxBytes); err != nil {
		h.fail(ctx, w, r, nil, err)
		return
	}
	// After readForm, grant_type has exactly one value; it must name a
	// grant exactly as registered, so that what is throttled and counted
	// here is the grant fosite runs (fosite splits grant_type on spaces).
	grant := r.PostForm.Get("grant_type")
	switch grant {
	case clients.GrantPassword, clients.GrantClientCredentials, clients.GrantRefreshToken, clients.GrantAuthorizationCode:
	case "":
		h.fail(ctx, w, r, nil, errNoGrantType)
		return
	default:
		h.fail(ctx, w, r, nil, errGrantType)
		return
	}
	ip := h.clientIP(r)
	if grant == clients.GrantPassword && h.Limiter != nil && !h.Limiter.Allow(ip) {
		w.Header().Set("Retry-After", "1")
		h.fail(ctx, w, r, nil, errRateLimited)
		return
	}
	// A DPoP proof is checked before anything else costs a hash or a
	// grant lookup, and spent (bind) once the client is authenticated.
	proof, err := h.DPoP.proof(r)
	if err != nil {
		h.fail(ctx, w, r, nil, err)
		return
	}
	// fosite removes the password from the form it shares with r.
	username, password := r.PostForm.Get("username"), r.PostForm.Get("password")
	// The code_verifier and the proof's key reach the storage calls of
	// both NewAccessRequest and NewAccessResponse: fosite reads the code
	// again in the latter, and a concurrent redemption may have used it
	// meanwhile (grantStore.GetAuthorizeCodeSession).
	ctx = withCodeVerifier(withProofKey(ctx, proof), r.PostForm.Get("code_verifier"))
	ar, err := h.Provider.NewAccessRequest(ctx, r, NewSession())
	if err != nil {
		h.fail(ctx, w, r, ar, err)
		return
	}
	// The refresh handler replaces the session with a clone of the stored
	// one, so always work on the request's current session.
	session, ok := ar.GetSession().(*oauth2.JWTSession)
	if !ok {
		h.fail(ctx, w, r, ar, errors.New("unexpected session type"))
		return
	}
	if err := h.DPoP.bind(ctx, ar, session, proof); err != nil {
		h.fail(ctx, w, r, ar, err)
		return
	}
	client := ar.GetClient()
	claims := session.JWTClaims
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	// Truncated, never rounded: a token stamped even half a second ahead
	// is refused by verifiers without leeway (PyJWT, jose, jwx).
	t := now().UTC().Truncate(time.Second)
	var user *identity.User  // the user whose password was checked
	var owner *identity.User // the user a code or refresh is for
	switch {
	case ar.GetGrantTypes().ExactOne(clients.GrantPassword):
		// The client is authenticated and may use the grant, scopes and
		// audiences it asks for: only then the password (passwordGrant
		// leaves it to this handler), so that a request refused anyway
		// costs no hash and counts no failed attempt.
		grantRequested(ar)
		if err := h.Audience.grantAudience(ar, false); err != nil {
			h.fail(ctx, w, r, ar, err)
			return
		}
		step := identity.LoginByPassword
		if mc, ok := client.(interface{ RequiresMFA() bool }); ok && mc.RequiresMFA() && h.FirstParty != nil {
			// checkLogin refuses the grant below: the right password
			// is a step of a login the challenge endpoint completes.
			step = identity.SecondFactorFollows
		}
		user, err = h.Authenticator.AuthenticateStep(ctx, username, password, ip, step)
		if errors.Is(err, identity.ErrInvalidCredentials) {
			err = fosite.ErrInvalidGrant
		}
		if err != nil {
			h.fail(ctx, w, r, ar, err)
			return
		}
		amr := []string{AMRPassword}
		if err := h.checkLogin(ctx, client, user, amr, true, proof); err != nil {
			h.fail(ctx, w, r, ar, err)
			return
		}
		session.SetSubject(user.ID)
		setUserClaims(session, user)
		setAuthClaims(session, amr, h.ACR.For(amr), t)
	case ar.GetGrantTypes().ExactOne(clients.GrantAuthorizationCode):
		// fosite restored the session of the code (user, amr, acr,
		// auth_time, DPoP key) and checked PKCE; the user must still
		// exist and be enabled, with the roles they have now.
		userID, _ := UserID(ar)
		if owner, err = h.setOwner(ctx, session, userID); err != nil {
			h.fail(ctx, w, r, ar, err)
			return
		}
		for _, s := range ar.GetRequestedScopes() {
			ar.GrantScope(s)
		}
		if err := h.Audience.grantAudience(ar, false); err != nil {
			h.fail(ctx, w, r, ar, err)
			return
		}
	case ar.GetGrantTypes().ExactOne(clients.GrantClientCredentials):
		claims.Subject = client.GetID()
		session.Subject = client.GetID()
		grantRequested(ar)
		if err := h.Audience.grantAudience(ar, false); err != nil {
			h.fail(ctx, w, r, ar, err)
			return
		}
	case ar.GetGrantTypes().ExactOne(clients.GrantRefreshToken):
		// fosite replaced the session with the stored one; a user token's
		// owner must still exist and be enabled.
		if userID, isUser := UserID(ar); isUser {
			if owner, err = h.setOwner(ctx, session, userID); err != nil {
				h.fail(ctx, w, r, ar, err)
				return
			}
			// A second factor required since the login (an
			// administrator's mfa_required) ends password-only grants.
			if err := h.checkLogin(ctx, client, owner, SessionAMR(session), false, proof); err != nil {
				h.fail(ctx, w, r, ar, err)
				return
			}
		}
		if ctx, err = narrowRefreshScope(ctx, ar, r.PostForm); err != nil {
			h.fail(ctx, w, r, ar, err)
			return
		}
		if err := h.Audience.grantAudience(ar, true); err != nil {
			h.fail(ctx, w, r, ar, err)
			return
		}
	}
	// fosite set exp from its own rounded clock; restate it from iat, so
	// that exp - iat is exactly the lifetime.
	if f, ok := h.Provider.(*fosite.Fosite); ok {
		session.SetExpiresAt(fosite.AccessToken, t.Add(f.Config.GetAccessTokenLifespan(ctx)))
	}
	claims.Extra["client_id"] = client.GetID()
	// The grant, kept across a refresh chain: revoking it (a refresh
	// token, an access token, the user's password change) ends every
	// access token that names it (jwtIntrospector).
	claims.Extra[grantClaim] = ar.GetID()
	claims.JTI = uuid.NewString()
	claims.IssuedAt, claims.NotBefore = t, t

	// RFC 9068 §2.1: the client, or an audience, may ask for RS256.
	ctx = withSigningAlg(ctx, h.Audience.signingAlg(client, ar.GetGrantedAudience()))

	// The step-up auth_session of a redeemed code is stored before the
	// code is marked used: a concurrent redemption that then finds it
	// used revokes the grant and so deletes the session (storage's
	// RevokeRefreshToken). Stored after, it could come after that
	// revocation and outlive the grant.
	stepUp := ""
	if ar.GetGrantTypes().ExactOne(clients.GrantAuthorizationCode) {
		stepUp = h.stepUpSession(ctx, ar, owner, session, proof)
	}
	resp, err := h.respond(ctx, ar, session, user)
	if err != nil {
		h.fail(ctx, w, r, ar, err)
		return
	}
	if !client.GetGrantTypes().Has(clients.GrantRefreshToken) {
		// fosite issues a refresh token whenever its refresh handler is
		// registered, whatever the client's grant types; a client not
		// registered for the grant could never use one.
		if ext, ok := resp.(*fosite.AccessResponse); ok {
			delete(ext.Extra, "refresh_token")
		}
	}
	omitEmptyScope(resp)
	if stepUp != "" {
		resp.SetExtra("auth_session", stepUp)
	}
	if proof != nil {
		resp.SetTokenType(dpop.Scheme)
		h.DPoP.setNonce(w)
	}
	// RFC 6749 §5.1: expires_in is the token's lifetime. fosite counts down
	// from its own clock and floors, so a 1 s token said 0, which
	// golang.org/x/oauth2 reads as "never expires" and then never
	// refreshes.
	if exp := session.GetExpiresAt(fosite.AccessToken); !exp.IsZero() {
		resp.SetExpiresIn(exp.Sub(t))
	}
	h.observe(grant, "success")
	h.Provider.WriteAccessResponse(ctx, w, ar, resp)
}

// maxConflictRetries bounds how often respond runs again after its
// transaction lost to a concurrent one.
const maxConflictRetries = 4

// respond writes the grant's tokens and returns fosite's response. Refresh
// runs its own transaction inside fosite; a password grant writes its
// refresh-token row under confirmCredentials' write to the user's row.
// client_credentials writes nothing: its access token is stateless.
//
// A transaction that loses to a concurrent one (a deadlock, or a
// certification conflict on a Galera cluster, where it fails at commit)
// is rolled back, and respond runs it again from the start, up to
// maxConflictRetries times: nothing of it was committed, and the new run
// reads what the winner wrote. So a refresh that lost to another use of
// its token finds the token used and fails with invalid_grant (without
// revoking the grant), one that lost to an unrelated write (the same
// user's login through another node) succeeds, and a login that lost to a
// password change is refused as for a wrong password.
func (h *TokenHandler) respond(ctx context.Context, ar fosite.AccessRequester, session *oauth2.JWTSession, user *identity.User) (fosite.AccessResponder, error) {
	var resp fosite.AccessResponder
	err := retryOnConflict(ctx, func() error {
		var err error
		resp, err = h.respondOnce(ctx, ar, session, user)
		return err
	})
	return resp, err
}

// retryOnConflict runs attempt again, after a short random pause, while it
// fails with fosite.ErrSerializationFailure (its transaction lost to a
// concurrent one), at most maxConflictRetries more times, and returns its
// last error.
func retryOnConflict(ctx context.Context, attempt func() error) error {
	for i := 0; ; i++ {
		err := attempt()
		if err == nil || !errors.Is(err, fosite.ErrSerializationFailure) || i == maxConflictRetries {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(1+i) * time.Duration(1+rand.IntN(4)) * time.Millisecond):
		}
	}
}

func (h *TokenHandler) respondOnce(ctx context.Context, ar fosite.AccessRequester, session *oauth2.JWTSession, user *identity.User) (fosite.AccessResponder, error) {
	if user == nil {
		return h.Provider.NewAccessResponse(ctx, ar)
	}
	txCtx, err := h.Store.BeginTX(ctx)
	if err != nil {
		return nil, err
	}
	// The credentials checked must still be the user's when the tokens
	// are written: a password change, disabling or deletion that
	// committed since the check refuses the login; one that comes later
	// waits for the row (or, on a Galera cluster, fails certification
	// and runs again) and revokes these tokens.
	locked, err := confirmCredentials(txCtx, h.Users, user)
	var resp fosite.AccessResponder
	if err == nil {
		// Claims as of the lock: a role change that committed since the
		// password check reached the token (as setOwner did).
		setUserClaims(session, locked)
		resp, err = h.Provider.NewAccessResponse(txCtx, ar)
	}
	if err == nil {
		err = h.Store.Commit(txCtx)
	}
	if err != nil {
		_ = h.Store.Rollback(txCtx)
		return nil, err
	}
	return resp, nil
}

// confirmCredentials checks, under LockUser's write to the user's row in ctx's
// transaction, that checked (the user whose password was just verified) is
// still enabled and has the password hash it was checked against. It
// returns the user as read under the lock, or fosite.ErrInvalidGrant, as
// for a wrong password.
func confirmCredentials(ctx context.Context, users UserLookup, checked *identity.User) (*identity.User, error) {
	u, err := users.LockUser(ctx, checked.ID)
	switch {
	case errors.Is(err, apperr.ErrNotFound):
		return nil, fosite.ErrInvalidGrant
	case err != nil:
		return nil, err
	case u.Disabled || subtle.ConstantTimeCompare([]byte(u.PasswordHash), []byte(checked.PasswordHash)) != 1:
		return nil, fosite.ErrInvalidGrant
	}
	return u, nil
}

// setOwner loads the user a grant is for, puts the user's claims in the
// session and returns the user: errOwnerGone if the account no longer
// exists or is disabled, storage errors as they are. Every refresh and
// code redemption goes through it, so role changes reach the next access
// token.
func (h *TokenHandler) setOwner(ctx context.Context, s *oauth2.JWTSession, userID string) (*identity.User, error) {
	u, err := h.Users.GetUser(ctx, userID)
	switch {
	case errors.Is(err, apperr.ErrNotFound), err == nil && u.Disabled:
		return nil, errOwnerGone
	case err != nil:
		return nil, err
	}
	setUserClaims(s, u)
	return u, nil
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

// grantRequested grants the requested scopes, which fosite has already
// checked against the client's registration; without a request it grants
// the client's every registered scope (its default scope, RFC 6749 §3.3).
// Audiences are granted by AudiencePolicy.
func grantRequested(ar fosite.AccessRequester) {
	client := ar.GetClient()
	scopes := ar.GetRequestedScopes()
	if len(scopes) == 0 {
		scopes = client.GetScopes()
	}
	for _, s := range scopes {
		ar.GrantScope(s)
	}
}

func (h *TokenHandler) observe(grant, result string) {
	if h.Observe == nil {
		return
	}
	switch grant {
	case clients.GrantPassword, clients.GrantClientCredentials, clients.GrantRefreshToken, clients.GrantAuthorizationCode:
	default:
		grant = "unknown"
	}
	h.Observe(grant, result)
}

// fail writes err as an RFC 6749 §5.2 error response.
func (h *TokenHandler) fail(ctx context.Context, w http.ResponseWriter, r *http.Request, ar fosite.AccessRequester, err error) {
	if ia, ok := errors.AsType[*InsufficientAuthorization](err); ok {
		h.observe(r.PostForm.Get("grant_type"), errInsufficientAuthorization)
		writeInsufficientAuthorization(w, ia)
		return
	}
	if ar != nil && ar.GetGrantTypes().ExactOne(clients.GrantAuthorizationCode) && errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
		// The loser of concurrent redemptions of one code: the code was
		// redeemed twice, so what the winner got is revoked too (RFC
		// 6749 §4.1.2), as fosite does for a redemption that comes later.
		err = h.revokeGrant(ctx, ar)
	}
	rfc := toRFC6749(err)
	if ar != nil && ar.GetGrantTypes().ExactOne(clients.GrantRefreshToken) &&
		(errors.Is(err, fosite.ErrInactiveToken) || errors.Is(err, fosite.ErrSerializationFailure)) {
		// The loser of a concurrent refresh: its token was just used.
		rfc = errRefreshUsed
	}
	if ar != nil && ar.GetGrantTypes().ExactOne(clients.GrantClientCredentials) && ar.GetClient() != nil && ar.GetClient().IsPublic() {
		// RFC 6749 §5.2: the client (public, so authenticated by its id
		// alone) may not use this grant.
		rfc = errPublicClientCredentials
	}
	if v, ok := apperr.RetryAfterHeader(err); ok {
		w.Header().Set("Retry-After", v)
	}
	if rfc.ErrorField == dpop.CodeUseNonce || rfc.ErrorField == dpop.CodeInvalidProof {
		// RFC 9449 §8: the nonce the next proof needs (when nonces are
		// required), with every refusal of a proof or of its absence.
		h.DPoP.setNonce(w)
	}
	h.log(ctx, r, rfc, err)
	grant := ""
	if r.PostForm != nil {
		grant = r.PostForm.Get("grant_type")
	}
	h.observe(grant, rfc.ErrorField)
	writeOAuthError(w, r, rfc)
}

func (h *TokenHandler) log(ctx context.Context, r *http.Request, rfc *fosite.RFC6749Error, err error) {
	if h.Logger == nil {
		return
	}
	// err.Error() only: fosite's errors carry stack traces that slog's
	// text handler would print with %+v.
	if rfc.CodeField >= 500 && rfc.CodeField != http.StatusServiceUnavailable {
		h.Logger.ErrorContext(ctx, "token request failed", "error", rfc.ErrorField, "err", err.Error())
		return
	}
	h.Logger.DebugContext(ctx, "token request rejected", "error", rfc.ErrorField, "err", err.Error())
}

// writeOAuthError writes an RFC 6749 §5.2 JSON error with no-store caching,
// Retry-After on 503 and 429 (unless already set), and WWW-Authenticate on
// 401 (RFC 6749 §5.2 requires it when the client authenticated with the
// Authorization header). Only the error's fixed description is sent, never
// fosite's hints or debug text.
func writeOAuthError(w http.ResponseWriter, _ *http.Request, e *fosite.RFC6749Error) {
	if (e.CodeField == http.StatusServiceUnavailable || e.CodeField == http.StatusTooManyRequests) && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "5")
	}
	if e.CodeField == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="portcullis", charset="UTF-8"`)
	}
	writeJSONNoStore(w, e.CodeField, map[string]string{"error": e.ErrorField, "error_description": e.DescriptionField})
}

func (h *TokenHandler) clientIP(r *http.Request) string {
	if h.ClientIP != nil {
		return h.ClientIP(r)
	}
	return RemoteIP(r)
}

// RemoteIP is the address of r's connection without its port: the
// rate-limit and lockout key of a request when no trusted proxy names
// the client.
func RemoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
