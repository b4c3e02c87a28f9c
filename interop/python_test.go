package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/internal/proctest"
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

	s := portcullis.Serve(t)
	s.CreateUser(t, testUser, testPassword)
	c := s.CreateClient(t, "--name", "fastapi", "--grant-type", "client_credentials", "--grant-type", "password",
		"--audience", testAudience)
	other := s.CreateClient(t, "--name", "elsewhere", "--grant-type", "client_credentials",
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
		form := url.Values{"grant_type": {"password"}, "username": {testUser}, "password": {testPassword}}
		r := proctest.PostForm(t, s.URL+"/oauth2/token", form.Encode(), "Authorization", proctest.BasicAuth(c.ClientID, c.ClientSecret))
		status, body := r.Status, r.Body
		var tr proctest.Token
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
		status, body := callMe(t, api, s.ClientCredentialsToken(t, other, "").AccessToken)
		if status != http.StatusUnauthorized || !strings.Contains(string(body), "InvalidAudienceError") {
			t.Fatalf("GET /me: %d %s", status, body)
		}
	})
}

// startFastAPI starts the FastAPI resource server and waits (at most 60 s)
// until it answers.
func startFastAPI(t *testing.T, issuer, audience string) string {
	t.Helper()
	_, port, _ := net.SplitHostPort(proctest.FreeAddr(t))
	p := proctest.Start(t, debianPython, append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1"),
		"python/resource_server.py", issuer, audience, port)
	base := "http://127.0.0.1:" + port
	if err := p.WaitHTTP(base+"/health", http.StatusOK); err != nil {
		t.Fatalf("FastAPI: %v", err)
	}
	return base
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
