package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// corsDo sends one request with an Origin header, as a browser would.
func corsDo(t *testing.T, method, target, origin string, header map[string]string, body string) proctest.Response {
	t.Helper()
	var h []string
	if origin != "" {
		h = append(h, "Origin", origin)
	}
	for k, v := range header {
		h = append(h, k, v)
	}
	return proctest.Do(t, method, target, "", strings.NewReader(body), h...)
}

// preflight sends a CORS preflight for a POST with the headers Swagger UI
// sends.
func preflight(t *testing.T, target, origin string) proctest.Response {
	t.Helper()
	return corsDo(t, http.MethodOptions, target, origin, map[string]string{
		"Access-Control-Request-Method":  "POST",
		"Access-Control-Request-Headers": "authorization,content-type,x-requested-with",
	}, "")
}

// headerList splits a comma-separated response header into lower-case
// elements.
func headerList(h http.Header, name string) []string {
	var out []string
	for _, v := range h.Values(name) {
		for e := range strings.SplitSeq(v, ",") {
			if e = strings.ToLower(strings.TrimSpace(e)); e != "" {
				out = append(out, e)
			}
		}
	}
	return out
}

// TestCORS: preflights and actual requests on the public endpoints against
// the real binary, with a server-wide origin and per-client origins.
func TestCORS(t *testing.T) {
	const (
		wide  = "https://wide.example.test"
		spaO  = "https://spa.example.test"
		other = "http://localhost:5173"
		evil  = "https://evil.example.test"
	)
	srv := portcullis.Serve(t, "PORTCULLIS_HTTP_CORS_ALLOWED_ORIGINS="+wide)
	// Registered in a form that normalises to spaO: upper case, default
	// port, trailing slash.
	spa := srv.CreateClient(t, "--name", "spa", "--public", "--audience", "https://api.example.test",
		"--cors-origin", "HTTPS://Spa.Example.Test:443/")
	var rep map[string]any
	if err := json.Unmarshal(srv.CLI(t, "", "clients", "get", spa.ClientID, "--output", "json"), &rep); err != nil {
		t.Fatal(err)
	}
	if got, _ := json.Marshal(rep["allowed_cors_origins"]); string(got) != `["`+spaO+`"]` {
		t.Fatalf("allowed_cors_origins = %s, want [%q]", got, spaO)
	}
	otherClient := srv.CreateClient(t, "--name", "vite", "--public", "--audience", "https://api.example.test",
		"--cors-origin", other)
	signup(t, srv.URL, "alice", "correct horse battery")

	token := srv.URL + "/oauth2/token"
	pw := func(clientID, password string) string {
		v := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {password}}
		if clientID != "" {
			v.Set("client_id", clientID)
		}
		return v.Encode()
	}
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "X-Requested-With": "XMLHttpRequest"}
	withBasic := func(id string) map[string]string {
		h := map[string]string{"Authorization": proctest.BasicAuth(id, "")}
		for k, v := range form {
			h[k] = v
		}
		return h
	}

	t.Run("PreflightAllowed", func(t *testing.T) {
		for _, tc := range []struct{ path, origin string }{
			{"/oauth2/token", spaO}, {"/oauth2/token", other}, {"/oauth2/token", wide},
			{"/oauth2/revoke", spaO}, {"/signup", spaO}, {"/signup", wide},
		} {
			r := preflight(t, srv.URL+tc.path, tc.origin)
			if r.Status != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != tc.origin {
				t.Fatalf("preflight %s from %s: %d, ACAO %q", tc.path, tc.origin, r.Status, r.Header.Get("Access-Control-Allow-Origin"))
			}
			for _, h := range []string{"authorization", "content-type", "x-requested-with"} {
				if !slices.Contains(headerList(r.Header, "Access-Control-Allow-Headers"), h) {
					t.Fatalf("preflight %s: Access-Control-Allow-Headers %q lacks %s", tc.path, r.Header.Values("Access-Control-Allow-Headers"), h)
				}
			}
			if !slices.Contains(headerList(r.Header, "Access-Control-Allow-Methods"), "post") {
				t.Fatalf("preflight %s: Access-Control-Allow-Methods %q", tc.path, r.Header.Values("Access-Control-Allow-Methods"))
			}
			if r.Header.Get("Access-Control-Max-Age") == "" || !slices.Contains(headerList(r.Header, "Vary"), "origin") {
				t.Fatalf("preflight %s: Max-Age %q, Vary %q", tc.path, r.Header.Get("Access-Control-Max-Age"), r.Header.Values("Vary"))
			}
			if v := r.Header.Get("Access-Control-Allow-Credentials"); v != "" {
				t.Fatalf("preflight %s: Access-Control-Allow-Credentials %q: no credentials mode", tc.path, v)
			}
		}
	})

	t.Run("PreflightRefused", func(t *testing.T) {
		for _, tc := range []struct{ path, origin string }{
			{"/oauth2/token", evil}, {"/oauth2/token", "null"}, {"/oauth2/token", spaO + ":8443"},
			{"/oauth2/token", "http://spa.example.test"}, {"/signup", evil}, {"/oauth2/revoke", evil},
			{"/oauth2/introspect", spaO}, // resource servers only: no CORS
		} {
			r := preflight(t, srv.URL+tc.path, tc.origin)
			if v := r.Header.Get("Access-Control-Allow-Origin"); v != "" {
				t.Fatalf("preflight %s from %s: Access-Control-Allow-Origin %q, want none", tc.path, tc.origin, v)
			}
			if r.Status >= 500 {
				t.Fatalf("preflight %s from %s: status %d", tc.path, tc.origin, r.Status)
			}
		}
	})

	t.Run("TokenPerClient", func(t *testing.T) {
		for _, tc := range []struct {
			name       string
			origin     string
			header     map[string]string
			body       string
			wantStatus int
			wantACAO   string
		}{
			{"basic empty secret, own origin", spaO, withBasic(spa.ClientID), pw("", "correct horse battery"), 200, spaO},
			{"client_id in body, own origin", spaO, form, pw(spa.ClientID, "correct horse battery"), 200, spaO},
			{"server-wide origin", wide, withBasic(spa.ClientID), pw("", "correct horse battery"), 200, wide},
			{"another client's origin", other, withBasic(spa.ClientID), pw("", "correct horse battery"), 200, ""},
			{"the other client at its origin", other, form, pw(otherClient.ClientID, "correct horse battery"), 200, other},
			// An origin no client and no server-wide setting allows is
			// refused before the password check: a cross-site form POST needs
			// no preflight, and its guesses would lock out the visitor's
			// network (red team).
			{"unlisted origin", evil, withBasic(spa.ClientID), pw("", "correct horse battery"), 403, ""},
			{"origin null", "null", withBasic(spa.ClientID), pw("", "correct horse battery"), 403, ""},
			// Errors are readable from an allowed origin too.
			{"wrong password, own origin", spaO, withBasic(spa.ClientID), pw("", "wrong password!!"), 400, spaO},
			{"unknown client, server-wide origin", wide, form, pw("nope", "x"), 401, wide},
			{"unknown client, client origin", spaO, form, pw("nope", "x"), 401, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := corsDo(t, http.MethodPost, token, tc.origin, tc.header, tc.body)
				if r.Status != tc.wantStatus {
					t.Fatalf("status %d, want %d: %s", r.Status, tc.wantStatus, r.Body)
				}
				if got := r.Header.Get("Access-Control-Allow-Origin"); got != tc.wantACAO {
					t.Fatalf("Access-Control-Allow-Origin %q, want %q", got, tc.wantACAO)
				}
				if !slices.Contains(headerList(r.Header, "Vary"), "origin") {
					t.Fatalf("Vary %q lacks Origin", r.Header.Values("Vary"))
				}
				if v := r.Header.Get("Access-Control-Allow-Credentials"); v != "" {
					t.Fatalf("Access-Control-Allow-Credentials %q", v)
				}
			})
		}
	})

	t.Run("RevokeAndSignup", func(t *testing.T) {
		r := corsDo(t, http.MethodPost, srv.URL+"/oauth2/revoke", spaO, withBasic(spa.ClientID), "token=not-a-token")
		if r.Status != http.StatusOK || r.Header.Get("Access-Control-Allow-Origin") != spaO {
			t.Fatalf("revoke: %d, ACAO %q: %s", r.Status, r.Header.Get("Access-Control-Allow-Origin"), r.Body)
		}
		js := map[string]string{"Content-Type": "application/json"}
		r = corsDo(t, http.MethodPost, srv.URL+"/signup", spaO, js, `{"username":"bob","password":"correct horse battery"}`)
		if r.Status != http.StatusCreated || r.Header.Get("Access-Control-Allow-Origin") != spaO {
			t.Fatalf("signup: %d, ACAO %q: %s", r.Status, r.Header.Get("Access-Control-Allow-Origin"), r.Body)
		}
		r = corsDo(t, http.MethodPost, srv.URL+"/signup", spaO, js, `{"username":"bob","password":"correct horse battery"}`)
		if r.Status != http.StatusConflict || r.Header.Get("Access-Control-Allow-Origin") != spaO {
			t.Fatalf("signup taken: %d, ACAO %q", r.Status, r.Header.Get("Access-Control-Allow-Origin"))
		}
		r = corsDo(t, http.MethodPost, srv.URL+"/signup", evil, js, `{"username":"carol","password":"correct horse battery"}`)
		if r.Status != http.StatusForbidden || r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("signup from unlisted origin: %d, ACAO %q", r.Status, r.Header.Get("Access-Control-Allow-Origin"))
		}
		r = corsDo(t, http.MethodPost, srv.URL+"/oauth2/revoke", evil, withBasic(spa.ClientID), "token=not-a-token")
		if r.Status != http.StatusForbidden || r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("revoke from unlisted origin: %d, ACAO %q", r.Status, r.Header.Get("Access-Control-Allow-Origin"))
		}
	})

	t.Run("OpenIDPathReadable", func(t *testing.T) {
		// Browser libraries that try OpenID discovery first must be able to
		// read the 404 to fall back to RFC 8414 (red team: it carried no
		// Access-Control-Allow-Origin and OPTIONS got 405).
		r := corsDo(t, http.MethodGet, srv.URL+"/.well-known/openid-configuration", evil, nil, "")
		if r.Status != http.StatusNotFound || r.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("GET openid-configuration: %d, ACAO %q", r.Status, r.Header.Get("Access-Control-Allow-Origin"))
		}
		r = corsDo(t, http.MethodOptions, srv.URL+"/.well-known/openid-configuration", evil, map[string]string{"Access-Control-Request-Method": "GET"}, "")
		if r.Status != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("preflight openid-configuration: %d, ACAO %q", r.Status, r.Header.Get("Access-Control-Allow-Origin"))
		}
	})

	t.Run("DiscoveryAnyOrigin", func(t *testing.T) {
		for _, path := range []string{"/.well-known/jwks.json", "/.well-known/oauth-authorization-server"} {
			r := corsDo(t, http.MethodGet, srv.URL+path, evil, nil, "")
			if r.Status != http.StatusOK || r.Header.Get("Access-Control-Allow-Origin") != "*" {
				t.Fatalf("GET %s: %d, ACAO %q", path, r.Status, r.Header.Get("Access-Control-Allow-Origin"))
			}
			r = corsDo(t, http.MethodOptions, srv.URL+path, evil, map[string]string{"Access-Control-Request-Method": "GET"}, "")
			if r.Status != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != "*" {
				t.Fatalf("preflight %s: %d, ACAO %q", path, r.Status, r.Header.Get("Access-Control-Allow-Origin"))
			}
		}
	})

	t.Run("AdminListenerNever", func(t *testing.T) {
		r := preflight(t, srv.AdminURL+"/admin/clients", wide)
		if v := r.Header.Get("Access-Control-Allow-Origin"); v != "" || r.Status == http.StatusNoContent {
			t.Fatalf("admin preflight: %d, ACAO %q", r.Status, v)
		}
		r = corsDo(t, http.MethodGet, srv.AdminURL+"/admin/clients", wide, nil, "")
		if v := r.Header.Get("Access-Control-Allow-Origin"); v != "" {
			t.Fatalf("admin GET: ACAO %q", v)
		}
	})

	t.Run("UpdateClearsOrigins", func(t *testing.T) {
		srv.CLI(t, "", "clients", "update", otherClient.ClientID, "--cors-origin=")
		if r := preflight(t, token, other); r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("preflight after the origin was removed: ACAO %q", r.Header.Get("Access-Control-Allow-Origin"))
		}
		srv.CLI(t, "", "clients", "update", otherClient.ClientID, "--cors-origin", other, "--cors-origin", "https://b.example.test")
		if r := preflight(t, token, "https://b.example.test"); r.Header.Get("Access-Control-Allow-Origin") != "https://b.example.test" {
			t.Fatalf("preflight after the origin was added: ACAO %q", r.Header.Get("Access-Control-Allow-Origin"))
		}
	})

	t.Run("InvalidOrigins", func(t *testing.T) {
		for _, o := range []string{"*", "null", "https://x.example.test/app", "ftp://x.example.test", "https://*.example.test",
			"https://user@x.example.test", "https://x.example.test?q=1", "x.example.test", "https://"} {
			_, errOut, err := srv.TryCLI("", "clients", "create", "--name", "bad", "--public", "--cors-origin", o)
			if err == nil {
				t.Fatalf("origin %q accepted", o)
			}
			if o != "*" && o != "null" && strings.Contains(string(errOut), o) {
				t.Fatalf("error echoes the input: %s", errOut)
			}
		}
	})
}

