package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/token/jwt"

	"github.com/portcullis-auth/portcullis/internal/apperr"
)

// RevocationChecker reports whether a grant was revoked
// (revocation.List).
type RevocationChecker interface {
	// Revoked reports whether the grant with the given ID was revoked;
	// an error (apperr.ErrUnavailable when its data may be stale) means
	// it cannot tell.
	Revoked(ctx context.Context, grantID string) (bool, error)
}

// grantClaim is the access-token claim naming the token's grant: the
// request ID fosite keeps across a refresh chain, under which revocations
// are recorded (Keycloak's access tokens carry their session the same
// way).
const grantClaim = "sid"

// errTokenInactive is how jwtIntrospector reports a token that is not
// active (expired, forged, revoked, of a deleted client): not a server
// error, so introspection answers {"active": false}.
var errTokenInactive = fosite.ErrInactiveToken

// jwtIntrospector introspects access tokens without reading them from
// storage: it verifies the JWT (signature by the key its kid names, exp
// without leeway, iat and nbf, typ at+jwt: jwtSigner.Decode), checks that
// its grant was not revoked (RevocationChecker, in memory) and loads its
// client, which must still exist. Tokens that are not JWTs (refresh
// tokens) are left to fosite's CoreValidator, which reads them from
// storage.
type jwtIntrospector struct {
	signer  *jwtSigner
	clients fosite.ClientManager
	revoked RevocationChecker
	scopes  fosite.ScopeStrategy
	cache   *verifiedTokens
}

var _ fosite.TokenIntrospector = (*jwtIntrospector)(nil)

// IntrospectToken implements fosite.TokenIntrospector.
func (v *jwtIntrospector) IntrospectToken(ctx context.Context, token string, _ fosite.TokenUse, ar fosite.AccessRequester, scopes []string) (fosite.TokenUse, error) {
	if strings.Count(token, ".") != 2 {
		return "", fosite.ErrUnknownRequest
	}
	req, err := v.requester(ctx, token)
	if err != nil {
		return "", err
	}
	for _, s := range scopes {
		if s != "" && !v.scopes(req.GetGrantedScopes(), s) {
			return fosite.AccessToken, fosite.ErrInvalidScope
		}
	}
	ar.Merge(req)
	return fosite.AccessToken, nil
}

// accessClaims are the claims of an access token this server issued that
// introspection needs.
type accessClaims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	ClientID  string   `json:"client_id"`
	Grant     string   `json:"sid"`
	JTI       string   `json:"jti"`
	Scope     string   `json:"scope"`
	Audience  []string `json:"aud"`
	Username  *string  `json:"preferred_username"`
	Roles     []string `json:"roles"`
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf"`
	Expires   int64    `json:"exp"`
	// Confirmation is cnf of a DPoP-bound token (RFC 9449 §6.1).
	Confirmation *struct {
		JKT string `json:"jkt"`
	} `json:"cnf"`
}

// requester rebuilds the token's request: the grant's ID, the client, the
// granted scope and audience and a session holding the claims, in the
// shape fosite's stored requests have.
func (v *jwtIntrospector) requester(ctx context.Context, token string) (*fosite.Request, error) {
	c, err := v.verify(ctx, token)
	if err != nil {
		return nil, err
	}
	revoked, err := v.revoked.Revoked(ctx, c.Grant)
	if err != nil {
		return nil, err
	}
	if revoked {
		return nil, errTokenInactive
	}
	client, err := v.clients.GetClient(ctx, c.ClientID)
	if errors.Is(err, apperr.ErrUnavailable) {
		return nil, err
	}
	if err != nil {
		return nil, errors.Join(errTokenInactive, err)
	}
	sess := NewSession()
	iat, nbf, exp := time.Unix(c.IssuedAt, 0).UTC(), time.Unix(c.NotBefore, 0).UTC(), time.Unix(c.Expires, 0).UTC()
	sess.Subject = c.Subject
	sess.JWTClaims.Subject = c.Subject
	sess.JWTClaims.Issuer = c.Issuer
	sess.JWTClaims.JTI = c.JTI
	sess.JWTClaims.IssuedAt, sess.JWTClaims.NotBefore, sess.JWTClaims.ExpiresAt = iat, nbf, exp
	sess.JWTClaims.Audience = slices.Clone(c.Audience)
	sess.JWTClaims.Extra["client_id"] = c.ClientID
	sess.JWTClaims.Extra[grantClaim] = c.Grant
	if c.Username != nil {
		sess.Username = *c.Username
		sess.JWTClaims.Extra["preferred_username"] = *c.Username
		roles := slices.Clone(c.Roles)
		if roles == nil {
			roles = []string{}
		}
		sess.JWTClaims.Extra["roles"] = roles
	}
	if c.Confirmation != nil && c.Confirmation.JKT != "" {
		sess.JWTClaims.Extra[cnfClaim] = map[string]any{"jkt": c.Confirmation.JKT}
	}
	sess.SetExpiresAt(fosite.AccessToken, exp)
	scope := fosite.Arguments(fosite.RemoveEmpty(strings.Split(c.Scope, " ")))
	return &fosite.Request{
		ID:                c.Grant,
		RequestedAt:       iat,
		Client:            client,
		RequestedScope:    scope,
		GrantedScope:      slices.Clone(scope),
		RequestedAudience: fosite.Arguments(slices.Clone(c.Audience)),
		GrantedAudience:   fosite.Arguments(slices.Clone(c.Audience)),
		Form:              map[string][]string{},
		Session:           sess,
	}, nil
}

