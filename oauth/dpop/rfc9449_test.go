package dpop_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/oauth/dpop"
)

// The examples of RFC 9449, unwrapped (RFC 8792 "\" line wrapping
// removed): the proofs of Figure 2 (token request), Figure 7 (refresh
// request) and Figure 13 (resource request), the access token of Figure 6
// and Figure 13, and the jkt of Figure 9, "the hash of the public key from
// the DPoP proofs in the examples shown in Section 5".
const (
	rfcFigure2Proof = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6Ik" +
		"VDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCR" +
		"nMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JE" +
		"QSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIj" +
		"oiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwia" +
		"WF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg" +
		"4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
	rfcFigure7Proof = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6Ik" +
		"VDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCR" +
		"nMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JE" +
		"QSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIj" +
		"oiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwia" +
		"WF0IjoxNTYyMjY1Mjk2fQ.pAqut2IRDm_De6PR93SYmGBPXpwrAk90e8cP2hjiaG5Qs" +
		"GSuKDYW7_X620BxqhvYC8ynrrvZLTk41mSRroapUA"
	rfcFigure13Proof = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6Ik" +
		"VDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCR" +
		"nMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JE" +
		"QSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIj" +
		"oiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0Z" +
		"WRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNF" +
		"c05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9RP35yRqzhrtNP86L-Ey71E" +
		"OptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA"
	rfcAccessToken = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
	rfcJKT         = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	rfcATH         = "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
)

// TestRFC9449Examples: the RFC's own proofs parse and verify, with the
// claims the RFC decodes them to (Figures 4 and 14), the key thumbprint of
// Figure 9 (§6.1) and the ath of Figure 14 (§4.2); the resource request's
// proof verifies for its request and token, and for no other token.
func TestRFC9449Examples(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name                   string
		proof                  string
		jti, htm, htu, ath     string
		iat                    int64
		reqURI, reqAccessToken string
	}{
		{"Figure 2 (token request)", rfcFigure2Proof, "-BwC3ESc6acc2lTc", "POST", "https://server.example.com/token", "", 1562262616,
			"https://server.example.com/token", ""},
		{"Figure 7 (refresh request)", rfcFigure7Proof, "-BwC3ESc6acc2lTc", "POST", "https://server.example.com/token", "", 1562265296,
			"https://server.example.com/token", ""},
		{"Figure 13 (resource request)", rfcFigure13Proof, "e1j3V_bKic8-LAEB", "GET", "https://resource.example.org/protectedresource", rfcATH, 1562262618,
			"https://resource.example.org/protectedresource", rfcAccessToken},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p, err := dpop.Parse(c.proof, nil)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if p.JKT != rfcJKT || p.Algorithm != "ES256" || p.ID != c.jti || p.Method != c.htm || p.URI != c.htu ||
				p.IssuedAt.Unix() != c.iat || p.AccessTokenHash != c.ath || p.Nonce != "" {
				t.Fatalf("Parse = %+v", p)
			}
			clock := func() time.Time { return time.Unix(c.iat, 0) }
			v := dpop.NewVerifier(dpop.Options{Replay: dpop.NewMemoryReplayCache(0, clock), Now: clock})
			req := dpop.Request{Method: c.htm, URI: c.reqURI, AccessToken: c.reqAccessToken}
			if _, err := v.Verify(context.Background(), c.proof, req); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			// §4.3 check 12: the same proof presented with another token.
			req.AccessToken = "another-token"
			if _, err := v.Check(c.proof, req); !errors.Is(err, dpop.ErrAccessTokenHash) {
				t.Fatalf("Check with another access token: %v, want ErrAccessTokenHash", err)
			}
		})
	}
	if got := dpop.AccessTokenHash(rfcAccessToken); got != rfcATH {
		t.Fatalf("AccessTokenHash(Figure 6 token) = %q, want Figure 14's ath %q", got, rfcATH)
	}
}

// b64 is base64url without padding.
func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// rfc7638 computes a JWK SHA-256 thumbprint by hand (RFC 7638 §3.1 and
// §3.2): the required members only, in lexicographic order, no
// whitespace, SHA-256, base64url. It shares no code with go-jose.
func rfc7638(required string) string {
	sum := sha256.Sum256([]byte(required))
	return b64(sum[:])
}

