package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/internal/proctest"
	"github.com/portcullis-auth/portcullis/oauth/dpop"
)

// The black-box half of the RFC 9449 audit: what the real server does at
// the token endpoint, in its metadata and as the admin API, for the
// requirements TestDPoPTokenEndpoint and its siblings leave out.

// TestDPoPBoundClientEveryGrant: a client registered with
// dpop_bound_access_tokens gets no token without a proof from any grant
// (RFC 9449 §5.2: "the authorization server MUST reject token requests
// from the client that do not contain the DPoP header"), confidential as
// well as public, refresh included; a refresh refused for lack of a proof
// leaves the refresh token usable.
func TestDPoPBoundClientEveryGrant(t *testing.T) {
	srv := portcullis.Serve(t)
	srv.CreateUser(t, "alice", "purple otter lamp 42")
	conf := srv.CreateClient(t, "--name", "backend", "--dpop-bound-access-tokens",
		"--grant-type", "password", "--grant-type", "refresh_token", "--grant-type", "client_credentials")
	pub := srv.CreateClient(t, "--name", "spa", "--public", "--dpop-bound-access-tokens")
	tokenURL := srv.URL + "/oauth2/token"
	basic := proctest.BasicAuth(conf.ClientID, conf.ClientSecret)
	key := dpopKey(t)
	password := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"purple otter lamp 42"}}.Encode()

	wantOAuthError(t, proctest.PostForm(t, tokenURL, "grant_type=client_credentials", "Authorization", basic), 400, "invalid_dpop_proof")
	wantOAuthError(t, proctest.PostForm(t, tokenURL, password, "Authorization", basic), 400, "invalid_dpop_proof")
	cc := proctest.MustToken(t, proctest.PostForm(t, tokenURL, "grant_type=client_credentials", "Authorization", basic, "DPoP", tokenProof(t, key, srv)))
	if cc.TokenType != dpop.Scheme || jkt(t, cc.AccessToken) != key.Thumbprint() {
		t.Fatalf("client_credentials with a proof: %q %q", cc.TokenType, jkt(t, cc.AccessToken))
	}

	for _, c := range []struct {
		name    string
		form    func(rt string) string
		auth    []string
		initial string
	}{
		{"confidential", func(rt string) string {
			return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode()
		}, []string{"Authorization", basic}, password},
		{"public", func(rt string) string { return refreshForm(pub.ClientID, rt) }, nil, passwordForm(pub.ClientID)},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok := proctest.MustToken(t, proctest.PostForm(t, tokenURL, c.initial, append(c.auth, "DPoP", tokenProof(t, key, srv))...))
			if tok.RefreshToken == "" {
				t.Fatal("no refresh token")
			}
			// Without a proof: refused (the public client's binding would
			// refuse it too; the registration comes first).
			wantOAuthError(t, proctest.PostForm(t, tokenURL, c.form(tok.RefreshToken), c.auth...), 400, "invalid_dpop_proof")
			next := proctest.MustToken(t, proctest.PostForm(t, tokenURL, c.form(tok.RefreshToken), append(c.auth, "DPoP", tokenProof(t, key, srv))...))
			if next.TokenType != dpop.Scheme || jkt(t, next.AccessToken) != key.Thumbprint() {
				t.Fatalf("refresh with a proof: %q %q", next.TokenType, jkt(t, next.AccessToken))
			}
		})
	}
}

