package server_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/server/servertest"
)

// TestRFC9110_13_1_2_JWKSIfNoneMatch: the JWKS answers a conditional GET
// by RFC 9110 section 13.1.1 (If-None-Match) with the weak comparison of
// section 13.1.2, so a cache or a compressing proxy that turned the ETag
// into W/"…" still gets 304 Not Modified.
func TestRFC9110_13_1_2_JWKSIfNoneMatch(t *testing.T) {
	e := servertest.New(t, servertest.Options{})
	get := func(inm ...string) *http.Response {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, e.Issuer+"/.well-known/jwks.json", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range inm {
			req.Header.Add("If-None-Match", v)
		}
		resp, err := e.Public.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	resp := get()
	etag := resp.Header.Get("ETag")
	if resp.Header.Get("Content-Type") != "application/jwk-set+json" || resp.Header.Get("Cache-Control") != "public, max-age=600" {
		t.Fatalf("JWKS headers %v", resp.Header)
	}
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
			resp := get(tc.header...)
			if resp.StatusCode != tc.want {
				t.Fatalf("If-None-Match %q: status %d, want %d", tc.header, resp.StatusCode, tc.want)
			}
			if got := resp.Header.Get("ETag"); got != etag {
				t.Errorf("ETag = %q, want %q on every answer (RFC 9110 §15.4.5)", got, etag)
			}
			if body, _ := io.ReadAll(resp.Body); tc.want == http.StatusNotModified && len(body) != 0 {
				t.Errorf("304 with a body: %q", body)
			}
		})
	}
}

// TestJWKSETagFollowsRotation: a cache holding the JWKS by its ETag gets
// the new document after a rotation, and 304 until then.
func TestJWKSETagFollowsRotation(t *testing.T) {
	e := servertest.New(t, servertest.Options{})
	get := func(etag string) (int, string) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.Issuer+"/.well-known/jwks.json", nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := e.Public.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("ETag")
	}
	_, etag := get("")
	if code, _ := get(etag); code != http.StatusNotModified {
		t.Fatalf("conditional GET = %d, want 304", code)
	}
	if _, err := e.Keys.Rotate(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	if code, next := get(etag); code != http.StatusOK || next == etag {
		t.Fatalf("after rotation: %d with ETag %q (was %q)", code, next, etag)
	}
}
