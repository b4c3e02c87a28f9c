package server

import (
	"log/slog"
	"net"
	"net/http"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/httpjson"
	"github.com/portcullis-auth/portcullis/internal/ratelimit"
)

// SignupHandler serves POST /signup: a JSON {"username","password"} body
// creates a user and answers 201 {"id","username"}; 409 when the name is
// taken; 400 with the policy's reasons when the input is rejected; 403 when
// sign-up is disabled.
type SignupHandler struct {
	Users    *identity.Service
	Enabled  bool
	MaxBytes int64
	// Limiter, when set, throttles sign-ups per client IP (each costs an
	// argon2id hash); ClientIP names the client (default: remote address).
	Limiter  *ratelimit.Keyed
	ClientIP func(*http.Request) string
	Logger   *slog.Logger
}

type signupRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type signupResponse struct {
	ID       string `json:"id"`
	Username string `json:"username"`
}

// ServeHTTP implements http.Handler.
func (h *SignupHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.Enabled {
		httpjson.WriteError(w, r, h.Logger, &apperr.Error{Code: apperr.EForbidden, Message: "sign-up is disabled on this server"})
		return
	}
	if h.Limiter != nil {
		ip, _, _ := net.SplitHostPort(r.RemoteAddr)
		if h.ClientIP != nil {
			ip = h.ClientIP(r)
		}
		if !h.Limiter.Allow(ip) {
			w.Header().Set("Retry-After", "60")
			httpjson.Write(w, http.StatusTooManyRequests, httpjson.ErrorBody{
				Error: "too_many_requests", ErrorDescription: "too many sign-ups from this address; retry later",
			})
			return
		}
	}
	var req signupRequest
	if err := httpjson.Decode(w, r, h.MaxBytes, &req); err != nil {
		httpjson.WriteError(w, r, h.Logger, err)
		return
	}
	u, err := h.Users.Signup(r.Context(), req.Username, req.Password, nil)
	if err != nil {
		httpjson.WriteError(w, r, h.Logger, identity.AsAppError(err))
		return
	}
	if h.Logger != nil {
		h.Logger.InfoContext(r.Context(), "user signed up", "user_id", u.ID)
	}
	w.Header().Set("Location", "/admin/users/"+u.ID)
	httpjson.Write(w, http.StatusCreated, signupResponse{ID: u.ID, Username: u.Username})
}
