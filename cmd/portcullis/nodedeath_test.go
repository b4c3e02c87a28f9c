package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/internal/proctest"
	"github.com/portcullis-auth/portcullis/internal/testkit"
)

// nodeDeathQueryTimeout is every replica's database.query_timeout in
// TestGaleraNodeDeath. A node that dies without leaving (SIGKILL, SIGSTOP)
// stalls writes and causal reads on every other node until the cluster
// evicts it (evs.suspect_timeout, 3s in the test cluster, plus the view
// change: about 4.5s measured on an idle machine, over 6s once in CI under
// the race detector with every package's tests running): a bound shorter
// than that turns the stall into 503s on the surviving replicas too.
const nodeDeathQueryTimeout = 9 * time.Second

// tokenEvent is one answer of the token endpoint under load.
type tokenEvent struct {
	replica    int
	grant      string
	sent, done time.Time
	status     int // 0: no answer (err)
	retryAfter string
	errCode    string
	err        error
}

// tokenLoad runs grants through replicas until stopped and records every
// answer.
type tokenLoad struct {
	urls   []atomic.Pointer[string] // each replica's base URL
	mu     sync.Mutex
	events []tokenEvent
	stop   chan struct{}
	wg     sync.WaitGroup
}

// startTokenLoad starts workers per replica, each looping over a password
// grant (a user of its own), a refresh of the refresh token it got, and a
// client_credentials grant.
func startTokenLoad(reps []*proctest.Server, workers int, app, svc proctest.Client, users []string, pw string) *tokenLoad {
	l := &tokenLoad{stop: make(chan struct{}), urls: make([]atomic.Pointer[string], len(reps))}
	for ri, s := range reps {
		l.setURL(ri, s.URL)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	send := func(ri int, grant string, form url.Values, id, secret string) (tokenEvent, []byte) {
		ev := tokenEvent{replica: ri, grant: grant, sent: time.Now()}
		req, _ := http.NewRequest(http.MethodPost, *l.urls[ri].Load()+"/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if id != "" {
			req.Header.Set("Authorization", proctest.BasicAuth(id, secret))
		}
		resp, err := client.Do(req)
		var body []byte
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			ev.status, ev.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
			if ev.status != http.StatusOK {
				ev.errCode = oauthError(body)
			}
		}
		ev.done, ev.err = time.Now(), err
		l.mu.Lock()
		l.events = append(l.events, ev)
		l.mu.Unlock()
		return ev, body
	}
	for ri := range reps {
		for w := range workers {
			user := users[(ri*workers+w)%len(users)]
			l.wg.Go(func() {
				for {
					select {
					case <-l.stop:
						return
					default:
					}
					ev, body := send(ri, "password", url.Values{"grant_type": {"password"}, "client_id": {app.ClientID},
						"username": {user}, "password": {pw}}, "", "")
					var tok struct {
						RefreshToken string `json:"refresh_token"`
					}
					if ev.status == http.StatusOK && json.Unmarshal(body, &tok) == nil && tok.RefreshToken != "" {
						ev, _ = send(ri, "refresh_token", url.Values{"grant_type": {"refresh_token"}, "client_id": {app.ClientID},
							"refresh_token": {tok.RefreshToken}}, "", "")
					}
					ok := ev.status == http.StatusOK
					ev, _ = send(ri, "client_credentials", url.Values{"grant_type": {"client_credentials"}}, svc.ClientID, svc.ClientSecret)
					if !ok || ev.status != http.StatusOK {
						time.Sleep(50 * time.Millisecond) // no busy loop on a failing replica
					}
				}
			})
		}
	}
	return l
}

// setURL sends replica ri's next requests to base.
func (l *tokenLoad) setURL(ri int, base string) { l.urls[ri].Store(&base) }

// close stops the load and waits for the workers.
func (l *tokenLoad) close() {
	close(l.stop)
	l.wg.Wait()
}

// window returns the answers of replica ri received in [from, to).
func (l *tokenLoad) window(ri int, from, to time.Time) []tokenEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []tokenEvent
	for _, ev := range l.events {
		if ev.replica == ri && !ev.done.Before(from) && ev.done.Before(to) {
			out = append(out, ev)
		}
	}
	return out
}

// replicaStats sums up a replica's answers in a window, times relative to
// t0.
type replicaStats struct {
	ok, unavailable, other5xx, otherErr, noAnswer int
	missingRetryAfter                             int
	first503, firstFail, lastFail                 time.Duration // -1: none
	maxLatency                                    time.Duration
	examples                                      []string
}

