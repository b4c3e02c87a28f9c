package server_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-auth/portcullis/internal/server"
	"github.com/portcullis-auth/portcullis/internal/server/servertest"
)

// BenchmarkPublicRoute measures the CPU cost of one request through the
// public listener's middleware (request ID, hardening headers, metrics,
// access log, CORS, routing) in-process, without the network: the JWKS
// route with the access log written to a file (a write per request, as to
// stderr) or discarded, next to a bare handler writing the same kind of
// answer. The difference is what the middleware costs per request:
//
//	go test -run '^$' -bench PublicRoute -benchmem ./internal/server/
func BenchmarkPublicRoute(b *testing.B) {
	body := []byte(`{"status":"ok"}` + "\n")
	bare := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	run := func(b *testing.B, h http.Handler, path string) {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		b.ReportAllocs()
		for b.Loop() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
		}
	}
	b.Run("bare", func(b *testing.B) { run(b, bare, "/") })
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { devNull.Close() })
	for _, tc := range []struct {
		name string
		log  io.Writer
	}{{"jwks/log-to-file", devNull}, {"jwks/log-discarded", io.Discard}} {
		b.Run(tc.name, func(b *testing.B) {
			e := servertest.New(b, servertest.Options{Server: func(o *server.Options) {
				o.Logger = slog.New(slog.NewTextHandler(tc.log, nil))
				o.Registry = prometheus.NewRegistry()
			}})
			run(b, e.Public.Config.Handler, "/.well-known/jwks.json")
		})
	}
}
