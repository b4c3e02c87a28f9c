package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// webCryptoDPoP is a single-page app's DPoP client written by hand on
// WebCrypto: it generates an ECDSA P-256 key whose private half cannot be
// exported, signs each DPoP proof (RFC 9449 §4.2) itself — the JWS header
// {typ, alg ES256, jwk}, the claims {jti, htm, htu, iat[, nonce]}, and
// crypto.subtle.sign's signature, which for ECDSA is already the raw r||s
// that JWS wants — and sends the password grant cross-origin with the
// proof in the DPoP header. When the server answers use_dpop_nonce it
// reads the DPoP-Nonce response header and sends the request once more
// with that nonce; it then refreshes with the same key, with the nonce of
// the last response. It resolves to JSON: the public JWK, whether the
// private key is extractable, and each exchange (status, error, token
// type, tokens, DPoP-Nonce read), or the error it rejected with.
const webCryptoDPoP = `(async (tokenURL, clientID, username, password) => {
  const b64u = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const part = (obj) => b64u(new TextEncoder().encode(JSON.stringify(obj)));
  try {
    const key = await crypto.subtle.generateKey({name: "ECDSA", namedCurve: "P-256"}, false, ["sign", "verify"]);
    const pub = await crypto.subtle.exportKey("jwk", key.publicKey);
    const jwk = {kty: pub.kty, crv: pub.crv, x: pub.x, y: pub.y};
    const proof = async (nonce) => {
      const claims = {
        jti: b64u(crypto.getRandomValues(new Uint8Array(16))),
        htm: "POST",
        htu: tokenURL,
        iat: Math.floor(Date.now() / 1000),
      };
      if (nonce) claims.nonce = nonce;
      const input = part({typ: "dpop+jwt", alg: "ES256", jwk}) + "." + part(claims);
      const sig = await crypto.subtle.sign({name: "ECDSA", hash: "SHA-256"}, key.privateKey, new TextEncoder().encode(input));
      return input + "." + b64u(sig);
    };
    const exchanges = [];
    let nonce = "";
    const post = async (params) => {
      const r = await fetch(tokenURL, {
        method: "POST",
        headers: {"Content-Type": "application/x-www-form-urlencoded", "DPoP": await proof(nonce)},
        body: new URLSearchParams(params).toString(),
      });
      const body = await r.json();
      const x = {
        status: r.status, error: body.error || "", token_type: body.token_type || "",
        access_token: body.access_token || "", refresh_token: body.refresh_token || "",
        nonce: r.headers.get("DPoP-Nonce") || "",
      };
      exchanges.push(x);
      if (x.nonce) nonce = x.nonce;
      return x;
    };
    const grant = {grant_type: "password", client_id: clientID, username, password};
    let r = await post(grant);
    if (r.status === 400 && r.error === "use_dpop_nonce" && r.nonce) {
      r = await post(grant);
    }
    if (r.refresh_token) {
      await post({grant_type: "refresh_token", client_id: clientID, refresh_token: r.refresh_token});
    }
    return JSON.stringify({jwk, private_extractable: key.privateKey.extractable, exchanges});
  } catch (e) {
    return JSON.stringify({fetch_error: String(e)});
  }
})(%q, %q, %q, %q)`

// webCryptoResult is what webCryptoDPoP resolves to.
type webCryptoResult struct {
	JWK struct {
		Kty string `json:"kty"`
		Crv string `json:"crv"`
		X   string `json:"x"`
		Y   string `json:"y"`
	} `json:"jwk"`
	PrivateExtractable bool `json:"private_extractable"`
	Exchanges          []struct {
		Status       int    `json:"status"`
		Error        string `json:"error"`
		TokenType    string `json:"token_type"`
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		Nonce        string `json:"nonce"`
	} `json:"exchanges"`
	FetchError string `json:"fetch_error"`
}

// thumbprint is the RFC 7638 SHA-256 thumbprint of the page's EC key: its
// required members in lexicographic order, no white space.
func (r webCryptoResult) thumbprint() string {
	sum := sha256.Sum256(fmt.Appendf(nil, `{"crv":%q,"kty":%q,"x":%q,"y":%q}`, r.JWK.Crv, r.JWK.Kty, r.JWK.X, r.JWK.Y))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestBrowserDPoP: a single-page app in headless Chromium, on another
// origin registered on its public client, makes DPoP proofs itself with
// WebCrypto (a non-extractable P-256 key) and gets DPoP-bound tokens from
// the token endpoint cross-origin: the CORS preflight allows the DPoP
// request header, the token is bound to the page's key (cnf.jkt), and the
// refresh with the same key works. On a server demanding nonces the page
// reads the DPoP-Nonce header of the use_dpop_nonce answer (CORS exposes
// it), retries with it, and refreshes with the nonce of the token
// response, without another round trip.
func TestBrowserDPoP(t *testing.T) {
	browser := startChromium(t)
	spa := frontEnd(t)

	for _, tt := range []struct {
		name  string
		env   []string
		nonce bool
	}{
		{"NoNonce", nil, false},
		{"Nonce", []string{"PORTCULLIS_DPOP_NONCE=true"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := portcullis.Serve(t, tt.env...)
			c := srv.CreateClient(t, "--name", "spa", "--public", "--grant-type", "password", "--grant-type", "refresh_token",
				"--audience", "https://api.example.test", "--cors-origin", spa.URL)
			srv.CreateUser(t, "alice", "correct horse battery")
			script := fmt.Sprintf(webCryptoDPoP, srv.URL+"/oauth2/token", c.ClientID, "alice", "correct horse battery")
			out := runInPage(t, browser, spa.URL, script)
			var res webCryptoResult
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("page result %q: %v", out, err)
			}
			if res.FetchError != "" {
				t.Fatalf("the page's fetch failed (CORS refused the DPoP header?): %s", res.FetchError)
			}
			if res.JWK.Kty != "EC" || res.JWK.Crv != "P-256" || res.PrivateExtractable {
				t.Fatalf("page key: %+v, private key extractable %v", res.JWK, res.PrivateExtractable)
			}
			x := res.Exchanges
			if tt.nonce {
				if len(x) == 0 || x[0].Status != http.StatusBadRequest || x[0].Error != "use_dpop_nonce" || x[0].Nonce == "" {
					t.Fatalf("first answer %+v, want 400 use_dpop_nonce with a DPoP-Nonce the page can read", x)
				}
				x = x[1:]
			}
			if len(x) != 2 {
				t.Fatalf("exchanges %+v, want the grant and the refresh (after any nonce retry)", res.Exchanges)
			}
			jkt := res.thumbprint()
			for i, what := range []string{"password grant", "refresh"} {
				e := x[i]
				if e.Status != http.StatusOK || e.TokenType != "DPoP" {
					t.Fatalf("%s: %+v, want 200 token_type DPoP", what, e)
				}
				_, claims := proctest.DecodeJWT(t, e.AccessToken)
				if cnf, _ := claims["cnf"].(map[string]any); cnf["jkt"] != jkt {
					t.Fatalf("%s: cnf %v, want jkt %s of the page's key", what, claims["cnf"], jkt)
				}
				if tt.nonce && e.Nonce == "" {
					t.Fatalf("%s: the page read no DPoP-Nonce from the token response", what)
				}
			}
		})
	}
}
