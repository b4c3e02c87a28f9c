package testkit

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"
)

// SignJWS signs header and claims by hand, as a compact JWS, with priv:
// ES256 for a P-256 key, EdDSA for Ed25519, PS256 for RSA, whatever the
// header says, so that tests can send tokens and DPoP proofs no
// well-behaved library would make (a private key in jwk, an alg that
// does not fit the key, duplicate members in raw JSON...). header and
// claims are JSON-encoded as they are, or used as raw JSON when they are
// json.RawMessage.
func SignJWS(tb testing.TB, priv crypto.Signer, header, claims any) string {
	tb.Helper()
	input := b64JSON(tb, header) + "." + b64JSON(tb, claims)
	var sig []byte
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		sum := sha256.Sum256([]byte(input))
		r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
		if err != nil {
			tb.Fatal(err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, []byte(input))
	case *rsa.PrivateKey:
		sum := sha256.Sum256([]byte(input))
		var err error
		if sig, err = rsa.SignPSS(rand.Reader, k, crypto.SHA256, sum[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
			tb.Fatal(err)
		}
	default:
		tb.Fatalf("SignJWS: key type %T", priv)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func b64JSON(tb testing.TB, v any) string {
	tb.Helper()
	b, ok := v.(json.RawMessage)
	if !ok {
		var err error
		if b, err = json.Marshal(v); err != nil {
			tb.Fatal(err)
		}
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
