package oauth

import (
	"net/url"
	"slices"
	"strings"

	"github.com/ory/fosite"
)

// AudiencePolicy decides the aud claim of access tokens. RFC 9068 §2.2
// makes aud REQUIRED, so a token never carries an empty one.
//
// The aud of a password or client_credentials token is:
//
//   - the audiences requested with the audience parameter (space-separated,
//     as fosite reads it) and the RFC 8707 resource parameter (which may be
//     repeated), together, when any is given; each must be allowed for the
//     client, or the request fails with invalid_target (RFC 8707 §2);
//   - otherwise every audience registered on the client, plus the audience
//     of each granted scope listed in ScopeAudiences;
//   - and when that is still empty, Default.
//
// An audience is allowed for a client when it is registered on the client
// or belongs (through ScopeAudiences) to a scope the client is registered
// for. A refreshed token keeps the aud of its grant, which must still be
// allowed (or be Default); a resource or audience parameter on a refresh
// request must name audiences of the grant.
type AudiencePolicy struct {
	// Default is the aud of a token whose client has no audience
	// registered and requested none. Required: a zero policy refuses to
	// issue such tokens (server_error) rather than issue an empty aud.
	Default string
	// ScopeAudiences maps a scope to the audience of the resource server
	// the scope belongs to (the admin API's "admin" scope to its audience).
	ScopeAudiences map[string]string
	// RS256 are the audiences of resource servers that only verify RS256
	// (RFC 9068 §2.1): a token whose aud includes one is RS256-signed,
	// unless its client registered an algorithm.
	RS256 []string
}

// signingAlg returns the JWS algorithm of a token for client with aud: the
// client's access_token_signed_response_alg, else RS256 when aud includes
// one of p.RS256, else "" (the server's default).
func (p AudiencePolicy) signingAlg(client fosite.Client, aud []string) string {
	if c, ok := client.(*Client); ok && c.AccessTokenSigningAlg != "" {
		return c.AccessTokenSigningAlg
	}
	for _, a := range aud {
		if slices.Contains(p.RS256, a) {
			return "RS256"
		}
	}
	return ""
}

// allowed reports whether a client may ask for audience a.
func (p AudiencePolicy) allowed(c fosite.Client, a string) bool {
	if slices.Contains(c.GetAudience(), a) {
		return true
	}
	for _, s := range c.GetScopes() {
		if aud, ok := p.ScopeAudiences[s]; ok && aud == a {
			return true
		}
	}
	return false
}

// requestedResources returns the RFC 8707 resource parameters of a token
// request, or errInvalidTarget when one is not an absolute URI without a
// fragment (RFC 8707 §2).
func requestedResources(form url.Values) ([]string, error) {
	var out []string
	for _, r := range form["resource"] {
		u, err := url.Parse(r)
		if err != nil || !u.IsAbs() || u.Fragment != "" || strings.Contains(r, "#") || strings.ContainsAny(r, " \t\r\n") {
			return nil, errInvalidTarget
		}
		out = append(out, r)
	}
	return out, nil
}

// grantAudience grants ar its aud under the policy (see AudiencePolicy).
// On refresh, fosite has already re-granted the grant's audiences; they
// are checked again here, since fosite is told to accept any (it knows
// neither resource nor ScopeAudiences).
func (p AudiencePolicy) grantAudience(ar fosite.AccessRequester, refresh bool) error {
	client := ar.GetClient()
	resources, err := requestedResources(ar.GetRequestForm())
	if err != nil {
		return err
	}
	if refresh {
		granted := ar.GetGrantedAudience()
		for _, a := range granted {
			if a != p.Default && !p.allowed(client, a) {
				return errInvalidTarget
			}
		}
		// fosite replaces the requested audience of a refresh with the
		// grant's: read the request's own audience parameter.
		for _, a := range append(fosite.GetAudiences(ar.GetRequestForm()), resources...) {
			if !slices.Contains(granted, a) {
				return errInvalidTarget
			}
		}
		if len(granted) == 0 {
			// A grant from before aud was required.
			return p.grantDefault(ar)
		}
		return nil
	}
	requested := append(slices.Clone(ar.GetRequestedAudience()), resources...)
	for _, a := range requested {
		if !p.allowed(client, a) {
			return errInvalidTarget
		}
	}
	aud := requested
	if len(aud) == 0 {
		aud = slices.Clone(client.GetAudience())
		for _, s := range ar.GetGrantedScopes() {
			if a, ok := p.ScopeAudiences[s]; ok {
				aud = append(aud, a)
			}
		}
	}
	for _, a := range aud {
		if !slices.Contains(ar.GetGrantedAudience(), a) {
			ar.GrantAudience(a)
		}
	}
	if len(ar.GetGrantedAudience()) == 0 {
		return p.grantDefault(ar)
	}
	return nil
}

func (p AudiencePolicy) grantDefault(ar fosite.AccessRequester) error {
	if p.Default == "" {
		return errNoDefaultAudience
	}
	ar.GrantAudience(p.Default)
	return nil
}

// anyAudience is fosite's audience matching strategy: it accepts every
// requested audience, because TokenHandler checks them (AudiencePolicy),
// including the RFC 8707 resource parameter and the audiences of scopes,
// which fosite does not know.
func anyAudience([]string, []string) error { return nil }
