package oauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite/token/jwt"

	"github.com/portcullis-auth/portcullis/keys"
	"github.com/portcullis-auth/portcullis/oauth/jws"
)

// maxTokenBytes bounds the size of a JWT this server will parse.
const maxTokenBytes = 8 << 10

// futureSkew is how far in the future iat and nbf may lie when this server
// checks its own tokens: replicas' clocks may differ by a little. exp gets
// no leeway at all: a token is dead from its exp on (RFC 7519 §4.1.4).
const futureSkew = 5 * time.Second

// jwtSigner implements fosite's jwt.Signer with the keys.Manager: tokens
// are signed by the active key through go-jose v4 with typ at+jwt and the
// key's kid, and verified by the key their kid names (any published,
// active or retired key). This fixes fosite#786: introspection keeps
// working for tokens signed before a rotation.
type jwtSigner struct {
	keys *keys.Manager
	// now defaults to time.Now.
	now func() time.Time
}

var _ jwt.Signer = (*jwtSigner)(nil)

// Generate implements jwt.Signer. The header argument is ignored: alg, kid
// and typ come from the signing key. An empty scope claim is left out.
//
// The key is the active one of the algorithm the token handler put into
// ctx (withSigningAlg: the client's access_token_signed_response_alg), or
// of the default algorithm.
func (s *jwtSigner) Generate(ctx context.Context, claims jwt.MapClaims, _ jwt.Mapper) (string, string, error) {
	if sc, ok := claims["scope"].(string); ok && sc == "" {
		// A token without scope has no scope claim (RFC 9068 §2.2.3, RFC
		// 6749 §3.3), where fosite would write "scope": "".
		delete(claims, "scope")
	}
	k, err := s.keys.SigningKey()
	if alg, ok := signingAlgFrom(ctx); ok {
		k, err = s.keys.SigningKeyFor(alg)
	}
	if err != nil {
		return "", "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", "", fmt.Errorf("encode claims: %w", err)
	}
	token, err := k.Sign(payload)
	if err != nil {
		return "", "", err
	}
	return token, token[strings.LastIndexByte(token, '.')+1:], nil
}

type signingAlgKey struct{}

// withSigningAlg asks Generate to sign with a key of alg (request data: the
// client's registered algorithm); "" keeps the default.
func withSigningAlg(ctx context.Context, alg string) context.Context {
	if alg == "" {
		return ctx
	}
	return context.WithValue(ctx, signingAlgKey{}, keys.Algorithm(alg))
}

func signingAlgFrom(ctx context.Context) (keys.Algorithm, bool) {
	alg, ok := ctx.Value(signingAlgKey{}).(keys.Algorithm)
	return alg, ok
}

var errBadToken = &jwt.ValidationError{Errors: jwt.ValidationErrorMalformed}

// Decode implements jwt.Signer: it parses the token with jws.Parse
// (compact serialization only, exactly as issued; an algorithm this server
// signs with; one signature; no crit; typ at+jwt, case-insensitive),
// verifies the signature with the key named by kid, using that key's
// algorithm, and checks the token's lifetime: exp, iat and nbf must be
// present as JSON integers, the token must not have expired (no leeway)
// and iat and nbf must not lie more than futureSkew ahead. fosite's
// callers (introspection, the admin API through IntrospectToken) run
// jwt.MapClaims.Valid on the result too, but that check silently passes on
// claims it cannot read, so the lifetime check lives here.
func (s *jwtSigner) Decode(_ context.Context, token string) (*jwt.Token, error) {
	if len(token) > maxTokenBytes {
		return nil, errBadToken
	}
	algs := []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA}
	obj, h, err := jws.Parse(token, algs, "at+jwt")
	if errors.Is(err, jws.ErrType) {
		return nil, &jwt.ValidationError{Errors: jwt.ValidationErrorClaimsInvalid}
	}
	if err != nil {
		return nil, errBadToken
	}
	k, ok := s.keys.Lookup(h.KeyID)
	if !ok || h.Algorithm != string(k.Algorithm) {
		return nil, &jwt.ValidationError{Errors: jwt.ValidationErrorSignatureInvalid}
	}
	payload, err := obj.Verify(k.Public.Key)
	if err != nil {
		return nil, &jwt.ValidationError{Errors: jwt.ValidationErrorSignatureInvalid}
	}
	claims, err := decodeClaims(payload)
	if err != nil {
		return nil, errBadToken
	}
	if err := checkLifetime(claims, s.clock()); err != nil {
		return nil, err
	}
	return &jwt.Token{
		Header: map[string]any{"alg": h.Algorithm, "kid": h.KeyID, "typ": "at+jwt"},
		Claims: claims,
	}, nil
}

func (s *jwtSigner) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

// decodeClaims decodes a JWT claims set into an initialised map, keeping
// numbers as json.Number. (jwt.MapClaims.UnmarshalJSON has a value
// receiver: unmarshalling into a nil MapClaims leaves it empty, and its
// Valid then checks nothing: fosite's own decoding accepted expired
// tokens that way.)
func decodeClaims(payload []byte) (jwt.MapClaims, error) {
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	claims := map[string]any{}
	if err := d.Decode(&claims); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, errors.New("trailing data after the claims")
	}
	return jwt.MapClaims(claims), nil
}

// numericDate reads a NumericDate claim: a JSON integer (RFC 7519 §2; this
// server never writes fractions).
func numericDate(c jwt.MapClaims, name string) (time.Time, bool) {
	n, ok := c[name].(json.Number)
	if !ok {
		return time.Time{}, false
	}
	v, err := n.Int64()
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(v, 0), true
}

// checkLifetime enforces exp, iat and nbf at now.
func checkLifetime(c jwt.MapClaims, now time.Time) error {
	exp, okExp := numericDate(c, "exp")
	iat, okIat := numericDate(c, "iat")
	nbf, okNbf := numericDate(c, "nbf")
	switch {
	case !okExp || !okIat || !okNbf:
		return &jwt.ValidationError{Errors: jwt.ValidationErrorClaimsInvalid, Inner: errors.New("exp, iat or nbf missing or not an integer")}
	case !now.Before(exp):
		return &jwt.ValidationError{Errors: jwt.ValidationErrorExpired, Inner: errors.New("token is expired")}
	case iat.After(now.Add(futureSkew)):
		return &jwt.ValidationError{Errors: jwt.ValidationErrorIssuedAt, Inner: errors.New("token issued in the future")}
	case nbf.After(now.Add(futureSkew)):
		return &jwt.ValidationError{Errors: jwt.ValidationErrorNotValidYet, Inner: errors.New("token not valid yet")}
	}
	return nil
}

// Validate implements jwt.Signer.
func (s *jwtSigner) Validate(ctx context.Context, token string) (string, error) {
	t, err := s.Decode(ctx, token)
	if err != nil {
		return "", err
	}
	if err := t.Claims.Valid(); err != nil {
		return "", err
	}
	return s.GetSignature(ctx, token)
}

// Hash implements jwt.Signer.
func (s *jwtSigner) Hash(_ context.Context, in []byte) ([]byte, error) {
	sum := sha256.Sum256(in)
	return sum[:], nil
}

// GetSignature implements jwt.Signer.
func (s *jwtSigner) GetSignature(_ context.Context, token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("token is not a compact JWS")
	}
	return parts[2], nil
}

// GetSigningMethodLength implements jwt.Signer.
func (s *jwtSigner) GetSigningMethodLength(context.Context) int { return sha256.Size }
