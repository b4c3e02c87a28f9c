package resource_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/oauth/dpop"
	"github.com/portcullis-auth/portcullis/oauth/resource"
)

// testURL is where the unit tests' resource lives (httptest.NewRequest:
// Host api.example.test, no TLS).
const testURL = "http://api.example.test/users/me"

// allAlgs is the algs parameter of challenges with the default allow-list.
const allAlgs = `algs="ES256 ES384 ES512 PS256 PS384 PS512 RS256 RS384 RS512 EdDSA"`

// echoDPoP writes "sub=<subject> jkt=<JKT>" from the context claims.
var echoDPoP = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	c, ok := resource.ClaimsFromContext(r.Context())
	if !ok {
		http.Error(w, "no claims", http.StatusInternalServerError)
		return
	}
	fmt.Fprintf(w, "sub=%s jkt=%s", c.Subject, c.JKT)
})

// proofKey is a client's DPoP key for hand-made proofs.
type proofKey struct {
	priv *ecdsa.PrivateKey
	jkt  string
}

func newProofKey(t testing.TB) *proofKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &proofKey{priv: priv, jkt: thumbprint(t, &priv.PublicKey)}
}

// thumbprint returns the RFC 7638 SHA-256 thumbprint of pub.
func thumbprint(t testing.TB, pub crypto.PublicKey) string {
	t.Helper()
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}

// jtiSeq makes the jti of every hand-made proof unique.
var jtiSeq atomic.Int64

// proof returns an ES256 proof of k for GET testURL at testNow with the
// ath of token (none when token is empty); mod changes the header and
// claims before signing.
func (k *proofKey) proof(t testing.TB, token string, mod func(header, claims map[string]any)) string {
	t.Helper()
	header := map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": jose.JSONWebKey{Key: &k.priv.PublicKey}}
	claims := map[string]any{
		"jti": fmt.Sprint("proof-", jtiSeq.Add(1)), "htm": "GET", "htu": testURL, "iat": testNow.Unix(),
	}
	if token != "" {
		claims["ath"] = dpop.AccessTokenHash(token)
	}
	if mod != nil {
		mod(header, claims)
	}
	return testkit.SignJWS(t, k.priv, header, claims)
}

// encodeSegments returns base64url(JSON header) "." base64url(JSON claims).
func encodeSegments(t testing.TB, header, claims map[string]any) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
}

