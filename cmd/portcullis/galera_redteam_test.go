package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

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
		req.SetBasicAuth(url2form(cl.ClientID), url2form(cl.ClientSecret))
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
		if st, _ = g.Nodes[0].Status("wsrep_cluster_status"); st == "non-Primary" {
			break
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
