package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
)

// TestAudienceRFC9068 checks aud against the real binary on both backends
// (issue 8 item 8). Before: a client registered without an audience, the
// README's admin client among them, got "aud": [] (RFC 9068 §2.2 makes aud
// REQUIRED), the resource parameter was ignored, and the admin API accepted
// a token whatever its audience.
func TestAudienceRFC9068(t *testing.T) {
	eachBackend(t, nil, func(t *testing.T, srv *serverProc) {
		const api, other = "https://api.example.test", "https://other.example.test"
		adminAud := srv.URL + "/admin"
		tokenURL := srv.URL + "/oauth2/token"
		plain := srv.createClient(t, "--name", "plain", "--grant-type", "client_credentials", "--scope", "read")
		withAPI := srv.createClient(t, "--name", "api", "--grant-type", "client_credentials", "--scope", "read",
			"--audience", api, "--audience", other)
		// The README's admin client, word for word.
		adm := srv.createClient(t, "--name", "admin", "--grant-type", "client_credentials", "--scope", "admin")

		aud := func(t *testing.T, c clientInfo, form url.Values) string {
			t.Helper()
			form.Set("grant_type", "client_credentials")
			tok := mustToken(t, postRaw(t, tokenURL, form.Encode(), "Authorization", "Basic "+basicAuth(c.ClientID, c.ClientSecret)))
			_, claims := jwtParts(t, tok.AccessToken)
			b, _ := json.Marshal(claims["aud"])
			return string(b)
		}
		quoted := func(s ...string) string { b, _ := json.Marshal(s); return string(b) }

		tests := []struct {
			name   string
			client clientInfo
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
			client clientInfo
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
				r := postRaw(t, tokenURL, tc.form.Encode(), "Authorization", "Basic "+basicAuth(tc.client.ClientID, tc.client.ClientSecret))
				if body := r.json(t); r.status != http.StatusBadRequest || body["error"] != "invalid_target" ||
					body["error_description"] != "The requested resource or audience is invalid, unknown or not allowed for this client." {
					t.Fatalf("status %d body %s, want 400 invalid_target with its fixed description", r.status, r.body)
				}
			})
		}

		// A refreshed token keeps its grant's aud, the default audience
		// included (fosite's exact audience check refused to refresh it);
		// a resource on refresh must name one of the grant's audiences.
		signup(t, srv.URL, "aud-user", "purple otter lamp 42")
		pub := srv.createClient(t, "--name", "pub", "--public")
		login := mustToken(t, postRaw(t, tokenURL, url.Values{"grant_type": {"password"}, "client_id": {pub.ClientID},
			"username": {"aud-user"}, "password": {"purple otter lamp 42"}}.Encode()))
		refreshed := mustToken(t, postRaw(t, tokenURL, url.Values{"grant_type": {"refresh_token"}, "client_id": {pub.ClientID},
			"refresh_token": {login.RefreshToken}}.Encode()))
		if _, claims := jwtParts(t, refreshed.AccessToken); fmt.Sprint(claims["aud"]) != "["+srv.URL+"]" {
			t.Errorf("RFC 9068 §2.2 refreshed token aud = %v, want [%s]", claims["aud"], srv.URL)
		}
		r := postRaw(t, tokenURL, url.Values{"grant_type": {"refresh_token"}, "client_id": {pub.ClientID},
			"refresh_token": {refreshed.RefreshToken}, "resource": {api}}.Encode())
		if body := r.json(t); r.status != http.StatusBadRequest || body["error"] != "invalid_target" {
			t.Errorf("RFC 8707 §2 refresh with a resource outside the grant: %d %s, want 400 invalid_target", r.status, r.body)
		}
		// The audience parameter is held to the same rule (red team: it was
		// silently ignored on refresh while resource was refused).
		r = postRaw(t, tokenURL, url.Values{"grant_type": {"refresh_token"}, "client_id": {pub.ClientID},
			"refresh_token": {refreshed.RefreshToken}, "audience": {api}}.Encode())
		if body := r.json(t); r.status != http.StatusBadRequest || body["error"] != "invalid_target" {
			t.Errorf("refresh with an audience outside the grant: %d %s, want 400 invalid_target", r.status, r.body)
		}

		// The README's admin snippet keeps working word for word; a token
		// with scope admin meant for another resource server does not.
		admTok := mustToken(t, postRaw(t, tokenURL, "grant_type=client_credentials&scope=admin",
			"Authorization", "Basic "+basicAuth(adm.ClientID, adm.ClientSecret)))
		if r := do(t, http.MethodGet, srv.AdminURL+"/admin/users", "", nil, "Authorization", "Bearer "+admTok.AccessToken); r.status != http.StatusOK {
			t.Fatalf("README admin snippet: GET /admin/users = %d %s", r.status, r.body)
		}
		both := srv.createClient(t, "--name", "both", "--grant-type", "client_credentials", "--scope", "admin", "--audience", api)
		apiTok := mustToken(t, postRaw(t, tokenURL, "grant_type=client_credentials&scope=admin&resource="+url.QueryEscape(api),
			"Authorization", "Basic "+basicAuth(both.ClientID, both.ClientSecret)))
		r = do(t, http.MethodGet, srv.AdminURL+"/admin/users", "", nil, "Authorization", "Bearer "+apiTok.AccessToken)
		if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") == "" {
			t.Fatalf("RFC 9068 §4 admin API, token with scope admin but aud %q: %d %s, want 401 invalid_token", api, r.status, r.body)
		}
	})
}
