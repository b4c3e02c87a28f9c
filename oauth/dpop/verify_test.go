package dpop_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/oauth/dpop"
)

const tokenURL = "https://as.example/oauth2/token"

func newKey(t *testing.T) *dpop.Key {
	t.Helper()
	k, err := dpop.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestVerify(t *testing.T) {
	k := newKey(t)
	now := time.Now()
	clock := func() time.Time { return now }
	nonces := dpop.NewNonces([]byte("0123456789abcdef0123456789abcdef"), time.Minute, clock)
	for _, c := range []struct {
		name           string
		method, uri    string
		token, nonce   string
		req            dpop.Request
		nonces         *dpop.Nonces
		sentinel, code error
	}{
		{name: "good", method: "POST", uri: tokenURL, req: dpop.Request{Method: "POST", URI: tokenURL}},
		{name: "normalized htu", method: "POST", uri: "HTTPS://AS.example:443/oauth2/token?q=1#f", req: dpop.Request{Method: "POST", URI: tokenURL}},
		{name: "htm", method: "GET", uri: tokenURL, req: dpop.Request{Method: "POST", URI: tokenURL}, sentinel: dpop.ErrMethod},
		{name: "htm case", method: "post", uri: tokenURL, req: dpop.Request{Method: "POST", URI: tokenURL}, sentinel: dpop.ErrMethod},
		{name: "htu path", method: "POST", uri: "https://as.example/oauth2/token/", req: dpop.Request{Method: "POST", URI: tokenURL}, sentinel: dpop.ErrURI},
		{name: "htu scheme", method: "POST", uri: "http://as.example/oauth2/token", req: dpop.Request{Method: "POST", URI: tokenURL}, sentinel: dpop.ErrURI},
		{name: "htu port", method: "POST", uri: "https://as.example:8443/oauth2/token", req: dpop.Request{Method: "POST", URI: tokenURL}, sentinel: dpop.ErrURI},
		{name: "ath", method: "GET", uri: "https://rs.example/me", token: "tok", req: dpop.Request{Method: "GET", URI: "https://rs.example/me", AccessToken: "tok"}},
		{name: "ath missing", method: "GET", uri: "https://rs.example/me", req: dpop.Request{Method: "GET", URI: "https://rs.example/me", AccessToken: "tok"}, sentinel: dpop.ErrAccessTokenHash},
		{name: "ath other token", method: "GET", uri: "https://rs.example/me", token: "other", req: dpop.Request{Method: "GET", URI: "https://rs.example/me", AccessToken: "tok"}, sentinel: dpop.ErrAccessTokenHash},
		{name: "nonce", method: "POST", uri: tokenURL, nonce: nonces.Current(), nonces: nonces, req: dpop.Request{Method: "POST", URI: tokenURL}},
		{name: "nonce missing", method: "POST", uri: tokenURL, nonces: nonces, req: dpop.Request{Method: "POST", URI: tokenURL}, sentinel: dpop.ErrNonce},
		{name: "nonce forged", method: "POST", uri: tokenURL, nonce: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", nonces: nonces, req: dpop.Request{Method: "POST", URI: tokenURL}, sentinel: dpop.ErrNonce},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := dpop.NewVerifier(dpop.Options{Replay: dpop.NewMemoryReplayCache(0, clock), Nonces: c.nonces, Now: clock})
			proof, err := k.Proof(c.method, c.uri, c.token, c.nonce)
			if err != nil {
				t.Fatal(err)
			}
			p, err := v.Verify(context.Background(), proof, c.req)
			if c.sentinel == nil {
				if err != nil || p.JKT != k.Thumbprint() {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			e, ok := errors.AsType[*dpop.Error](err)
			if !ok || !errors.Is(err, c.sentinel) {
				t.Fatalf("got %v, want %v", err, c.sentinel)
			}
			want := dpop.CodeInvalidProof
			if c.sentinel == dpop.ErrNonce {
				want = dpop.CodeUseNonce
			}
			if e.Code != want {
				t.Fatalf("code %s, want %s", e.Code, want)
			}
		})
	}
}

// TestVerifyWindow: iat from MaxAge ago to Leeway ahead is accepted, and
// a second outside either end is not.
func TestVerifyWindow(t *testing.T) {
	k := newKey(t)
	proof, err := k.Proof("POST", tokenURL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := dpop.Parse(proof, nil)
	iat := p.IssuedAt
	for _, c := range []struct {
		now time.Time
		ok  bool
	}{
		{iat, true}, {iat.Add(60 * time.Second), true}, {iat.Add(61 * time.Second), false},
		{iat.Add(-5 * time.Second), true}, {iat.Add(-6 * time.Second), false},
	} {
		v := dpop.NewVerifier(dpop.Options{Replay: dpop.NewMemoryReplayCache(0, nil), Now: func() time.Time { return c.now }})
		_, err := v.Verify(context.Background(), proof, dpop.Request{Method: "POST", URI: tokenURL})
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, dpop.ErrIssuedAt)) {
			t.Errorf("now = iat%+v: %v, want ok=%v", c.now.Sub(iat), err, c.ok)
		}
	}
}

func TestVerifyAlgorithms(t *testing.T) {
	k := newKey(t) // ES256
	proof, _ := k.Proof("POST", tokenURL, "", "")
	v := dpop.NewVerifier(dpop.Options{Algorithms: []string{"EdDSA"}, Replay: dpop.NewMemoryReplayCache(0, nil)})
	if _, err := v.Verify(context.Background(), proof, dpop.Request{Method: "POST", URI: tokenURL}); !errors.Is(err, dpop.ErrAlgorithm) {
		t.Fatalf("ES256 proof with EdDSA only: %v", err)
	}
	if got := v.Algorithms(); len(got) != 1 || got[0] != "EdDSA" {
		t.Fatalf("Algorithms %v", got)
	}
	if got := dpop.NewVerifier(dpop.Options{Algorithms: []string{"HS256", "none", "ES256"}}).Algorithms(); len(got) != 1 || got[0] != "ES256" {
		t.Fatalf("HS256 and none must never be allowed: %v", got)
	}
}

type failingReplay struct{}

func (failingReplay) AddProof(context.Context, string, time.Time) (bool, error) {
	return false, errors.New("database down")
}

// TestVerifyReplayCacheDown: a proof that cannot be checked for replay is
// refused, not accepted, and not as an invalid proof.
func TestVerifyReplayCacheDown(t *testing.T) {
	k := newKey(t)
	proof, _ := k.Proof("POST", tokenURL, "", "")
	_, err := dpop.NewVerifier(dpop.Options{Replay: failingReplay{}}).Verify(context.Background(), proof, dpop.Request{Method: "POST", URI: tokenURL})
	if _, isProofErr := errors.AsType[*dpop.Error](err); err == nil || isProofErr {
		t.Fatalf("got %v", err)
	}
	_, err = dpop.NewVerifier(dpop.Options{}).Verify(context.Background(), proof, dpop.Request{Method: "POST", URI: tokenURL})
	if err == nil {
		t.Fatal("accepted without a replay cache")
	}
}

func TestNonces(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	key := []byte("0123456789abcdef0123456789abcdef")
	n := dpop.NewNonces(key, time.Minute, clock)
	other := dpop.NewNonces([]byte("fedcba9876543210fedcba9876543210"), time.Minute, clock)
	cur := n.Current()
	if !n.Valid(cur) || other.Valid(cur) || !dpop.NewNonces(key, time.Minute, clock).Valid(cur) {
		t.Fatal("a nonce is valid under its key only, on any replica with the key")
	}
	if n.Valid(cur[:len(cur)-1]+"A") || n.Valid("") || n.Valid("!!") {
		t.Fatal("tampered nonce accepted")
	}
	now = now.Add(59 * time.Second)
	if !n.Valid(cur) {
		t.Fatal("nonce expired early")
	}
	now = now.Add(2 * time.Second)
	if n.Valid(cur) {
		t.Fatal("nonce valid past its lifetime")
	}
	if n.Current() == cur {
		t.Fatal("same nonce after a lifetime")
	}
	// A nonce from a replica whose clock is ahead, issued at the start of
	// its period (10 s for a 20 s lifetime): 3 s ahead is taken, 9 s not.
	for _, c := range []struct {
		ahead time.Duration
		ok    bool
	}{{3 * time.Second, true}, {9 * time.Second, false}} {
		base := time.Unix(1_800_000_000, 0).Add(-c.ahead) // base+ahead starts a period
		here := dpop.NewNonces(key, 20*time.Second, func() time.Time { return base })
		there := dpop.NewNonces(key, 20*time.Second, func() time.Time { return base.Add(c.ahead) })
		if here.Valid(there.Current()) != c.ok {
			t.Fatalf("nonce issued %s ahead: valid %v", c.ahead, !c.ok)
		}
	}
}

func TestMemoryReplayCache(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := dpop.NewMemoryReplayCache(2, func() time.Time { return now })
	ctx := context.Background()
	add := func(id string, exp time.Time) bool {
		ok, err := c.AddProof(ctx, id, exp)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !add("a", now.Add(time.Second)) || add("a", now.Add(time.Second)) || !add("b", now.Add(time.Minute)) {
		t.Fatal("first add true, second false")
	}
	if _, err := c.AddProof(ctx, "c", now.Add(time.Minute)); !errors.Is(err, dpop.ErrReplayCacheFull) {
		t.Fatalf("full cache: %v", err)
	}
	now = now.Add(2 * time.Second) // a expired
	if !add("c", now.Add(time.Minute)) || c.Len() != 2 {
		t.Fatalf("expired entry not dropped (len %d)", c.Len())
	}
}

// TestTransportNonce: the Transport signs every request, adds ath for a
// DPoP token, and retries once, with the server's nonce, a request refused
// with use_dpop_nonce, replaying its body.
func TestTransportNonce(t *testing.T) {
	k := newKey(t)
	nonces := dpop.NewNonces([]byte("0123456789abcdef0123456789abcdef"), time.Minute, nil)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		token := strings.TrimPrefix(r.Header.Get("Authorization"), "DPoP ")
		v := dpop.NewVerifier(dpop.Options{Replay: dpop.NewMemoryReplayCache(0, nil), Nonces: nonces})
		_, err := v.Verify(r.Context(), r.Header.Get("DPoP"), dpop.Request{Method: r.Method, URI: "http://" + r.Host + r.URL.Path, AccessToken: token})
		w.Header().Set("DPoP-Nonce", nonces.Current())
		if e, ok := errors.AsType[*dpop.Error](err); ok {
			if token != "" {
				w.Header().Set("WWW-Authenticate", `DPoP error="`+e.Code+`"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"`+e.Code+`"}`)
			return
		}
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	for _, token := range []string{"", "tok"} {
		hc := &http.Client{Transport: dpop.NewTransport(k, nil)}
		calls.Store(0)
		req, _ := http.NewRequest("POST", srv.URL+"/oauth2/token?x=1", strings.NewReader("grant_type=x"))
		if token != "" {
			req.Header.Set("Authorization", "DPoP "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "grant_type=x" {
			t.Fatalf("token %q: %d %q", token, resp.StatusCode, body)
		}
		// Refused without a nonce (400 at a token endpoint, 401 at a
		// resource), then accepted with it.
		if calls.Load() != 2 {
			t.Fatalf("token %q: %d calls, want 2", token, calls.Load())
		}
		// The nonce is remembered: the next request needs one call.
		calls.Store(0)
		req, _ = http.NewRequest("GET", srv.URL+"/me", nil)
		if resp, err = hc.Do(req); err != nil || resp.StatusCode != 200 || calls.Load() != 1 {
			t.Fatalf("second request: %v %v, %d calls", err, resp, calls.Load())
		}
		resp.Body.Close()
	}
}

// TestRSAKeySize: RSA proof keys below 2048 bits are refused, and above
// 4096 bits go-jose refuses to parse them.
func TestRSAKeySize(t *testing.T) {
	for _, c := range []struct {
		bits     int
		ok       bool
		sentinel error
	}{{1024, false, dpop.ErrKey}, {2048, true, nil}, {4160, false, dpop.ErrMalformed}} {
		priv, err := rsa.GenerateKey(rand.Reader, c.bits)
		if err != nil {
			t.Fatal(err)
		}
		// dpop.NewKey refuses short keys; sign by hand with go-jose.
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.PS256, Key: priv}, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
		if err != nil {
			t.Fatal(err)
		}
		obj, _ := signer.Sign([]byte(fmt.Sprintf(`{"jti":"x","htm":"POST","htu":"%s","iat":%d}`, tokenURL, time.Now().Unix())))
		proof, _ := obj.CompactSerialize()
		_, err = dpop.Parse(proof, nil)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, c.sentinel)) {
			t.Errorf("%d bits: %v", c.bits, err)
		}
	}
}
