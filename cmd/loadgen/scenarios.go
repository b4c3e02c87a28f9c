package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/oauth/dpop"
)

// credentials are a confidential client's ID and secret.
type credentials struct{ id, secret string }

// parseCredentials reads "ID:SECRET".
func parseCredentials(s string) (credentials, error) {
	id, secret, ok := strings.Cut(s, ":")
	if !ok || id == "" || secret == "" {
		return credentials{}, errors.New("want ID:SECRET")
	}
	return credentials{id, secret}, nil
}

// basic is the Authorization header of client_secret_basic (RFC 6749
// §2.3.1: both parts form-encoded, then base64).
func (c credentials) basic() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(c.id)+":"+url.QueryEscape(c.secret)))
}

// targets are what the scenarios talk to; an empty field disables the
// scenarios that need it.
type targets struct {
	url          string      // portcullis public base URL
	replicas     []string    // base URLs of every replica when there are several (url is the first)
	userapi      string      // userapi base URL
	service      credentials // confidential client allowed client_credentials
	introspector credentials // confidential client with introspection_allowed
	publicClient string      // client allowed password and refresh_token, whose tokens userapi accepts
	username     string      // "%d" is replaced by the worker's index
	password     string
}

// harness is the state scenarios share during one loadgen invocation: the
// targets, the HTTP client of the current load run, loadgen's own trivial
// server and the argon2id hash the argon2 scenario verifies.
type harness struct {
	targets
	client  *http.Client
	trivial string // base URL of the trivial server

	phcOnce sync.Once
	phc     string
	phcErr  error
	hasher  *identity.PasswordHasher
}

// connect gives the harness a fresh client for n workers.
func (h *harness) connect(n int) { h.client = newClient(n) }

// disconnect closes the current client's idle connections.
func (h *harness) disconnect() {
	if h.client != nil {
		h.client.CloseIdleConnections()
	}
}

// trivialEnv, set to 1 in loadgen's environment, makes it serve only the
// trivial handler (serveTrivialChild): the child process serveTrivial
// starts.
const trivialEnv = "PORTCULLIS_LOADGEN_TRIVIAL_SERVER"

// serveTrivial starts the trivial handler in a child process (loadgen
// itself, run with trivialEnv=1), so that it is measured as the servers
// are: a separate process on loopback competing for the same cores, not a
// handler inside the load generator. It is stopped when ctx ends.
func (h *harness) serveTrivial(ctx context.Context) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("trivial server: %w", err)
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), trivialEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("trivial server: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("trivial server: %w", err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("trivial server: %w", err)
	}
	go func() { _ = cmd.Wait() }()
	context.AfterFunc(ctx, func() { _ = stdin.Close() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return fmt.Errorf("trivial server: no address: %w", err)
	}
	addr := strings.TrimSpace(line)
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("trivial server: bad address %q", addr)
	}
	h.trivial = "http://" + addr
	return nil
}

// serveTrivialChild serves the trivial handler (a small JSON body, like
// /health/alive) on a loopback port, prints the address on stdout and
// returns when stdin is closed (the parent ended).
func serveTrivialChild(stdin io.Reader, stdout io.Writer) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	body := []byte(`{"status":"ok"}` + "\n")
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		}),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }()
	if _, err := fmt.Fprintln(stdout, ln.Addr().String()); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, stdin)
	return srv.Close()
}

// user returns worker i's username.
func (h *harness) user(i int) string {
	return strings.ReplaceAll(h.username, "%d", strconv.Itoa(i))
}

// tokenResponse is the part of an RFC 6749 §5.1 response loadgen reads.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
}

// login does worker i's password grant.
func (h *harness) login(ctx context.Context, i int) (tokenResponse, error) {
	form := url.Values{"grant_type": {"password"}, "client_id": {h.publicClient}, "username": {h.user(i)}, "password": {h.password}}
	return h.token(ctx, form.Encode(), "")
}

// token posts a token request to the first replica and decodes a
// successful answer.
func (h *harness) token(ctx context.Context, body, auth string) (tokenResponse, error) {
	var buf bytes.Buffer
	return h.tokenAt(ctx, h.url+"/oauth2/token", body, auth, &buf)
}

// tokenAt posts a token request to u, reading the answer into buf, and
// decodes a successful answer.
func (h *harness) tokenAt(ctx context.Context, u, body, auth string, buf *bytes.Buffer, header ...string) (tokenResponse, error) {
	if err := h.do(ctx, http.MethodPost, u, body, auth, buf, header...); err != nil {
		return tokenResponse{}, err
	}
	var t tokenResponse
	if err := json.Unmarshal(buf.Bytes(), &t); err != nil || t.AccessToken == "" {
		return tokenResponse{}, fmt.Errorf("token response %.200q: no access_token", buf.Bytes())
	}
	return t, nil
}

