package resource_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/oauth/resource"
)

// BenchmarkVerify measures full verification (signature and claims) per
// algorithm, with the verified-token cache disabled (CacheSize < 0).
func BenchmarkVerify(b *testing.B) {
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA} {
		b.Run(string(alg), func(b *testing.B) {
			is := testkit.NewIssuer(b)
			kid := is.AddKey(b, alg)
			v, _ := newTestVerifier(is, &fakeClock{t: testNow}, -1)
			tok := mint(b, is, mintOpts{kid: kid})
			if _, err := v.Verify(b.Context(), tok); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(b.Context(), tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyCached measures verification of a token already in the
// verified-token cache: a SHA-256, a map lookup and a claims copy.
func BenchmarkVerifyCached(b *testing.B) {
	is := testkit.NewIssuer(b)
	kid := is.AddKey(b, jose.ES256)
	v, _ := newTestVerifier(is, &fakeClock{t: testNow}, 0)
	tok := mint(b, is, mintOpts{kid: kid})
	if _, err := v.Verify(b.Context(), tok); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(b.Context(), tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := v.Verify(b.Context(), tok); err != nil {
					panic(fmt.Sprint(err))
				}
			}
		})
	})
}

// BenchmarkMiddlewareBearerVsDPoP measures Middleware for one request, the
// token already in the verified-token cache: "bearer" with an unbound
// token, "dpop" with a DPoP-bound token and a new ES256 proof each time
// (parsed, signature verified, checked against the request, recorded in
// the default in-memory replay cache). The proofs are made before the
// timer starts.
func BenchmarkMiddlewareBearerVsDPoP(b *testing.B) {
	is := testkit.NewIssuer(b)
	kid := is.AddKey(b, jose.ES256)
	v := newDPoPVerifier(is, &fakeClock{t: testNow}, resource.DPoPOptions{})
	h := resource.Middleware(v)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	key := newProofKey(b)
	serve := func(b *testing.B, req *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	b.Run("bearer", func(b *testing.B) {
		tok := mint(b, is, mintOpts{kid: kid})
		req := httptest.NewRequest(http.MethodGet, testURL, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		serve(b, req) // cache the token
		b.ReportAllocs()
		for b.Loop() {
			serve(b, req)
		}
	})
	b.Run("dpop", func(b *testing.B) {
		tok := mint(b, is, mintOpts{kid: kid, claims: bound(key.jkt)})
		req := httptest.NewRequest(http.MethodGet, testURL, nil)
		req.Header.Set("Authorization", "DPoP "+tok)
		req.Header.Set("DPoP", key.proof(b, tok, nil))
		serve(b, req) // cache the token
		proofs := make([]string, b.N)
		for i := range proofs {
			proofs[i] = key.proof(b, tok, nil)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			req.Header.Set("DPoP", proofs[i])
			serve(b, req)
		}
	})
}
