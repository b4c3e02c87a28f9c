package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// introspector creates a confidential client allowed to introspect and
// returns its Basic credentials as header arguments for proctest.Do and
// proctest.PostForm.
func introspector(t testing.TB, srv *proctest.Server) []string {
	t.Helper()
	c := srv.CreateClient(t, "--name", "rs", "--grant-type", "client_credentials", "--introspect")
	return []string{"Authorization", proctest.BasicAuth(c.ClientID, c.ClientSecret)}
}

// TestExpiredTokensRefused waits past a real token's exp and checks that
// the server itself no longer accepts it anywhere: the admin API refuses
// it, introspection reports it inactive, and presenting it for
// revocation does not act on its grant. (Before: an admin token created
// an admin user 165 s after exp and introspection said active.)
func TestExpiredTokensRefused(t *testing.T) {
	portcullis.EachBackend(t, []string{"PORTCULLIS_ACCESS_TOKEN_TTL=1m"}, func(t *testing.T, srv *proctest.Server) {
		adm := srv.CreateClient(t, "--name", "admin", "--grant-type", "client_credentials", "--scope", "admin")
		app := srv.CreateClient(t, "--name", "app", "--public", "--grant-type", "password", "--grant-type", "refresh_token", "--audience", audience)
		rs := introspector(t, srv)
		signup(t, srv.URL, "erin", "purple otter lamp 42")

		adminTok := proctest.MustToken(t, proctest.PostForm(t, srv.URL+"/oauth2/token", "grant_type=client_credentials&scope=admin",
			"Authorization", proctest.BasicAuth(adm.ClientID, adm.ClientSecret)))
		userTok := proctest.MustToken(t, proctest.PostForm(t, srv.URL+"/oauth2/token", url.Values{
			"grant_type": {"password"}, "client_id": {app.ClientID}, "username": {"erin"}, "password": {"purple otter lamp 42"},
		}.Encode()))
		createUser := func(name string) proctest.Response {
			return proctest.Do(t, http.MethodPost, srv.AdminURL+"/admin/users", "application/json",
				strings.NewReader(fmt.Sprintf(`{"username":%q,"password":"purple otter lamp 42","roles":["admin"]}`, name)),
				"Authorization", "Bearer "+adminTok.AccessToken)
		}
		introspect := func(token string) bool {
			r := proctest.PostForm(t, srv.URL+"/oauth2/introspect", url.Values{"token": {token}}.Encode(), rs...)
			if r.Status != http.StatusOK {
				t.Fatalf("introspect: %d %s", r.Status, r.Body)
			}
			active, _ := r.JSON(t)["active"].(bool)
			return active
		}
		if r := createUser("before_exp"); r.Status != http.StatusCreated {
			t.Fatalf("admin token refused before exp: %d %s", r.Status, r.Body)
		}
		if !introspect(userTok.AccessToken) || !introspect(adminTok.AccessToken) {
			t.Fatal("fresh tokens introspect inactive")
		}

		_, claims := proctest.DecodeJWT(t, userTok.AccessToken)
		exp := time.Unix(int64(claims["exp"].(float64)), 0)
		if iat := time.Unix(int64(claims["iat"].(float64)), 0); iat.After(time.Now()) {
			t.Errorf("iat %v lies in the future", iat)
		}
		time.Sleep(time.Until(exp) + 1500*time.Millisecond)

		if r := createUser("after_exp"); r.Status != http.StatusUnauthorized {
			t.Errorf("admin API with an expired token: %d %s, want 401", r.Status, r.Body)
		}
		if introspect(userTok.AccessToken) {
			t.Error("expired user token introspects active")
		}
		if introspect(adminTok.AccessToken) {
			t.Error("expired admin token introspects active")
		}
		// An expired access token presented for revocation is an invalid
		// token (RFC 7009 §2.2: 200) and does not revoke its grant.
		if r := proctest.PostForm(t, srv.URL+"/oauth2/revoke", url.Values{"token": {userTok.AccessToken}, "client_id": {app.ClientID}}.Encode()); r.Status != http.StatusOK {
			t.Errorf("revoke expired token: %d %s", r.Status, r.Body)
		}
		next := proctest.MustToken(t, proctest.PostForm(t, srv.URL+"/oauth2/token", url.Values{
			"grant_type": {"refresh_token"}, "client_id": {app.ClientID}, "refresh_token": {userTok.RefreshToken},
		}.Encode()))
		if !introspect(next.AccessToken) {
			t.Error("a fresh token from the refresh introspects inactive")
		}
	})
}

