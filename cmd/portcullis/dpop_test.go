package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/portcullis-auth/portcullis/internal/proctest"
	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/oauth/dpop"
	"github.com/portcullis-auth/portcullis/oauth/resource"
	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

// rawProof signs claims under header with priv (ES256), by hand, so that
// tests can send proofs no well-behaved library would make.
func rawProof(t testing.TB, priv *ecdsa.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	return testkit.SignJWS(t, priv, header, claims)
}

// ecJWK is priv's public key as a JWK (with d when private is set).
func ecJWK(priv *ecdsa.PrivateKey, private bool) map[string]any {
	b64 := base64.RawURLEncoding.EncodeToString
	pt, err := priv.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		panic(err)
	}
	k := map[string]any{"kty": "EC", "crv": "P-256", "x": b64(pt[1:33]), "y": b64(pt[33:])}
	if private {
		d, err := priv.Bytes()
		if err != nil {
			panic(err)
		}
		k["d"] = b64(d)
	}
	return k
}

func newECKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func proofHeader(priv *ecdsa.PrivateKey) map[string]any {
	return map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": ecJWK(priv, false)}
}

func proofClaims(method, uri string, iat time.Time) map[string]any {
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	return map[string]any{"jti": base64.RawURLEncoding.EncodeToString(jti), "htm": method, "htu": uri, "iat": iat.Unix()}
}

// dpopKey returns a new client DPoP key.
func dpopKey(t testing.TB) *dpop.Key {
	t.Helper()
	k, err := dpop.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// tokenProof returns a proof by k for the token endpoint of srv.
func tokenProof(t testing.TB, k *dpop.Key, srv *proctest.Server) string {
	t.Helper()
	p, err := k.Proof(http.MethodPost, srv.URL+"/oauth2/token", "", "")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// jkt returns the cnf.jkt of an access token ("" when unbound).
func jkt(t testing.TB, accessToken string) string {
	t.Helper()
	_, claims := proctest.DecodeJWT(t, accessToken)
	cnf, _ := claims["cnf"].(map[string]any)
	s, _ := cnf["jkt"].(string)
	return s
}

func passwordForm(clientID string) string {
	return url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"purple otter lamp 42"}, "client_id": {clientID}}.Encode()
}

func refreshForm(clientID, rt string) string {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {clientID}}.Encode()
}