// joseProof signs a proof for GET testURL at testNow with ath of token
// with go-jose: any algorithm, jwk embedded.
func joseProof(t testing.TB, alg jose.SignatureAlgorithm, key crypto.Signer, token string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key},
		(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(map[string]any{
		"jti": fmt.Sprint("proof-", jtiSeq.Add(1)), "htm": "GET", "htu": testURL, "iat": testNow.Unix(),
		"ath": dpop.AccessTokenHash(token),
	})
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// bound returns mint claims binding the token to jkt.
func bound(jkt string) func(map[string]any) {
	return func(c map[string]any) { c["cnf"] = map[string]any{"jkt": jkt} }
}

// newDPoPVerifier returns a verifier of is on clock with DPoP options o.
func newDPoPVerifier(is *testkit.Issuer, clock *fakeClock, o resource.DPoPOptions) *resource.Verifier {
	ks := resource.NewRemoteKeySet(is.URL(), resource.RemoteOptions{
		HTTPClient: is.Client(), Now: clock.Now, UnknownKIDWait: 10 * time.Second,
	})
	return resource.NewVerifier(ks, resource.Options{
		Issuer: is.URL(), Audience: testAudience, Now: clock.Now, DPoP: o,
	})
}

// dpopResponse is what a test checks of an answer.
type dpopResponse struct {
	status     int
	challenges []string // every WWW-Authenticate value, exactly
	error      string   // JSON error; "" for success
	body       string   // success body
}

// check compares rec with want.
func (want dpopResponse) check(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code != want.status {
		t.Fatalf("status = %d, want %d; body %s; WWW-Authenticate %q", rec.Code, want.status, rec.Body, rec.Header().Values("WWW-Authenticate"))
	}
	got := rec.Header().Values("WWW-Authenticate")
	if strings.Join(got, "\n") != strings.Join(want.challenges, "\n") {
		t.Errorf("WWW-Authenticate =\n %q\nwant\n %q", got, want.challenges)
	}
	if want.error == "" {
		if rec.Body.String() != want.body {
			t.Errorf("body = %q, want %q", rec.Body, want.body)
		}
		return
	}
	assertJSONError(t, rec, want.error)
}

func invalidProof(desc string) dpopResponse {
	return dpopResponse{401, []string{`DPoP error="invalid_dpop_proof", error_description="` + desc + `", ` + allAlgs}, "invalid_dpop_proof", ""}
}

func invalidDPoPToken(desc string) dpopResponse {
	return dpopResponse{401, []string{`DPoP error="invalid_token", error_description="` + desc + `", ` + allAlgs}, "invalid_token", ""}
}

func TestMiddlewareDPoP(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	clock := &fakeClock{t: testNow}
	v := newDPoPVerifier(is, clock, resource.DPoPOptions{})
	mw := resource.Middleware(v)

	key, other := newProofKey(t), newProofKey(t)
	tok := mint(t, is, mintOpts{kid: kid, claims: bound(key.jkt)})
	unbound := mint(t, is, mintOpts{kid: kid})
	expired := mint(t, is, mintOpts{kid: kid, claims: func(c map[string]any) {
		bound(key.jkt)(c)
		c["exp"] = testNow.Add(-time.Hour).Unix()
	}})
	edKey := testkit.GenerateKey(t, jose.EdDSA)
	rsaKey := testkit.GenerateKey(t, jose.RS256)
	edTok := mint(t, is, mintOpts{kid: kid, claims: bound(thumbprint(t, edKey.Public()))})
	rsaTok := mint(t, is, mintOpts{kid: kid, claims: bound(thumbprint(t, rsaKey.Public()))})
	setHeader := func(name string, value any) func(h, c map[string]any) {
		return func(h, c map[string]any) {
			if value == nil {
				delete(h, name)
				return
			}
			h[name] = value
		}
	}
	// hs256 is a proof MACed with a secret, its jwk header the key's.
	hs256 := func() string {
		input := encodeSegments(t, map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": jose.JSONWebKey{Key: &key.priv.PublicKey}},
			map[string]any{"jti": "hs", "htm": "GET", "htu": testURL, "iat": testNow.Unix(), "ath": dpop.AccessTokenHash(tok)})
		m := hmac.New(sha256.New, []byte("0123456789abcdef0123456789abcdef"))
		m.Write([]byte(input))
		return input + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	none := encodeSegments(t, map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": jose.JSONWebKey{Key: &key.priv.PublicKey}},
		map[string]any{"jti": "none", "htm": "GET", "htu": testURL, "iat": testNow.Unix(), "ath": dpop.AccessTokenHash(tok)}) + "."

	ok := dpopResponse{200, nil, "", "sub=user-123 jkt=" + key.jkt}
	tests := []struct {
		name    string
		handler http.Handler // default mw(echoDPoP)
		target  string       // default testURL
		method  string       // default GET
		auth    []string
		proofs  []string
		want    dpopResponse
	}{
		{name: "bound token and good proof", auth: []string{"DPoP " + tok}, proofs: []string{key.proof(t, tok, nil)}, want: ok},
		{name: "scheme in lower case", auth: []string{"dpop " + tok}, proofs: []string{key.proof(t, tok, nil)}, want: ok},
		{name: "query is not part of htu", target: testURL + "?page=2", auth: []string{"DPoP " + tok}, proofs: []string{key.proof(t, tok, nil)}, want: ok},
		{name: "htu with query and default port", auth: []string{"DPoP " + tok},
			proofs: []string{key.proof(t, tok, set("htu", "HTTP://API.example.test:80/users/me?x=1"))}, want: ok},
		{name: "https request", target: "https://api.example.test/users/me", auth: []string{"DPoP " + tok},
			proofs: []string{key.proof(t, tok, set("htu", "https://api.example.test/users/me"))}, want: ok},
		{name: "iat at the end of the window", auth: []string{"DPoP " + tok},
			proofs: []string{key.proof(t, tok, set("iat", testNow.Add(-dpop.DefaultMaxAge).Unix()))}, want: ok},
		{name: "iat slightly ahead", auth: []string{"DPoP " + tok},
			proofs: []string{key.proof(t, tok, set("iat", testNow.Add(dpop.DefaultLeeway).Unix()))}, want: ok},
		{name: "EdDSA proof", auth: []string{"DPoP " + edTok}, proofs: []string{joseProof(t, jose.EdDSA, edKey, edTok)},
			want: dpopResponse{200, nil, "", "sub=user-123 jkt=" + thumbprint(t, edKey.Public())}},
		{name: "PS256 proof", auth: []string{"DPoP " + rsaTok}, proofs: []string{joseProof(t, jose.PS256, rsaKey, rsaTok)},
			want: dpopResponse{200, nil, "", "sub=user-123 jkt=" + thumbprint(t, rsaKey.Public())}},

		// The proof does not match the request.
		{name: "wrong htm", auth: []string{"DPoP " + tok}, proofs: []string{key.proof(t, tok, set("htm", "POST"))},
			want: invalidProof("DPoP proof htm does not match the request")},
		{name: "htm in lower case", auth: []string{"DPoP " + tok}, proofs: []string{key.proof(t, tok, set("htm", "get"))},
			want: invalidProof("DPoP proof htm does not match the request")},
		{name: "proof for GET on a POST", method: http.MethodPost, auth: []string{"DPoP " + tok}, proofs: []string{key.proof(t, tok, nil)},
			want: invalidProof("DPoP proof htm does not match the request")},
		{name: "wrong htu host", auth: []string{"DPoP " + tok}, proofs: []string{key.proof(t, tok, set("htu", "http://other.example.test/users/me"))},
			want: invalidProof("DPoP proof htu does not match the request")},
		{name: "wrong htu path", auth: []string{"DPoP " + tok}, proofs: []string{key.proof(t, tok, set("htu", "http://api.example.test/users/you"))},
			want: invalidProof("DPoP proof htu does not match the request")},
		{name: "htu https on an http request", auth: []string{"DPoP " + tok}, proofs: []string{key.proof(t, tok, set("htu", "https://api.example.test/users/me"))},
			want: invalidProof("DPoP proof htu does not match the request")},
		{name: "htu relative", auth: []string{"DPoP " + tok}, proofs: []string{key.proof(t, tok, set("htu", "/users/me"))},
			want: invalidProof("DPoP proof htu does not match the request")},
		{name: "ath missing", auth: []string{"DPoP " + tok}, proofs: []string{key.proof(t, "", nil)},
			want: invalidProof("DPoP proof ath does not match the access token")},
		{name: "ath of another token", auth: []string{"DPoP " + tok}, proofs: []string{key.proof(t, unbound, nil)},
			want: invalidProof("DPoP proof ath does not match the access token")},
		{name: "iat too old", auth: []string{"DPoP " + tok},
			proofs: []string{key.proof(t, tok, set("iat", testNow.Add(-dpop.DefaultMaxAge-time.Second).Unix()))},
			want:   invalidProof("DPoP proof iat is outside the acceptance window")},
		{name: "iat in the future", auth: []string{"DPoP " + tok},
			proofs: []string{key.proof(t, tok, set("iat", testNow.Add(dpop.DefaultLeeway+time.Second).Unix()))},
			want:   invalidProof("DPoP proof iat is outside the acceptance window")},
		{name: "iat a string", auth: []string{"DPoP " + tok}, proofs: []string{key.proof(t, tok, set("iat", fmt.Sprint(testNow.Unix())))},
			want: invalidProof("DPoP proof iat must be a NumericDate")},
		{name: "jti missing", auth: []string{"DPoP " + tok}, proofs: []string{key.proof(t, tok, func(h, c map[string]any) { delete(c, "jti") })},
			want: invalidProof("DPoP proof lacks a required claim (jti, htm, htu, iat)")},

		// The proof is not an acceptable proof at all.
		{name: "alg none", auth: []string{"DPoP " + tok}, proofs: []string{none},
			want: invalidProof("DPoP proof is not a well-formed JWS")},
		{name: "alg none with a signature", auth: []string{"DPoP " + tok}, proofs: []string{none + "c2ln"},
			want: invalidProof("DPoP proof algorithm not allowed")},
		{name: "HS256", auth: []string{"DPoP " + tok}, proofs: []string{hs256()},
			want: invalidProof("DPoP proof algorithm not allowed")},
		{name: "ES384 header on a P-256 key", auth: []string{"DPoP " + tok}, proofs: []string{key.proof(t, tok, setHeader("alg", "ES384"))},
			want: invalidProof("DPoP proof algorithm does not fit its key")},
		// go-jose refuses a private embedded jwk while parsing.
		{name: "private jwk", auth: []string{"DPoP " + tok}, proofs: []string{key.proof(t, tok, setHeader("jwk", jose.JSONWebKey{Key: key.priv}))},
			want: invalidProof("DPoP proof is not a well-formed JWS")},
		{name: "symmetric jwk", auth: []string{"DPoP " + tok}, proofs: []string{key.proof(t, tok, setHeader("jwk", map[string]any{"kty": "oct", "k": "c2VjcmV0"}))},
			want: invalidProof("DPoP proof is not a well-formed JWS")},
		{name: "no jwk", auth: []string{"DPoP " + tok}, proofs: []string{key.proof(t, tok, setHeader("jwk", nil))},
			want: invalidProof("DPoP proof has no jwk header")},
		{name: "typ JWT", auth: []string{"DPoP " + tok}, proofs: []string{key.proof(t, tok, setHeader("typ", "JWT"))},
			want: invalidProof("DPoP proof typ must be dpop+jwt")},
		{name: "jwk of another key than the signature's", auth: []string{"DPoP " + tok},
			proofs: []string{key.proof(t, tok, setHeader("jwk", jose.JSONWebKey{Key: &other.priv.PublicKey}))},
			want:   invalidProof("DPoP proof signature invalid")},
		{name: "the access token as proof", auth: []string{"DPoP " + tok}, proofs: []string{tok},
			want: invalidProof("DPoP proof typ must be dpop+jwt")},
		{name: "garbage proof", auth: []string{"DPoP " + tok}, proofs: []string{"garbage"},
			want: invalidProof("DPoP proof is not a well-formed JWS")},

		// Header counts (RFC 9449 §4.3 check 1).
		{name: "no DPoP header", auth: []string{"DPoP " + tok}, want: invalidProof("DPoP proof missing")},
		{name: "two DPoP headers", auth: []string{"DPoP " + tok}, proofs: []string{key.proof(t, tok, nil), key.proof(t, tok, nil)},
			want: invalidProof("more than one DPoP proof")},
		{name: "empty DPoP token", auth: []string{"DPoP "}, proofs: []string{key.proof(t, tok, nil)},
			want: dpopResponse{400, []string{`DPoP error="invalid_request", ` + allAlgs}, "invalid_request", ""}},

		// The token does not fit the scheme or the proof.
		{name: "proof from another key", auth: []string{"DPoP " + tok}, proofs: []string{other.proof(t, tok, nil)},
			want: invalidDPoPToken("DPoP proof key does not match the token's binding")},
		{name: "unbound token with the DPoP scheme", auth: []string{"DPoP " + unbound}, proofs: []string{key.proof(t, unbound, nil)},
			want: invalidDPoPToken("token is not DPoP-bound: present it with the Bearer scheme")},
		{name: "expired bound token", auth: []string{"DPoP " + expired}, proofs: []string{key.proof(t, expired, nil)},
			want: invalidDPoPToken("token expired")},
		{name: "garbage token", auth: []string{"DPoP not-a-jwt"}, proofs: []string{key.proof(t, "not-a-jwt", nil)},
			want: invalidDPoPToken("token is not a compact JWS")},
		{name: "bound token as Bearer", auth: []string{"Bearer " + tok},
			want: dpopResponse{401, []string{
				`Bearer error="invalid_token", error_description="token is DPoP-bound: present it with the DPoP scheme and a proof"`,
				"DPoP " + allAlgs}, "invalid_token", ""}},
		{name: "bound token as Bearer with a good proof", auth: []string{"Bearer " + tok}, proofs: []string{key.proof(t, tok, nil)},
			want: dpopResponse{401, []string{
				`Bearer error="invalid_token", error_description="token is DPoP-bound: present it with the DPoP scheme and a proof"`,
				"DPoP " + allAlgs}, "invalid_token", ""}},
		{name: "unbound token as Bearer still works", auth: []string{"Bearer " + unbound}, proofs: []string{"ignored"},
			want: dpopResponse{200, nil, "", "sub=user-123 jkt="}},

		// No credentials: both schemes are offered.
		{name: "no credentials", want: dpopResponse{401, []string{`Bearer realm="` + testAudience + `"`, "DPoP " + allAlgs}, "unauthorized", ""}},
		{name: "unknown scheme", auth: []string{"Basic dXNlcjpwYXNz"},
			want: dpopResponse{401, []string{`Bearer realm="` + testAudience + `"`, "DPoP " + allAlgs}, "unauthorized", ""}},

		// Authorization answers in the scheme the request used.
		{name: "scope missing, DPoP", handler: mw(resource.RequireScope("users:write")(echoDPoP)),
			auth: []string{"DPoP " + tok}, proofs: []string{key.proof(t, tok, nil)},
			want: dpopResponse{403, []string{`DPoP error="insufficient_scope", scope="users:write"`}, "insufficient_scope", ""}},
		{name: "scope missing, Bearer", handler: mw(resource.RequireScope("users:write")(echoDPoP)), auth: []string{"Bearer " + unbound},
			want: dpopResponse{403, []string{`Bearer error="insufficient_scope", scope="users:write"`}, "insufficient_scope", ""}},
		{name: "role missing, DPoP", handler: mw(resource.RequireRole("root")(echoDPoP)),
			auth: []string{"DPoP " + tok}, proofs: []string{key.proof(t, tok, nil)},
			want: dpopResponse{403, []string{`DPoP error="insufficient_scope", error_description="token lacks required role: root"`}, "insufficient_scope", ""}},
		{name: "scope and role present, DPoP", handler: mw(resource.RequireScope("users:read")(resource.RequireRole("admin")(resource.RequireUser()(echoDPoP)))),
			auth: []string{"DPoP " + tok}, proofs: []string{key.proof(t, tok, nil)}, want: ok},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, target, method := tt.handler, tt.target, tt.method
			if h == nil {
				h = mw(echoDPoP)
			}
			if target == "" {
				target = testURL
			}
			if method == "" {
				method = http.MethodGet
			}
			req := httptest.NewRequest(method, target, nil)
			for _, a := range tt.auth {
				req.Header.Add("Authorization", a)
			}
			for _, p := range tt.proofs {
				req.Header.Add("DPoP", p)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			tt.want.check(t, rec)
			if rec.Header().Get("DPoP-Nonce") != "" {
				t.Errorf("DPoP-Nonce %q sent without Options.DPoP.Nonces", rec.Header().Get("DPoP-Nonce"))
			}
		})
	}
}

// dpopRequest returns GET testURL with a DPoP token and proofs.
func dpopRequest(token string, proofs ...string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, testURL, nil)
	req.Header.Set("Authorization", "DPoP "+token)
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	return req
}

