package resource

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/keys"
)

// Limits and defaults of the [Verifier].
const (
	// MaxTokenSize is the longest raw token Verify parses (8 KiB); longer
	// tokens are rejected before any decoding.
	MaxTokenSize = 8 << 10
	// MaxKeyIDLength is the longest kid Verify looks up.
	MaxKeyIDLength = 256
	// DefaultLeeway is the default Options.Leeway.
	DefaultLeeway = 30 * time.Second
	// DefaultCacheSize is the default Options.CacheSize.
	DefaultCacheSize = 10000
)

// KeySet supplies the public keys that signed tokens. [keys.RemoteKeySet]
// implements it.
//
// Key returns the public key with the given kid, with its JWK "alg" set:
// the Verifier only accepts a token whose header alg equals that alg. For a
// kid it does not know, Key must return an error wrapping
// [keys.ErrKeyNotFound] (the token is then invalid); any other error means
// the keys are unavailable and the token can be neither accepted nor
// rejected. Key must be safe for concurrent use.
type KeySet interface {
	Key(ctx context.Context, kid string) (*jose.JSONWebKey, error)
}

var _ KeySet = (*keys.RemoteKeySet)(nil)

// Options configures a [Verifier].
type Options struct {
	// Issuer is the exact "iss" tokens must carry (required; with an empty
	// Issuer every token is rejected).
	Issuer string
	// Audience is the identifier of this resource server; "aud" must
	// contain it (required; with an empty Audience every token is rejected).
	Audience string
	// Leeway is the clock skew tolerated on exp, nbf and iat. Zero means
	// DefaultLeeway (30s); a negative value means no leeway.
	Leeway time.Duration
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// CacheSize bounds the number of verified tokens kept in memory, keyed
	// by the SHA-256 of the raw token, until each token's exp. Zero means
	// DefaultCacheSize (10000); a negative value disables the cache. When
	// the cache is full the oldest entry is evicted.
	CacheSize int
	// Realm is the realm of the WWW-Authenticate challenge sent by
	// [Middleware] when a request has no token. Default: Audience.
	Realm string
}

// Verifier validates RFC 9068 access tokens. It is safe for concurrent use.
// Create it with [NewVerifier].
type Verifier struct {
	keys  KeySet
	opts  Options
	algs  []jose.SignatureAlgorithm
	cache *tokenCache // nil when disabled
}