// TestCORSConfigRefusesWildcard: "*" is never a server-wide origin for the
// endpoints that take credentials (JWKS and metadata are always "*").
func TestCORSConfigRefusesWildcard(t *testing.T) {
	for _, v := range []string{"*", "null", "https://a.example.test/path"} {
		p := portcullis.Launch(t, "PORTCULLIS_HTTP_CORS_ALLOWED_ORIGINS="+v)
		select {
		case <-p.Done():
		case <-time.After(60 * time.Second):
			t.Fatalf("serve with cors_allowed_origins %q started", v)
		}
		if p.ExitCode() == 0 || !strings.Contains(p.Output(), "http.cors_allowed_origins") {
			t.Fatalf("serve with cors_allowed_origins %q: exit %d:\n%s", v, p.ExitCode(), p.Output())
		}
	}
}

// TestCrossSiteGuessesDoNotLockOut: a page on another site makes its
// visitor's browser post wrong passwords for the visitor's account (a form
// POST needs no preflight): the requests are refused before the password
// check, so the visitor's network is not locked out. (Before, red team:
// five such requests got the owner 429 Retry-After 900.)
func TestCrossSiteGuessesDoNotLockOut(t *testing.T) {
	srv := portcullis.Serve(t, "PORTCULLIS_RATE_LIMIT_TOKEN_PER_IP=0")
	app := srv.CreateClient(t, "--name", "spa", "--public", "--cors-origin", "https://spa.example.test")
	signup(t, srv.URL, "hank", "purple otter lamp 42")
	form := func(pw string) string {
		return url.Values{"grant_type": {"password"}, "client_id": {app.ClientID}, "username": {"hank"}, "password": {pw}}.Encode()
	}
	for range 6 {
		r := corsDo(t, http.MethodPost, srv.URL+"/oauth2/token", "https://evil.example", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, form("wrong guess 12345"))
		if r.Status != http.StatusForbidden {
			t.Fatalf("cross-site guess: %d %s, want 403", r.Status, r.Body)
		}
	}
	if r := proctest.PostForm(t, srv.URL+"/oauth2/token", form("purple otter lamp 42")); r.Status != http.StatusOK {
		t.Fatalf("owner after cross-site guesses: %d %s", r.Status, r.Body)
	}
}
