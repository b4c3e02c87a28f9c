package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// fakeIssuer is an httptest authorization server publishing RFC 8414
// metadata and a one-key JWKS, able to mint RFC 9068 access tokens.
type fakeIssuer struct {
	srv *httptest.Server
	key jose.JSONWebKey // private, kid "k1"
}

func newFakeIssuer(tb testing.TB) *fakeIssuer {
	tb.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	fi := &fakeIssuer{key: jose.JSONWebKey{Key: priv, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": fi.srv.URL, "jwks_uri": fi.srv.URL + "/.well-known/jwks.json"})
	})
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{fi.key.Public()}})
	})
	fi.srv = httptest.NewServer(mux)
	tb.Cleanup(fi.srv.Close)
	return fi
}

// claims returns valid user-token claims for audience.
func (fi *fakeIssuer) claims(audience string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": fi.srv.URL, "sub": "user-42", "aud": []string{audience},
		"exp": now.Add(15 * time.Minute).Unix(), "iat": now.Unix(), "nbf": now.Unix(),
		"jti": "jti-1", "client_id": "cli-1", "scope": "openid profile",
		"preferred_username": "alice", "roles": []string{"admin", "user"},
	}
}

// mint signs claims with key (default: the published key) and kid.
func (fi *fakeIssuer) mint(tb testing.TB, claims map[string]any, kid string, key any) string {
	tb.Helper()
	if key == nil {
		key = fi.key.Key
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", kid))
	if err != nil {
		tb.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
