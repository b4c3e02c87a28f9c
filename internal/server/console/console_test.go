package console_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/server/console"
)

func serve(t *testing.T) *httptest.Server {
	t.Helper()
	h, err := console.Handler(console.Options{Issuer: "https://auth.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func get(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestHeaders: every answer forbids framing and carries the CSP that
// allows connections to the issuer's origin only besides its own; the
// page and its configuration are never stored.
func TestHeaders(t *testing.T) {
	s := serve(t)
	for _, tc := range []struct {
		path, ctype, cache string
	}{
		{"/console/", "text/html; charset=utf-8", "no-store"},
		{"/console/config.json", "application/json", "no-store"},
		{"/console/console.js", "text/javascript; charset=utf-8", "no-cache"},
		{"/console/console.css", "text/css; charset=utf-8", "no-cache"},
	} {
		resp, _ := get(t, s.URL+tc.path)
		h := resp.Header
		if resp.StatusCode != http.StatusOK || h.Get("Content-Type") != tc.ctype || h.Get("Cache-Control") != tc.cache {
			t.Errorf("%s: %d %q %q, want 200 %q %q", tc.path, resp.StatusCode, h.Get("Content-Type"), h.Get("Cache-Control"), tc.ctype, tc.cache)
		}
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self';", "style-src 'self';",
			"connect-src 'self' https://auth.example.test;", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", tc.path, csp, want)
			}
		}
		if h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: X-Frame-Options %q, X-Content-Type-Options %q", tc.path, h.Get("X-Frame-Options"), h.Get("X-Content-Type-Options"))
		}
	}
	if resp, _ := get(t, s.URL+"/console"); resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/console/" {
		t.Errorf("/console: %d to %q, want 301 to /console/", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := get(t, s.URL+"/console/nothing.js"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/console/nothing.js: %d, want 404", resp.StatusCode)
	}
}

// TestConfig: the page learns the endpoints of the issuer and its client.
func TestConfig(t *testing.T) {
	_, body := get(t, serve(t).URL+"/console/config.json")
	var cfg map[string]string
	if err := json.Unmarshal([]byte(body), &cfg); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"issuer": "https://auth.example.test", "client_id": console.ClientID, "scope": "admin",
		"token_endpoint":                   "https://auth.example.test/oauth2/token",
		"authorization_challenge_endpoint": "https://auth.example.test/oauth2/authorize-challenge"}
	for k, v := range want {
		if cfg[k] != v {
			t.Errorf("config %s = %q, want %q", k, cfg[k], v)
		}
	}
}

// TestNoInlineCode: the page has no inline script, style or event
// handler, which the CSP would block anyway; and the script never writes
// HTML or uses browser storage for tokens.
func TestNoInlineCode(t *testing.T) {
	s := serve(t)
	_, page := get(t, s.URL+"/console/")
	for _, tag := range regexp.MustCompile(`(?i)<script[^>]*>`).FindAllString(page, -1) {
		if !strings.Contains(tag, " src=") {
			t.Errorf("index.html has an inline script: %q", tag)
		}
	}
	for _, re := range []string{`<style`, `\sstyle=`, `\son[a-z]+=`, `javascript:`} {
		if m := regexp.MustCompile(`(?i)` + re).FindString(page); m != "" {
			t.Errorf("index.html has inline code: %q", m)
		}
	}
	_, js := get(t, s.URL+"/console/console.js")
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "localStorage", "sessionStorage", "document.cookie", "eval("} {
		if strings.Contains(js, bad) {
			t.Errorf("console.js uses %s", bad)
		}
	}
}

// TestBadIssuer: a relative issuer is refused.
func TestBadIssuer(t *testing.T) {
	if _, err := console.Handler(console.Options{Issuer: "/relative"}); err == nil {
		t.Fatal("Handler accepted a relative issuer")
	}
}
