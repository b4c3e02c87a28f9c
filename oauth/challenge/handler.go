// Package challenge is the Authorization Challenge Endpoint of OAuth 2.0
// for First-Party Applications (draft-ietf-oauth-first-party-apps-04): a
// first-party app logs its user in directly, with a password and then, if
// the account has one or must have one, a TOTP code or a recovery code,
// and gets an authorization code that it redeems at the token endpoint
// with PKCE (oauth.CodeIssuer, fosite's code and PKCE handlers).
//
// The profile (the draft leaves request and error parameters to the
// server, §5.1, §5.2.2): the first request carries username and password
// (and PKCE, scope, acr_values); the answer is an authorization code, or
// 401 insufficient_authorization with an auth_session and otp_required
// (send otp or recovery_code with the auth_session), or with
// totp_enrollment_required plus the secret of a new TOTP factor (the
// account must have a second factor and has none: enrol it, then send a
// code). Every auth_session value works once: each answer that continues
// the flow carries a new one.
package challenge

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/ory/fosite"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/ratelimit"
	"github.com/portcullis-auth/portcullis/oauth"
	"github.com/portcullis-auth/portcullis/oauth/clients"
	"github.com/portcullis-auth/portcullis/oauth/dpop"
)

// Path is where the endpoint is served on the public listener.
const Path = "/oauth2/authorize-challenge"

// Users is what the endpoint needs of identity.Service.
type Users interface {
	AuthenticateStep(ctx context.Context, username, password, clientIP string, step identity.PasswordStep) (*identity.User, error)
	Get(ctx context.Context, id string) (*identity.User, error)
	ConfirmedFactor(ctx context.Context, userID string) (*identity.Factor, error)
	VerifySecondFactor(ctx context.Context, u *identity.User, otp, recoveryCode, clientIP string) error
	BeginTOTP(ctx context.Context, u *identity.User) (*identity.Enrolment, error)
	ConfirmTOTP(ctx context.Context, u *identity.User, factorID, code, clientIP string) ([]string, error)
	LoginSucceeded(ctx context.Context, u *identity.User, clientIP string, secondFactor bool) error
}

// Handler serves POST /oauth2/authorize-challenge and implements
// oauth.FirstParty for the token endpoint. Every field is required but
// DPoP, Limiter, ClientIP, Logger and Now.
type Handler struct {
	// Provider authenticates clients as the token endpoint does.
	Provider *fosite.Fosite
	Users    Users
	Sessions Store
	Codes    *oauth.CodeIssuer
	// URL is the endpoint's URL as clients address it (the issuer's plus
	// Path), which DPoP proofs name (htu).
	URL string
	// DPoP checks proofs; nil ignores them (no binding).
	DPoP *dpop.Verifier
	ACR  oauth.ACRValues
	// SessionLifetime is how long each step's auth_session lives;
	// StepUpLifetime how long a finished login's does.
	SessionLifetime, StepUpLifetime time.Duration
	MaxBytes                        int64
	// Limiter throttles requests that carry a password, per client IP
	// (shared with the password grant).
	Limiter *ratelimit.Keyed
	// ClientIP returns the rate-limit and lockout key of a request;
	// default: the connection's address.
	ClientIP func(*http.Request) string
	Logger   *slog.Logger
	Now      func() time.Time
}

var _ oauth.FirstParty = (*Handler)(nil)

// maxFailures is how many wrong passwords or codes one auth_session
// survives; the account's lockout counts each of them as well.
const maxFailures = 5

// Session kinds.
const (
	kindLogin  = "login"   // a login under way
	kindStepUp = "step_up" // a finished login, kept for a step-up
)

// state is a session's JSON state (Record.State).
type state struct {
	Kind string `json:"kind"`
	// Scope, CodeChallenge and ACRValues are the authorization asked for
	// (a later request may restate them).
	Scope         []string `json:"scope,omitempty"`
	CodeChallenge string   `json:"code_challenge,omitempty"`
	ACRValues     []string `json:"acr_values,omitempty"`
	// Done are the RFC 8176 methods proven in this flow.
	Done []string `json:"done,omitempty"`
	// PriorAMR and PriorAuthTime describe the finished login of a
	// step-up session.
	PriorAMR      []string `json:"prior_amr,omitempty"`
	PriorAuthTime int64    `json:"prior_auth_time,omitempty"`
	// PendingFactor is the TOTP factor being enrolled in this flow.
	PendingFactor string `json:"pending_factor,omitempty"`
	Failures      int    `json:"failures,omitempty"`
}

