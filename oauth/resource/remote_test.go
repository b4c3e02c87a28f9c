package resource_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/oauth/resource"
)

// remoteClock is a settable clock for RemoteKeySet tests.
type remoteClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *remoteClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *remoteClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newRemoteTestIssuer starts an issuer at path (RFC 8414 §3.1) that
// serves jwks as its JWK Set with max-age=60.
func newRemoteTestIssuer(t *testing.T, path string, jwks string) *testkit.Issuer {
	t.Helper()
	is := testkit.NewIssuerAt(t, path)
	is.SetJWKS(jwks)
	is.SetCacheControl("public, max-age=60")
	return is
}

// keySet returns a key set for is on clock. Its UnknownKIDWait is long, so
// that a loaded machine cannot make a lookup give up on a healthy issuer.
func keySet(is *testkit.Issuer, clock *remoteClock) *resource.RemoteKeySet {
	return resource.NewRemoteKeySet(is.URL(), resource.RemoteOptions{
		HTTPClient: is.Client(), Now: clock.Now, UnknownKIDWait: 10 * time.Second,
	})
}

// remoteJWKS marshals public keys into a JWK Set document.
func remoteJWKS(t *testing.T, ks ...jose.JSONWebKey) string {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: ks})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func remoteECKey(t *testing.T, kid string) jose.JSONWebKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"}
}

func TestRemoteKeySetFiltersKeys(t *testing.T) {
	t.Parallel()
	good := remoteECKey(t, "good")
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	noUse := remoteECKey(t, "no-use")
	noUse.Use = ""
	noAlg := remoteECKey(t, "no-alg")
	noAlg.Algorithm = ""
	enc := remoteECKey(t, "enc")
	enc.Use = "enc"
	wrongAlg := remoteECKey(t, "es-key-rs-alg")
	wrongAlg.Algorithm = "RS256"
	es384 := remoteECKey(t, "p256-as-es384")
	es384.Algorithm = "ES384"
	hs := remoteECKey(t, "hs-alg")
	hs.Algorithm = "HS256"
	noKid := remoteECKey(t, "")
	jwks := remoteJWKS(t, good, noUse, noAlg, enc, wrongAlg, es384, hs, noKid,
		jose.JSONWebKey{Key: ecPriv, KeyID: "private", Algorithm: "ES256", Use: "sig"},
		jose.JSONWebKey{Key: &rsa1024.PublicKey, KeyID: "rsa-1024", Algorithm: "RS256", Use: "sig"},
		jose.JSONWebKey{Key: edPub, KeyID: "ed", Algorithm: "EdDSA", Use: "sig"},
		jose.JSONWebKey{Key: edPub, KeyID: "ed-no-alg", Use: "sig"},
		jose.JSONWebKey{Key: &rsa1024.PublicKey, KeyID: "rsa-1024-no-alg", Use: "sig"},
		jose.JSONWebKey{Key: &rsa2048.PublicKey, KeyID: "rsa-2048-no-alg", Use: "sig"},
		jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "oct", Algorithm: "HS256", Use: "sig"},
	)
	// A duplicate kid (kept: the first) and an unparseable key.
	jwks = strings.TrimSuffix(jwks, "]}") + `,{"kty":"EC","kid":"good","alg":"ES256","crv":"P-256","x":"AA","y":"AA"},{"kty":"nope","kid":"junk","alg":"ES256"}]}`

	is := newRemoteTestIssuer(t, "", jwks)
	ks := keySet(is, &remoteClock{t: time.Unix(1_800_000_000, 0)})
	tests := []struct {
		kid  string
		want error // nil: found
	}{
		{"good", nil},
		{"no-use", nil},
		{"ed", nil},
		{"no-alg", nil}, // RFC 7517 §4.4: the verifier takes the algorithm from the key type
		{"rsa-1024-no-alg", resource.ErrKeyNotFound},
		{"rsa-2048-no-alg", nil},
		{"ed-no-alg", nil},
		{"enc", resource.ErrKeyNotFound},
		{"es-key-rs-alg", resource.ErrKeyNotFound},
		{"p256-as-es384", resource.ErrKeyNotFound},
		{"hs-alg", resource.ErrKeyNotFound},
		{"", resource.ErrKeyNotFound},
		{"private", resource.ErrKeyNotFound},
		{"rsa-1024", resource.ErrKeyNotFound},
		{"oct", resource.ErrKeyNotFound},
		{"junk", resource.ErrKeyNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.kid, func(t *testing.T) {
			k, err := ks.Key(t.Context(), tt.kid)
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("Key(%q) = %v, %v; want %v", tt.kid, k, err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Key(%q): %v", tt.kid, err)
			}
			if !k.IsPublic() || k.KeyID != tt.kid || (k.Algorithm == "") != strings.HasSuffix(tt.kid, "no-alg") {
				t.Errorf("Key(%q) = %+v", tt.kid, k)
			}
		})
	}
	if k, _ := ks.Key(t.Context(), "good"); k == nil || !k.Key.(*ecdsa.PublicKey).Equal(good.Key) {
		t.Error("duplicate kid replaced the first key")
	}
}

