package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/portcullis-auth/portcullis/oauth/resource"
)

// benchServe sends GET path with auth to h over real loopback HTTP
// (httptest.NewServer), from parallel goroutines sharing one keep-alive
// client, so BenchmarkUsersMe and BenchmarkEmptyHandler are comparable.
func benchServe(b *testing.B, h http.Handler, path, auth string, wantStatus int) {
	srv := httptest.NewServer(h)
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 4 * runtime.GOMAXPROCS(0)}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != wantStatus {
				b.Errorf("status %d, want %d", resp.StatusCode, wantStatus)
				return
			}
		}
	})
}

// BenchmarkUsersMe serves GET /users/me with a valid (cached after the
// first request) token through userapi's real handler.
func BenchmarkUsersMe(b *testing.B) {
	fi := newFakeIssuer(b)
	const aud = "http://userapi.bench"
	v := resource.NewVerifier(resource.NewRemoteKeySet(fi.URL(), resource.RemoteOptions{}),
		resource.Options{Issuer: fi.URL(), Audience: aud})
	tok := mint(b, fi, userClaims(fi, aud), "k1", nil)
	benchServe(b, newHandler(v, resource.StepUp{}), "/users/me", "Bearer "+tok, http.StatusOK)
}

// BenchmarkEmptyHandler is the baseline: an empty handler behind the same
// server and client, with the same request.
func BenchmarkEmptyHandler(b *testing.B) {
	fi := newFakeIssuer(b)
	tok := mint(b, fi, userClaims(fi, "x"), "k1", nil)
	benchServe(b, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), "/users/me", "Bearer "+tok, http.StatusOK)
}
