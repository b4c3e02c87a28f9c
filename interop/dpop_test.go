package interop

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
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// jwxDPoPKey is a client's DPoP key held by lestrrat-go/jwx/v3: the
// private key signs proofs, the public one goes in their jwk header, and
// jkt is the RFC 7638 thumbprint as jwx computes it (base64url of
// jwk.Thumbprint(crypto.SHA256)).
type jwxDPoPKey struct {
	alg  jwa.SignatureAlgorithm
	priv jwk.Key
	pub  jwk.Key
	jkt  string
}

// newJWXDPoPKey generates a key for alg (ES256, ES384, EdDSA, PS256 or
// RS256) and imports it into jwx.
func newJWXDPoPKey(t *testing.T, alg string) *jwxDPoPKey {
	t.Helper()
	var raw any
	var err error
	switch alg {
	case "ES256":
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		raw, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "EdDSA":
		_, raw, err = ed25519.GenerateKey(rand.Reader)
	case "PS256", "RS256":
		raw, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("no key type for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	a, ok := jwa.LookupSignatureAlgorithm(alg)
	if !ok {
		t.Fatalf("jwx does not know %s", alg)
	}
	priv, err := jwk.Import(raw)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jwk.PublicKeyOf(priv)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return &jwxDPoPKey{alg: a, priv: priv, pub: pub, jkt: base64.RawURLEncoding.EncodeToString(tp)}
}

// proof returns a DPoP proof (RFC 9449 §4.2) made by jwx: claims from its
// jwt builder, signed by jws.Sign with a protected header carrying typ
// dpop+jwt and the public key as jwk. ath (the base64url SHA-256 of
// accessToken, computed here) and nonce are left out when empty.
func (k *jwxDPoPKey) proof(t *testing.T, method, uri, accessToken, nonce string) string {
	t.Helper()
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		t.Fatal(err)
	}
	b := jwt.NewBuilder().
		JwtID(base64.RawURLEncoding.EncodeToString(jti)).
		IssuedAt(time.Now()).
		Claim("htm", method).
		Claim("htu", uri)
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		b = b.Claim("ath", base64.RawURLEncoding.EncodeToString(sum[:]))
	}
	if nonce != "" {
		b = b.Claim("nonce", nonce)
	}
	claims, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	hdrs := jws.NewHeaders()
	if err := hdrs.Set(jws.TypeKey, "dpop+jwt"); err != nil {
		t.Fatal(err)
	}
	if err := hdrs.Set(jws.JWKKey, k.pub); err != nil {
		t.Fatal(err)
	}
	signed, err := jws.Sign(payload, jws.WithKey(k.alg, k.priv, jws.WithProtectedHeaders(hdrs)))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

// jwxCNF verifies an access token with jwx against the server's JWKS (its
// issuer, testAudience, typ at+jwt) and returns its cnf.jkt ("" when the
// token has no cnf).
func jwxCNF(t *testing.T, set jwk.Set, issuer, token string) string {
	t.Helper()
	msg, err := jws.Parse([]byte(token))
	if err != nil {
		t.Fatal(err)
	}
	if typ, _ := msg.Signatures()[0].ProtectedHeaders().Type(); typ != "at+jwt" {
		t.Fatalf("access token typ %q", typ)
	}
	tok, err := jwt.Parse([]byte(token), jwt.WithKeySet(set), jwt.WithValidate(true), jwt.WithIssuer(issuer),
		jwt.WithAudience(testAudience))
	if err != nil {
		t.Fatalf("jwx: access token: %v", err)
	}
	if !tok.Has("cnf") {
		return ""
	}
	var cnf map[string]any
	if err := tok.Get("cnf", &cnf); err != nil {
		t.Fatalf("jwx: cnf: %v", err)
	}
	jkt, _ := cnf["jkt"].(string)
	return jkt
}

// wantOAuthError fails the test unless r is an RFC 6749 §5.2 error with
// status and code.
func wantOAuthError(t *testing.T, r proctest.Response, status int, code string) {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if r.Status != status || json.Unmarshal(r.Body, &e) != nil || e.Error != code {
		t.Fatalf("got %d %s, want %d %s", r.Status, r.Body, status, code)
	}
}

// jwxDPoPAlgorithms are the proof algorithms the jwx test signs with: the
// ECDSA, EdDSA and both RSA families.
var jwxDPoPAlgorithms = []string{"ES256", "ES384", "EdDSA", "PS256", "RS256"}

// TestJWXDPoP: DPoP proofs (RFC 9449) made by github.com/lestrrat-go/jwx/v3
// — jws.Sign with a protected header carrying typ dpop+jwt and the public
// jwk, claims from jwx's jwt builder — are accepted by the real server at
// the token endpoint for every advertised algorithm family, and the
// tokens are bound to the thumbprint jwx computes (cnf.jkt, read by jwx
// after verifying the token): the password grant of a public client, its
// refresh (bound: another jwx key is refused), client_credentials; and a
// replayed jwx proof is refused.
func TestJWXDPoP(t *testing.T) {
	s := portcullis.Serve(t)
	s.CreateUser(t, testUser, testPassword)
	pub := s.CreateClient(t, "--name", "jwx-dpop-public", "--public", "--grant-type", "password", "--grant-type", "refresh_token",
		"--audience", testAudience)
	conf := s.CreateClient(t, "--name", "jwx-dpop-confidential", "--grant-type", "client_credentials", "--audience", testAudience)
	tokenURL := s.URL + "/oauth2/token"
	set, err := jwk.Fetch(t.Context(), s.URL+"/.well-known/jwks.json")
	if err != nil {
		t.Fatalf("jwk.Fetch: %v", err)
	}
	var advertised []string
	for _, a := range fetchMetadata(t, s)["dpop_signing_alg_values_supported"].([]any) {
		advertised = append(advertised, a.(string))
	}
	password := url.Values{"grant_type": {"password"}, "username": {testUser}, "password": {testPassword},
		"client_id": {pub.ClientID}}.Encode()
	refresh := func(rt string) string {
		return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {pub.ClientID}}.Encode()
	}

	for _, alg := range jwxDPoPAlgorithms {
		t.Run(alg, func(t *testing.T) {
			if !slices.Contains(advertised, alg) {
				t.Fatalf("dpop_signing_alg_values_supported %v lacks %s", advertised, alg)
			}
			key, other := newJWXDPoPKey(t, alg), newJWXDPoPKey(t, alg)

			proof := key.proof(t, http.MethodPost, tokenURL, "", "")
			tok := proctest.MustToken(t, proctest.PostForm(t, tokenURL, password, "DPoP", proof))
			if tok.TokenType != "DPoP" {
				t.Fatalf("password grant with a jwx proof: token_type %q, want DPoP", tok.TokenType)
			}
			if got := jwxCNF(t, set, s.URL, tok.AccessToken); got != key.jkt {
				t.Fatalf("cnf.jkt %q, want jwx's thumbprint %q", got, key.jkt)
			}
			// The same proof again: refused (RFC 9449 §11.1).
			wantOAuthError(t, proctest.PostForm(t, tokenURL, password, "DPoP", proof), http.StatusBadRequest, "invalid_dpop_proof")

			// The public client's refresh token is bound to the key: a
			// proof by another jwx key is refused, one by the key works.
			wantOAuthError(t, proctest.PostForm(t, tokenURL, refresh(tok.RefreshToken), "DPoP", other.proof(t, http.MethodPost, tokenURL, "", "")),
				http.StatusBadRequest, "invalid_grant")
			next := proctest.MustToken(t, proctest.PostForm(t, tokenURL, refresh(tok.RefreshToken), "DPoP", key.proof(t, http.MethodPost, tokenURL, "", "")))
			if got := jwxCNF(t, set, s.URL, next.AccessToken); next.TokenType != "DPoP" || got != key.jkt {
				t.Fatalf("refresh with a jwx proof: token_type %q, cnf.jkt %q, want DPoP %q", next.TokenType, got, key.jkt)
			}

			cc := proctest.MustToken(t, proctest.PostForm(t, tokenURL, "grant_type=client_credentials", "DPoP", key.proof(t, http.MethodPost, tokenURL, "", ""),
				"Authorization", proctest.BasicAuth(conf.ClientID, conf.ClientSecret)))
			if got := jwxCNF(t, set, s.URL, cc.AccessToken); cc.TokenType != "DPoP" || got != key.jkt {
				t.Fatalf("client_credentials with a jwx proof: token_type %q, cnf.jkt %q, want DPoP %q", cc.TokenType, got, key.jkt)
			}
		})
	}
}