func TestRemoteKeySetCachingAndETag(t *testing.T) {
	t.Parallel()
	is := newRemoteTestIssuer(t, "", remoteJWKS(t, remoteECKey(t, "k1")))
	clock := &remoteClock{t: time.Unix(1_800_000_000, 0)}
	ks := keySet(is, clock)
	ctx := t.Context()

	for range 10 {
		if _, err := ks.Key(ctx, "k1"); err != nil {
			t.Fatal(err)
		}
	}
	if is.JWKSRequests() != 1 || is.MetadataRequests() != 1 {
		t.Fatalf("fetches jwks=%d metadata=%d, want 1 and 1", is.JWKSRequests(), is.MetadataRequests())
	}

	// Past max-age=60: the stale key is served while the set is revalidated
	// in the background with If-None-Match; 304 keeps the keys.
	clock.Advance(61 * time.Second)
	if _, err := ks.Key(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	resource.WaitRefresh(ks)
	if is.JWKSRequests() != 2 || is.NotModified() != 1 {
		t.Fatalf("after expiry: jwks=%d 304s=%d, want 2 and 1", is.JWKSRequests(), is.NotModified())
	}
	// The 304 extended freshness.
	clock.Advance(30 * time.Second)
	if _, err := ks.Key(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if is.JWKSRequests() != 2 {
		t.Fatalf("fresh after 304: jwks=%d, want 2", is.JWKSRequests())
	}

	// Keys removed at the issuer disappear after the next refresh.
	is.SetJWKS(remoteJWKS(t, remoteECKey(t, "k2")))
	if err := ks.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Key(ctx, "k1"); !errors.Is(err, resource.ErrKeyNotFound) {
		t.Fatalf("Key(k1) after removal = %v, want ErrKeyNotFound", err)
	}
	if _, err := ks.Key(ctx, "k2"); err != nil {
		t.Fatal(err)
	}
	if is.MetadataRequests() != 1 {
		t.Errorf("metadata fetched %d times, want 1", is.MetadataRequests())
	}
}

func TestRemoteKeySetMaxAgeBounds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		cacheControl string
		advance      time.Duration
		wantRefetch  bool
	}{
		{"max-age honoured", "max-age=600", 599 * time.Second, false},
		{"max-age expires", "max-age=600", 601 * time.Second, true},
		{"max-age capped at MaxMaxAge", "public, max-age=999999", resource.DefaultRemoteMaxMaxAge + time.Second, true},
		{"max-age=0 floored at MinRefreshInterval", "max-age=0", resource.DefaultMinRefreshInterval - time.Second, false},
		{"no-store floored at MinRefreshInterval", "no-store", resource.DefaultMinRefreshInterval + time.Second, true},
		{"no Cache-Control uses DefaultMaxAge", "", resource.DefaultRemoteMaxAge - time.Second, false},
		{"DefaultMaxAge expires", "", resource.DefaultRemoteMaxAge + time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := newRemoteTestIssuer(t, "", remoteJWKS(t, remoteECKey(t, "k1")))
			is.SetCacheControl(tt.cacheControl)
			clock := &remoteClock{t: time.Unix(1_800_000_000, 0)}
			ks := keySet(is, clock)
			if _, err := ks.Key(t.Context(), "k1"); err != nil {
				t.Fatal(err)
			}
			clock.Advance(tt.advance)
			if _, err := ks.Key(t.Context(), "k1"); err != nil {
				t.Fatal(err)
			}
			resource.WaitRefresh(ks) // an expired set is refetched in the background
			if got := is.JWKSRequests() == 2; got != tt.wantRefetch {
				t.Errorf("refetched = %v, want %v", got, tt.wantRefetch)
			}
		})
	}
}

