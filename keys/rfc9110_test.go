package keys_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/portcullis-auth/portcullis/keys"
)

// TestRFC9110_13_1_2_JWKSIfNoneMatch: the JWKS answers a conditional GET
// by RFC 9110 section 13.1.1 (If-None-Match) with the weak comparison of
// section 13.1.2, so a cache or a compressing proxy that turned the ETag
// into W/"…" still gets 304 Not Modified.
func TestRFC9110_13_1_2_JWKSIfNoneMatch(t *testing.T) {
	m := started(t, openStore(t), sealer(t, secret(t)), opts(newClock(), keys.ES256))
	_, resp := jwks(t, m)
	etag := resp.Header.Get("ETag")
	if len(etag) < 3 || etag[0] != '"' {
		t.Fatalf("ETag %q is not a strong entity-tag", etag)
	}
	for _, tc := range []struct {
		name   string
		header []string // If-None-Match field lines; nil: none
		want   int
	}{
		{"§13.1.2 strong tag, identical", []string{etag}, http.StatusNotModified},
		{"§13.1.2 weak tag matches weakly", []string{"W/" + etag}, http.StatusNotModified},
		{"§13.1.1 list containing the tag", []string{`"other", W/` + etag}, http.StatusNotModified},
		{"§13.1.1 list without spaces", []string{`"other",` + etag}, http.StatusNotModified},
		{"§5.3 list split over field lines", []string{`"other"`, "W/" + etag}, http.StatusNotModified},
		{"§13.1.1 * matches any current representation", []string{"*"}, http.StatusNotModified},
		{"§13.1.1 no If-None-Match", nil, http.StatusOK},
		{"§13.1.2 other tag", []string{`"other"`}, http.StatusOK},
		{"§13.1.2 other weak tag", []string{`W/"other"`}, http.StatusOK},
		{"§8.8.3 opaque-tag must be quoted", []string{etag[1 : len(etag)-1]}, http.StatusOK},
		{"§8.8.3 w/ is case-sensitive", []string{"w/" + etag}, http.StatusOK},
		{"§8.8.3 unterminated tag", []string{etag[:len(etag)-1]}, http.StatusOK},
		{"§8.8.3 malformed member, then the tag", []string{`junk, ` + etag}, http.StatusNotModified},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil)
			for _, v := range tc.header {
				req.Header.Add("If-None-Match", v)
			}
			rec := httptest.NewRecorder()
			m.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("If-None-Match %q: status %d, want %d", tc.header, rec.Code, tc.want)
			}
			if got := rec.Header().Get("ETag"); got != etag {
				t.Errorf("ETag = %q, want %q on every answer (RFC 9110 §15.4.5)", got, etag)
			}
			if tc.want == http.StatusNotModified && rec.Body.Len() != 0 {
				t.Errorf("304 with a body: %q", rec.Body)
			}
		})
	}
}
