package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/oauth/jws"
)

// HTTP names of RFC 9449.
const (
	// HeaderName is the request header that carries a proof (§4.1).
	HeaderName = "DPoP"
	// NonceHeader is the response header that carries a server nonce (§8).
	NonceHeader = "DPoP-Nonce"
	// Scheme is the authorization scheme of a DPoP-bound access token
	// (§7.1), and the token_type the token endpoint answers with (§5).
	Scheme = "DPoP"
	// ProofType is the typ header of a proof (§4.2).
	ProofType = "dpop+jwt"
)

// MaxProofSize is the longest proof Parse reads (8 KiB: a proof with an
// RSA 4096 key is about 1.5 KiB).
const MaxProofSize = 8 << 10

// maxClaimLength bounds jti, htm, htu, nonce and ath.
const maxClaimLength = 2048

// minRSABits is the smallest RSA modulus accepted: NIST's floor (RFC 8725
// §3.5 leaves it to the application). The largest is go-jose's
// MaxRSAModulusBits (4096), which refuses a bigger jwk while parsing, so
// that an anonymous request cannot make the server check a signature by
// a huge key.
const minRSABits = 2048

// SupportedAlgorithms are the JWS algorithms a proof may be signed with,
// and the default allow-list of a [Verifier]: asymmetric only (§4.2: never
// none, never a MAC).
var SupportedAlgorithms = []string{"ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512", "EdDSA"}

// Proof is a parsed DPoP proof whose signature verified with its own key.
type Proof struct {
	// Key is the public key of the jwk header.
	Key jose.JSONWebKey
	// JKT is the base64url SHA-256 JWK thumbprint of Key (RFC 7638), the
	// value of cnf.jkt in tokens bound to it (RFC 9449 §6.1).
	JKT string
	// Algorithm is the header's alg.
	Algorithm string
	// ID is the jti claim.
	ID string
	// Method is the htm claim, URI the htu claim.
	Method, URI string
	// IssuedAt is the iat claim (whole seconds).
	IssuedAt time.Time
	// AccessTokenHash is the ath claim; empty when absent.
	AccessTokenHash string
	// Nonce is the nonce claim; empty when absent.
	Nonce string
}

// Error is a proof that must be refused. Code is the OAuth error code to
// answer with: [CodeInvalidProof], or [CodeUseNonce] when the proof lacks
// a fresh server nonce (the answer then carries a new one in
// DPoP-Nonce). Description is fixed text, safe to send: it never contains
// any part of the request.
type Error struct {
	Code        string
	Description string
	Err         error
}

// Error codes of RFC 9449 (§5, §7.1, §8, §9).
const (
	CodeInvalidProof = "invalid_dpop_proof"
	CodeUseNonce     = "use_dpop_nonce"
)

// Error implements error.
func (e *Error) Error() string {
	if e.Err == nil {
		return "dpop: " + e.Code + ": " + e.Description
	}
	return "dpop: " + e.Code + ": " + e.Description + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Sentinels wrapped by the [*Error] values of Parse and Verifier.Verify.
var (
	// ErrMissing: the request has no DPoP header.
	ErrMissing = errors.New("dpop: no proof")
	// ErrMultiple: the request has more than one DPoP header (§4.3 check 1).
	ErrMultiple = errors.New("dpop: more than one proof")
	// ErrMalformed: not a compact JWS of typ dpop+jwt with the required
	// claims of the right JSON types, or too large.
	ErrMalformed = errors.New("dpop: malformed proof")
	// ErrAlgorithm: alg not allowed, or not the algorithm of the key.
	ErrAlgorithm = errors.New("dpop: algorithm not allowed")
	// ErrKey: the jwk header is missing, private, symmetric or too weak.
	ErrKey = errors.New("dpop: unacceptable key")
	// ErrSignature: the signature does not verify with the jwk.
	ErrSignature = errors.New("dpop: invalid signature")
	// ErrMethod: htm is not the request's method.
	ErrMethod = errors.New("dpop: htm does not match")
	// ErrURI: htu is not the request's URI.
	ErrURI = errors.New("dpop: htu does not match")
	// ErrIssuedAt: iat is too old or too far in the future.
	ErrIssuedAt = errors.New("dpop: iat outside the acceptance window")
	// ErrAccessTokenHash: ath is missing or not the hash of the token.
	ErrAccessTokenHash = errors.New("dpop: ath does not match")
	// ErrNonce: the nonce is missing, stale or not the server's.
	ErrNonce = errors.New("dpop: nonce missing or stale")
	// ErrReplay: the proof was used before.
	ErrReplay = errors.New("dpop: proof replayed")
	// ErrKeyMismatch: the proof's key is not the one the token is bound to.
	ErrKeyMismatch = errors.New("dpop: key does not match the token")
)

// invalid wraps sentinel (and cause) into an invalid_dpop_proof error
// described by desc.
func invalid(sentinel error, desc string, cause error) *Error {
	err := sentinel
	if cause != nil {
		err = fmt.Errorf("%w: %w", sentinel, cause)
	}
	return &Error{Code: CodeInvalidProof, Description: desc, Err: err}
}

// ProofFromHeader returns the one DPoP proof of h: an error wrapping
// [ErrMissing] when there is none, [ErrMultiple] when there are several
// (RFC 9449 §4.3: a request with more than one is refused).
func ProofFromHeader(h http.Header) (string, error) {
	vals := h.Values(HeaderName)
	switch {
	case len(vals) == 0:
		return "", invalid(ErrMissing, "DPoP proof missing", nil)
	case len(vals) > 1:
		return "", invalid(ErrMultiple, "more than one DPoP proof", nil)
	}
	return vals[0], nil
}

// Parse parses proof and verifies its signature with the key of its jwk
// header: the checks of RFC 9449 §4.3 that need nothing but the proof
// (checks 2 to 7). algs is the allow-list (nil: SupportedAlgorithms).
// It does not check htm, htu, iat, ath, nonce or replay: Verifier.Verify
// does. Every error is an [*Error] with code invalid_dpop_proof.
func Parse(proof string, algs []string) (*Proof, error) {
	if len(proof) > MaxProofSize {
		return nil, invalid(ErrMalformed, "DPoP proof too large", nil)
	}
	allowed := allowList(algs)
	obj, hdr, err := jws.Parse(proof, allowed, ProofType)
	switch {
	case err == nil:
	case errors.Is(err, jws.ErrAlgorithm):
		return nil, invalid(ErrAlgorithm, "DPoP proof algorithm not allowed", err)
	case errors.Is(err, jws.ErrType):
		return nil, invalid(ErrMalformed, "DPoP proof typ must be dpop+jwt", err)
	default:
		return nil, invalid(ErrMalformed, "DPoP proof is not a well-formed JWS", err)
	}
	key := hdr.JSONWebKey
	if key == nil {
		return nil, invalid(ErrKey, "DPoP proof has no jwk header", nil)
	}
	if !key.IsPublic() || !key.Valid() {
		// A private key (d, p, q...) or a symmetric one (k) is never
		// acceptable: the proof would give away what it proves.
		return nil, invalid(ErrKey, "DPoP proof jwk must be a public key", nil)
	}
	if err := keyFits(key.Key, jose.SignatureAlgorithm(hdr.Algorithm)); err != nil {
		return nil, err
	}
	payload, err := obj.Verify(key.Key)
	if err != nil {
		return nil, invalid(ErrSignature, "DPoP proof signature invalid", err)
	}
	p, err := parseClaims(payload)
	if err != nil {
		return nil, err
	}
	tp, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, invalid(ErrKey, "DPoP proof jwk has no thumbprint", err)
	}
	p.Key = jose.JSONWebKey{Key: key.Key}
	p.JKT = base64.RawURLEncoding.EncodeToString(tp)
	p.Algorithm = hdr.Algorithm
	return p, nil
}