// TestOAuthEndpointsStrictRequests sends what attackers send to the token,
// revocation and introspection endpoints: other content types, duplicate
// parameters, grant types with padding. (Before: "password " and multipart
// bodies got tokens and were never rate-limited; duplicates were accepted,
// first value winning.)
func TestOAuthEndpointsStrictRequests(t *testing.T) {
	srv := portcullis.Serve(t, "PORTCULLIS_RATE_LIMIT_TOKEN_PER_IP=5")
	app := srv.CreateClient(t, "--name", "app", "--public", "--audience", audience)
	signup(t, srv.URL, "frank", "purple otter lamp 42")
	good := url.Values{"grant_type": {"password"}, "client_id": {app.ClientID}, "username": {"frank"}, "password": {"purple otter lamp 42"}}

	multipartBody := func(v url.Values) (string, io.Reader) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for k, vs := range v {
			for _, x := range vs {
				_ = mw.WriteField(k, x)
			}
		}
		_ = mw.Close()
		return mw.FormDataContentType(), &buf
	}

	t.Run("refused before any grant runs", func(t *testing.T) {
		ct, mp := multipartBody(good)
		js, _ := json.Marshal(map[string]string{"grant_type": "password", "client_id": app.ClientID, "username": "frank", "password": "purple otter lamp 42"})
		cases := []struct {
			name, contentType, body, code string
		}{
			{"multipart", ct, "", "invalid_request"},
			{"json", "application/json", string(js), "invalid_request"},
			{"no content type", "", good.Encode(), "invalid_request"},
			{"text/plain", "text/plain", good.Encode(), "invalid_request"},
			{"trailing space", "application/x-www-form-urlencoded", strings.Replace(good.Encode(), "grant_type=password", "grant_type=password+", 1), "unsupported_grant_type"},
			{"leading space", "application/x-www-form-urlencoded", strings.Replace(good.Encode(), "grant_type=password", "grant_type=+password", 1), "unsupported_grant_type"},
			{"two grant types", "application/x-www-form-urlencoded", strings.Replace(good.Encode(), "grant_type=password", "grant_type=password+client_credentials", 1), "unsupported_grant_type"},
			{"duplicate grant_type", "application/x-www-form-urlencoded", good.Encode() + "&grant_type=password", "invalid_request"},
			{"duplicate username", "application/x-www-form-urlencoded", good.Encode() + "&username=frank", "invalid_request"},
			{"duplicate client_id", "application/x-www-form-urlencoded", good.Encode() + "&client_id=" + app.ClientID, "invalid_request"},
			{"duplicate scope", "application/x-www-form-urlencoded", good.Encode() + "&scope=&scope=", "invalid_request"},
			{"missing grant_type", "application/x-www-form-urlencoded", "client_id=" + app.ClientID, "invalid_request"},
		}
		for _, tc := range cases {
			body := io.Reader(strings.NewReader(tc.body))
			if tc.name == "multipart" {
				body = mp
			}
			r := proctest.Do(t, http.MethodPost, srv.URL+"/oauth2/token", tc.contentType, body)
			if r.Status != http.StatusBadRequest || r.JSON(t)["error"] != tc.code || r.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s: %d %s, want 400 %s", tc.name, r.Status, r.Body, tc.code)
			}
		}
		for _, ep := range []string{"/oauth2/revoke", "/oauth2/introspect"} {
			ct, mp := multipartBody(url.Values{"token": {"x"}, "client_id": {app.ClientID}})
			if r := proctest.Do(t, http.MethodPost, srv.URL+ep, ct, mp); r.Status != http.StatusBadRequest || r.JSON(t)["error"] != "invalid_request" {
				t.Errorf("%s multipart: %d %s", ep, r.Status, r.Body)
			}
			if r := proctest.PostForm(t, srv.URL+ep, "token=a&token=b&client_id="+app.ClientID); r.Status != http.StatusBadRequest || r.JSON(t)["error"] != "invalid_request" {
				t.Errorf("%s duplicate token: %d %s", ep, r.Status, r.Body)
			}
		}
		// OAuth request bodies are capped at 16 KiB, below the server-wide
		// 64 KiB: a flood of padded bodies queued for hashing slots must not
		// add up (a red-team flood of 500 × 60 KB reached 235 MiB).
		padded := good.Encode() + "&pad=" + strings.Repeat("x", 17<<10)
		if r := proctest.PostForm(t, srv.URL+"/oauth2/token", padded); r.Status != http.StatusRequestEntityTooLarge || r.JSON(t)["error"] != "invalid_request" {
			t.Errorf("17 KiB token request: %d %s, want 413", r.Status, r.Body)
		}
		if r := proctest.PostForm(t, srv.URL+"/oauth2/token", good.Encode()+"&pad="+strings.Repeat("x", 12<<10)); r.Status != http.StatusOK {
			t.Errorf("12 KiB token request: %d %s, want 200", r.Status, r.Body)
		}
	})

	t.Run("a burst of variants is throttled as password grants", func(t *testing.T) {
		// 60 concurrent attempts with a wrong password in three encodings:
		// none may reach the password check unthrottled.
		bad := url.Values{"grant_type": {"password"}, "client_id": {app.ClientID}, "username": {"frank"}, "password": {"wrong guess 123456"}}
		var mu sync.Mutex
		counts := map[string]int{}
		var wg sync.WaitGroup
		for i := range 60 {
			wg.Go(func() {
				var r proctest.Response
				switch i % 3 {
				case 0:
					r = proctest.PostForm(t, srv.URL+"/oauth2/token", bad.Encode())
				case 1:
					r = proctest.PostForm(t, srv.URL+"/oauth2/token", strings.Replace(bad.Encode(), "grant_type=password", "grant_type=password+", 1))
				case 2:
					ct, mp := multipartBody(bad)
					r = proctest.Do(t, http.MethodPost, srv.URL+"/oauth2/token", ct, mp)
				}
				var e struct{ Error string }
				_ = json.Unmarshal(r.Body, &e)
				mu.Lock()
				counts[fmt.Sprintf("%d/%d/%s", i%3, r.Status, e.Error)]++
				mu.Unlock()
			})
		}
		wg.Wait()
		if counts["1/400/unsupported_grant_type"] != 20 || counts["2/400/invalid_request"] != 20 {
			t.Errorf("variants reached a grant: %v", counts)
		}
		if counts["0/429/temporarily_unavailable"] == 0 {
			t.Errorf("no plain password attempt was rate-limited: %v", counts)
		}
	})
}

