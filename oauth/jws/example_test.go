package jws_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/oauth/jws"
)

func ExampleParse() {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: priv},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "k1"))
	obj, _ := signer.Sign([]byte(`{"sub":"alice"}`))
	compact, _ := obj.CompactSerialize()
	flattened := obj.FullSerialize()

	// Parse, then pick the key by kid and check it fits the alg, then verify.
	parsed, hdr, err := jws.Parse(compact, []jose.SignatureAlgorithm{jose.ES256}, "at+jwt")
	if err != nil {
		fmt.Println(err)
		return
	}
	payload, err := parsed.Verify(&priv.PublicKey)
	fmt.Println(hdr.KeyID, hdr.Algorithm, string(payload), err)

	// The same signature in JSON serialization, and as a DPoP proof.
	_, _, err = jws.Parse(flattened, []jose.SignatureAlgorithm{jose.ES256}, "at+jwt")
	fmt.Println(errors.Is(err, jws.ErrNotCompact))
	_, _, err = jws.Parse(compact, []jose.SignatureAlgorithm{jose.ES256}, "dpop+jwt")
	fmt.Println(errors.Is(err, jws.ErrType))
	// Output:
	// k1 ES256 {"sub":"alice"} <nil>
	// true
	// true
}