// Errors of the endpoint (draft §5.2.2 codes and RFC 6749's), with fixed
// descriptions.
var (
	errInvalidSession = rfc("invalid_session", http.StatusBadRequest,
		"The auth_session is invalid, expired, already used, or belongs to another client or key.")
	errNoCredentials = rfc("invalid_request", http.StatusBadRequest,
		"The first request must carry username and password, or an auth_session.")
	errNoPKCE = rfc("invalid_request", http.StatusBadRequest,
		"A PKCE code_challenge with code_challenge_method S256 is required.")
	errAccessDenied = rfc("access_denied", http.StatusBadRequest,
		"The credentials are incorrect.")
	errTooManyFailures = rfc("access_denied", http.StatusBadRequest,
		"Too many failed attempts in this auth_session; start a new login.")
	errUnauthorizedClient = rfc("unauthorized_client", http.StatusBadRequest,
		"The client is not registered for the authorization_code grant.")
	errRateLimited = rfc("temporarily_unavailable", http.StatusTooManyRequests,
		"Too many password attempts from this address; retry later.")
	errDPoPKey = rfc("invalid_session", http.StatusBadRequest,
		"The auth_session is bound to a DPoP key; a proof by that key is required.")
	errDPoPJKT = rfc("invalid_dpop_proof", http.StatusBadRequest,
		"The dpop_jkt parameter does not match the key of the DPoP proof.")
)

func rfc(code string, status int, description string) *fosite.RFC6749Error {
	return &fosite.RFC6749Error{ErrorField: code, DescriptionField: description, CodeField: status}
}

// parseError maps ParseRequest's errors to errors with fixed
// descriptions.
func parseError(err error) *fosite.RFC6749Error {
	if e, ok := parseErrors[err]; ok {
		return e
	}
	return rfc("invalid_request", http.StatusBadRequest, "The request is malformed.")
}

var parseErrors = func() map[error]*fosite.RFC6749Error {
	m := map[error]*fosite.RFC6749Error{
		ErrResponseType: rfc("unsupported_response_type", http.StatusBadRequest, "The response_type must be code."),
		// RFC 6749 §4.1.2.1: a malformed scope is invalid_scope, as an
		// unknown one is (GrantableScopes).
		ErrScope: rfc("invalid_scope", http.StatusBadRequest, "The request is malformed: "+ErrScope.Error()+"."),
		// draft §5.2.2.1: an auth_session that cannot be one is
		// "otherwise invalid": the client starts over, as for an unknown
		// one, rather than taking its request for malformed.
		ErrAuthSession: errInvalidSession,
	}
	for _, e := range []error{ErrCodeChallenge, ErrChallengeMeth, ErrACRValues, ErrMaxAge, ErrTooLong, ErrBothCodes, ErrDPoPJKT} {
		m[e] = rfc("invalid_request", http.StatusBadRequest, "The request is malformed: "+e.Error()+".")
	}
	return m
}()

// own reports whether e is one of this package's errors, sent as they are.
func own(e *fosite.RFC6749Error) bool { return ownErrors[e] }

