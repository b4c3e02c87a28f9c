package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// debianPython is the interpreter the Debian packages python3-jwt,
// python3-fastapi, python3-uvicorn and python3-httpx install into; a
// python3 earlier on PATH (pyenv, a virtualenv) does not see them.
const debianPython = "/usr/bin/python3"

// TestPythonFastAPI runs interop/python/resource_server.py — FastAPI with
// PyJWT's PyJWKClient at its default leeway (0) — against a real server
// and calls it with tokens the moment they are issued, across second
// boundaries.
func TestPythonFastAPI(t *testing.T) {
	if _, err := os.Stat(debianPython); err != nil {
		t.Skipf("interop: %s not found: install python3 and python3-jwt python3-fastapi python3-uvicorn python3-httpx", debianPython)
	}
	var missing []string
	for _, m := range []struct{ module, pkg string }{
		{"jwt", "python3-jwt"}, {"fastapi", "python3-fastapi"}, {"uvicorn", "python3-uvicorn"},
		{"httpx", "python3-httpx"}, {"cryptography", "python3-cryptography"},
	} {
		if err := exec.Command(debianPython, "-c", "import "+m.module).Run(); err != nil {
			missing = append(missing, m.pkg)
		}
	}
	if len(missing) > 0 {
		t.Skipf("interop: Debian packages missing for %s: %s (.ci/run installs them)", debianPython, strings.Join(missing, " "))
	}

	s := startServer(t)
	s.createUser(t, testUser, testPassword)
	c := s.createClient(t, "--name", "fastapi", "--grant-type", "client_credentials", "--grant-type", "password",
		"--audience", testAudience)
	other := s.createClient(t, "--name", "elsewhere", "--grant-type", "client_credentials",
		"--audience", "https://elsewhere.example")
	api := startFastAPI(t, s.URL, testAudience)

	t.Run("PyJWKClient default leeway: every token accepted right after issue", func(t *testing.T) {
		issueAndVerify(t, s, c, func(token string) error {
			status, body := callMe(t, api, token)
			if status != http.StatusOK {
				return fmt.Errorf("GET /me: %d %s", status, body)
			}
			return nil
		})
	})
	t.Run("password grant token identifies the user", func(t *testing.T) {
		form := map[string][]string{"grant_type": {"password"}, "username": {testUser}, "password": {testPassword}}
		status, body := s.postForm(t, "/oauth2/token", form, c.ID, c.Secret)
		var tr tokenResponse
		if status != http.StatusOK || json.Unmarshal(body, &tr) != nil {
			t.Fatalf("password grant: %d %s", status, body)
		}
		status, body = callMe(t, api, tr.AccessToken)
		var me struct{ Username string }
		if status != http.StatusOK || json.Unmarshal(body, &me) != nil || me.Username != testUser {
			t.Fatalf("GET /me: %d %s", status, body)
		}
	})
	t.Run("a token for another audience is refused", func(t *testing.T) {
		status, body := callMe(t, api, s.clientCredentialsToken(t, other, "").AccessToken)
		if status != http.StatusUnauthorized || !strings.Contains(string(body), "InvalidAudienceError") {
			t.Fatalf("GET /me: %d %s", status, body)
		}
	})
}

// startFastAPI starts the FastAPI resource server and waits (at most 60 s)
// until it answers.
func startFastAPI(t *testing.T, issuer, audience string) string {
	t.Helper()
	_, port, _ := net.SplitHostPort(freeAddr(t))
	cmd := exec.Command(debianPython, "python/resource_server.py", issuer, audience, port)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start FastAPI: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("FastAPI output:\n%s", out.String())
		}
	})
	base := "http://127.0.0.1:" + port
	for deadline := time.Now().Add(60 * time.Second); ; {
		select {
		case <-done:
			t.Fatalf("FastAPI exited:\n%s", out.String())
		default:
		}
		if resp, err := http.Get(base + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("FastAPI not up after 60 s:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// callMe calls GET /me with a Bearer token.
func callMe(t *testing.T, api, token string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, api+"/me", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /me: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}