// TestRemoteKeySetCacheControlDirectives: RFC 9111 §5.2.2.4 (no-cache)
// and §5.2.2.5 (no-store) make a response stale at once whatever other
// directives say and wherever they stand: in any order, split over several
// field lines (RFC 9110 §5.3), in any case (§5.2: directive names are
// case-insensitive), with quoted arguments (§5.2: recipients accept the
// quoted-string form). The key set then refetches after MinRefreshInterval;
// otherwise max-age (capped at MaxMaxAge) decides.
func TestRemoteKeySetCacheControlDirectives(t *testing.T) {
	t.Parallel()
	const (
		stale = resource.DefaultMinRefreshInterval + time.Second // past the floor
		fresh = 599 * time.Second                                // within max-age=600
	)
	tests := []struct {
		name        string
		lines       []string // Cache-Control field lines
		advance     time.Duration
		wantRefetch bool
	}{
		{"no-cache before max-age", []string{"no-cache, max-age=600"}, stale, true},
		{"no-cache after max-age", []string{"max-age=600, no-cache"}, stale, true},
		{"no-store before max-age", []string{"no-store, max-age=600"}, stale, true},
		{"no-store after max-age", []string{"max-age=600, no-store"}, stale, true},
		{"no-cache on the first of two lines", []string{"no-cache", "max-age=600"}, stale, true},
		{"no-cache on the second of two lines", []string{"max-age=600", "no-cache"}, stale, true},
		{"no-store on the first of two lines", []string{"public, no-store", "public, max-age=600"}, stale, true},
		{"NO-CACHE upper case", []string{"NO-CACHE, max-age=600"}, stale, true},
		{"No-Store mixed case", []string{"No-Store, Max-Age=600"}, stale, true},
		{"no-cache with a quoted max-age", []string{`no-cache, max-age="600"`}, stale, true},
		{"qualified no-cache with a comma in its quoted list", []string{`no-cache="Set-Cookie, ETag", max-age=600`}, stale, true},
		{"no-cache without spaces", []string{"no-cache,max-age=600"}, stale, true},
		{"conflicting max-age values", []string{"max-age=600, max-age=5"}, stale, true},
		{"conflicting max-age values on two lines", []string{"max-age=5", "max-age=600"}, stale, true},

		// max-age alone is honoured, however written.
		{"max-age", []string{"public, max-age=600"}, fresh, false},
		{"max-age expires", []string{"public, max-age=600"}, 601 * time.Second, true},
		{"quoted max-age", []string{`max-age="600"`}, fresh, false},
		{"MAX-AGE upper case", []string{"PUBLIC, MAX-AGE=600"}, fresh, false},
		{"max-age on the second line", []string{"public", "max-age=600"}, fresh, false},
		{"repeated identical max-age", []string{"max-age=600", "max-age=600"}, fresh, false},
		{"quoted comma is not a separator", []string{`private="Authorization, max-age=5", max-age=600`}, fresh, false},
		{"no-cache-like extension is not no-cache", []string{"no-cache-please, max-age=600"}, fresh, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := newRemoteTestIssuer(t, "", remoteJWKS(t, remoteECKey(t, "k1")))
			is.SetCacheControl(tt.lines...)
			clock := &remoteClock{t: time.Unix(1_800_000_000, 0)}
			ks := keySet(is, clock)
			if _, err := ks.Key(t.Context(), "k1"); err != nil {
				t.Fatal(err)
			}
			clock.Advance(tt.advance)
			if _, err := ks.Key(t.Context(), "k1"); err != nil {
				t.Fatal(err)
			}
			resource.WaitRefresh(ks) // an expired set is refetched in the background
			if got := is.JWKSRequests() == 2; got != tt.wantRefetch {
				t.Errorf("Cache-Control %q, %v later: refetched = %v, want %v", tt.lines, tt.advance, got, tt.wantRefetch)
			}
		})
	}
}

