package proctest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

// Portcullis is the path of a portcullis executable built by Build.
type Portcullis string

// Server is a running `portcullis serve`.
type Server struct {
	*Process
	URL      string // public base URL; the issuer unless the environment sets PORTCULLIS_ISSUER
	AdminURL string // admin listener's base URL
	bin      Portcullis
	env      []string // the server's environment, which CLI runs share
}

// serverEnv returns the environment of a server for tests, with extra
// appended (a later duplicate overrides an earlier one). Without
// PORTCULLIS_DSN in extra, the database is a new SQLite file in
// t.TempDir().
func serverEnv(t testing.TB, extra []string) []string {
	t.Helper()
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
	}
	if !hasVar(extra, "PORTCULLIS_DSN") {
		env = append(env, "PORTCULLIS_DSN="+storagetest.SQLiteDSN(t))
	}
	env = append(env,
		"PORTCULLIS_LOG_LEVEL=debug",
		// Tests sign up many users from one address.
		"PORTCULLIS_RATE_LIMIT_SIGNUP_PER_MINUTE_PER_IP=0",
		// Bursts of concurrent sign-ups and logins under -race on a shared
		// 2-CPU machine must queue, not meet the 1 s overload bound
		// (argon2.max_wait), which BenchmarkServerPasswordFlood measures.
		"PORTCULLIS_ARGON2_MAX_WAIT=0s",
		// The defaults (OWASP argon2id) are kept; tests stay fast enough.
	)
	return append(env, extra...)
}

// hasVar reports whether env sets the variable name.
func hasVar(env []string, name string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, name+"=") {
			return true
		}
	}
	return false
}

// Launch starts `portcullis serve` on two free loopback ports (public and
// admin) with the test environment plus env, where a later duplicate
// overrides an earlier one: debug logging, no sign-up rate limit, no
// argon2 queue bound (PORTCULLIS_ARGON2_MAX_WAIT=0s), a new SQLite
// database unless env sets PORTCULLIS_DSN, and the public URL as issuer
// unless env sets PORTCULLIS_ISSUER. It does not wait for the server
// (WaitReady does), nor retry when a port was taken meanwhile (Serve
// does); servers started together, such as replicas, use it.
func (bin Portcullis) Launch(t testing.TB, env ...string) *Server {
	t.Helper()
	addrs := freeAddrs(t, 2) // two FreeAddr calls may return one port twice
	pub, adm := addrs[0], addrs[1]
	s := &Server{URL: "http://" + pub, AdminURL: "http://" + adm, bin: bin}
	s.env = serverEnv(t, env)
	if !hasVar(env, "PORTCULLIS_ISSUER") {
		s.env = append(s.env, "PORTCULLIS_ISSUER="+s.URL)
	}
	s.env = append(s.env, "PORTCULLIS_PUBLIC_ADDR="+pub, "PORTCULLIS_ADMIN_ADDR="+adm)
	s.Process = Start(t, string(bin), s.env, "serve")
	return s
}

// Serve is Launch, then waits until the server is ready and fails the test
// if it does not get there. A port FreeAddr found free can be taken by
// another process before the server binds it (parallel tests start
// servers at once): Serve then starts again on fresh ports, a bounded
// number of times.
func (bin Portcullis) Serve(t testing.TB, env ...string) *Server {
	t.Helper()
	for attempt := 1; ; attempt++ {
		s := bin.Launch(t, env...)
		err := s.WaitReady()
		if err == nil {
			return s
		}
		if attempt < 3 && strings.Contains(s.Output(), "address already in use") {
			t.Logf("port taken meanwhile; starting again on other ports")
			continue
		}
		t.Fatal(err)
	}
}

// EachBackend runs fn against a fresh server (Serve with env) on SQLite
// and on MySQL or MariaDB, in parallel subtests named "sqlite" and
// "mysql". The MySQL subtest runs on a new database of the server named by
// $PORTCULLIS_TEST_MYSQL_DSN (MySQLEnv): it is skipped with a message when
// the variable is unset and fails when the server is unreachable.
func (bin Portcullis) EachBackend(t *testing.T, env []string, fn func(t *testing.T, srv *Server)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, bin.Serve(t, env...))
	})
	t.Run("mysql", func(t *testing.T) {
		t.Parallel()
		fn(t, bin.Serve(t, append(MySQLEnv(t), env...)...))
	})
}