// NewVerifier returns a Verifier that checks tokens against keys and opts.
// It does no I/O.
func NewVerifier(keys KeySet, opts Options) *Verifier {
	switch {
	case opts.Leeway == 0:
		opts.Leeway = DefaultLeeway
	case opts.Leeway < 0:
		opts.Leeway = 0
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.Realm == "" {
		opts.Realm = opts.Audience
	}
	v := &Verifier{
		keys: keys,
		opts: opts,
		algs: []jose.SignatureAlgorithm{
			jose.ES256, jose.ES384, jose.ES512,
			jose.RS256, jose.RS384, jose.RS512,
			jose.PS256, jose.PS384, jose.PS512,
			jose.EdDSA,
		},
	}
	if opts.CacheSize > 0 {
		v.cache = newTokenCache(opts.CacheSize)
	}
	return v
}

// Verify checks rawToken (the bare token, without "Bearer ") per RFC 9068
// §4 and returns its claims. Every failure is an [*Error]: Code
// [CodeInvalidToken] for a token that must be refused, wrapping one of the
// Err* sentinels, or [CodeTemporarilyUnavailable] (wrapping
// [ErrKeysUnavailable]) when the KeySet could not be consulted.
//
// A token that verified before and has not expired is answered from the
// cache without signature checks; the returned Claims are always a copy the
// caller may modify.
func (v *Verifier) Verify(ctx context.Context, rawToken string) (*Claims, error) {
	if len(rawToken) > MaxTokenSize {
		return nil, invalid(ErrTooLarge, nil)
	}
	now := v.opts.Now()
	var sum [sha256.Size]byte
	if v.cache != nil {
		sum = sha256.Sum256([]byte(rawToken))
		if c, ok := v.cache.get(sum, now); ok {
			return c.clone(), nil
		}
	}
	c, err := v.verify(ctx, rawToken, now)
	if err != nil {
		return nil, err
	}
	if v.cache != nil {
		v.cache.put(sum, c, c.ExpiresAt.Add(v.opts.Leeway))
	}
	return c.clone(), nil
}

// verify does the uncached work of Verify.
func (v *Verifier) verify(ctx context.Context, raw string, now time.Time) (*Claims, error) {
	// Compact serialization only: three non-empty base64url segments, no
	// padding, no whitespace, no JSON serialization, no JWE (five parts).
	headerB64, ok := checkCompact(raw)
	if !ok {
		return nil, invalidf(ErrMalformed, "token is not a compact JWS")
	}
	jws, err := jose.ParseSignedCompact(raw, v.algs)
	if err != nil {
		if _, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return nil, invalid(ErrAlgorithm, err)
		}
		return nil, invalid(ErrMalformed, err)
	}
	if len(jws.Signatures) != 1 {
		return nil, invalidf(ErrMalformed, "token must have exactly one signature")
	}
	hdr := jws.Signatures[0].Protected

	if err := checkHeader(headerB64); err != nil {
		return nil, err
	}
	kid := hdr.KeyID
	if kid == "" || len(kid) > MaxKeyIDLength {
		return nil, invalidf(ErrMalformed, "token kid missing or too long")
	}

	key, err := v.keys.Key(ctx, kid)
	if err != nil {
		if errors.Is(err, keys.ErrKeyNotFound) {
			return nil, invalid(ErrUnknownKey, err)
		}
		return nil, &Error{
			Code:        CodeTemporarilyUnavailable,
			Description: ErrKeysUnavailable.Error(),
			Err:         fmt.Errorf("%w: %w", ErrKeysUnavailable, err),
		}
	}
	// RFC 8725 §3.1: the algorithm is a property of the key, never chosen
	// by the token.
	if key == nil || key.Algorithm == "" || hdr.Algorithm != key.Algorithm ||
		(key.Use != "" && key.Use != "sig") || !key.IsPublic() {
		return nil, invalidf(ErrAlgorithm, "token algorithm does not match the signing key")
	}
	payload, err := jws.Verify(key.Key)
	if err != nil {
		return nil, invalid(ErrSignature, err)
	}
	return v.checkClaims(payload, now)
}

// checkCompact reports whether raw is three non-empty base64url (unpadded)
// segments and returns the first (the protected header).
func checkCompact(raw string) (header string, ok bool) {
	dots := 0
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '.':
			dots++
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return "", false
		}
	}
	if dots != 2 {
		return "", false
	}
	header, rest, _ := strings.Cut(raw, ".")
	payload, sig, _ := strings.Cut(rest, ".")
	if header == "" || payload == "" || sig == "" {
		return "", false
	}
	return header, true
}

// checkHeader checks the JOSE header members that go-jose does not:
// typ (RFC 9068 §4: "at+jwt" or "application/at+jwt", case-insensitive) and
// the absence of crit and b64 (RFC 8725 §3.1 / RFC 7797: we understand no
// extensions).
func checkHeader(headerB64 string) error {
	b, err := base64.RawURLEncoding.DecodeString(headerB64)
	if err != nil {
		return invalid(ErrMalformed, err)
	}
	var h map[string]json.RawMessage
	if err := json.Unmarshal(b, &h); err != nil {
		return invalid(ErrMalformed, err)
	}
	if _, ok := h["crit"]; ok {
		return invalid(ErrCriticalHeader, nil)
	}
	if _, ok := h["b64"]; ok {
		return invalid(ErrCriticalHeader, nil)
	}
	var typ string
	if raw, ok := h["typ"]; !ok || json.Unmarshal(raw, &typ) != nil ||
		!(strings.EqualFold(typ, "at+jwt") || strings.EqualFold(typ, "application/at+jwt")) {
		return invalid(ErrUnsupportedType, nil)
	}
	return nil
}