// TestDPoPTokenEndpoint: RFC 9449 §5 at the token endpoint of the real
// server, on both backends: the password grant and a refresh chain of a
// public client bound to its key, what a thief holding the refresh token
// but not the key gets, a confidential client's unbound refresh, the
// client_credentials grant, and introspection's cnf (§6.2).
func TestDPoPTokenEndpoint(t *testing.T) {
	portcullis.EachBackend(t, nil, func(t *testing.T, srv *proctest.Server) {
		srv.CreateUser(t, "alice", "purple otter lamp 42")
		pub := srv.CreateClient(t, "--name", "spa", "--public")
		conf := srv.CreateClient(t, "--name", "backend", "--grant-type", "password", "--grant-type", "refresh_token", "--grant-type", "client_credentials")
		intro := srv.CreateClient(t, "--name", "rs", "--grant-type", "client_credentials", "--introspect")
		tokenURL := srv.URL + "/oauth2/token"
		key, thief := dpopKey(t), dpopKey(t)

		// Public client: password grant with a proof.
		tok := proctest.MustToken(t, proctest.PostForm(t, tokenURL, passwordForm(pub.ClientID), "DPoP", tokenProof(t, key, srv)))
		if tok.TokenType != "DPoP" || jkt(t, tok.AccessToken) != key.Thumbprint() {
			t.Fatalf("bound password grant: token_type %q, cnf.jkt %q, want DPoP %q", tok.TokenType, jkt(t, tok.AccessToken), key.Thumbprint())
		}
		// The thief has the refresh token but not the key.
		wantOAuthError(t, proctest.PostForm(t, tokenURL, refreshForm(pub.ClientID, tok.RefreshToken)), 400, "invalid_grant")
		wantOAuthError(t, proctest.PostForm(t, tokenURL, refreshForm(pub.ClientID, tok.RefreshToken), "DPoP", tokenProof(t, thief, srv)), 400, "invalid_grant")
		// ... which leaves the owner's refresh token working: a chain.
		rt := tok.RefreshToken
		for i := range 3 {
			next := proctest.MustToken(t, proctest.PostForm(t, tokenURL, refreshForm(pub.ClientID, rt), "DPoP", tokenProof(t, key, srv)))
			if next.TokenType != "DPoP" || jkt(t, next.AccessToken) != key.Thumbprint() {
				t.Fatalf("refresh %d: token_type %q, cnf.jkt %q", i, next.TokenType, jkt(t, next.AccessToken))
			}
			rt = next.RefreshToken
		}

		// Without a proof: a Bearer token, no cnf.
		bearer := proctest.MustToken(t, proctest.PostForm(t, tokenURL, passwordForm(pub.ClientID)))
		if !strings.EqualFold(bearer.TokenType, "bearer") || jkt(t, bearer.AccessToken) != "" {
			t.Fatalf("unbound grant: token_type %q, cnf.jkt %q", bearer.TokenType, jkt(t, bearer.AccessToken))
		}

		// Confidential client: bound access token; its refresh token is
		// not bound (RFC 9449 §5), so a refresh without a proof gives a
		// Bearer token and one with another key a token bound to that key.
		basic := proctest.BasicAuth(conf.ClientID, conf.ClientSecret)
		ctok := proctest.MustToken(t, proctest.PostForm(t, tokenURL, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"purple otter lamp 42"}}.Encode(),
			"Authorization", basic, "DPoP", tokenProof(t, key, srv)))
		if jkt(t, ctok.AccessToken) != key.Thumbprint() {
			t.Fatal("confidential password grant not bound")
		}
		crefresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ctok.RefreshToken}}.Encode()
		c2 := proctest.MustToken(t, proctest.PostForm(t, tokenURL, crefresh, "Authorization", basic))
		if !strings.EqualFold(c2.TokenType, "bearer") || jkt(t, c2.AccessToken) != "" {
			t.Fatalf("confidential refresh without proof: %q %q", c2.TokenType, jkt(t, c2.AccessToken))
		}
		c3 := proctest.MustToken(t, proctest.PostForm(t, tokenURL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {c2.RefreshToken}}.Encode(),
			"Authorization", basic, "DPoP", tokenProof(t, thief, srv)))
		if jkt(t, c3.AccessToken) != thief.Thumbprint() {
			t.Fatal("confidential refresh with a new key: not bound to it")
		}

		// client_credentials.
		cc := proctest.MustToken(t, proctest.PostForm(t, tokenURL, "grant_type=client_credentials", "Authorization", basic, "DPoP", tokenProof(t, key, srv)))
		if cc.TokenType != "DPoP" || jkt(t, cc.AccessToken) != key.Thumbprint() {
			t.Fatalf("client_credentials: %q %q", cc.TokenType, jkt(t, cc.AccessToken))
		}

		// Introspection (RFC 9449 §6.2).
		for _, c := range []struct {
			token, jkt, typ string
		}{{tok.AccessToken, key.Thumbprint(), "DPoP"}, {bearer.AccessToken, "", "Bearer"}} {
			r := proctest.PostForm(t, srv.URL+"/oauth2/introspect", url.Values{"token": {c.token}}.Encode(),
				"Authorization", proctest.BasicAuth(intro.ClientID, intro.ClientSecret))
			m := r.JSON(t)
			cnf, _ := m["cnf"].(map[string]any)
			got, _ := cnf["jkt"].(string)
			if m["active"] != true || got != c.jkt || m["token_type"] != c.typ {
				t.Fatalf("introspection: %s, want cnf.jkt %q token_type %s", r.Body, c.jkt, c.typ)
			}
		}
	})
}

