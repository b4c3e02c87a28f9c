package oauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	jose3 "github.com/go-jose/go-jose/v3"
	"github.com/google/uuid"
	"github.com/ory/fosite"

	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/cors"
)

// Grant types a client may be registered for.
const (
	GrantPassword          = "password"
	GrantClientCredentials = "client_credentials"
	GrantRefreshToken      = "refresh_token"
)

// Client authentication methods at the token endpoint (RFC 7591 names).
const (
	AuthSecretBasic = "client_secret_basic"
	AuthSecretPost  = "client_secret_post"
	AuthNone        = "none"
	// AuthSecretDefault is the AuthMethod of a confidential client
	// registered without a token_endpoint_auth_method: it accepts both
	// client_secret_basic and client_secret_post (see
	// Client.AcceptedAuthMethods), so that client libraries work at their
	// defaults. Its representation shows RFC 7591's default,
	// client_secret_basic, and lists both in
	// token_endpoint_auth_methods_accepted.
	AuthSecretDefault = ""
)

// Client is a registered OAuth2 client. It implements fosite.Client and
// fosite.OpenIDConnectClient; its token_endpoint_auth_method is enforced
// by NewProvider's own client authentication, not fosite's.
type Client struct {
	ID         string
	Name       string
	SecretHash []byte // SHA-256 of the secret; empty for public clients
	// AuthMethod is the registered token_endpoint_auth_method:
	// AuthSecretBasic or AuthSecretPost (only that one is accepted),
	// AuthNone (public), or AuthSecretDefault (confidential, registered
	// without one: both secret methods are accepted).
	AuthMethod string
	GrantTypes []string
	Scopes     []string
	Audience   []string
	CreatedAt  time.Time
	UpdatedAt  time.Time

	// IntrospectionAllowed lets the client call the introspection endpoint
	// (RFC 7662 §2.1) about any token; only a confidential client may hold
	// it. Default false.
	IntrospectionAllowed bool

	// AccessTokenSigningAlg is the JWS algorithm of the client's access
	// tokens (access_token_signed_response_alg): ES256 or RS256, for
	// resource servers that only speak RS256 (RFC 9068 §2.1); empty means
	// the server's default (keys.algorithm).
	AccessTokenSigningAlg string

	// CORSOrigins are the browser origins (scheme://host[:port], as
	// normalised by cors.ParseOrigin) that may read this client's token
	// and revocation responses: Keycloak's web origins, Hydra's
	// allowed_cors_origins. Default none.
	CORSOrigins []string
}

var (
	_ fosite.Client              = (*Client)(nil)
	_ fosite.OpenIDConnectClient = (*Client)(nil)
)

// GetID implements fosite.Client.
func (c *Client) GetID() string { return c.ID }

// GetHashedSecret implements fosite.Client.
func (c *Client) GetHashedSecret() []byte { return c.SecretHash }

// GetRedirectURIs implements fosite.Client; Portcullis has no redirect flows.
func (c *Client) GetRedirectURIs() []string { return nil }

// GetGrantTypes implements fosite.Client.
func (c *Client) GetGrantTypes() fosite.Arguments { return c.GrantTypes }

// GetResponseTypes implements fosite.Client.
func (c *Client) GetResponseTypes() fosite.Arguments { return nil }

// GetScopes implements fosite.Client.
func (c *Client) GetScopes() fosite.Arguments { return c.Scopes }

// IsPublic implements fosite.Client.
func (c *Client) IsPublic() bool { return c.AuthMethod == AuthNone }

// GetAudience implements fosite.Client.
func (c *Client) GetAudience() fosite.Arguments { return c.Audience }

// GetRequestURIs implements fosite.OpenIDConnectClient.
func (c *Client) GetRequestURIs() []string { return nil }

// GetJSONWebKeys implements fosite.OpenIDConnectClient.
func (c *Client) GetJSONWebKeys() *jose3.JSONWebKeySet { return nil }

// GetJSONWebKeysURI implements fosite.OpenIDConnectClient.
func (c *Client) GetJSONWebKeysURI() string { return "" }

// GetRequestObjectSigningAlgorithm implements fosite.OpenIDConnectClient.
func (c *Client) GetRequestObjectSigningAlgorithm() string { return "" }

// GetTokenEndpointAuthMethod implements fosite.OpenIDConnectClient.
func (c *Client) GetTokenEndpointAuthMethod() string { return c.AuthMethodName() }

// AuthMethodName returns the RFC 7591 token_endpoint_auth_method of c:
// AuthMethod, or client_secret_basic (RFC 7591 §2's default) for a client
// registered without one, which also accepts client_secret_post (see
// AcceptedAuthMethods).
func (c *Client) AuthMethodName() string {
	if c.AuthMethod == AuthSecretDefault {
		return AuthSecretBasic
	}
	return c.AuthMethod
}

