package main

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/portcullis-auth/portcullis/oauth/resource"
)

// newHandler returns userapi's routes; /users/me and /users/me/security are
// behind the verifier and only for tokens issued for a user
// (resource.RequireUser), /users/me/security also only for tokens that
// meet step (RFC 9470). A client_credentials token is refused by
// RequireUser first: no login of a user can help it.
func newHandler(v *resource.Verifier, step resource.StepUp) http.Handler {
	mux := http.NewServeMux()
	users := func(h http.Handler) http.Handler { return resource.Middleware(v)(resource.RequireUser()(h)) }
	mux.Handle("GET /users/me", users(http.HandlerFunc(usersMe)))
	mux.Handle("GET /users/me/security", users(v.RequireAuthentication(step)(http.HandlerFunc(usersMeSecurity))))
	mux.HandleFunc("GET /health/alive", alive)
	mux.HandleFunc("/users/me", methodNotAllowed)
	mux.HandleFunc("/users/me/security", methodNotAllowed)
	mux.HandleFunc("/health/alive", methodNotAllowed)
	mux.HandleFunc("/", notFound)
	return mux
}

// me is the /users/me response.
type me struct {
	ID        string   `json:"id"`
	Username  string   `json:"username"`
	Roles     []string `json:"roles"`
	Scope     string   `json:"scope"`
	ClientID  string   `json:"client_id"`
	ExpiresAt string   `json:"expires_at"`
}

func usersMe(w http.ResponseWriter, r *http.Request) {
	c, ok := resource.ClaimsFromContext(r.Context())
	// Both unreachable behind the middleware; fail closed.
	if !ok {
		writeJSON(w, http.StatusUnauthorized, errorBody{"unauthorized", "missing bearer token"})
		return
	}
	if !c.IsUser() {
		writeJSON(w, http.StatusForbidden, errorBody{"insufficient_scope", "token does not identify a user"})
		return
	}
	roles := c.Roles
	if roles == nil {
		roles = []string{}
	}
	writeJSON(w, http.StatusOK, me{
		ID:        c.Subject,
		Username:  c.Username,
		Roles:     roles,
		Scope:     c.Scope,
		ClientID:  c.ClientID,
		ExpiresAt: c.ExpiresAt.UTC().Format(time.RFC3339),
	})
}

// security is the /users/me/security response: the user and how they
// authenticated, named as the token's claims; auth_time is a NumericDate
// (seconds since the epoch), null when the token has none, and amr an
// empty array when it has none.
type security struct {
	Subject  string   `json:"sub"`
	Username string   `json:"preferred_username"`
	ACR      string   `json:"acr"`
	AMR      []string `json:"amr"`
	AuthTime *int64   `json:"auth_time"`
}

func usersMeSecurity(w http.ResponseWriter, r *http.Request) {
	c, ok := resource.ClaimsFromContext(r.Context())
	if !ok { // unreachable behind the middleware; fail closed
		writeJSON(w, http.StatusUnauthorized, errorBody{"unauthorized", "missing bearer token"})
		return
	}
	resp := security{Subject: c.Subject, Username: c.Username, ACR: c.ACR, AMR: c.AMR}
	if resp.AMR == nil {
		resp.AMR = []string{}
	}
	if !c.AuthTime.IsZero() {
		t := c.AuthTime.Unix()
		resp.AuthTime = &t
	}
	writeJSON(w, http.StatusOK, resp)
}

func alive(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", "GET, HEAD")
	writeJSON(w, http.StatusMethodNotAllowed, errorBody{"method_not_allowed", r.Method + " is not allowed on " + r.URL.Path})
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusNotFound, errorBody{"not_found", "no such resource"})
}

// errorBody is the JSON shape of every error.
type errorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
