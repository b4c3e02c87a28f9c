package cors_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/cors"
)

func TestParseOrigin(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"https://app.example.com", "https://app.example.com"},
		{"HTTPS://App.Example.COM:443/", "https://app.example.com"},
		{"http://localhost:80", "http://localhost"},
		{"http://localhost:5173", "http://localhost:5173"},
		{"https://app.example.com:80", "https://app.example.com:80"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"http://[::1]:3000", "http://[::1]:3000"},
		{"http://[::1]", "http://[::1]"},
		{" https://xn--bcher-kva.example ", "https://xn--bcher-kva.example"},
	} {
		got, err := cors.ParseOrigin(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseOrigin(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{
		"", "*", "null", "https://*.example.com", "https://app.example.com/path", "https://app.example.com?x",
		"https://app.example.com#f", "https://user@app.example.com", "ftp://app.example.com", "app.example.com",
		"https://", "https://:443", "https://app.example.com:", "https://app.example.com:0", "https://app.example.com:65536",
		"https://app.example.com:08080", "https://bücher.example", "https://a..b", "https://app example.com",
		"http://[::1", "javascript:alert(1)",
	} {
		if got, err := cors.ParseOrigin(in); !errors.Is(err, cors.ErrInvalidOrigin) {
			t.Errorf("ParseOrigin(%q) = %q, %v; want ErrInvalidOrigin", in, got, err)
		} else if len(in) > 4 && strings.Contains(err.Error(), in) {
			t.Errorf("ParseOrigin(%q): the error repeats the input: %v", in, err)
		}
	}
	got, err := cors.ParseOrigins([]string{"https://a.example", "HTTPS://A.example:443"})
	if err != nil || len(got) != 1 {
		t.Fatalf("ParseOrigins dedupes normalised entries: %q, %v", got, err)
	}
	if _, err := cors.ParseOrigins([]string{"https://a.example", "https://evil/x"}); err == nil ||
		!strings.Contains(err.Error(), "entry 2") || strings.Contains(err.Error(), "evil") {
		t.Fatalf("ParseOrigins error %v, want entry 2 without the input", err)
	}
}

// clients is a fake cors.ClientOrigins.
type clients struct {
	byClient map[string][]string
	err      error
	calls    int
}

func (c *clients) ClientAllowsOrigin(_ context.Context, id, origin string) (bool, error) {
	c.calls++
	for _, o := range c.byClient[id] {
		if o == origin {
			return true, c.err
		}
	}
	return false, c.err
}

func (c *clients) AnyClientAllowsOrigin(_ context.Context, origin string) (bool, error) {
	c.calls++
	for _, list := range c.byClient {
		for _, o := range list {
			if o == origin {
				return true, c.err
			}
		}
	}
	return false, c.err
}

func TestPolicy(t *testing.T) {
	cs := &clients{byClient: map[string][]string{"spa": {"https://spa.example"}, "b c": {"https://bc.example"}}}
	p, err := cors.NewPolicy([]string{"https://WIDE.example/"}, cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The endpoint parses its form, as the token handler does, and may
	// write nothing at all.
	endpoint := p.ClientEndpoint(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if r.PostForm.Get("silent") == "" {
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	post := func(origin, user, form string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(form))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Origin", origin)
		if user != "" {
			r.SetBasicAuth(url.QueryEscape(user), "")
		}
		return r
	}
	for _, tt := range []struct {
		name string
		req  *http.Request
		want string
	}{
		{"server-wide", post("https://wide.example", "", ""), "https://wide.example"},
		{"basic client", post("https://spa.example", "spa", ""), "https://spa.example"},
		{"form-encoded basic user", post("https://bc.example", "b c", ""), "https://bc.example"},
		{"form client_id", post("https://spa.example", "", "client_id=spa"), "https://spa.example"},
		{"handler writes nothing", post("https://spa.example", "", "client_id=spa&silent=1"), "https://spa.example"},
		{"basic wins over form", post("https://spa.example", "b c", "client_id=spa"), ""},
		{"other client's origin", post("https://bc.example", "spa", ""), ""},
		{"no client", post("https://spa.example", "", ""), ""},
		{"unknown client", post("https://spa.example", "nope", ""), ""},
		{"not normalised", post("https://SPA.example", "spa", ""), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			endpoint.ServeHTTP(w, tt.req)
			res := w.Result()
			if got := res.Header.Get("Access-Control-Allow-Origin"); got != tt.want {
				t.Fatalf("Access-Control-Allow-Origin %q, want %q", got, tt.want)
			}
			if res.Header.Get("Vary") != "Origin" || res.Header.Get("Access-Control-Allow-Credentials") != "" {
				t.Fatalf("headers %v", res.Header)
			}
		})
	}

	t.Run("no Origin, no lookup", func(t *testing.T) {
		cs.calls = 0
		r := post("", "spa", "")
		r.Header.Del("Origin")
		endpoint.ServeHTTP(httptest.NewRecorder(), r)
		if cs.calls != 0 {
			t.Fatalf("%d lookups for a request without Origin", cs.calls)
		}
	})

	t.Run("lookup error is not allowed", func(t *testing.T) {
		failing, _ := cors.NewPolicy(nil, &clients{byClient: cs.byClient, err: errors.New("db down")}, nil)
		w := httptest.NewRecorder()
		failing.ClientEndpoint(http.NotFoundHandler()).ServeHTTP(w, post("https://spa.example", "spa", ""))
		if v := w.Result().Header.Get("Access-Control-Allow-Origin"); v != "" {
			t.Fatalf("Access-Control-Allow-Origin %q after a failed lookup", v)
		}
	})

	t.Run("preflight", func(t *testing.T) {
		for _, tt := range []struct {
			origin, method string
			allowed        bool
		}{
			{"https://spa.example", "POST", true},
			{"https://bc.example", "POST", true},
			{"https://wide.example", "POST", true},
			{"https://spa.example", "DELETE", false},
			{"https://evil.example", "POST", false},
			{"null", "POST", false},
			{"", "POST", false},
		} {
			r := httptest.NewRequest(http.MethodOptions, "/oauth2/token", nil)
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			r.Header.Set("Access-Control-Request-Method", tt.method)
			w := httptest.NewRecorder()
			endpoint.ServeHTTP(w, r)
			h := w.Result().Header
			if w.Code != http.StatusNoContent {
				t.Fatalf("preflight %s %s: status %d", tt.origin, tt.method, w.Code)
			}
			if got := h.Get("Access-Control-Allow-Origin") != ""; got != tt.allowed {
				t.Fatalf("preflight %s %s: allowed %v, want %v (%v)", tt.origin, tt.method, got, tt.allowed, h)
			}
			if tt.allowed && (h.Get("Access-Control-Allow-Methods") != "POST" || h.Get("Access-Control-Max-Age") != "7200" ||
				!strings.Contains(h.Get("Access-Control-Allow-Headers"), "X-Requested-With")) {
				t.Fatalf("preflight headers %v", h)
			}
		}
	})

	t.Run("sign-up: any client's origin", func(t *testing.T) {
		h := p.AnyClientEndpoint(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusCreated) }))
		for origin, want := range map[string]string{"https://bc.example": "https://bc.example", "https://evil.example": ""} {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, post(origin, "", ""))
			if got := w.Result().Header.Get("Access-Control-Allow-Origin"); got != want {
				t.Fatalf("sign-up from %s: %q, want %q", origin, got, want)
			}
		}
	})
}

func TestPublic(t *testing.T) {
	h := cors.Public(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) }))
	for _, origin := range []string{"https://any.example", ""} {
		r := httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil)
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Result().Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("GET from %q: %v", origin, w.Result().Header)
		}
	}
	r := httptest.NewRequest(http.MethodOptions, "/.well-known/jwks.json", nil)
	r.Header.Set("Origin", "https://any.example")
	r.Header.Set("Access-Control-Request-Method", "GET")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusNoContent || w.Result().Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("preflight: %d %v", w.Code, w.Result().Header)
	}
}

func TestNewPolicyRefusesWildcard(t *testing.T) {
	for _, o := range []string{"*", "null", "https://a.example/x"} {
		if _, err := cors.NewPolicy([]string{o}, nil, nil); !errors.Is(err, cors.ErrInvalidOrigin) {
			t.Fatalf("NewPolicy(%q): %v", o, err)
		}
	}
}