// TestJWXDPoPUserAPI: userapi, the reference resource server, accepts a
// token bound to a jwx key with a jwx proof for the request carrying ath
// (RFC 9449 §7), once only, and refuses the bound token sent as a bearer
// token (§7.2).
func TestJWXDPoPUserAPI(t *testing.T) {
	s := portcullis.Serve(t)
	s.CreateUser(t, testUser, testPassword)
	pub := s.CreateClient(t, "--name", "jwx-dpop-userapi", "--public", "--grant-type", "password", "--audience", testAudience)
	api := userapi.Serve(t, s.URL, testAudience)
	tokenURL, me := s.URL+"/oauth2/token", api+"/users/me"
	password := url.Values{"grant_type": {"password"}, "username": {testUser}, "password": {testPassword},
		"client_id": {pub.ClientID}}.Encode()

	for _, alg := range jwxDPoPAlgorithms {
		t.Run(alg, func(t *testing.T) {
			key := newJWXDPoPKey(t, alg)
			tok := proctest.MustToken(t, proctest.PostForm(t, tokenURL, password, "DPoP", key.proof(t, http.MethodPost, tokenURL, "", "")))
			if tok.TokenType != "DPoP" {
				t.Fatalf("token_type %q, want DPoP", tok.TokenType)
			}

			proof := key.proof(t, http.MethodGet, me, tok.AccessToken, "")
			r := proctest.Do(t, http.MethodGet, me, "", nil, "Authorization", "DPoP "+tok.AccessToken, "DPoP", proof)
			var body struct {
				Username string `json:"username"`
			}
			if r.Status != http.StatusOK || json.Unmarshal(r.Body, &body) != nil || body.Username != testUser {
				t.Fatalf("GET /users/me with a jwx proof: %d %s", r.Status, r.Body)
			}
			r = proctest.Do(t, http.MethodGet, me, "", nil, "Authorization", "DPoP "+tok.AccessToken, "DPoP", proof)
			if r.Status != http.StatusUnauthorized || !strings.Contains(r.Header.Get("WWW-Authenticate"), "invalid_dpop_proof") {
				t.Fatalf("the jwx proof replayed: %d %q, want 401 invalid_dpop_proof", r.Status, r.Header.Get("WWW-Authenticate"))
			}
			r = proctest.Do(t, http.MethodGet, me, "", nil, "Authorization", "Bearer "+tok.AccessToken)
			if r.Status != http.StatusUnauthorized {
				t.Fatalf("the bound token as a bearer token: %d %s, want 401", r.Status, r.Body)
			}
		})
	}
}

