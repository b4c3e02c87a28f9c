package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/internal/proctest"
	"github.com/portcullis-auth/portcullis/internal/testkit"
)

// galeraReplicaEnv is the environment of every replica in the Galera
// tests: short key timings so that a scheduled rotation can be provoked
// and seen, a cheap argon2id (the tests count outcomes, not hashes), the
// per-address token limit off (every request comes from 127.0.0.1), a
// lockout of 20 failures without the account-wide delay, and a refresh
// reuse grace, as in TestConcurrentRefresh: with the strict default, a
// request of a burst that arrives after the winner committed is a replay
// and ends the grant, on one server as on a cluster.
var galeraReplicaEnv = []string{
	"PORTCULLIS_REFRESH_TOKEN_REUSE_GRACE=30s",
	"PORTCULLIS_KEYS_ROTATION_INTERVAL=1h",
	"PORTCULLIS_KEYS_RELOAD_INTERVAL=1s",
	"PORTCULLIS_KEYS_JWKS_MAX_AGE=1s",
	"PORTCULLIS_KEYS_PREPUBLICATION=3s",
	"PORTCULLIS_ARGON2_MEMORY_KIB=8192",
	"PORTCULLIS_ARGON2_ITERATIONS=1",
	"PORTCULLIS_RATE_LIMIT_TOKEN_PER_IP=0",
	"PORTCULLIS_LOCKOUT_MAX_FAILURES=20",
	"PORTCULLIS_LOCKOUT_DELAY=0s",
	"PORTCULLIS_REVOCATION_SYNC_INTERVAL=1s",
}

// galeraReplicas starts one `portcullis serve` per node of g, all at once
// on the fresh database db (so they migrate and create the first keys
// concurrently, each through its own node), with one issuer: a load
// balancer's URL that routes to the first replica.
func galeraReplicas(t *testing.T, g *testkit.Galera, db string, extraEnv ...string) []*proctest.Server {
	t.Helper()
	lb := &switchProxy{}
	lbSrv := httptest.NewServer(lb)
	t.Cleanup(lbSrv.Close)
	key := proctest.RandomSecretsKey(t)
	var reps []*proctest.Server
	for _, n := range g.Nodes {
		env := append([]string{"PORTCULLIS_DSN=" + n.DSN(db), "PORTCULLIS_SECRETS_KEY=" + key, "PORTCULLIS_ISSUER=" + lbSrv.URL}, galeraReplicaEnv...)
		reps = append(reps, portcullis.Launch(t, append(env, extraEnv...)...))
	}
	for _, s := range reps {
		if err := s.WaitReady(); err != nil {
			t.Fatal(err)
		}
	}
	lb.route(t, reps[0].URL)
	return reps
}

// post sends a form to url (with HTTP Basic auth when id is set, and
// header as name, value pairs) and returns the status and body; safe in
// any goroutine.
func post(url string, form url.Values, id, secret string, header ...string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.Header.Set("Authorization", proctest.BasicAuth(id, secret))
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// outcome is one concurrent request's answer.
type outcome struct {
	status int
	body   []byte
	err    error
}

// burst sends n requests at once, request i to replica i mod len(reps).
func burst(reps []*proctest.Server, n int, send func(i int, s *proctest.Server) (int, []byte, error)) []outcome {
	out := make([]outcome, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			out[i].status, out[i].body, out[i].err = send(i, reps[i%len(reps)])
		})
	}
	close(start)
	wg.Wait()
	return out
}

func oauthError(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return e.Error
}

