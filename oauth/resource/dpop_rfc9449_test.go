package resource_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/oauth/dpop"
	"github.com/portcullis-auth/portcullis/oauth/resource"
)

// TestMiddlewareDPoPRequiredClaims: RFC 9449 §4.3 check 3 at a resource
// server: a proof lacking any claim §4.2 requires (jti, htm, htu, iat,
// and ath with an access token, §7) is refused, the request not served.
func TestMiddlewareDPoPRequiredClaims(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	mw := resource.Middleware(newDPoPVerifier(is, &fakeClock{t: testNow}, resource.DPoPOptions{}))(echoDPoP)
	key := newProofKey(t)
	tok := mint(t, is, mintOpts{kid: kid, claims: bound(key.jkt)})
	missing := invalidProof("DPoP proof lacks a required claim (jti, htm, htu, iat)")
	for _, tt := range []struct {
		claim string
		want  dpopResponse
	}{
		{"jti", missing}, {"htm", missing}, {"htu", missing}, {"iat", missing},
		{"ath", invalidProof("DPoP proof ath does not match the access token")},
	} {
		t.Run(tt.claim, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			mw.ServeHTTP(rec, dpopRequest(tok, key.proof(t, tok, func(h, c map[string]any) { delete(c, tt.claim) })))
			tt.want.check(t, rec)
		})
	}
}

// TestMiddlewareDPoPNotProxyAuthorization: the DPoP scheme is for origin
// server authentication only; it MUST NOT be used with
// Proxy-Authorization or Proxy-Authenticate (RFC 9449 §7.1). A token in
// Proxy-Authorization is not a credential: the request is answered as one
// without credentials, and no answer ever carries Proxy-Authenticate.
func TestMiddlewareDPoPNotProxyAuthorization(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	mw := resource.Middleware(newDPoPVerifier(is, &fakeClock{t: testNow}, resource.DPoPOptions{}))(echoDPoP)
	key := newProofKey(t)
	tok := mint(t, is, mintOpts{kid: kid, claims: bound(key.jkt)})
	noCredentials := dpopResponse{401, []string{`Bearer realm="` + testAudience + `"`, "DPoP " + allAlgs}, "unauthorized", ""}
	for _, tt := range []struct {
		name  string
		setup func(r *http.Request)
		want  dpopResponse
	}{
		{"DPoP token in Proxy-Authorization", func(r *http.Request) {
			r.Header.Set("Proxy-Authorization", "DPoP "+tok)
			r.Header.Set("DPoP", key.proof(t, tok, nil))
		}, noCredentials},
		{"bad proof in Authorization", func(r *http.Request) {
			r.Header.Set("Authorization", "DPoP "+tok)
			r.Header.Set("DPoP", key.proof(t, tok, set("htm", "PUT")))
		}, invalidProof("DPoP proof htm does not match the request")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(http.MethodGet, testURL, nil)
			tt.setup(req)
			rec := httptest.NewRecorder()
			mw.ServeHTTP(rec, req)
			tt.want.check(t, rec)
			if v := rec.Header().Values("Proxy-Authenticate"); len(v) != 0 {
				t.Errorf("Proxy-Authenticate %q", v)
			}
		})
	}
}

