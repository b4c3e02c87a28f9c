package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// TestAudienceRFC9068 checks aud against the real binary on both backends
// (issue 8 item 8). Before: a client registered without an audience, the
// README's admin client among them, got "aud": [] (RFC 9068 §2.2 makes aud
// REQUIRED), the resource parameter was ignored, and the admin API accepted
// a token whatever its audience.
func TestAudienceRFC9068(t *testing.T) {
	portcullis.EachBackend(t, nil, func(t *testing.T, srv *proctest.Server) {
		const api, other = "https://api.example.test", "https://other.example.test"
		adminAud := srv.URL + "/admin"
		tokenURL := srv.URL + "/oauth2/token"
		plain := srv.CreateClient(t, "--name", "plain", "--grant-type", "client_credentials", "--scope", "read")
		withAPI := srv.CreateClient(t, "--name", "api", "--grant-type", "client_credentials", "--scope", "read",
			"--audience", api, "--audience", other)
		// The README's admin client, word for word.
		adm := srv.CreateClient(t, "--name", "admin", "--grant-type", "client_credentials", "--scope", "admin")

		aud := func(t *testing.T, c proctest.Client, form url.Values) string {
			t.Helper()
			form.Set("grant_type", "client_credentials")
			tok := proctest.MustToken(t, proctest.PostForm(t, tokenURL, form.Encode(), "Authorization", proctest.BasicAuth(c.ClientID, c.ClientSecret)))
			_, claims := proctest.DecodeJWT(t, tok.AccessToken)
			b, _ := json.Marshal(claims["aud"])
			return string(b)
		}
		quoted := func(s ...string) string { b, _ := json.Marshal(s); return string(b) }

		tests := []struct {
			name   string
			client proctest.Client
			form   url.Values
			want   string
		}{
			{"RFC 9068 §2.2 aud never empty: no audience registered → the default (issuer)", plain, url.Values{}, quoted(srv.URL)},
			{"RFC 9068 §2.2 aud never empty: README admin client → the admin API", adm, url.Values{"scope": {"admin"}}, quoted(adminAud)},
			{"registered audiences when none requested", withAPI, url.Values{}, quoted(api, other)},
			{"RFC 8707 §2 resource mapped to aud", withAPI, url.Values{"resource": {api}}, quoted(api)},
			{"RFC 8707 §2 resource repeated", withAPI, url.Values{"resource": {api, other}}, quoted(api, other)},
			{"RFC 8707 §2 resource = the admin API, scope admin registered", adm, url.Values{"scope": {"admin"}, "resource": {adminAud}}, quoted(adminAud)},
			{"audience parameter (space-separated)", withAPI, url.Values{"audience": {other}}, quoted(other)},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if got := aud(t, tc.client, tc.form); got != tc.want {
					t.Fatalf("aud = %s, want %s", got, tc.want)
				}
			})
		}

		refused := []struct {
			name   string
			client proctest.Client
			form   url.Values
		}{
			{"RFC 8707 §2 unregistered resource → invalid_target", withAPI, url.Values{"resource": {"https://evil.example.test"}}},
			{"RFC 8707 §2 resource with a fragment → invalid_target", withAPI, url.Values{"resource": {api + "#f"}}},
			{"RFC 8707 §2 the admin API without scope admin registered → invalid_target", plain, url.Values{"resource": {adminAud}}},
			{"RFC 8707 §2 the default audience is not registered → invalid_target", withAPI, url.Values{"audience": {srv.URL}}},
		}
		for _, tc := range refused {
			t.Run(tc.name, func(t *testing.T) {
				tc.form.Set("grant_type", "client_credentials")
				r := proctest.PostForm(t, tokenURL, tc.form.Encode(), "Authorization", proctest.BasicAuth(tc.client.ClientID, tc.client.ClientSecret))
				if body := r.JSON(t); r.Status != http.StatusBadRequest || body["error"] != "invalid_target" ||
					body["error_description"] != "The requested resource or audience is invalid, unknown or not allowed for this client." {
					t.Fatalf("status %d body %s, want 400 invalid_target with its fixed description", r.Status, r.Body)
				}
			})
		}

		// A refreshed token keeps its grant's aud, the default audience
		// included (fosite's exact audience check refused to refresh it);
		// a resource on refresh must name one of the grant's audiences.
		signup(t, srv.URL, "aud-user", "purple otter lamp 42")
		pub := srv.CreateClient(t, "--name", "pub", "--public")
		login := proctest.MustToken(t, proctest.PostForm(t, tokenURL, url.Values{"grant_type": {"password"}, "client_id": {pub.ClientID},
			"username": {"aud-user"}, "password": {"purple otter lamp 42"}}.Encode()))
		refreshed := proctest.MustToken(t, proctest.PostForm(t, tokenURL, url.Values{"grant_type": {"refresh_token"}, "client_id": {pub.ClientID},
			"refresh_token": {login.RefreshToken}}.Encode()))
		if _, claims := proctest.DecodeJWT(t, refreshed.AccessToken); fmt.Sprint(claims["aud"]) != "["+srv.URL+"]" {
			t.Errorf("RFC 9068 §2.2 refreshed token aud = %v, want [%s]", claims["aud"], srv.URL)
		}
		r := proctest.PostForm(t, tokenURL, url.Values{"grant_type": {"refresh_token"}, "client_id": {pub.ClientID},
			"refresh_token": {refreshed.RefreshToken}, "resource": {api}}.Encode())
		if body := r.JSON(t); r.Status != http.StatusBadRequest || body["error"] != "invalid_target" {
			t.Errorf("RFC 8707 §2 refresh with a resource outside the grant: %d %s, want 400 invalid_target", r.Status, r.Body)
		}
		// The audience parameter is held to the same rule (red team: it was
		// silently ignored on refresh while resource was refused).
		r = proctest.PostForm(t, tokenURL, url.Values{"grant_type": {"refresh_token"}, "client_id": {pub.ClientID},
			"refresh_token": {refreshed.RefreshToken}, "audience": {api}}.Encode())
		if body := r.JSON(t); r.Status != http.StatusBadRequest || body["error"] != "invalid_target" {
			t.Errorf("refresh with an audience outside the grant: %d %s, want 400 invalid_target", r.Status, r.Body)
		}

		// The README's admin snippet keeps working word for word; a token
		// with scope admin meant for another resource server does not.
		admTok := proctest.MustToken(t, proctest.PostForm(t, tokenURL, "grant_type=client_credentials&scope=admin",
			"Authorization", proctest.BasicAuth(adm.ClientID, adm.ClientSecret)))
		if r := proctest.Do(t, http.MethodGet, srv.AdminURL+"/admin/users", "", nil, "Authorization", "Bearer "+admTok.AccessToken); r.Status != http.StatusOK {
			t.Fatalf("README admin snippet: GET /admin/users = %d %s", r.Status, r.Body)
		}
		both := srv.CreateClient(t, "--name", "both", "--grant-type", "client_credentials", "--scope", "admin", "--audience", api)
		apiTok := proctest.MustToken(t, proctest.PostForm(t, tokenURL, "grant_type=client_credentials&scope=admin&resource="+url.QueryEscape(api),
			"Authorization", proctest.BasicAuth(both.ClientID, both.ClientSecret)))
		r = proctest.Do(t, http.MethodGet, srv.AdminURL+"/admin/users", "", nil, "Authorization", "Bearer "+apiTok.AccessToken)
		if r.Status != http.StatusUnauthorized || r.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("RFC 9068 §4 admin API, token with scope admin but aud %q: %d %s, want 401 invalid_token", api, r.Status, r.Body)
		}
	})
}
