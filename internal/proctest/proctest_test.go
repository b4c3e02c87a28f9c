package proctest

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestBasicAuth(t *testing.T) {
	// RFC 6749 §2.3.1: the ID and secret are form-encoded before base64,
	// which is what x/oauth2 and SetBasicAuth of the escaped values send.
	for _, tc := range []struct{ id, secret string }{{"app", "s3cret"}, {"a:b", "p w+%"}, {"spa", ""}} {
		req, _ := http.NewRequest(http.MethodGet, "http://example.test", nil)
		req.SetBasicAuth(url.QueryEscape(tc.id), url.QueryEscape(tc.secret))
		if got, want := BasicAuth(tc.id, tc.secret), req.Header.Get("Authorization"); got != want {
			t.Errorf("BasicAuth(%q, %q) = %q, want %q", tc.id, tc.secret, got, want)
		}
	}
}

func TestDecodeJWT(t *testing.T) {
	// {"alg":"ES256","typ":"at+jwt"}.{"sub":"alice","exp":1}.signature
	h, c := DecodeJWT(t, "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MX0.c2ln")
	if h["alg"] != "ES256" || h["typ"] != "at+jwt" || c["sub"] != "alice" || c["exp"] != float64(1) {
		t.Fatalf("header %v, claims %v", h, c)
	}
}

func TestServerEnv(t *testing.T) {
	lookup := func(env []string, name string) (last string, n int) {
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, name+"="); ok {
				last, n = v, n+1
			}
		}
		return last, n
	}
	t.Run("SQLite by default", func(t *testing.T) {
		env := serverEnv(t, []string{"PORTCULLIS_ARGON2_MAX_WAIT=1s"})
		if dsn, n := lookup(env, "PORTCULLIS_DSN"); n != 1 || !strings.HasPrefix(dsn, "sqlite://") {
			t.Errorf("PORTCULLIS_DSN %q (%d times)", dsn, n)
		}
		// A later duplicate wins (os/exec keeps the last): extra overrides.
		if v, _ := lookup(env, "PORTCULLIS_ARGON2_MAX_WAIT"); v != "1s" {
			t.Errorf("PORTCULLIS_ARGON2_MAX_WAIT %q, want the caller's 1s", v)
		}
	})
	t.Run("given DSN", func(t *testing.T) {
		env := serverEnv(t, []string{"PORTCULLIS_DSN=mysql://x"})
		if dsn, n := lookup(env, "PORTCULLIS_DSN"); n != 1 || dsn != "mysql://x" {
			t.Errorf("PORTCULLIS_DSN %q (%d times)", dsn, n)
		}
		for _, want := range []string{"PORTCULLIS_ARGON2_MAX_WAIT=0s", "PORTCULLIS_RATE_LIMIT_SIGNUP_PER_MINUTE_PER_IP=0", "PORTCULLIS_LOG_LEVEL=debug"} {
			if !slices.Contains(env, want) {
				t.Errorf("environment lacks %s: %v", want, env)
			}
		}
	})
}

func TestFreeAddrsDistinct(t *testing.T) {
	for range 200 {
		if a := freeAddrs(t, 2); a[0] == a[1] {
			t.Fatalf("freeAddrs returned %s twice", a[0])
		}
	}
}
