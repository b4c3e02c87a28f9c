// Package account is the account API of the signed-in user, served on the
// public listener: the user's second factors (TOTP enrolment and
// confirmation, removal) and recovery codes. Every route takes the user's
// own access token (Bearer, or the DPoP scheme with a proof for a
// DPoP-bound token, checked by package bearer); a client's token
// (client_credentials) is refused with 403. Changing a factor or the
// recovery codes asks for the user's password again, checked as a login
// (identity.Service.Authenticate: a wrong password counts towards the
// lockout). Bodies are JSON; every answer carries Cache-Control: no-store,
// since some carry secrets (a TOTP secret, recovery codes).
package account

import (
	"encoding/base64"
	"errors"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"time"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/httpjson"
	"github.com/portcullis-auth/portcullis/internal/server/bearer"
	"github.com/portcullis-auth/portcullis/oauth"
)

// QRSize is the width and height in pixels of the QR code of an
// enrolment's otpauth URI (qr_png).
const QRSize = 256

// Handler serves the account API. Guard, Users and MaxBytes are required.
type Handler struct {
	// Guard verifies the access token; its Realm names the account API.
	Guard *bearer.Guard
	Users *identity.Service
	// ClientIP returns the client's address as the token endpoint's
	// lockout sees it (clientip.Resolver.LimitKey); default: the
	// connection's address.
	ClientIP func(*http.Request) string
	// MaxBytes caps request bodies (413 beyond).
	MaxBytes int64
	Logger   *slog.Logger
}

// Route is one route of the account API: its method, its path pattern
// (http.ServeMux syntax) and its handler.
type Route struct {
	Method, Path string
	Handler      http.Handler
}

// Routes returns the account API's routes, for the caller to mount (with
// its instrumentation and CORS) on the public listener.
func (h *Handler) Routes() []Route {
	return []Route{
		{http.MethodGet, "/account/factors", h.serve(h.listFactors)},
		{http.MethodPost, "/account/factors/totp", h.serve(h.enrolTOTP)},
		{http.MethodPost, "/account/factors/totp/{id}/confirm", h.serve(h.confirmTOTP)},
		{http.MethodDelete, "/account/factors/{id}", h.serve(h.removeFactor)},
		{http.MethodPost, "/account/recovery-codes", h.serve(h.newRecoveryCodes)},
	}
}

// request is one authorised call: the user whose token it carries and the
// scheme the token came with.
type request struct {
	user   *identity.User
	scheme string
}

// Errors of the account API that are not apperr codes.
var (
	errInvalidPassword = &wireError{status: http.StatusUnauthorized, code: "invalid_password", msg: "the password is wrong"}
	errInvalidCode     = &wireError{status: http.StatusUnauthorized, code: "invalid_code", msg: "the one-time code is wrong or was used already"}
	errNotJSON         = &wireError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", msg: "the request body must be application/json"}
	errNoFactor        = &apperr.Error{Code: apperr.EConflict, Message: "recovery codes need a confirmed second factor; enrol one first"}
)

// wireError is an error answered with its own status and error code.
type wireError struct {
	status    int
	code, msg string
}

func (e *wireError) Error() string { return e.code + ": " + e.msg }

// serve checks the token (a user's, still enabled) and runs fn, writing
// any error it returns as JSON.
func (h *Handler) serve(fn func(http.ResponseWriter, *http.Request, request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		g := h.Guard
		tok := g.Verify(w, r, "a user's access token is required")
		if tok == nil {
			return
		}
		userID, isUser := oauth.UserID(tok.Request)
		if !isUser {
			g.Forbid(w, r, tok.Scheme, `error="insufficient_scope"`, "only a user's access token may manage the user's account")
			return
		}
		u, err := h.Users.Get(r.Context(), userID)
		switch {
		case errors.Is(err, apperr.ErrNotFound):
			g.Unauthorized(w, r, tok.Scheme)
			return
		case err != nil:
			h.writeError(w, r, tok.Scheme, err)
			return
		case u.Disabled:
			g.Unauthorized(w, r, tok.Scheme)
			return
		}
		// Last, once the token is otherwise accepted: a DPoP proof is
		// spent only for a request that will be served.
		if !g.Bind(w, r, tok) {
			return
		}
		if err := fn(w, r, request{user: u, scheme: tok.Scheme}); err != nil {
			h.writeError(w, r, tok.Scheme, err)
		}
	})
}

// writeError answers err: a wireError with its own status and code, any
// other as httpjson does. A 401 carries the realm's challenge (RFC 9110
// §15.5.2) without an error: the token is fine, the password or code is
// not.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, scheme string, err error) {
	if e, ok := errors.AsType[*wireError](err); ok {
		if e.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", h.Guard.Challenge(scheme, ""))
		}
		httpjson.Write(w, e.status, httpjson.ErrorBody{Error: e.code, ErrorDescription: e.msg})
		return
	}
	if httpjson.Status(err) == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", h.Guard.Challenge(scheme, ""))
	}
	httpjson.WriteError(w, r, h.Logger, err)
}

