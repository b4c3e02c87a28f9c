package resource_test

import (
	"encoding/base64"
	"encoding/json"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/oauth/resource"
)

// testNow is the fixed "current time" of verifier tests.
var testNow = time.Unix(1_800_000_000, 0)

const testAudience = "https://api.example.test"

// fakeClock is a settable clock shared by a key set and a verifier.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// defaultClaims returns valid claims of is for a user token at testNow.
func defaultClaims(is *testkit.Issuer) map[string]any {
	return map[string]any{
		"iss":                is.URL(),
		"sub":                "user-123",
		"aud":                []string{testAudience, "https://other.example.test"},
		"exp":                testNow.Add(15 * time.Minute).Unix(),
		"iat":                testNow.Unix(),
		"nbf":                testNow.Unix(),
		"jti":                "jti-1",
		"client_id":          "web-app",
		"scope":              "openid profile users:read",
		"preferred_username": "alice",
		"roles":              []string{"admin", "user"},
	}
}

// mintOpts customizes a token. Headers are set on top of typ at+jwt and
// the kid (nil values remove them).
type mintOpts struct {
	kid      string // signing key; its alg is used unless alg is set
	alg      jose.SignatureAlgorithm
	signKey  any            // overrides the key material used to sign
	headers  map[string]any // extra or overriding headers; nil value deletes
	claims   func(map[string]any)
	payload  []byte // raw payload JSON; overrides claims
	critical []string
}

// mint signs a token of is: its default claims, changed by o.
func mint(t testing.TB, is *testkit.Issuer, o mintOpts) string {
	t.Helper()
	claims := defaultClaims(is)
	if o.claims != nil {
		o.claims(claims)
	}
	return is.Sign(t, testkit.Token{
		KeyID: o.kid, Algorithm: o.alg, Key: o.signKey, Header: o.headers, Critical: o.critical,
		Claims: claims, Payload: o.payload,
	})
}

// unsigned builds header.payload.signature from raw JSON values.
func unsigned(header, claims any, sig string) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "." + sig
}

// newTestVerifier returns a verifier for is using a RemoteKeySet, both on
// clock. The key set's UnknownKIDWait is long, so that a loaded machine
// cannot make a lookup give up on the healthy test issuer.
func newTestVerifier(is *testkit.Issuer, clock *fakeClock, cacheSize int) (*resource.Verifier, *resource.RemoteKeySet) {
	ks := resource.NewRemoteKeySet(is.URL(), resource.RemoteOptions{
		HTTPClient:     is.Client(),
		Now:            clock.Now,
		UnknownKIDWait: 10 * time.Second,
	})
	v := resource.NewVerifier(ks, resource.Options{
		Issuer:    is.URL(),
		Audience:  testAudience,
		Now:       clock.Now,
		CacheSize: cacheSize,
	})
	return v, ks
}
