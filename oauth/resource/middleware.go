package resource

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// claimsKey is the context key under which Middleware stores *Claims.
type claimsKey struct{}

// ClaimsFromContext returns the claims that [Middleware] verified for the
// current request. The caller may modify them; they are the request's own
// copy.
func ClaimsFromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}

// Middleware returns net/http middleware that authenticates requests with
// an RFC 6750 §2.1 bearer token ("Authorization: Bearer <token>", scheme
// case-insensitive; tokens in the query or body are not accepted) and
// passes verified claims to next via the request context
// ([ClaimsFromContext]).
//
// Responses it writes, all with a JSON body {"error","error_description"},
// Content-Type application/json and Cache-Control no-store:
//   - no Authorization header, or a non-Bearer scheme: 401 with
//     `WWW-Authenticate: Bearer realm="<Options.Realm>"` and no error code
//     (RFC 6750 §3.1); body error "unauthorized".
//   - several Authorization headers or an empty bearer token: 400
//     invalid_request.
//   - a token Verify rejects: 401 with
//     `WWW-Authenticate: Bearer error="invalid_token", error_description="..."`.
//   - keys unavailable (issuer never reachable): 503
//     temporarily_unavailable with Retry-After, so clients retry rather
//     than discard a token that may be good.
func Middleware(v *Verifier) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			vals := r.Header.Values("Authorization")
			if len(vals) > 1 {
				writeError(w, http.StatusBadRequest, `Bearer error="invalid_request"`,
					"invalid_request", "multiple Authorization headers")
				return
			}
			var token string
			if len(vals) == 1 {
				scheme, rest, _ := strings.Cut(vals[0], " ")
				if strings.EqualFold(scheme, "Bearer") {
					token = strings.TrimSpace(rest)
					if token == "" {
						writeError(w, http.StatusBadRequest, `Bearer error="invalid_request"`,
							"invalid_request", "empty bearer token")
						return
					}
				}
			}
			if token == "" {
				writeError(w, http.StatusUnauthorized, `Bearer realm="`+quoteSafe(v.opts.Realm)+`"`,
					"unauthorized", "missing bearer token")
				return
			}
			claims, err := v.Verify(r.Context(), token)
			if err != nil {
				e, ok := errors.AsType[*Error](err)
				if ok && e.Code == CodeTemporarilyUnavailable {
					w.Header().Set("Retry-After", "5")
					writeError(w, http.StatusServiceUnavailable, "", e.Code, e.Description)
					return
				}
				desc := "invalid token"
				if ok {
					desc = e.Description
				}
				writeError(w, http.StatusUnauthorized,
					`Bearer error="invalid_token", error_description="`+quoteSafe(desc)+`"`,
					CodeInvalidToken, desc)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, claims)))
		})
	}
}

// RequireScope returns middleware, to be placed after [Middleware], that
// lets a request through only if its token has every one of scopes.
// Otherwise it answers 403 with
// `WWW-Authenticate: Bearer error="insufficient_scope", scope="<scopes>"`
// (RFC 6750 §3.1) and a JSON body. Without claims in the context (Middleware
// missing) it fails closed with 401.
func RequireScope(scopes ...string) func(http.Handler) http.Handler {
	want := quoteSafe(strings.Join(scopes, " "))
	return require(func(c *Claims) bool {
		for _, s := range scopes {
			if !c.HasScope(s) {
				return false
			}
		}
		return true
	}, `Bearer error="insufficient_scope", scope="`+want+`"`, "token lacks required scope: "+want)
}

// RequireRole returns middleware, to be placed after [Middleware], that lets
// a request through only if its token carries every one of roles (the
// "roles" claim; client_credentials tokens have none). Otherwise it answers
// 403 with `WWW-Authenticate: Bearer error="insufficient_scope",
// error_description="..."` and the JSON error "insufficient_scope": a role
// is a privilege the token lacks, which is what RFC 6750 §3.1 names so.
// Without claims in the context it fails closed with 401.
func RequireRole(roles ...string) func(http.Handler) http.Handler {
	desc := quoteSafe("token lacks required role: " + strings.Join(roles, " "))
	return require(func(c *Claims) bool {
		for _, role := range roles {
			if !c.HasRole(role) {
				return false
			}
		}
		return true
	}, `Bearer error="insufficient_scope", error_description="`+desc+`"`, desc)
}

// userRequiredDescription is the fixed error_description of RequireUser.
const userRequiredDescription = "token does not identify a user"

// RequireUser returns middleware, to be placed after [Middleware], that lets
// a request through only if its token was issued for a user
// ([Claims.IsUser]): a client_credentials token, which carries no user, is
// refused. The answer is 403 with `WWW-Authenticate: Bearer
// error="insufficient_scope", error_description="token does not identify a
// user"` and the JSON error "insufficient_scope": such a token is valid
// (invalid_token, 401, would tell the client to get a new token of the same
// kind, which cannot help), it just lacks the privilege of acting for a user,
// which is what RFC 6750 §3.1 calls insufficient_scope. No scope attribute
// is sent, as no scope would grant it. Without claims in the context it
// fails closed with 401.
func RequireUser() func(http.Handler) http.Handler {
	return require((*Claims).IsUser,
		`Bearer error="insufficient_scope", error_description="`+userRequiredDescription+`"`,
		userRequiredDescription)
}

// require lets a request through when allowed(claims) holds, answers 403
// insufficient_scope with challenge otherwise, and fails closed with 401
// when Middleware put no claims in the context.
func require(allowed func(*Claims) bool, challenge, desc string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, ok := ClaimsFromContext(r.Context())
			if !ok {
				writeError(w, http.StatusUnauthorized, "Bearer", "unauthorized", "missing bearer token")
				return
			}
			if !allowed(c) {
				writeError(w, http.StatusForbidden, challenge, "insufficient_scope", desc)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// writeError writes a JSON error response, with a WWW-Authenticate
// challenge when challenge is not empty.
func writeError(w http.ResponseWriter, status int, challenge, code, desc string) {
	h := w.Header()
	if challenge != "" {
		h.Set("WWW-Authenticate", challenge)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}{code, desc})
}

// quoteSafe drops the characters RFC 6750 §3 does not allow in a
// quoted-string attribute value (controls, non-ASCII, '"' and '\').
func quoteSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
}
