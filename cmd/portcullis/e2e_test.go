package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

const audience = "http://userapi.test"

// TestEndToEndSQLite is the mission on the embedded default: signup,
// password grant through x/oauth2, JWT verified by a separate userapi
// process with no shared secret, refresh, client credentials, and the
// tokens userapi must refuse.
func TestEndToEndSQLite(t *testing.T) {
	srv := portcullis.Serve(t)
	api := userapi.Serve(t, srv.URL, audience)
	ctx := t.Context()

	userID := signup(t, srv.URL, "alice", "purple otter lamp 42")
	public := srv.CreateClient(t, "--name", "cli", "--public", "--audience", audience, "--scope", "profile")
	if public.AuthMethod != "none" || public.ClientSecret != "" {
		t.Fatalf("public client = %+v", public)
	}
	conf := &oauth2.Config{
		ClientID: public.ClientID,
		Endpoint: oauth2.Endpoint{TokenURL: srv.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams},
		Scopes:   []string{"profile"},
	}

	tok, err := conf.PasswordCredentialsToken(ctx, "alice", "purple otter lamp 42")
	if err != nil {
		t.Fatalf("password grant: %v", err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("password grant issued no refresh token")
	}

	t.Run("token is an RFC 9068 JWT", func(t *testing.T) {
		h, c := proctest.DecodeJWT(t, tok.AccessToken)
		if h["typ"] != "at+jwt" || h["alg"] != "ES256" || h["kid"] == "" || h["kid"] == nil {
			t.Errorf("header = %v", h)
		}
		want := map[string]any{"iss": srv.URL, "sub": userID, "client_id": public.ClientID, "scope": "profile", "preferred_username": "alice"}
		for k, v := range want {
			if c[k] != v {
				t.Errorf("claim %s = %v, want %v", k, c[k], v)
			}
		}
		if aud, _ := c["aud"].([]any); len(aud) != 1 || aud[0] != audience {
			t.Errorf("aud = %v, want [%s]", c["aud"], audience)
		}
		for _, k := range []string{"exp", "iat", "nbf", "jti", "roles"} {
			if _, ok := c[k]; !ok {
				t.Errorf("claim %s missing", k)
			}
		}
		if exp, iat := c["exp"].(float64), c["iat"].(float64); exp-iat != 15*60 {
			t.Errorf("exp - iat = %v, want the 15m default", exp-iat)
		}
	})

	t.Run("users/me", func(t *testing.T) {
		status, body, _ := me(t, api, tok.AccessToken)
		if status != http.StatusOK {
			t.Fatalf("status %d: %s", status, body)
		}
		var got struct {
			ExpiresAt time.Time `json:"expires_at"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		var raw map[string]any
		_ = json.Unmarshal(body, &raw)
		if raw["id"] != userID || raw["username"] != "alice" || raw["client_id"] != public.ClientID || raw["scope"] != "profile" {
			t.Errorf("/users/me = %s", body)
		}
		if got.ExpiresAt.Before(time.Now()) {
			t.Errorf("expires_at %v in the past", got.ExpiresAt)
		}
	})

	t.Run("refresh", func(t *testing.T) {
		ts := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken})
		next, err := ts.Token()
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if next.AccessToken == tok.AccessToken || next.RefreshToken == tok.RefreshToken {
			t.Fatal("refresh returned the same tokens")
		}
		if status, body, _ := me(t, api, next.AccessToken); status != http.StatusOK {
			t.Fatalf("refreshed token: %d %s", status, body)
		}
		_, c1 := proctest.DecodeJWT(t, tok.AccessToken)
		_, c2 := proctest.DecodeJWT(t, next.AccessToken)
		if c1["jti"] == c2["jti"] || c2["sub"] != userID || c2["preferred_username"] != "alice" {
			t.Errorf("refreshed claims %v vs %v", c2, c1)
		}
		// Reusing the rotated refresh token is refused (RFC 9700 §4.14).
		_, err = conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		assertOAuthError(t, err, "invalid_grant")
	})

	t.Run("bad credentials", func(t *testing.T) {
		for _, tc := range []struct{ name, user, pass string }{
			{"wrong password", "alice", "wrong password entirely"},
			{"unknown user", "nobody", "purple otter lamp 42"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := conf.PasswordCredentialsToken(ctx, tc.user, tc.pass)
				assertOAuthError(t, err, "invalid_grant")
			})
		}
	})

	t.Run("client credentials", func(t *testing.T) {
		svc := srv.CreateClient(t, "--name", "svc", "--grant-type", "client_credentials", "--scope", "read", "--audience", audience)
		cc := &clientcredentials.Config{
			ClientID: svc.ClientID, ClientSecret: svc.ClientSecret, TokenURL: srv.URL + "/oauth2/token",
			Scopes: []string{"read"}, AuthStyle: oauth2.AuthStyleInHeader,
		}
		ctok, err := cc.Token(ctx)
		if err != nil {
			t.Fatalf("client_credentials: %v", err)
		}
		// /users/me is about a user: a client's own token is refused
		// (403, RFC 6750 insufficient_scope), not answered with the
		// client as if it were a user.
		status, body, challenge := me(t, api, ctok.AccessToken)
		if status != http.StatusForbidden || !strings.Contains(challenge, `error="insufficient_scope"`) {
			t.Fatalf("/users/me with a client token: %d %s (%s), want 403 insufficient_scope", status, body, challenge)
		}
		bad := *cc
		bad.ClientSecret = "not-the-secret"
		_, err = bad.Token(ctx)
		assertOAuthError(t, err, "invalid_client")
	})

	t.Run("forged tokens are refused", func(t *testing.T) {
		parts := strings.Split(tok.AccessToken, ".")
		h, c := proctest.DecodeJWT(t, tok.AccessToken)
		c["sub"] = "someone-else"
		tampered := parts[0] + "." + b64json(c) + "." + parts[2]
		noneHeader := map[string]any{"alg": "none", "typ": "at+jwt", "kid": h["kid"]}
		algNone := b64json(noneHeader) + "." + parts[1] + "."
		// HS256 keyed with the server's public JWK: the classic
		// algorithm-confusion forgery.
		jwks := get(t, srv.URL+"/.well-known/jwks.json")
		hsHeader := map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": h["kid"]}
		signingInput := b64json(hsHeader) + "." + parts[1]
		mac := hmac.New(sha256.New, jwks)
		mac.Write([]byte(signingInput))
		hs256 := signingInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
		for name, forged := range map[string]string{"tampered": tampered, "alg none": algNone, "HS256 with public key": hs256, "garbage": "abc.def.ghi"} {
			t.Run(name, func(t *testing.T) {
				status, body, challenge := me(t, api, forged)
				if status != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) {
					t.Errorf("status %d, WWW-Authenticate %q, body %s", status, challenge, body)
				}
			})
		}
	})

	t.Run("routing errors are JSON", func(t *testing.T) {
		for _, tc := range []struct {
			method, url string
			status      int
			noStore     bool
		}{
			{http.MethodGet, srv.URL + "/oauth2/token", http.StatusMethodNotAllowed, true},
			{http.MethodGet, srv.URL + "/oauth2/revoke", http.StatusMethodNotAllowed, true},
			{http.MethodGet, srv.URL + "/nowhere", http.StatusNotFound, false},
			{http.MethodPost, srv.AdminURL + "/metrics", http.StatusMethodNotAllowed, false},
			{http.MethodGet, srv.AdminURL + "/nowhere", http.StatusNotFound, false},
		} {
			req, _ := http.NewRequest(tc.method, tc.url, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body map[string]any
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || err != nil || body["error"] == nil {
				t.Errorf("%s %s: %d %v %v", tc.method, tc.url, resp.StatusCode, body, err)
			}
			if tc.noStore && resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s %s: Cache-Control %q", tc.method, tc.url, resp.Header.Get("Cache-Control"))
			}
		}
	})

	t.Run("introspection and revocation", func(t *testing.T) {
		svc := srv.CreateClient(t, "--name", "introspector", "--grant-type", "client_credentials", "--introspect")
		introspect := func(token string) map[string]any {
			form := url.Values{"token": {token}}
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/oauth2/introspect", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(svc.ClientID, svc.ClientSecret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
				t.Fatalf("introspect: %d %v", resp.StatusCode, err)
			}
			return out
		}
		fresh, err := conf.PasswordCredentialsToken(ctx, "alice", "purple otter lamp 42")
		if err != nil {
			t.Fatal(err)
		}
		if got := introspect(fresh.AccessToken); got["active"] != true || got["sub"] != userID {
			t.Fatalf("introspection of a fresh token = %v", got)
		}
		form := url.Values{"token": {fresh.RefreshToken}, "client_id": {public.ClientID}}
		resp, err := http.PostForm(srv.URL+"/oauth2/revoke", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke: %d", resp.StatusCode)
		}
		if got := introspect(fresh.AccessToken); got["active"] != false {
			t.Errorf("access token still active after revoking its refresh token: %v", got)
		}
		_, err = conf.TokenSource(ctx, &oauth2.Token{RefreshToken: fresh.RefreshToken}).Token()
		assertOAuthError(t, err, "invalid_grant")
	})
}

func b64json(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

// assertOAuthError checks that err is an RFC 6749 error with code.
func assertOAuthError(t *testing.T, err error, code string) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("error = %v, want RFC 6749 %s", err, code)
	}
	if re.ErrorCode != code {
		t.Fatalf("error code = %q (%s), want %q", re.ErrorCode, re.Body, code)
	}
	if cc := re.Response.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
}
