package resource

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/oauth/jws"
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

// KeySet supplies the public keys that signed tokens. [RemoteKeySet]
// implements it.
//
// Key returns the public key with the given kid. When its JWK "alg" is set,
// the Verifier only accepts a token whose header alg equals that alg; when
// it is empty (RFC 7517 §4.4: alg is optional), the algorithm comes from
// the key type where the type fixes one (EC P-256 → ES256, P-384 → ES384,
// P-521 → ES512, Ed25519 → EdDSA), and otherwise (RSA) the token's alg must
// be one of Options.Algorithms that the key type can use (RFC 8725 §3.1).
// For a kid it does not know, Key must return an error wrapping
// [ErrKeyNotFound] (the token is then invalid); any other error means
// the keys are unavailable and the token can be neither accepted nor
// rejected. Key must be safe for concurrent use.
type KeySet interface {
	Key(ctx context.Context, kid string) (*jose.JSONWebKey, error)
}

var _ KeySet = (*RemoteKeySet)(nil)

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
	// Algorithms is the allow-list of JWS algorithms (RFC 8725 §3.1): a
	// token signed with any other is refused, whatever its key says. For a
	// key whose JWK has no alg and whose type does not fix one (RSA), it is
	// also the set of algorithms the key may be used with. Names other than
	// the supported asymmetric ones (ES256, ES384, ES512, RS256, RS384,
	// RS512, PS256, PS384, PS512, EdDSA) are ignored: "none" and HMAC are
	// never accepted. Default (nil or empty): all of those.
	Algorithms []string
	// DPoP configures how [Middleware] accepts DPoP-bound tokens (RFC
	// 9449). Default (the zero value): accepted, with the defaults its
	// fields document.
	DPoP DPoPOptions
}

// supportedAlgorithms are the asymmetric JWS algorithms a Verifier can
// accept: the default Options.Algorithms.
var supportedAlgorithms = []jose.SignatureAlgorithm{
	jose.ES256, jose.ES384, jose.ES512,
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.EdDSA,
}