// GetTokenEndpointAuthSigningAlgorithm implements fosite.OpenIDConnectClient.
func (c *Client) GetTokenEndpointAuthSigningAlgorithm() string { return "" }

// ClientStore persists clients. Implementations return errors matching
// apperr.ErrNotFound and apperr.ErrAlreadyExists.
type ClientStore interface {
	// CreateClient inserts c or fails with apperr.ErrAlreadyExists.
	CreateClient(ctx context.Context, c *Client) error
	// FindClient returns the client with the given ID or apperr.ErrNotFound.
	FindClient(ctx context.Context, id string) (*Client, error)
	// ListClients returns every client ordered by creation.
	ListClients(ctx context.Context) ([]*Client, error)
	// UpdateClient loads the client under a row lock, calls update and
	// stores the result in one transaction; an update error writes nothing.
	UpdateClient(ctx context.Context, id string, update func(*Client) error) (*Client, error)
	// DeleteClient removes a client and every token issued to it, or
	// returns apperr.ErrNotFound.
	DeleteClient(ctx context.Context, id string) error
}

// SecretHasher hashes client secrets with SHA-256 and compares them in
// constant time. It implements fosite.Hasher.
//
// Why not bcrypt or argon2: every client secret is generated by the server
// with 256 bits of entropy, so it cannot be guessed or found in a
// dictionary; a slow hash only protects low-entropy secrets and would cost
// ~290 ms of CPU per token request (fosite's bcrypt cost 12), an easy
// denial-of-service lever. A preimage attack on SHA-256 over a 256-bit
// random secret is infeasible, which is the property needed if the
// database leaks. Hydra makes the same trade-off with its fast PBKDF2
// default for generated secrets.
type SecretHasher struct{}

var _ fosite.Hasher = SecretHasher{}

// Hash implements fosite.Hasher.
func (SecretHasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	sum := sha256.Sum256(data)
	return sum[:], nil
}

// Compare implements fosite.Hasher. It returns an error when data does not
// hash to hash.
func (SecretHasher) Compare(_ context.Context, hash, data []byte) error {
	sum := sha256.Sum256(data)
	if len(hash) != len(sum) || subtle.ConstantTimeCompare(hash, sum[:]) != 1 {
		return errors.New("client secret mismatch")
	}
	return nil
}

// ClientSpec is the caller-settable part of a client (create and update).
type ClientSpec struct {
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
	// AcceptedAuthMethods, when not empty, states the methods as the
	// representation lists them (token_endpoint_auth_methods_accepted), so
	// that a representation sent back unchanged keeps the client as it
	// is: client_secret_basic and client_secret_post together mean
	// AuthSecretDefault; a single method must agree with AuthMethod (or
	// sets it when AuthMethod is empty).
	AcceptedAuthMethods []string
}

// spec returns the settable fields of c.
func (c *Client) spec() ClientSpec {
	return ClientSpec{
		Name: c.Name, Public: c.IsPublic(), AuthMethod: c.AuthMethod,
		GrantTypes: slices.Clone(c.GrantTypes), Scopes: slices.Clone(c.Scopes), Audience: slices.Clone(c.Audience),
		IntrospectionAllowed: c.IntrospectionAllowed, AccessTokenSigningAlg: c.AccessTokenSigningAlg,
		CORSOrigins: slices.Clone(c.CORSOrigins),
	}
}

// Clients administers OAuth2 clients.
type Clients struct {
	Store ClientStore
	// Rand defaults to crypto/rand; Now to time.Now.
	Rand io.Reader
	Now  func() time.Time
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

// now is truncated to what the databases store (microseconds), so a
// client reads back exactly as it was returned at creation.
func (s *Clients) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC().Truncate(time.Microsecond)
	}
	return time.Now().UTC().Truncate(time.Microsecond)
}