func TestRemoteKeySetDiscovery(t *testing.T) {
	t.Parallel()
	t.Run("issuer with path uses RFC 8414 location", func(t *testing.T) {
		t.Parallel()
		is := newRemoteTestIssuer(t, "/tenant/a", remoteJWKS(t, remoteECKey(t, "k1")))
		ks := keySet(is, &remoteClock{t: time.Unix(1_800_000_000, 0)})
		if _, err := ks.Key(t.Context(), "k1"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("metadata issuer mismatch", func(t *testing.T) {
		t.Parallel()
		is := newRemoteTestIssuer(t, "", remoteJWKS(t, remoteECKey(t, "k1")))
		is.SetMetadataIssuer("https://evil.example")
		clock := &remoteClock{t: time.Unix(1_800_000_000, 0)}
		ks := keySet(is, clock)
		if err := ks.Refresh(t.Context()); err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Fatalf("Refresh = %v, want issuer mismatch", err)
		}
		if _, err := ks.Key(t.Context(), "k1"); !errors.Is(err, resource.ErrKeySetUnavailable) {
			t.Fatalf("Key = %v, want ErrKeySetUnavailable", err)
		}
		if is.JWKSRequests() != 0 {
			t.Error("JWKS fetched despite mismatching metadata")
		}
		// Discovery is retried once the issuer is fixed.
		is.SetMetadataIssuer("")
		clock.Advance(resource.DefaultMinRefreshInterval)
		if _, err := ks.Key(t.Context(), "k1"); err != nil {
			t.Fatalf("Key after fix: %v", err)
		}
	})
	t.Run("trailing slash is a different issuer", func(t *testing.T) {
		t.Parallel()
		is := newRemoteTestIssuer(t, "", remoteJWKS(t, remoteECKey(t, "k1")))
		ks := resource.NewRemoteKeySet(is.URL()+"/", resource.RemoteOptions{HTTPClient: is.Client()})
		if err := ks.Refresh(t.Context()); err == nil {
			t.Fatal("Refresh succeeded for a non-identical issuer")
		}
	})
}

func TestRemoteKeySetStaleOnFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		breakIssuer func(is *testkit.Issuer)
	}{
		{"server error", func(is *testkit.Issuer) {
			is.SetStatus(http.StatusInternalServerError)
		}},
		{"malformed JSON", func(is *testkit.Issuer) {
			is.SetJWKS("{not json")
		}},
		{"oversized body", func(is *testkit.Issuer) {
			is.SetJWKS(`{"keys":[],"pad":"` + strings.Repeat("x", resource.MaxRemoteResponseSize) + `"}`)
		}},
		{"issuer down", func(is *testkit.Issuer) { is.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := newRemoteTestIssuer(t, "", remoteJWKS(t, remoteECKey(t, "k1")))
			clock := &remoteClock{t: time.Unix(1_800_000_000, 0)}
			ks := keySet(is, clock)
			if _, err := ks.Key(t.Context(), "k1"); err != nil {
				t.Fatal(err)
			}
			tt.breakIssuer(is)
			clock.Advance(time.Hour)
			if err := ks.Refresh(t.Context()); err == nil {
				t.Fatal("Refresh succeeded against a broken issuer")
			}
			if _, err := ks.Key(t.Context(), "k1"); err != nil {
				t.Fatalf("stale key not served: %v", err)
			}
			if _, err := ks.Key(t.Context(), "k2"); !errors.Is(err, resource.ErrKeyNotFound) {
				t.Fatalf("Key(k2) = %v, want ErrKeyNotFound", err)
			}
		})
	}
}

func TestRemoteKeySetUnknownKidRateLimited(t *testing.T) {
	t.Parallel()
	is := newRemoteTestIssuer(t, "", remoteJWKS(t, remoteECKey(t, "k1")))
	clock := &remoteClock{t: time.Unix(1_800_000_000, 0)}
	ks := keySet(is, clock)
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if _, err := ks.Key(context.Background(), "bogus"); !errors.Is(err, resource.ErrKeyNotFound) {
				t.Errorf("Key = %v, want ErrKeyNotFound", err)
			}
		})
	}
	wg.Wait()
	if n := is.JWKSRequests(); n != 1 {
		t.Fatalf("%d JWKS fetches for a concurrent flood, want 1", n)
	}
	for range 50 {
		_, _ = ks.Key(t.Context(), "bogus")
	}
	if n := is.JWKSRequests(); n != 1 {
		t.Fatalf("%d JWKS fetches within MinRefreshInterval, want 1", n)
	}
	// A new key published at the issuer is found after the interval.
	is.SetJWKS(remoteJWKS(t, remoteECKey(t, "k1"), remoteECKey(t, "k2")))
	clock.Advance(resource.DefaultMinRefreshInterval)
	if _, err := ks.Key(t.Context(), "k2"); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
}

