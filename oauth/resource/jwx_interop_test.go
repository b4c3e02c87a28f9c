package resource_test

import (
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	jwxjws "github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/oauth/dpop"
	"github.com/portcullis-auth/portcullis/oauth/resource"
)

// TestMiddlewareDPoPJWXProofs: proofs made by another implementation,
// github.com/lestrrat-go/jwx/v3 (jws.Sign with a jwk protected header,
// claims from its jwt builder), for tokens bound to the thumbprint jwx
// computes, are accepted.
func TestMiddlewareDPoPJWXProofs(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	mw := resource.Middleware(newDPoPVerifier(is, &fakeClock{t: testNow}, resource.DPoPOptions{}))(echoDPoP)
	for _, tt := range []struct {
		keyAlg jose.SignatureAlgorithm // testkit key type
		alg    jwa.SignatureAlgorithm
	}{
		{jose.ES256, jwa.ES256()},
		{jose.EdDSA, jwa.EdDSA()},
		{jose.RS256, jwa.PS256()},
		{jose.RS256, jwa.RS256()},
	} {
		t.Run(tt.alg.String(), func(t *testing.T) {
			t.Parallel()
			priv, err := jwk.Import(testkit.GenerateKey(t, tt.keyAlg))
			if err != nil {
				t.Fatal(err)
			}
			pub, err := jwk.PublicKeyOf(priv)
			if err != nil {
				t.Fatal(err)
			}
			tp, err := pub.Thumbprint(crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			jkt := base64.RawURLEncoding.EncodeToString(tp)
			tok := mint(t, is, mintOpts{kid: kid, claims: bound(jkt)})

			claims, err := jwt.NewBuilder().
				JwtID(fmt.Sprint("jwx-", jtiSeq.Add(1))).
				IssuedAt(testNow).
				Claim("htm", "GET").
				Claim("htu", testURL).
				Claim("ath", dpop.AccessTokenHash(tok)).
				Build()
			if err != nil {
				t.Fatal(err)
			}
			payload, err := json.Marshal(claims)
			if err != nil {
				t.Fatal(err)
			}
			hdrs := jwxjws.NewHeaders()
			for k, v := range map[string]any{jwxjws.TypeKey: "dpop+jwt", jwxjws.JWKKey: pub} {
				if err := hdrs.Set(k, v); err != nil {
					t.Fatal(err)
				}
			}
			proof, err := jwxjws.Sign(payload, jwxjws.WithKey(tt.alg, priv, jwxjws.WithProtectedHeaders(hdrs)))
			if err != nil {
				t.Fatal(err)
			}

			rec := httptest.NewRecorder()
			mw.ServeHTTP(rec, dpopRequest(tok, string(proof)))
			dpopResponse{200, nil, "", "sub=user-123 jkt=" + jkt}.check(t, rec)
			// And once only.
			rec = httptest.NewRecorder()
			mw.ServeHTTP(rec, dpopRequest(tok, string(proof)))
			invalidProof("DPoP proof was used before").check(t, rec)
		})
	}
}
