package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// registeredMetadata are the names of IANA's "OAuth Authorization Server
// Metadata" registry (RFC 8414 §7.1) that Portcullis may use.
var registeredMetadata = []string{
	"issuer", "token_endpoint", "jwks_uri", "scopes_supported", "response_types_supported",
	"grant_types_supported", "token_endpoint_auth_methods_supported", "service_documentation",
	"revocation_endpoint", "revocation_endpoint_auth_methods_supported",
	"introspection_endpoint", "introspection_endpoint_auth_methods_supported",
	"dpop_signing_alg_values_supported", // RFC 9449 §5.1
	"code_challenge_methods_supported",  // RFC 8414 §2 (PKCE)
	"acr_values_supported",              // OpenID Connect Discovery, in the same registry
	// draft-ietf-oauth-first-party-apps-04 §8, whose registration is
	// requested of IANA (§10.2).
	"authorization_challenge_endpoint",
}

// portcullisMetadata are Portcullis's own, unregistered members, which
// clients ignore (RFC 8414 §2) and nothing may depend on alone.
var portcullisMetadata = []string{"access_token_signing_alg_values_supported", "signup_endpoint"}

// fetchMetadata returns the server's RFC 8414 metadata.
func fetchMetadata(t *testing.T, s *proctest.Server) map[string]any {
	t.Helper()
	status, h, md := proctest.GetJSON(t, s.URL+"/.well-known/oauth-authorization-server", nil)
	if status != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Fatalf("metadata: %d %q", status, h.Get("Content-Type"))
	}
	return md
}