func statsOf(evs []tokenEvent, t0 time.Time) replicaStats {
	s := replicaStats{first503: -1, firstFail: -1, lastFail: -1}
	for _, ev := range evs {
		lat := ev.done.Sub(ev.sent)
		s.maxLatency = max(s.maxLatency, lat)
		at := ev.done.Sub(t0)
		if ev.status == http.StatusOK {
			s.ok++
			continue
		}
		if s.firstFail < 0 {
			s.firstFail = at
		}
		s.lastFail = at
		switch {
		case ev.err != nil:
			s.noAnswer++
		case ev.status == http.StatusServiceUnavailable:
			s.unavailable++
			if s.first503 < 0 {
				s.first503 = at
			}
			if ev.retryAfter == "" {
				s.missingRetryAfter++
			}
		case ev.status >= 500:
			s.other5xx++
		default:
			s.otherErr++
		}
		if len(s.examples) < 3 {
			s.examples = append(s.examples, fmt.Sprintf("%s %d %s %v after %v", ev.grant, ev.status, ev.errCode, ev.err, lat.Round(time.Millisecond)))
		}
	}
	return s
}

func (s replicaStats) String() string {
	d := func(v time.Duration) string {
		if v < 0 {
			return "-"
		}
		return v.Round(10 * time.Millisecond).String()
	}
	return fmt.Sprintf("%d ok, %d 503 (%d without Retry-After), %d other 5xx, %d 4xx, %d unanswered; first 503 %s, failures %s..%s; max latency %s",
		s.ok, s.unavailable, s.missingRetryAfter, s.other5xx, s.otherErr, s.noAnswer, d(s.first503), d(s.firstFail), d(s.lastFail), d(s.maxLatency))
}

