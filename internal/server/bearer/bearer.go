// Package bearer checks the access tokens presented to the APIs this
// authorization server serves itself (the admin API, the account API):
// the Authorization header (RFC 6750 §2.1 Bearer, RFC 9449 §7 DPoP), the
// token's signature, expiry and type through fosite's introspection,
// the revocation list, and the DPoP binding of a bound token. Refusals are
// written as the JSON errors of package httpjson with the
// WWW-Authenticate challenge of the scheme the request used.
package bearer

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/ory/fosite"

	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/httpjson"
	"github.com/portcullis-auth/portcullis/oauth"
	"github.com/portcullis-auth/portcullis/oauth/dpop"
)

// Revocations is the revocation list a Guard consults
// (revocation.List): Sync brings it up to date, Revoked asks about one
// grant.
type Revocations interface {
	Sync(ctx context.Context) error
	Revoked(ctx context.Context, grantID string) (bool, error)
}

// Guard verifies access tokens for one API. Provider and Realm are
// required; the zero value of every other field means what its comment
// says.
type Guard struct {
	// Realm is the realm of the API's challenges (RFC 6750 §3).
	Realm    string
	Provider fosite.OAuth2Provider
	// Revocations, when set, is brought up to date once a token has
	// verified and asked again about the token's grant: a token revoked
	// on another replica is refused at once, not within the sync
	// interval. A token that does not verify costs no database read.
	Revocations Revocations
	// DPoP, when set, accepts DPoP-bound tokens with "Authorization:
	// DPoP" and a proof (RFC 9449 §7) whose htu is ExternalURL plus the
	// request's path, or without ExternalURL the URL the request names
	// (its Host header). A bound token is never accepted as a Bearer
	// token, whether or not DPoP is set.
	DPoP *dpop.Verifier
	// ExternalURL is the listener's base URL as clients reach it, e.g.
	// behind a TLS-terminating proxy; empty means each request's own.
	ExternalURL string
	// Name names the API in log lines ("admin API").
	Name   string
	Logger *slog.Logger
}

// Token is an access token that verified.
type Token struct {
	// Value is the token as presented.
	Value string
	// Scheme is the authentication scheme it came with: "Bearer" or
	// dpop.Scheme.
	Scheme string
	// Request is what fosite's introspection returned: the grant, its
	// client and session.
	Request fosite.AccessRequester
}

// Verify checks r's access token: present (else 401 with message missing
// and a challenge naming every accepted scheme), valid, unexpired and
// unrevoked (else 401 invalid_token), an access token (refresh tokens are
// refused), granted every one of scopes (else 403 insufficient_scope).
// It does not check the DPoP binding: call Bind last, once the request is
// otherwise accepted, so that a proof is spent only for a request that
// will be served. On a refusal it writes the answer and returns nil.
func (g *Guard) Verify(w http.ResponseWriter, r *http.Request, missing string, scopes ...string) *Token {
	token, scheme, ok := credentials(r, g.DPoP != nil)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+g.Realm+`"`)
		if g.DPoP != nil {
			w.Header().Add("WWW-Authenticate", `DPoP algs="`+g.algs()+`"`)
		}
		httpjson.WriteError(w, r, g.Logger, &apperr.Error{Code: apperr.EUnauthorized, Message: missing})
		return nil
	}
	ctx := r.Context()
	tokenType, ar, err := g.Provider.IntrospectToken(ctx, token, fosite.AccessToken, oauth.NewSession(), scopes...)
	if err != nil {
		if errors.Is(err, apperr.ErrUnavailable) {
			httpjson.WriteError(w, r, g.Logger, apperr.ErrUnavailable)
			return nil
		}
		if errors.Is(err, fosite.ErrInvalidScope) {
			s := strings.Join(scopes, " ")
			g.Forbid(w, r, scheme, `error="insufficient_scope", scope="`+s+`"`, "the access token lacks scope "+s)
			return nil
		}
		g.Unauthorized(w, r, scheme)
		return nil
	}
	// fosite also introspects refresh tokens; only access tokens are
	// bearer credentials.
	if tokenType != fosite.AccessToken {
		g.Unauthorized(w, r, scheme)
		return nil
	}
	if g.Revocations != nil {
		err := g.Revocations.Sync(ctx)
		revoked := false
		if err == nil {
			revoked, err = g.Revocations.Revoked(ctx, ar.GetID())
		}
		if err != nil {
			if g.Logger != nil {
				g.Logger.ErrorContext(ctx, g.Name+": reading revocations failed", "err", err.Error())
			}
			httpjson.WriteError(w, r, g.Logger, apperr.ErrUnavailable)
			return nil
		}
		if revoked {
			g.Unauthorized(w, r, scheme)
			return nil
		}
	}
	return &Token{Value: token, Scheme: scheme, Request: ar}
}

func (g *Guard) algs() string { return strings.Join(g.DPoP.Algorithms(), " ") }