// TestDPoPInvalidProofs: every proof RFC 9449 §4.3 says to refuse gets 400
// invalid_dpop_proof at the token endpoint, and a good one is accepted
// once only.
func TestDPoPInvalidProofs(t *testing.T) {
	// Some thirty password grants in a row from one address.
	srv := portcullis.Serve(t, "PORTCULLIS_RATE_LIMIT_TOKEN_PER_IP=0")
	srv.CreateUser(t, "alice", "purple otter lamp 42")
	pub := srv.CreateClient(t, "--name", "spa", "--public")
	tokenURL := srv.URL + "/oauth2/token"
	priv := newECKey(t)
	now := time.Now()
	good := func() map[string]any { return proofClaims("POST", tokenURL, now) }
	with := func(m map[string]any, k string, v any) map[string]any {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	hs := func() string {
		key := []byte("0123456789abcdef0123456789abcdef")
		h, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": map[string]any{"kty": "oct", "k": base64.RawURLEncoding.EncodeToString(key)}})
		c, _ := json.Marshal(good())
		in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
		m := hmac.New(sha256.New, key)
		m.Write([]byte(in))
		return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	none := func() string {
		h, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": ecJWK(priv, false)})
		c, _ := json.Marshal(good())
		return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "."
	}
	other := newECKey(t)
	for name, proof := range map[string]string{
		"wrong htm":               rawProof(t, priv, proofHeader(priv), with(good(), "htm", "GET")),
		"wrong htu":               rawProof(t, priv, proofHeader(priv), with(good(), "htu", srv.URL+"/oauth2/revoke")),
		"htu of another server":   rawProof(t, priv, proofHeader(priv), with(good(), "htu", "https://evil.example/oauth2/token")),
		"iat 2 minutes old":       rawProof(t, priv, proofHeader(priv), with(good(), "iat", now.Add(-2*time.Minute).Unix())),
		"iat a minute ahead":      rawProof(t, priv, proofHeader(priv), with(good(), "iat", now.Add(time.Minute).Unix())),
		"iat a string":            rawProof(t, priv, proofHeader(priv), with(good(), "iat", "1700000000")),
		"no jti":                  rawProof(t, priv, proofHeader(priv), with(good(), "jti", nil)),
		"no iat":                  rawProof(t, priv, proofHeader(priv), with(good(), "iat", nil)),
		"typ JWT":                 rawProof(t, priv, with(proofHeader(priv), "typ", "JWT"), good()),
		"no jwk":                  rawProof(t, priv, with(proofHeader(priv), "jwk", nil), good()),
		"private key in jwk":      rawProof(t, priv, with(proofHeader(priv), "jwk", ecJWK(priv, true)), good()),
		"jwk of another key":      rawProof(t, priv, with(proofHeader(priv), "jwk", ecJWK(other, false)), good()),
		"alg ES384 with P-256":    rawProof(t, priv, with(proofHeader(priv), "alg", "ES384"), good()),
		"alg none":                none(),
		"HS256 with a secret jwk": hs(),
		"not a JWS":               "not-a-proof",
		"oversized":               strings.Repeat("a", 9000) + ".b.c",
	} {
		t.Run(name, func(t *testing.T) {
			r := proctest.PostForm(t, tokenURL, passwordForm(pub.ClientID), "DPoP", proof)
			wantOAuthError(t, r, 400, "invalid_dpop_proof", "evil", "GET", "1700000000")
		})
	}
	t.Run("two DPoP headers", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, tokenURL, strings.NewReader(passwordForm(pub.ClientID)))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Add("DPoP", rawProof(t, priv, proofHeader(priv), good()))
		req.Header.Add("DPoP", rawProof(t, priv, proofHeader(priv), good()))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		wantOAuthError(t, proctest.Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, 400, "invalid_dpop_proof")
	})
	t.Run("replay", func(t *testing.T) {
		proof := rawProof(t, priv, proofHeader(priv), good())
		proctest.MustToken(t, proctest.PostForm(t, tokenURL, passwordForm(pub.ClientID), "DPoP", proof))
		wantOAuthError(t, proctest.PostForm(t, tokenURL, passwordForm(pub.ClientID), "DPoP", proof), 400, "invalid_dpop_proof")
	})
	t.Run("not spent before client authentication", func(t *testing.T) {
		// A request refused before its client is authenticated writes
		// nothing: the proof is still good afterwards.
		proof := rawProof(t, priv, proofHeader(priv), good())
		wantOAuthError(t, proctest.PostForm(t, tokenURL, passwordForm("no-such-client"), "DPoP", proof), 401, "invalid_client")
		proctest.MustToken(t, proctest.PostForm(t, tokenURL, passwordForm(pub.ClientID), "DPoP", proof))
	})
	t.Run("htu normalized", func(t *testing.T) {
		u, _ := url.Parse(tokenURL)
		odd := "HTTP://" + strings.ToUpper(u.Hostname()) + ":" + u.Port() + "/oauth2/%74oken?x=1#f"
		proctest.MustToken(t, proctest.PostForm(t, tokenURL, passwordForm(pub.ClientID), "DPoP", rawProof(t, priv, proofHeader(priv), with(good(), "htu", odd))))
	})
	t.Run("metadata", func(t *testing.T) {
		_, _, md := proctest.GetJSON(t, srv.URL+"/.well-known/oauth-authorization-server", nil)
		algs, _ := md["dpop_signing_alg_values_supported"].([]any)
		if len(algs) == 0 || algs[0] != "ES256" {
			t.Fatalf("dpop_signing_alg_values_supported %v", md["dpop_signing_alg_values_supported"])
		}
		for _, a := range algs {
			if a == "none" || strings.HasPrefix(a.(string), "HS") {
				t.Fatalf("metadata lists %v", a)
			}
		}
	})
}