func TestMiddlewareDPoPReplay(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	clock := &fakeClock{t: testNow}
	mw := resource.Middleware(newDPoPVerifier(is, clock, resource.DPoPOptions{}))(echoDPoP)
	key := newProofKey(t)
	tok := mint(t, is, mintOpts{kid: kid, claims: bound(key.jkt)})

	proof := key.proof(t, tok, nil)
	rec := httptest.NewRecorder()
	mw.ServeHTTP(rec, dpopRequest(tok, proof))
	dpopResponse{200, nil, "", "sub=user-123 jkt=" + key.jkt}.check(t, rec)
	// The same proof again, within its window and later, with the cached
	// token: refused.
	for _, d := range []time.Duration{0, 30 * time.Second} {
		clock.Advance(d)
		rec = httptest.NewRecorder()
		mw.ServeHTTP(rec, dpopRequest(tok, proof))
		invalidProof("DPoP proof was used before").check(t, rec)
	}
	// A new proof of the same key is fine.
	rec = httptest.NewRecorder()
	mw.ServeHTTP(rec, dpopRequest(tok, key.proof(t, tok, set("iat", clock.Now().Unix()))))
	dpopResponse{200, nil, "", "sub=user-123 jkt=" + key.jkt}.check(t, rec)
}

// set returns a proof modifier setting claim name.
func set(name string, value any) func(h, c map[string]any) {
	return func(h, c map[string]any) { c[name] = value }
}

