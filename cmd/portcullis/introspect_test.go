package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// TestIntrospectionAccessSQLite: only confidential clients registered with
// introspection_allowed may call POST /oauth2/introspect (RFC 7662 §2.1,
// §4); a user's access token is never a credential there.
func TestIntrospectionAccessSQLite(t *testing.T) {
	srv := portcullis.Serve(t)
	testIntrospectionAccess(t, srv)
}

// TestIntrospectionAccessMySQL is the same on MySQL/MariaDB (migration
// 00006 on that dialect included).
func TestIntrospectionAccessMySQL(t *testing.T) {
	srv := portcullis.Serve(t, proctest.MySQLEnv(t)...)
	testIntrospectionAccess(t, srv)
}

// introspection is one response of the introspection endpoint.
type introspection struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

// introspect posts form to the introspection endpoint; auth, when set,
// adds the caller's credentials to the request.
func introspect(t *testing.T, srv *proctest.Server, form url.Values, auth func(*http.Request)) introspection {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/oauth2/introspect", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != nil {
		auth(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /oauth2/introspect: %v", err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatalf("introspection response (%d) is not JSON: %v", resp.StatusCode, err)
	}
	r := introspection{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Fatalf("introspection response %s: %v", raw, err)
	}
	return r
}

// basic authenticates with HTTP Basic (RFC 6749 §2.3.1: form-encoded id
// and secret).
func basic(id, secret string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret)) }
}

