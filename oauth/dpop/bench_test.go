package dpop_test

import (
	"testing"

	"github.com/portcullis-auth/portcullis/oauth/dpop"
)

// BenchmarkVerify measures Verifier.Verify of an ES256 proof for a
// resource request (with ath): parse, signature, htm/htu/iat/ath checks
// and the in-memory replay cache. Each iteration verifies a new proof,
// made before the timer starts.
func BenchmarkVerify(b *testing.B) {
	key, err := dpop.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	const uri, token = "https://api.example.com/users/me", "eyJhbGciOiJFUzI1NiJ9.e30.c2ln"
	v := dpop.NewVerifier(dpop.Options{Replay: dpop.NewMemoryReplayCache(0, nil)})
	req := dpop.Request{Method: "GET", URI: uri, AccessToken: token}
	proofs := make([]string, b.N)
	for i := range proofs {
		if proofs[i], err = key.Proof("GET", uri, token, ""); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := v.Verify(b.Context(), proofs[i], req); err != nil {
			b.Fatal(err)
		}
	}
}
