package resource_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/oauth/resource"
)

func ExampleRemoteKeySet() {
	// An issuer publishing RFC 8414 metadata and an RFC 7517 JWK Set.
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk := jose.JSONWebKey{Key: &priv.PublicKey, KeyID: "2026-01", Algorithm: "ES256", Use: "sig"}
	var issuer *httptest.Server
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": issuer.URL, "jwks_uri": issuer.URL + "/.well-known/jwks.json"})
	})
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}})
	})
	issuer = httptest.NewServer(mux)
	defer issuer.Close()

	// A verifier needs nothing but the issuer URL.
	ks := resource.NewRemoteKeySet(issuer.URL, resource.RemoteOptions{})
	key, err := ks.Key(context.Background(), "2026-01")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(key.KeyID, key.Algorithm, key.IsPublic())

	_, err = ks.Key(context.Background(), "unknown")
	fmt.Println(errors.Is(err, resource.ErrKeyNotFound))
	// Output:
	// 2026-01 ES256 true
	// true
}
