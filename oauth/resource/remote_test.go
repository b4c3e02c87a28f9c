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
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

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

// hangListener hands connections to its server until hang is set; from
// then on it accepts connections and never answers them, like a proxy that
// stopped forwarding (no response, no RST).
type hangListener struct {
	net.Listener
	hang atomic.Bool

	mu   sync.Mutex
	held []net.Conn
}

func (l *hangListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || !l.hang.Load() {
			return c, err
		}
		l.mu.Lock()
		l.held = append(l.held, c)
		l.mu.Unlock()
	}
}

// heldConns returns how many connections were accepted and left hanging.
func (l *hangListener) heldConns() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.held)
}

// release closes the hanging connections.
func (l *hangListener) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.held {
		_ = c.Close()
	}
}

// remoteTestIssuer serves RFC 8414 metadata under prefix and a JWKS whose
// body, headers and status the test controls.
type remoteTestIssuer struct {
	srv       *httptest.Server
	ln        *hangListener
	issuer    string
	jwksHits  atomic.Int64
	metaHits  atomic.Int64
	notModded atomic.Int64 // 304 answers

	mu           sync.Mutex
	jwks         string
	etag         string
	cacheControl string
	// cacheControlLines, when set, replaces cacheControl: one
	// Cache-Control field line per element.
	cacheControlLines []string
	status            int
	metaIssuer        string        // overrides the issuer in the metadata when set
	gate              chan struct{} // when set, JWKS requests wait for it to close
}

func newRemoteTestIssuer(t *testing.T, path string, jwks string) *remoteTestIssuer {
	t.Helper()
	is := &remoteTestIssuer{jwks: jwks, etag: `"v1"`, cacheControl: "public, max-age=60", status: http.StatusOK}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server"+path, func(w http.ResponseWriter, r *http.Request) {
		is.metaHits.Add(1)
		is.mu.Lock()
		iss := is.metaIssuer
		is.mu.Unlock()
		if iss == "" {
			iss = is.issuer
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": iss, "jwks_uri": is.srv.URL + "/keys"})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		is.jwksHits.Add(1)
		is.mu.Lock()
		gate := is.gate
		is.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		is.mu.Lock()
		defer is.mu.Unlock()
		if is.status != http.StatusOK {
			w.WriteHeader(is.status)
			return
		}
		w.Header().Set("Cache-Control", is.cacheControl)
		if is.cacheControlLines != nil {
			w.Header()["Cache-Control"] = is.cacheControlLines
		}
		w.Header().Set("ETag", is.etag)
		if r.Header.Get("If-None-Match") == is.etag {
			is.notModded.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		_, _ = w.Write([]byte(is.jwks))
	})
	is.srv = httptest.NewUnstartedServer(mux)
	is.ln = &hangListener{Listener: is.srv.Listener}
	is.srv.Listener = is.ln
	is.srv.Start()
	is.issuer = is.srv.URL + path
	t.Cleanup(is.srv.Close)
	t.Cleanup(is.ln.release) // before Close: nothing waits on a held connection
	return is
}

// hang makes the issuer accept connections and never answer, dropping the
// connections it is serving so that clients must connect anew.
func (is *remoteTestIssuer) hang() {
	is.ln.hang.Store(true)
	is.srv.CloseClientConnections()
}

func (is *remoteTestIssuer) set(f func(is *remoteTestIssuer)) {
	is.mu.Lock()
	defer is.mu.Unlock()
	f(is)
}