func (h *Handler) clientIP(r *http.Request) string {
	if h.ClientIP != nil {
		return h.ClientIP(r)
	}
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	return ip
}

// decode reads r's JSON body into v: 415 for another media type.
func (h *Handler) decode(w http.ResponseWriter, r *http.Request, v any) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return errNotJSON
	}
	return httpjson.Decode(w, r, h.MaxBytes, v)
}

// passwordRequest is the body of the routes that ask for the password.
type passwordRequest struct {
	Password string `json:"password"`
}

// reauthenticate reads the body's password and checks it as a login of
// the user from the client's address: a wrong one fails with
// errInvalidPassword and counts towards the lockout; a held-back attempt
// fails with an error matching identity.ErrThrottled (429, Retry-After).
// A right one completes the login (identity.Reauthentication, recorded
// once as audit.Login): the caller holds the user's token, which took
// every factor the user needed, and the password.
func (h *Handler) reauthenticate(w http.ResponseWriter, r *http.Request, q request) error {
	var req passwordRequest
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	if req.Password == "" {
		return &apperr.Error{Code: apperr.EInvalid, Message: "password is required"}
	}
	ctx, ip := r.Context(), h.clientIP(r)
	u, err := h.Users.AuthenticateStep(ctx, q.user.Username, req.Password, ip, identity.Reauthentication)
	switch {
	case errors.Is(err, identity.ErrInvalidCredentials):
		return errInvalidPassword
	case err != nil:
		return err
	case u.ID != q.user.ID:
		return errInvalidPassword
	}
	return nil
}

// factorJSON is one factor in GET /account/factors.
type factorJSON struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Confirmed bool      `json:"confirmed"`
	CreatedAt time.Time `json:"created_at"`
}

type factorsResponse struct {
	Factors           []factorJSON `json:"factors"`
	RecoveryCodesLeft int          `json:"recovery_codes_left"`
}

func (h *Handler) listFactors(w http.ResponseWriter, r *http.Request, q request) error {
	fs, left, err := h.Users.FactorSummary(r.Context(), q.user.ID)
	if err != nil {
		return err
	}
	out := factorsResponse{Factors: make([]factorJSON, 0, len(fs)), RecoveryCodesLeft: left}
	for _, f := range fs {
		out.Factors = append(out.Factors, factorJSON{ID: f.ID, Type: f.Kind, Confirmed: f.Confirmed(), CreatedAt: f.CreatedAt.UTC()})
	}
	httpjson.Write(w, http.StatusOK, out)
	return nil
}

type enrolmentResponse struct {
	ID         string `json:"id"`
	Secret     string `json:"secret"`
	OTPAuthURI string `json:"otpauth_uri"`
	QRPNG      string `json:"qr_png"`
}

func (h *Handler) enrolTOTP(w http.ResponseWriter, r *http.Request, q request) error {
	if err := h.reauthenticate(w, r, q); err != nil {
		return err
	}
	e, err := h.Users.BeginTOTP(r.Context(), q.user)
	if err != nil {
		return err
	}
	png, err := e.QRCode(QRSize)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/account/factors/"+e.FactorID)
	httpjson.Write(w, http.StatusCreated, enrolmentResponse{ID: e.FactorID, Secret: e.Secret, OTPAuthURI: e.URI,
		QRPNG: "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)})
	return nil
}

type confirmRequest struct {
	Code string `json:"code"`
}

type recoveryCodesResponse struct {
	RecoveryCodes []string `json:"recovery_codes"`
}

func (h *Handler) confirmTOTP(w http.ResponseWriter, r *http.Request, q request) error {
	var req confirmRequest
	if err := h.decode(w, r, &req); err != nil {
		return err
	}
	if req.Code == "" {
		return &apperr.Error{Code: apperr.EInvalid, Message: "code is required"}
	}
	codes, err := h.Users.ConfirmTOTP(r.Context(), q.user, r.PathValue("id"), req.Code, h.clientIP(r))
	if errors.Is(err, identity.ErrInvalidCode) {
		return errInvalidCode
	}
	if err != nil {
		return err
	}
	if codes == nil {
		codes = []string{}
	}
	httpjson.Write(w, http.StatusOK, recoveryCodesResponse{RecoveryCodes: codes})
	return nil
}

func (h *Handler) removeFactor(w http.ResponseWriter, r *http.Request, q request) error {
	if err := h.reauthenticate(w, r, q); err != nil {
		return err
	}
	if err := h.Users.RemoveFactor(r.Context(), q.user, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) newRecoveryCodes(w http.ResponseWriter, r *http.Request, q request) error {
	ctx := r.Context()
	f, err := h.Users.ConfirmedFactor(ctx, q.user.ID)
	if err != nil {
		return err
	}
	if f == nil {
		return errNoFactor
	}
	if err := h.reauthenticate(w, r, q); err != nil {
		return err
	}
	codes, err := h.Users.NewRecoveryCodes(ctx, q.user)
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, recoveryCodesResponse{RecoveryCodes: codes})
	return nil
}
