package resource_test

import (
	"fmt"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/internal/testkit"
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