// Challenge is the WWW-Authenticate challenge of a refusal in the scheme
// the request used (RFC 9449 §7.1, RFC 6750 §3), with params (none when
// empty).
func (g *Guard) Challenge(scheme, params string) string {
	if params != "" {
		params = ", " + params
	}
	if scheme == dpop.Scheme && g.DPoP != nil {
		return `DPoP realm="` + g.Realm + `"` + params + `, algs="` + g.algs() + `"`
	}
	return `Bearer realm="` + g.Realm + `"` + params
}

// Unauthorized refuses a token that is invalid, expired or revoked (401
// invalid_token).
func (g *Guard) Unauthorized(w http.ResponseWriter, r *http.Request, scheme string) {
	w.Header().Set("WWW-Authenticate", g.Challenge(scheme, `error="invalid_token"`))
	httpjson.WriteError(w, r, g.Logger, &apperr.Error{Code: apperr.EUnauthorized, Message: "the access token is invalid, expired or revoked"})
}

// Forbid refuses a valid token that may not do what the request asks
// (403) with the challenge params (an RFC 6750 §3.1 error) and the fixed
// message msg.
func (g *Guard) Forbid(w http.ResponseWriter, r *http.Request, scheme, params, msg string) {
	w.Header().Set("WWW-Authenticate", g.Challenge(scheme, params))
	httpjson.WriteError(w, r, g.Logger, &apperr.Error{Code: apperr.EForbidden, Message: msg})
}

// credentials returns the access token of r's Authorization header and
// its scheme: Bearer, or DPoP when withDPoP.
func credentials(r *http.Request, withDPoP bool) (token, scheme string, ok bool) {
	scheme, token, ok = strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	switch {
	case !ok || token == "":
		return "", "", false
	case strings.EqualFold(scheme, "Bearer"):
		return token, "Bearer", true
	case withDPoP && strings.EqualFold(scheme, dpop.Scheme):
		return token, dpop.Scheme, true
	}
	return "", "", false
}

// Bind enforces RFC 9449 §7 on t: a token bound to a key (cnf.jkt) only
// with the DPoP scheme and a proof by its key, which is then spent (a
// replay is refused); an unbound one only as Bearer. It writes the
// refusal and reports false.
func (g *Guard) Bind(w http.ResponseWriter, r *http.Request, t *Token) bool {
	jkt := oauth.BoundKey(t.Request.GetSession())
	if t.Scheme != dpop.Scheme {
		if jkt != "" {
			g.Unauthorized(w, r, t.Scheme)
			return false
		}
		return true
	}
	refuse := func(code, msg string) bool {
		w.Header().Set("WWW-Authenticate", `DPoP error="`+code+`", algs="`+g.algs()+`"`)
		httpjson.WriteError(w, r, g.Logger, &apperr.Error{Code: apperr.EUnauthorized, Message: msg})
		return false
	}
	if jkt == "" {
		return refuse("invalid_token", "the access token is not DPoP-bound")
	}
	raw, err := dpop.ProofFromHeader(r.Header)
	var proof *dpop.Proof
	if err == nil {
		// The path as the request names it: "%2F" is not "/".
		uri := strings.TrimSuffix(g.ExternalURL, "/") + r.URL.EscapedPath()
		if g.ExternalURL == "" {
			scheme := "http"
			if r.TLS != nil {
				scheme = "https"
			}
			uri = scheme + "://" + r.Host + r.URL.EscapedPath()
		}
		if _, uerr := dpop.NormalizeURI(uri); uerr != nil {
			// A Host header that makes no URI (none, in HTTP/1.0): no
			// proof can name this request. A refused proof, not a replay
			// store failure, which any other error of Check is taken for.
			return refuse(dpop.CodeInvalidProof, "DPoP proof htu does not match the request")
		}
		proof, err = g.DPoP.Check(raw, dpop.Request{Method: r.Method, URI: uri, AccessToken: t.Value})
	}
	if err == nil && subtle.ConstantTimeCompare([]byte(proof.JKT), []byte(jkt)) != 1 {
		// RFC 9449 §7.1's example: a proof by another key than the
		// token's is an invalid token, not a bad proof.
		return refuse("invalid_token", "the DPoP proof is not signed by the key the token is bound to")
	}
	if err == nil {
		// Spent only once everything else holds.
		err = g.DPoP.Spend(r.Context(), proof)
	}
	if e, ok := errors.AsType[*dpop.Error](err); ok {
		if e.Code == dpop.CodeUseNonce && g.DPoP.Nonces() != nil {
			w.Header().Set(dpop.NonceHeader, g.DPoP.Nonces().Current())
		}
		return refuse(e.Code, e.Description)
	}
	if err != nil {
		if g.Logger != nil {
			g.Logger.ErrorContext(r.Context(), g.Name+": DPoP replay check failed", "err", err.Error())
		}
		httpjson.WriteError(w, r, g.Logger, apperr.ErrUnavailable)
		return false
	}
	return true
}