// TestDPoPNonce: with dpop.nonce, a proof without the server's nonce gets
// use_dpop_nonce and a DPoP-Nonce (RFC 9449 §8); the nonce works on
// another replica (stateless); and x/oauth2 over dpop.Transport does the
// round trip on its own.
func TestDPoPNonce(t *testing.T) {
	dsn := storagetest.SQLiteDSN(t)
	replicas := startReplicas(t, 2, dsn, "http://issuer.test", "PORTCULLIS_DPOP_NONCE=true")
	a, b := replicas[0], replicas[1]
	a.CreateUser(t, "alice", "purple otter lamp 42")
	pub := a.CreateClient(t, "--name", "spa", "--public")
	key := dpopKey(t)
	const htu = "http://issuer.test/oauth2/token"

	proof, _ := key.Proof("POST", htu, "", "")
	r := proctest.PostForm(t, a.URL+"/oauth2/token", passwordForm(pub.ClientID), "DPoP", proof)
	wantOAuthError(t, r, 400, "use_dpop_nonce")
	nonce := r.Header.Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("no DPoP-Nonce")
	}
	proof, _ = key.Proof("POST", htu, "", nonce)
	tok := proctest.MustToken(t, proctest.PostForm(t, b.URL+"/oauth2/token", passwordForm(pub.ClientID), "DPoP", proof))
	if jkt(t, tok.AccessToken) != key.Thumbprint() {
		t.Fatal("not bound")
	}
	proof, _ = key.Proof("POST", htu, "", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	wantOAuthError(t, proctest.PostForm(t, b.URL+"/oauth2/token", passwordForm(pub.ClientID), "DPoP", proof), 400, "use_dpop_nonce")

	// Any refused proof comes with the nonce the next one needs.
	proof, _ = key.Proof("GET", htu, "", nonce)
	if r := proctest.PostForm(t, b.URL+"/oauth2/token", passwordForm(pub.ClientID), "DPoP", proof); r.Header.Get("DPoP-Nonce") == "" {
		t.Fatalf("invalid_dpop_proof without DPoP-Nonce: %d %s", r.Status, r.Body)
	}

	// x/oauth2 with dpop.Transport: the issuer URL goes to replica a.
	hc := &http.Client{Transport: dpop.NewTransport(key, rewriteHost{to: a.URL})}
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, hc)
	conf := &oauth2.Config{ClientID: pub.ClientID, Endpoint: oauth2.Endpoint{TokenURL: htu, AuthStyle: oauth2.AuthStyleInParams}}
	ot, err := conf.PasswordCredentialsToken(ctx, "alice", "purple otter lamp 42")
	if err != nil {
		t.Fatal(err)
	}
	if ot.Type() != "DPoP" || jkt(t, ot.AccessToken) != key.Thumbprint() {
		t.Fatalf("x/oauth2 token %q bound to %q", ot.Type(), jkt(t, ot.AccessToken))
	}
}

// rewriteHost sends every request to the server at base URL to, keeping
// the path: the test's stand-in for DNS of the issuer's host name.
type rewriteHost struct{ to string }

func (rh rewriteHost) RoundTrip(req *http.Request) (*http.Response, error) {
	u, _ := url.Parse(rh.to)
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host = u.Scheme, u.Host
	out.Host = u.Host
	return http.DefaultTransport.RoundTrip(out)
}

// TestDPoPReplayAcrossReplicas: a proof accepted by one replica is refused
// by another (the jti is remembered in the shared database), on SQLite
// and MariaDB.
func TestDPoPReplayAcrossReplicas(t *testing.T) {
	for name, dsn := range map[string]func(t *testing.T) string{
		"sqlite": func(t *testing.T) string { return storagetest.SQLiteDSN(t) },
		"mysql":  func(t *testing.T) string { return storagetest.MySQLDSN(t) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			replicas := startReplicas(t, 2, dsn(t), "http://issuer.test")
			a, b := replicas[0], replicas[1]
			a.CreateUser(t, "alice", "purple otter lamp 42")
			pub := a.CreateClient(t, "--name", "spa", "--public")
			key := dpopKey(t)
			proof, _ := key.Proof("POST", "http://issuer.test/oauth2/token", "", "")
			proctest.MustToken(t, proctest.PostForm(t, a.URL+"/oauth2/token", passwordForm(pub.ClientID), "DPoP", proof))
			wantOAuthError(t, proctest.PostForm(t, b.URL+"/oauth2/token", passwordForm(pub.ClientID), "DPoP", proof), 400, "invalid_dpop_proof")
		})
	}
}