// keySet returns a key set for is on clock. Its UnknownKIDWait is long, so
// that a loaded machine cannot make a lookup give up on a healthy issuer.
func (is *remoteTestIssuer) keySet(clock *remoteClock) *resource.RemoteKeySet {
	return resource.NewRemoteKeySet(is.issuer, resource.RemoteOptions{
		HTTPClient: is.srv.Client(), Now: clock.Now, UnknownKIDWait: 10 * time.Second,
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
	ks := is.keySet(&remoteClock{t: time.Unix(1_800_000_000, 0)})
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
	ks := is.keySet(clock)
	ctx := t.Context()

	for range 10 {
		if _, err := ks.Key(ctx, "k1"); err != nil {
			t.Fatal(err)
		}
	}
	if is.jwksHits.Load() != 1 || is.metaHits.Load() != 1 {
		t.Fatalf("fetches jwks=%d metadata=%d, want 1 and 1", is.jwksHits.Load(), is.metaHits.Load())
	}

	// Past max-age=60: the stale key is served while the set is revalidated
	// in the background with If-None-Match; 304 keeps the keys.
	clock.Advance(61 * time.Second)
	if _, err := ks.Key(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	resource.WaitRefresh(ks)
	if is.jwksHits.Load() != 2 || is.notModded.Load() != 1 {
		t.Fatalf("after expiry: jwks=%d 304s=%d, want 2 and 1", is.jwksHits.Load(), is.notModded.Load())
	}
	// The 304 extended freshness.
	clock.Advance(30 * time.Second)
	if _, err := ks.Key(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if is.jwksHits.Load() != 2 {
		t.Fatalf("fresh after 304: jwks=%d, want 2", is.jwksHits.Load())
	}

	// Keys removed at the issuer disappear after the next refresh.
	is.set(func(is *remoteTestIssuer) {
		is.jwks = remoteJWKS(t, remoteECKey(t, "k2"))
		is.etag = `"v2"`
	})
	if err := ks.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Key(ctx, "k1"); !errors.Is(err, resource.ErrKeyNotFound) {
		t.Fatalf("Key(k1) after removal = %v, want ErrKeyNotFound", err)
	}
	if _, err := ks.Key(ctx, "k2"); err != nil {
		t.Fatal(err)
	}
	if is.metaHits.Load() != 1 {
		t.Errorf("metadata fetched %d times, want 1", is.metaHits.Load())
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
			is.set(func(is *remoteTestIssuer) { is.cacheControl = tt.cacheControl })
			clock := &remoteClock{t: time.Unix(1_800_000_000, 0)}
			ks := is.keySet(clock)
			if _, err := ks.Key(t.Context(), "k1"); err != nil {
				t.Fatal(err)
			}
			clock.Advance(tt.advance)
			if _, err := ks.Key(t.Context(), "k1"); err != nil {
				t.Fatal(err)
			}
			resource.WaitRefresh(ks) // an expired set is refetched in the background
			if got := is.jwksHits.Load() == 2; got != tt.wantRefetch {
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
			is.set(func(is *remoteTestIssuer) { is.cacheControlLines = tt.lines })
			clock := &remoteClock{t: time.Unix(1_800_000_000, 0)}
			ks := is.keySet(clock)
			if _, err := ks.Key(t.Context(), "k1"); err != nil {
				t.Fatal(err)
			}
			clock.Advance(tt.advance)
			if _, err := ks.Key(t.Context(), "k1"); err != nil {
				t.Fatal(err)
			}
			resource.WaitRefresh(ks) // an expired set is refetched in the background
			if got := is.jwksHits.Load() == 2; got != tt.wantRefetch {
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
		ks := is.keySet(&remoteClock{t: time.Unix(1_800_000_000, 0)})
		if _, err := ks.Key(t.Context(), "k1"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("metadata issuer mismatch", func(t *testing.T) {
		t.Parallel()
		is := newRemoteTestIssuer(t, "", remoteJWKS(t, remoteECKey(t, "k1")))
		is.set(func(is *remoteTestIssuer) { is.metaIssuer = "https://evil.example" })
		clock := &remoteClock{t: time.Unix(1_800_000_000, 0)}
		ks := is.keySet(clock)
		if err := ks.Refresh(t.Context()); err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Fatalf("Refresh = %v, want issuer mismatch", err)
		}
		if _, err := ks.Key(t.Context(), "k1"); !errors.Is(err, resource.ErrKeySetUnavailable) {
			t.Fatalf("Key = %v, want ErrKeySetUnavailable", err)
		}
		if is.jwksHits.Load() != 0 {
			t.Error("JWKS fetched despite mismatching metadata")
		}
		// Discovery is retried once the issuer is fixed.
		is.set(func(is *remoteTestIssuer) { is.metaIssuer = "" })
		clock.Advance(resource.DefaultMinRefreshInterval)
		if _, err := ks.Key(t.Context(), "k1"); err != nil {
			t.Fatalf("Key after fix: %v", err)
		}
	})
	t.Run("trailing slash is a different issuer", func(t *testing.T) {
		t.Parallel()
		is := newRemoteTestIssuer(t, "", remoteJWKS(t, remoteECKey(t, "k1")))
		ks := resource.NewRemoteKeySet(is.issuer+"/", resource.RemoteOptions{HTTPClient: is.srv.Client()})
		if err := ks.Refresh(t.Context()); err == nil {
			t.Fatal("Refresh succeeded for a non-identical issuer")
		}
	})
}

func TestRemoteKeySetStaleOnFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		breakIssuer func(is *remoteTestIssuer)
	}{
		{"server error", func(is *remoteTestIssuer) {
			is.set(func(is *remoteTestIssuer) { is.status = http.StatusInternalServerError })
		}},
		{"malformed JSON", func(is *remoteTestIssuer) {
			is.set(func(is *remoteTestIssuer) { is.jwks = "{not json"; is.etag = `"v2"` })
		}},
		{"oversized body", func(is *remoteTestIssuer) {
			is.set(func(is *remoteTestIssuer) {
				is.jwks = `{"keys":[],"pad":"` + strings.Repeat("x", resource.MaxRemoteResponseSize) + `"}`
				is.etag = `"v2"`
			})
		}},
		{"issuer down", func(is *remoteTestIssuer) { is.srv.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			is := newRemoteTestIssuer(t, "", remoteJWKS(t, remoteECKey(t, "k1")))
			clock := &remoteClock{t: time.Unix(1_800_000_000, 0)}
			ks := is.keySet(clock)
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
	ks := is.keySet(clock)
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if _, err := ks.Key(context.Background(), "bogus"); !errors.Is(err, resource.ErrKeyNotFound) {
				t.Errorf("Key = %v, want ErrKeyNotFound", err)
			}
		})
	}
	wg.Wait()
	if n := is.jwksHits.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches for a concurrent flood, want 1", n)
	}
	for range 50 {
		_, _ = ks.Key(t.Context(), "bogus")
	}
	if n := is.jwksHits.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches within MinRefreshInterval, want 1", n)
	}
	// A new key published at the issuer is found after the interval.
	is.set(func(is *remoteTestIssuer) {
		is.jwks = remoteJWKS(t, remoteECKey(t, "k1"), remoteECKey(t, "k2"))
		is.etag = `"v2"`
	})
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
	ks := resource.NewRemoteKeySet(is.issuer, resource.RemoteOptions{
		HTTPClient: is.srv.Client(), Now: clock.Now, UnknownKIDWait: wait,
	})
	if _, err := ks.Key(t.Context(), "k1"); err != nil {
		t.Fatal(err)
	}
	is.hang()
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
	waitFor(t, "the refresh to reach the issuer", func() bool { return is.ln.heldConns() >= 1 })

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
	if n := is.ln.heldConns(); n != 1 {
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
	ks := resource.NewRemoteKeySet(is.issuer, resource.RemoteOptions{
		HTTPClient: is.srv.Client(), Now: clock.Now, FetchTimeout: 3 * time.Second,
		UnknownKIDWait: 10 * time.Second, // Key(k2) below waits for the attempt to end
	})
	if _, err := ks.Key(t.Context(), "k1"); err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	is.set(func(is *remoteTestIssuer) { is.gate = gate; is.status = http.StatusInternalServerError })
	clock.Advance(61 * time.Second) // stale

	if _, err := ks.Key(t.Context(), "k1"); err != nil { // starts a refresh, which waits at the gate
		t.Fatal(err)
	}
	waitFor(t, "the refresh to reach the issuer", func() bool { return is.jwksHits.Load() == 2 })
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
	if n := is.jwksHits.Load(); n != 2 {
		t.Errorf("%d JWKS fetches, want 2: a new attempt started right after one that outlasted MinRefreshInterval", n)
	}
	clock.Advance(resource.DefaultMinRefreshInterval)
	if _, err := ks.Key(t.Context(), "k2"); !errors.Is(err, resource.ErrKeyNotFound) {
		t.Fatalf("Key(k2) = %v, want ErrKeyNotFound", err)
	}
	if n := is.jwksHits.Load(); n != 3 {
		t.Errorf("%d JWKS fetches, want 3: MinRefreshInterval after the end allows a new attempt", n)
	}
}

// TestRemoteKeySetHungIssuerUnknownKid: an issuer that accepts connections
// and never answers makes an unknown kid fail after a short wait, not after
// the whole fetch timeout.
func TestRemoteKeySetHungIssuerUnknownKid(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl := &hangListener{Listener: ln}
	hl.hang.Store(true)
	t.Cleanup(func() { _ = ln.Close(); hl.release() })
	go func() { _, _ = hl.Accept() }() // returns once ln is closed

	const wait = 300 * time.Millisecond
	ks := resource.NewRemoteKeySet("http://"+ln.Addr().String(), resource.RemoteOptions{UnknownKIDWait: wait})
	start := time.Now()
	_, err = ks.Key(t.Context(), "k1")
	t.Logf("Key(k1), never fetched, hung issuer, UnknownKIDWait %v: %v", wait, time.Since(start))
	if d := time.Since(start); d > wait+time.Second {
		t.Errorf("Key against a hung issuer took %v, want UnknownKIDWait (%v) plus < 1s", d, wait)
	}
	if !errors.Is(err, resource.ErrKeySetUnavailable) {
		t.Errorf("Key = %v, want ErrKeySetUnavailable", err)
	}

	// The default wait is short too.
	ks = resource.NewRemoteKeySet("http://"+ln.Addr().String(), resource.RemoteOptions{})
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