// do sends one request (a form body when body is not empty, auth as the
// Authorization header when not empty, header as name, value pairs) and
// reads the answer into buf, which it resets. A status other than 200 is
// an error.
func (h *harness) do(ctx context.Context, method, u, body, auth string, buf *bytes.Buffer, header ...string) error {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	buf.Reset()
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return fmt.Errorf("%s %s: reading the body: %w", method, u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: status %d: %.200q", method, req.URL.Path, resp.StatusCode, buf.Bytes())
	}
	return nil
}

// expect returns an op doing one request and checking that the body
// contains want (nothing when want is nil).
func (h *harness) expect(method, u, body, auth string, want []byte) op {
	return h.expectEach(method, []string{u}, body, auth, want)
}

// expectEach is expect sending each request to the next of urls in turn.
func (h *harness) expectEach(method string, urls []string, body, auth string, want []byte) op {
	var buf bytes.Buffer
	var n int
	return func(ctx context.Context) error {
		u := urls[n%len(urls)]
		n++
		if err := h.do(ctx, method, u, body, auth, &buf); err != nil {
			return err
		}
		if want != nil && !bytes.Contains(buf.Bytes(), want) {
			return fmt.Errorf("%s %s: body %.200q lacks %s", method, u, buf.Bytes(), want)
		}
		return nil
	}
}

// spread returns path at every replica (just -url when there is one),
// starting with worker i's: each worker sends its successive requests to
// successive replicas, as a round-robin load balancer would, and the
// workers start on different ones.
func (h *harness) spread(i int, path string) []string {
	bases := h.replicas
	if len(bases) == 0 {
		bases = []string{h.url}
	}
	out := make([]string, len(bases))
	for k := range bases {
		out[k] = bases[(i+k)%len(bases)] + path
	}
	return out
}

// need reports an error naming the flag when a target is missing.
func need(value, flag string) error {
	if value == "" {
		return fmt.Errorf("needs %s", flag)
	}
	return nil
}