// verify returns the claims of a live access token this server signed:
// from the cache of tokens verified before (checking their lifetime again
// at the current time), or by jwtSigner.Decode. Only tokens that passed
// verification are cached, so the cache cannot be filled by requests
// without a valid token.
func (v *jwtIntrospector) verify(ctx context.Context, token string) (*accessClaims, error) {
	key := sha256.Sum256([]byte(token))
	if c, ok := v.cache.get(key); ok {
		if err := c.checkLifetime(v.signer.clock()); err != nil {
			v.cache.remove(key)
			return nil, errors.Join(errTokenInactive, err)
		}
		return c, nil
	}
	t, err := v.signer.Decode(ctx, token)
	if err != nil {
		return nil, errors.Join(errTokenInactive, err)
	}
	c, err := parseAccessClaims(t.Claims)
	if err != nil || c.ClientID == "" || c.Grant == "" || c.Subject == "" {
		// A token of an older version has no sid: its revocation could
		// not be checked, so it is not reported active.
		return nil, errTokenInactive
	}
	v.cache.put(key, c)
	return c, nil
}

// checkLifetime is jwtSigner's lifetime check (checkLifetime) on parsed
// claims.
func (c *accessClaims) checkLifetime(now time.Time) error {
	switch {
	case !now.Before(time.Unix(c.Expires, 0)):
		return errors.New("token is expired")
	case time.Unix(c.IssuedAt, 0).After(now.Add(futureSkew)):
		return errors.New("token issued in the future")
	case time.Unix(c.NotBefore, 0).After(now.Add(futureSkew)):
		return errors.New("token not valid yet")
	}
	return nil
}

// verifiedTokens caches the claims of verified access tokens by the
// SHA-256 of the whole token, so a resource server introspecting the same
// token on every request costs one signature check. It is bounded: when
// full, an arbitrary eighth of it is dropped.
type verifiedTokens struct {
	mu  sync.RWMutex
	m   map[[sha256.Size]byte]*accessClaims
	max int
}

func newVerifiedTokens(max int) *verifiedTokens {
	return &verifiedTokens{m: make(map[[sha256.Size]byte]*accessClaims), max: max}
}

func (t *verifiedTokens) get(k [sha256.Size]byte) (*accessClaims, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	c, ok := t.m[k]
	return c, ok
}

func (t *verifiedTokens) put(k [sha256.Size]byte, c *accessClaims) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) >= t.max {
		drop := t.max/8 + 1
		for old := range t.m { // map order is random
			delete(t.m, old)
			if drop--; drop == 0 {
				break
			}
		}
	}
	t.m[k] = c
}

func (t *verifiedTokens) remove(k [sha256.Size]byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, k)
}

// parseAccessClaims reads the claims jwtSigner.Decode returned (numbers
// as json.Number; aud a string or an array).
func parseAccessClaims(m jwt.MapClaims) (*accessClaims, error) {
	b, err := json.Marshal(map[string]any(m))
	if err != nil {
		return nil, err
	}
	var raw struct {
		accessClaims
		Audience json.RawMessage `json:"aud"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	c := raw.accessClaims
	var one string
	switch {
	case len(raw.Audience) == 0:
	case json.Unmarshal(raw.Audience, &c.Audience) == nil:
	case json.Unmarshal(raw.Audience, &one) == nil:
		c.Audience = []string{one}
	default:
		return nil, errors.New("aud is neither a string nor an array of strings")
	}
	return &c, nil
}