// failingReplay is a replay cache that cannot answer.
type failingReplay struct{ calls atomic.Int64 }

func (f *failingReplay) AddProof(context.Context, string, time.Time) (bool, error) {
	f.calls.Add(1)
	return false, errors.New("replay store down")
}

func TestMiddlewareDPoPReplayCacheFails(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	key := newProofKey(t)
	tok := mint(t, is, mintOpts{kid: kid, claims: bound(key.jkt)})
	tests := []struct {
		name   string
		replay func(now func() time.Time) dpop.ReplayCache
		before int // proofs accepted first
	}{
		{"store down", func(func() time.Time) dpop.ReplayCache { return &failingReplay{} }, 0},
		{"memory cache full", func(now func() time.Time) dpop.ReplayCache { return dpop.NewMemoryReplayCache(1, now) }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{t: testNow}
			replay := tt.replay(clock.Now)
			mw := resource.Middleware(newDPoPVerifier(is, clock, resource.DPoPOptions{Replay: replay}))(echoDPoP)
			for range tt.before {
				rec := httptest.NewRecorder()
				mw.ServeHTTP(rec, dpopRequest(tok, key.proof(t, tok, nil)))
				if rec.Code != http.StatusOK {
					t.Fatalf("status = %d, want 200", rec.Code)
				}
			}
			rec := httptest.NewRecorder()
			mw.ServeHTTP(rec, dpopRequest(tok, key.proof(t, tok, nil)))
			dpopResponse{503, nil, resource.CodeTemporarilyUnavailable, ""}.check(t, rec)
			if rec.Header().Get("Retry-After") == "" {
				t.Error("no Retry-After")
			}
			if f, ok := replay.(*failingReplay); ok && f.calls.Load() != 1 {
				t.Errorf("replay cache asked %d times, want 1", f.calls.Load())
			}
		})
	}
}