// Verifier validates RFC 9068 access tokens. It is safe for concurrent use.
// Create it with [NewVerifier].
type Verifier struct {
	keys  KeySet
	opts  Options
	algs  []jose.SignatureAlgorithm
	cache *tokenCache // nil when disabled
	dpop  *dpopConfig // nil when Options.DPoP.Disabled
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
	v := &Verifier{keys: keys, opts: opts, algs: supportedAlgorithms}
	if len(opts.Algorithms) > 0 {
		v.algs = nil
		for _, a := range supportedAlgorithms {
			if slices.Contains(opts.Algorithms, string(a)) {
				v.algs = append(v.algs, a)
			}
		}
	}
	if opts.CacheSize > 0 {
		v.cache = newTokenCache(opts.CacheSize)
	}
	if !opts.DPoP.Disabled {
		v.dpop = newDPoPConfig(opts.DPoP, opts.Now)
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
	// Compact serialization only (no JSON serialization, no JWE, no
	// whitespace), the allow-list, one signature, no crit or b64, and typ
	// at+jwt (RFC 9068 §4: also application/at+jwt, case-insensitive).
	obj, hdr, err := jws.Parse(raw, v.algs, "at+jwt", "application/at+jwt")
	switch {
	case err == nil:
	case errors.Is(err, jws.ErrNotCompact):
		return nil, invalidf(ErrMalformed, "token is not a compact JWS")
	case errors.Is(err, jws.ErrAlgorithm) && len(v.algs) == 0: // Options.Algorithms named none we support
		return nil, invalidf(ErrAlgorithm, "no signature algorithm is allowed")
	case errors.Is(err, jws.ErrAlgorithm):
		return nil, invalid(ErrAlgorithm, err)
	case errors.Is(err, jws.ErrCritical):
		return nil, invalid(ErrCriticalHeader, nil)
	case errors.Is(err, jws.ErrType):
		return nil, invalid(ErrUnsupportedType, nil)
	default:
		return nil, invalid(ErrMalformed, err)
	}
	kid := hdr.KeyID
	if kid == "" || len(kid) > MaxKeyIDLength {
		return nil, invalidf(ErrMalformed, "token kid missing or too long")
	}

	key, err := v.keys.Key(ctx, kid)
	if err != nil {
		if errors.Is(err, ErrKeyNotFound) {
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
	if key == nil || (key.Use != "" && key.Use != "sig") || !key.IsPublic() ||
		!slices.Contains(keyAlgorithms(key), jose.SignatureAlgorithm(hdr.Algorithm)) {
		return nil, invalidf(ErrAlgorithm, "token algorithm does not match the signing key")
	}
	payload, err := obj.Verify(key.Key)
	if err != nil {
		return nil, invalid(ErrSignature, err)
	}
	return v.checkClaims(payload, now)
}

// keyAlgorithms returns the algorithms a token signed with key may use:
// the JWK's alg when it has one (and the key type fits it); without alg,
// the one its type fixes (EC P-256 → ES256, P-384 → ES384, P-521 → ES512,
// Ed25519 → EdDSA), or for RSA, which fixes none, RS256 through PS512. The
// Verifier's allow-list has already been applied to the token's alg.
func keyAlgorithms(key *jose.JSONWebKey) []jose.SignatureAlgorithm {
	var fit []jose.SignatureAlgorithm
	switch pub := key.Key.(type) {
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			fit = []jose.SignatureAlgorithm{jose.ES256}
		case elliptic.P384():
			fit = []jose.SignatureAlgorithm{jose.ES384}
		case elliptic.P521():
			fit = []jose.SignatureAlgorithm{jose.ES512}
		}
	case *rsa.PublicKey:
		fit = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512}
	case ed25519.PublicKey:
		fit = []jose.SignatureAlgorithm{jose.EdDSA}
	}
	if key.Algorithm == "" {
		return fit
	}
	if a := jose.SignatureAlgorithm(key.Algorithm); slices.Contains(fit, a) {
		return []jose.SignatureAlgorithm{a}
	}
	return nil
}

// maxNumericDate is 9999-12-31T23:59:59Z.
const maxNumericDate = 253402300799

// jsonKind returns the first byte of a JSON value ('"', '{', '[', 't',
// 'f', 'n', or '-'/a digit for a number).
func jsonKind(raw json.RawMessage) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

// claimTypeError is the invalid_token error for claim name (one of ours,
// so safe to show) having the wrong JSON type.
func claimTypeError(name string) *Error {
	return invalidf(ErrMalformed, "claim %s has the wrong JSON type", name)
}

// stringClaim returns the JSON string member name of m, and whether it is
// present. Any other JSON type, null included, is an error.
func stringClaim(m map[string]json.RawMessage, name string) (string, bool, error) {
	raw, ok := m[name]
	if !ok {
		return "", false, nil
	}
	var s string
	if jsonKind(raw) != '"' || json.Unmarshal(raw, &s) != nil {
		return "", true, claimTypeError(name)
	}
	return s, true, nil
}

// stringsClaim returns member name of m, which must be a JSON array of
// strings, or, when single is set, may also be one string (RFC 7519
// §4.1.3 "aud"). It returns nil when absent.
func stringsClaim(m map[string]json.RawMessage, name string, single bool) ([]string, error) {
	raw, ok := m[name]
	if !ok {
		return nil, nil
	}
	switch jsonKind(raw) {
	case '"':
		if single {
			s, _, err := stringClaim(m, name)
			return []string{s}, err
		}
	case '[':
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return nil, claimTypeError(name)
		}
		out := make([]string, len(elems))
		for i, e := range elems {
			if jsonKind(e) != '"' || json.Unmarshal(e, &out[i]) != nil {
				return nil, claimTypeError(name)
			}
		}
		return out, nil
	}
	return nil, claimTypeError(name)
}

