package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// RFC 6749 conformance against the real binary on both backends (issue 8
// items 3, 5, 6 and 7). Each case names the section it checks.

const rfcAudience = "https://rs.example.test"

// rfcClient is a client created through the CLI, with the methods its
// representation says it accepts.
type rfcClient struct {
	proctest.Client
	Accepted []string `json:"token_endpoint_auth_methods_accepted"`
}

func createRFCClient(t *testing.T, srv *proctest.Server, args ...string) rfcClient {
	t.Helper()
	out := srv.CLI(t, "", append([]string{"clients", "create", "--output", "json", "--audience", rfcAudience}, args...)...)
	var c rfcClient
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatalf("clients create output %q: %v", out, err)
	}
	return c
}

// wantOAuthError checks an RFC 6749 §5.2 error response: status, code,
// no-store, a Basic challenge exactly on 401, and an error_description in
// the §5.2 character set (%x20-21 / %x23-5B / %x5D-7E) that echoes none of
// echoes.
func wantOAuthError(t *testing.T, r proctest.Response, status int, code string, echoes ...string) {
	t.Helper()
	body := r.JSON(t)
	if r.Status != status || body["error"] != code {
		t.Fatalf("status %d body %s, want %d %s", r.Status, r.Body, status, code)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	if www := r.Header.Get("WWW-Authenticate"); (status == http.StatusUnauthorized) != strings.HasPrefix(www, "Basic ") {
		t.Errorf("status %d with WWW-Authenticate %q", status, www)
	}
	desc, _ := body["error_description"].(string)
	for _, c := range []byte(desc) {
		if c < 0x20 || c > 0x7E || c == 0x22 || c == 0x5C {
			t.Errorf("error_description %q has %q, outside RFC 6749 §5.2's character set", desc, c)
			break
		}
	}
	for _, e := range echoes {
		if strings.Contains(string(r.Body), e) {
			t.Errorf("response %s echoes %q", r.Body, e)
		}
	}
}

// tokenBody decodes a successful token response.
func tokenBody(t *testing.T, r proctest.Response) map[string]any {
	t.Helper()
	proctest.MustToken(t, r)
	return r.JSON(t)
}

// scopeOf returns a token response's scope and the scope claim of its
// access token; present reports whether each is there at all.
func scopeOf(t *testing.T, body map[string]any) (resp, claim string, respPresent, claimPresent bool) {
	t.Helper()
	resp, respPresent = body["scope"].(string)
	_, claims := proctest.DecodeJWT(t, body["access_token"].(string))
	claim, claimPresent = claims["scope"].(string)
	return resp, claim, respPresent, claimPresent
}

func TestRFC6749(t *testing.T) {
	portcullis.EachBackend(t, nil, func(t *testing.T, srv *proctest.Server) {
		token := srv.URL + "/oauth2/token"
		signup(t, srv.URL, "alice", "purple otter lamp 42")
		grants := []string{"--grant-type", "password", "--grant-type", "refresh_token", "--grant-type", "client_credentials"}
		scopes := []string{"--scope", "read", "--scope", "write"}
		dflt := createRFCClient(t, srv, append(append([]string{"--name", "default"}, grants...), scopes...)...)
		basicOnly := createRFCClient(t, srv, append(append([]string{"--name", "basic", "--auth-method", "client_secret_basic"}, grants...), scopes...)...)
		postOnly := createRFCClient(t, srv, append(append([]string{"--name", "post", "--auth-method", "client_secret_post"}, grants...), scopes...)...)
		public := createRFCClient(t, srv, append([]string{"--name", "spa", "--public"}, scopes...)...)
		noScope := createRFCClient(t, srv, append([]string{"--name", "noscope"}, grants...)...)
		rs := introspector(t, srv)

		basicHdr := func(c rfcClient) []string {
			return []string{"Authorization", proctest.BasicAuth(c.ClientID, c.ClientSecret)}
		}
		postCreds := func(c rfcClient) string {
			return "&client_id=" + url.QueryEscape(c.ClientID) + "&client_secret=" + url.QueryEscape(c.ClientSecret)
		}
		password := "grant_type=password&username=alice&password=purple+otter+lamp+42"

		t.Run("§2.3.1 a client registered without a method shows client_secret_basic and accepts both", func(t *testing.T) {
			if dflt.AuthMethod != "client_secret_basic" || !slices.Equal(dflt.Accepted, []string{"client_secret_basic", "client_secret_post"}) {
				t.Errorf("representation: token_endpoint_auth_method %q, accepted %v", dflt.AuthMethod, dflt.Accepted)
			}
			if !slices.Equal(basicOnly.Accepted, []string{"client_secret_basic"}) || !slices.Equal(postOnly.Accepted, []string{"client_secret_post"}) ||
				!slices.Equal(public.Accepted, []string{"none"}) {
				t.Errorf("accepted: basic %v, post %v, public %v", basicOnly.Accepted, postOnly.Accepted, public.Accepted)
			}
		})
		t.Run("§2.3.1 client registered without a method: client_secret_basic", func(t *testing.T) {
			proctest.MustToken(t, proctest.PostForm(t, token, "grant_type=client_credentials", basicHdr(dflt)...))
		})
		t.Run("§2.3.1 client registered without a method: client_secret_post", func(t *testing.T) {
			proctest.MustToken(t, proctest.PostForm(t, token, "grant_type=client_credentials"+postCreds(dflt)))
			proctest.MustToken(t, proctest.PostForm(t, token, password+postCreds(dflt)))
		})
		t.Run("§2.3.1 client registered without a method: Basic with the same client_id in the body is one method", func(t *testing.T) {
			proctest.MustToken(t, proctest.PostForm(t, token, "grant_type=client_credentials&client_id="+url.QueryEscape(dflt.ClientID), basicHdr(dflt)...))
		})
		t.Run("§2.3.1 client registered with client_secret_basic refuses client_secret_post → invalid_client", func(t *testing.T) {
			proctest.MustToken(t, proctest.PostForm(t, token, "grant_type=client_credentials", basicHdr(basicOnly)...))
			wantOAuthError(t, proctest.PostForm(t, token, "grant_type=client_credentials"+postCreds(basicOnly)), http.StatusUnauthorized, "invalid_client", "client_secret_basic")
		})
		t.Run("§2.3.1 client registered with client_secret_post refuses client_secret_basic → invalid_client", func(t *testing.T) {
			proctest.MustToken(t, proctest.PostForm(t, token, "grant_type=client_credentials"+postCreds(postOnly)))
			wantOAuthError(t, proctest.PostForm(t, token, "grant_type=client_credentials", basicHdr(postOnly)...), http.StatusUnauthorized, "invalid_client", "client_secret_post")
		})
		t.Run("§2.3 Basic plus a body client_secret → invalid_request", func(t *testing.T) {
			wantOAuthError(t, proctest.PostForm(t, token, "grant_type=client_credentials"+postCreds(dflt), basicHdr(dflt)...), http.StatusBadRequest, "invalid_request")
		})
		t.Run("§2.3 body client_id other than the Basic identity → invalid_request", func(t *testing.T) {
			wantOAuthError(t, proctest.PostForm(t, token, "grant_type=client_credentials&client_id="+url.QueryEscape(basicOnly.ClientID), basicHdr(dflt)...),
				http.StatusBadRequest, "invalid_request", basicOnly.ClientID)
		})
		t.Run("§2.3 two methods at revocation and introspection → invalid_request", func(t *testing.T) {
			tok := proctest.MustToken(t, proctest.PostForm(t, token, "grant_type=client_credentials", basicHdr(dflt)...))
			for _, ep := range []string{"/oauth2/revoke", "/oauth2/introspect"} {
				wantOAuthError(t, proctest.PostForm(t, srv.URL+ep, "token="+tok.AccessToken+postCreds(dflt), basicHdr(dflt)...), http.StatusBadRequest, "invalid_request")
			}
		})
		t.Run("§5.2 no client authentication → invalid_client", func(t *testing.T) {
			wantOAuthError(t, proctest.PostForm(t, token, password), http.StatusUnauthorized, "invalid_client")
			wantOAuthError(t, proctest.PostForm(t, token, "grant_type=client_credentials&scope=read"), http.StatusUnauthorized, "invalid_client")
		})
		t.Run("§5.2 no client authentication at revocation (RFC 7009 §2.1) → invalid_client", func(t *testing.T) {
			tok := proctest.MustToken(t, proctest.PostForm(t, token, "grant_type=client_credentials", basicHdr(dflt)...))
			wantOAuthError(t, proctest.PostForm(t, srv.URL+"/oauth2/revoke", "token="+tok.AccessToken), http.StatusUnauthorized, "invalid_client")
			// The token was not revoked.
			if r := proctest.PostForm(t, srv.URL+"/oauth2/introspect", "token="+tok.AccessToken, rs...); r.JSON(t)["active"] != true {
				t.Errorf("token revoked by an unauthenticated request: %s", r.Body)
			}
		})
		t.Run("§5.2 public client asking for client_credentials → unauthorized_client", func(t *testing.T) {
			wantOAuthError(t, proctest.PostForm(t, token, "grant_type=client_credentials&client_id="+url.QueryEscape(public.ClientID)), http.StatusBadRequest, "unauthorized_client")
			wantOAuthError(t, proctest.PostForm(t, token, "grant_type=client_credentials&scope=read&client_id="+url.QueryEscape(public.ClientID)), http.StatusBadRequest, "unauthorized_client")
		})
		t.Run("§5.2 error_description never echoes input and stays in its character set", func(t *testing.T) {
			odd := "scope=%C3%A9%5Cx%22q"
			wantOAuthError(t, proctest.PostForm(t, token, "grant_type=client_credentials&"+odd, basicHdr(dflt)...), http.StatusBadRequest, "invalid_scope", "é", `\x`)
			wantOAuthError(t, proctest.PostForm(t, token, "grant_type=client_credentials&client_id=%C3%A9%5Cx"), http.StatusUnauthorized, "invalid_client", "é", `\x`)
		})

		t.Run("§6 refresh with a narrower scope: access token narrowed, refresh token keeps the grant", func(t *testing.T) {
			first := tokenBody(t, proctest.PostForm(t, token, password+"&scope=read+write", basicHdr(dflt)...))
			narrowed := tokenBody(t, proctest.PostForm(t, token, "grant_type=refresh_token&scope=read&refresh_token="+url.QueryEscape(first["refresh_token"].(string)), basicHdr(dflt)...))
			if resp, claim, _, _ := scopeOf(t, narrowed); resp != "read" || claim != "read" {
				t.Errorf("narrowed refresh: response scope %q, token scope %q, want read", resp, claim)
			}
			in := proctest.PostForm(t, srv.URL+"/oauth2/introspect", "token="+url.QueryEscape(narrowed["access_token"].(string)), rs...).JSON(t)
			if in["active"] != true || in["scope"] != "read" {
				t.Errorf("introspected narrowed access token: %v", in)
			}
			in = proctest.PostForm(t, srv.URL+"/oauth2/introspect", "token="+url.QueryEscape(narrowed["refresh_token"].(string)), rs...).JSON(t)
			if in["active"] != true || in["scope"] != "read write" {
				t.Errorf("introspected new refresh token: %v, want the original scope read write", in)
			}
			// The new refresh token still carries the original grant.
			again := tokenBody(t, proctest.PostForm(t, token, "grant_type=refresh_token&refresh_token="+url.QueryEscape(narrowed["refresh_token"].(string)), basicHdr(dflt)...))
			if resp, claim, _, _ := scopeOf(t, again); resp != "read write" || claim != "read write" {
				t.Errorf("refresh without scope after narrowing: response %q, token %q, want read write", resp, claim)
			}
			other := tokenBody(t, proctest.PostForm(t, token, "grant_type=refresh_token&scope=write&refresh_token="+url.QueryEscape(again["refresh_token"].(string)), basicHdr(dflt)...))
			if resp, claim, _, _ := scopeOf(t, other); resp != "write" || claim != "write" {
				t.Errorf("narrowed to write: response %q, token %q", resp, claim)
			}
		})
		t.Run("§6 refresh asking for a scope not originally granted → invalid_scope", func(t *testing.T) {
			first := tokenBody(t, proctest.PostForm(t, token, password+"&scope=read", basicHdr(dflt)...))
			rt := url.QueryEscape(first["refresh_token"].(string))
			wantOAuthError(t, proctest.PostForm(t, token, "grant_type=refresh_token&scope=read+write&refresh_token="+rt, basicHdr(dflt)...), http.StatusBadRequest, "invalid_scope", "write")
			wantOAuthError(t, proctest.PostForm(t, token, "grant_type=refresh_token&scope=admin&refresh_token="+rt, basicHdr(dflt)...), http.StatusBadRequest, "invalid_scope", "admin")
			// The refused request neither used nor revoked the refresh token.
			next := tokenBody(t, proctest.PostForm(t, token, "grant_type=refresh_token&refresh_token="+rt, basicHdr(dflt)...))
			if resp, _, _, _ := scopeOf(t, next); resp != "read" {
				t.Errorf("refresh after invalid_scope: scope %q, want read", resp)
			}
		})

		t.Run("§3.3 §5.1 a token without scope has no scope member and no scope claim", func(t *testing.T) {
			for name, r := range map[string]proctest.Response{
				"client_credentials": proctest.PostForm(t, token, "grant_type=client_credentials", basicHdr(noScope)...),
				"password":           proctest.PostForm(t, token, password, basicHdr(noScope)...),
			} {
				body := tokenBody(t, r)
				if resp, claim, rp, cp := scopeOf(t, body); rp || cp {
					t.Errorf("%s: response scope %q (present %v), claim %q (present %v); want neither", name, resp, rp, claim, cp)
				}
				if rt, ok := body["refresh_token"].(string); ok {
					body = tokenBody(t, proctest.PostForm(t, token, "grant_type=refresh_token&refresh_token="+url.QueryEscape(rt), basicHdr(noScope)...))
					if resp, claim, rp, cp := scopeOf(t, body); rp || cp {
						t.Errorf("%s refreshed: response scope %q (present %v), claim %q (present %v); want neither", name, resp, rp, claim, cp)
					}
				}
			}
		})
		t.Run("§5.1 scope echoed when it differs from the request", func(t *testing.T) {
			// No scope requested: the client's registered scope is granted
			// (§3.3 default) and must be stated.
			body := tokenBody(t, proctest.PostForm(t, token, "grant_type=client_credentials", basicHdr(dflt)...))
			if resp, claim, _, _ := scopeOf(t, body); resp != "read write" || claim != "read write" {
				t.Errorf("default scope: response %q, token %q, want read write", resp, claim)
			}
			body = tokenBody(t, proctest.PostForm(t, token, "grant_type=client_credentials&scope=write", basicHdr(dflt)...))
			if resp, _, _, _ := scopeOf(t, body); resp != "write" {
				t.Errorf("requested write: response scope %q", resp)
			}
		})
	})
}
