package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/internal/proctest"
	"github.com/portcullis-auth/portcullis/internal/testkit"
)

// debianPython is the interpreter Debian's python3-fastapi, python3-jwt
// and python3-uvicorn install into (.ci/run installs them); a python3
// earlier on PATH (pyenv, a virtualenv) may not see them.
const debianPython = "/usr/bin/python3"

// fastAPIDir is the FastAPI example, deploy/examples/fastapi.
const fastAPIDir = "../../deploy/examples/fastapi"

// requireFastAPI skips the test, saying what to install, unless
// debianPython imports the modules the FastAPI example needs.
func requireFastAPI(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(debianPython); err != nil {
		t.Skipf("FastAPI example: %s not found: install python3-fastapi python3-jwt python3-uvicorn python3-cryptography (.ci/run does)", debianPython)
	}
	if out, err := exec.Command(debianPython, "-c", "import fastapi, jwt, uvicorn, cryptography").CombinedOutput(); err != nil {
		t.Skipf("FastAPI example: %s cannot import fastapi, jwt, uvicorn, cryptography (install python3-fastapi python3-jwt python3-uvicorn python3-cryptography; .ci/run does): %s",
			debianPython, strings.TrimSpace(string(out)))
	}
}

// startFastAPI starts the example with `python3 -m uvicorn app:app` on a
// free port, configured through its environment to verify tokens of
// issuer, and waits until it answers. It returns the example's base URL
// as its audience defaults to it: http://localhost:PORT.
func startFastAPI(t *testing.T, issuer string) string {
	t.Helper()
	return onFreePort(t, func(port string) *proctest.Process {
		return proctest.Start(t, debianPython,
			[]string{"PATH=" + os.Getenv("PATH"), "PYTHONDONTWRITEBYTECODE=1", "PORTCULLIS_ISSUER_URL=" + issuer, "API_PORT=" + port},
			"-m", "uvicorn", "app:app", "--app-dir", fastAPIDir, "--host", "127.0.0.1", "--port", port)
	})
}

// onFreePort starts the FastAPI example with start on a free port, waits
// until its /health answers and returns http://localhost:PORT. It starts
// again on another port, a bounded number of times, when the port was
// taken meanwhile.
func onFreePort(t *testing.T, start func(port string) *proctest.Process) string {
	t.Helper()
	for attempt := 1; ; attempt++ {
		_, port, _ := net.SplitHostPort(proctest.FreeAddr(t))
		p := start(port)
		base := "http://localhost:" + port
		err := p.WaitHTTP(base+"/health", http.StatusOK)
		if err == nil {
			return base
		}
		if attempt < 3 && strings.Contains(p.Output(), "address already in use") {
			continue
		}
		t.Fatal(err)
	}
}

// passwordToken runs the password grant for a public client, with scope
// unless it is empty, and returns the access token.
func passwordToken(t *testing.T, srv *proctest.Server, clientID, username, scope string) string {
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "client_id": {clientID}, "username": {username}, "password": {alicePW}}
	if scope != "" {
		form.Set("scope", scope)
	}
	return proctest.MustToken(t, proctest.PostForm(t, srv.URL+"/oauth2/token", form.Encode())).AccessToken
}

// callAPI sends GET path to the example with a Bearer token (none when
// empty).
func callAPI(t *testing.T, api, path, token string) proctest.Response {
	t.Helper()
	var header []string
	if token != "" {
		header = []string{"Authorization", "Bearer " + token}
	}
	return proctest.Do(t, http.MethodGet, api+path, "", nil, header...)
}

// wantAPI fails the test unless r has status and, when challenge is
// set, a WWW-Authenticate header containing it.
func wantAPI(t *testing.T, r proctest.Response, status int, challenge string) {
	t.Helper()
	got := r.Header.Get("WWW-Authenticate")
	if r.Status != status || !strings.Contains(got, challenge) {
		t.Fatalf("got %d (WWW-Authenticate %q) %s; want %d with %q", r.Status, got, r.Body, status, challenge)
	}
}

