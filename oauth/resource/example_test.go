package resource_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/oauth/resource"
)

func ExampleMiddleware() {
	issuer, mint := startExampleIssuer() // an authorization server publishing metadata and JWKS
	defer issuer.Close()

	// The resource server knows only the issuer URL and its own audience.
	ks := resource.NewRemoteKeySet(issuer.URL, resource.RemoteOptions{})
	v := resource.NewVerifier(ks, resource.Options{Issuer: issuer.URL, Audience: "https://api.example.com"})
	mux := http.NewServeMux()
	mux.Handle("GET /users/me", resource.Middleware(v)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := resource.ClaimsFromContext(r.Context())
		fmt.Fprintf(w, "hello %s", c.Username)
	})))
	api := httptest.NewServer(mux)
	defer api.Close()

	for _, auth := range []string{"Bearer " + mint("alice"), "Bearer forged", ""} {
		req, _ := http.NewRequest(http.MethodGet, api.URL+"/users/me", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := api.Client().Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			fmt.Println(resp.StatusCode, string(body))
		} else {
			fmt.Println(resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	// Output:
	// 200 hello alice
	// 401 Bearer error="invalid_token", error_description="token is not a compact JWS"
	// 401 Bearer realm="https://api.example.com"
}

func ExampleRequireUser() {
	issuer, mint := startExampleIssuer()
	defer issuer.Close()

	ks := resource.NewRemoteKeySet(issuer.URL, resource.RemoteOptions{})
	v := resource.NewVerifier(ks, resource.Options{Issuer: issuer.URL, Audience: "https://api.example.com"})
	mux := http.NewServeMux()
	// /users/me is about a user: a client acting for itself
	// (client_credentials) has no user to describe.
	mux.Handle("GET /users/me", resource.Middleware(v)(resource.RequireUser()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := resource.ClaimsFromContext(r.Context())
		fmt.Fprintf(w, "hello %s", c.Username)
	}))))
	api := httptest.NewServer(mux)
	defer api.Close()

	for _, tok := range []string{mint("alice"), mint("")} {
		req, _ := http.NewRequest(http.MethodGet, api.URL+"/users/me", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := api.Client().Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			fmt.Println(resp.StatusCode, string(body))
		} else {
			fmt.Println(resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	// Output:
	// 200 hello alice
	// 403 Bearer error="insufficient_scope", error_description="token does not identify a user"
}

func ExampleVerifier_RequireAuthentication() {
	issuer, mint := startExampleIssuer()
	defer issuer.Close()

	ks := resource.NewRemoteKeySet(issuer.URL, resource.RemoteOptions{})
	v := resource.NewVerifier(ks, resource.Options{Issuer: issuer.URL, Audience: "https://api.example.com"})
	mux := http.NewServeMux()
	// Security settings need a second factor ("acr" 2 at Portcullis),
	// used within the last 5 minutes.
	step := resource.StepUp{ACRValues: []string{"2"}, MaxAge: 5 * time.Minute}
	mux.Handle("GET /users/me/security", resource.Middleware(v)(v.RequireAuthentication(step)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := resource.ClaimsFromContext(r.Context())
		fmt.Fprintf(w, "hello %s, authenticated with %v", c.Username, c.AMR)
	}))))
	api := httptest.NewServer(mux)
	defer api.Close()

	now := time.Now()
	for _, tok := range []string{
		mint("alice", map[string]any{"acr": "1", "amr": []string{"pwd"}, "auth_time": now.Unix()}),
		mint("alice", map[string]any{"acr": "2", "amr": []string{"mfa", "otp", "pwd"}, "auth_time": now.Add(-time.Hour).Unix()}),
		mint("alice", map[string]any{"acr": "2", "amr": []string{"mfa", "otp", "pwd"}, "auth_time": now.Unix()}),
	} {
		req, _ := http.NewRequest(http.MethodGet, api.URL+"/users/me/security", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := api.Client().Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			fmt.Println(resp.StatusCode, string(body))
		} else {
			// The client has the user log in again, passing acr_values
			// and max_age to the authorization server.
			fmt.Println(resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	// Output:
	// 401 Bearer error="insufficient_user_authentication", error_description="A different authentication level is required.", acr_values="2", max_age=300
	// 401 Bearer error="insufficient_user_authentication", error_description="A different authentication level is required.", acr_values="2", max_age=300
	// 200 hello alice, authenticated with [mfa otp pwd]
}

// startExampleIssuer starts a minimal issuer and returns a function that
// mints an access token for the audience https://api.example.com: a user's
// (password grant), or with an empty username a client_credentials token
// of client "cli" (sub = client_id, no preferred_username or roles); extra
// claims are added (such as cnf for a DPoP-bound token).
func startExampleIssuer() (*httptest.Server, func(username string, extra ...map[string]any) string) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	jwk := jose.JSONWebKey{Key: priv, KeyID: "k1", Algorithm: string(jose.ES256), Use: "sig"}
	var srv *httptest.Server
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": srv.URL, "jwks_uri": srv.URL + "/jwks"})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk.Public()}})
	})
	srv = httptest.NewServer(mux)

	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jwk},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		panic(err)
	}
	mint := func(username string, extra ...map[string]any) string {
		now := time.Now()
		claims := map[string]any{
			"iss": srv.URL, "sub": "u-1", "aud": []string{"https://api.example.com"},
			"exp": now.Add(time.Minute).Unix(), "iat": now.Unix(), "nbf": now.Unix(),
			"jti": "t-1", "client_id": "cli", "scope": "profile",
			"preferred_username": username, "roles": []string{"user"},
		}
		if username == "" {
			claims["sub"] = "cli"
			delete(claims, "preferred_username")
			delete(claims, "roles")
		}
		for _, e := range extra {
			maps.Copy(claims, e)
		}
		payload, _ := json.Marshal(claims)
		jws, err := signer.Sign(payload)
		if err != nil {
			panic(err)
		}
		s, _ := jws.CompactSerialize()
		return s
	}
	return srv, mint
}
