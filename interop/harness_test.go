package interop

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// portcullisBin is the real server binary, built once by TestMain.
var portcullisBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "portcullis-interop-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	portcullisBin = filepath.Join(dir, "portcullis")
	cmd := exec.Command("go", "build", "-o", portcullisBin, "../cmd/portcullis")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build portcullis: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer collects a process's output for failure messages.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// server is a running `portcullis serve` on loopback with its own SQLite
// database, stopped with SIGTERM at test clean-up.
type server struct {
	URL string // issuer and public base URL
	env []string
	cmd *exec.Cmd
	out *syncBuffer
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServer starts the server with extra environment and waits until it
// is ready (at most 60 s). A port freeAddr found free can be taken by
// another test process before the server binds it: it then starts again on
// fresh ports, a bounded number of times.
func startServer(t testing.TB, extra ...string) *server {
	t.Helper()
	for attempt := 1; ; attempt++ {
		s, err := tryStartServer(t, extra...)
		if err == nil {
			return s
		}
		if attempt < 3 && strings.Contains(err.Error(), "address already in use") {
			t.Logf("port taken meanwhile; starting again on other ports")
			continue
		}
		t.Fatal(err)
	}
}

func tryStartServer(t testing.TB, extra ...string) (*server, error) {
	t.Helper()
	pub, adm := freeAddr(t), freeAddr(t)
	s := &server{URL: "http://" + pub, out: &syncBuffer{}}
	s.env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"PORTCULLIS_DSN=sqlite://" + filepath.Join(t.TempDir(), "portcullis.db"),
		"PORTCULLIS_ISSUER=" + s.URL,
		"PORTCULLIS_PUBLIC_ADDR=" + pub,
		"PORTCULLIS_ADMIN_ADDR=" + adm,
		"PORTCULLIS_LOG_LEVEL=debug",
		"PORTCULLIS_ARGON2_MAX_WAIT=0s",
		"PORTCULLIS_RATE_LIMIT_SIGNUP_PER_MINUTE_PER_IP=0",
	}, extra...)
	s.cmd = exec.Command(portcullisBin, "serve")
	s.cmd.Env = s.env
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start portcullis: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = s.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("portcullis output:\n%s", s.out.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-done:
			return nil, fmt.Errorf("portcullis exited during start-up:\n%s", s.out.String())
		default:
		}
		if resp, err := http.Get(s.URL + "/health/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("portcullis not ready after 60 s:\n%s", s.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cli runs the portcullis CLI against the server's database and returns
// stdout, failing the test on a non-zero exit.
func (s *server) cli(t testing.TB, stdin string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(portcullisBin, args...)
	cmd.Env = s.env
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("portcullis %s: %v\nstderr: %s", strings.Join(args, " "), err, e.Bytes())
	}
	return o.Bytes()
}

// client is the CLI's JSON client representation.
type client struct {
	ID       string   `json:"client_id"`
	Secret   string   `json:"client_secret"`
	Method   string   `json:"token_endpoint_auth_method"`
	Scope    string   `json:"scope"`
	Audience []string `json:"audience"`
}

// createClient registers a client with `portcullis clients create`.
func (s *server) createClient(t testing.TB, args ...string) client {
	t.Helper()
	out := s.cli(t, "", append([]string{"clients", "create", "--output", "json"}, args...)...)
	var c client
	if err := json.Unmarshal(out, &c); err != nil || c.ID == "" {
		t.Fatalf("clients create output %q: %v", out, err)
	}
	return c
}

// createUser registers a user with `portcullis users create`.
func (s *server) createUser(t testing.TB, username, password string, roles ...string) {
	t.Helper()
	args := []string{"users", "create", "--output", "json", "--username", username, "--password-stdin"}
	for _, r := range roles {
		args = append(args, "--role", r)
	}
	s.cli(t, password+"\n", args...)
}

// tokenResponse is an RFC 6749 §5.1 response.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
}

// postForm posts form to the server's path with optional Basic credentials
// and returns the status and body.
func (s *server) postForm(t testing.TB, path string, form url.Values, basicID, basicSecret string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, s.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicID != "" {
		req.SetBasicAuth(url.QueryEscape(basicID), url.QueryEscape(basicSecret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// clientCredentialsToken gets a client_credentials token with Basic auth.
func (s *server) clientCredentialsToken(t testing.TB, c client, scope string) tokenResponse {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	status, body := s.postForm(t, "/oauth2/token", form, c.ID, c.Secret)
	if status != http.StatusOK {
		t.Fatalf("client_credentials: %d %s", status, body)
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		t.Fatalf("token response %s: %v", body, err)
	}
	return tr
}

// getJSON fetches url and decodes a JSON object, returning the status too.
func getJSON(t testing.TB, u string, header http.Header) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(body) > 0 {
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("GET %s: %d, not a JSON object: %q", u, resp.StatusCode, body)
		}
	}
	return resp.StatusCode, resp.Header, m
}

// jwtClaims decodes a compact JWS's header and claims without verifying.
func jwtClaims(t testing.TB, token string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
	}
	return header, claims
}