// TestDPoPPublicRefreshBoundLater: "When an authorization server
// supporting DPoP issues a refresh token to a public client that presents
// a valid DPoP proof at the token endpoint, the refresh token MUST be
// bound to the respective public key" (RFC 9449 §5), also when the grant
// began without DPoP: the refresh token issued by the first refresh with
// a proof is bound, and from then on needs a proof by that key.
func TestDPoPPublicRefreshBoundLater(t *testing.T) {
	portcullis.EachBackend(t, nil, func(t *testing.T, srv *proctest.Server) {
		srv.CreateUser(t, "alice", "purple otter lamp 42")
		pub := srv.CreateClient(t, "--name", "spa", "--public")
		tokenURL := srv.URL + "/oauth2/token"
		key, thief := dpopKey(t), dpopKey(t)

		plain := proctest.MustToken(t, proctest.PostForm(t, tokenURL, passwordForm(pub.ClientID)))
		if jkt(t, plain.AccessToken) != "" || plain.RefreshToken == "" {
			t.Fatalf("grant without a proof: cnf.jkt %q, refresh token %q", jkt(t, plain.AccessToken), plain.RefreshToken)
		}
		bound := proctest.MustToken(t, proctest.PostForm(t, tokenURL, refreshForm(pub.ClientID, plain.RefreshToken), "DPoP", tokenProof(t, key, srv)))
		if bound.TokenType != dpop.Scheme || jkt(t, bound.AccessToken) != key.Thumbprint() {
			t.Fatalf("refresh with a proof: %q %q", bound.TokenType, jkt(t, bound.AccessToken))
		}
		wantOAuthError(t, proctest.PostForm(t, tokenURL, refreshForm(pub.ClientID, bound.RefreshToken)), 400, "invalid_grant")
		wantOAuthError(t, proctest.PostForm(t, tokenURL, refreshForm(pub.ClientID, bound.RefreshToken), "DPoP", tokenProof(t, thief, srv)), 400, "invalid_grant")
		again := proctest.MustToken(t, proctest.PostForm(t, tokenURL, refreshForm(pub.ClientID, bound.RefreshToken), "DPoP", tokenProof(t, key, srv)))
		if jkt(t, again.AccessToken) != key.Thumbprint() {
			t.Fatalf("refresh by the key: cnf.jkt %q", jkt(t, again.AccessToken))
		}
	})
}

// TestDPoPThumbprintRFC7638: the cnf.jkt of a bound access token, and of
// its introspection, is "the base64url encoding of the JWK SHA-256
// Thumbprint (according to RFC 7638) of the DPoP public key" (RFC 9449
// §6.1, §6.2), computed here by hand: the required members only, so the
// kid, use and alg members a client adds to its jwk change nothing.
func TestDPoPThumbprintRFC7638(t *testing.T) {
	srv := portcullis.Serve(t)
	srv.CreateUser(t, "alice", "purple otter lamp 42")
	pub := srv.CreateClient(t, "--name", "spa", "--public")
	intro := srv.CreateClient(t, "--name", "rs", "--grant-type", "client_credentials", "--introspect")
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk := ecJWK(priv, false)
	sum := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + jwk["x"].(string) + `","y":"` + jwk["y"].(string) + `"}`))
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	jwk["kid"], jwk["use"], jwk["alg"] = "my-dpop-key", "sig", "ES256"
	header := map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}
	tok := proctest.MustToken(t, proctest.PostForm(t, srv.URL+"/oauth2/token", passwordForm(pub.ClientID),
		"DPoP", rawProof(t, priv, header, proofClaims(http.MethodPost, srv.URL+"/oauth2/token", time.Now()))))
	if got := jkt(t, tok.AccessToken); got != want {
		t.Fatalf("cnf.jkt %q, want the RFC 7638 thumbprint %q", got, want)
	}
	m := proctest.PostForm(t, srv.URL+"/oauth2/introspect", url.Values{"token": {tok.AccessToken}}.Encode(),
		"Authorization", proctest.BasicAuth(intro.ClientID, intro.ClientSecret)).JSON(t)
	cnf, _ := m["cnf"].(map[string]any)
	if m["active"] != true || cnf["jkt"] != want || m["token_type"] != dpop.Scheme {
		t.Fatalf("introspection %v, want cnf.jkt %q and token_type DPoP", m, want)
	}
}