// TestDPoPRequiredClient: a client registered with
// dpop_bound_access_tokens gets no token without a proof (RFC 9449 §5.2).
func TestDPoPRequiredClient(t *testing.T) {
	portcullis.EachBackend(t, nil, func(t *testing.T, srv *proctest.Server) {
		srv.CreateUser(t, "alice", "purple otter lamp 42")
		pub := srv.CreateClient(t, "--name", "spa", "--public", "--dpop-bound-access-tokens")
		wantOAuthError(t, proctest.PostForm(t, srv.URL+"/oauth2/token", passwordForm(pub.ClientID)), 400, "invalid_dpop_proof")
		tok := proctest.MustToken(t, proctest.PostForm(t, srv.URL+"/oauth2/token", passwordForm(pub.ClientID), "DPoP", tokenProof(t, dpopKey(t), srv)))
		if tok.TokenType != "DPoP" {
			t.Fatalf("token_type %q", tok.TokenType)
		}
	})
}

// TestDPoPAdminAPI: the admin API, a resource server of its own, accepts a
// DPoP-bound admin token only with the DPoP scheme and a fresh proof by
// its key (RFC 9449 §7), never as a Bearer token.
func TestDPoPAdminAPI(t *testing.T) {
	srv := portcullis.Serve(t)
	adm := srv.CreateClient(t, "--name", "admin", "--grant-type", "client_credentials", "--scope", "admin")
	key := dpopKey(t)
	tok := proctest.MustToken(t, proctest.PostForm(t, srv.URL+"/oauth2/token", "grant_type=client_credentials&scope=admin",
		"Authorization", proctest.BasicAuth(adm.ClientID, adm.ClientSecret), "DPoP", tokenProof(t, key, srv)))
	usersURL := srv.AdminURL + "/admin/users"
	proof := func(k *dpop.Key, token string) string {
		p, err := k.Proof(http.MethodGet, usersURL, token, "")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	get := func(header ...string) proctest.Response {
		return proctest.Do(t, http.MethodGet, usersURL, "", nil, header...)
	}
	if r := get("Authorization", "Bearer "+tok.AccessToken); r.Status != http.StatusUnauthorized {
		t.Fatalf("bound token as Bearer: %d %s", r.Status, r.Body)
	}
	good := proof(key, tok.AccessToken)
	if r := get("Authorization", "DPoP "+tok.AccessToken, "DPoP", good); r.Status != http.StatusOK {
		t.Fatalf("DPoP: %d %s", r.Status, r.Body)
	}
	for name, h := range map[string][]string{
		"replayed proof":        {"Authorization", "DPoP " + tok.AccessToken, "DPoP", good},
		"no proof":              {"Authorization", "DPoP " + tok.AccessToken},
		"proof by another key":  {"Authorization", "DPoP " + tok.AccessToken, "DPoP", proof(dpopKey(t), tok.AccessToken)},
		"proof for other token": {"Authorization", "DPoP " + tok.AccessToken, "DPoP", proof(key, "other")},
		// Refusals of the token itself answer in the scheme used, too.
		"invalid token": {"Authorization", "DPoP a.b.c", "DPoP", proof(key, "a.b.c")},
	} {
		r := get(h...)
		if r.Status != http.StatusUnauthorized || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "DPoP ") {
			t.Errorf("%s: %d %q %s", name, r.Status, r.Header.Get("WWW-Authenticate"), r.Body)
		}
	}
	// An unbound admin token works as Bearer and not as DPoP.
	plain := srv.ClientCredentialsToken(t, adm, "admin")
	if r := get("Authorization", "Bearer "+plain.AccessToken); r.Status != http.StatusOK {
		t.Fatalf("unbound Bearer: %d %s", r.Status, r.Body)
	}
	if r := get("Authorization", "DPoP "+plain.AccessToken, "DPoP", proof(key, plain.AccessToken)); r.Status != http.StatusUnauthorized {
		t.Fatalf("unbound token as DPoP: %d %s", r.Status, r.Body)
	}
}