func bearer(token string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

// wantRefused checks an RFC 6749 §5.2 error that tells the caller nothing
// about the token: status, code, no-store, exactly error and
// error_description, a fixed description that echoes none of leaks, and a
// Basic challenge on 401 (RFC 6749 §5.2).
func wantRefused(t *testing.T, r introspection, status int, code string, leaks ...string) {
	t.Helper()
	if r.status != status || r.body["error"] != code {
		t.Fatalf("status %d body %s, want %d %s", r.status, r.raw, status, code)
	}
	if len(r.body) != 2 || r.body["error_description"] == nil {
		t.Errorf("body %s, want exactly error and error_description", r.raw)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	for _, leak := range leaks {
		if leak != "" && strings.Contains(r.raw, leak) {
			t.Errorf("response %s contains %q", r.raw, leak)
		}
	}
	wwwAuth := r.header.Get("WWW-Authenticate")
	if status == http.StatusUnauthorized && !strings.HasPrefix(wwwAuth, "Basic ") {
		t.Errorf("WWW-Authenticate %q, want a Basic challenge", wwwAuth)
	}
	if status != http.StatusUnauthorized && wwwAuth != "" {
		t.Errorf("WWW-Authenticate %q on %d", wwwAuth, status)
	}
}

func testIntrospectionAccess(t *testing.T, srv *proctest.Server) {
	ctx := t.Context()
	const password = "purple otter lamp 42"
	aliceID := signup(t, srv.URL, "alice", password)
	signup(t, srv.URL, "mallory", password)
	app := srv.CreateClient(t, "--name", "app", "--public", "--audience", audience, "--scope", "profile")
	conf := &oauth2.Config{
		ClientID: app.ClientID, Scopes: []string{"profile"},
		Endpoint: oauth2.Endpoint{TokenURL: srv.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams},
	}
	alice, err := conf.PasswordCredentialsToken(ctx, "alice", password)
	if err != nil {
		t.Fatal(err)
	}
	mallory, err := conf.PasswordCredentialsToken(ctx, "mallory", password)
	if err != nil {
		t.Fatal(err)
	}
	target := url.Values{"token": {alice.AccessToken}}
	// Nothing about alice's token may appear in a refused response.
	leaks := []string{aliceID, `"alice"`, `"active"`, app.ClientID}

	t.Run("a user's access token is not a credential", func(t *testing.T) {
		wantRefused(t, introspect(t, srv, target, bearer(mallory.AccessToken)), http.StatusUnauthorized, "invalid_client", leaks...)
		// Not as a form or query parameter either (RFC 6750 §2.2, §2.3).
		withAT := url.Values{"token": {alice.AccessToken}, "access_token": {mallory.AccessToken}}
		wantRefused(t, introspect(t, srv, withAT, nil), http.StatusUnauthorized, "invalid_client", leaks...)
		// Nor alongside client credentials in the body.
		svc := srv.CreateClient(t, "--name", "bearer-and-post", "--auth-method", "client_secret_post",
			"--grant-type", "client_credentials", "--audience", audience, "--introspect")
		withCreds := url.Values{"token": {alice.AccessToken}, "client_id": {svc.ClientID}, "client_secret": {svc.ClientSecret}}
		wantRefused(t, introspect(t, srv, withCreds, bearer(mallory.AccessToken)), http.StatusUnauthorized, "invalid_client", leaks...)
	})

	t.Run("a client's access token is not a credential", func(t *testing.T) {
		svc := srv.CreateClient(t, "--name", "svc", "--grant-type", "client_credentials", "--audience", audience, "--introspect")
		cc := &clientcredentials.Config{ClientID: svc.ClientID, ClientSecret: svc.ClientSecret,
			TokenURL: srv.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}
		tok, err := cc.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantRefused(t, introspect(t, srv, target, bearer(tok.AccessToken)), http.StatusUnauthorized, "invalid_client", leaks...)
	})

	t.Run("a confidential client without the permission is refused", func(t *testing.T) {
		plain := srv.CreateClient(t, "--name", "plain", "--grant-type", "client_credentials", "--audience", audience)
		wantRefused(t, introspect(t, srv, target, basic(plain.ClientID, plain.ClientSecret)), http.StatusForbidden, "unauthorized_client", leaks...)
		// The same answer for an inactive token: no oracle.
		wantRefused(t, introspect(t, srv, url.Values{"token": {"garbage"}}, basic(plain.ClientID, plain.ClientSecret)), http.StatusForbidden, "unauthorized_client")
		if strings.Contains(string(srv.CLI(t, "", "clients", "get", plain.ClientID, "--output", "json")), `"introspection_allowed":true`) {
			t.Error("introspection_allowed is on by default")
		}
	})

	t.Run("a public client is refused", func(t *testing.T) {
		wantRefused(t, introspect(t, srv, url.Values{"token": {alice.AccessToken}, "client_id": {app.ClientID}}, nil), http.StatusUnauthorized, "invalid_client", leaks[:3]...)
		wantRefused(t, introspect(t, srv, target, basic(app.ClientID, "")), http.StatusUnauthorized, "invalid_client", leaks[:3]...)
		// And cannot be given the permission.
		_, stderr, err := srv.TryCLI("", "clients", "create", "--name", "spa", "--public", "--introspect")
		if err == nil || !strings.Contains(string(stderr), "introspect") {
			t.Errorf("public client with --introspect: err %v, stderr %s", err, stderr)
		}
	})

	t.Run("unauthenticated and wrong secrets are refused with fixed texts", func(t *testing.T) {
		// Registered with client_secret_basic explicitly: only Basic is
		// accepted (a client registered without a method accepts both).
		rs := srv.CreateClient(t, "--name", "rs-wrong", "--auth-method", "client_secret_basic",
			"--grant-type", "client_credentials", "--audience", audience, "--introspect")
		const probe = "probe-7f3a<script>"
		for name, tc := range map[string]struct {
			form url.Values
			auth func(*http.Request)
		}{
			"no credentials":          {target, nil},
			"wrong secret":            {target, basic(rs.ClientID, "wrong-"+probe)},
			"unknown client":          {target, basic(probe, probe)},
			"registered method basic": {url.Values{"token": {alice.AccessToken}, "client_id": {rs.ClientID}, "client_secret": {rs.ClientSecret}}, nil},
			"garbage bearer":          {target, bearer(probe)},
			"other scheme":            {target, func(r *http.Request) { r.Header.Set("Authorization", "DPoP "+probe) }},
			"empty body":              {url.Values{}, nil},
		} {
			t.Run(name, func(t *testing.T) {
				wantRefused(t, introspect(t, srv, tc.form, tc.auth), http.StatusUnauthorized, "invalid_client", append([]string{probe, "probe-7f3a"}, leaks...)...)
			})
		}
	})

	t.Run("metadata tells the truth", func(t *testing.T) {
		var meta map[string]any
		if err := json.Unmarshal(get(t, srv.URL+"/.well-known/oauth-authorization-server"), &meta); err != nil {
			t.Fatal(err)
		}
		var methods []string
		for _, m := range meta["introspection_endpoint_auth_methods_supported"].([]any) {
			methods = append(methods, m.(string))
		}
		slices.Sort(methods)
		if !slices.Equal(methods, []string{"client_secret_basic", "client_secret_post"}) {
			t.Errorf("introspection_endpoint_auth_methods_supported = %v, want client_secret_basic and client_secret_post", methods)
		}
		if meta["introspection_endpoint"] != srv.URL+"/oauth2/introspect" {
			t.Errorf("introspection_endpoint = %v", meta["introspection_endpoint"])
		}
	})

	t.Run("a permitted client introspects", func(t *testing.T) {
		rs := srv.CreateClient(t, "--name", "resource-server", "--grant-type", "client_credentials", "--audience", audience, "--introspect")
		var shown map[string]any
		if err := json.Unmarshal(srv.CLI(t, "", "clients", "get", rs.ClientID, "--output", "json"), &shown); err != nil || shown["introspection_allowed"] != true {
			t.Fatalf("clients get: %v %v", shown, err)
		}
		r := introspect(t, srv, target, basic(rs.ClientID, rs.ClientSecret))
		if r.status != http.StatusOK || r.body["active"] != true || r.body["sub"] != aliceID || r.body["username"] != "alice" ||
			r.body["client_id"] != app.ClientID || r.body["scope"] != "profile" {
			t.Fatalf("introspection by a permitted client: %d %s", r.status, r.raw)
		}
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q", cc)
		}
		// A refresh token with its hint, then garbage: active false, not an error.
		r = introspect(t, srv, url.Values{"token": {alice.RefreshToken}, "token_type_hint": {"refresh_token"}}, basic(rs.ClientID, rs.ClientSecret))
		if r.status != http.StatusOK || r.body["active"] != true || r.body["token_use"] != "refresh_token" {
			t.Errorf("refresh token: %d %s", r.status, r.raw)
		}
		r = introspect(t, srv, url.Values{"token": {"not-a-token"}}, basic(rs.ClientID, rs.ClientSecret))
		if r.status != http.StatusOK || r.raw != `{"active":false}` {
			t.Errorf("garbage token: %d %s", r.status, r.raw)
		}

		// A missing token is invalid_request (RFC 7662 §2.1: token is REQUIRED).
		for _, form := range []url.Values{{"token_type_hint": {"access_token"}}, {"token": {""}}} {
			wantRefused(t, introspect(t, srv, form, basic(rs.ClientID, rs.ClientSecret)), http.StatusBadRequest, "invalid_request")
		}

		// A client_secret_post client authenticates the way it is registered.
		post := srv.CreateClient(t, "--name", "rs-post", "--auth-method", "client_secret_post",
			"--grant-type", "client_credentials", "--audience", audience, "--introspect")
		r = introspect(t, srv, url.Values{"token": {alice.AccessToken}, "client_id": {post.ClientID}, "client_secret": {post.ClientSecret}}, nil)
		if r.status != http.StatusOK || r.body["active"] != true || r.body["sub"] != aliceID {
			t.Errorf("client_secret_post: %d %s", r.status, r.raw)
		}
		wantRefused(t, introspect(t, srv, target, basic(post.ClientID, post.ClientSecret)), http.StatusUnauthorized, "invalid_client", leaks...)

		// Withdrawing the permission with the CLI (another process) takes
		// effect within client_cache.ttl; granting it again too.
		var upd map[string]any
		if err := json.Unmarshal(srv.CLI(t, "", "clients", "update", rs.ClientID, "--introspect=false", "--output", "json"), &upd); err != nil ||
			upd["introspection_allowed"] != false || upd["client_name"] != "resource-server" || upd["scope"] != "" {
			t.Fatalf("clients update --introspect=false: %v %v", upd, err)
		}
		var r2 introspection
		withinClientCacheTTL(t, time.Now(), "introspection permission withdrawn", func() bool {
			r2 = introspect(t, srv, target, basic(rs.ClientID, rs.ClientSecret))
			return r2.status != http.StatusOK
		})
		wantRefused(t, r2, http.StatusForbidden, "unauthorized_client", leaks...)
		srv.CLI(t, "", "clients", "update", rs.ClientID, "--introspect")
		withinClientCacheTTL(t, time.Now(), "introspection permission granted again", func() bool {
			r2 = introspect(t, srv, target, basic(rs.ClientID, rs.ClientSecret))
			return r2.status != http.StatusForbidden
		})
		if r2.status != http.StatusOK || r2.body["active"] != true {
			t.Errorf("after granting again: %d %s", r2.status, r2.raw)
		}
	})
}