// scenarios lists every scenario, in the order bench runs them: each ratio
// of issue 9 compares a scenario with its baseline (jwks to trivial,
// password to argon2, usersme to userapi_trivial), which directly
// precedes it, so that they run interleaved (runAll).
func scenarios() []scenario {
	return []scenario{
		{name: "trivial", prepare: func(_ context.Context, h *harness, _ int) (op, error) {
			return h.expect(http.MethodGet, h.trivial+"/", "", "", nil), nil
		}},
		{name: "jwks", baseline: "trivial", prepare: func(_ context.Context, h *harness, i int) (op, error) {
			if err := need(h.url, "-url"); err != nil {
				return nil, err
			}
			return h.expectEach(http.MethodGet, h.spread(i, "/.well-known/jwks.json"), "", "", []byte(`"keys"`)), nil
		}},
		{name: "client_credentials", prepare: func(_ context.Context, h *harness, i int) (op, error) {
			if err := errors.Join(need(h.url, "-url"), need(h.service.id, "-client")); err != nil {
				return nil, err
			}
			return h.expectEach(http.MethodPost, h.spread(i, "/oauth2/token"), "grant_type=client_credentials", h.service.basic(), []byte(`"access_token"`)), nil
		}},
		{name: "introspect", prepare: func(ctx context.Context, h *harness, i int) (op, error) {
			if err := errors.Join(need(h.url, "-url"), need(h.service.id, "-client"), need(h.introspector.id, "-introspector")); err != nil {
				return nil, err
			}
			t, err := h.token(ctx, "grant_type=client_credentials", h.service.basic())
			if err != nil {
				return nil, err
			}
			body := url.Values{"token": {t.AccessToken}, "token_type_hint": {"access_token"}}.Encode()
			return h.expectEach(http.MethodPost, h.spread(i, "/oauth2/introspect"), body, h.introspector.basic(), []byte(`"active":true`)), nil
		}},
		{name: "refresh", prepare: func(ctx context.Context, h *harness, i int) (op, error) {
			if err := errors.Join(need(h.url, "-url"), need(h.publicClient, "-public-client"), need(h.username, "-username")); err != nil {
				return nil, err
			}
			t, err := h.login(ctx, i)
			if err != nil {
				return nil, err
			}
			if t.RefreshToken == "" {
				return nil, errors.New("the password grant issued no refresh token")
			}
			rt, client, urls := t.RefreshToken, h.publicClient, h.spread(i, "/oauth2/token")
			var buf bytes.Buffer
			var n int
			return func(ctx context.Context) error {
				form := url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {rt}}
				next, err := h.tokenAt(ctx, urls[n%len(urls)], form.Encode(), "", &buf)
				n++
				if err != nil {
					return err
				}
				if next.RefreshToken == "" {
					return errors.New("refresh issued no new refresh token")
				}
				rt = next.RefreshToken
				return nil
			}, nil
		}},
		{name: "argon2", maxWorkers: runtime.GOMAXPROCS(0), prepare: func(_ context.Context, h *harness, _ int) (op, error) {
			h.phcOnce.Do(func() {
				h.hasher = identity.NewPasswordHasher(identity.DefaultArgon2Params())
				h.phc, h.phcErr = h.hasher.Hash(argon2Password)
			})
			if h.phcErr != nil {
				return nil, h.phcErr
			}
			return func(context.Context) error {
				ok, _, err := h.hasher.Verify(argon2Password, h.phc)
				if err != nil || !ok {
					return fmt.Errorf("argon2id verify: ok %v, %w", ok, err)
				}
				return nil
			}, nil
		}},
		{name: "password", baseline: "argon2", prepare: func(_ context.Context, h *harness, i int) (op, error) {
			if err := errors.Join(need(h.url, "-url"), need(h.publicClient, "-public-client"), need(h.username, "-username")); err != nil {
				return nil, err
			}
			form := url.Values{"grant_type": {"password"}, "client_id": {h.publicClient}, "username": {h.user(i)}, "password": {h.password}}
			return h.expectEach(http.MethodPost, h.spread(i, "/oauth2/token"), form.Encode(), "", []byte(`"access_token"`)), nil
		}},
		{name: "userapi_trivial", prepare: func(ctx context.Context, h *harness, i int) (op, error) {
			auth, err := h.userBearer(ctx, i)
			if err != nil {
				return nil, err
			}
			return h.expect(http.MethodGet, h.userapi+"/health/alive", "", auth, nil), nil
		}},
		{name: "usersme", baseline: "userapi_trivial", prepare: func(ctx context.Context, h *harness, i int) (op, error) {
			auth, err := h.userBearer(ctx, i)
			if err != nil {
				return nil, err
			}
			return h.expect(http.MethodGet, h.userapi+"/users/me", "", auth, []byte(`"username"`)), nil
		}},
		{name: "usersme_dpop", baseline: "usersme", prepare: func(ctx context.Context, h *harness, i int) (op, error) {
			if err := errors.Join(need(h.url, "-url"), need(h.userapi, "-userapi"), need(h.publicClient, "-public-client"), need(h.username, "-username")); err != nil {
				return nil, err
			}
			// Worker i's own key and DPoP-bound token; every request then
			// signs a new proof (ES256, with ath), as a DPoP client does.
			key, err := dpop.GenerateKey()
			if err != nil {
				return nil, err
			}
			tokenURL := h.url + "/oauth2/token"
			proof, err := key.Proof(http.MethodPost, tokenURL, "", "")
			if err != nil {
				return nil, err
			}
			form := url.Values{"grant_type": {"password"}, "client_id": {h.publicClient}, "username": {h.user(i)}, "password": {h.password}}
			var buf bytes.Buffer
			t, err := h.tokenAt(ctx, tokenURL, form.Encode(), "", &buf, dpop.HeaderName, proof)
			if err != nil {
				return nil, err
			}
			if t.TokenType != dpop.Scheme {
				return nil, fmt.Errorf("the password grant with a DPoP proof issued token_type %q", t.TokenType)
			}
			me, auth := h.userapi+"/users/me", dpop.Scheme+" "+t.AccessToken
			return func(ctx context.Context) error {
				p, err := key.Proof(http.MethodGet, me, t.AccessToken, "")
				if err != nil {
					return err
				}
				if err := h.do(ctx, http.MethodGet, me, "", auth, &buf, dpop.HeaderName, p); err != nil {
					return err
				}
				if !bytes.Contains(buf.Bytes(), []byte(`"username"`)) {
					return fmt.Errorf("GET %s: body %.200q lacks the username", me, buf.Bytes())
				}
				return nil
			}, nil
		}},
	}
}

// argon2Password is what the argon2 scenario hashes and verifies.
const argon2Password = "purple otter lamp 42"

// userBearer logs worker i in and returns its access token as an
// Authorization header for userapi.
func (h *harness) userBearer(ctx context.Context, i int) (string, error) {
	if err := errors.Join(need(h.url, "-url"), need(h.userapi, "-userapi"), need(h.publicClient, "-public-client"), need(h.username, "-username")); err != nil {
		return "", err
	}
	t, err := h.login(ctx, i)
	if err != nil {
		return "", err
	}
	return "Bearer " + t.AccessToken, nil
}

// scenarioNames returns the names of every scenario.
func scenarioNames() []string {
	var names []string
	for _, s := range scenarios() {
		names = append(names, s.name)
	}
	return names
}
