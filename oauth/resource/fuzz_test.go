package resource_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/oauth/resource"
)

// The fuzz seeds in testdata/fuzz/FuzzVerify were signed with the private
// keys in testdata/fuzz_keys.json for this issuer and audience at testNow.
const (
	fuzzIssuer   = "https://issuer.example.test"
	fuzzAudience = "https://api.example.test"
)

// fuzzVerifier verifies against the public halves of testdata/fuzz_keys.json.
func fuzzVerifier(tb testing.TB) *resource.Verifier {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "fuzz_keys.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		tb.Fatal(err)
	}
	ks := staticKeys{}
	for _, k := range set.Keys {
		pub := k.Public()
		ks[k.KeyID] = &pub
	}
	return resource.NewVerifier(ks, resource.Options{
		Issuer:   fuzzIssuer,
		Audience: fuzzAudience,
		Now:      func() time.Time { return testNow },
	})
}

// readSeed returns the string of a committed "go test fuzz v1" seed file.
func readSeed(tb testing.TB, name string) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzVerify", name))
	if err != nil {
		tb.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(b), "\n")
	rest = strings.TrimSuffix(strings.TrimSpace(rest), ")")
	s, err := strconv.Unquote(strings.TrimPrefix(rest, "string("))
	if err != nil {
		tb.Fatalf("seed %s: %v", name, err)
	}
	return s
}

// TestFuzzSeeds keeps the committed corpus meaningful: the valid seeds
// verify and the others fail for the expected reason.
func TestFuzzSeeds(t *testing.T) {
	t.Parallel()
	v := fuzzVerifier(t)
	tests := []struct {
		seed string
		want error
	}{
		{"valid_es256", nil},
		{"valid_eddsa", nil},
		{"expired", resource.ErrExpired},
		{"hs256_pubkey", resource.ErrAlgorithm},
		{"alg_none", resource.ErrMalformed},
		{"truncated", resource.ErrMalformed},
		{"padded", resource.ErrMalformed},
		{"five_parts", resource.ErrMalformed},
		{"json", resource.ErrMalformed},
		{"empty", resource.ErrMalformed},
		{"dots", resource.ErrMalformed},
		{"client_credentials", nil},
		{"exp_beyond_leeway", resource.ErrExpired},
		{"case_variant_sub", resource.ErrMissingClaim}, // "SUB" is not "sub"
		{"exp_string", resource.ErrMalformed},          // NumericDate is a JSON number
		{"sub_null", resource.ErrMalformed},
		{"aud_null_element", resource.ErrMalformed},
		{"roles_null", resource.ErrMalformed},
		{"duplicate_exp", resource.ErrMalformed},
		{"duplicate_escaped", resource.ErrMalformed}, // "s\u0075b" repeats "sub"
	}
	for _, tt := range tests {
		t.Run(tt.seed, func(t *testing.T) {
			t.Parallel()
			_, err := v.Verify(t.Context(), readSeed(t, tt.seed))
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	v := fuzzVerifier(f)
	f.Fuzz(func(t *testing.T, token string) {
		for range 2 { // the second round exercises the cache
			c, err := v.Verify(t.Context(), token)
			if err != nil {
				if c != nil {
					t.Fatalf("claims %+v returned with error %v", c, err)
				}
				e, ok := errors.AsType[*resource.Error](err)
				if !ok || e.Code != resource.CodeInvalidToken || e.Description == "" {
					t.Fatalf("error %#v is not an invalid_token *Error", err)
				}
				continue
			}
			if len(token) > resource.MaxTokenSize {
				t.Fatalf("accepted a %d-byte token", len(token))
			}
			if c.Issuer != fuzzIssuer || !slices.Contains(c.Audience, fuzzAudience) ||
				c.Subject == "" || c.ClientID == "" || c.ID == "" ||
				!testNow.Before(c.ExpiresAt.Add(resource.DefaultLeeway)) {
				t.Fatalf("accepted token with invalid claims %+v", c)
			}
		}
	})
}