func strs(v any) []string {
	a, _ := v.([]any)
	out := make([]string, 0, len(a))
	for _, e := range a {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

// TestRFC8414 checks the metadata document member by member.
func TestRFC8414(t *testing.T) {
	s := portcullis.Serve(t)
	md := fetchMetadata(t, s)

	t.Run("§3 served at /.well-known/oauth-authorization-server; §3.3 issuer identical", func(t *testing.T) {
		if md["issuer"] != s.URL {
			t.Fatalf("issuer %v, want %s", md["issuer"], s.URL)
		}
	})
	t.Run("§2 required members: issuer, token_endpoint, jwks_uri, response_types_supported", func(t *testing.T) {
		for _, name := range []string{"issuer", "token_endpoint", "jwks_uri", "response_types_supported"} {
			if _, ok := md[name]; !ok {
				t.Errorf("missing %s", name)
			}
		}
		// No authorization endpoint: no response types, stated as such.
		if rt := strs(md["response_types_supported"]); len(rt) != 0 {
			t.Errorf("response_types_supported %v without an authorization endpoint", rt)
		}
	})
	t.Run("§2 no member but registered ones and Portcullis's documented own", func(t *testing.T) {
		for name := range md {
			if !slices.Contains(registeredMetadata, name) && !slices.Contains(portcullisMetadata, name) {
				t.Errorf("unknown member %q", name)
			}
		}
	})
	t.Run("§2 scopes_supported: the configured scopes (default: admin)", func(t *testing.T) {
		if got := strs(md["scopes_supported"]); !slices.Equal(got, []string{"admin"}) {
			t.Fatalf("scopes_supported %v, want [admin]", got)
		}
		s2 := portcullis.Serve(t, "PORTCULLIS_SCOPES_SUPPORTED=admin,read,write")
		if got := strs(fetchMetadata(t, s2)["scopes_supported"]); !slices.Equal(got, []string{"admin", "read", "write"}) {
			t.Fatalf("scopes_supported %v, want [admin read write]", got)
		}
	})
	t.Run("§2 grant_types_supported: exactly the grants the token endpoint serves", func(t *testing.T) {
		got := strs(md["grant_types_supported"])
		slices.Sort(got)
		if want := []string{"authorization_code", "client_credentials", "password", "refresh_token"}; !slices.Equal(got, want) {
			t.Fatalf("grant_types_supported %v, want %v", got, want)
		}
	})
	t.Run("§2 signing algorithms: registered JWK alg of a published key, not only an unregistered member", func(t *testing.T) {
		resp, err := http.Get(md["jwks_uri"].(string))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var set jose.JSONWebKeySet
		if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
			t.Fatal(err)
		}
		var published []string
		for _, k := range set.Keys {
			if k.Algorithm == "" {
				t.Errorf("JWK %s has no alg (RFC 7517 §4.4)", k.KeyID)
			}
			published = append(published, k.Algorithm)
		}
		for _, alg := range strs(md["access_token_signing_alg_values_supported"]) {
			if !slices.Contains(published, alg) {
				t.Errorf("access_token_signing_alg_values_supported lists %s, which no JWK in jwks_uri carries", alg)
			}
		}
	})
}

// TestRFC8414AuthMethodsExact: RFC 8414 §2 token_endpoint_,
// revocation_endpoint_ and introspection_endpoint_auth_methods_supported
// list exactly the methods each endpoint accepts: every advertised method
// works for a client registered with it, and the other RFC 7591 §2 methods
// do not.
func TestRFC8414AuthMethodsExact(t *testing.T) {
	s := portcullis.Serve(t)
	md := fetchMetadata(t, s)
	s.CreateUser(t, testUser, testPassword)
	basic := s.CreateClient(t, "--name", "basic", "--auth-method", "client_secret_basic",
		"--grant-type", "client_credentials", "--introspect", "--audience", testAudience)
	post := s.CreateClient(t, "--name", "post", "--auth-method", "client_secret_post",
		"--grant-type", "client_credentials", "--introspect", "--audience", testAudience)
	pub := s.CreateClient(t, "--name", "public", "--public", "--grant-type", "password", "--audience", testAudience)
	// Registered without a method: accepts both secret methods (RFC 7591
	// §2 names client_secret_basic as the default; Portcullis also takes
	// client_secret_post), both of which are advertised.
	dflt := s.CreateClient(t, "--name", "default", "--grant-type", "client_credentials", "--introspect",
		"--audience", testAudience)

	// authenticate returns the form and header (as name, value pairs) of a
	// request authenticating with method.
	authenticate := func(method string, form url.Values) (url.Values, []string) {
		switch method {
		case "client_secret_basic":
			return form, []string{"Authorization", proctest.BasicAuth(basic.ClientID, basic.ClientSecret)}
		case "client_secret_post":
			form.Set("client_id", post.ClientID)
			form.Set("client_secret", post.ClientSecret)
		case "none":
			form.Set("client_id", pub.ClientID)
		default: // client_secret_jwt, private_key_jwt (RFC 7523 §2.2)
			form.Set("client_id", basic.ClientID)
			form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
			form.Set("client_assertion", "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln")
		}
		return form, nil
	}
	endpoints := []struct {
		member, path string
		form         func(method string) url.Values
	}{
		{"token_endpoint_auth_methods_supported", "/oauth2/token", func(method string) url.Values {
			if method == "none" {
				return url.Values{"grant_type": {"password"}, "username": {testUser}, "password": {testPassword}}
			}
			return url.Values{"grant_type": {"client_credentials"}}
		}},
		{"revocation_endpoint_auth_methods_supported", "/oauth2/revoke", func(string) url.Values {
			return url.Values{"token": {"not-a-token"}}
		}},
		{"introspection_endpoint_auth_methods_supported", "/oauth2/introspect", func(string) url.Values {
			return url.Values{"token": {"not-a-token"}}
		}},
	}
	for _, ep := range endpoints {
		advertised := strs(md[ep.member])
		if len(advertised) == 0 {
			t.Errorf("%s missing (its default, client_secret_basic alone, would understate)", ep.member)
		}
		for _, method := range []string{"client_secret_basic", "client_secret_post", "none", "client_secret_jwt", "private_key_jwt"} {
			want := slices.Contains(advertised, method)
			t.Run(fmt.Sprintf("§2 %s %s advertised=%v", ep.path, method, want), func(t *testing.T) {
				form, header := authenticate(method, ep.form(method))
				r := proctest.PostForm(t, s.URL+ep.path, form.Encode(), header...)
				if ok := r.Status == http.StatusOK; ok != want {
					t.Fatalf("status %d %s; advertised %v", r.Status, r.Body, want)
				}
			})
		}
		for _, method := range []string{"client_secret_basic", "client_secret_post"} {
			t.Run(fmt.Sprintf("§2 %s %s by a client registered without a method", ep.path, method), func(t *testing.T) {
				if !slices.Contains(advertised, method) {
					t.Fatalf("%s not advertised", method)
				}
				form := ep.form(method)
				header := []string{"Authorization", proctest.BasicAuth(dflt.ClientID, dflt.ClientSecret)}
				if method == "client_secret_post" {
					form.Set("client_id", dflt.ClientID)
					form.Set("client_secret", dflt.ClientSecret)
					header = nil
				}
				if r := proctest.PostForm(t, s.URL+ep.path, form.Encode(), header...); r.Status != http.StatusOK {
					t.Fatalf("status %d %s", r.Status, r.Body)
				}
			})
		}
	}
}

// TestRFC8414OpenIDConfigurationPath: Portcullis is not an OpenID Provider,
// so /.well-known/openid-configuration is 404 (OpenID Connect Discovery
// 1.0 §4 would require ID-token members it cannot truthfully state), and a
// client that, like Spring Security's issuer-uri support, tries the OpenID
// location first and then the RFC 8414 ones (RFC 8414 §5) discovers the
// RFC 8414 metadata and verifies tokens with the algorithms of the JWKS.
func TestRFC8414OpenIDConfigurationPath(t *testing.T) {
	s := portcullis.Serve(t)
	t.Run("§5 /.well-known/openid-configuration is 404, naming the RFC 8414 location", func(t *testing.T) {
		status, _, body := proctest.GetJSON(t, s.URL+"/.well-known/openid-configuration", nil)
		if status != http.StatusNotFound || body["error"] != "not_found" ||
			!strings.Contains(fmt.Sprint(body["error_description"]), "/.well-known/oauth-authorization-server") {
			t.Fatalf("%d %v", status, body)
		}
	})
	t.Run("§3.1 Spring-style issuer-uri discovery falls back to RFC 8414 and verifies", func(t *testing.T) {
		c := s.CreateClient(t, "--name", "spring", "--grant-type", "client_credentials", "--audience", testAudience)
		cfg, tried := springIssuerDiscovery(t, s.URL)
		if len(tried) != 3 || !strings.HasSuffix(tried[2], "/.well-known/oauth-authorization-server") {
			t.Fatalf("tried %v", tried)
		}
		algs, keys := springJWKS(t, cfg["jwks_uri"].(string))
		tok := s.ClientCredentialsToken(t, c, "")
		jws, err := jose.ParseSignedCompact(tok.AccessToken, algs)
		if err != nil {
			t.Fatalf("parse with the JWKS algorithms %v: %v", algs, err)
		}
		var key *jose.JSONWebKey
		for i := range keys {
			if keys[i].KeyID == jws.Signatures[0].Header.KeyID {
				key = &keys[i]
			}
		}
		if key == nil {
			t.Fatal("no JWK for the token's kid")
		}
		payload, err := jws.Verify(key.Key)
		if err != nil {
			t.Fatal(err)
		}
		var claims struct {
			Iss string `json:"iss"`
			Exp int64  `json:"exp"`
		}
		if err := json.Unmarshal(payload, &claims); err != nil || claims.Iss != s.URL || claims.Exp <= time.Now().Unix() {
			t.Fatalf("claims %s: %v", payload, err)
		}
	})
}

// springIssuerDiscovery follows Spring Security's
// JwtDecoderProviderConfigurationUtils.getConfigurationForIssuerLocation:
// it GETs issuer+/.well-known/openid-configuration, then
// /.well-known/openid-configuration+path, then
// /.well-known/oauth-authorization-server+path, moving on after a 4xx and
// giving up on any other failure; the document must have a jwks_uri and an
// issuer identical to the one configured (validateIssuer).
func springIssuerDiscovery(t *testing.T, issuer string) (cfg map[string]any, tried []string) {
	t.Helper()
	u, err := url.Parse(issuer)
	if err != nil {
		t.Fatal(err)
	}
	withPath := func(p string) string { c := *u; c.Path = p; return c.String() }
	for _, candidate := range []string{
		withPath(u.Path + "/.well-known/openid-configuration"),
		withPath("/.well-known/openid-configuration" + u.Path),
		withPath("/.well-known/oauth-authorization-server" + u.Path),
	} {
		tried = append(tried, candidate)
		status, _, body := proctest.GetJSON(t, candidate, nil)
		if status >= 400 && status < 500 {
			continue
		}
		if status != http.StatusOK {
			t.Fatalf("%s: status %d ends discovery", candidate, status)
		}
		if body["jwks_uri"] == nil {
			t.Fatalf("%s: no jwks_uri", candidate)
		}
		if body["issuer"] != issuer {
			t.Fatalf("%s: issuer %v does not match %s", candidate, body["issuer"], issuer)
		}
		return body, tried
	}
	t.Fatalf("no configuration for issuer %s (tried %v)", issuer, tried)
	return nil, nil
}

// springJWKS fetches a JWK Set and, as Spring's JwtDecoders does for an
// issuer-uri, takes the JWS algorithms from its keys' alg members.
func springJWKS(t *testing.T, uri string) ([]jose.SignatureAlgorithm, []jose.JSONWebKey) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	var algs []jose.SignatureAlgorithm
	for _, k := range set.Keys {
		if a := jose.SignatureAlgorithm(k.Algorithm); a != "" && !slices.Contains(algs, a) {
			algs = append(algs, a)
		}
	}
	if len(algs) == 0 {
		t.Fatalf("no algorithms in %s", b)
	}
	return algs, set.Keys
}