// TestFastAPIExample runs deploy/examples/fastapi against the real server:
// tokens from the password grant are verified by PyJWT through the
// issuer's metadata and JWKS; audience, expiry (waited for for real),
// scopes and roles are enforced with RFC 6750 answers.
func TestFastAPIExample(t *testing.T) {
	requireFastAPI(t)
	t.Parallel()
	// Short-lived tokens, so that the expiry check waits for a real one;
	// long enough that the other checks use their tokens well before.
	srv := portcullis.Serve(t, "PORTCULLIS_ACCESS_TOKEN_TTL=10s")
	srv.CreateUser(t, "alice", alicePW, "staff")
	srv.CreateUser(t, "bob", alicePW)
	api := startFastAPI(t, srv.URL)
	app := srv.CreateClient(t, "--name", "fastapi", "--public", "--scope", "items", "--audience", api, "--cors-origin", api)
	noScope := srv.CreateClient(t, "--name", "no-items", "--public", "--audience", api)
	elsewhere := srv.CreateClient(t, "--name", "elsewhere", "--public", "--audience", "https://elsewhere.example")
	svc := srv.CreateClient(t, "--name", "svc", "--grant-type", "client_credentials", "--audience", api)

	t.Run("GET /users/me answers the user the token names", func(t *testing.T) {
		r := callAPI(t, api, "/users/me", passwordToken(t, srv, app.ClientID, "alice", ""))
		var me struct {
			ID        string   `json:"id"`
			Username  string   `json:"username"`
			Roles     []string `json:"roles"`
			Scope     string   `json:"scope"`
			ClientID  string   `json:"client_id"`
			ExpiresAt string   `json:"expires_at"`
		}
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &me) != nil {
			t.Fatalf("GET /users/me: %d %s", r.Status, r.Body)
		}
		if me.Username != "alice" || me.ID == "" || me.ID == "alice" || fmt.Sprint(me.Roles) != "[staff]" ||
			me.Scope != "items" || me.ClientID != app.ClientID {
			t.Fatalf("GET /users/me: %s", r.Body)
		}
		if _, err := time.Parse(time.RFC3339, me.ExpiresAt); err != nil {
			t.Fatalf("expires_at %q: %v", me.ExpiresAt, err)
		}
	})
	t.Run("no token: 401 Bearer challenge", func(t *testing.T) {
		wantAPI(t, callAPI(t, api, "/users/me", ""), http.StatusUnauthorized, "Bearer")
	})
	t.Run("a token for another audience: 401", func(t *testing.T) {
		wantAPI(t, callAPI(t, api, "/users/me", passwordToken(t, srv, elsewhere.ClientID, "alice", "")),
			http.StatusUnauthorized, `error="invalid_token"`)
	})
	t.Run("a client's own token identifies no user: 403", func(t *testing.T) {
		wantAPI(t, callAPI(t, api, "/users/me", srv.ClientCredentialsToken(t, svc, "").AccessToken),
			http.StatusForbidden, `error="insufficient_scope"`)
	})
	t.Run("scope items: 403 insufficient_scope without it, 200 with it", func(t *testing.T) {
		without := passwordToken(t, srv, noScope.ClientID, "alice", "")
		wantAPI(t, callAPI(t, api, "/users/me", without), http.StatusOK, "")
		wantAPI(t, callAPI(t, api, "/users/me/items", without), http.StatusForbidden, `error="insufficient_scope"`)
		wantAPI(t, callAPI(t, api, "/users/me/items", without), http.StatusForbidden, `scope="items"`)
		r := callAPI(t, api, "/users/me/items", passwordToken(t, srv, app.ClientID, "alice", "items"))
		wantAPI(t, r, http.StatusOK, "")
		if !strings.Contains(string(r.Body), `"owner":"alice"`) {
			t.Fatalf("GET /users/me/items: %s", r.Body)
		}
	})
	t.Run("role staff: 403 without it, 200 with it", func(t *testing.T) {
		wantAPI(t, callAPI(t, api, "/staff", passwordToken(t, srv, app.ClientID, "bob", "")), http.StatusForbidden, `error="insufficient_scope"`)
		wantAPI(t, callAPI(t, api, "/staff", passwordToken(t, srv, app.ClientID, "alice", "")), http.StatusOK, "")
	})
	t.Run("Swagger UI's password flow posts to Portcullis's token endpoint", func(t *testing.T) {
		_, _, meta := proctest.GetJSON(t, srv.URL+"/.well-known/oauth-authorization-server", nil)
		var doc struct {
			Components struct {
				SecuritySchemes map[string]struct {
					Flows struct {
						Password struct {
							TokenURL string            `json:"tokenUrl"`
							Scopes   map[string]string `json:"scopes"`
						} `json:"password"`
					} `json:"flows"`
				} `json:"securitySchemes"`
			} `json:"components"`
		}
		r := callAPI(t, api, "/openapi.json", "")
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &doc) != nil {
			t.Fatalf("GET /openapi.json: %d %s", r.Status, r.Body)
		}
		flow := doc.Components.SecuritySchemes["OAuth2PasswordBearer"].Flows.Password
		if flow.TokenURL != meta["token_endpoint"] || flow.TokenURL == "" || flow.Scopes["items"] == "" {
			t.Fatalf("password flow %+v; token_endpoint %v", flow, meta["token_endpoint"])
		}
	})
	t.Run("Swagger UI on the API's origin may read the token response (CORS)", func(t *testing.T) {
		pre := proctest.Do(t, http.MethodOptions, srv.URL+"/oauth2/token", "", nil, "Origin", api,
			"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type,x-requested-with")
		if got := pre.Header.Get("Access-Control-Allow-Origin"); got != api {
			t.Fatalf("preflight: %d, Access-Control-Allow-Origin %q", pre.Status, got)
		}
		// What Swagger UI's Authorize dialog sends for a public client.
		form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePW}, "scope": {"items"}}
		r := proctest.PostForm(t, srv.URL+"/oauth2/token", form.Encode(), "Origin", api, "X-Requested-With", "XMLHttpRequest",
			"Authorization", proctest.BasicAuth(app.ClientID, ""))
		if got := r.Header.Get("Access-Control-Allow-Origin"); r.Status != http.StatusOK || got != api {
			t.Fatalf("token: %d, Access-Control-Allow-Origin %q: %s", r.Status, got, r.Body)
		}
		wantAPI(t, callAPI(t, api, "/users/me/items", proctest.MustToken(t, r).AccessToken), http.StatusOK, "")
	})
	t.Run("an expired token: 401, once exp has passed for real", func(t *testing.T) {
		token := passwordToken(t, srv, app.ClientID, "alice", "")
		wantAPI(t, callAPI(t, api, "/users/me", token), http.StatusOK, "")
		_, claims := proctest.DecodeJWT(t, token)
		exp, _ := claims["exp"].(float64)
		// PyJWT refuses a token once its clock, in whole seconds, reaches exp.
		time.Sleep(time.Until(time.Unix(int64(exp)+1, 0)))
		wantAPI(t, callAPI(t, api, "/users/me", token), http.StatusUnauthorized, `error_description="token expired"`)
	})
}

