package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/portcullis-auth/portcullis/internal/proctest"
	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

// switchProxy is the test's load balancer: the shared issuer URL, routing
// to whichever replica is selected.
type switchProxy struct {
	target atomic.Pointer[url.URL]
}

func (p *switchProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rp := httputil.NewSingleHostReverseProxy(p.target.Load())
	rp.ServeHTTP(w, r)
}

func (p *switchProxy) route(t *testing.T, to string) {
	u, err := url.Parse(to)
	if err != nil {
		t.Fatal(err)
	}
	p.target.Store(u)
}

// startReplicas starts n servers on one database at the same time, all with
// issuer issuer (the load balancer's URL) and the environment extra.
func startReplicas(t *testing.T, n int, dsn, issuer string, extra ...string) []*proctest.Server {
	t.Helper()
	env := append([]string{"PORTCULLIS_DSN=" + dsn, "PORTCULLIS_SECRETS_KEY=" + proctest.RandomSecretsKey(t), "PORTCULLIS_ISSUER=" + issuer}, extra...)
	var out []*proctest.Server
	for range n {
		out = append(out, portcullis.Launch(t, env...)) // all start concurrently
	}
	for _, s := range out {
		if err := s.WaitReady(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// replicasBehindSwitch starts n replicas on the test's MariaDB database
// behind a switchable load balancer, whose URL is their issuer; it routes
// to the first. Everything stops when the test ends.
func replicasBehindSwitch(t *testing.T, n int) (*switchProxy, string, []*proctest.Server) {
	t.Helper()
	dsn := storagetest.MySQLDSN(t)
	lb := &switchProxy{}
	lbSrv := httptest.NewServer(lb)
	t.Cleanup(lbSrv.Close)
	reps := startReplicas(t, n, dsn, lbSrv.URL)
	lb.route(t, reps[0].URL)
	return lb, lbSrv.URL, reps
}

// TestMySQLReplicas runs two replicas on one MariaDB database behind a
// switchable load balancer.
func TestMySQLReplicas(t *testing.T) {
	lb, lbURL, reps := replicasBehindSwitch(t, 2)
	a, b := reps[0], reps[1]
	ctx := t.Context()

	t.Run("one signing key for both", func(t *testing.T) {
		var ks []map[string]any
		if err := json.Unmarshal(a.CLI(t, "", "keys", "list", "--output", "json"), &ks); err != nil {
			t.Fatal(err)
		}
		// One key per algorithm: ES256 (default) and RS256 (RFC 9068 §2.1).
		if len(ks) != 2 || ks[0]["alg"] == ks[1]["alg"] {
			t.Fatalf("replicas started together created %d keys, want one ES256 and one RS256: %v", len(ks), ks)
		}
		if ja, jb := get(t, a.URL+"/.well-known/jwks.json"), get(t, b.URL+"/.well-known/jwks.json"); string(ja) != string(jb) {
			t.Fatalf("JWKS differ:\n%s\n%s", ja, jb)
		}
	})

	signup(t, a.URL, "carol", "purple otter lamp 42")
	cl := a.CreateClient(t, "--name", "app", "--public", "--audience", audience)
	confAt := func(s *proctest.Server) *oauth2.Config {
		return &oauth2.Config{ClientID: cl.ClientID, Endpoint: oauth2.Endpoint{TokenURL: s.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
	}
	tok, err := confAt(a).PasswordCredentialsToken(ctx, "carol", "purple otter lamp 42")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("token from A verifies against B's metadata", func(t *testing.T) {
		lb.route(t, b.URL)
		api := userapi.Serve(t, lbURL, audience)
		if status, body, _ := me(t, api, tok.AccessToken); status != http.StatusOK {
			t.Fatalf("status %d: %s", status, body)
		}
	})

	t.Run("refresh token from A refreshes at B", func(t *testing.T) {
		next, err := confAt(b).TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		if err != nil {
			t.Fatalf("refresh at B: %v", err)
		}
		// B's new refresh token works at A ...
		if _, err := confAt(a).TokenSource(ctx, &oauth2.Token{RefreshToken: next.RefreshToken}).Token(); err != nil {
			t.Fatalf("refresh of B's token at A: %v", err)
		}
		// ... and the one rotated at B is dead at A too (reuse detection).
		_, err = confAt(a).TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		assertOAuthError(t, err, "invalid_grant")
	})

	t.Run("concurrent signups across replicas", func(t *testing.T) {
		var names []string
		for i := range 40 {
			names = append(names, fmt.Sprintf("user%02d", i))
		}
		for i := range 10 {
			names = append(names, strings.ToUpper(fmt.Sprintf("user%02d", i*3))) // case-insensitive duplicates
		}
		var created, conflicts, other atomic.Int32
		var wg sync.WaitGroup
		for i, n := range names {
			target := reps[i%2]
			wg.Go(func() {
				body, _ := json.Marshal(map[string]string{"username": n, "password": "purple otter lamp 42"})
				resp, err := http.Post(target.URL+"/signup", "application/json", strings.NewReader(string(body)))
				if err != nil {
					other.Add(1)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusCreated:
					created.Add(1)
				case http.StatusConflict:
					conflicts.Add(1)
				default:
					other.Add(1)
				}
			})
		}
		wg.Wait()
		if created.Load() != 40 || conflicts.Load() != 10 || other.Load() != 0 {
			t.Fatalf("created %d, conflicts %d, other %d; want 40, 10, 0", created.Load(), conflicts.Load(), other.Load())
		}
		var users []map[string]any
		if err := json.Unmarshal(b.CLI(t, "", "users", "list", "--output", "json"), &users); err != nil {
			t.Fatal(err)
		}
		if len(users) != 41 { // carol + 40
			t.Fatalf("%d users stored, want 41", len(users))
		}
	})
}

// TestMySQLOutage cuts the database under a running server, then hangs it
// (connections open, nothing relayed).
func TestMySQLOutage(t *testing.T) {
	dsn := storagetest.MySQLDSN(t) // mysql://root:@tcp(127.0.0.1:3306)/db?parseTime=true
	proxy := storagetest.NewFaultProxy(t, "127.0.0.1:3306")
	proxied := strings.Replace(dsn, "tcp(127.0.0.1:3306)", "tcp("+proxy.Addr()+")", 1)
	if proxied == dsn {
		t.Fatalf("cannot route %s through the proxy", dsn)
	}
	srv := portcullis.Serve(t, "PORTCULLIS_DSN="+proxied, "PORTCULLIS_SECRETS_KEY="+proctest.RandomSecretsKey(t), "PORTCULLIS_RATE_LIMIT_TOKEN_PER_IP=0")
	api := userapi.Serve(t, srv.URL, audience)
	ctx := t.Context()

	signup(t, srv.URL, "dave", "purple otter lamp 42")
	cl := srv.CreateClient(t, "--name", "app", "--public", "--audience", audience)
	conf := &oauth2.Config{ClientID: cl.ClientID, Endpoint: oauth2.Endpoint{TokenURL: srv.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
	tok, err := conf.PasswordCredentialsToken(ctx, "dave", "purple otter lamp 42")
	if err != nil {
		t.Fatal(err)
	}
	if status, _, _ := me(t, api, tok.AccessToken); status != http.StatusOK {
		t.Fatal("token not accepted before the outage")
	}

	// Load while the cut happens: signups and grants in flight.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var seq atomic.Int32
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := seq.Add(1)
				body, _ := json.Marshal(map[string]string{"username": fmt.Sprintf("load%04d", n), "password": "purple otter lamp 42"})
				if resp, err := http.Post(srv.URL+"/signup", "application/json", strings.NewReader(string(body))); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				_, _ = conf.PasswordCredentialsToken(ctx, "dave", "purple otter lamp 42")
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	proxy.SetCut(true)
	time.Sleep(300 * time.Millisecond)

	t.Run("during the outage", func(t *testing.T) {
		form := url.Values{"grant_type": {"password"}, "client_id": {cl.ClientID}, "username": {"dave"}, "password": {"purple otter lamp 42"}}
		resp, err := http.PostForm(srv.URL+"/oauth2/token", form)
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || e.Error != "temporarily_unavailable" || resp.Header.Get("Retry-After") == "" {
			t.Errorf("token endpoint: %d %q Retry-After=%q", resp.StatusCode, e.Error, resp.Header.Get("Retry-After"))
		}
		if resp, err := http.Get(srv.URL + "/health/ready"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("ready during outage: %v %v", resp.StatusCode, err)
		}
		for _, p := range []string{"/.well-known/jwks.json", "/.well-known/oauth-authorization-server", "/health/alive"} {
			if resp, err := http.Get(srv.URL + p); err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("%s during outage: %v %v", p, resp.StatusCode, err)
			}
		}
		if status, body, _ := me(t, api, tok.AccessToken); status != http.StatusOK {
			t.Errorf("userapi stopped verifying: %d %s", status, body)
		}
	})
	close(stop)
	wg.Wait()

	proxy.SetCut(false)
	start := time.Now()
	for {
		if _, err := conf.PasswordCredentialsToken(ctx, "dave", "purple otter lamp 42"); err == nil {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("server did not recover within 5 s of the database coming back")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("recovered %v after restore", time.Since(start).Round(time.Millisecond))

	noHalfWritten := func(t *testing.T) {
		db, err := sql.Open("mysql", strings.TrimPrefix(dsn, "mysql://"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for name, q := range map[string]string{
			"user without hash":             "SELECT COUNT(*) FROM users WHERE password_hash IS NULL OR password_hash = ''",
			"refresh token without session": "SELECT COUNT(*) FROM oauth2_refresh_tokens WHERE request IS NULL OR request = '' OR request NOT LIKE '%\"session\"%'",
		} {
			var n int
			if err := db.QueryRowContext(ctx, q).Scan(&n); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if n != 0 {
				t.Errorf("%d rows: %s", n, name)
			}
		}
	}
	t.Run("no half-written rows", noHalfWritten)

	// Hang: the database stops answering but no connection breaks. Every
	// request that needs it must still answer 503 with Retry-After within
	// the request budget (5 s), not wait for the client to give up.
	adm := srv.CreateClient(t, "--name", "admin", "--grant-type", "client_credentials", "--scope", "admin", "--introspect")
	cc := &clientcredentials.Config{ClientID: adm.ClientID, ClientSecret: adm.ClientSecret, TokenURL: srv.URL + "/oauth2/token",
		Scopes: []string{"admin"}, AuthStyle: oauth2.AuthStyleInHeader}
	admTok, err := cc.Token(ctx) // issuing it writes a row: before the hang
	if err != nil {
		t.Fatal(err)
	}
	proxy.SetHung(true)
	// Clients are served from memory for client_cache.ttl after they were
	// read (the admin client just was): past it, the client_credentials
	// grant and introspection need the database too.
	time.Sleep(clientCacheTTL)
	t.Run("while the database hangs", func(t *testing.T) {
		const bound = 6 * time.Second // the budget is 5 s; generous for a loaded machine
		client := &http.Client{Timeout: 20 * time.Second}
		form := func(v url.Values) io.Reader { return strings.NewReader(v.Encode()) }
		signupBody, _ := json.Marshal(map[string]string{"username": "hung", "password": "purple otter lamp 42"})
		reqs := []struct {
			name, method, url string
			body              func() io.Reader
			header            http.Header
		}{
			{"password grant", http.MethodPost, srv.URL + "/oauth2/token", func() io.Reader {
				return form(url.Values{"grant_type": {"password"}, "client_id": {cl.ClientID}, "username": {"dave"}, "password": {"purple otter lamp 42"}})
			}, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}},
			{"client_credentials grant", http.MethodPost, srv.URL + "/oauth2/token", func() io.Reader {
				return form(url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}})
			}, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Authorization": {proctest.BasicAuth(adm.ClientID, adm.ClientSecret)}}},
			{"signup", http.MethodPost, srv.URL + "/signup", func() io.Reader { return strings.NewReader(string(signupBody)) },
				http.Header{"Content-Type": {"application/json"}}},
			{"admin list users", http.MethodGet, srv.AdminURL + "/admin/users", func() io.Reader { return nil },
				http.Header{"Authorization": {"Bearer " + admTok.AccessToken}}},
			{"introspection", http.MethodPost, srv.URL + "/oauth2/introspect", func() io.Reader {
				return form(url.Values{"token": {admTok.AccessToken}})
			}, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Authorization": {proctest.BasicAuth(adm.ClientID, adm.ClientSecret)}}},
		}
		type result struct {
			status     int
			code       string
			retryAfter string
			elapsed    time.Duration
			err        error
		}
		results := make([]result, len(reqs))
		var wg sync.WaitGroup
		for i, rq := range reqs {
			wg.Go(func() {
				req, _ := http.NewRequestWithContext(ctx, rq.method, rq.url, rq.body())
				maps.Copy(req.Header, rq.header)
				start := time.Now()
				resp, err := client.Do(req)
				r := result{elapsed: time.Since(start), err: err}
				if err == nil {
					var e struct{ Error string }
					_ = json.NewDecoder(resp.Body).Decode(&e)
					resp.Body.Close()
					r.status, r.code, r.retryAfter = resp.StatusCode, e.Error, resp.Header.Get("Retry-After")
				}
				results[i] = r
			})
		}
		wg.Wait()
		var times []string
		for i, r := range results {
			name := reqs[i].name
			times = append(times, fmt.Sprintf("%s=%v", name, r.elapsed.Round(time.Millisecond)))
			switch {
			case r.err != nil:
				t.Errorf("%s: no answer after %v: %v", name, r.elapsed.Round(time.Millisecond), r.err)
			case r.status != http.StatusServiceUnavailable || r.code != "temporarily_unavailable" || r.retryAfter == "":
				t.Errorf("%s: %d %q Retry-After=%q, want 503 temporarily_unavailable with Retry-After", name, r.status, r.code, r.retryAfter)
			case r.elapsed > bound:
				t.Errorf("%s: answered after %v, want within %v", name, r.elapsed.Round(time.Millisecond), bound)
			}
		}
		t.Logf("response times with the database hung: %s", strings.Join(times, ", "))

		if resp, err := client.Get(srv.URL + "/health/ready"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("ready while hung: %v %v", resp, err)
		}
		for _, p := range []string{"/.well-known/jwks.json", "/.well-known/oauth-authorization-server", "/health/alive"} {
			if resp, err := client.Get(srv.URL + p); err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("%s while hung: %v %v", p, resp, err)
			}
		}
	})

	proxy.SetHung(false)
	start = time.Now()
	for {
		if _, err := conf.PasswordCredentialsToken(ctx, "dave", "purple otter lamp 42"); err == nil {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("server did not recover within 5 s of the database answering again")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("recovered %v after the hang ended", time.Since(start).Round(time.Millisecond))
	t.Run("no half-written rows after the hang", noHalfWritten)
}

// TestRevocationAcrossReplicas: access tokens are stateless, and each
// replica keeps the revoked grants in memory (issue 9). A token revoked at
// one replica is inactive there at once, refused by every replica's admin
// API at once (it reads the newest revocations first), and reported
// inactive by the other replica's introspection within the documented
// bound: revocation_sync_interval (1s by default) plus one query.
func TestRevocationAcrossReplicas(t *testing.T) {
	_, _, reps := replicasBehindSwitch(t, 2)
	a, b := reps[0], reps[1]
	ctx := t.Context()
	rs := a.CreateClient(t, "--name", "rs", "--grant-type", "client_credentials", "--introspect")
	admin := a.CreateClient(t, "--name", "ops", "--grant-type", "client_credentials", "--scope", "admin")
	app := a.CreateClient(t, "--name", "app", "--public", "--audience", audience)
	a.CreateUser(t, "dora", "purple otter lamp 42")
	active := func(s *proctest.Server, token string) bool {
		t.Helper()
		r := introspect(t, s, url.Values{"token": {token}}, basic(rs.ClientID, rs.ClientSecret))
		if r.status != http.StatusOK {
			t.Fatalf("introspection at %s: %d %s", s.URL, r.status, r.raw)
		}
		return r.body["active"] == true
	}
	revokeAt := func(s *proctest.Server, token string, auth func(*http.Request), form url.Values) {
		t.Helper()
		form.Set("token", token)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/oauth2/revoke", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth != nil {
			auth(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke at %s: %d", s.URL, resp.StatusCode)
		}
	}
	// within polls until the token is inactive at s and returns how long
	// that took.
	within := func(s *proctest.Server, token string, limit time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for active(s, token) {
			if time.Since(start) > limit {
				t.Fatalf("token still active at %s %v after its revocation", s.URL, limit)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(start)
	}

	t.Run("user token", func(t *testing.T) {
		conf := &oauth2.Config{ClientID: app.ClientID, Endpoint: oauth2.Endpoint{TokenURL: a.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
		tok, err := conf.PasswordCredentialsToken(ctx, "dora", "purple otter lamp 42")
		if err != nil {
			t.Fatal(err)
		}
		if !active(a, tok.AccessToken) || !active(b, tok.AccessToken) {
			t.Fatal("a fresh token is not active at both replicas")
		}
		revokeAt(a, tok.RefreshToken, nil, url.Values{"client_id": {app.ClientID}})
		if active(a, tok.AccessToken) {
			t.Fatal("the revoking replica still reports the access token active")
		}
		took := within(b, tok.AccessToken, 3*time.Second)
		t.Logf("the other replica saw the revocation after %v (bound: 1s + one query)", took)
	})

	t.Run("admin token", func(t *testing.T) {
		cc := &clientcredentials.Config{ClientID: admin.ClientID, ClientSecret: admin.ClientSecret, TokenURL: a.URL + "/oauth2/token", Scopes: []string{"admin"}}
		tok, err := cc.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		adminGet := func(s *proctest.Server) int {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.AdminURL+"/admin/clients", nil)
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if sa, sb := adminGet(a), adminGet(b); sa != http.StatusOK || sb != http.StatusOK {
			t.Fatalf("admin API before revocation: %d %d", sa, sb)
		}
		revokeAt(a, tok.AccessToken, basic(admin.ClientID, admin.ClientSecret), url.Values{})
		// No waiting: the other replica's admin API reads the revocation
		// before it checks the token.
		if sa, sb := adminGet(a), adminGet(b); sa != http.StatusUnauthorized || sb != http.StatusUnauthorized {
			t.Fatalf("admin API right after revocation at A: A %d, B %d; want 401 at both", sa, sb)
		}
		within(b, tok.AccessToken, 3*time.Second)
	})
}