// dateClaim returns member name of m, an RFC 7519 §2 NumericDate: a JSON
// number (never a string) of seconds since the epoch, between 0 and
// maxNumericDate. It returns the zero time and false when absent.
func dateClaim(m map[string]json.RawMessage, name string) (time.Time, bool, error) {
	raw, ok := m[name]
	if !ok {
		return time.Time{}, false, nil
	}
	var n json.Number
	if k := jsonKind(raw); (k != '-' && (k < '0' || k > '9')) || json.Unmarshal(raw, &n) != nil {
		return time.Time{}, true, claimTypeError(name)
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, true, invalidf(ErrMalformed, "claim %s is out of range", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

// tokenClaims are the claims read from a payload, before validation.
type tokenClaims struct {
	Claims
	hasExp, hasIat, hasNbf, hasAuthTime bool
}

// parseClaims decodes a token payload strictly: exact member names, no
// duplicates, and the registered claims this package reads with their
// JSON types (RFC 7519 §4.1, RFC 9068 §2.2): iss, sub, jti, client_id,
// scope, preferred_username and acr strings; aud a string or an array of
// strings; exp, iat, nbf and auth_time numbers; roles and amr arrays of
// strings; cnf an object whose jkt is a non-empty string (RFC 9449 §6.1).
// Other members are ignored, whatever their type.
func parseClaims(payload []byte) (*tokenClaims, error) {
	m, err := jws.DecodeObject(payload)
	if errors.Is(err, jws.ErrDuplicateMember) {
		return nil, &Error{Code: CodeInvalidToken, Description: "token claims have duplicate names",
			Err: fmt.Errorf("%w: %w", ErrMalformed, err)}
	}
	if err != nil {
		return nil, invalid(ErrMalformed, err)
	}
	var tc tokenClaims
	c := &tc.Claims
	for _, sc := range [...]struct {
		name string
		dst  *string
	}{
		{"iss", &c.Issuer}, {"sub", &c.Subject}, {"jti", &c.ID}, {"client_id", &c.ClientID},
		{"scope", &c.Scope}, {"preferred_username", &c.Username}, {"acr", &c.ACR},
	} {
		if *sc.dst, _, err = stringClaim(m, sc.name); err != nil {
			return nil, err
		}
	}
	if c.Audience, err = stringsClaim(m, "aud", true); err != nil {
		return nil, err
	}
	if c.Roles, err = stringsClaim(m, "roles", false); err != nil {
		return nil, err
	}
	if c.AMR, err = stringsClaim(m, "amr", false); err != nil {
		return nil, err
	}
	if c.ExpiresAt, tc.hasExp, err = dateClaim(m, "exp"); err != nil {
		return nil, err
	}
	if c.IssuedAt, tc.hasIat, err = dateClaim(m, "iat"); err != nil {
		return nil, err
	}
	if c.NotBefore, tc.hasNbf, err = dateClaim(m, "nbf"); err != nil {
		return nil, err
	}
	if c.AuthTime, tc.hasAuthTime, err = dateClaim(m, "auth_time"); err != nil {
		return nil, err
	}
	if c.JKT, err = confirmationClaim(m); err != nil {
		return nil, err
	}
	return &tc, nil
}

// confirmationClaim returns cnf.jkt of m (RFC 9449 §6.1): empty when there
// is no cnf. cnf, when present, must be a JSON object without duplicate
// member names (RFC 7800 §3.1) with a non-empty string jkt: a token bound
// only by a confirmation method this library cannot check (mTLS's
// x5t#S256, RFC 8705) is refused, never taken for a bearer token. Other
// members beside jkt are ignored.
func confirmationClaim(m map[string]json.RawMessage) (string, error) {
	raw, ok := m["cnf"]
	if !ok {
		return "", nil
	}
	if jsonKind(raw) != '{' {
		return "", claimTypeError("cnf")
	}
	cnf, err := jws.DecodeObject(raw)
	if err != nil {
		return "", invalidf(ErrMalformed, "claim cnf is not a well-formed object")
	}
	jkt, ok, err := stringClaim(cnf, "jkt")
	switch {
	case err != nil:
		return "", claimTypeError("cnf.jkt")
	case !ok:
		return "", invalidf(ErrMalformed, "token is bound by a confirmation method other than DPoP")
	case jkt == "":
		return "", invalidf(ErrMalformed, "claim cnf.jkt is empty")
	}
	return jkt, nil
}

// checkClaims decodes and validates the claims of a token whose signature
// verified.
func (v *Verifier) checkClaims(payload []byte, now time.Time) (*Claims, error) {
	tc, err := parseClaims(payload)
	if err != nil {
		return nil, err
	}
	c := &tc.Claims
	leeway := v.opts.Leeway
	switch {
	case v.opts.Issuer == "" || c.Issuer != v.opts.Issuer:
		return nil, invalid(ErrIssuer, nil)
	case v.opts.Audience == "" || !slices.Contains(c.Audience, v.opts.Audience):
		return nil, invalid(ErrAudience, nil)
	case !tc.hasExp:
		return nil, invalidf(ErrMissingClaim, "missing exp claim")
	case !now.Before(c.ExpiresAt.Add(leeway)):
		return nil, invalid(ErrExpired, nil)
	case tc.hasNbf && now.Add(leeway).Before(c.NotBefore):
		return nil, invalid(ErrNotYetValid, nil)
	case !tc.hasIat:
		return nil, invalidf(ErrMissingClaim, "missing iat claim")
	case c.IssuedAt.After(now.Add(leeway)):
		return nil, invalid(ErrIssuedInFuture, nil)
	case tc.hasAuthTime && c.AuthTime.After(now.Add(leeway)):
		// The user cannot have authenticated after now: the same check
		// as iat's, so that a future auth_time never passes a max_age.
		return nil, invalidf(ErrIssuedInFuture, "token auth_time is in the future")
	case c.Subject == "":
		return nil, invalidf(ErrMissingClaim, "missing sub claim")
	case c.ClientID == "":
		return nil, invalidf(ErrMissingClaim, "missing client_id claim")
	case c.ID == "":
		return nil, invalidf(ErrMissingClaim, "missing jti claim")
	}
	return c, nil
}
