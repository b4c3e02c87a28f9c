package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Algorithm is a JWS signing algorithm Portcullis can sign access tokens with.
type Algorithm string

// Supported algorithms.
const (
	ES256 Algorithm = "ES256"
	RS256 Algorithm = "RS256"
	EdDSA Algorithm = "EdDSA"
)

// ParseAlgorithm validates an algorithm name.
func ParseAlgorithm(s string) (Algorithm, error) {
	switch a := Algorithm(s); a {
	case ES256, RS256, EdDSA:
		return a, nil
	}
	return "", fmt.Errorf("unsupported signing algorithm %q (want ES256, RS256 or EdDSA)", s)
}

// State is a key's place in its lifecycle (see the package documentation).
type State string

// Key states.
const (
	StatePublished State = "published"
	StateActive    State = "active"
	StateRetired   State = "retired"
	StateExpired   State = "expired"
)

// Record is a signing key as stored: the private key only ever sealed.
type Record struct {
	// ID is the JWK "kid": the RFC 7638 SHA-256 thumbprint of the public key.
	ID         string
	Algorithm  Algorithm
	Generation int64
	// PublicJWK is the public JWK as JSON.
	PublicJWK []byte
	// Sealed is the AES-256-GCM sealed PKCS #8 private key; WrapKeyID names
	// the secrets key that sealed it.
	Sealed    []byte
	WrapKeyID string
	CreatedAt time.Time
	// ActivatesAt is when the key starts signing.
	ActivatesAt time.Time
	// RetiredAt is when a newer key took over; zero while current.
	RetiredAt time.Time
}

// Key is a usable signing key: a Record with its private key opened.
type Key struct {
	Record
	Private crypto.Signer
	// Public is the public JWK published in the JWKS.
	Public jose.JSONWebKey
	signer jose.Signer
}

// StateAt returns the key's state at now given whether it is the current
// signer and how long retired keys stay published.
func (k *Record) StateAt(now time.Time, signer bool, retention time.Duration) State {
	retired := !k.RetiredAt.IsZero()
	switch {
	case retired && !now.Before(k.RetiredAt.Add(retention)):
		return StateExpired
	case now.Before(k.ActivatesAt) && retired && !k.RetiredAt.After(k.ActivatesAt):
		// Superseded before it ever signed (an immediate rotation during
		// its pre-publication): it never will.
		return StateRetired
	case now.Before(k.ActivatesAt):
		return StatePublished
	case signer:
		return StateActive
	default:
		return StateRetired
	}
}

// generate creates a new private key for alg.
func generate(alg Algorithm, rsaBits int, random io.Reader) (crypto.Signer, error) {
	switch alg {
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), random)
	case RS256:
		if rsaBits == 0 {
			rsaBits = 2048
		}
		if rsaBits < 2048 {
			return nil, fmt.Errorf("RSA keys must have at least 2048 bits, not %d", rsaBits)
		}
		return rsa.GenerateKey(random, rsaBits)
	case EdDSA:
		_, priv, err := ed25519.GenerateKey(random)
		return priv, err
	}
	return nil, fmt.Errorf("unsupported signing algorithm %q", alg)
}

// publicJWK returns the public JWK of priv with kid set to its thumbprint.
func publicJWK(priv crypto.Signer, alg Algorithm) (jose.JSONWebKey, error) {
	jwk := jose.JSONWebKey{Key: priv.Public(), Algorithm: string(alg), Use: "sig"}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("thumbprint: %w", err)
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	return jwk, nil
}

// checkAlgorithm verifies that priv is the kind of key alg needs.
func checkAlgorithm(priv crypto.Signer, alg Algorithm) error {
	ok := false
	switch p := priv.(type) {
	case *ecdsa.PrivateKey:
		ok = alg == ES256 && p.Curve == elliptic.P256()
	case *rsa.PrivateKey:
		ok = alg == RS256 && p.N.BitLen() >= 2048
	case ed25519.PrivateKey:
		ok = alg == EdDSA
	}
	if !ok {
		return fmt.Errorf("private key of type %T does not fit algorithm %s", priv, alg)
	}
	return nil
}

// newKey builds a Key from an opened private key.
func newKey(rec Record, der []byte) (*Key, error) {
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("key %s: parse private key: %w", rec.ID, err)
	}
	priv, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key %s: private key of type %T cannot sign", rec.ID, parsed)
	}
	if err := checkAlgorithm(priv, rec.Algorithm); err != nil {
		return nil, fmt.Errorf("key %s: %w", rec.ID, err)
	}
	pub, err := publicJWK(priv, rec.Algorithm)
	if err != nil {
		return nil, err
	}
	if pub.KeyID != rec.ID {
		return nil, fmt.Errorf("key %s: private key does not match its kid", rec.ID)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.SignatureAlgorithm(rec.Algorithm), Key: jose.JSONWebKey{Key: priv, KeyID: rec.ID}},
		(&jose.SignerOptions{}).WithType("at+jwt"),
	)
	if err != nil {
		return nil, fmt.Errorf("key %s: signer: %w", rec.ID, err)
	}
	return &Key{Record: rec, Private: priv, Public: pub, signer: signer}, nil
}

// Sign signs payload (the JSON claims) as a compact JWS with header
// {"alg": the key's algorithm, "kid": its ID, "typ": "at+jwt"}.
func (k *Key) Sign(payload []byte) (string, error) {
	obj, err := k.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign with key %s: %w", k.ID, err)
	}
	return obj.CompactSerialize()
}
