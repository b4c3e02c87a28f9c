package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The end-to-end tests build the real binaries once and run them as
// separate processes on loopback, as users do.
var bins struct {
	portcullis, userapi string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "portcullis-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.portcullis = filepath.Join(dir, "portcullis")
	bins.userapi = filepath.Join(dir, "userapi")
	for bin, pkg := range map[string]string{bins.portcullis: ".", bins.userapi: "../userapi"} {
		cmd := exec.Command("go", "build", "-o", bin, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			os.Exit(1)
		}
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

// proc is a running child process, stopped with SIGTERM at test clean-up.
type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

func startProc(t testing.TB, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("output of %s %s:\n%s", filepath.Base(bin), strings.Join(args, " "), p.out.String())
		}
	})
	return p
}

// stop sends SIGTERM and waits (bounded) for the process to exit.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
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

// serverProc is a running `portcullis serve`.
type serverProc struct {
	*proc
	URL      string // issuer and public base URL
	AdminURL string
	env      []string
}

// serverEnv returns the environment for a server on the given DSN.
func serverEnv(dsn string, extra ...string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"PORTCULLIS_DSN=" + dsn,
		"PORTCULLIS_LOG_LEVEL=debug",
		// Tests sign up many users from one address.
		"PORTCULLIS_RATE_LIMIT_SIGNUP_PER_MINUTE_PER_IP=0",
		// Bursts of concurrent sign-ups and logins under -race on a shared
		// 2-CPU machine must queue, not meet the 1 s overload bound
		// (argon2.max_wait), which BenchmarkServerPasswordFlood measures.
		"PORTCULLIS_ARGON2_MAX_WAIT=0s",
		// The defaults (OWASP argon2id) are kept; tests stay fast enough.
	}
	return append(env, extra...)
}

// startServer starts `portcullis serve` with env and waits until ready.
// A port freeAddr found free can be taken by another test's process before
// ours binds it (parallel subtests start servers at once): startServer
// then starts again on fresh ports, a bounded number of times.
func startServer(t testing.TB, env []string) *serverProc {
	t.Helper()
	for attempt := 1; ; attempt++ {
		pub, adm := freeAddr(t), freeAddr(t)
		s := &serverProc{URL: "http://" + pub, AdminURL: "http://" + adm}
		s.env = append(slicesClone(env),
			"PORTCULLIS_ISSUER="+s.URL, "PORTCULLIS_PUBLIC_ADDR="+pub, "PORTCULLIS_ADMIN_ADDR="+adm)
		s.proc = startProc(t, bins.portcullis, s.env, "serve")
		err := waitReady(s.proc, s.URL+"/health/ready", http.StatusOK)
		if err == nil {
			return s
		}
		if attempt < 3 && strings.Contains(s.proc.out.String(), "address already in use") {
			t.Logf("port taken meanwhile; starting again on other ports")
			continue
		}
		t.Fatal(err)
	}
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

// waitHTTP polls url until it answers want, failing after 60 s or when the
// process exits.
func waitHTTP(t testing.TB, p *proc, url string, want int) {
	t.Helper()
	if err := waitReady(p, url, want); err != nil {
		t.Fatal(err)
	}
}

// waitReady is waitHTTP returning its failure.
func waitReady(p *proc, url string, want int) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("process exited while waiting for %s:\n%s", url, p.out.String())
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer %d in time:\n%s", url, want, p.out.String())
}

// cli runs the portcullis CLI with the server's environment and returns
// stdout; it fails the test on a non-zero exit.
func (s *serverProc) cli(t testing.TB, stdin string, args ...string) []byte {
	t.Helper()
	out, errOut, err := s.tryCLI(stdin, args...)
	if err != nil {
		t.Fatalf("portcullis %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut)
	}
	return out
}

func (s *serverProc) tryCLI(stdin string, args ...string) (stdout, stderr []byte, err error) {
	cmd := exec.Command(bins.portcullis, args...)
	cmd.Env = s.env
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.Bytes(), e.Bytes(), err
}

// clientInfo is the CLI's JSON client representation.
type clientInfo struct {
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret"`
	AuthMethod   string   `json:"token_endpoint_auth_method"`
	GrantTypes   []string `json:"grant_types"`
	Scope        string   `json:"scope"`
	Audience     []string `json:"audience"`
}

func (s *serverProc) createClient(t testing.TB, args ...string) clientInfo {
	t.Helper()
	out := s.cli(t, "", append([]string{"clients", "create", "--output", "json"}, args...)...)
	var c clientInfo
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatalf("clients create output %q: %v", out, err)
	}
	return c
}

// signup creates a user through POST /signup and returns its id.
func signup(t testing.TB, baseURL, username, password string) string {
	t.Helper()
	status, body := postJSON(t, baseURL+"/signup", map[string]string{"username": username, "password": password})
	if status != http.StatusCreated {
		t.Fatalf("signup %s: status %d: %s", username, status, body)
	}
	var u struct{ ID, Username string }
	if err := json.Unmarshal(body, &u); err != nil || u.ID == "" || u.Username != username {
		t.Fatalf("signup response %s: %v", body, err)
	}
	return u.ID
}

func postJSON(t testing.TB, url string, v any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(v)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// startUserAPI runs the reference resource server against issuer.
func startUserAPI(t testing.TB, issuer, audience string) string {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addr := freeAddr(t)
		p := startProc(t, bins.userapi, []string{"PATH=" + os.Getenv("PATH")},
			"--issuer", issuer, "--addr", addr, "--audience", audience)
		url := "http://" + addr
		err := waitReady(p, url+"/health/alive", http.StatusOK)
		if err == nil {
			return url
		}
		if attempt < 3 && strings.Contains(p.out.String(), "address already in use") {
			t.Logf("port taken meanwhile; starting again on another port")
			continue
		}
		t.Fatal(err)
	}
}

// me calls GET /users/me with token and returns the status, body and
// WWW-Authenticate header.
func me(t testing.TB, userAPI, token string) (int, []byte, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, userAPI+"/users/me", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /users/me: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body, resp.Header.Get("WWW-Authenticate")
}

// jwtParts decodes a compact JWS's header and claims without verifying.
func jwtParts(t testing.TB, token string) (header, claims map[string]any) {
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