// TestDPoPNoncesAndPolicy: a server with dpop.nonce and a restricted
// dpop.algorithms:
//   - metadata lists exactly the configured algorithms (§5.1), and has no
//     authorization or PAR endpoint (so §10's code binding does not
//     apply);
//   - a proof by another algorithm is refused (§4.3 check 5: "acceptable
//     per local policy");
//   - the token endpoint refuses a proof without its nonce with 400
//     use_dpop_nonce and exactly one DPoP-Nonce (§8), accepts the proof
//     with it and sends the nonce again, once, on the 200 (§8.2), which
//     is uncacheable (the 400's no-store wantOAuthError checks);
//   - the admin API, a resource server, answers a proof without its
//     nonce with 401, a DPoP use_dpop_nonce challenge listing the
//     algorithms and exactly one DPoP-Nonce (§9, §7.1), and a request
//     without credentials with both challenges and no error (§7.2).
func TestDPoPNoncesAndPolicy(t *testing.T) {
	srv := portcullis.Serve(t, "PORTCULLIS_DPOP_NONCE=true", "PORTCULLIS_DPOP_ALGORITHMS=ES256,EdDSA")
	srv.CreateUser(t, "alice", "purple otter lamp 42")
	pub := srv.CreateClient(t, "--name", "spa", "--public")
	adm := srv.CreateClient(t, "--name", "admin", "--grant-type", "client_credentials", "--scope", "admin")
	tokenURL := srv.URL + "/oauth2/token"
	key := dpopKey(t)

	_, _, md := proctest.GetJSON(t, srv.URL+"/.well-known/oauth-authorization-server", nil)
	var algs []string
	for _, a := range md["dpop_signing_alg_values_supported"].([]any) {
		algs = append(algs, a.(string))
	}
	slices.Sort(algs)
	if strings.Join(algs, " ") != "ES256 EdDSA" {
		t.Fatalf("dpop_signing_alg_values_supported %v, want ES256 and EdDSA", md["dpop_signing_alg_values_supported"])
	}
	for _, m := range []string{"authorization_endpoint", "pushed_authorization_request_endpoint"} {
		if _, ok := md[m]; ok {
			t.Errorf("metadata has %s: RFC 9449 §10 would apply", m)
		}
	}
	if rt, _ := md["response_types_supported"].([]any); len(rt) != 0 {
		t.Errorf("response_types_supported %v", rt)
	}

	oneNonce := func(t *testing.T, r proctest.Response) string {
		t.Helper()
		v := r.Header.Values("DPoP-Nonce")
		if len(v) != 1 || v[0] == "" {
			t.Fatalf("DPoP-Nonce %q, want exactly one", v)
		}
		return v[0]
	}
	proof := func(k *dpop.Key, method, uri, token, nonce string) string {
		t.Helper()
		p, err := k.Proof(method, uri, token, nonce)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	r := proctest.PostForm(t, tokenURL, passwordForm(pub.ClientID), "DPoP", proof(key, http.MethodPost, tokenURL, "", ""))
	wantOAuthError(t, r, 400, "use_dpop_nonce")
	nonce := oneNonce(t, r)

	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	es384, err := dpop.NewKey(crypto.Signer(p384))
	if err != nil {
		t.Fatal(err)
	}
	wantOAuthError(t, proctest.PostForm(t, tokenURL, passwordForm(pub.ClientID), "DPoP", proof(es384, http.MethodPost, tokenURL, "", nonce)), 400, "invalid_dpop_proof")

	r = proctest.PostForm(t, tokenURL, passwordForm(pub.ClientID), "DPoP", proof(key, http.MethodPost, tokenURL, "", nonce))
	tok := proctest.MustToken(t, r)
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q on a 200 with DPoP-Nonce", cc)
	}
	if tok.TokenType != dpop.Scheme || jkt(t, tok.AccessToken) != key.Thumbprint() {
		t.Fatalf("token_type %q cnf.jkt %q", tok.TokenType, jkt(t, tok.AccessToken))
	}
	oneNonce(t, r)

	// The admin API.
	r = proctest.PostForm(t, tokenURL, "grant_type=client_credentials&scope=admin",
		"Authorization", proctest.BasicAuth(adm.ClientID, adm.ClientSecret), "DPoP", proof(key, http.MethodPost, tokenURL, "", nonce))
	admin := proctest.MustToken(t, r)
	usersURL := srv.AdminURL + "/admin/users"
	get := func(header ...string) proctest.Response {
		return proctest.Do(t, http.MethodGet, usersURL, "", nil, header...)
	}
	const algsParam = `algs="ES256 EdDSA"`
	r = get()
	if got := r.Header.Values("WWW-Authenticate"); r.Status != 401 || len(got) != 2 ||
		!strings.HasPrefix(got[0], "Bearer ") || got[1] != "DPoP "+algsParam || strings.Contains(strings.Join(got, ","), "error=") {
		t.Fatalf("no credentials: %d %q", r.Status, got)
	}
	r = get("Authorization", "DPoP "+admin.AccessToken, "DPoP", proof(key, http.MethodGet, usersURL, admin.AccessToken, ""))
	if got := r.Header.Values("WWW-Authenticate"); r.Status != 401 || len(got) != 1 ||
		got[0] != `DPoP error="use_dpop_nonce", `+algsParam {
		t.Fatalf("admin API, proof without a nonce: %d %q %s", r.Status, got, r.Body)
	}
	rsNonce := oneNonce(t, r)
	r = get("Authorization", "DPoP "+admin.AccessToken, "DPoP", proof(key, http.MethodGet, usersURL, admin.AccessToken, rsNonce))
	if r.Status != http.StatusOK {
		t.Fatalf("admin API, proof with the nonce: %d %s", r.Status, r.Body)
	}
}

