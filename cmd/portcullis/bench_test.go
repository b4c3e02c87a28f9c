package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

// Load runs against the real server binary on loopback, with the default
// (OWASP) argon2id parameters:
//
//	PORTCULLIS_TEST_MYSQL_DSN=... go test -run '^$' -bench Server -benchtime 200x ./cmd/portcullis/
//
// Each reports throughput and latency percentiles as custom metrics.

func benchServer(b *testing.B, backend string) (*serverProc, url.Values) {
	b.Helper()
	var dsn string
	var extra []string
	switch backend {
	case "sqlite":
		dsn = "sqlite://" + filepath.Join(b.TempDir(), "bench.db")
	case "mysql":
		dsn = storagetest.MySQLDSN(b)
		extra = append(extra, "PORTCULLIS_SECRETS_KEY="+randomSecretsKey(b))
	}
	env := append(serverEnv(dsn, extra...), "PORTCULLIS_RATE_LIMIT_TOKEN_PER_IP=0", "PORTCULLIS_LOG_LEVEL=warn")
	srv := startServer(b, env)
	signup(b, srv.URL, "bench", "purple otter lamp 42")
	cl := srv.createClient(b, "--name", "bench", "--public", "--audience", audience)
	return srv, url.Values{"grant_type": {"password"}, "client_id": {cl.ClientID}, "username": {"bench"}, "password": {"purple otter lamp 42"}}
}

func postForm(b *testing.B, client *http.Client, u string, form url.Values) map[string]any {
	resp, err := client.PostForm(u, form)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("%d %s", resp.StatusCode, body)
	}
	var out map[string]any
	_ = json.Unmarshal(body, &out)
	return out
}

// BenchmarkServerPasswordGrant8 sends password grants from 8 concurrent
// clients.
func BenchmarkServerPasswordGrant8(b *testing.B) {
	for _, backend := range []string{"sqlite", "mysql"} {
		b.Run(backend, func(b *testing.B) {
			srv, form := benchServer(b, backend)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
			var mu sync.Mutex
			var lat []time.Duration
			jobs := make(chan struct{})
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range 8 {
				wg.Go(func() {
					for range jobs {
						t0 := time.Now()
						postForm(b, client, srv.URL+"/oauth2/token", form)
						d := time.Since(t0)
						mu.Lock()
						lat = append(lat, d)
						mu.Unlock()
					}
				})
			}
			for range b.N {
				jobs <- struct{}{}
			}
			close(jobs)
			wg.Wait()
			reportLatency(b, lat, time.Since(start))
		})
	}
}

// BenchmarkServerRefreshGrant rotates one refresh token after another.
func BenchmarkServerRefreshGrant(b *testing.B) {
	for _, backend := range []string{"sqlite", "mysql"} {
		b.Run(backend, func(b *testing.B) {
			srv, form := benchServer(b, backend)
			client := &http.Client{}
			rt := postForm(b, client, srv.URL+"/oauth2/token", form)["refresh_token"].(string)
			refresh := url.Values{"grant_type": {"refresh_token"}, "client_id": form["client_id"]}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				refresh.Set("refresh_token", rt)
				t0 := time.Now()
				rt = postForm(b, client, srv.URL+"/oauth2/token", refresh)["refresh_token"].(string)
				lat = append(lat, time.Since(t0))
			}
			reportLatency(b, lat, time.Since(start))
		})
	}
}

func reportLatency(b *testing.B, lat []time.Duration, elapsed time.Duration) {
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "grants/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