// rfc6749Chars is the error_description character set of RFC 6749 §5.2.
var rfc6749Chars = regexp.MustCompile(`^[\x20\x21\x23-\x5B\x5D-\x7E]*$`)

// stackTrace matches a Go stack frame's file:line.
var stackTrace = regexp.MustCompile(`\.go:\d+`)

// TestErrorTextsFixed checks that OAuth error descriptions never echo
// request input or reveal how a client authenticates, stay within RFC 6749
// §5.2's character set, and that the server's debug log carries no stack
// traces. (Before: the requested scope was echoed, a client's registered
// auth method was named, and debug logs printed fosite's stack traces.)
func TestErrorTextsFixed(t *testing.T) {
	srv := portcullis.Serve(t, "PORTCULLIS_RATE_LIMIT_TOKEN_PER_IP=0")
	pub := srv.CreateClient(t, "--name", "pub", "--public", "--scope", "read")
	// Registered with client_secret_basic explicitly, so that
	// client_secret_post is the wrong method.
	conf := srv.CreateClient(t, "--name", "svc", "--auth-method", "client_secret_basic", "--grant-type", "client_credentials", "--scope", "read")
	signup(t, srv.URL, "gina", "purple otter lamp 42")
	const marker = "zz<script>\"marker"

	requests := []struct {
		name   string
		body   url.Values
		header []string
	}{
		{"unknown scope", url.Values{"grant_type": {"password"}, "client_id": {pub.ClientID}, "username": {"gina"}, "password": {"purple otter lamp 42"}, "scope": {marker}}, nil},
		{"unknown audience", url.Values{"grant_type": {"password"}, "client_id": {pub.ClientID}, "username": {"gina"}, "password": {"purple otter lamp 42"}, "audience": {marker}}, nil},
		{"unknown client", url.Values{"grant_type": {"password"}, "client_id": {marker}, "username": {"gina"}, "password": {"x"}}, nil},
		{"wrong auth method", url.Values{"grant_type": {"client_credentials"}, "client_id": {conf.ClientID}, "client_secret": {conf.ClientSecret}}, nil},
		{"wrong secret", url.Values{"grant_type": {"client_credentials"}}, []string{"Authorization", proctest.BasicAuth(conf.ClientID, marker)}},
		{"bad refresh token", url.Values{"grant_type": {"refresh_token"}, "client_id": {pub.ClientID}, "refresh_token": {marker}}, nil},
		{"unknown grant", url.Values{"grant_type": {marker}, "client_id": {pub.ClientID}}, nil},
		{"public client, client_credentials", url.Values{"grant_type": {"client_credentials"}, "client_id": {pub.ClientID}, "scope": {marker}}, nil},
		{"two methods", url.Values{"grant_type": {"client_credentials"}, "client_id": {marker}}, []string{"Authorization", proctest.BasicAuth(conf.ClientID, conf.ClientSecret)}},
		{"no client", url.Values{"grant_type": {"client_credentials"}, "scope": {marker}}, nil},
	}
	for _, rq := range requests {
		r := proctest.PostForm(t, srv.URL+"/oauth2/token", rq.body.Encode(), rq.header...)
		m := r.JSON(t)
		desc, _ := m["error_description"].(string)
		if r.Status < 400 || m["error"] == nil || desc == "" {
			t.Errorf("%s: %d %s", rq.name, r.Status, r.Body)
			continue
		}
		if strings.Contains(desc, "zz") || strings.Contains(desc, "client_secret_") || strings.Contains(strings.ToLower(desc), "method") || !rfc6749Chars.MatchString(desc) {
			t.Errorf("%s: description %q echoes input, names an auth method or leaves RFC 6749 §5.2's character set", rq.name, desc)
		}
	}
	for _, ep := range []string{"/oauth2/revoke", "/oauth2/introspect"} {
		r := proctest.PostForm(t, srv.URL+ep, url.Values{"token": {marker}, "client_id": {marker}}.Encode())
		if desc, _ := r.JSON(t)["error_description"].(string); strings.Contains(desc, "zz") || !rfc6749Chars.MatchString(desc) {
			t.Errorf("%s: description %q", ep, desc)
		}
	}
	time.Sleep(200 * time.Millisecond) // let the last log lines land
	if out := srv.Output(); stackTrace.MatchString(out) {
		t.Errorf("server log contains a stack trace: %s", stackTrace.FindString(out))
		for _, line := range strings.Split(out, "\n") {
			if stackTrace.MatchString(line) {
				t.Logf("%.300s", line)
				break
			}
		}
	}
}

