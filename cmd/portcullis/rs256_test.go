package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// TestRS256PerClient checks RFC 9068 §2.1 ("authorization servers MUST
// support RS256") against the real binary on both backends (issue 8 item
// 10): ES256 stays the default, a client registered with
// access_token_signed_response_alg RS256 gets RS256 tokens, both keys are
// in the JWKS and verify their tokens, and the metadata lists both. Before:
// one ES256 key; the flag and the field did not exist.
func TestRS256PerClient(t *testing.T) {
	portcullis.EachBackend(t, nil, func(t *testing.T, srv *proctest.Server) {
		tokenURL := srv.URL + "/oauth2/token"
		es := srv.CreateClient(t, "--name", "es", "--grant-type", "client_credentials", "--grant-type", "refresh_token",
			"--scope", "read", "--audience", "https://api.example.test")
		rs := srv.CreateClient(t, "--name", "rs", "--grant-type", "client_credentials", "--scope", "read",
			"--audience", "https://legacy.example.test", "--access-token-signed-response-alg", "RS256")
		var shown map[string]any
		if err := json.Unmarshal(srv.CLI(t, "", "clients", "get", rs.ClientID, "--output", "json"), &shown); err != nil {
			t.Fatal(err)
		}
		if shown["access_token_signed_response_alg"] != "RS256" {
			t.Fatalf("client representation: %v, want access_token_signed_response_alg RS256", shown)
		}

		var set jose.JSONWebKeySet
		if err := json.Unmarshal(get(t, srv.URL+"/.well-known/jwks.json"), &set); err != nil {
			t.Fatal(err)
		}
		var algs []string
		for _, k := range set.Keys {
			algs = append(algs, k.Algorithm)
		}
		slices.Sort(algs)
		if strings.Join(algs, ",") != "ES256,RS256" {
			t.Fatalf("RFC 9068 §2.1 JWKS key algorithms = %v, want ES256 and RS256", algs)
		}
		var meta struct {
			Algs []string `json:"access_token_signing_alg_values_supported"`
		}
		if err := json.Unmarshal(get(t, srv.URL+"/.well-known/oauth-authorization-server"), &meta); err != nil {
			t.Fatal(err)
		}
		if strings.Join(meta.Algs, ",") != "ES256,RS256" {
			t.Fatalf("RFC 8414 access_token_signing_alg_values_supported = %v, want [ES256 RS256]", meta.Algs)
		}

		tests := []struct {
			name   string
			client proctest.Client
			alg    jose.SignatureAlgorithm
		}{
			{"ES256 by default", es, jose.ES256},
			{"RFC 9068 §2.1 RS256 on request of the client", rs, jose.RS256},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				tok := proctest.MustToken(t, proctest.PostForm(t, tokenURL, "grant_type=client_credentials",
					"Authorization", proctest.BasicAuth(tc.client.ClientID, tc.client.ClientSecret)))
				// Verify as an RS256- (or ES256-) only resource server does.
				obj, err := jose.ParseSignedCompact(tok.AccessToken, []jose.SignatureAlgorithm{tc.alg})
				if err != nil {
					t.Fatalf("token is not %s: %v", tc.alg, err)
				}
				h := obj.Signatures[0].Header
				keys := set.Key(h.KeyID)
				if len(keys) != 1 || keys[0].Algorithm != string(tc.alg) {
					t.Fatalf("kid %q: JWKS keys %v", h.KeyID, keys)
				}
				if _, err := obj.Verify(keys[0].Key); err != nil {
					t.Fatalf("signature does not verify with the JWKS key: %v", err)
				}
				if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "at+jwt" {
					t.Errorf("typ = %q", typ)
				}
				// The server's own checks accept it too.
				r := proctest.PostForm(t, srv.URL+"/oauth2/introspect", "token="+url.QueryEscape(tok.AccessToken), introspector(t, srv)...)
				if body := r.JSON(t); r.Status != http.StatusOK || body["active"] != true {
					t.Fatalf("introspection: %d %s", r.Status, r.Body)
				}
			})
		}

		// Switching the client back to the default with the CLI (another
		// process) takes effect within client_cache.ttl.
		srv.CLI(t, "", "clients", "update", rs.ClientID, "--access-token-signed-response-alg=")
		var alg any
		withinClientCacheTTL(t, time.Now(), "default algorithm restored", func() bool {
			tok := proctest.MustToken(t, proctest.PostForm(t, tokenURL, "grant_type=client_credentials",
				"Authorization", proctest.BasicAuth(rs.ClientID, rs.ClientSecret)))
			h, _ := proctest.DecodeJWT(t, tok.AccessToken)
			alg = h["alg"]
			return alg != "RS256"
		})
		if alg != "ES256" {
			t.Fatalf("after restoring the default: alg %v", alg)
		}
		if _, errOut, err := srv.TryCLI("", "clients", "update", rs.ClientID, "--access-token-signed-response-alg", "HS256"); err == nil ||
			!strings.Contains(string(errOut), "access_token_signed_response_alg") {
			t.Fatalf("HS256 accepted: %v %s", err, errOut)
		}
	})
}

// TestRS256PerAudience: a token whose aud includes one of
// keys.rs256_audiences is RS256-signed (RFC 9068 §2.1, for a resource
// server that only verifies RS256), unless its client chose an algorithm;
// tokens for other audiences stay ES256.
func TestRS256PerAudience(t *testing.T) {
	const legacy, modern = "https://legacy.example.test", "https://api.example.test"
	portcullis.EachBackend(t, []string{"PORTCULLIS_KEYS_RS256_AUDIENCES=" + legacy}, func(t *testing.T, srv *proctest.Server) {
		c := srv.CreateClient(t, "--name", "two", "--grant-type", "client_credentials", "--audience", legacy, "--audience", modern)
		pinned := srv.CreateClient(t, "--name", "pinned", "--grant-type", "client_credentials", "--audience", legacy,
			"--access-token-signed-response-alg", "ES256")
		tests := []struct {
			name   string
			client proctest.Client
			form   string
			alg    string
		}{
			{"RFC 9068 §2.1 resource = an RS256-only audience", c, "resource=" + url.QueryEscape(legacy), "RS256"},
			{"another audience stays ES256", c, "resource=" + url.QueryEscape(modern), "ES256"},
			{"every registered audience, one of them RS256-only", c, "", "RS256"},
			{"the client's own algorithm wins", pinned, "", "ES256"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				tok := proctest.MustToken(t, proctest.PostForm(t, srv.URL+"/oauth2/token", "grant_type=client_credentials&"+tc.form,
					"Authorization", proctest.BasicAuth(tc.client.ClientID, tc.client.ClientSecret)))
				if h, _ := proctest.DecodeJWT(t, tok.AccessToken); h["alg"] != tc.alg {
					t.Fatalf("alg = %v, want %s", h["alg"], tc.alg)
				}
			})
		}
	})
}
