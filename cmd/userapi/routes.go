package main

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/portcullis-auth/portcullis/oauth/resource"
)

// newHandler returns userapi's routes; /users/me is behind the verifier
// and only for tokens issued for a user (resource.RequireUser).
func newHandler(v *resource.Verifier) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /users/me", resource.Middleware(v)(resource.RequireUser()(http.HandlerFunc(usersMe))))
	mux.HandleFunc("GET /health/alive", alive)
	mux.HandleFunc("/users/me", methodNotAllowed)
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