// TestRefreshReplayAcrossGenerations presents a refresh token whose
// successor has already been used: that is a replay whatever the grace, and
// the whole grant is revoked. (Before: t0 → t1, t1 → t2, then t0 again was
// refused as a "duplicate" inside the 10 s grace and t2 kept working.) The
// grace is set here, since the default is strict; inside it, the
// immediately previous token with an unused successor is still only
// refused.
func TestRefreshReplayAcrossGenerations(t *testing.T) {
	portcullis.EachBackend(t, []string{"PORTCULLIS_REFRESH_TOKEN_REUSE_GRACE=30s"}, func(t *testing.T, srv *proctest.Server) {
		app := srv.CreateClient(t, "--name", "app", "--public", "--audience", audience)
		signup(t, srv.URL, "hank", "purple otter lamp 42")
		refresh := func(rt string) proctest.Response {
			return proctest.PostForm(t, srv.URL+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {app.ClientID}, "refresh_token": {rt}}.Encode())
		}
		login := func() proctest.Token {
			return proctest.MustToken(t, proctest.PostForm(t, srv.URL+"/oauth2/token", url.Values{
				"grant_type": {"password"}, "client_id": {app.ClientID}, "username": {"hank"}, "password": {"purple otter lamp 42"}}.Encode()))
		}
		errCode := func(r proctest.Response) string { s, _ := r.JSON(t)["error"].(string); return s }

		// A duplicate inside the grace, successor unused: refused, grant kept.
		t0 := login()
		t1 := proctest.MustToken(t, refresh(t0.RefreshToken))
		if r := refresh(t0.RefreshToken); r.Status != http.StatusBadRequest || errCode(r) != "invalid_grant" {
			t.Fatalf("duplicate: %d %s", r.Status, r.Body)
		}
		t2 := proctest.MustToken(t, refresh(t1.RefreshToken))

		// t0's successor t1 has now been used: t0 is a replay.
		if r := refresh(t0.RefreshToken); r.Status != http.StatusBadRequest || errCode(r) != "invalid_grant" {
			t.Fatalf("replay: %d %s", r.Status, r.Body)
		}
		if r := refresh(t2.RefreshToken); r.Status == http.StatusOK {
			t.Fatalf("t2 still refreshes after t0 was replayed: the grant survived")
		}

		// Strictness does not depend on the successor being used by the
		// legitimate client: a revoked grant's previous token is a replay.
		u0 := login()
		u1 := proctest.MustToken(t, refresh(u0.RefreshToken))
		if r := proctest.PostForm(t, srv.URL+"/oauth2/revoke", url.Values{"token": {u1.RefreshToken}, "client_id": {app.ClientID}}.Encode()); r.Status != http.StatusOK {
			t.Fatalf("revoke: %d %s", r.Status, r.Body)
		}
		if r := refresh(u0.RefreshToken); r.Status == http.StatusOK {
			t.Fatal("the previous token of a revoked grant refreshed")
		}
	})
}

// TestRefreshStrictByDefault checks the default: any reuse of a rotated
// refresh token revokes the grant (RFC 9700 §4.14.2).
func TestRefreshStrictByDefault(t *testing.T) {
	srv := portcullis.Serve(t)
	app := srv.CreateClient(t, "--name", "app", "--public", "--audience", audience)
	signup(t, srv.URL, "ivan", "purple otter lamp 42")
	t0 := proctest.MustToken(t, proctest.PostForm(t, srv.URL+"/oauth2/token", url.Values{
		"grant_type": {"password"}, "client_id": {app.ClientID}, "username": {"ivan"}, "password": {"purple otter lamp 42"}}.Encode()))
	refresh := func(rt string) proctest.Response {
		return proctest.PostForm(t, srv.URL+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {app.ClientID}, "refresh_token": {rt}}.Encode())
	}
	t1 := proctest.MustToken(t, refresh(t0.RefreshToken))
	if r := refresh(t0.RefreshToken); r.Status != http.StatusBadRequest {
		t.Fatalf("reuse: %d %s", r.Status, r.Body)
	}
	if r := refresh(t1.RefreshToken); r.Status == http.StatusOK {
		t.Fatal("the grant survived the reuse of a rotated refresh token")
	}
}