// TestGaleraNodeDeath runs a steady token load (password, refresh and
// client_credentials grants) through four `portcullis serve` replicas on
// a three-node Galera cluster: replica i on node i, and a fourth whose DSN
// lists node 3, node 1, node 2. Node 3's mariadbd is then crashed
// (SIGKILL) and restarted, stopped cleanly (SIGTERM) and restarted, and
// frozen (SIGSTOP) and resumed (SIGCONT). Each time: replicas 1 and 2 keep
// issuing tokens without a 5xx; replica 3 answers 503 with Retry-After
// (never 500, never a hang) within 5s, or within the query timeout when
// the node hangs, and answers 200 again once the node is synced; replica
// 4 fails over to node 1 and keeps issuing. The timeline of each phase is
// logged.
func TestGaleraNodeDeath(t *testing.T) {
	g := testkit.StartGalera(t, 3)
	db := g.NewDatabase(t)
	key := proctest.RandomSecretsKey(t)
	lb := &switchProxy{}
	lbSrv := httptest.NewServer(lb)
	t.Cleanup(lbSrv.Close)
	common := append([]string{"PORTCULLIS_SECRETS_KEY=" + key, "PORTCULLIS_ISSUER=" + lbSrv.URL,
		"PORTCULLIS_DATABASE_QUERY_TIMEOUT=" + nodeDeathQueryTimeout.String()}, galeraReplicaEnv...)
	n1, n2, n3 := g.Nodes[0], g.Nodes[1], g.Nodes[2]
	multi := fmt.Sprintf("mysql://root:@tcp(%s),tcp(%s),tcp(%s)/%s?parseTime=true", n3.Addr(), n1.Addr(), n2.Addr(), db)

	// Migrate once, through node 1; the replicas do not migrate.
	migrate := exec.Command(string(portcullis), "migrate")
	migrate.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "PORTCULLIS_DSN=" + n1.DSN(db)}, common...)
	if out, err := migrate.CombinedOutput(); err != nil {
		t.Fatalf("portcullis migrate: %v\n%s", err, out)
	}
	envOf := func(dsn string) []string {
		return append([]string{"PORTCULLIS_DSN=" + dsn, "PORTCULLIS_DATABASE_AUTO_MIGRATE=false"}, common...)
	}
	var reps []*proctest.Server
	for _, dsn := range []string{n1.DSN(db), n2.DSN(db), n3.DSN(db), multi} {
		reps = append(reps, portcullis.Launch(t, envOf(dsn)...))
	}
	for _, s := range reps {
		if err := s.WaitReady(); err != nil {
			t.Fatal(err)
		}
	}
	lb.route(t, reps[0].URL)

	const pw = "quiet violet harbor 1907"
	app := reps[0].CreateClient(t, "--name", "app", "--public", "--audience", audience)
	svc := reps[0].CreateClient(t, "--name", "svc", "--grant-type", "client_credentials", "--audience", audience)
	const workers = 2
	var users []string
	for i := range len(reps) * workers {
		u := fmt.Sprintf("worker%d", i)
		reps[0].CreateUser(t, u, pw)
		users = append(users, u)
	}
	load := startTokenLoad(reps, workers, app, svc, users, pw)
	defer load.close()
	time.Sleep(2 * time.Second)
	for ri := range reps {
		if st := statsOf(load.window(ri, time.Now().Add(-2*time.Second), time.Now()), time.Now()); st.ok == 0 || st.unavailable+st.other5xx+st.otherErr+st.noAnswer > 0 {
			t.Fatalf("replica %d before any fault: %s %v", ri+1, st, st.examples)
		}
	}

	// waitRecovered waits until replica 3 has answered 200 to a request
	// sent after since, and returns when that answer came.
	waitRecovered := func(t *testing.T, since time.Time, limit time.Duration) time.Time {
		t.Helper()
		deadline := since.Add(limit)
		for time.Now().Before(deadline) {
			for _, ev := range load.window(2, since, time.Now()) {
				if ev.status == http.StatusOK && !ev.sent.Before(since) {
					return ev.done
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("replica 3 answered no 200 within %v of %v", limit, since.Format(time.TimeOnly))
		return time.Time{}
	}

	// phase faults node 3 (fault returns when it is done), observes the
	// replicas for observe, restores it (restore returns once the node is
	// synced) and checks the replicas.
	phase := func(t *testing.T, name string, fault func(), firstBound time.Duration, restore func()) {
		// A fresh fail-over replica, whose connections go to node 3 (the
		// last one's failed over to node 1 and stay there).
		fresh := portcullis.Serve(t, envOf(multi)...)
		load.setURL(3, fresh.URL)
		reps[3].Stop()
		reps[3] = fresh
		time.Sleep(2 * time.Second)
		t0 := time.Now()
		fault()
		faulted := time.Now()
		time.Sleep(12 * time.Second)
		restoring := time.Now()
		restore()
		synced := time.Now()
		recovered := waitRecovered(t, synced, 15*time.Second)
		time.Sleep(time.Second)
		end := time.Now()

		st := make([]replicaStats, len(reps))
		for ri := range reps {
			st[ri] = statsOf(load.window(ri, t0, end), t0)
		}
		r3 := st[2]
		r3out := statsOf(load.window(2, t0, synced), t0)
		rel := func(x time.Time) string { return x.Sub(t0).Round(10 * time.Millisecond).String() }
		t.Logf("%s timeline (t=0 at the signal): signal handled by %s; replica 3 first 503 at %s, last failure at %s; node 3 restart at %s, synced at %s; replica 3 first 200 after sync at %s (%s after sync)",
			name, rel(faulted), fmtDur(r3.first503), fmtDur(r3.lastFail), rel(restoring), rel(synced), rel(recovered), recovered.Sub(synced).Round(10*time.Millisecond))
		for ri := range reps {
			t.Logf("%s replica %d (%s): %s", name, ri+1, []string{"node 1", "node 2", "node 3", "nodes 3,1,2"}[ri], st[ri])
		}
		t.Logf("%s fail-over replica: %d failed requests, from %s to %s after the signal (its blip); slowest answer %s",
			name, st[3].unavailable+st[3].other5xx+st[3].otherErr+st[3].noAnswer, fmtDur(st[3].firstFail), fmtDur(st[3].lastFail), fmtDur(st[3].maxLatency))

		for _, ri := range []int{0, 1} {
			if st[ri].ok == 0 {
				t.Errorf("replica %d issued no token after node 3 failed", ri+1)
			}
			if n := st[ri].unavailable + st[ri].other5xx + st[ri].noAnswer; n > 0 {
				t.Errorf("replica %d (surviving node): %d 5xx or unanswered requests, want none: %v", ri+1, n, st[ri].examples)
			}
		}
		switch {
		case r3out.first503 < 0:
			t.Errorf("replica 3 never answered 503 while node 3 was down: %s", r3out)
		case r3out.first503 > firstBound:
			t.Errorf("replica 3's first 503 came %v after the signal, want within %v", r3out.first503, firstBound)
		}
		if r3.other5xx > 0 || r3.noAnswer > 0 || r3.missingRetryAfter > 0 {
			t.Errorf("replica 3: %s: want only 503 with Retry-After: %v", r3, r3.examples)
		}
		if limit := 2*nodeDeathQueryTimeout + time.Second; r3.maxLatency > limit {
			t.Errorf("replica 3 took %v to answer, want at most %v", r3.maxLatency, limit)
		}
		if st[3].ok == 0 || st[3].other5xx > 0 || st[3].noAnswer > 0 || st[3].otherErr > 0 {
			t.Errorf("replica 4 (fail-over DSN): %s: %v", st[3], st[3].examples)
		}
	}

	t.Run("SIGKILL", func(t *testing.T) {
		phase(t, "SIGKILL", func() { n3.Stop(syscall.SIGKILL) }, 5*time.Second, n3.Start)
	})
	t.Run("SIGTERM", func(t *testing.T) {
		phase(t, "SIGTERM", func() { n3.Stop(syscall.SIGTERM) }, 5*time.Second, n3.Start)
	})
	t.Run("SIGSTOP", func(t *testing.T) {
		pid := n3.PID()
		phase(t, "SIGSTOP", func() {
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
		}, nodeDeathQueryTimeout+time.Second, func() {
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			if err := n3.WaitSynced(90 * time.Second); err != nil {
				t.Fatal(err)
			}
		})
	})
}

func fmtDur(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return d.Round(10 * time.Millisecond).String()
}