// TestREADMEDPoPClient runs the README's DPoP example
// (deploy/examples/dpop-client) as the README does, against a real server
// and userapi: it must get a DPoP token, be served /users/me with it, and
// see the same token refused as Bearer.
func TestREADMEDPoPClient(t *testing.T) {
	bin, remove, err := proctest.Build("../../deploy/examples/dpop-client")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(remove)
	srv := portcullis.Serve(t)
	addr := proctest.FreeAddr(t)
	audience := "http://" + addr
	p := proctest.Start(t, string(userapi), []string{"PATH=" + os.Getenv("PATH")}, "--issuer", srv.URL, "--addr", addr, "--audience", audience)
	if err := p.WaitHTTP(audience+"/health/alive", http.StatusOK); err != nil {
		t.Fatal(err)
	}
	srv.CreateUser(t, "alice", "purple otter lamp 42")
	c := srv.CreateClient(t, "--name", "quickstart", "--public", "--audience", audience)
	cmd := exec.CommandContext(t.Context(), bin, "-issuer", srv.URL, "-userapi", audience, "-client-id", c.ClientID, "-username", "alice", "-password-stdin")
	cmd.Stdin = strings.NewReader("purple otter lamp 42\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dpop-client: %v\n%s", err, out)
	}
	for _, want := range []string{"token_type: DPoP", "GET /users/me with DPoP:   200", `"username":"alice"`, "GET /users/me as Bearer:   401"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestDPoPKeylessReplayKeepsGrant: a thief replaying an old (rotated)
// DPoP-bound refresh token without the key proves nothing: it gets
// invalid_grant, and does not set off reuse detection, which would revoke
// the owner's grant (a denial of service by whoever saw an old token).
// With the key, a replay of a used token still revokes the grant.
func TestDPoPKeylessReplayKeepsGrant(t *testing.T) {
	portcullis.EachBackend(t, nil, func(t *testing.T, srv *proctest.Server) {
		srv.CreateUser(t, "alice", "purple otter lamp 42")
		pub := srv.CreateClient(t, "--name", "spa", "--public")
		tokenURL := srv.URL + "/oauth2/token"
		key := dpopKey(t)
		first := proctest.MustToken(t, proctest.PostForm(t, tokenURL, passwordForm(pub.ClientID), "DPoP", tokenProof(t, key, srv)))
		second := proctest.MustToken(t, proctest.PostForm(t, tokenURL, refreshForm(pub.ClientID, first.RefreshToken), "DPoP", tokenProof(t, key, srv)))
		// The thief replays the used token, without a proof and with its own key.
		wantOAuthError(t, proctest.PostForm(t, tokenURL, refreshForm(pub.ClientID, first.RefreshToken)), 400, "invalid_grant")
		wantOAuthError(t, proctest.PostForm(t, tokenURL, refreshForm(pub.ClientID, first.RefreshToken), "DPoP", tokenProof(t, dpopKey(t), srv)), 400, "invalid_grant")
		// The owner's grant lives on.
		third := proctest.MustToken(t, proctest.PostForm(t, tokenURL, refreshForm(pub.ClientID, second.RefreshToken), "DPoP", tokenProof(t, key, srv)))
		// A replay with the key is reuse: the grant is revoked.
		wantOAuthError(t, proctest.PostForm(t, tokenURL, refreshForm(pub.ClientID, first.RefreshToken), "DPoP", tokenProof(t, key, srv)), 400, "invalid_grant")
		wantOAuthError(t, proctest.PostForm(t, tokenURL, refreshForm(pub.ClientID, third.RefreshToken), "DPoP", tokenProof(t, key, srv)), 400, "invalid_grant")
	})
}

// TestDPoPAdminAPIRequestURI: the admin API checks htu against the URI the
// client requested, percent-encoding included (RFC 9449 §4.3 check 9): an
// encoded "?" or "#" is part of the path, not the start of a query or
// fragment, so a proof for /admin/users/abc is no proof for
// /admin/users/abc%3Fx; and a request whose URI cannot be rebuilt (an
// HTTP/1.0 request without Host) is a refused proof, 401
// invalid_dpop_proof, not an outage (503, logged as a replay-store error).
func TestDPoPAdminAPIRequestURI(t *testing.T) {
	srv := portcullis.Serve(t)
	adm := srv.CreateClient(t, "--name", "admin", "--grant-type", "client_credentials", "--scope", "admin")
	key := dpopKey(t)
	tok := proctest.MustToken(t, proctest.PostForm(t, srv.URL+"/oauth2/token", "grant_type=client_credentials&scope=admin",
		"Authorization", proctest.BasicAuth(adm.ClientID, adm.ClientSecret), "DPoP", tokenProof(t, key, srv)))
	proof := func(htu string) string {
		p, err := key.Proof(http.MethodGet, htu, tok.AccessToken, "")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		name, path, htu string
		status          int
	}{
		// The proof names the request's URI: accepted; no such user.
		{"encoded ? in the proof and the request", "/admin/users/abc%3Fx", "/admin/users/abc%3Fx", http.StatusNotFound},
		{"encoded # in the proof and the request", "/admin/users/abc%23x", "/admin/users/abc%23x", http.StatusNotFound},
		// A proof for another URI: refused.
		{"proof for the path before an encoded ?", "/admin/users/abc%3Fx", "/admin/users/abc", http.StatusUnauthorized},
		{"proof for the path before an encoded #", "/admin/users/abc%23x", "/admin/users/abc", http.StatusUnauthorized},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := proctest.Do(t, http.MethodGet, srv.AdminURL+c.path, "", nil,
				"Authorization", "DPoP "+tok.AccessToken, "DPoP", proof(srv.AdminURL+c.htu))
			if r.Status != c.status {
				t.Fatalf("%s with a proof for %s: %d %s, want %d", c.path, c.htu, r.Status, r.Body, c.status)
			}
			if c.status == http.StatusUnauthorized && !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), `DPoP error="invalid_dpop_proof"`) {
				t.Errorf("WWW-Authenticate %q, want a DPoP invalid_dpop_proof challenge", r.Header.Get("WWW-Authenticate"))
			}
		})
	}
	t.Run("HTTP/1.0 without Host", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(srv.AdminURL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /admin/users HTTP/1.0\r\nAuthorization: DPoP %s\r\nDPoP: %s\r\n\r\n",
			tok.AccessToken, proof(srv.AdminURL+"/admin/users"))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if www := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(www, `DPoP error="invalid_dpop_proof"`) {
			t.Fatalf("%d %q, want 401 with a DPoP invalid_dpop_proof challenge", resp.StatusCode, www)
		}
	})
}

