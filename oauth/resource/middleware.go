package resource

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/portcullis-auth/portcullis/oauth/dpop"
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
// an access token in the Authorization header (the scheme is
// case-insensitive; tokens in the query or body are not accepted) and
// passes verified claims to next via the request context
// ([ClaimsFromContext]). It accepts two schemes:
//   - "Bearer <token>" (RFC 6750 §2.1), for a token not bound to a key.
//   - "DPoP <token>" (RFC 9449 §7), for a token bound to a key (cnf.jkt,
//     [Claims.JKT]), with exactly one DPoP header: a proof signed by that
//     key, for this request's method and URI (see
//     [DPoPOptions.ExternalURL]), with the token's hash (ath), fresh and
//     not seen before; unless [DPoPOptions].Disabled is set.
//
// Responses it writes, all with a JSON body {"error","error_description"},
// Content-Type application/json and Cache-Control no-store; descriptions
// are fixed texts that never echo the request:
//   - no Authorization header, or another scheme: 401 with two challenges
//     (two WWW-Authenticate header fields), `Bearer realm="<Options.Realm>"`
//     and `DPoP algs="<proof algorithms>"` (RFC 9449 §7.1; only the first
//     when DPoP is disabled), and no error code (RFC 6750 §3.1); body error
//     "unauthorized".
//   - several Authorization headers: 400 invalid_request; an empty token:
//     400 invalid_request with a challenge of the scheme used.
//   - Bearer, a token Verify rejects: 401 with
//     `WWW-Authenticate: Bearer error="invalid_token", error_description="..."`.
//   - Bearer, a DPoP-bound token: 401 invalid_token with the same Bearer
//     challenge and a DPoP challenge (RFC 9449 §7.2: a bound token is not
//     a bearer token).
//   - DPoP, no DPoP header or more than one (RFC 9449 §4.3 check 1), or a
//     proof that fails any check of RFC 9449 §4.3 (signature, algorithm,
//     key, typ, htm, htu, iat, ath, replay): 401 with
//     `WWW-Authenticate: DPoP error="invalid_dpop_proof", error_description="...", algs="..."`.
//   - DPoP, a token Verify rejects, a token that is not bound, or a proof
//     signed by a key other than the token's: 401 with
//     `WWW-Authenticate: DPoP error="invalid_token", error_description="...", algs="..."`
//     (RFC 9449 §7.1).
//   - DPoP with [DPoPOptions].Nonces, a proof without a fresh nonce: 401
//     with `WWW-Authenticate: DPoP error="use_dpop_nonce", ...` and the
//     nonce in the DPoP-Nonce header (RFC 9449 §9).
//   - keys unavailable (issuer never reachable) or the proof replay cache
//     failing: 503 temporarily_unavailable with Retry-After, so clients
//     retry rather than discard a token that may be good.
func Middleware(v *Verifier) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			vals := r.Header.Values("Authorization")
			if len(vals) > 1 {
				writeError(w, http.StatusBadRequest, "invalid_request", "multiple Authorization headers",
					`Bearer error="invalid_request"`)
				return
			}
			var scheme, token string
			if len(vals) == 1 {
				var rest string
				scheme, rest, _ = strings.Cut(vals[0], " ")
				token = strings.TrimSpace(rest)
			}
			switch {
			case strings.EqualFold(scheme, "Bearer") && token == "":
				writeError(w, http.StatusBadRequest, "invalid_request", "empty bearer token", `Bearer error="invalid_request"`)
			case strings.EqualFold(scheme, "Bearer"):
				v.serveBearer(w, r, next, token)
			case strings.EqualFold(scheme, dpop.Scheme) && v.dpop != nil && token == "":
				writeError(w, http.StatusBadRequest, "invalid_request", "empty DPoP token",
					v.dpop.challenge(`error="invalid_request"`))
			case strings.EqualFold(scheme, dpop.Scheme) && v.dpop != nil:
				v.serveDPoP(w, r, next, token)
			default:
				realm := `Bearer realm="` + quoteSafe(v.opts.Realm) + `"`
				if v.dpop == nil {
					writeError(w, http.StatusUnauthorized, "unauthorized", "missing bearer token", realm)
					return
				}
				writeError(w, http.StatusUnauthorized, "unauthorized", "missing access token", realm, v.dpop.challenge())
			}
		})
	}
}