// TestMiddlewareDPoPOneNonceHeader: a resource server demanding nonces
// (RFC 9449 §9) sends exactly one DPoP-Nonce (§8: "there MUST NOT be more
// than one DPoP-Nonce header"), on the refusal and on success; once it has
// supplied a nonce, a proof without one is refused however good it is
// otherwise (§11.3), and a proof with it is accepted.
func TestMiddlewareDPoPOneNonceHeader(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	clock := &fakeClock{t: testNow}
	nonces := dpop.NewNonces([]byte("0123456789abcdef0123456789abcdef"), time.Minute, clock.Now)
	mw := resource.Middleware(newDPoPVerifier(is, clock, resource.DPoPOptions{Nonces: nonces}))(echoDPoP)
	key := newProofKey(t)
	tok := mint(t, is, mintOpts{kid: kid, claims: bound(key.jkt)})

	rec := httptest.NewRecorder()
	mw.ServeHTTP(rec, dpopRequest(tok, key.proof(t, tok, nil)))
	dpopResponse{401, []string{`DPoP error="use_dpop_nonce", error_description="DPoP proof requires a fresh server nonce", ` + allAlgs},
		"use_dpop_nonce", ""}.check(t, rec)
	got := rec.Header().Values("DPoP-Nonce")
	if len(got) != 1 || got[0] != nonces.Current() {
		t.Fatalf("refusal: DPoP-Nonce %q, want exactly the current nonce", got)
	}
	nonce := got[0]

	// The same proof again, once more without a nonce: still refused.
	rec = httptest.NewRecorder()
	mw.ServeHTTP(rec, dpopRequest(tok, key.proof(t, tok, nil)))
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("proof without the supplied nonce: %d", rec.Code)
	}

	rec = httptest.NewRecorder()
	mw.ServeHTTP(rec, dpopRequest(tok, key.proof(t, tok, set("nonce", nonce))))
	dpopResponse{200, nil, "", "sub=user-123 jkt=" + key.jkt}.check(t, rec)
	if got := rec.Header().Values("DPoP-Nonce"); len(got) != 1 || got[0] != nonces.Current() {
		t.Fatalf("success: DPoP-Nonce %q, want exactly the current nonce", got)
	}
}

// TestMiddlewareDPoPEscapedPath: the URI a proof must name is the
// request's as sent, percent-encoding included: a proof for /users/me is
// not one for /users%2Fme, another URI (RFC 3986 §2.2; RFC 9449 §4.3
// check 9), and the proof that names /users%2Fme is accepted there.
func TestMiddlewareDPoPEscapedPath(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	mw := resource.Middleware(newDPoPVerifier(is, &fakeClock{t: testNow}, resource.DPoPOptions{}))(echoDPoP)
	key := newProofKey(t)
	tok := mint(t, is, mintOpts{kid: kid, claims: bound(key.jkt)})
	const escaped = "http://api.example.test/users%2Fme"
	for _, tt := range []struct {
		htu  string
		want dpopResponse
	}{
		{testURL, invalidProof("DPoP proof htu does not match the request")},
		{escaped, dpopResponse{200, nil, "", "sub=user-123 jkt=" + key.jkt}},
		{"http://api.example.test/users%2fme", dpopResponse{200, nil, "", "sub=user-123 jkt=" + key.jkt}},
	} {
		t.Run(tt.htu, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(http.MethodGet, escaped, nil)
			req.Header.Set("Authorization", "DPoP "+tok)
			req.Header.Set("DPoP", key.proof(t, tok, set("htu", tt.htu)))
			rec := httptest.NewRecorder()
			mw.ServeHTTP(rec, req)
			tt.want.check(t, rec)
		})
	}
}

// TestMiddlewareDPoPConcurrentReplay: one proof sent in many requests at
// once is accepted by exactly one of them (RFC 9449 §11.1), whatever the
// interleaving of the check and the spending of the proof.
func TestMiddlewareDPoPConcurrentReplay(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	mw := resource.Middleware(newDPoPVerifier(is, &fakeClock{t: testNow}, resource.DPoPOptions{}))(echoDPoP)
	key := newProofKey(t)
	tok := mint(t, is, mintOpts{kid: kid, claims: bound(key.jkt)})
	proof := key.proof(t, tok, nil)
	const n = 32
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			rec := httptest.NewRecorder()
			mw.ServeHTTP(rec, dpopRequest(tok, proof))
			codes <- rec.Code
		})
	}
	wg.Wait()
	close(codes)
	counts := map[int]int{}
	for c := range codes {
		counts[c]++
	}
	if counts[http.StatusOK] != 1 || counts[http.StatusUnauthorized] != n-1 {
		t.Fatalf("statuses %v, want one 200 and %d 401", counts, n-1)
	}
}
