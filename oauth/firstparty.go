package oauth

import (
	"context"
	"net/http"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/portcullis-auth/portcullis/audit"
	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/oauth/dpop"
)

// FirstParty connects the token endpoint to the authorization challenge
// endpoint of first-party apps (package oauth/challenge implements it):
// users who must prove a second factor are sent there, and a redeemed code
// hands the client an auth_session for a later step-up.
type FirstParty interface {
	// CheckLogin decides whether a user's tokens may be issued without a
	// second factor: for a password grant whose password was just
	// verified (fresh, amr [pwd]) and for every refresh of a user's grant
	// (not fresh: amr as recorded at login). It returns nil to let it
	// through, an *InsufficientAuthorization to send the client to the
	// challenge endpoint, or a storage error. jkt is the request's DPoP
	// key ("" for none), to which an auth_session it starts is bound.
	CheckLogin(ctx context.Context, client fosite.Client, user *identity.User, amr []string, fresh bool, jkt string) error
	// StepUpSession returns the auth_session of a login just finished at
	// the challenge endpoint (a code redeemed into the grant grantID),
	// with which the client can come back for a step-up, or "" for none.
	// Revoking the grant ends the session (TokenStore.RevokeRefreshToken).
	StepUpSession(ctx context.Context, client fosite.Client, user *identity.User, amr []string, authTime time.Time, jkt, grantID string) (string, error)
}

// ACRValues are the acr claims of user tokens (RFC 9068 §2.2.1): Single
// for a login with a password alone, Multi with a second factor.
type ACRValues struct {
	Single, Multi string
}

// For returns the acr value of a login with the RFC 8176 methods amr.
func (a ACRValues) For(amr []string) string {
	for _, m := range amr {
		if m == AMRMFA {
			return a.Multi
		}
	}
	return a.Single
}

// RFC 8176 authentication method references Portcullis records.
const (
	AMRPassword = "pwd"
	AMROTP      = "otp"
	AMRMFA      = "mfa"
)

// InsufficientAuthorization is the token endpoint's answer (403
// insufficient_authorization, draft-ietf-oauth-first-party-apps §6.2) to a
// login that needs a second factor: the client continues at the
// authorization challenge endpoint with AuthSession (when the client may
// use it).
type InsufficientAuthorization struct {
	// AuthSession continues the login at the challenge endpoint; "" when
	// the client is not registered for that flow.
	AuthSession string
	// OTPRequired: the user has a TOTP factor; ask for a code.
	// EnrollmentRequired: the user must enrol one first (the challenge
	// endpoint hands out the secret).
	OTPRequired, EnrollmentRequired bool
}

func (e *InsufficientAuthorization) Error() string { return errInsufficientAuthorization }

const errInsufficientAuthorization = "insufficient_authorization"

// writeInsufficientAuthorization writes e as the draft's example shows it.
func writeInsufficientAuthorization(w http.ResponseWriter, e *InsufficientAuthorization) {
	body := map[string]any{
		"error":             errInsufficientAuthorization,
		"error_description": "A second factor is required: continue at the authorization challenge endpoint.",
	}
	if e.AuthSession != "" {
		body["auth_session"] = e.AuthSession
	}
	if e.OTPRequired {
		body["otp_required"] = true
	}
	if e.EnrollmentRequired {
		body["totp_enrollment_required"] = true
	}
	writeJSONNoStore(w, http.StatusForbidden, body)
}

// checkLogin asks FirstParty (when set) whether user's tokens may be
// issued to client for a login with the methods amr (fresh: just proven).
func (h *TokenHandler) checkLogin(ctx context.Context, client fosite.Client, user *identity.User, amr []string, fresh bool, proof *dpop.Proof) error {
	if h.FirstParty == nil || user == nil {
		return nil
	}
	jkt := ""
	if proof != nil {
		jkt = proof.JKT
	}
	return h.FirstParty.CheckLogin(ctx, client, user, amr, fresh, jkt)
}

// stepUpSession returns the auth_session for a later step-up
// (draft-ietf-oauth-first-party-apps §6.1) to add to the response of the
// code being redeemed in ar, or "" for none. It runs before the code is
// marked used (see ServeHTTP); a session of a redemption that then fails
// was never handed out, so nobody can use it, and it expires. Without one
// the tokens are still good: a failure is logged, not returned.
func (h *TokenHandler) stepUpSession(ctx context.Context, ar fosite.AccessRequester, owner *identity.User, session *oauth2.JWTSession, proof *dpop.Proof) string {
	if h.FirstParty == nil || owner == nil {
		return ""
	}
	jkt := ""
	if proof != nil {
		jkt = proof.JKT
	}
	authTime := time.Time{}
	if v, ok := session.JWTClaims.Extra[claimAuthTime]; ok {
		switch n := v.(type) {
		case int64:
			authTime = time.Unix(n, 0)
		case float64:
			authTime = time.Unix(int64(n), 0)
		}
	}
	as, err := h.FirstParty.StepUpSession(ctx, ar.GetClient(), owner, SessionAMR(session), authTime, jkt, ar.GetID())
	if err != nil {
		if h.Logger != nil {
			h.Logger.WarnContext(ctx, "no step-up auth_session for a redeemed code", "err", err.Error())
		}
		return ""
	}
	return as
}

// revokeGrant revokes every token of ar's grant, records the revocation
// (a code redeemed twice concurrently, audit.TokenCodeReplay) in the same
// transaction (logged, and the revocation stands, if it cannot be), and
// returns fosite.ErrInvalidGrant, or the error that kept
// it from revoking them (the client may retry, and the retry revokes).
func (h *TokenHandler) revokeGrant(ctx context.Context, ar fosite.AccessRequester) error {
	requestID := ar.GetID()
	err := h.inTx(ctx, func(ctx context.Context) error {
		if err := h.Store.RevokeAccessToken(ctx, requestID); err != nil {
			return err
		}
		if err := h.Store.RevokeRefreshToken(ctx, requestID); err != nil {
			return err
		}
		// The revocation does not wait on the trail: an event that
		// cannot be written is logged.
		if err := audit.Record(ctx, h.Audit, audit.Event{Actor: audit.ClientTarget(ar.GetClient().GetID()),
			Action: audit.TokenCodeReplay, Target: grantTarget(ar), Outcome: audit.OutcomeFailure}); err != nil && h.Logger != nil {
			h.Logger.ErrorContext(ctx, "audit event not recorded", "action", audit.TokenCodeReplay, "err", err.Error())
		}
		return nil
	})
	if err != nil {
		return err
	}
	return fosite.ErrInvalidGrant
}

// inTx runs fn in a transaction of h.Store carried by the context fn
// receives: committed when fn returns nil, else rolled back.
func (h *TokenHandler) inTx(ctx context.Context, fn func(ctx context.Context) error) error {
	txCtx, err := h.Store.BeginTX(ctx)
	if err != nil {
		return err
	}
	if err := fn(txCtx); err != nil {
		_ = h.Store.Rollback(txCtx)
		return err
	}
	return h.Store.Commit(txCtx)
}