var ownErrors = func() map[*fosite.RFC6749Error]bool {
	m := map[*fosite.RFC6749Error]bool{}
	for _, e := range []*fosite.RFC6749Error{errInvalidSession, errNoCredentials, errNoPKCE, errAccessDenied,
		errTooManyFailures, errUnauthorizedClient, errRateLimited, errDPoPKey, errDPoPJKT} {
		m[e] = true
	}
	for _, e := range parseErrors {
		m[e] = true
	}
	return m
}()

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := oauth.ReadForm(w, r, h.MaxBytes); err != nil {
		h.fail(w, r, err)
		return
	}
	req, err := ParseRequest(r.PostForm)
	if err != nil {
		h.fail(w, r, parseError(err))
		return
	}
	ip := h.clientIP(r)
	if req.Password != "" && h.Limiter != nil && !h.Limiter.Allow(ip) {
		w.Header().Set("Retry-After", "1")
		h.fail(w, r, errRateLimited)
		return
	}
	// The proof is checked before anything costs a lookup, and spent once
	// the client is authenticated (as at the token endpoint).
	var proof *dpop.Proof
	if h.DPoP != nil && len(r.Header.Values(dpop.HeaderName)) > 0 {
		raw, err := dpop.ProofFromHeader(r.Header)
		if err == nil {
			proof, err = h.DPoP.Check(raw, dpop.Request{Method: http.MethodPost, URI: h.URL})
		}
		if err != nil {
			h.fail(w, r, err)
			return
		}
	}
	var rec *Record
	if req.AuthSession != "" {
		rec, err = h.Sessions.GetAuthSession(ctx, handleHash(req.AuthSession))
		if errors.Is(err, apperr.ErrNotFound) || (err == nil && !h.now().Before(rec.ExpiresAt)) {
			err = errInvalidSession
		}
		if err != nil {
			h.fail(w, r, err)
			return
		}
	}
	client, err := h.authenticateClient(ctx, r, req, rec)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if rec != nil {
		if subtle.ConstantTimeCompare([]byte(rec.ClientID), []byte(client.GetID())) != 1 {
			h.fail(w, r, errInvalidSession)
			return
		}
		if rec.JKT != "" && (proof == nil || subtle.ConstantTimeCompare([]byte(rec.JKT), []byte(proof.JKT)) != 1) {
			h.fail(w, r, errDPoPKey)
			return
		}
	}
	// The key the session, the code and the tokens are bound to: the
	// proof's, or the dpop_jkt of a request without one (RFC 9449 §10,
	// as for an authorization request), which then needs proofs by it
	// from the next request on.
	jkt := req.DPoPJKT
	if proof != nil {
		if jkt != "" && subtle.ConstantTimeCompare([]byte(jkt), []byte(proof.JKT)) != 1 {
			h.fail(w, r, errDPoPJKT)
			return
		}
		if err := h.DPoP.Spend(ctx, proof); err != nil {
			h.fail(w, r, err)
			return
		}
		jkt = proof.JKT
	}
	if rec != nil {
		if rec.JKT != "" {
			jkt = rec.JKT
		}
		// Claim the session before any credential is checked: its
		// handle is replaced at once (one conditional update), so of
		// concurrent requests with one auth_session exactly one goes on
		// and the others get invalid_session without a guess checked
		// (draft §9.3: per-session limits hold under parallel requests).
		claimed, err := h.claim(ctx, rec)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		rec = claimed
	}
	h.serve(w, r, req, client, rec, jkt, ip)
}

// claim moves rec to a new handle that no client holds and returns it.
func (h *Handler) claim(ctx context.Context, rec *Record) (*Record, error) {
	value, err := newHandle()
	if err != nil {
		return nil, err
	}
	claimed := *rec
	claimed.Handle = handleHash(value)
	ok, err := h.Sessions.ReplaceAuthSession(ctx, rec.Handle, &claimed)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errInvalidSession
	}
	return &claimed, nil
}

// authenticateClient authenticates the client as the token endpoint
// does. A request that continues a session may leave client_id out (the
// draft's example does): the session names the client, which must then
// still authenticate (a public client by its ID alone).
func (h *Handler) authenticateClient(ctx context.Context, r *http.Request, req *Request, rec *Record) (fosite.Client, error) {
	form := r.PostForm
	if rec != nil {
		if req.ClientID != "" && req.ClientID != rec.ClientID {
			// draft §5.1: the client_id must name the session's client.
			return nil, errInvalidSession
		}
		if _, _, basic := r.BasicAuth(); req.ClientID == "" && !basic {
			form = cloneForm(form)
			form.Set("client_id", rec.ClientID)
		}
	}
	client, err := h.Provider.AuthenticateClient(ctx, r, form)
	if err != nil {
		return nil, err
	}
	if !client.GetGrantTypes().Has(clients.GrantAuthorizationCode) {
		return nil, errUnauthorizedClient
	}
	return client, nil
}

func cloneForm(f url.Values) url.Values {
	out := make(url.Values, len(f)+1)
	for k, v := range f {
		out[k] = slices.Clone(v)
	}
	return out
}

