package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite/token/jwt"

	"github.com/portcullis-auth/portcullis/keys"
)

// maxTokenBytes bounds the size of a JWT this server will parse.
const maxTokenBytes = 8 << 10

// jwtSigner implements fosite's jwt.Signer with the keys.Manager: tokens
// are signed by the active key through go-jose v4 with typ at+jwt and the
// key's kid, and verified by the key their kid names (any published,
// active or retired key). This fixes fosite#786: introspection keeps
// working for tokens signed before a rotation.
type jwtSigner struct {
	keys *keys.Manager
}

var _ jwt.Signer = (*jwtSigner)(nil)

// Generate implements jwt.Signer. The header argument is ignored: alg, kid
// and typ come from the signing key.
func (s *jwtSigner) Generate(_ context.Context, claims jwt.MapClaims, _ jwt.Mapper) (string, string, error) {
	k, err := s.keys.SigningKey()
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

var errBadToken = &jwt.ValidationError{Errors: jwt.ValidationErrorMalformed}

// Decode implements jwt.Signer: it verifies the signature with the key
// named by kid, using that key's algorithm, and requires typ at+jwt.
func (s *jwtSigner) Decode(_ context.Context, token string) (*jwt.Token, error) {
	if len(token) > maxTokenBytes {
		return nil, errBadToken
	}
	algs := []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA}
	obj, err := jose.ParseSigned(token, algs)
	if err != nil || len(obj.Signatures) != 1 {
		return nil, errBadToken
	}
	h := obj.Signatures[0].Protected
	k, ok := s.keys.Lookup(h.KeyID)
	if !ok || h.Algorithm != string(k.Algorithm) {
		return nil, &jwt.ValidationError{Errors: jwt.ValidationErrorSignatureInvalid}
	}
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, "at+jwt") {
		return nil, &jwt.ValidationError{Errors: jwt.ValidationErrorClaimsInvalid}
	}
	payload, err := obj.Verify(k.Public.Key)
	if err != nil {
		return nil, &jwt.ValidationError{Errors: jwt.ValidationErrorSignatureInvalid}
	}
	var claims jwt.MapClaims
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, errBadToken
	}
	return &jwt.Token{
		Header: map[string]any{"alg": h.Algorithm, "kid": h.KeyID, "typ": "at+jwt"},
		Claims: claims,
	}, nil
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