// signedProof signs header and claims by hand with priv: ES256 for a
// P-256 key, EdDSA, or PS256 for RSA.
func signedProof(t *testing.T, priv crypto.Signer, header, claims map[string]any) string {
	t.Helper()
	return testkit.SignJWS(t, priv, header, claims)
}

func goodClaims() map[string]any {
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	return map[string]any{"jti": b64(jti), "htm": "POST", "htu": tokenURL, "iat": time.Now().Unix()}
}

// TestThumbprintRFC7638: the jkt of a proof (the cnf.jkt of tokens bound
// to it, RFC 9449 §6.1) is the RFC 7638 SHA-256 thumbprint of its jwk,
// computed over the required members only: members a client adds to the
// jwk (kid, use, alg, key_ops) change nothing. Each key type is checked
// against a thumbprint computed here by hand.
func TestThumbprintRFC7638(t *testing.T) {
	t.Parallel()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	fixed := func(i *big.Int) string { b := make([]byte, 32); i.FillBytes(b); return b64(b) }
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaN, rsaE := b64(rsaKey.N.Bytes()), b64(big.NewInt(int64(rsaKey.E)).Bytes())
	extras := map[string]any{"kid": "client-key-1", "use": "sig", "key_ops": []string{"verify"}}
	for _, c := range []struct {
		name     string
		alg      string
		priv     crypto.Signer
		jwk      map[string]any
		required string
	}{
		{"EC P-256", "ES256", ec, map[string]any{"kty": "EC", "crv": "P-256", "x": fixed(ec.X), "y": fixed(ec.Y)},
			`{"crv":"P-256","kty":"EC","x":"` + fixed(ec.X) + `","y":"` + fixed(ec.Y) + `"}`},
		{"OKP Ed25519", "EdDSA", edPriv, map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(edPub)},
			`{"crv":"Ed25519","kty":"OKP","x":"` + b64(edPub) + `"}`},
		{"RSA", "PS256", rsaKey, map[string]any{"kty": "RSA", "n": rsaN, "e": rsaE},
			`{"e":"` + rsaE + `","kty":"RSA","n":"` + rsaN + `"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			want := rfc7638(c.required)
			for _, withExtras := range []bool{false, true} {
				jwk := map[string]any{}
				for k, v := range c.jwk {
					jwk[k] = v
				}
				if withExtras {
					for k, v := range extras {
						jwk[k] = v
					}
					jwk["alg"] = c.alg
				}
				proof := signedProof(t, c.priv, map[string]any{"typ": "dpop+jwt", "alg": c.alg, "jwk": jwk}, goodClaims())
				p, err := dpop.Parse(proof, nil)
				if err != nil {
					t.Fatalf("extras %v: Parse: %v", withExtras, err)
				}
				if p.JKT != want {
					t.Fatalf("extras %v: JKT %q, want the RFC 7638 thumbprint %q", withExtras, p.JKT, want)
				}
			}
		})
	}
}

// TestParseRFC9449Syntax: a proof lacking any claim §4.2 requires (§4.3
// check 3), or a header the wrong typ (check 4, §11.5), or a DPoP field
// that is not a single JWT (check 2) is refused as malformed. Each case
// is a validly signed proof with exactly one thing wrong.
func TestParseRFC9449Syntax(t *testing.T) {
	t.Parallel()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk := jose.JSONWebKey{Key: &priv.PublicKey}
	header := func() map[string]any { return map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk} }
	without := func(m map[string]any, k string) map[string]any { delete(m, k); return m }
	with := func(m map[string]any, k string, v any) map[string]any { m[k] = v; return m }
	good := signedProof(t, priv, header(), goodClaims())
	if _, err := dpop.Parse(good, nil); err != nil {
		t.Fatalf("the unmodified proof is refused: %v", err)
	}
	for name, proof := range map[string]string{
		"no jti":                         signedProof(t, priv, header(), without(goodClaims(), "jti")),
		"no htm":                         signedProof(t, priv, header(), without(goodClaims(), "htm")),
		"no htu":                         signedProof(t, priv, header(), without(goodClaims(), "htu")),
		"no iat":                         signedProof(t, priv, header(), without(goodClaims(), "iat")),
		"empty jti":                      signedProof(t, priv, header(), with(goodClaims(), "jti", "")),
		"htm not a string":               signedProof(t, priv, header(), with(goodClaims(), "htm", 1)),
		"htu not a string":               signedProof(t, priv, header(), with(goodClaims(), "htu", []string{tokenURL})),
		"ath not a string":               signedProof(t, priv, header(), with(goodClaims(), "ath", 1)),
		"nonce not a string":             signedProof(t, priv, header(), with(goodClaims(), "nonce", true)),
		"no typ":                         signedProof(t, priv, without(header(), "typ"), goodClaims()),
		"typ JWT":                        signedProof(t, priv, with(header(), "typ", "JWT"), goodClaims()),
		"typ at+jwt":                     signedProof(t, priv, with(header(), "typ", "at+jwt"), goodClaims()),
		"typ not a string":               signedProof(t, priv, with(header(), "typ", 1), goodClaims()),
		"two proofs in one field":        good + "," + good,
		"two proofs in one field, space": good + ", " + good,
		"JWS JSON serialization":         `{"payload":"e30","signatures":[]}`,
		"empty":                          "",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := dpop.Parse(proof, nil)
			e, ok := errors.AsType[*dpop.Error](err)
			if !ok || e.Code != dpop.CodeInvalidProof || !errors.Is(err, dpop.ErrMalformed) {
				t.Fatalf("Parse = %v, want an invalid_dpop_proof wrapping ErrMalformed", err)
			}
		})
	}
}

// TestVerifyReplay: a proof is accepted once (RFC 9449 §11.1), for the
// same or any other URI; the same jti under another key is another proof.
func TestVerifyReplay(t *testing.T) {
	t.Parallel()
	now := time.Now()
	clock := func() time.Time { return now }
	v := dpop.NewVerifier(dpop.Options{Replay: dpop.NewMemoryReplayCache(0, clock), Now: clock})
	k := newKey(t)
	req := dpop.Request{Method: "POST", URI: tokenURL}
	proof, err := k.Proof("POST", tokenURL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), proof, req); err != nil {
		t.Fatalf("first use: %v", err)
	}
	for _, r := range []dpop.Request{req, {Method: "POST", URI: tokenURL + "?again"}} {
		_, err := v.Verify(context.Background(), proof, r)
		if e, ok := errors.AsType[*dpop.Error](err); !ok || e.Code != dpop.CodeInvalidProof || !errors.Is(err, dpop.ErrReplay) {
			t.Fatalf("replay to %s: %v, want invalid_dpop_proof wrapping ErrReplay", r.URI, err)
		}
	}
	// Check alone never spends.
	fresh, _ := k.Proof("POST", tokenURL, "", "")
	for range 2 {
		if _, err := v.Check(fresh, req); err != nil {
			t.Fatalf("Check: %v", err)
		}
	}
	if _, err := v.Verify(context.Background(), fresh, req); err != nil {
		t.Fatalf("Verify after Check: %v", err)
	}
	// Another key's proof with the first proof's jti.
	p, _ := dpop.Parse(proof, nil)
	c := goodClaims()
	c["jti"] = p.ID
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	same := signedProof(t, priv, map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": jose.JSONWebKey{Key: &priv.PublicKey}}, c)
	if _, err := v.Verify(context.Background(), same, req); err != nil {
		t.Fatalf("another key's proof with a jti seen before: %v", err)
	}
}

// TestKeyProofSyntax: the proofs a Key signs have what RFC 9449 §4.2
// requires of a client: header typ dpop+jwt, an asymmetric alg and the
// public key only (no private member); claims jti (at least 96 random
// bits, never repeated), htm, htu without query and fragment, iat now;
// ath (base64url SHA-256 of the token) with an access token; nonce when
// given.
func TestKeyProofSyntax(t *testing.T) {
	t.Parallel()
	ec, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, c := range []struct {
		priv crypto.Signer
		alg  string
	}{{nil, "ES256"}, {ec, "ES384"}, {ed, "EdDSA"}, {rk, "PS256"}} {
		t.Run(c.alg, func(t *testing.T) {
			t.Parallel()
			var k *dpop.Key
			var err error
			if c.priv == nil {
				k, err = dpop.GenerateKey()
			} else {
				k, err = dpop.NewKey(c.priv)
			}
			if err != nil {
				t.Fatal(err)
			}
			before := time.Now().Unix()
			proof, err := k.Proof("GET", "https://rs.example/users/me?page=2#top", "tok", "n-1")
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.Split(proof, ".")
			if len(parts) != 3 {
				t.Fatalf("not a compact JWS: %q", proof)
			}
			var header map[string]any
			var claims map[string]any
			hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
			cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
			if json.Unmarshal(hb, &header) != nil || json.Unmarshal(cb, &claims) != nil {
				t.Fatalf("header %s claims %s", hb, cb)
			}
			if header["typ"] != "dpop+jwt" || header["alg"] != c.alg {
				t.Fatalf("header %s", hb)
			}
			jwk, _ := header["jwk"].(map[string]any)
			for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
				if _, ok := jwk[private]; ok {
					t.Fatalf("jwk has private member %q: %s", private, hb)
				}
			}
			jti, _ := claims["jti"].(string)
			raw, err := base64.RawURLEncoding.DecodeString(jti)
			if err != nil || len(raw)*8 < 96 {
				t.Fatalf("jti %q: want base64url of at least 96 bits", jti)
			}
			iat, _ := claims["iat"].(float64)
			if claims["htm"] != "GET" || claims["htu"] != "https://rs.example/users/me" ||
				int64(iat) < before || int64(iat) > time.Now().Unix() ||
				claims["ath"] != dpop.AccessTokenHash("tok") || claims["nonce"] != "n-1" {
				t.Fatalf("claims %s", cb)
			}
			p, err := dpop.Parse(proof, nil)
			if err != nil || p.JKT != k.Thumbprint() {
				t.Fatalf("Parse: %v, JKT %v want %s", err, p, k.Thumbprint())
			}
			// No ath without a token, no nonce without one.
			proof, _ = k.Proof("POST", tokenURL, "", "")
			cb, _ = base64.RawURLEncoding.DecodeString(strings.Split(proof, ".")[1])
			claims = nil
			_ = json.Unmarshal(cb, &claims)
			if _, ok := claims["ath"]; ok {
				t.Errorf("ath without a token: %s", cb)
			}
			if _, ok := claims["nonce"]; ok {
				t.Errorf("nonce without one: %s", cb)
			}
		})
	}
	// jti never repeats, also across goroutines.
	k := newKey(t)
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 250 {
				proof, err := k.Proof("POST", tokenURL, "", "")
				if err != nil {
					t.Error(err)
					return
				}
				p, err := dpop.Parse(proof, nil)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[p.ID] {
					t.Errorf("jti %q repeated", p.ID)
				}
				seen[p.ID] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// nqchar is RFC 9449 §8.1's nonce syntax (RFC 6749 NQCHAR: %x21 / %x23-5B
// / %x5D-7E).
var nqchar = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]+$`)

// TestNonceSyntax: server nonces are 1*NQCHAR (§8.1) and change with the
// key (they are unpredictable without it, §8) and with time.
func TestNonceSyntax(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	a := dpop.NewNonces([]byte("0123456789abcdef0123456789abcdef"), time.Minute, clock)
	b := dpop.NewNonces([]byte("fedcba9876543210fedcba9876543210"), time.Minute, clock)
	seen := map[string]bool{}
	for range 5 {
		for _, n := range []string{a.Current(), b.Current()} {
			if !nqchar.MatchString(n) {
				t.Fatalf("nonce %q is not 1*NQCHAR", n)
			}
			if seen[n] {
				t.Fatalf("nonce %q issued by two keys or in two periods", n)
			}
			seen[n] = true
		}
		now = now.Add(time.Minute)
	}
}

// TestTransportLatestNonce: a client MUST use the nonce a server last
// supplied, in a 200 response as well as in an error, for its next
// requests (RFC 9449 §8.2), and a nonce only at the server that issued it
// (§9).
func TestTransportLatestNonce(t *testing.T) {
	t.Parallel()
	k := newKey(t)
	type server struct {
		srv    *httptest.Server
		mu     sync.Mutex
		next   string   // the DPoP-Nonce of the next response
		nonces []string // the nonce claim of each proof received
	}
	newServer := func() *server {
		s := &server{}
		s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, err := dpop.Parse(r.Header.Get("DPoP"), nil)
			if err != nil {
				http.Error(w, "bad proof", http.StatusBadRequest)
				return
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			s.nonces = append(s.nonces, p.Nonce)
			if s.next != "" {
				w.Header().Set("DPoP-Nonce", s.next)
			}
		}))
		t.Cleanup(s.srv.Close)
		return s
	}
	a, b := newServer(), newServer()
	hc := &http.Client{Transport: dpop.NewTransport(k, nil)}
	get := func(s *server, next string) {
		t.Helper()
		s.mu.Lock()
		s.next = next
		s.mu.Unlock()
		resp, err := hc.Get(s.srv.URL + "/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	get(a, "n1") // a supplies n1 in a 200
	get(a, "n2") // used; a supplies n2
	get(b, "")   // b never supplied one
	get(a, "")   // n2, the latest
	get(a, "")   // still n2
	want := map[*server][]string{a: {"", "n1", "n2", "n2"}, b: {""}}
	for s, w := range want {
		if strings.Join(s.nonces, ",") != strings.Join(w, ",") {
			t.Errorf("nonces received %q, want %q", s.nonces, w)
		}
	}
}

// TestNormalizeURIEquivalence: htu is compared after RFC 3986 §6.2.2 and
// §6.2.3 normalization (RFC 9449 §4.3), which makes equivalent URIs equal
// (case of scheme, host and percent-encoding hex digits, percent-encoded
// unreserved characters, default ports, empty path) and nothing else: a
// percent-encoded reserved character is not the character itself (RFC
// 3986 §2.2, §6.2.2.2), so "/a%2Fb" is another URI than "/a/b", and a
// proof for one is refused for the other (§4.3 check 9).
func TestNormalizeURIEquivalence(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		a, b  string
		equal bool
	}{
		{"https://rs.example/a%2fb", "https://rs.example/a%2Fb", true},
		{"https://rs.example/%7Euser/%41", "https://rs.example/~user/A", true},
		{"HTTPS://RS.example:443", "https://rs.example/", true},
		{"https://rs.example/%c3%a9", "https://rs.example/%C3%A9", true},
		{"https://rs.example/é/x", "https://rs.example/%C3%A9/x", true},
		{"https://rs.example/é/a%2Fb", "https://rs.example/%C3%A9/a%2Fb", true},
		{"https://rs.example/a%2Fb", "https://rs.example/a/b", false},
		{"https://rs.example/é/a%2Fb", "https://rs.example/é/a/b", false},
		{"https://rs.example/a%3Ab", "https://rs.example/a:b", false},
		{"https://rs.example/a%40b", "https://rs.example/a@b", false},
		{"https://rs.example/a%21b", "https://rs.example/a!b", false},
		{"https://rs.example/a%3Fb", "https://rs.example/a?b", false},
		// An IPv6 zone (RFC 6874) keeps its "%25".
		{"http://[FE80::1%25en0]:8080/", "http://[fe80::1%25en0]:8080", true},
		{"http://[fe80::1%25en0]/", "http://[fe80::1]/", false},
	} {
		na, errA := dpop.NormalizeURI(c.a)
		nb, errB := dpop.NormalizeURI(c.b)
		if errA != nil || errB != nil {
			t.Fatalf("%q, %q: %v, %v", c.a, c.b, errA, errB)
		}
		if (na == nb) != c.equal {
			t.Errorf("%q -> %q and %q -> %q: equal %v, want %v", c.a, na, c.b, nb, na == nb, c.equal)
		}
		if again, err := dpop.NormalizeURI(na); err != nil || again != na {
			t.Errorf("NormalizeURI(%q) = %q, %v: not a fixed point", na, again, err)
		}
	}
	k := newKey(t)
	v := dpop.NewVerifier(dpop.Options{Replay: dpop.NewMemoryReplayCache(0, nil)})
	proof, err := k.Proof("GET", "https://rs.example/files/a/b", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Check(proof, dpop.Request{Method: "GET", URI: "https://rs.example/files/a%2Fb"}); !errors.Is(err, dpop.ErrURI) {
		t.Fatalf("proof for /files/a/b on /files/a%%2Fb: %v, want ErrURI", err)
	}
}