// serve runs one step of the login.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, req *Request, client fosite.Client, rec *Record, jkt, ip string) {
	ctx := r.Context()
	st := &state{Kind: kindLogin}
	var user *identity.User
	if rec != nil {
		if err := json.Unmarshal(rec.State, st); err != nil {
			h.fail(w, r, errInvalidSession)
			return
		}
		if rec.UserID != "" {
			u, err := h.Users.Get(ctx, rec.UserID)
			if errors.Is(err, apperr.ErrNotFound) || (err == nil && u.Disabled) {
				err = errInvalidSession
			}
			if err != nil {
				h.fail(w, r, err)
				return
			}
			user = u
		}
	} else if req.Username == "" || req.Password == "" {
		h.fail(w, r, errNoCredentials)
		return
	}
	// The authorization asked for: a later request may restate it.
	if req.Scope != nil {
		st.Scope = req.Scope
	}
	if req.CodeChallenge != "" {
		st.CodeChallenge = req.CodeChallenge
	}
	if req.ACRValues != nil {
		st.ACRValues = req.ACRValues
	}
	if st.CodeChallenge == "" {
		h.fail(w, r, errNoPKCE)
		return
	}
	scopes, err := oauth.GrantableScopes(client, st.Scope)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	st.Scope = scopes

	// The first factor.
	if req.Password != "" {
		username := req.Username
		if user != nil {
			username = user.Username
		}
		// A second factor the client or the request requires makes the
		// password a first step whatever the user's own settings: the
		// login is recorded once, when it completes (issue).
		step := identity.LoginByPassword
		if clientRequiresMFA(client) || h.asksMultiFactor(st.ACRValues) {
			step = identity.SecondFactorFollows
		}
		u, err := h.Users.AuthenticateStep(ctx, username, req.Password, ip, step)
		if err == nil && user != nil && u.ID != user.ID {
			err = identity.ErrInvalidCredentials
		}
		if errors.Is(err, identity.ErrInvalidCredentials) {
			if rec == nil {
				h.fail(w, r, errAccessDenied) // a first request: no session to retry in
				return
			}
			hasFactor, err := h.hasFactor(ctx, user)
			if err != nil {
				h.fail(w, r, err)
				return
			}
			h.failedStep(w, r, client, rec, st, user, hasFactor, jkt)
			return
		}
		if err != nil {
			h.fail(w, r, err)
			return
		}
		user = u
		st.Done = addMethod(st.Done, oauth.AMRPassword)
	}
	if user == nil {
		// A session without a user is never stored.
		h.fail(w, r, errInvalidSession)
		return
	}
	hasFactor, err := h.hasFactor(ctx, user)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	// The second factor.
	var recoveryCodes []string
	if req.OTP != "" || req.RecoveryCode != "" {
		switch {
		case !hasFactor && st.PendingFactor != "" && req.OTP != "" && slices.Contains(st.Done, oauth.AMRPassword):
			recoveryCodes, err = h.Users.ConfirmTOTP(ctx, user, st.PendingFactor, req.OTP, ip)
			if err == nil {
				st.PendingFactor = ""
			}
		case hasFactor:
			err = h.Users.VerifySecondFactor(ctx, user, req.OTP, req.RecoveryCode, ip)
		default:
			err = identity.ErrInvalidCode
		}
		if errors.Is(err, identity.ErrInvalidCode) || errors.Is(err, identity.ErrNoFactor) {
			if rec == nil {
				h.fail(w, r, errAccessDenied)
				return
			}
			h.failedStep(w, r, client, rec, st, user, hasFactor, jkt)
			return
		}
		if err != nil {
			h.fail(w, r, err)
			return
		}
		st.Done = addMethod(st.Done, oauth.AMROTP)
		hasFactor = true // proven now, or just enrolled
	}
	missing := h.missing(client, user, hasFactor, st)
	if len(missing) > 0 {
		h.continueFlow(w, r, client, rec, st, user, hasFactor, missing, jkt, "")
		return
	}
	h.issue(w, r, client, rec, st, user, jkt, ip, recoveryCodes)
}

// needsSecondFactor reports whether the login must prove a second factor:
// the user or the client requires it, the user has one, or the request
// asks for the multi-factor acr (and not for the single-factor one).
func (h *Handler) needsSecondFactor(client fosite.Client, user *identity.User, hasFactor bool, acrValues []string) bool {
	return user.MFARequired || hasFactor || clientRequiresMFA(client) || h.asksMultiFactor(acrValues)
}

// asksMultiFactor reports whether a request's acr_values ask for the
// multi-factor acr (and not for the single-factor one).
func (h *Handler) asksMultiFactor(acrValues []string) bool {
	return slices.Contains(acrValues, h.ACR.Multi) && !slices.Contains(acrValues, h.ACR.Single)
}