// serveBearer authenticates a request carrying "Authorization: Bearer
// token" (RFC 6750) and passes it to next, or answers it.
func (v *Verifier) serveBearer(w http.ResponseWriter, r *http.Request, next http.Handler, token string) {
	bearer := func(params ...string) string { return "Bearer " + strings.Join(params, ", ") }
	claims, err := v.Verify(r.Context(), token)
	if err != nil {
		writeTokenError(w, err, bearer)
		return
	}
	if claims.JKT != "" {
		// RFC 9449 §7.2: a DPoP-bound token presented as a bearer token is
		// refused, or binding would protect nothing.
		challenges := []string{bearer(`error="invalid_token"`, `error_description="`+descBoundAsBearer+`"`)}
		if v.dpop != nil {
			challenges = append(challenges, v.dpop.challenge())
		}
		writeError(w, http.StatusUnauthorized, CodeInvalidToken, descBoundAsBearer, challenges...)
		return
	}
	next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, claims)))
}

// writeTokenError answers a Verify error: 503 temporarily_unavailable
// with Retry-After when the keys are unavailable, otherwise 401 with a
// challenge of the request's scheme, built by challenge from its params.
func writeTokenError(w http.ResponseWriter, err error, challenge func(params ...string) string) {
	e, ok := errors.AsType[*Error](err)
	if ok && e.Code == CodeTemporarilyUnavailable {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, e.Code, e.Description)
		return
	}
	desc := "invalid token"
	if ok {
		desc = e.Description
	}
	writeError(w, http.StatusUnauthorized, CodeInvalidToken, desc,
		challenge(`error="invalid_token"`, `error_description="`+quoteSafe(desc)+`"`))
}

// RequireScope returns middleware, to be placed after [Middleware], that
// lets a request through only if its token has every one of scopes.
// Otherwise it answers 403 with
// `WWW-Authenticate: Bearer error="insufficient_scope", scope="<scopes>"`
// (RFC 6750 §3.1; the scheme is DPoP for a DPoP-bound token, RFC 9449
// §7.1) and a JSON body. Without claims in the context (Middleware
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
	}, `error="insufficient_scope", scope="`+want+`"`, "token lacks required scope: "+want)
}

// RequireRole returns middleware, to be placed after [Middleware], that lets
// a request through only if its token carries every one of roles (the
// "roles" claim; client_credentials tokens have none). Otherwise it answers
// 403 with `WWW-Authenticate: Bearer error="insufficient_scope",
// error_description="..."` (DPoP for a DPoP-bound token) and the JSON
// error "insufficient_scope": a role is a privilege the token lacks, which
// is what RFC 6750 §3.1 names so. Without claims in the context it fails
// closed with 401.
func RequireRole(roles ...string) func(http.Handler) http.Handler {
	desc := quoteSafe("token lacks required role: " + strings.Join(roles, " "))
	return require(func(c *Claims) bool {
		for _, role := range roles {
			if !c.HasRole(role) {
				return false
			}
		}
		return true
	}, `error="insufficient_scope", error_description="`+desc+`"`, desc)
}

// userRequiredDescription is the fixed error_description of RequireUser.
const userRequiredDescription = "token does not identify a user"

// RequireUser returns middleware, to be placed after [Middleware], that lets
// a request through only if its token was issued for a user
// ([Claims.IsUser]): a client_credentials token, which carries no user, is
// refused. The answer is 403 with `WWW-Authenticate: Bearer
// error="insufficient_scope", error_description="token does not identify a
// user"` (DPoP for a DPoP-bound token) and the JSON error
// "insufficient_scope": such a token is valid (invalid_token, 401, would
// tell the client to get a new token of the same kind, which cannot help),
// it just lacks the privilege of acting for a user, which is what RFC 6750
// §3.1 calls insufficient_scope. No scope attribute is sent, as no scope
// would grant it. Without claims in the context it fails closed with 401.
func RequireUser() func(http.Handler) http.Handler {
	return require((*Claims).IsUser,
		`error="insufficient_scope", error_description="`+userRequiredDescription+`"`,
		userRequiredDescription)
}

// require lets a request through when allowed(claims) holds, answers 403
// insufficient_scope with a challenge of params otherwise, and fails
// closed with 401 when Middleware put no claims in the context. The
// challenge's scheme is the one the request used: Middleware accepts a
// DPoP-bound token (JKT) only under the DPoP scheme, and any other only as
// a bearer token.
func require(allowed func(*Claims) bool, params, desc string) func(http.Handler) http.Handler {
	bearer, dpopChallenge := "Bearer "+params, dpop.Scheme+" "+params
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, ok := ClaimsFromContext(r.Context())
			if !ok {
				writeError(w, http.StatusUnauthorized, "unauthorized", "missing bearer token", "Bearer")
				return
			}
			if !allowed(c) {
				challenge := bearer
				if c.JKT != "" {
					challenge = dpopChallenge
				}
				writeError(w, http.StatusForbidden, "insufficient_scope", desc, challenge)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// writeError writes a JSON error response, with a WWW-Authenticate header
// field per challenge.
func writeError(w http.ResponseWriter, status int, code, desc string, challenges ...string) {
	h := w.Header()
	for _, c := range challenges {
		h.Add("WWW-Authenticate", c)
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
