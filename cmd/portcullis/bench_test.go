package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// Load runs against the real server binary on loopback, with the default
// (OWASP) argon2id parameters:
//
//	PORTCULLIS_TEST_MYSQL_DSN=... go test -run '^$' -bench Server -benchtime 200x ./cmd/portcullis/
//
// Each reports throughput and latency percentiles as custom metrics.

// benchServer starts a server and returns it with a password-grant form for
// user "bench" (users bench1 … bench<n> exist too, for concurrent logins on
// distinct accounts: concurrent logins on one account are throttled).
func benchServer(b *testing.B, backend string, users ...int) (*proctest.Server, url.Values) {
	b.Helper()
	var env []string
	if backend == "mysql" {
		env = proctest.MySQLEnv(b)
	}
	env = append(env, "PORTCULLIS_RATE_LIMIT_TOKEN_PER_IP=0", "PORTCULLIS_LOG_LEVEL=warn",
		"PORTCULLIS_ARGON2_MAX_WAIT=1s") // the default, which proctest lifts for tests
	srv := portcullis.Serve(b, env...)
	signup(b, srv.URL, "bench", "purple otter lamp 42")
	for _, n := range users {
		for i := range n {
			signup(b, srv.URL, fmt.Sprintf("bench%d", i), "purple otter lamp 42")
		}
	}
	cl := srv.CreateClient(b, "--name", "bench", "--public", "--audience", audience)
	return srv, url.Values{"grant_type": {"password"}, "client_id": {cl.ClientID}, "username": {"bench"}, "password": {"purple otter lamp 42"}}
}

// withUser returns a copy of a password-grant form for another user.
func withUser(form url.Values, user string) url.Values {
	out := url.Values{}
	for k, v := range form {
		out[k] = v
	}
	out.Set("username", user)
	return out
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
// clients, each logging in its own user.
func BenchmarkServerPasswordGrant8(b *testing.B) {
	for _, backend := range []string{"sqlite", "mysql"} {
		b.Run(backend, func(b *testing.B) {
			srv, base := benchServer(b, backend, 8)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
			var mu sync.Mutex
			var lat []time.Duration
			jobs := make(chan struct{})
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := range 8 {
				form := withUser(base, fmt.Sprintf("bench%d", w))
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

// BenchmarkServerPasswordFlood floods the token endpoint with password
// grants from 500 concurrent connections (4 per account, 125 accounts, so
// the guessing throttle never engages) and reports, for the admitted
// requests (200), the rate and p50/p99 latency, the share refused with 503
// because no hashing slot freed up within argon2.max_wait, and the server's
// peak resident memory (VmHWM):
//
//	go test -run '^$' -bench ServerPasswordFlood -benchtime 3000x ./cmd/portcullis/
func BenchmarkServerPasswordFlood(b *testing.B) {
	const conns, accounts = 500, 125
	for _, backend := range []string{"sqlite", "mysql"} {
		b.Run(backend, func(b *testing.B) {
			srv, base := benchServer(b, backend, accounts)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}, Timeout: time.Minute}
			var mu sync.Mutex
			var admitted []time.Duration
			statuses := map[int]int{}
			jobs := make(chan struct{})
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := range conns {
				form := withUser(base, fmt.Sprintf("bench%d", w%accounts))
				wg.Go(func() {
					for range jobs {
						t0 := time.Now()
						resp, err := client.PostForm(srv.URL+"/oauth2/token", form)
						if err != nil {
							mu.Lock()
							statuses[0]++ // transport error
							mu.Unlock()
							continue
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						d := time.Since(t0)
						mu.Lock()
						statuses[resp.StatusCode]++
						if resp.StatusCode == http.StatusOK {
							admitted = append(admitted, d)
						}
						mu.Unlock()
					}
				})
			}
			for range b.N {
				jobs <- struct{}{}
			}
			close(jobs)
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if len(admitted) == 0 {
				b.Fatalf("no request admitted: %v", statuses)
			}
			reportLatency(b, admitted, elapsed)
			b.ReportMetric(100*float64(statuses[http.StatusServiceUnavailable])/float64(b.N), "%503")
			b.ReportMetric(float64(vmHWM(b, srv.Pid()))/1024, "VmHWM-MiB")
			for code := range statuses {
				if code != http.StatusOK && code != http.StatusServiceUnavailable {
					b.Errorf("unexpected statuses: %v", statuses)
					break
				}
			}
		})
	}
}

// vmHWM returns a process's peak resident set size in KiB.
func vmHWM(b *testing.B, pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return kib
		}
	}
	b.Fatal("no VmHWM in /proc status")
	return 0
}