// countingReplay counts the proofs offered to a memory replay cache.
type countingReplay struct {
	calls atomic.Int64
	*dpop.MemoryReplayCache
}

func (c *countingReplay) AddProof(ctx context.Context, id string, expires time.Time) (bool, error) {
	c.calls.Add(1)
	return c.MemoryReplayCache.AddProof(ctx, id, expires)
}

// TestMiddlewareDPoPSpendsOnlyAcceptedProofs: a request refused for its
// token, its proof or the proof's key writes nothing to the replay cache
// (which may be a shared store); an accepted one records its proof once.
func TestMiddlewareDPoPSpendsOnlyAcceptedProofs(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	clock := &fakeClock{t: testNow}
	key, other := newProofKey(t), newProofKey(t)
	tok := mint(t, is, mintOpts{kid: kid, claims: bound(key.jkt)})
	unbound := mint(t, is, mintOpts{kid: kid})
	for _, tt := range []struct {
		name  string
		req   *http.Request
		calls int64
	}{
		{"proof from another key", dpopRequest(tok, other.proof(t, tok, nil)), 0},
		{"wrong htm", dpopRequest(tok, key.proof(t, tok, set("htm", "POST"))), 0},
		{"unbound token", dpopRequest(unbound, key.proof(t, unbound, nil)), 0},
		{"token from nowhere", dpopRequest("a.b.c", key.proof(t, "a.b.c", nil)), 0},
		{"accepted", dpopRequest(tok, key.proof(t, tok, nil)), 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			replay := &countingReplay{MemoryReplayCache: dpop.NewMemoryReplayCache(0, clock.Now)}
			mw := resource.Middleware(newDPoPVerifier(is, clock, resource.DPoPOptions{Replay: replay}))(echoDPoP)
			rec := httptest.NewRecorder()
			mw.ServeHTTP(rec, tt.req)
			if (rec.Code == http.StatusOK) != (tt.calls == 1) || replay.calls.Load() != tt.calls {
				t.Fatalf("status %d, %d replay cache writes; want %d", rec.Code, replay.calls.Load(), tt.calls)
			}
		})
	}
}

