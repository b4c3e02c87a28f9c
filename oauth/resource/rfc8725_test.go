package resource_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/oauth/resource"
)

// TestRFC8725_3_1_AlgorithmVerification: RFC 8725 §3.1 ("Perform
// Algorithm Verification"): the verifier uses only the algorithms of its
// allow-list (Options.Algorithms) and those the key allows. A JWK without
// "alg" (optional per RFC 7517 §4.4, and the norm at many issuers) is
// accepted, through a real RemoteKeySet, when its key type fixes the
// algorithm (EC P-256 → ES256, Ed25519 → EdDSA); an RSA key, whose type
// fixes none, is used with the allow-list.
func TestRFC8725_3_1_AlgorithmVerification(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	ec := is.AddKey(t, jose.ES256)
	ed := is.AddKey(t, jose.EdDSA)
	rs := is.AddKey(t, jose.RS256)
	ecWithAlg := is.AddKey(t, jose.ES256)
	for _, kid := range []string{ec, ed, rs} {
		is.PublishWithoutAlg(kid)
	}
	tests := []struct {
		name  string
		token string
		algs  []string // Options.Algorithms; nil: the default
		want  error    // nil: accepted
	}{
		{"§3.1 EC P-256 JWK without alg: ES256 token accepted", mint(t, is, mintOpts{kid: ec}), nil, nil},
		{"§3.1 Ed25519 JWK without alg: EdDSA token accepted", mint(t, is, mintOpts{kid: ed}), nil, nil},
		{"§3.1 RSA JWK without alg: RS256 in the default allow-list", mint(t, is, mintOpts{kid: rs}), nil, nil},
		{"§3.1 RSA JWK without alg: PS256 when allow-listed", mint(t, is, mintOpts{kid: rs, alg: jose.PS256}),
			[]string{"PS256"}, nil},
		{"§3.1 RSA JWK without alg: RS256 not in the allow-list", mint(t, is, mintOpts{kid: rs}),
			[]string{"ES256", "PS256"}, resource.ErrAlgorithm},
		{"§3.1 RSA JWK without alg: PS256 not in the allow-list", mint(t, is, mintOpts{kid: rs, alg: jose.PS256}),
			[]string{"RS256"}, resource.ErrAlgorithm},
		{"§3.1 EC JWK without alg: ES256 not in the allow-list", mint(t, is, mintOpts{kid: ec}),
			[]string{"EdDSA"}, resource.ErrAlgorithm},
		{"§3.1 JWK with alg: the allow-list still applies", mint(t, is, mintOpts{kid: ecWithAlg}),
			[]string{"RS256"}, resource.ErrAlgorithm},
		{"§3.1 JWK with alg: accepted when allow-listed", mint(t, is, mintOpts{kid: ecWithAlg}),
			[]string{"ES256"}, nil},
		{"§3.1 EC P-256 JWK without alg: header ES384 refused (the key type fixes ES256)",
			is.SignRawES256(t, ec, `{"alg":"ES384","kid":"`+ec+`","typ":"at+jwt"}`, claimsJSON(t, is)),
			nil, resource.ErrAlgorithm},
		{"§3.1 RSA JWK without alg: an EdDSA header is not an RSA algorithm",
			mint(t, is, mintOpts{kid: rs, alg: jose.EdDSA, signKey: is.PrivateKey(ed).Key}), nil, resource.ErrAlgorithm},
		{"§2.1 alg none refused", unsigned(map[string]string{"alg": "none", "kid": ec, "typ": "at+jwt"},
			defaultClaims(is), ""), nil, resource.ErrMalformed},
		{"§2.1 HS256 keyed with public material refused (key confusion)",
			mint(t, is, mintOpts{kid: rs, alg: jose.HS256, signKey: []byte("public-key-bytes-used-as-hmac-secret")}),
			nil, resource.ErrAlgorithm},
		{"§3.1 an allow-list naming only unsupported algorithms accepts nothing",
			mint(t, is, mintOpts{kid: ec}), []string{"HS256", "none"}, resource.ErrAlgorithm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ks := resource.NewRemoteKeySet(is.URL(), resource.RemoteOptions{HTTPClient: is.Client(), Now: func() time.Time { return testNow }})
			v := resource.NewVerifier(ks, resource.Options{
				Issuer: is.URL(), Audience: testAudience, Algorithms: tt.algs,
				Now: func() time.Time { return testNow },
			})
			_, err := v.Verify(t.Context(), tt.token)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

// claimsJSON returns is's default claims as JSON.
func claimsJSON(t *testing.T, is *testkit.Issuer) string {
	t.Helper()
	b, err := json.Marshal(defaultClaims(is))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