// audience is "aud": an array of strings or a single string (RFC 7519 §4.1.3).
type audience []string

// UnmarshalJSON accepts a string or an array of strings.
func (a *audience) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*a = audience{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return fmt.Errorf("aud must be a string or an array of strings: %w", err)
	}
	*a = ss
	return nil
}

// numericDate is an RFC 7519 NumericDate.
type numericDate struct{ t time.Time }

// maxNumericDate is 9999-12-31T23:59:59Z.
const maxNumericDate = 253402300799

// UnmarshalJSON accepts a JSON number of seconds since the epoch.
func (d *numericDate) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("date must be a number: %w", err)
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return fmt.Errorf("date %q out of range", n)
	}
	sec, frac := math.Modf(f)
	d.t = time.Unix(int64(sec), int64(frac*1e9))
	return nil
}

// rawClaims is the JSON shape of the token's claims.
type rawClaims struct {
	Issuer    string       `json:"iss"`
	Subject   string       `json:"sub"`
	Audience  audience     `json:"aud"`
	ExpiresAt *numericDate `json:"exp"`
	IssuedAt  *numericDate `json:"iat"`
	NotBefore *numericDate `json:"nbf"`
	ID        string       `json:"jti"`
	ClientID  string       `json:"client_id"`
	Scope     string       `json:"scope"`
	Username  string       `json:"preferred_username"`
	Roles     []string     `json:"roles"`
}

// checkClaims decodes and validates the claims of a token whose signature
// verified.
func (v *Verifier) checkClaims(payload []byte, now time.Time) (*Claims, error) {
	var rc rawClaims
	if err := json.Unmarshal(payload, &rc); err != nil {
		return nil, invalid(ErrMalformed, err)
	}
	leeway := v.opts.Leeway
	switch {
	case v.opts.Issuer == "" || rc.Issuer != v.opts.Issuer:
		return nil, invalid(ErrIssuer, nil)
	case v.opts.Audience == "" || !slices.Contains(rc.Audience, v.opts.Audience):
		return nil, invalid(ErrAudience, nil)
	case rc.ExpiresAt == nil:
		return nil, invalidf(ErrMissingClaim, "missing exp claim")
	case !now.Before(rc.ExpiresAt.t.Add(leeway)):
		return nil, invalid(ErrExpired, nil)
	case rc.NotBefore != nil && now.Add(leeway).Before(rc.NotBefore.t):
		return nil, invalid(ErrNotYetValid, nil)
	case rc.IssuedAt == nil:
		return nil, invalidf(ErrMissingClaim, "missing iat claim")
	case rc.IssuedAt.t.After(now.Add(leeway)):
		return nil, invalid(ErrIssuedInFuture, nil)
	case rc.Subject == "":
		return nil, invalidf(ErrMissingClaim, "missing sub claim")
	case rc.ClientID == "":
		return nil, invalidf(ErrMissingClaim, "missing client_id claim")
	case rc.ID == "":
		return nil, invalidf(ErrMissingClaim, "missing jti claim")
	}
	c := &Claims{
		Issuer:    rc.Issuer,
		Subject:   rc.Subject,
		Audience:  rc.Audience,
		ExpiresAt: rc.ExpiresAt.t,
		IssuedAt:  rc.IssuedAt.t,
		ID:        rc.ID,
		ClientID:  rc.ClientID,
		Scope:     rc.Scope,
		Username:  rc.Username,
		Roles:     rc.Roles,
	}
	if rc.NotBefore != nil {
		c.NotBefore = rc.NotBefore.t
	}
	return c, nil
}
