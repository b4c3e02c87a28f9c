package resource_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"golang.org/x/oauth2"

	"github.com/portcullis-auth/portcullis/oauth/dpop"
	"github.com/portcullis-auth/portcullis/oauth/resource"
)

// A resource server accepting DPoP-bound tokens (RFC 9449), and a Go
// client calling it through golang.org/x/oauth2 with dpop.Transport, which
// signs a proof for each request. DPoP needs no option: it is accepted by
// default, next to bearer tokens.
func ExampleMiddleware_dpop() {
	issuer, mint := startExampleIssuer()
	defer issuer.Close()

	// The resource server. Behind a reverse proxy, set
	// Options.DPoP.ExternalURL to the URL clients use.
	ks := resource.NewRemoteKeySet(issuer.URL, resource.RemoteOptions{})
	v := resource.NewVerifier(ks, resource.Options{Issuer: issuer.URL, Audience: "https://api.example.com"})
	mux := http.NewServeMux()
	mux.Handle("GET /users/me", resource.Middleware(v)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := resource.ClaimsFromContext(r.Context())
		fmt.Fprintf(w, "hello %s, bound to your key: %t", c.Username, c.JKT != "")
	})))
	api := httptest.NewServer(mux)
	defer api.Close()

	// The client's key. The authorization server binds the token to it
	// (cnf.jkt) when the token request carries a proof, which the same
	// transport adds to token requests made through x/oauth2.
	key, err := dpop.GenerateKey()
	if err != nil {
		fmt.Println(err)
		return
	}
	tok := &oauth2.Token{
		AccessToken: mint("alice", map[string]any{"cnf": map[string]string{"jkt": key.Thumbprint()}}),
		TokenType:   "DPoP", // as the token endpoint answers
	}
	// With the transport in the context, conf.PasswordCredentialsToken(ctx,
	// ...) and conf.Client(ctx, tok) of an oauth2.Config would send proofs
	// too; here the token is at hand.
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient,
		&http.Client{Transport: dpop.NewTransport(key, api.Client().Transport)})
	client := oauth2.NewClient(ctx, oauth2.StaticTokenSource(tok))

	resp, err := client.Get(api.URL + "/users/me")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))

	// Whoever steals the token cannot use it as a bearer token.
	req, _ := http.NewRequest(http.MethodGet, api.URL+"/users/me", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = api.Client().Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("WWW-Authenticate"))

	// Without credentials, both schemes are offered.
	resp, err = api.Client().Get(api.URL + "/users/me")
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	for _, c := range resp.Header.Values("WWW-Authenticate") {
		fmt.Println(resp.StatusCode, c)
	}
	// Output:
	// 200 hello alice, bound to your key: true
	// 401 Bearer error="invalid_token", error_description="token is DPoP-bound: present it with the DPoP scheme and a proof"
	// 401 Bearer realm="https://api.example.com"
	// 401 DPoP algs="ES256 ES384 ES512 PS256 PS384 PS512 RS256 RS384 RS512 EdDSA"
}
