package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/internal/proctest"
	"github.com/portcullis-auth/portcullis/internal/testkit"
)

// TestGaleraQuorumLoss: two of three nodes crash (SIGKILL), so the one
// left is no longer in a primary component and refuses queries with
// MariaDB error 1047 ("WSREP has not yet prepared node for application
// use"). The replica on that node must answer 503 with Retry-After (the
// database is unavailable, as for a node that died), never 500, and its
// readiness must fail so that a load balancer stops sending it traffic.
func TestGaleraQuorumLoss(t *testing.T) {
	g := testkit.StartGalera(t, 3)
	db := g.NewDatabase(t)
	reps := galeraReplicas(t, g, db)
	cl := reps[0].CreateClient(t, "--name", "app", "--grant-type", "password", "--grant-type", "refresh_token", "--scope", "profile")
	signup(t, reps[0].URL, "quinn", "purple otter lamp 42")
	login := func() (int, []byte, http.Header) {
		req, _ := http.NewRequest(http.MethodPost, reps[0].URL+"/oauth2/token", strings.NewReader(url.Values{
			"grant_type": {"password"}, "username": {"quinn"}, "password": {"purple otter lamp 42"}, "scope": {"profile"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", proctest.BasicAuth(cl.ClientID, cl.ClientSecret))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, resp.Header
	}
	if status, body, _ := login(); status != http.StatusOK {
		t.Fatalf("login before the crash: %d %s", status, body)
	}
	g.Nodes[1].Stop(syscall.SIGKILL)
	g.Nodes[2].Stop(syscall.SIGKILL)
	deadline := time.Now().Add(30 * time.Second)
	var st string
	for time.Now().Before(deadline) {
		var err error
		if st, err = g.Nodes[0].Status("wsrep_cluster_status"); st == "non-Primary" || err != nil {
			break // a node without quorum refuses even this query (1047)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("node 0 wsrep_cluster_status %q", st)
	var got []string
	bad := false
	for i := range 5 {
		status, body, h := login()
		got = append(got, fmt.Sprintf("token %d %s retry-after=%q", status, strings.TrimSpace(string(body)), h.Get("Retry-After")))
		if status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
			bad = true
		}
		b, _ := json.Marshal(map[string]string{"username": fmt.Sprintf("late%d", i), "password": "quiet violet harbor 1907"})
		resp, err := http.Post(reps[0].URL+"/signup", "application/json", strings.NewReader(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		sb, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		got = append(got, fmt.Sprintf("signup %d %s", resp.StatusCode, strings.TrimSpace(string(sb))))
		if resp.StatusCode != http.StatusServiceUnavailable {
			bad = true
		}
		resp, err = http.Get(reps[0].URL + "/health/ready")
		if err != nil {
			t.Fatal(err)
		}
		rb, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		got = append(got, fmt.Sprintf("ready %d %s", resp.StatusCode, strings.TrimSpace(string(rb))))
		if resp.StatusCode != http.StatusServiceUnavailable {
			bad = true
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("replica on the node left without quorum:\n%s", strings.Join(got, "\n"))
	if bad {
		t.Fatal("the replica on a non-primary node must answer 503 with Retry-After (token, sign-up) and fail readiness")
	}
}

// TestGaleraPasswordChangeUnderGuessingStorm: an attacker who knows only
// a username sends wrong passwords for it through every node (behind a
// trusted proxy, each from a new address, so no network lock stops
// them; the account-wide delay off, as in galeraReplicaEnv). Every
// attempt writes the account's login_throttles row, which the owner's
// password change deletes (ClearThrottles) in its transaction: each
// attempt committed on another node while the change runs makes it fail
// certification. The change must still succeed within its retries (no
// 503): the owner must be able to change a password under attack.
func TestGaleraPasswordChangeUnderGuessingStorm(t *testing.T) {
	g := testkit.StartGalera(t, 3)
	db := g.NewDatabase(t)
	reps := galeraReplicas(t, g, db, "PORTCULLIS_HTTP_TRUSTED_PROXIES=127.0.0.1")
	cl := reps[0].CreateClient(t, "--name", "app", "--grant-type", "password", "--scope", "profile")
	ops := reps[0].CreateClient(t, "--name", "ops", "--grant-type", "client_credentials", "--scope", "admin")
	adm := reps[0].ClientCredentialsToken(t, ops, "admin")
	id := signup(t, reps[0].URL, "victim", "purple otter lamp 42")

	var attempts, fiveXX atomic.Int64
	var statusMu sync.Mutex
	statuses := map[int]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	const attackers = 30
	for i := range attackers {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodPost, reps[i%3].URL+"/oauth2/token", strings.NewReader(url.Values{
					"grant_type": {"password"}, "client_id": {cl.ClientID}, "username": {"victim"}, "password": {fmt.Sprintf("guess %d %d", i, n)}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Authorization", proctest.BasicAuth(cl.ClientID, cl.ClientSecret))
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.%d.%d.%d", i, (n/250)%250, n%250+1))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				attempts.Add(1)
				statusMu.Lock()
				statuses[resp.StatusCode]++
				statusMu.Unlock()
				if resp.StatusCode >= 500 {
					fiveXX.Add(1)
				}
			}
		})
	}
	time.Sleep(time.Second)
	start, before := time.Now(), attempts.Load()
	const changes = 12
	var failed int
	var results []string
	for i := range changes {
		b, _ := json.Marshal(map[string]string{"password": fmt.Sprintf("new granite meadow %d", 70+i)})
		req, _ := http.NewRequest(http.MethodPatch, reps[i%3].AdminURL+"/admin/users/"+id, strings.NewReader(string(b)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+adm.AccessToken)
		t0 := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		rb, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			failed++
			results = append(results, fmt.Sprintf("change %d via replica %d: %d in %s %s", i, i%3, resp.StatusCode, time.Since(t0).Round(time.Millisecond), strings.TrimSpace(string(rb))))
		} else {
			results = append(results, fmt.Sprintf("change %d via replica %d: 200 in %s", i, i%3, time.Since(t0).Round(time.Millisecond)))
		}
	}
	elapsed, during := time.Since(start), attempts.Load()-before
	close(stop)
	wg.Wait()
	t.Logf("%d attackers: %d wrong-password attempts in %s (%.0f/s) while %d password changes ran; %d attacker 5xx; attacker statuses %v\n%s",
		attackers, during, elapsed.Round(time.Millisecond), float64(during)/elapsed.Seconds(), changes, fiveXX.Load(), statuses, strings.Join(results, "\n"))
	if failed > 0 {
		t.Fatalf("%d of %d password changes failed under a guessing storm on the username alone", failed, changes)
	}
}