// TestGaleraReplicas runs three `portcullis serve` replicas, each on a
// different node of a three-node MariaDB Galera cluster started by the
// test, writing at the same time, and checks through HTTP that what is
// atomic on one database server stays atomic across nodes.
func TestGaleraReplicas(t *testing.T) {
	g := testkit.StartGalera(t, 3)
	db := g.NewDatabase(t)
	reps := galeraReplicas(t, g, db)
	sqlDB := g.Nodes[0].DB(db)

	t.Run("migrated once, one key per algorithm", func(t *testing.T) {
		var rows, versions, keyCount int
		if err := sqlDB.QueryRow("SELECT COUNT(*), COUNT(DISTINCT version_id) FROM goose_db_version").Scan(&rows, &versions); err != nil {
			t.Fatal(err)
		}
		if rows != versions {
			t.Fatalf("goose_db_version: %d rows for %d versions: a migration was recorded twice", rows, versions)
		}
		if err := sqlDB.QueryRow("SELECT COUNT(*) FROM signing_keys").Scan(&keyCount); err != nil {
			t.Fatal(err)
		}
		if keyCount != 2 {
			t.Fatalf("%d signing keys after three replicas started at once, want 2 (ES256, RS256)", keyCount)
		}
	})

	cl := reps[0].CreateClient(t, "--name", "app", "--grant-type", "password", "--grant-type", "refresh_token",
		"--scope", "profile", "--audience", audience)
	password := func(s *proctest.Server, user, pw string) (int, []byte, error) {
		return post(s.URL+"/oauth2/token", url.Values{"grant_type": {"password"}, "username": {user}, "password": {pw}, "scope": {"profile"}},
			cl.ClientID, cl.ClientSecret)
	}
	refresh := func(s *proctest.Server, rt string) (int, []byte, error) {
		return post(s.URL+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, cl.ClientID, cl.ClientSecret)
	}

	t.Run("sign-up race: exactly one 201", func(t *testing.T) {
		for round := range 4 {
			name := fmt.Sprintf("racer%d", round)
			res := burst(reps, 9, func(i int, s *proctest.Server) (int, []byte, error) {
				b, _ := json.Marshal(map[string]string{"username": name, "password": "quiet violet harbor 1907"})
				resp, err := http.Post(s.URL+"/signup", "application/json", strings.NewReader(string(b)))
				if err != nil {
					return 0, nil, err
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				return resp.StatusCode, body, err
			})
			created := 0
			for i, r := range res {
				switch {
				case r.err != nil:
					t.Fatalf("round %d: sign-up %d: %v", round, i, r.err)
				case r.status == http.StatusCreated:
					created++
				case r.status != http.StatusConflict:
					t.Fatalf("round %d: sign-up %d: %d %s", round, i, r.status, r.body)
				}
			}
			if created != 1 {
				t.Fatalf("round %d: %d sign-ups of %s succeeded across the nodes, want 1", round, created, name)
			}
		}
	})

	signup(t, reps[1].URL, "carol", "purple otter lamp 42")

	t.Run("concurrent logins of one user all succeed", func(t *testing.T) {
		res := burst(reps, 12, func(_ int, s *proctest.Server) (int, []byte, error) {
			return password(s, "carol", "purple otter lamp 42")
		})
		for i, r := range res {
			if r.err != nil || r.status != http.StatusOK {
				t.Fatalf("login %d: %d %s %v", i, r.status, r.body, r.err)
			}
		}
	})

	t.Run("DPoP proof raced through every node: accepted once", func(t *testing.T) {
		_, _, md := proctest.GetJSON(t, reps[0].URL+"/.well-known/oauth-authorization-server", nil)
		tokenURL, _ := md["token_endpoint"].(string)
		form := url.Values{"grant_type": {"password"}, "username": {"carol"}, "password": {"purple otter lamp 42"}, "scope": {"profile"}}
		for round := range 3 {
			proof, err := dpopKey(t).Proof(http.MethodPost, tokenURL, "", "")
			if err != nil {
				t.Fatal(err)
			}
			res := burst(reps, 9, func(_ int, s *proctest.Server) (int, []byte, error) {
				return post(s.URL+"/oauth2/token", form, cl.ClientID, cl.ClientSecret, "DPoP", proof)
			})
			won := 0
			for i, r := range res {
				switch {
				case r.err != nil:
					t.Fatalf("round %d: request %d: %v", round, i, r.err)
				case r.status == http.StatusOK:
					won++
				case r.status != http.StatusBadRequest || oauthError(r.body) != "invalid_dpop_proof":
					t.Fatalf("round %d: request %d: %d %s", round, i, r.status, r.body)
				}
			}
			if won != 1 {
				t.Fatalf("round %d: one proof accepted %d times across the nodes, want 1", round, won)
			}
		}
	})

	t.Run("refresh race: exactly one success, the grant intact", func(t *testing.T) {
		status, body, err := password(reps[0], "carol", "purple otter lamp 42")
		if err != nil || status != http.StatusOK {
			t.Fatalf("login: %d %s %v", status, body, err)
		}
		var tok proctest.Token
		_ = json.Unmarshal(body, &tok)
		rt := tok.RefreshToken
		for round := range 5 {
			res := burst(reps, 9, func(_ int, s *proctest.Server) (int, []byte, error) { return refresh(s, rt) })
			wins, next := 0, ""
			for i, r := range res {
				switch {
				case r.err != nil:
					t.Fatalf("round %d: refresh %d: %v", round, i, r.err)
				case r.status == http.StatusOK:
					wins++
					var tok proctest.Token
					_ = json.Unmarshal(r.body, &tok)
					next = tok.RefreshToken
				case r.status != http.StatusBadRequest || oauthError(r.body) != "invalid_grant":
					t.Fatalf("round %d: refresh %d: %d %s, want 200 or 400 invalid_grant", round, i, r.status, r.body)
				}
			}
			if wins != 1 {
				for i, r := range res {
					t.Logf("refresh %d (replica %d): %d %s", i, i%len(reps), r.status, r.body)
				}
				t.Fatalf("round %d: %d concurrent refreshes of one token succeeded across the nodes, want 1", round, wins)
			}
			rt = next // the grant must still work: the next round uses the winner's token
		}
		// Reuse detection still works: the first token, long rotated, is a
		// replay and ends the grant everywhere.
		if status, body, _ := refresh(reps[2], tok.RefreshToken); status != http.StatusBadRequest {
			t.Fatalf("replayed refresh token: %d %s", status, body)
		}
		if status, body, _ := refresh(reps[1], rt); status != http.StatusBadRequest {
			t.Fatalf("the grant's latest refresh token after a replay: %d %s, want 400", status, body)
		}
	})

	t.Run("lockout counts every failure across nodes", func(t *testing.T) {
		signup(t, reps[2].URL, "dave", "seven blue whales 99")
		// 19 failures at once through all nodes: none locks (the limit is 20).
		res := burst(reps, 19, func(_ int, s *proctest.Server) (int, []byte, error) { return password(s, "dave", "wrong") })
		for i, r := range res {
			if r.err != nil || r.status != http.StatusBadRequest || oauthError(r.body) != "invalid_grant" {
				t.Fatalf("failure %d: %d %s %v", i, r.status, r.body, r.err)
			}
		}
		// The 20th locks this network out of the account, so the right
		// password is refused: only if no increment was lost.
		if status, body, _ := password(reps[0], "dave", "wrong"); status != http.StatusBadRequest {
			t.Fatalf("20th failure: %d %s", status, body)
		}
		status, body, _ := password(reps[1], "dave", "seven blue whales 99")
		if status != http.StatusTooManyRequests {
			t.Fatalf("right password after 20 failures through three nodes: %d %s, want 429 (an increment was lost)", status, body)
		}
	})

	t.Run("revocation reaches every replica", func(t *testing.T) {
		status, body, _ := password(reps[0], "carol", "purple otter lamp 42")
		if status != http.StatusOK {
			t.Fatalf("login: %d %s", status, body)
		}
		var tok proctest.Token
		_ = json.Unmarshal(body, &tok)
		rs := reps[0].CreateClient(t, "--name", "rs", "--grant-type", "client_credentials", "--introspect")
		if status, body, _ := post(reps[2].URL+"/oauth2/introspect", url.Values{"token": {tok.AccessToken}}, rs.ClientID, rs.ClientSecret); status != http.StatusOK || !strings.Contains(string(body), `"active":true`) {
			t.Fatalf("introspection before the revocation: %d %s", status, body)
		}
		if status, body, _ := post(reps[1].URL+"/oauth2/revoke", url.Values{"token": {tok.AccessToken}}, cl.ClientID, cl.ClientSecret); status != http.StatusOK {
			t.Fatalf("revoke: %d %s", status, body)
		}
		// The refresh token of the revoked grant fails at once on every node.
		for i, s := range reps {
			if status, body, _ := refresh(s, tok.RefreshToken); status != http.StatusBadRequest {
				t.Fatalf("replica %d: refresh of a revoked grant: %d %s", i, status, body)
			}
		}
		// The stateless access token introspects as inactive on every
		// replica once its revocation list has synced (1s here), although
		// the revocation ids have gaps (auto_increment_increment = 3).
		for i, s := range reps {
			deadline := time.Now().Add(5 * time.Second)
			for {
				status, body, _ := post(s.URL+"/oauth2/introspect", url.Values{"token": {tok.AccessToken}}, rs.ClientID, rs.ClientSecret)
				var got struct {
					Active bool `json:"active"`
				}
				_ = json.Unmarshal(body, &got)
				if status == http.StatusOK && !got.Active {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("replica %d: revoked access token still introspects: %d %s", i, status, body)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	})

	t.Run("revocation racing refreshes: no 5xx, the grant ends", func(t *testing.T) {
		for round := range 5 {
			status, body, _ := password(reps[round%3], "carol", "purple otter lamp 42")
			if status != http.StatusOK {
				t.Fatalf("login: %d %s", status, body)
			}
			var tok proctest.Token
			_ = json.Unmarshal(body, &tok)
			res := burst(reps, 6, func(i int, s *proctest.Server) (int, []byte, error) {
				if i == 2 || i == 3 {
					return post(s.URL+"/oauth2/revoke", url.Values{"token": {tok.RefreshToken}}, cl.ClientID, cl.ClientSecret)
				}
				return refresh(s, tok.RefreshToken)
			})
			var issued []string
			for i, r := range res {
				if r.err != nil || r.status >= 500 {
					t.Fatalf("round %d: request %d: %d %s %v", round, i, r.status, r.body, r.err)
				}
				if r.status == http.StatusOK && i != 2 && i != 3 {
					var next proctest.Token
					_ = json.Unmarshal(r.body, &next)
					issued = append(issued, next.RefreshToken)
				}
			}
			for _, rt := range append(issued, tok.RefreshToken) {
				for i, s := range reps {
					if status, body, _ := refresh(s, rt); status != http.StatusBadRequest {
						t.Fatalf("round %d: replica %d: a refresh token of the revoked grant: %d %s", round, i, status, body)
					}
				}
			}
		}
	})

	t.Run("password change during logins through other nodes ends every grant", func(t *testing.T) {
		ops := reps[0].CreateClient(t, "--name", "ops", "--grant-type", "client_credentials", "--scope", "admin")
		status, body, _ := post(reps[1].URL+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}}, ops.ClientID, ops.ClientSecret)
		if status != http.StatusOK {
			t.Fatalf("admin token: %d %s", status, body)
		}
		var adm proctest.Token
		_ = json.Unmarshal(body, &adm)
		for round := range 4 {
			user, old := fmt.Sprintf("erin%d", round), "amber falcon river 31"
			id := signup(t, reps[0].URL, user, old)
			// Logins with the old password stream through every node
			// while the password is changed through the admin API of one.
			var (
				mu     sync.Mutex
				tokens []string
				wg     sync.WaitGroup
			)
			stop := make(chan struct{})
			for i := range 6 {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						status, body, err := password(reps[i%3], user, old)
						if err != nil || status >= 500 {
							t.Errorf("round %d: login: %d %s %v", round, status, body, err)
							return
						}
						if status == http.StatusOK {
							var tok proctest.Token
							_ = json.Unmarshal(body, &tok)
							mu.Lock()
							tokens = append(tokens, tok.RefreshToken)
							mu.Unlock()
						}
					}
				})
			}
			time.Sleep(time.Duration(100+40*round) * time.Millisecond)
			b, _ := json.Marshal(map[string]string{"password": "new granite meadow 77"})
			var resp *http.Response
			var err error
			// A change that keeps losing certification to the logins
			// racing on the user's row gets 503 with Retry-After, never a
			// 500; a client retries it, as here (at most twice).
			for attempt := 0; attempt < 3; attempt++ {
				req, _ := http.NewRequest(http.MethodPatch, reps[1].AdminURL+"/admin/users/"+id, strings.NewReader(string(b)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+adm.AccessToken)
				resp, err = http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
					break
				}
				_ = resp.Body.Close()
				if resp.Header.Get("Retry-After") == "" {
					t.Errorf("round %d: 503 without Retry-After", round)
				}
				t.Logf("round %d: password change lost to the logins through every retry: 503; retrying", round)
				time.Sleep(50 * time.Millisecond)
			}
			if err == nil {
				_ = resp.Body.Close()
				time.Sleep(100 * time.Millisecond)
			}
			close(stop)
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("round %d: password change: %d", round, resp.StatusCode)
			}
			if len(tokens) == 0 {
				t.Fatalf("round %d: no login got tokens before the change; the race was not run", round)
			}
			for _, rt := range tokens {
				for ri, s := range reps {
					if status, body, _ := refresh(s, rt); status != http.StatusBadRequest {
						t.Fatalf("round %d: replica %d: a refresh token from a login racing the password change still works: %d %s", round, ri, status, body)
					}
				}
			}
			t.Logf("round %d: %d logins with the old password got tokens while the change raced them; all revoked", round, len(tokens))
		}
	})

	t.Run("scheduled rotation racing on every replica: one new key each", func(t *testing.T) {
		// Make the current keys due: every replica's next tick (1s) rotates.
		if _, err := sqlDB.Exec("UPDATE signing_keys SET activates_at = activates_at - INTERVAL 2 HOUR, created_at = created_at - INTERVAL 2 HOUR"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		var keyCount int
		for time.Now().Before(deadline) {
			if err := sqlDB.QueryRow("SELECT COUNT(*) FROM signing_keys").Scan(&keyCount); err != nil {
				t.Fatal(err)
			}
			if keyCount >= 4 {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		time.Sleep(5 * time.Second) // past activation (3s) and every replica's reload (1s)
		var newES string
		if err := sqlDB.QueryRow("SELECT COUNT(*) FROM signing_keys").Scan(&keyCount); err != nil {
			t.Fatal(err)
		}
		if keyCount != 4 {
			t.Fatalf("%d signing keys after a scheduled rotation raced on three replicas, want 4 (one new per algorithm)", keyCount)
		}
		if err := sqlDB.QueryRow("SELECT id FROM signing_keys WHERE algorithm = 'ES256' ORDER BY generation DESC LIMIT 1").Scan(&newES); err != nil {
			t.Fatal(err)
		}
		for i, s := range reps {
			status, body, _ := password(s, "carol", "purple otter lamp 42")
			if status != http.StatusOK {
				t.Fatalf("replica %d: login: %d %s", i, status, body)
			}
			var tok proctest.Token
			_ = json.Unmarshal(body, &tok)
			header, _ := proctest.DecodeJWT(t, tok.AccessToken)
			if header["kid"] != newES {
				t.Fatalf("replica %d signs with %v after the rotation, want the new key %s", i, header["kid"], newES)
			}
		}
	})
}