// MySQLEnv returns server environment for a fresh MySQL database
// (storagetest.MySQLDSN: the test is skipped when
// $PORTCULLIS_TEST_MYSQL_DSN is unset and fails when its server is
// unreachable) with a random secrets key.
func MySQLEnv(t testing.TB) []string {
	t.Helper()
	dsn := storagetest.MySQLDSN(t)
	return []string{"PORTCULLIS_DSN=" + dsn, "PORTCULLIS_SECRETS_KEY=" + RandomSecretsKey(t)}
}

// RandomSecretsKey returns a new random 32-byte secrets key, base64
// encoded as PORTCULLIS_SECRETS_KEY takes it.
func RandomSecretsKey(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// WaitReady waits until the server answers /health/ready with 200; see
// Process.WaitHTTP for when it gives up.
func (s *Server) WaitReady() error {
	return s.WaitHTTP(s.URL+"/health/ready", http.StatusOK)
}

// Env returns the server's environment (its database, secrets key and
// settings), for commands that must run as its CLI does.
func (s *Server) Env() []string { return append([]string{}, s.env...) }

// CLI runs the portcullis CLI with args, stdin and the server's
// environment (so on its database) and returns stdout. It fails the test,
// showing stderr, on a non-zero exit.
func (s *Server) CLI(t testing.TB, stdin string, args ...string) []byte {
	t.Helper()
	out, errOut, err := s.TryCLI(stdin, args...)
	if err != nil {
		t.Fatalf("portcullis %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// TryCLI is CLI for a command that may fail: it returns stdout, stderr and
// the error of the run.
func (s *Server) TryCLI(stdin string, args ...string) (stdout, stderr []byte, err error) {
	cmd := exec.Command(string(s.bin), args...)
	cmd.Env = s.env
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.Bytes(), e.Bytes(), err
}

// Client is the CLI's JSON representation of a client.
type Client struct {
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret"`
	AuthMethod   string   `json:"token_endpoint_auth_method"`
	GrantTypes   []string `json:"grant_types"`
	Scope        string   `json:"scope"`
	Audience     []string `json:"audience"`
}

// CreateClient registers a client with `portcullis clients create` and
// args, failing the test unless it printed a client with an ID.
func (s *Server) CreateClient(t testing.TB, args ...string) Client {
	t.Helper()
	out := s.CLI(t, "", append([]string{"clients", "create", "--output", "json"}, args...)...)
	var c Client
	if err := json.Unmarshal(out, &c); err != nil || c.ClientID == "" {
		t.Fatalf("clients create output %q: %v", out, err)
	}
	return c
}

// CreateUser registers a user with `portcullis users create
// --password-stdin` and the given roles.
func (s *Server) CreateUser(t testing.TB, username, password string, roles ...string) {
	t.Helper()
	args := []string{"users", "create", "--output", "json", "--username", username, "--password-stdin"}
	for _, r := range roles {
		args = append(args, "--role", r)
	}
	s.CLI(t, password+"\n", args...)
}

// ClientCredentialsToken gets a client_credentials token for c,
// authenticating with HTTP Basic, with scope unless it is empty. It fails
// the test unless the server issued one.
func (s *Server) ClientCredentialsToken(t testing.TB, c Client, scope string) Token {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	return MustToken(t, PostForm(t, s.URL+"/oauth2/token", form.Encode(), "Authorization", BasicAuth(c.ClientID, c.ClientSecret)))
}

// UserAPI is the path of a userapi executable built by Build.
type UserAPI string

// Serve starts userapi on a free loopback port, verifying tokens of issuer
// for audience, with the further flags args, waits until it is alive and
// returns its base URL; it retries on fresh ports like Portcullis.Serve.
// The process is stopped when the test ends.
func (bin UserAPI) Serve(t testing.TB, issuer, audience string, args ...string) string {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addr := FreeAddr(t)
		p := Start(t, string(bin), []string{"PATH=" + os.Getenv("PATH")},
			append([]string{"--issuer", issuer, "--addr", addr, "--audience", audience}, args...)...)
		base := "http://" + addr
		err := p.WaitHTTP(base+"/health/alive", http.StatusOK)
		if err == nil {
			return base
		}
		if attempt < 3 && strings.Contains(p.Output(), "address already in use") {
			t.Logf("port taken meanwhile; starting again on another port")
			continue
		}
		t.Fatal(err)
	}
}