// TestDPoPAdminAPIProofChecks: the admin API, as a resource server, makes
// the checks of RFC 9449 §4.3 against its own request (§7.1: it "MUST NOT
// grant access to the resource unless all checks are successful"): one
// DPoP header (check 1), htm the request's method (check 8), htu the URI
// the request names, percent-encoding included, query ignored (check 9),
// iat within the window (check 11). A refusal is 401 with a DPoP
// challenge; the one accepted request is the last, for a user that does
// not exist (404: authorized).
func TestDPoPAdminAPIProofChecks(t *testing.T) {
	srv := portcullis.Serve(t)
	adm := srv.CreateClient(t, "--name", "admin", "--grant-type", "client_credentials", "--scope", "admin")
	priv := newECKey(t)
	tokenURL := srv.URL + "/oauth2/token"
	tok := proctest.MustToken(t, proctest.PostForm(t, tokenURL, "grant_type=client_credentials&scope=admin",
		"Authorization", proctest.BasicAuth(adm.ClientID, adm.ClientSecret),
		"DPoP", rawProof(t, priv, proofHeader(priv), proofClaims(http.MethodPost, tokenURL, time.Now()))))
	target := srv.AdminURL + "/admin/users/no%2Fsuch-user"
	proof := func(method, htu string, iat time.Time) string {
		c := proofClaims(method, htu, iat)
		c["ath"] = dpop.AccessTokenHash(tok.AccessToken)
		return rawProof(t, priv, proofHeader(priv), c)
	}
	send := func(t *testing.T, url string, proofs ...string) proctest.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "DPoP "+tok.AccessToken)
		for _, p := range proofs {
			req.Header.Add("DPoP", p)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return proctest.Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
	}
	now := time.Now()
	for name, proofs := range map[string][]string{
		"two DPoP headers":           {proof(http.MethodGet, target, now), proof(http.MethodGet, target, now)},
		"htm POST":                   {proof(http.MethodPost, target, now)},
		"htu of the public listener": {proof(http.MethodGet, srv.URL+"/admin/users/no%2Fsuch-user", now)},
		"htu with / for %2F":         {proof(http.MethodGet, srv.AdminURL+"/admin/users/no/such-user", now)},
		"htu of another path":        {proof(http.MethodGet, srv.AdminURL+"/admin/users", now)},
		"iat 2 minutes old":          {proof(http.MethodGet, target, now.Add(-2*time.Minute))},
		"iat a minute ahead":         {proof(http.MethodGet, target, now.Add(time.Minute))},
	} {
		t.Run(name, func(t *testing.T) {
			r := send(t, target+"?x=1", proofs...)
			if www := r.Header.Get("WWW-Authenticate"); r.Status != http.StatusUnauthorized || !strings.HasPrefix(www, `DPoP error="invalid_dpop_proof"`) {
				t.Fatalf("%d %q %s", r.Status, www, r.Body)
			}
		})
	}
	if r := send(t, target+"?x=1", proof(http.MethodGet, target, now)); r.Status != http.StatusNotFound {
		t.Fatalf("good proof: %d %q %s, want 404 (authorized, no such user)", r.Status, r.Header.Get("WWW-Authenticate"), r.Body)
	}
}