// TestDPoPAdminAPIForbiddenChallenges: the admin API's 403s (a token
// without scope admin, a user without role admin) answer in the scheme
// the request used: a DPoP challenge with algs for DPoP (RFC 9449 §7.1),
// a Bearer one for Bearer (RFC 6750 §3.1).
func TestDPoPAdminAPIForbiddenChallenges(t *testing.T) {
	srv := portcullis.Serve(t)
	srv.CreateUser(t, "alice", "purple otter lamp 42") // not an admin
	pub := srv.CreateClient(t, "--name", "spa", "--public", "--scope", "read", "--scope", "admin")
	usersURL := srv.AdminURL + "/admin/users"
	key := dpopKey(t)
	grant := func(scope string) string {
		form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"purple otter lamp 42"},
			"client_id": {pub.ClientID}, "scope": {scope}}.Encode()
		return proctest.MustToken(t, proctest.PostForm(t, srv.URL+"/oauth2/token", form, "DPoP", tokenProof(t, key, srv))).AccessToken
	}
	for name, token := range map[string]string{"token without scope admin": grant("read"), "user without role admin": grant("admin")} {
		t.Run(name, func(t *testing.T) {
			p, err := key.Proof(http.MethodGet, usersURL, token, "")
			if err != nil {
				t.Fatal(err)
			}
			r := proctest.Do(t, http.MethodGet, usersURL, "", nil, "Authorization", "DPoP "+token, "DPoP", p)
			www := r.Header.Get("WWW-Authenticate")
			if r.Status != http.StatusForbidden || !strings.HasPrefix(www, "DPoP ") ||
				!strings.Contains(www, `error="insufficient_scope"`) || !strings.Contains(www, `algs="ES256`) {
				t.Fatalf("DPoP scheme: %d %q, want 403 with a DPoP insufficient_scope challenge and algs", r.Status, www)
			}
			r = proctest.Do(t, http.MethodGet, usersURL, "", nil, "Authorization", "Bearer "+token)
			if www := r.Header.Get("WWW-Authenticate"); r.Status != http.StatusForbidden || !strings.HasPrefix(www, "Bearer ") {
				t.Fatalf("Bearer scheme: %d %q, want 403 with a Bearer challenge", r.Status, www)
			}
		})
	}
}