func TestMiddlewareDPoPDisabled(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	mw := resource.Middleware(newDPoPVerifier(is, &fakeClock{t: testNow}, resource.DPoPOptions{Disabled: true}))(echoDPoP)
	key := newProofKey(t)
	tok := mint(t, is, mintOpts{kid: kid, claims: bound(key.jkt)})
	unbound := mint(t, is, mintOpts{kid: kid})
	realm := `Bearer realm="` + testAudience + `"`
	tests := []struct {
		name  string
		req   *http.Request
		want  dpopResponse
		bodyD string
	}{
		{"no credentials: Bearer only", httptest.NewRequest(http.MethodGet, testURL, nil),
			dpopResponse{401, []string{realm}, "unauthorized", ""}, ""},
		{"DPoP scheme is unknown", dpopRequest(tok, key.proof(t, tok, nil)),
			dpopResponse{401, []string{realm}, "unauthorized", ""}, ""},
		{"bound token as Bearer", func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, testURL, nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			return r
		}(), dpopResponse{401, []string{`Bearer error="invalid_token", error_description="token is DPoP-bound: present it with the DPoP scheme and a proof"`}, "invalid_token", ""}, ""},
		{"unbound Bearer", func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, testURL, nil)
			r.Header.Set("Authorization", "Bearer "+unbound)
			return r
		}(), dpopResponse{200, nil, "", "sub=user-123 jkt="}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			mw.ServeHTTP(rec, tt.req)
			tt.want.check(t, rec)
		})
	}
}

func TestMiddlewareDPoPAlgorithms(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	mw := resource.Middleware(newDPoPVerifier(is, &fakeClock{t: testNow},
		resource.DPoPOptions{Algorithms: []string{"EdDSA", "HS256", "none"}}))(echoDPoP)
	key := newProofKey(t)
	tok := mint(t, is, mintOpts{kid: kid, claims: bound(key.jkt)})

	rec := httptest.NewRecorder()
	mw.ServeHTTP(rec, dpopRequest(tok, key.proof(t, tok, nil)))
	dpopResponse{401, []string{`DPoP error="invalid_dpop_proof", error_description="DPoP proof algorithm not allowed", algs="EdDSA"`},
		"invalid_dpop_proof", ""}.check(t, rec)

	rec = httptest.NewRecorder()
	mw.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, testURL, nil))
	dpopResponse{401, []string{`Bearer realm="` + testAudience + `"`, `DPoP algs="EdDSA"`}, "unauthorized", ""}.check(t, rec)
}

// TestMiddlewareDPoPWindow: MaxAge and Leeway set the iat window.
func TestMiddlewareDPoPWindow(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	mw := resource.Middleware(newDPoPVerifier(is, &fakeClock{t: testNow},
		resource.DPoPOptions{MaxAge: 10 * time.Second, Leeway: -1}))(echoDPoP)
	key := newProofKey(t)
	tok := mint(t, is, mintOpts{kid: kid, claims: bound(key.jkt)})
	for _, tt := range []struct {
		iat  time.Duration
		want int
	}{{-10 * time.Second, 200}, {-11 * time.Second, 401}, {0, 200}, {time.Second, 401}} {
		rec := httptest.NewRecorder()
		mw.ServeHTTP(rec, dpopRequest(tok, key.proof(t, tok, set("iat", testNow.Add(tt.iat).Unix()))))
		if rec.Code != tt.want {
			t.Errorf("iat now%+v: status %d, want %d", tt.iat, rec.Code, tt.want)
		}
	}
}

// liveClaims makes a token valid now (for tests with real clocks, such as
// those using dpop.Key, whose proofs carry the real time).
func liveClaims(jkt string) func(map[string]any) {
	return func(c map[string]any) {
		now := time.Now()
		c["iat"], c["nbf"], c["exp"] = now.Unix(), now.Unix(), now.Add(time.Hour).Unix()
		if jkt != "" {
			c["cnf"] = map[string]any{"jkt": jkt}
		}
	}
}