// TestFastAPIExampleRefusesForgedTokens signs tokens the real server never
// issues with a fake issuer's keys: the example takes only RFC 9068 access
// tokens signed with ES256 or RS256, within their validity, for its
// issuer and audience, and not DPoP-bound ones, which it cannot check.
func TestFastAPIExampleRefusesForgedTokens(t *testing.T) {
	requireFastAPI(t)
	t.Parallel()
	is := testkit.NewIssuer(t)
	es256, rs256, eddsa := is.AddKey(t, jose.ES256), is.AddKey(t, jose.RS256), is.AddKey(t, jose.EdDSA)
	api := startFastAPI(t, is.URL())
	now := time.Now().Unix()
	claims := func(change func(map[string]any)) map[string]any {
		c := map[string]any{"iss": is.URL(), "aud": api, "sub": "u-1", "client_id": "c-1", "preferred_username": "carol",
			"scope": "items", "iat": now, "exp": now + 300, "jti": strconv.FormatInt(now, 10)}
		if change != nil {
			change(c)
		}
		return c
	}
	for _, tc := range []struct {
		name      string
		tok       testkit.Token
		status    int
		challenge string
	}{
		{"ES256 access token", testkit.Token{KeyID: es256, Claims: claims(nil)}, http.StatusOK, ""},
		{"RS256 access token", testkit.Token{KeyID: rs256, Claims: claims(nil)}, http.StatusOK, ""},
		{"typ JWT", testkit.Token{KeyID: es256, Header: map[string]any{"typ": "JWT"}, Claims: claims(nil)}, http.StatusUnauthorized, `error="invalid_token"`},
		{"no typ", testkit.Token{KeyID: es256, Header: map[string]any{"typ": nil}, Claims: claims(nil)}, http.StatusUnauthorized, `error="invalid_token"`},
		{"EdDSA", testkit.Token{KeyID: eddsa, Claims: claims(nil)}, http.StatusUnauthorized, `error="invalid_token"`},
		{"another issuer", testkit.Token{KeyID: es256, Claims: claims(func(c map[string]any) { c["iss"] = "https://elsewhere.example" })}, http.StatusUnauthorized, `error="invalid_token"`},
		{"another audience", testkit.Token{KeyID: es256, Claims: claims(func(c map[string]any) { c["aud"] = "https://elsewhere.example" })}, http.StatusUnauthorized, `error="invalid_token"`},
		{"expired a second ago", testkit.Token{KeyID: es256, Claims: claims(func(c map[string]any) { c["exp"] = now - 1 })}, http.StatusUnauthorized, `error_description="token expired"`},
		{"not yet valid", testkit.Token{KeyID: es256, Claims: claims(func(c map[string]any) { c["nbf"] = now + 120 })}, http.StatusUnauthorized, `error="invalid_token"`},
		{"no exp", testkit.Token{KeyID: es256, Claims: claims(func(c map[string]any) { delete(c, "exp") })}, http.StatusUnauthorized, `error="invalid_token"`},
		{"DPoP-bound", testkit.Token{KeyID: es256, Claims: claims(func(c map[string]any) {
			c["cnf"] = map[string]string{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}
		})}, http.StatusUnauthorized, `error="invalid_token"`},
		{"no preferred_username", testkit.Token{KeyID: es256, Claims: claims(func(c map[string]any) { delete(c, "preferred_username") })}, http.StatusForbidden, `error="insufficient_scope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantAPI(t, callAPI(t, api, "/users/me", is.Sign(t, tc.tok)), tc.status, tc.challenge)
		})
	}
	t.Run("metadata naming another issuer: 503, no token taken", func(t *testing.T) {
		other := testkit.NewIssuer(t)
		kid := other.AddKey(t, jose.ES256)
		other.SetMetadataIssuer("https://elsewhere.example")
		api := startFastAPI(t, other.URL())
		tok := other.Sign(t, testkit.Token{KeyID: kid, Claims: claims(func(c map[string]any) { c["iss"], c["aud"] = other.URL(), api })})
		wantAPI(t, callAPI(t, api, "/users/me", tok), http.StatusServiceUnavailable, "")
	})
}

// TestFastAPIGuideWalkthrough runs deploy/examples/fastapi/README.md's
// commands word for word after the main README's Quickstart (a server and
// its user alice): the server block in the background, then the
// walkthrough block. Only the quickstart's URLs and ports and the `go run`
// command (the built binary, on the server's database) are substituted;
// python3 is Debian's (/usr/bin first on PATH).
func TestFastAPIGuideWalkthrough(t *testing.T) {
	requireFastAPI(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("the FastAPI guide's walkthrough needs curl, which is not installed")
	}
	t.Parallel()
	guide, err := os.ReadFile(fastAPIDir + "/README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := func(start, end string) string {
		_, b, ok := strings.Cut(string(guide), start)
		b, _, ok2 := strings.Cut(b, end)
		if !ok || !ok2 {
			t.Fatalf("the FastAPI guide has no block %q", start)
		}
		return b
	}
	serverBlock := block("<!-- fastapi server -->\n```sh\n", "```\n")
	walkthrough := block("<!-- fastapi walkthrough -->\n```sh\n", "```\n<!-- end fastapi walkthrough -->")

	srv := portcullis.Serve(t)
	srv.CreateUser(t, "alice", alicePW) // the Quickstart's sign-up
	env := append(srv.Env(), "PATH=/usr/bin:"+os.Getenv("PATH"), "PYTHONDONTWRITEBYTECODE=1")
	var subst *strings.Replacer
	onFreePort(t, func(port string) *proctest.Process {
		subst = strings.NewReplacer("http://localhost:8080", srv.URL, "localhost:8000", "localhost:"+port,
			"--port 8000", "--port "+port, "go run ./cmd/portcullis", string(portcullis))
		return proctest.Start(t, "bash", env, "-c", "cd ../.. && exec "+strings.TrimSpace(subst.Replace(serverBlock)))
	})
	cmd := exec.CommandContext(t.Context(), "bash", "-euo", "pipefail", "-c", subst.Replace(walkthrough))
	cmd.Dir = "../.."
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr // the CLI's debug log (tests run servers at level debug)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("walkthrough: %v\n%s\n%s", err, out, stderr.String())
	}
	// set-roles prints the user, then come the three answers.
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 4 || !regexp.MustCompile(`(?m)^roles: +staff$`).Match(out) {
		t.Fatalf("walkthrough printed %d lines, want the user and 3 answers:\n%s", len(lines), out)
	}
	lines = lines[len(lines)-3:]
	var me struct {
		Username string   `json:"username"`
		Roles    []string `json:"roles"`
		Scope    string   `json:"scope"`
	}
	var items []struct {
		Owner string `json:"owner"`
	}
	var staff struct {
		Message string `json:"message"`
	}
	if json.Unmarshal([]byte(lines[0]), &me) != nil || me.Username != "alice" || fmt.Sprint(me.Roles) != "[staff]" || me.Scope != "items" {
		t.Fatalf("GET /users/me printed %s", lines[0])
	}
	if json.Unmarshal([]byte(lines[1]), &items) != nil || len(items) != 1 || items[0].Owner != "alice" {
		t.Fatalf("GET /users/me/items printed %s", lines[1])
	}
	if json.Unmarshal([]byte(lines[2]), &staff) != nil || !strings.Contains(staff.Message, "alice") {
		t.Fatalf("GET /staff printed %s", lines[2])
	}
}