// normalize validates spec and fills defaults, reporting every problem.
func (spec *ClientSpec) normalize() error {
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
		case GrantPassword, GrantRefreshToken:
		case GrantClientCredentials:
			if spec.Public {
				problems = append(problems, "a public client cannot use the client_credentials grant")
			}
		default:
			problems = append(problems, fmt.Sprintf("grant type %q is not supported (password, client_credentials, refresh_token)", g))
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

// Create registers a client. For confidential clients it returns the
// generated secret, which is shown once and stored only hashed.
func (s *Clients) Create(ctx context.Context, spec ClientSpec) (*Client, string, error) {
	if err := spec.normalize(); err != nil {
		return nil, "", err
	}
	now := s.now()
	c := &Client{
		ID: uuid.NewString(), Name: spec.Name, AuthMethod: spec.AuthMethod,
		GrantTypes: spec.GrantTypes, Scopes: spec.Scopes, Audience: spec.Audience,
		CreatedAt: now, UpdatedAt: now, IntrospectionAllowed: spec.IntrospectionAllowed,
		AccessTokenSigningAlg: spec.AccessTokenSigningAlg, CORSOrigins: spec.CORSOrigins,
	}
	var secret string
	if !c.IsPublic() {
		var err error
		if secret, c.SecretHash, err = s.newSecret(); err != nil {
			return nil, "", err
		}
	}
	if err := s.Store.CreateClient(ctx, c); err != nil {
		return nil, "", fmt.Errorf("create client: %w", err)
	}
	return c, secret, nil
}

// newSecret returns 32 random bytes (256 bits) as base64url and their hash.
func (s *Clients) newSecret() (string, []byte, error) {
	r := s.Rand
	if r == nil {
		r = rand.Reader
	}
	b := make([]byte, 32)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", nil, fmt.Errorf("generate client secret: %w", err)
	}
	secret := base64.RawURLEncoding.EncodeToString(b)
	hash, _ := SecretHasher{}.Hash(context.Background(), []byte(secret))
	return secret, hash, nil
}

// Get returns a client or an apperr.ENotFound error.
func (s *Clients) Get(ctx context.Context, id string) (*Client, error) {
	c, err := s.Store.FindClient(ctx, id)
	if errors.Is(err, apperr.ErrNotFound) {
		return nil, &apperr.Error{Code: apperr.ENotFound, Message: "client not found"}
	}
	return c, err
}

// List returns every client.
func (s *Clients) List(ctx context.Context) ([]*Client, error) { return s.Store.ListClients(ctx) }

// Update replaces a client's settable fields (a field left zero in spec
// takes its default, as in Create). Switching between public and
// confidential is refused (delete and re-create instead), so a secret is
// never silently dropped or needed.
func (s *Clients) Update(ctx context.Context, id string, spec ClientSpec) (*Client, error) {
	if err := spec.normalize(); err != nil {
		return nil, err
	}
	return s.Patch(ctx, id, func(cur *ClientSpec) { *cur = spec })
}

// Patch changes some of a client's settable fields: patch receives the
// client's current settings and edits them; the result is validated as in
// Update and stored, all in one transaction, so concurrent changes of
// other fields are not lost. On a validation error nothing is stored.
func (s *Clients) Patch(ctx context.Context, id string, patch func(*ClientSpec)) (*Client, error) {
	c, err := s.Store.UpdateClient(ctx, id, func(c *Client) error {
		spec := c.spec()
		patch(&spec)
		if err := spec.normalize(); err != nil {
			return err
		}
		if c.IsPublic() != spec.Public {
			return &apperr.Error{Code: apperr.EInvalid, Message: "a client cannot change between public and confidential"}
		}
		c.Name, c.AuthMethod, c.GrantTypes, c.Scopes, c.Audience = spec.Name, spec.AuthMethod, spec.GrantTypes, spec.Scopes, spec.Audience
		c.IntrospectionAllowed = spec.IntrospectionAllowed
		c.AccessTokenSigningAlg = spec.AccessTokenSigningAlg
		c.CORSOrigins = spec.CORSOrigins
		c.UpdatedAt = s.now()
		return nil
	})
	if errors.Is(err, apperr.ErrNotFound) {
		return nil, &apperr.Error{Code: apperr.ENotFound, Message: "client not found"}
	}
	return c, err
}

// Delete removes a client and the tokens issued to it.
func (s *Clients) Delete(ctx context.Context, id string) error {
	err := s.Store.DeleteClient(ctx, id)
	if errors.Is(err, apperr.ErrNotFound) {
		return &apperr.Error{Code: apperr.ENotFound, Message: "client not found"}
	}
	return err
}

// RotateSecret replaces a confidential client's secret and returns the new
// one; the old secret stops working at once.
func (s *Clients) RotateSecret(ctx context.Context, id string) (*Client, string, error) {
	secret, hash, err := s.newSecret()
	if err != nil {
		return nil, "", err
	}
	c, err := s.Store.UpdateClient(ctx, id, func(c *Client) error {
		if c.IsPublic() {
			return &apperr.Error{Code: apperr.EInvalid, Message: "a public client has no secret"}
		}
		c.SecretHash, c.UpdatedAt = hash, s.now()
		return nil
	})
	if errors.Is(err, apperr.ErrNotFound) {
		return nil, "", &apperr.Error{Code: apperr.ENotFound, Message: "client not found"}
	}
	if err != nil {
		return nil, "", err
	}
	return c, secret, nil
}
