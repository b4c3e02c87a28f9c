package resource_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

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

// testIssuer is an httptest authorization server that publishes RFC 8414
// metadata and a JWK Set, and mints tokens with its private keys.
type testIssuer struct {
	srv      *httptest.Server
	jwksHits atomic.Int64

	mu      sync.Mutex
	private map[string]jose.JSONWebKey // by kid
	order   []string                   // kids in publication order
	noAlg   map[string]bool            // kids published without "alg"
}

func newTestIssuer(t testing.TB) *testIssuer {
	t.Helper()
	is := &testIssuer{private: map[string]jose.JSONWebKey{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"issuer":   is.srv.URL,
			"jwks_uri": is.srv.URL + "/.well-known/jwks.json",
		})
	})
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		is.jwksHits.Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_ = json.NewEncoder(w).Encode(is.publicSet())
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	return is
}

// URL is the issuer identifier.
func (is *testIssuer) URL() string { return is.srv.URL }

func (is *testIssuer) publicSet() jose.JSONWebKeySet {
	is.mu.Lock()
	defer is.mu.Unlock()
	var set jose.JSONWebKeySet
	for _, kid := range is.order {
		k := is.private[kid]
		pub := k.Public()
		if is.noAlg[kid] {
			pub.Algorithm = ""
		}
		set.Keys = append(set.Keys, pub)
	}
	return set
}

// addKey generates and publishes a key for alg and returns its kid.
func (is *testIssuer) addKey(t testing.TB, alg jose.SignatureAlgorithm) string {
	t.Helper()
	priv := generateKey(t, alg)
	is.mu.Lock()
	defer is.mu.Unlock()
	kid := fmt.Sprintf("%s-%d", alg, len(is.order)+1)
	is.private[kid] = jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: string(alg), Use: "sig"}
	is.order = append(is.order, kid)
	return kid
}

// publishWithoutAlg makes the JWK Set carry kid without its "alg" member
// (RFC 7517 §4.4: alg is optional).
func (is *testIssuer) publishWithoutAlg(kid string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.noAlg == nil {
		is.noAlg = map[string]bool{}
	}
	is.noAlg[kid] = true
}

func (is *testIssuer) key(kid string) *jose.JSONWebKey {
	is.mu.Lock()
	defer is.mu.Unlock()
	k := is.private[kid]
	return &k
}

func generateKey(t testing.TB, alg jose.SignatureAlgorithm) crypto.Signer {
	t.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch alg {
	case jose.ES256:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.RS256:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.EdDSA:
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("unsupported alg %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// defaultClaims returns valid claims for a user token at testNow.
func (is *testIssuer) defaultClaims() map[string]any {
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

// mint signs a token with go-jose.
func (is *testIssuer) mint(t testing.TB, o mintOpts) string {
	t.Helper()
	jwk := is.key(o.kid)
	if jwk.Key == nil && o.signKey == nil {
		t.Fatalf("no key %q", o.kid)
	}
	alg := o.alg
	if alg == "" {
		alg = jose.SignatureAlgorithm(jwk.Algorithm)
	}
	key := o.signKey
	if key == nil {
		key = jwk.Key
	}
	so := (&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", o.kid)
	if len(o.critical) > 0 {
		so = so.WithCritical(o.critical...)
	}
	for k, v := range o.headers {
		if v == nil {
			delete(so.ExtraHeaders, jose.HeaderKey(k))
			continue
		}
		so = so.WithHeader(jose.HeaderKey(k), v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, so)
	if err != nil {
		t.Fatal(err)
	}
	claims := is.defaultClaims()
	if o.claims != nil {
		o.claims(claims)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	if o.payload != nil {
		payload = o.payload
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signRawES256 signs a raw JSON header and payload with the ES256 key kid,
// for headers go-jose would not produce (such as duplicate members).
func (is *testIssuer) signRawES256(t testing.TB, kid, header, payload string) string {
	t.Helper()
	priv, ok := is.key(kid).Key.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("key %q is not an ES256 key", kid)
	}
	input := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	digest := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, priv, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
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
func newTestVerifier(is *testIssuer, clock *fakeClock, cacheSize int) (*resource.Verifier, *resource.RemoteKeySet) {
	ks := resource.NewRemoteKeySet(is.URL(), resource.RemoteOptions{
		HTTPClient:     is.srv.Client(),
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
