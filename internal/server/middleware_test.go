package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/server/servertest"
)

// TestRequestID: every answer of both listeners carries an X-Request-Id;
// a well-formed one from a proxy in front is kept, anything else (too
// long, control or other characters) replaced, so no client input
// reaches the log unchecked.
func TestRequestID(t *testing.T) {
	e := servertest.New(t, servertest.Options{})
	get := func(url, id string) string {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		if id != "" {
			req.Header.Set("X-Request-Id", id)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("X-Request-Id")
	}
	seen := map[string]bool{}
	for _, url := range []string{e.Public.URL + "/health/alive", e.Public.URL + "/nowhere", e.Admin.URL + "/admin/users"} {
		id := get(url, "")
		if len(id) < 16 || seen[id] {
			t.Errorf("%s: X-Request-Id %q, want a fresh random ID", url, id)
		}
		seen[id] = true
	}
	if got := get(e.Public.URL+"/health/alive", "proxy-abc.123_X"); got != "proxy-abc.123_X" {
		t.Errorf("a proxy's well-formed ID was replaced by %q", got)
	}
	for _, bad := range []string{strings.Repeat("a", 65), "a b", "a\"b", "id=1;drop", "ü"} {
		if got := get(e.Public.URL+"/health/alive", bad); got == bad || len(got) < 16 {
			t.Errorf("X-Request-Id %q answered as %q, want a fresh ID", bad, got)
		}
	}
}
