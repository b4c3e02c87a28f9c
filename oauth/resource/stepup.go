package resource

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-auth/portcullis/oauth/dpop"
)

// CodeInsufficientUserAuthentication is the error code of RFC 9470 §3: the
// token is valid, but the user's authentication behind it does not meet
// the route's requirement; HTTP 401.
const CodeInsufficientUserAuthentication = "insufficient_user_authentication"

// descStepUp is the fixed error_description of a step-up refusal (the
// text of RFC 9470 §3's example).
const descStepUp = "A different authentication level is required."

// StepUp is a route's requirement on how the user authenticated (RFC 9470
// §2), checked by [Verifier.RequireAuthentication]. Each field left at its
// zero value is not checked; the zero StepUp lets every token through.
type StepUp struct {
	// ACRValues, when not empty, are the authentication context classes
	// accepted: the token's acr ([Claims.ACR]) must be one of them (exact,
	// case-sensitive match); a token without acr fails. A refusal sends
	// them, space-separated in the order given, as acr_values (RFC 9470
	// §3), so a value must not contain a space; characters a quoted
	// string cannot carry (controls, non-ASCII, '"', '\') are dropped
	// from the challenge.
	ACRValues []string
	// AMR, when not empty, are authentication methods (RFC 8176) that
	// must all be among the token's amr ([Claims.AMR]). RFC 9470 defines
	// no challenge parameter for methods: a refusal names only
	// acr_values and max_age, so pair AMR with ACRValues that make the
	// authorization server use those methods.
	AMR []string
	// MaxAge, when positive, is how long ago the user may have
	// authenticated at most: auth_time ([Claims.AuthTime]) must be
	// present and no more than MaxAge before now, with the Verifier's
	// Options.Leeway added for clock skew between the authorization
	// server and this one, as for exp (RFC 9470 §2 says nothing on
	// skew; a resource server that wants none sets a negative
	// Options.Leeway). A refusal sends max_age, MaxAge in whole seconds
	// rounded down. Zero or negative: not checked.
	MaxAge time.Duration
}

// satisfiedBy reports whether c meets s at now, tolerating leeway on the
// age of the authentication.
func (s StepUp) satisfiedBy(c *Claims, now time.Time, leeway time.Duration) bool {
	if len(s.ACRValues) > 0 && (c.ACR == "" || !slices.Contains(s.ACRValues, c.ACR)) {
		return false
	}
	for _, m := range s.AMR {
		if !c.HasAMR(m) {
			return false
		}
	}
	if s.MaxAge > 0 && (c.AuthTime.IsZero() || now.Sub(c.AuthTime) > s.MaxAge+leeway) {
		return false
	}
	return true
}

// challengeParams returns the auth-params of a refusal of s: error,
// error_description, and acr_values and max_age when s sets them (RFC
// 9470 §3).
func (s StepUp) challengeParams() []string {
	params := []string{`error="` + CodeInsufficientUserAuthentication + `"`, `error_description="` + descStepUp + `"`}
	if len(s.ACRValues) > 0 {
		params = append(params, `acr_values="`+quoteSafe(strings.Join(s.ACRValues, " "))+`"`)
	}
	if s.MaxAge > 0 {
		params = append(params, "max_age="+strconv.FormatInt(int64(s.MaxAge/time.Second), 10))
	}
	return params
}

// RequireAuthentication returns middleware, to be placed after
// [Middleware] (of the same Verifier), that lets a request through only if
// its token meets step (RFC 9470): an acr among step.ACRValues, every
// method of step.AMR in amr, and an auth_time within step.MaxAge (plus
// Options.Leeway) of the Verifier's clock, each when set. Otherwise it
// answers 401 with the JSON error "insufficient_user_authentication"
// and the challenge of RFC 9470 §3, for example
//
//	WWW-Authenticate: Bearer error="insufficient_user_authentication",
//	  error_description="A different authentication level is required.",
//	  acr_values="2", max_age=300
//
// (one line; acr_values and max_age only when step sets them), telling
// the client to have the user authenticate again at the authorization
// server, asking for those acr_values and max_age. For a DPoP-bound token
// the scheme is DPoP and the challenge ends with the accepted proof
// algorithms (algs, RFC 9449 §7.1), as Middleware's own DPoP challenges
// do. A token that is not a user's (client_credentials) carries no acr
// or auth_time and so fails any requirement on them. Without claims in
// the context (Middleware missing) it fails closed with 401.
//
// It is a method of the Verifier, not a function like [RequireScope],
// because the check uses the Verifier's clock and leeway, and the DPoP
// challenge its algorithms.
func (v *Verifier) RequireAuthentication(step StepUp) func(http.Handler) http.Handler {
	step.ACRValues, step.AMR = slices.Clone(step.ACRValues), slices.Clone(step.AMR)
	params := step.challengeParams()
	bearer := "Bearer " + strings.Join(params, ", ")
	dpopChallenge := dpop.Scheme + " " + strings.Join(params, ", ")
	if v.dpop != nil {
		dpopChallenge = v.dpop.challenge(slices.Clone(params)...)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, ok := ClaimsFromContext(r.Context())
			if !ok {
				writeError(w, http.StatusUnauthorized, "unauthorized", "missing bearer token", "Bearer")
				return
			}
			if !step.satisfiedBy(c, v.opts.Now(), v.opts.Leeway) {
				challenge := bearer
				if c.JKT != "" {
					challenge = dpopChallenge
				}
				writeError(w, http.StatusUnauthorized, CodeInsufficientUserAuthentication, descStepUp, challenge)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