func TestRemoteKeySetContextCanceled(t *testing.T) {
	t.Parallel()
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-block
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(block) })
	ks := resource.NewRemoteKeySet(srv.URL, resource.RemoteOptions{HTTPClient: srv.Client()})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := ks.Key(ctx, "k1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Key = %v, want context.Canceled", err)
	}
}

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRemoteKeySetHungIssuer: with a stale cache and an issuer that accepts
// connections but never answers, known kids are served at once from the
// cache while one background refresh hangs, and an unknown kid waits only
// briefly for that refresh.
func TestRemoteKeySetHungIssuer(t *testing.T) {
	t.Parallel()
	is := newRemoteTestIssuer(t, "", remoteJWKS(t, remoteECKey(t, "k1")))
	clock := &remoteClock{t: time.Unix(1_800_000_000, 0)}
	const wait = 300 * time.Millisecond
	ks := resource.NewRemoteKeySet(is.URL(), resource.RemoteOptions{
		HTTPClient: is.Client(), Now: clock.Now, UnknownKIDWait: wait,
	})
	if _, err := ks.Key(t.Context(), "k1"); err != nil {
		t.Fatal(err)
	}
	is.Hang()
	clock.Advance(61 * time.Second) // past max-age=60

	// Generous bound: a cache hit takes microseconds, the hung fetch seconds.
	const fast = 500 * time.Millisecond
	start := time.Now()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := ks.Key(t.Context(), "k1"); err != nil {
				t.Errorf("Key(k1) = %v", err)
			}
		})
	}
	wg.Wait()
	t.Logf("20 concurrent Key(k1), stale cache, hung issuer: %v", time.Since(start))
	if d := time.Since(start); d > fast {
		t.Errorf("20 concurrent Key(k1) with a stale cache and a hung issuer took %v, want < %v", d, fast)
	}
	waitFor(t, "the refresh to reach the issuer", func() bool { return is.HeldConnections() >= 1 })

	// An unknown kid waits UnknownKIDWait for the hung refresh, then fails
	// as unknown (timers never fire early, so the lower bound is safe).
	start = time.Now()
	_, err := ks.Key(t.Context(), "k2")
	t.Logf("Key(k2), hung refresh: %v", time.Since(start))
	if d := time.Since(start); d < wait || d > wait+time.Second {
		t.Errorf("Key(k2) took %v, want UnknownKIDWait (%v) plus < 1s", d, wait)
	}
	if !errors.Is(err, resource.ErrKeyNotFound) {
		t.Errorf("Key(k2) = %v, want ErrKeyNotFound", err)
	}

	// The hung attempt has run longer than MinRefreshInterval (on the fake
	// clock), but it has not ended: no second attempt starts.
	clock.Advance(3 * resource.DefaultMinRefreshInterval)
	start = time.Now()
	for range 20 {
		if _, err := ks.Key(t.Context(), "k1"); err != nil {
			t.Fatalf("Key(k1) = %v", err)
		}
	}
	if d := time.Since(start); d > fast {
		t.Errorf("Key(k1) during a hung refresh took %v, want < %v", d, fast)
	}
	time.Sleep(100 * time.Millisecond) // let a wrongly started second fetch connect
	if n := is.HeldConnections(); n != 1 {
		t.Errorf("%d connections to the hung issuer, want 1 (one refresh at a time)", n)
	}
}