func clientRequiresMFA(c fosite.Client) bool {
	mc, ok := c.(interface{ RequiresMFA() bool })
	return ok && mc.RequiresMFA()
}

// missing returns the methods the login still has to prove: a login needs
// the password, and a second factor when needsSecondFactor says so; a
// step-up needs at least one fresh factor (the second one when the user
// has it, else the password), and a second factor as a login does.
func (h *Handler) missing(client fosite.Client, user *identity.User, hasFactor bool, st *state) []string {
	need := []string{oauth.AMRPassword}
	if st.Kind == kindStepUp {
		need = nil
		if hasFactor {
			need = []string{oauth.AMROTP}
		} else {
			need = []string{oauth.AMRPassword}
		}
	}
	if h.needsSecondFactor(client, user, hasFactor, st.ACRValues) && !slices.Contains(need, oauth.AMROTP) {
		need = append(need, oauth.AMROTP)
	}
	var out []string
	for _, m := range need {
		if !slices.Contains(st.Done, m) {
			out = append(out, m)
		}
	}
	return out
}

// continueFlow stores the session under a new handle and answers 401
// insufficient_authorization with what the client must ask the user for
// next (the profile's otp_required, password_required,
// totp_enrollment_required).
func (h *Handler) continueFlow(w http.ResponseWriter, r *http.Request, client fosite.Client, rec *Record, st *state, user *identity.User, hasFactor bool, missing []string, jkt, description string) {
	ctx := r.Context()
	body := map[string]any{"error": "insufficient_authorization"}
	switch {
	case slices.Contains(missing, oauth.AMRPassword):
		body["password_required"] = true
	case hasFactor:
		body["otp_required"] = true
	default:
		// The account must have a second factor and has none: enrol one
		// now, its password just proven. The secret is shown once.
		body["totp_enrollment_required"] = true
		if st.PendingFactor == "" {
			e, err := h.Users.BeginTOTP(ctx, user)
			if err != nil {
				h.fail(w, r, err)
				return
			}
			st.PendingFactor = e.FactorID
			body["totp_secret"] = e.Secret
			body["otpauth_uri"] = e.URI
		}
	}
	if description == "" {
		description = "Further authentication is required: send what the response asks for with the auth_session."
	}
	body["error_description"] = description
	value, err := h.store(ctx, client, rec, st, user, jkt, "", h.SessionLifetime)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	body["auth_session"] = value
	oauth.WriteJSONNoStore(w, http.StatusUnauthorized, body)
}

// failedStep counts a wrong password or code against the session rec:
// after maxFailures the session ends (access_denied); before, the client
// gets a new auth_session to try again.
func (h *Handler) failedStep(w http.ResponseWriter, r *http.Request, client fosite.Client, rec *Record, st *state, user *identity.User, hasFactor bool, jkt string) {
	st.Failures++
	if st.Failures >= maxFailures {
		if _, err := h.Sessions.DeleteAuthSession(r.Context(), rec.Handle); err != nil {
			h.fail(w, r, err)
			return
		}
		h.fail(w, r, errTooManyFailures)
		return
	}
	missing := h.missing(client, user, hasFactor, st)
	if len(missing) == 0 {
		missing = []string{oauth.AMROTP}
	}
	h.continueFlow(w, r, client, rec, st, user, hasFactor, missing, jkt, "The credentials are incorrect; try again.")
}

// hasFactor reports whether user (nil: not identified yet) has a
// confirmed second factor.
func (h *Handler) hasFactor(ctx context.Context, user *identity.User) (bool, error) {
	if user == nil {
		return false, nil
	}
	f, err := h.Users.ConfirmedFactor(ctx, user.ID)
	return f != nil, err
}