// TestJWXDPoPNonce: on a server demanding nonces (PORTCULLIS_DPOP_NONCE),
// a jwx proof without one gets 400 use_dpop_nonce with a DPoP-Nonce
// header (RFC 9449 §8), and a jwx proof carrying that nonce a bound token,
// whose response hands out the nonce to use next.
func TestJWXDPoPNonce(t *testing.T) {
	s := portcullis.Serve(t, "PORTCULLIS_DPOP_NONCE=true")
	conf := s.CreateClient(t, "--name", "jwx-dpop-nonce", "--grant-type", "client_credentials", "--audience", testAudience)
	tokenURL := s.URL + "/oauth2/token"
	basic := proctest.BasicAuth(conf.ClientID, conf.ClientSecret)
	key := newJWXDPoPKey(t, "ES256")

	r := proctest.PostForm(t, tokenURL, "grant_type=client_credentials", "Authorization", basic,
		"DPoP", key.proof(t, http.MethodPost, tokenURL, "", ""))
	wantOAuthError(t, r, http.StatusBadRequest, "use_dpop_nonce")
	nonce := r.Header.Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("use_dpop_nonce without a DPoP-Nonce header")
	}
	r = proctest.PostForm(t, tokenURL, "grant_type=client_credentials", "Authorization", basic,
		"DPoP", key.proof(t, http.MethodPost, tokenURL, "", nonce))
	tok := proctest.MustToken(t, r)
	_, claims := proctest.DecodeJWT(t, tok.AccessToken)
	if cnf, _ := claims["cnf"].(map[string]any); tok.TokenType != "DPoP" || cnf["jkt"] != key.jkt {
		t.Fatalf("with the nonce: token_type %q, cnf %v, want DPoP jkt %q", tok.TokenType, claims["cnf"], key.jkt)
	}
	if r.Header.Get("DPoP-Nonce") == "" {
		t.Error("the token response carries no DPoP-Nonce for the next request")
	}
}