// allowList returns the jose algorithms of algs that are supported.
func allowList(algs []string) []jose.SignatureAlgorithm {
	if algs == nil {
		algs = SupportedAlgorithms
	}
	var out []jose.SignatureAlgorithm
	for _, a := range SupportedAlgorithms {
		if slices.Contains(algs, a) {
			out = append(out, jose.SignatureAlgorithm(a))
		}
	}
	return out
}

// keyFits checks that key is a key of alg (RFC 8725 §3.1: the key decides
// the algorithm, not the header) and strong enough.
func keyFits(key any, alg jose.SignatureAlgorithm) error {
	bad := invalid(ErrAlgorithm, "DPoP proof algorithm does not fit its key", nil)
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		want := map[elliptic.Curve]jose.SignatureAlgorithm{
			elliptic.P256(): jose.ES256, elliptic.P384(): jose.ES384, elliptic.P521(): jose.ES512,
		}[k.Curve]
		if want == "" || want != alg {
			return bad
		}
	case *rsa.PublicKey:
		switch alg {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		default:
			return bad
		}
		if k.N.BitLen() < minRSABits {
			return invalid(ErrKey, "DPoP proof RSA key too short", nil)
		}
	case ed25519.PublicKey:
		if alg != jose.EdDSA {
			return bad
		}
	default:
		return invalid(ErrKey, "DPoP proof key type not supported", nil)
	}
	return nil
}

// parseClaims reads the claims of a proof strictly: one JSON object
// without duplicate members; jti, htm and htu non-empty strings; iat a
// number; ath and nonce strings when present.
func parseClaims(payload []byte) (*Proof, error) {
	m, err := jws.DecodeObject(payload)
	if err != nil {
		return nil, invalid(ErrMalformed, "DPoP proof claims are not a JSON object", err)
	}
	p := &Proof{}
	for _, c := range []struct {
		name     string
		dst      *string
		required bool
	}{
		{"jti", &p.ID, true}, {"htm", &p.Method, true}, {"htu", &p.URI, true},
		{"ath", &p.AccessTokenHash, false}, {"nonce", &p.Nonce, false},
	} {
		raw, ok := m[c.name]
		if !ok {
			if c.required {
				return nil, invalid(ErrMalformed, "DPoP proof lacks a required claim (jti, htm, htu, iat)", nil)
			}
			continue
		}
		if json.Unmarshal(raw, c.dst) != nil || len(*c.dst) > maxClaimLength || (c.required && *c.dst == "") {
			return nil, invalid(ErrMalformed, "DPoP proof claim has the wrong type or length", nil)
		}
	}
	raw, ok := m["iat"]
	if !ok {
		return nil, invalid(ErrMalformed, "DPoP proof lacks a required claim (jti, htm, htu, iat)", nil)
	}
	var iat float64
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) || json.Unmarshal(raw, &iat) != nil ||
		math.IsNaN(iat) || iat < 0 || iat > 1<<40 {
		return nil, invalid(ErrMalformed, "DPoP proof iat must be a NumericDate", nil)
	}
	p.IssuedAt = time.Unix(int64(iat), 0)
	return p, nil
}

// AccessTokenHash returns the ath of token: the base64url SHA-256 of its
// ASCII (RFC 9449 §4.2).
func AccessTokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
