package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/internal/galera"
)

// TestBenchSmoke runs the documented benchmark command end to end with
// tiny bounds: it builds the real binaries, starts them on SQLite,
// provisions through the CLI and runs every scenario. It asserts only that
// every scenario completed without an error, never a rate.
func TestBenchSmoke(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	err := run(t.Context(), []string{"bench", "-c", "1,2", "-duration", "2s", "-requests", "6", "-rounds", "1", "-idle-wait", "0s"}, &out, &errOut)
	if err != nil {
		t.Fatalf("bench: %v\nstdout:\n%s\nstderr:\n%s", err, &out, &errOut)
	}
	for _, sc := range scenarioNames() {
		row := "| " + sc + " |"
		i := strings.Index(out.String(), row)
		if i < 0 {
			t.Errorf("report has no row for %s:\n%s", sc, &out)
			continue
		}
		line, _, _ := strings.Cut(out.String()[i:], "\n")
		if !strings.HasSuffix(line, "| 0 |") {
			t.Errorf("%s: errors in %q", sc, line)
		}
	}
	for _, want := range []string{"### SQLite", "| portcullis |", "| userapi |", "| client_credentials c=2 |", "| password / argon2 c=1 |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, &out)
		}
	}
}

func TestCheckTarget(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080", true},
		{"http://127.0.0.2:8080/", "http://127.0.0.2:8080", true},
		{"http://localhost:8090/api/", "http://localhost:8090/api", true},
		{"http://[::1]:8080", "http://[::1]:8080", true},
		{"http://10.0.0.1:8080", "", false},
		{"http://example.com", "", false},
		{"http://localhost.example.com", "", false},
		{"http://0.0.0.0:8080", "", false},
		{"https://127.0.0.1:8443", "", false},
		{"http://u:p@127.0.0.1", "", false},
		{"127.0.0.1:8080", "", false},
		{"http://[::ffff:10.0.0.1]:80", "", false},
	} {
		got, err := checkTarget(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("checkTarget(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestDialRefusesNonLoopback checks the second line of defence: whatever
// a name resolves to, the client dials nothing but loopback.
func TestDialRefusesNonLoopback(t *testing.T) {
	t.Parallel()
	c := newClient(1)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://192.0.2.1:9/", nil)
	_, err := c.Do(req)
	if !errors.Is(err, errNotLoopback) {
		t.Fatalf("GET of a TEST-NET address: %v, want errNotLoopback", err)
	}
}

func TestRunRefusesNonLoopback(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	err := run(t.Context(), []string{"-url", "http://192.0.2.1:8080", "jwks"}, &out, &errOut)
	if !errors.Is(err, errNotLoopback) {
		t.Fatalf("run: %v, want errNotLoopback", err)
	}
}

func TestParseConcurrency(t *testing.T) {
	t.Parallel()
	if got, err := parseConcurrency("1, 8,32"); err != nil || !slices.Equal(got, []int{1, 8, 32}) {
		t.Errorf("parseConcurrency = %v, %v", got, err)
	}
	for _, bad := range []string{"", "0", "1,1", "x", "2000", "-1"} {
		if _, err := parseConcurrency(bad); err == nil {
			t.Errorf("parseConcurrency(%q) accepted", bad)
		}
	}
}

// TestLoadBounds runs the trivial and jwks scenarios against test servers:
// the request bound is exact, the time bound stops a run, and a failing
// target counts errors.
func TestLoadBounds(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	h := &harness{}
	if err := h.serveTrivial(ctx); err != nil {
		t.Fatal(err)
	}
	trivial := scenarios()[0]
	r, err := load(ctx, h, trivial, 4, bounds{duration: time.Minute, requests: 50})
	if err != nil || r.ok != 50 || r.errors != 0 || r.workers != 4 {
		t.Fatalf("request-bounded run: %+v, %v", r, err)
	}
	start := time.Now()
	r, err = load(ctx, h, trivial, 2, bounds{duration: 200 * time.Millisecond})
	if err != nil || r.ok == 0 || r.errors != 0 || time.Since(start) > 10*time.Second {
		t.Fatalf("time-bounded run: %+v, %v after %v", r, err, time.Since(start))
	}

	// A pair alternates: each side gets the whole duration in slices,
	// and the request bound holds over the slices.
	h.url = h.trivial
	jwksLike := scenario{name: "other", baseline: "trivial", prepare: trivial.prepare}
	start = time.Now()
	rs, err := runAll(ctx, h, []scenario{trivial, jwksLike}, 2, bounds{duration: 400 * time.Millisecond}, 4, func(result) {})
	if err != nil || len(rs) != 2 || rs[0].ok == 0 || rs[1].ok == 0 || rs[0].elapsed < 400*time.Millisecond || rs[1].elapsed < 400*time.Millisecond {
		t.Fatalf("pair: %+v, %v", rs, err)
	}
	if d := time.Since(start); d < 800*time.Millisecond || d > 10*time.Second {
		t.Fatalf("pair took %v, want about 800ms", d)
	}
	rs, err = runAll(ctx, h, []scenario{trivial, jwksLike}, 3, bounds{duration: time.Minute, requests: 10}, 4, func(result) {})
	if err != nil || rs[0].ok != 10 || rs[1].ok != 10 {
		t.Fatalf("request-bounded pair: %+v, %v", rs, err)
	}

	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer broken.Close()
	h.url = broken.URL
	jwks := scenarios()[1]
	r, err = load(ctx, h, jwks, 1, bounds{duration: time.Minute, requests: 3})
	if err != nil || r.ok != 0 || r.errors != 3 || r.firstErr == nil || failures([]result{r}) == nil {
		t.Fatalf("failing run: %+v, %v", r, err)
	}
}

func TestArgon2WorkersCapped(t *testing.T) {
	t.Parallel()
	i := slices.IndexFunc(scenarios(), func(s scenario) bool { return s.name == "argon2" })
	r, err := load(context.Background(), &harness{}, scenarios()[i], 64, bounds{duration: time.Minute, requests: 2})
	if err != nil || r.errors != 0 || r.ok != 2 || r.workers > 64 || r.workers != scenarios()[i].maxWorkers {
		t.Fatalf("argon2: %+v, %v", r, err)
	}
}

func TestParseStatus(t *testing.T) {
	t.Parallel()
	status := "Name:\tportcullis\nVmPeak:\t 1265540 kB\nVmHWM:\t   65536 kB\nVmRSS:\t   40960 kB\nThreads:\t7\n"
	rss, hwm, err := parseStatus([]byte(status))
	if err != nil || rss != 40960 || hwm != 65536 {
		t.Fatalf("parseStatus = %d, %d, %v", rss, hwm, err)
	}
	if _, _, err := parseStatus([]byte("Name:\tx\n")); err == nil {
		t.Fatal("parseStatus accepted a status without VmRSS")
	}
}

func TestGoals(t *testing.T) {
	t.Parallel()
	rs := func(name string, c int, ok int64) result {
		return result{scenario: name, concurrency: c, ok: ok, elapsed: time.Second}
	}
	b := &backendRun{conc: []int{1, 32}, rounds: [][]result{{
		rs("trivial", 32, 50000), rs("jwks", 32, 45000), rs("client_credentials", 32, 2560),
		rs("introspect", 32, 9000), rs("refresh", 32, 1200),
		rs("argon2", 1, 50), rs("password", 1, 46), rs("argon2", 32, 100), rs("password", 32, 85),
		rs("userapi_trivial", 32, 20000), rs("usersme", 32, 18000),
	}}, mem: memory{portcullisIdle: 64 << 10, userapiIdle: 7 << 10}}
	want := map[string]bool{
		"client_credentials c=32": false, "introspect c=32": true, "refresh c=32": false,
		"password / argon2 c=1": true, "password / argon2 c=32": false,
		"jwks / trivial c=32": true, "usersme / userapi_trivial c=32": true,
		"portcullis idle RSS after first token": false, "userapi idle RSS after first token": true,
	}
	goals := b.goals()
	if len(goals) != len(want) {
		t.Fatalf("%d goals, want %d: %+v", len(goals), len(want), goals)
	}
	for _, g := range goals {
		if met, ok := want[g.what]; !ok || met != g.met {
			t.Errorf("goal %q met %v (%s of %s)", g.what, g.met, g.measured, g.goal)
		}
	}
	b.mysql = true
	if g := b.goals()[0]; g.goal != "≥ 5,000/s" {
		t.Errorf("MySQL client_credentials goal %q", g.goal)
	}
}

func TestThousands(t *testing.T) {
	t.Parallel()
	for in, want := range map[float64]string{85.54: "85.5", 102: "102", 2560.4: "2,560", 1234567: "1,234,567"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v) = %q, want %q", in, got, want)
		}
	}
}

// TestMain lets the test binary serve as its own trivial server child, as
// loadgen does (serveTrivial runs os.Executable with trivialEnv=1).
func TestMain(m *testing.M) {
	if os.Getenv(trivialEnv) == "1" {
		if err := serveTrivialChild(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	os.Exit(m.Run())
}

// TestGaleraBenchSmoke runs "loadgen galera" end to end with tiny bounds:
// it builds portcullis, starts a standalone mariadbd and a three-node
// Galera cluster, provisions the three set-ups through the CLI and runs
// every scenario on each. It asserts only that every scenario completed
// without an error on all three, never a rate.
func TestGaleraBenchSmoke(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts four mariadbd processes; skipped in -short mode")
	}
	if missing := galera.Missing(); missing != "" {
		if os.Getenv("PORTCULLIS_TEST_GALERA") != "" {
			t.Fatalf("PORTCULLIS_TEST_GALERA is set but %s", missing)
		}
		t.Skipf("skipping this Galera test: %s (install mariadb-server, galera-4 and rsync; set PORTCULLIS_TEST_GALERA=1 to make this a failure)", missing)
	}
	var out, errOut bytes.Buffer
	err := run(t.Context(), []string{"galera", "-c", "1,2", "-duration", "1s", "-requests", "6", "-rounds", "1", "-slices", "2"}, &out, &errOut)
	if err != nil {
		t.Fatalf("galera: %v\nstdout:\n%s\nstderr:\n%s", err, &out, &errOut)
	}
	for _, sc := range galeraScenarios {
		for _, c := range []string{"1", "2"} {
			row := "| " + sc + " | " + c + " |"
			if n := strings.Count(out.String(), row); n != 2 {
				t.Errorf("report has %d rows for %s c=%s, want 2 (rates, CPU):\n%s", n, sc, c, &out)
				continue
			}
			i := strings.Index(out.String(), row)
			line, _, _ := strings.Cut(out.String()[i:], "\n")
			if !strings.HasSuffix(line, "| 0 / 0 / 0 |") {
				t.Errorf("%s c=%s: errors in %q", sc, c, line)
			}
		}
	}
	for _, want := range []string{"## loadgen galera", "1 replica, 1 server", "3 replicas, 1 server", "3 replicas, 3 Galera nodes", "| CPU ms per request |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, &out)
		}
	}
}

func TestParseStat(t *testing.T) {
	t.Parallel()
	// The command name may hold spaces and parentheses.
	stat := "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 8 0 100 1000000 500 18446744073709551615\n"
	got, err := parseStat([]byte(stat))
	if err != nil || got != 3250*time.Millisecond {
		t.Fatalf("parseStat = %v, %v; want 3.25s (325 ticks)", got, err)
	}
	for _, bad := range []string{"", "4242 (cmd S 1", "4242 (cmd) S 1 2 3", "4242 (cmd) S 1 4242 4242 0 -1 4194560 1000 0 0 0 x 75 0"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) accepted", bad)
		}
	}
	if d, err := cpuTime(os.Getpid()); err != nil || d < 0 {
		t.Fatalf("cpuTime(self) = %v, %v", d, err)
	}
}

// TestSpread checks the round-robin of a worker over several replicas:
// worker i starts at replica i mod n and visits each in turn.
func TestSpread(t *testing.T) {
	t.Parallel()
	h := &harness{targets: targets{url: "http://a"}}
	if got := h.spread(5, "/t"); !slices.Equal(got, []string{"http://a/t"}) {
		t.Errorf("one replica: %q", got)
	}
	h.replicas = []string{"http://a", "http://b", "http://c"}
	if got := h.spread(4, "/t"); !slices.Equal(got, []string{"http://b/t", "http://c/t", "http://a/t"}) {
		t.Errorf("worker 4 of three replicas: %q", got)
	}
	var mu sync.Mutex
	var hits []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		hits = append(hits, r.URL.Path)
	}))
	defer srv.Close()
	h.connect(1)
	defer h.disconnect()
	o := h.expectEach(http.MethodGet, []string{srv.URL + "/a", srv.URL + "/b"}, "", "", nil)
	for range 3 {
		if err := o(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(hits, []string{"/a", "/b", "/a"}) {
		t.Errorf("expectEach sent %q, want /a /b /a", hits)
	}
}
