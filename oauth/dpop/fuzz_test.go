package dpop_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/portcullis-auth/portcullis/oauth/dpop"
)

// FuzzParse: whatever arrives in a DPoP header, Parse never panics, every
// refusal is an *dpop.Error with code invalid_dpop_proof and a fixed
// description that quotes nothing of the input, and whatever it accepts
// has the claims a proof must have and a key thumbprint. The seed corpus
// (testdata/fuzz/FuzzParse) holds valid proofs of each key type and the
// shapes of the refused ones.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", ".", "..", "a.b.c", "e30.e30.e30"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, proof string) {
		p, err := dpop.Parse(proof, nil)
		if err != nil {
			e, ok := errors.AsType[*dpop.Error](err)
			if !ok || e.Code != dpop.CodeInvalidProof || e.Description == "" {
				t.Fatalf("error %v is not an invalid_dpop_proof *dpop.Error", err)
			}
			if len(proof) >= 6 && strings.Contains(e.Description, proof) {
				t.Fatalf("description %q quotes the input", e.Description)
			}
			return
		}
		if p.ID == "" || p.Method == "" || p.URI == "" || p.IssuedAt.IsZero() || len(p.JKT) != 43 || !p.Key.IsPublic() {
			t.Fatalf("accepted an incomplete proof: %+v", p)
		}
	})
}

// FuzzNormalizeURI: NormalizeURI never panics, and what it returns is a
// fixed point (normalizing twice changes nothing), so two URIs compare
// equal exactly when their normal forms do.
func FuzzNormalizeURI(f *testing.F) {
	for _, s := range []string{"https://as.example/oauth2/token", "HTTP://A.example:80/%7Euser?q#f", "https://[::1]:443/", "http://u:p@h/", "https://h:8443"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		n, err := dpop.NormalizeURI(raw)
		if err != nil {
			return
		}
		n2, err := dpop.NormalizeURI(n)
		if err != nil || n2 != n {
			t.Fatalf("NormalizeURI(%q) = %q, then %q, %v", raw, n, n2, err)
		}
	})
}