// liveVerifier returns a verifier of is on the real clock.
func liveVerifier(is *testkit.Issuer, audience string, o resource.DPoPOptions) *resource.Verifier {
	ks := resource.NewRemoteKeySet(is.URL(), resource.RemoteOptions{HTTPClient: is.Client(), UnknownKIDWait: 10 * time.Second})
	return resource.NewVerifier(ks, resource.Options{Issuer: is.URL(), Audience: audience, DPoP: o})
}

// get sends GET u with "Authorization: DPoP token" through client and
// returns the status, the body and the response.
func get(t *testing.T, client *http.Client, u, scheme, token string) (int, string, *http.Response) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", scheme+" "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp
}

// TestMiddlewareDPoPNonce: with Options.DPoP.Nonces, a proof without the
// resource server's nonce gets use_dpop_nonce and the nonce; dpop.Transport
// retries with it and keeps it for later requests.
func TestMiddlewareDPoPNonce(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	nonces := dpop.NewNonces([]byte("0123456789abcdef0123456789abcdef"), 0, nil)
	var hits atomic.Int64
	mux := http.NewServeMux()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		mux.ServeHTTP(w, r)
	}))
	defer api.Close()
	// The audience is the server's URL, known once it runs.
	mux.Handle("/", resource.Middleware(liveVerifier(is, api.URL, resource.DPoPOptions{Nonces: nonces}))(echoDPoP))

	key, err := dpop.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	tok := mint(t, is, mintOpts{kid: kid, claims: func(c map[string]any) {
		liveClaims(key.Thumbprint())(c)
		c["aud"] = api.URL
	}})

	// A proof without a nonce, by hand: refused, with the nonce.
	proof, err := key.Proof(http.MethodGet, api.URL+"/users/me", tok, "")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, api.URL+"/users/me", nil)
	req.Header.Set("Authorization", "DPoP "+tok)
	req.Header.Set("DPoP", proof)
	resp, err := api.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := `DPoP error="use_dpop_nonce", error_description="DPoP proof requires a fresh server nonce", ` + allAlgs
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != want ||
		resp.Header.Get("DPoP-Nonce") != nonces.Current() {
		t.Fatalf("no nonce: status %d, WWW-Authenticate %q, DPoP-Nonce %q; want 401, %q and the current nonce",
			resp.StatusCode, resp.Header.Get("WWW-Authenticate"), resp.Header.Get("DPoP-Nonce"), want)
	}

	// dpop.Transport: one refusal, one retry with the nonce.
	client := &http.Client{Transport: dpop.NewTransport(key, api.Client().Transport)}
	hits.Store(0)
	status, body, resp := get(t, client, api.URL+"/users/me", "DPoP", tok)
	if status != http.StatusOK || body != "sub=user-123 jkt="+key.Thumbprint() || hits.Load() != 2 {
		t.Fatalf("through dpop.Transport: %d %q after %d requests; want 200 after 2", status, body, hits.Load())
	}
	if resp.Header.Get("DPoP-Nonce") != nonces.Current() {
		t.Errorf("success without the current DPoP-Nonce (%q)", resp.Header.Get("DPoP-Nonce"))
	}
	// The transport remembers the nonce: no refusal the second time.
	hits.Store(0)
	if status, _, _ := get(t, client, api.URL+"/users/me", "DPoP", tok); status != http.StatusOK || hits.Load() != 1 {
		t.Fatalf("second request: %d after %d requests; want 200 after 1", status, hits.Load())
	}
	// A forged nonce is refused like a missing one.
	proof, _ = key.Proof(http.MethodGet, api.URL+"/users/me", tok, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, api.URL+"/users/me", nil)
	req.Header.Set("Authorization", "DPoP "+tok)
	req.Header.Set("DPoP", proof)
	if resp, err = api.Client().Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != want {
		t.Fatalf("forged nonce: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

// TestMiddlewareDPoPExternalURL: behind a reverse proxy that strips a path
// prefix and sends its own Host, proofs name the URL the client used;
// ExternalURL (with the prefix) makes the middleware check that one.
// X-Forwarded-* headers are not trusted instead.
func TestMiddlewareDPoPExternalURL(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	key, err := dpop.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	const aud = "https://api.example.test"
	tok := mint(t, is, mintOpts{kid: kid, claims: func(c map[string]any) {
		liveClaims(key.Thumbprint())(c)
		c["aud"] = aud
	}})

	// setup starts the resource server with externalURL(proxy URL) and a
	// proxy in front of it mapping /api/... to /...; it returns the
	// proxy's URL and a client of the proxy sending proofs.
	setup := func(t *testing.T, externalURL func(proxy string) string) (string, *http.Client) {
		mux := http.NewServeMux()
		backend := httptest.NewServer(mux)
		t.Cleanup(backend.Close)
		target, _ := url.Parse(backend.URL)
		proxy := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target) // Host becomes the backend's
			pr.SetXForwarded()
			pr.Out.URL.Path = strings.TrimPrefix(pr.In.URL.Path, "/api")
			pr.Out.URL.RawPath = ""
		}})
		t.Cleanup(proxy.Close)
		v := liveVerifier(is, aud, resource.DPoPOptions{ExternalURL: externalURL(proxy.URL)})
		mux.Handle("/", resource.Middleware(v)(echoDPoP))
		return proxy.URL, &http.Client{Transport: dpop.NewTransport(key, proxy.Client().Transport)}
	}
	tests := []struct {
		name     string
		external func(proxy string) string
		want     int
	}{
		{"ExternalURL with the prefix", func(p string) string { return p + "/api" }, 200},
		{"ExternalURL with the prefix and a trailing slash", func(p string) string { return p + "/api/" }, 200},
		{"ExternalURL in upper case", func(p string) string { return strings.ToUpper(p) + "/api" }, 200},
		{"ExternalURL without the prefix", func(p string) string { return p }, 401},
		{"no ExternalURL: the backend's own URL, X-Forwarded-* ignored", func(string) string { return "" }, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			proxy, client := setup(t, tt.external)
			status, body, resp := get(t, client, proxy+"/api/users/me?x=1", "DPoP", tok)
			if status != tt.want {
				t.Fatalf("status = %d (%s, %q), want %d", status, body, resp.Header.Values("WWW-Authenticate"), tt.want)
			}
			if status == http.StatusUnauthorized && !strings.Contains(resp.Header.Get("WWW-Authenticate"), "DPoP proof htu does not match the request") {
				t.Errorf("WWW-Authenticate = %q, want the htu refusal", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestDPoPOptionsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url   string
		valid bool
	}{
		{"", true},
		{"https://api.example.com", true},
		{"https://api.example.com/", true},
		{"http://127.0.0.1:8090/prefix/sub", true},
		{"HTTPS://API.example.com:443/x", true},
		{"https://[::1]:8443", true},
		{"api.example.com", false},
		{"/prefix", false},
		{"ftp://api.example.com", false},
		{"https://", false},
		{"https://user:pw@api.example.com", false},
		{"https://api.example.com/?x=1", false},
		{"https://api.example.com/?", false},
		{"https://api.example.com/#f", false},
		{"https://api.example.com:bad", false},
		{"mailto:a@b", false},
		{"https://api example.com", false},
	}
	for _, tt := range tests {
		err := resource.DPoPOptions{ExternalURL: tt.url}.Validate()
		if (err == nil) != tt.valid {
			t.Errorf("Validate(%q) = %v, want valid %v", tt.url, err, tt.valid)
		}
		if err != nil && strings.Contains(err.Error(), tt.url) {
			t.Errorf("Validate(%q) = %v: echoes the value", tt.url, err)
		}
	}
}

// TestMiddlewareDPoPMisconfigured: an invalid ExternalURL fails closed.
func TestMiddlewareDPoPMisconfigured(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	mw := resource.Middleware(newDPoPVerifier(is, &fakeClock{t: testNow}, resource.DPoPOptions{ExternalURL: "api.example.test"}))(echoDPoP)
	key := newProofKey(t)
	tok := mint(t, is, mintOpts{kid: kid, claims: bound(key.jkt)})
	rec := httptest.NewRecorder()
	mw.ServeHTTP(rec, dpopRequest(tok, key.proof(t, tok, set("htu", "api.example.test/users/me"))))
	dpopResponse{500, nil, "server_error", ""}.check(t, rec)
}

// TestMiddlewareDPoPHost: without ExternalURL, the Host header is the
// URI's authority; a Host no URI can have is refused, not an error.
func TestMiddlewareDPoPHost(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	mw := resource.Middleware(newDPoPVerifier(is, &fakeClock{t: testNow}, resource.DPoPOptions{}))(echoDPoP)
	key := newProofKey(t)
	tok := mint(t, is, mintOpts{kid: kid, claims: bound(key.jkt)})
	for _, tt := range []struct {
		host string
		htu  string
		want dpopResponse
	}{
		{"API.Example.Test:80", testURL, dpopResponse{200, nil, "", "sub=user-123 jkt=" + key.jkt}},
		{"api.example.test:8080", "http://api.example.test:8080/users/me", dpopResponse{200, nil, "", "sub=user-123 jkt=" + key.jkt}},
		{"", "http:///users/me", invalidProof("DPoP proof htu does not match the request")},
		{"a b", "http://a b/users/me", invalidProof("DPoP proof htu does not match the request")},
	} {
		t.Run(fmt.Sprintf("%q", tt.host), func(t *testing.T) {
			req := dpopRequest(tok, key.proof(t, tok, set("htu", tt.htu)))
			req.Host = tt.host
			rec := httptest.NewRecorder()
			mw.ServeHTTP(rec, req)
			tt.want.check(t, rec)
		})
	}
}
