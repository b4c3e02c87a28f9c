package oauth

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/ory/fosite"
)

// errScopeNotGranted: a refresh request's scope parameter names a scope
// the grant does not hold (RFC 6749 §6, §5.2 invalid_scope).
var errScopeNotGranted = rfcError("invalid_scope", http.StatusBadRequest,
	"The requested scope exceeds the scope originally granted.")

// refreshGrantKey carries, through the context of a refresh request's
// NewAccessResponse, the scope of the grant being refreshed (see
// narrowRefreshScope).
type refreshGrantKey struct{}

// narrowRefreshScope implements RFC 6749 §6 for a refresh request, which
// fosite v0.49 ignores (it re-grants the original scope whatever the
// request): when the request has a scope parameter, every scope in it must
// have been granted (else invalid_scope), and the new access token gets
// exactly those; without one, the token keeps the original scope. The new
// refresh token always keeps the original scope, so that a later refresh
// may ask for it again: the returned context carries it to
// grantStore.CreateRefreshTokenSession. form is the request's form (fosite
// replaced the requester's requested scopes with the original request's).
func narrowRefreshScope(ctx context.Context, ar fosite.AccessRequester, form interface{ Get(string) string }) (context.Context, error) {
	requested := fosite.RemoveEmpty(strings.Split(form.Get("scope"), " "))
	if len(requested) == 0 {
		return ctx, nil
	}
	req, ok := ar.(*fosite.AccessRequest)
	if !ok {
		return ctx, errServer
	}
	granted := slices.Clone(req.GetGrantedScopes())
	narrowed := fosite.Arguments{}
	for _, s := range requested {
		if !slices.Contains(granted, s) {
			return ctx, errScopeNotGranted
		}
		if !slices.Contains(narrowed, s) {
			narrowed = append(narrowed, s)
		}
	}
	req.GrantedScope = narrowed
	return context.WithValue(ctx, refreshGrantKey{}, granted), nil
}

// CreateRefreshTokenSession stores a refresh token as the embedded
// TokenStore does, except that on a narrowed refresh (narrowRefreshScope)
// the token keeps the grant's original scope rather than the access
// token's narrowed one.
func (s grantStore) CreateRefreshTokenSession(ctx context.Context, signature, accessSignature string, req fosite.Requester) error {
	if granted, ok := ctx.Value(refreshGrantKey{}).(fosite.Arguments); ok {
		if r, ok := req.(*fosite.Request); ok {
			cp := *r
			cp.GrantedScope = slices.Clone(granted)
			req = &cp
		}
	}
	return s.TokenStore.CreateRefreshTokenSession(ctx, signature, accessSignature, req)
}

// omitEmptyScope removes an empty scope from a token response: RFC 6749
// §5.1 makes scope optional, and a token without scope is described by
// its absence, not by "scope": "" (RFC 6749 §3.3 requires at least one
// scope-token in a scope value). A non-empty scope is always included,
// which also covers §5.1's "REQUIRED if different from the requested
// scope".
func omitEmptyScope(resp fosite.AccessResponder) {
	if ar, ok := resp.(*fosite.AccessResponse); ok {
		if s, ok := ar.Extra["scope"].(string); ok && s == "" {
			delete(ar.Extra, "scope")
		}
	}
}
