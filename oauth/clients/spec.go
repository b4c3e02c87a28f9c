package clients

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/cors"
)

// Spec is the caller-settable part of a client (create and update).
type Spec struct {
	Name   string
	Public bool
	// AuthMethod is client_secret_basic or client_secret_post (only that
	// method is accepted), none (public), or empty: none when Public,
	// otherwise AuthSecretDefault (both secret methods accepted).
	AuthMethod string
	GrantTypes []string
	Scopes     []string
	Audience   []string
	// AccessTokenSigningAlg: ES256, RS256, or empty for the server's
	// default algorithm.
	AccessTokenSigningAlg string
	// CORSOrigins are browser origins allowed to call the token and
	// revocation endpoints as this client; normalised by cors.ParseOrigin,
	// "*" and "null" refused. Default none.
	CORSOrigins []string
	// IntrospectionAllowed lets the client call the introspection
	// endpoint; default false, refused for a public client.
	IntrospectionAllowed bool
	// DPoPBoundAccessTokens requires a DPoP proof with every token
	// request of the client (dpop_bound_access_tokens, RFC 9449 §5.2);
	// default false.
	DPoPBoundAccessTokens bool
	// MFARequired requires a second factor of every user logging in
	// through the client (Client.MFARequired).
	MFARequired bool
	// AcceptedAuthMethods, when not empty, states the methods as the
	// representation lists them (token_endpoint_auth_methods_accepted), so
	// that a representation sent back unchanged keeps the client as it
	// is: client_secret_basic and client_secret_post together mean
	// AuthSecretDefault; a single method must agree with AuthMethod (or
	// sets it when AuthMethod is empty).
	AcceptedAuthMethods []string
}

// maxCORSOrigins bounds a client's allowed_cors_origins.
const maxCORSOrigins = 100

var scopeTokenRE = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]{1,128}$`) // RFC 6749 §3.3 scope-token

// ValidScope reports whether s is a scope a client may be registered for:
// an RFC 6749 §3.3 scope-token (printable ASCII without space, '"' or
// '\\') of at most 128 characters.
func ValidScope(s string) bool { return scopeTokenRE.MatchString(s) }

// ValidAudience reports whether s is an audience value (RFC 9068 §2.2, RFC
// 8707) a client or the server may be configured with: 1 to 512 characters
// without whitespace.
func ValidAudience(s string) bool {
	return s != "" && len(s) <= 512 && !strings.ContainsAny(s, " \t\r\n")
}

// normalize validates spec and fills defaults, reporting every problem.
func (spec *Spec) normalize() error {
	var problems []string
	spec.Name = strings.TrimSpace(spec.Name)
	if spec.Name == "" || len(spec.Name) > 200 {
		problems = append(problems, "client_name is required (1 to 200 characters)")
	}
	if len(spec.AcceptedAuthMethods) > 0 {
		switch acc := uniq(spec.AcceptedAuthMethods); {
		case slices.Equal(acc, []string{AuthSecretBasic, AuthSecretPost}) &&
			(spec.AuthMethod == AuthSecretDefault || spec.AuthMethod == AuthSecretBasic):
			spec.AuthMethod = AuthSecretDefault
		case len(acc) == 1 && (spec.AuthMethod == "" || spec.AuthMethod == acc[0]):
			spec.AuthMethod = acc[0]
		default:
			problems = append(problems, "token_endpoint_auth_methods_accepted must be client_secret_basic and client_secret_post together, or token_endpoint_auth_method alone")
		}
		spec.AcceptedAuthMethods = nil
	}
	switch {
	case spec.AuthMethod == "" && spec.Public:
		spec.AuthMethod = AuthNone
	case spec.AuthMethod == AuthSecretDefault:
		// Registered without a method: client_secret_basic and
		// client_secret_post are both accepted.
	case spec.AuthMethod == AuthNone:
		spec.Public = true
	case spec.AuthMethod == AuthSecretBasic || spec.AuthMethod == AuthSecretPost:
		if spec.Public {
			problems = append(problems, "a public client must use token_endpoint_auth_method none")
		}
	default:
		problems = append(problems, fmt.Sprintf("token_endpoint_auth_method %q is not supported (client_secret_basic, client_secret_post or none)", spec.AuthMethod))
	}
	switch spec.AccessTokenSigningAlg {
	case "", "ES256", "RS256":
	default:
		problems = append(problems, fmt.Sprintf("access_token_signed_response_alg %q is not supported (ES256 or RS256)", spec.AccessTokenSigningAlg))
	}
	if origins, err := cors.ParseOrigins(spec.CORSOrigins); err != nil {
		problems = append(problems, "allowed_cors_origins: "+err.Error())
	} else if len(origins) > maxCORSOrigins {
		problems = append(problems, fmt.Sprintf("allowed_cors_origins: at most %d origins", maxCORSOrigins))
	} else {
		spec.CORSOrigins = origins
		slices.Sort(spec.CORSOrigins)
	}
	if spec.IntrospectionAllowed && spec.Public {
		// RFC 7662 §2.1: the caller must authenticate, which a public
		// client cannot.
		problems = append(problems, "a public client cannot be allowed to introspect tokens (introspection_allowed)")
	}
	if len(spec.GrantTypes) == 0 {
		spec.GrantTypes = []string{GrantPassword, GrantRefreshToken}
	}
	for _, g := range spec.GrantTypes {
		switch g {
		case GrantPassword, GrantRefreshToken, GrantAuthorizationCode:
		case GrantClientCredentials:
			if spec.Public {
				problems = append(problems, "a public client cannot use the client_credentials grant")
			}
		default:
			problems = append(problems, fmt.Sprintf("grant type %q is not supported (password, client_credentials, refresh_token, authorization_code)", g))
		}
	}
	for _, sc := range spec.Scopes {
		if !ValidScope(sc) {
			problems = append(problems, fmt.Sprintf("invalid scope %q", sc))
		}
	}
	for _, a := range spec.Audience {
		if !ValidAudience(a) {
			problems = append(problems, fmt.Sprintf("invalid audience %q", a))
		}
	}
	spec.GrantTypes, spec.Scopes, spec.Audience = uniq(spec.GrantTypes), uniq(spec.Scopes), uniq(spec.Audience)
	if len(problems) > 0 {
		return &apperr.Error{Code: apperr.EInvalid, Message: strings.Join(problems, "; ")}
	}
	return nil
}

func uniq(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	out = slices.Compact(out)
	if out == nil {
		out = []string{}
	}
	return out
}