// TestRemoteKeySetRefreshRateLimitedFromEnd: MinRefreshInterval counts from
// the end of an attempt, so an attempt that ran longer than the interval is
// not followed at once by another.
func TestRemoteKeySetRefreshRateLimitedFromEnd(t *testing.T) {
	t.Parallel()
	is := newRemoteTestIssuer(t, "", remoteJWKS(t, remoteECKey(t, "k1")))
	clock := &remoteClock{t: time.Unix(1_800_000_000, 0)}
	ks := resource.NewRemoteKeySet(is.URL(), resource.RemoteOptions{
		HTTPClient: is.Client(), Now: clock.Now, FetchTimeout: 3 * time.Second,
		UnknownKIDWait: 10 * time.Second, // Key(k2) below waits for the attempt to end
	})
	if _, err := ks.Key(t.Context(), "k1"); err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	is.SetGate(gate)
	is.SetStatus(http.StatusInternalServerError)
	clock.Advance(61 * time.Second) // stale

	if _, err := ks.Key(t.Context(), "k1"); err != nil { // starts a refresh, which waits at the gate
		t.Fatal(err)
	}
	waitFor(t, "the refresh to reach the issuer", func() bool { return is.JWKSRequests() == 2 })
	clock.Advance(2 * resource.DefaultMinRefreshInterval) // the attempt outlasts the interval
	close(gate)
	// An unknown kid waits for the running attempt, or, once it has ended,
	// is rate limited from that end.
	if _, err := ks.Key(t.Context(), "k2"); !errors.Is(err, resource.ErrKeyNotFound) {
		t.Fatalf("Key(k2) = %v, want ErrKeyNotFound", err)
	}
	if _, err := ks.Key(t.Context(), "k1"); err != nil {
		t.Fatal(err)
	}
	if n := is.JWKSRequests(); n != 2 {
		t.Errorf("%d JWKS fetches, want 2: a new attempt started right after one that outlasted MinRefreshInterval", n)
	}
	clock.Advance(resource.DefaultMinRefreshInterval)
	if _, err := ks.Key(t.Context(), "k2"); !errors.Is(err, resource.ErrKeyNotFound) {
		t.Fatalf("Key(k2) = %v, want ErrKeyNotFound", err)
	}
	if n := is.JWKSRequests(); n != 3 {
		t.Errorf("%d JWKS fetches, want 3: MinRefreshInterval after the end allows a new attempt", n)
	}
}

// TestRemoteKeySetHungIssuerUnknownKid: an issuer that accepts connections
// and never answers makes an unknown kid fail after a short wait, not after
// the whole fetch timeout.
func TestRemoteKeySetHungIssuerUnknownKid(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	is.Hang()

	const wait = 300 * time.Millisecond
	ks := resource.NewRemoteKeySet(is.URL(), resource.RemoteOptions{UnknownKIDWait: wait})
	start := time.Now()
	_, err := ks.Key(t.Context(), "k1")
	t.Logf("Key(k1), never fetched, hung issuer, UnknownKIDWait %v: %v", wait, time.Since(start))
	if d := time.Since(start); d > wait+time.Second {
		t.Errorf("Key against a hung issuer took %v, want UnknownKIDWait (%v) plus < 1s", d, wait)
	}
	if !errors.Is(err, resource.ErrKeySetUnavailable) {
		t.Errorf("Key = %v, want ErrKeySetUnavailable", err)
	}

	// The default wait is short too.
	ks = resource.NewRemoteKeySet(is.URL(), resource.RemoteOptions{})
	start = time.Now()
	_, err = ks.Key(t.Context(), "k1")
	t.Logf("Key(k1), never fetched, hung issuer, default UnknownKIDWait: %v", time.Since(start))
	if d := time.Since(start); d > resource.DefaultUnknownKIDWait+time.Second {
		t.Errorf("Key against a hung issuer took %v, want DefaultUnknownKIDWait (%v) plus < 1s", d, resource.DefaultUnknownKIDWait)
	}
	if !errors.Is(err, resource.ErrKeySetUnavailable) {
		t.Errorf("Key = %v, want ErrKeySetUnavailable", err)
	}
}

// TestRemoteKeySetFailureLog: a failed fetch says "serving cached keys"
// only when there are cached keys; before the first success it says that
// tokens are refused (the log once claimed cached keys it did not have).
func TestRemoteKeySetFailureLog(t *testing.T) {
	is := newRemoteTestIssuer(t, "", remoteJWKS(t, remoteECKey(t, "k1")))
	var logs strings.Builder
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	ks := resource.NewRemoteKeySet(is.URL(), resource.RemoteOptions{HTTPClient: is.Client(), Logger: logger})
	is.SetStatus(http.StatusInternalServerError)
	if err := ks.Refresh(t.Context()); err == nil {
		t.Fatal("Refresh succeeded against a failing issuer")
	}
	if !strings.Contains(logs.String(), "no keys yet, tokens are refused") || strings.Contains(logs.String(), "serving cached keys") {
		t.Fatalf("first failure logged %q", logs.String())
	}
	is.SetStatus(http.StatusOK)
	if err := ks.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	is.SetStatus(http.StatusInternalServerError)
	_ = ks.Refresh(t.Context())
	if !strings.Contains(logs.String(), "serving cached keys") {
		t.Fatalf("failure with cached keys logged %q", logs.String())
	}
}