// TestDPoPAdminURL: behind a proxy (here: TLS and a path prefix, as
// admin_url says), a DPoP proof at the admin API names the URL the client
// uses, not the listener's; a proof for the listener's own URL is refused.
func TestDPoPAdminURL(t *testing.T) {
	const ext = "https://admin.example.test/portcullis"
	srv := portcullis.Serve(t, "PORTCULLIS_ADMIN_URL="+ext)
	adm := srv.CreateClient(t, "--name", "admin", "--grant-type", "client_credentials", "--scope", "admin")
	key := dpopKey(t)
	tok := proctest.MustToken(t, proctest.PostForm(t, srv.URL+"/oauth2/token", "grant_type=client_credentials&scope=admin",
		"Authorization", proctest.BasicAuth(adm.ClientID, adm.ClientSecret), "DPoP", tokenProof(t, key, srv)))
	for htu, want := range map[string]int{ext + "/admin/users": http.StatusOK, srv.AdminURL + "/admin/users": http.StatusUnauthorized} {
		p, err := key.Proof(http.MethodGet, htu, tok.AccessToken, "")
		if err != nil {
			t.Fatal(err)
		}
		if r := proctest.Do(t, http.MethodGet, srv.AdminURL+"/admin/users", "", nil, "Authorization", "DPoP "+tok.AccessToken, "DPoP", p); r.Status != want {
			t.Errorf("proof for %s: %d %s, want %d", htu, r.Status, r.Body, want)
		}
	}
}

// TestDPoPExpiredBoundToken: a fresh, valid proof does not revive a bound
// access token past its exp (waited for for real, with a 2 s token): the
// admin API, without leeway, refuses it 1 s after exp; userapi, whose
// verifier tolerates resource.DefaultLeeway (30 s) of clock skew as for
// Bearer tokens, 1 s after that.
func TestDPoPExpiredBoundToken(t *testing.T) {
	srv := portcullis.Serve(t, "PORTCULLIS_ACCESS_TOKEN_TTL=2s")
	addr := proctest.FreeAddr(t)
	api := "http://" + addr
	p := proctest.Start(t, string(userapi), []string{"PATH=" + os.Getenv("PATH")}, "--issuer", srv.URL, "--addr", addr, "--audience", api)
	if err := p.WaitHTTP(api+"/health/alive", http.StatusOK); err != nil {
		t.Fatal(err)
	}
	srv.CreateUser(t, "alice", "purple otter lamp 42")
	pub := srv.CreateClient(t, "--name", "spa", "--public", "--audience", api)
	adm := srv.CreateClient(t, "--name", "admin", "--grant-type", "client_credentials", "--scope", "admin")
	key := dpopKey(t)
	user := proctest.MustToken(t, proctest.PostForm(t, srv.URL+"/oauth2/token", passwordForm(pub.ClientID), "DPoP", tokenProof(t, key, srv)))
	admin := proctest.MustToken(t, proctest.PostForm(t, srv.URL+"/oauth2/token", "grant_type=client_credentials&scope=admin",
		"Authorization", proctest.BasicAuth(adm.ClientID, adm.ClientSecret), "DPoP", tokenProof(t, key, srv)))
	call := func(u, token string) proctest.Response {
		proof, err := key.Proof(http.MethodGet, u, token, "")
		if err != nil {
			t.Fatal(err)
		}
		return proctest.Do(t, http.MethodGet, u, "", nil, "Authorization", "DPoP "+token, "DPoP", proof)
	}
	if r := call(api+"/users/me", user.AccessToken); r.Status != http.StatusOK {
		t.Fatalf("userapi before exp: %d %s", r.Status, r.Body)
	}
	if r := call(srv.AdminURL+"/admin/users", admin.AccessToken); r.Status != http.StatusOK {
		t.Fatalf("admin API before exp: %d %s", r.Status, r.Body)
	}
	_, claims := proctest.DecodeJWT(t, user.AccessToken)
	exp := time.Unix(int64(claims["exp"].(float64)), 0)
	wantRefused := func(name string, r proctest.Response) {
		t.Helper()
		if r.Status != http.StatusUnauthorized || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "DPoP ") ||
			!strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("%s after exp with a fresh proof: %d %q %s", name, r.Status, r.Header.Get("WWW-Authenticate"), r.Body)
		}
	}
	time.Sleep(time.Until(exp.Add(time.Second)))
	wantRefused("admin API", call(srv.AdminURL+"/admin/users", admin.AccessToken))
	time.Sleep(time.Until(exp.Add(resource.DefaultLeeway + time.Second)))
	wantRefused("userapi", call(api+"/users/me", user.AccessToken))
}
