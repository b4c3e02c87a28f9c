package interop

import (
	"net/http"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// TestRFC9110_13_1_2 checks the real server's JWKS conditional GET: an
// If-None-Match that matches the ETag by the weak comparison of RFC 9110
// §13.1.2 — as a cache or a compressing proxy sends it, W/"…" — gets 304.
func TestRFC9110_13_1_2(t *testing.T) {
	s := portcullis.Serve(t)
	jwks := s.URL + "/.well-known/jwks.json"
	status, h, _ := proctest.GetJSON(t, jwks, nil)
	etag := h.Get("ETag")
	if status != http.StatusOK || etag == "" {
		t.Fatalf("JWKS: %d, ETag %q", status, etag)
	}
	for _, tc := range []struct {
		name, ifNoneMatch string
		want              int
	}{
		{"§13.1.2 strong comparison's match", etag, http.StatusNotModified},
		{"§13.1.2 weak tag W/ matches", "W/" + etag, http.StatusNotModified},
		{"§13.1.1 one of a list", `"stale", W/` + etag, http.StatusNotModified},
		{"§13.1.1 * matches", "*", http.StatusNotModified},
		{"§13.1.2 another tag", `W/"stale"`, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, h, _ := proctest.GetJSON(t, jwks, http.Header{"If-None-Match": {tc.ifNoneMatch}})
			if status != tc.want || h.Get("ETag") != etag {
				t.Fatalf("If-None-Match %s: %d, ETag %q; want %d", tc.ifNoneMatch, status, h.Get("ETag"), tc.want)
			}
		})
	}
}
