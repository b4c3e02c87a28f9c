package resource_test

import (
	"encoding/json"
	"errors"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/oauth/resource"
)

// TestVerifyConfirmation: cnf (RFC 7800) is read strictly: an object
// whose jkt (RFC 9449 §6.1) is a non-empty string; a token whose cnf has
// no jkt is bound by something the library cannot check, and is refused
// rather than taken for a bearer token.
func TestVerifyConfirmation(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	const jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	cnf := func(v any) func(map[string]any) { return func(c map[string]any) { c["cnf"] = v } }
	// withRaw appends the raw member cnf to the default claims, for
	// duplicate member names a map cannot hold.
	withRaw := func(member string) []byte {
		b, err := json.Marshal(defaultClaims(is))
		if err != nil {
			t.Fatal(err)
		}
		return append(b[:len(b)-1], ","+member+"}"...)
	}
	tests := []struct {
		name    string
		opts    mintOpts
		wantJKT string
		wantErr error
	}{
		{"no cnf", mintOpts{}, "", nil},
		{"cnf with jkt", mintOpts{claims: cnf(map[string]any{"jkt": jkt})}, jkt, nil},
		{"cnf empty object", mintOpts{claims: cnf(map[string]any{})}, "", resource.ErrMalformed},
		{"cnf with another method only", mintOpts{claims: cnf(map[string]any{"x5t#S256": "abc"})}, "", resource.ErrMalformed},
		{"cnf with jkt and other members", mintOpts{claims: cnf(map[string]any{"jkt": jkt, "kid": 7})}, jkt, nil},
		{"cnf null", mintOpts{claims: cnf(nil)}, "", resource.ErrMalformed},
		{"cnf a string", mintOpts{claims: cnf(jkt)}, "", resource.ErrMalformed},
		{"cnf an array", mintOpts{claims: cnf([]any{map[string]any{"jkt": jkt}})}, "", resource.ErrMalformed},
		{"jkt empty", mintOpts{claims: cnf(map[string]any{"jkt": ""})}, "", resource.ErrMalformed},
		{"jkt null", mintOpts{claims: cnf(map[string]any{"jkt": nil})}, "", resource.ErrMalformed},
		{"jkt a number", mintOpts{claims: cnf(map[string]any{"jkt": 1})}, "", resource.ErrMalformed},
		{"jkt an object", mintOpts{claims: cnf(map[string]any{"jkt": map[string]any{"jkt": jkt}})}, "", resource.ErrMalformed},
		{"jkt twice", mintOpts{payload: withRaw(`"cnf":{"jkt":"` + jkt + `","jkt":"other"}`)}, "", resource.ErrMalformed},
		{"JKT is not jkt", mintOpts{claims: cnf(map[string]any{"JKT": jkt})}, "", resource.ErrMalformed},
	}
	v, _ := newTestVerifier(is, &fakeClock{t: testNow}, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.opts.kid = kid
			tok := mint(t, is, tt.opts)
			// Twice: the second answer comes from the verified-token cache.
			for range 2 {
				c, err := v.Verify(t.Context(), tok)
				if tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("Verify = %v, want %v", err, tt.wantErr)
					}
					e, ok := errors.AsType[*resource.Error](err)
					if !ok || e.Code != resource.CodeInvalidToken {
						t.Fatalf("Verify = %#v, want invalid_token", err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if c.JKT != tt.wantJKT {
					t.Fatalf("JKT = %q, want %q", c.JKT, tt.wantJKT)
				}
				c.JKT = "mutated" // the caller's copy
			}
		})
	}
}