// issue ends the flow: the session is used up (one conditional delete, so
// that concurrent last steps yield one code), the login is recorded as
// successful, and the code is returned.
func (h *Handler) issue(w http.ResponseWriter, r *http.Request, client fosite.Client, rec *Record, st *state, user *identity.User, jkt, ip string, recoveryCodes []string) {
	ctx := r.Context()
	if rec != nil {
		ok, err := h.Sessions.DeleteAuthSession(ctx, rec.Handle)
		if err == nil && !ok {
			err = errInvalidSession
		}
		if err != nil {
			h.fail(w, r, err)
			return
		}
	}
	// A login that proved a second factor is recorded now; one by
	// password alone was recorded by its password step.
	if err := h.Users.LoginSucceeded(ctx, user, ip, slices.Contains(st.Done, oauth.AMROTP)); err != nil {
		h.fail(w, r, err)
		return
	}
	amr := slices.Clone(st.Done)
	for _, m := range st.PriorAMR {
		amr = addMethod(amr, m)
	}
	amr = withMFA(amr)
	code, err := h.Codes.Issue(ctx, oauth.Authentication{
		Client: client, User: user, Scopes: st.Scope, CodeChallenge: st.CodeChallenge,
		AMR: amr, ACR: h.ACR.For(amr), AuthTime: h.now().UTC().Truncate(time.Second), JKT: jkt,
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	body := map[string]any{"authorization_code": code}
	if len(recoveryCodes) > 0 {
		body["recovery_codes"] = recoveryCodes
	}
	oauth.WriteJSONNoStore(w, http.StatusOK, body)
}

// withMFA returns amr sorted, with "mfa" when a password and a second
// factor were both used (RFC 8176 §2).
func withMFA(amr []string) []string {
	out := slices.DeleteFunc(slices.Clone(amr), func(m string) bool { return m == oauth.AMRMFA })
	if slices.Contains(out, oauth.AMRPassword) && slices.Contains(out, oauth.AMROTP) {
		out = append(out, oauth.AMRMFA)
	}
	slices.Sort(out)
	return out
}

func addMethod(done []string, m string) []string {
	if slices.Contains(done, m) {
		return done
	}
	return append(done, m)
}

// store saves st under a new handle, in place of rec (conditionally: a
// handle used meanwhile makes this invalid_session; the binding stays) or
// as a new session bound to the DPoP key jkt ("" for none) and, for a
// step-up session, to the grant grantID, and returns the new auth_session
// value.
func (h *Handler) store(ctx context.Context, client fosite.Client, rec *Record, st *state, user *identity.User, jkt, grantID string, lifetime time.Duration) (string, error) {
	value, err := newHandle()
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return "", err
	}
	now := h.now().UTC()
	next := &Record{Handle: handleHash(value), ClientID: client.GetID(), State: b, ExpiresAt: now.Add(lifetime), CreatedAt: now}
	if user != nil {
		next.UserID = user.ID
	}
	switch {
	case rec != nil:
		next.JKT, next.CreatedAt, next.GrantID = rec.JKT, rec.CreatedAt, rec.GrantID
		ok, err := h.Sessions.ReplaceAuthSession(ctx, rec.Handle, next)
		if err != nil {
			return "", err
		}
		if !ok {
			return "", errInvalidSession
		}
	default:
		next.JKT, next.GrantID = jkt, grantID
		if err := h.Sessions.CreateAuthSession(ctx, next); err != nil {
			return "", err
		}
	}
	return value, nil
}

// newHandle returns a new auth_session value: 256 random bits (draft
// §5.3), base64url.
func newHandle() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// handleHash is what the store keeps of a value: its hex SHA-256.
func handleHash(value string) string {
	sum := sha256.Sum256([]byte(value))
	return hex.EncodeToString(sum[:])
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Handler) clientIP(r *http.Request) string {
	if h.ClientIP != nil {
		return h.ClientIP(r)
	}
	return oauth.RemoteIP(r)
}

// fail writes err as an RFC 6749 §5.2 error (the token endpoint's
// mapping, oauth.WriteError), with DPoP-Nonce when a proof was refused
// and nonces are on.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	if e, ok := errors.AsType[*fosite.RFC6749Error](err); ok && own(e) {
		if e.CodeField == http.StatusTooManyRequests && w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", "1")
		}
		oauth.WriteJSONNoStore(w, e.CodeField, map[string]string{"error": e.ErrorField, "error_description": e.DescriptionField})
		return
	}
	if _, ok := errors.AsType[*dpop.Error](err); ok && h.DPoP != nil && h.DPoP.Nonces() != nil {
		w.Header().Set(dpop.NonceHeader, h.DPoP.Nonces().Current())
	}
	code, status := oauth.ErrorCode(err)
	if h.Logger != nil {
		if status >= 500 && status != http.StatusServiceUnavailable {
			h.Logger.ErrorContext(r.Context(), "authorization challenge failed", "error", code, "err", err.Error())
		} else {
			h.Logger.DebugContext(r.Context(), "authorization challenge refused", "error", code, "err", err.Error())
		}
	}
	oauth.WriteError(w, r, err)
}
