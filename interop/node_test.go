package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNode runs interop/node/interop.mjs — panva jose's jwtVerify and
// openid-client, at their defaults — against a real server, after npm ci
// from the committed lockfile. Each line the script prints becomes a
// subtest. The DPoP checks (openid-client's own DPoP) also use a userapi
// for the server and a second server that demands DPoP nonces.
func TestNode(t *testing.T) {
	node, npm := lookTool(t, "node"), lookTool(t, "npm")
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", ".npmrc", "interop.mjs"} {
		b, err := os.ReadFile(filepath.Join("node", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}

	s := portcullis.Serve(t)
	const aud = "https://api.example.test"
	s.CreateUser(t, "alice", "purple otter lamp 42")
	// Registered without an auth method: openid-client's default,
	// client_secret_post, works as well as Basic.
	conf := s.CreateClient(t, "--name", "node-confidential", "--grant-type", "password", "--grant-type", "refresh_token",
		"--grant-type", "client_credentials", "--audience", aud)
	pub := s.CreateClient(t, "--name", "node-public", "--public", "--grant-type", "password", "--grant-type", "refresh_token",
		"--audience", aud)
	intro := s.CreateClient(t, "--name", "node-introspector", "--grant-type", "client_credentials", "--introspect")
	// DPoP: userapi takes the bound tokens of s; a second server demands
	// DPoP nonces (RFC 9449 §8).
	api := userapi.Serve(t, s.URL, aud)
	ns := portcullis.Serve(t, "PORTCULLIS_DPOP_NONCE=true")
	ns.CreateUser(t, "alice", "purple otter lamp 42")
	npub := ns.CreateClient(t, "--name", "node-public-nonce", "--public", "--grant-type", "password", "--grant-type", "refresh_token",
		"--audience", aud)
	settings, _ := json.Marshal(map[string]any{
		"issuer": s.URL, "audience": aud, "username": "alice", "password": "purple otter lamp 42",
		"confidential": map[string]string{"id": conf.ClientID, "secret": conf.ClientSecret},
		"public":       map[string]string{"id": pub.ClientID},
		"introspector": map[string]string{"id": intro.ClientID, "secret": intro.ClientSecret},
		"userapi":      api,
		"nonce":        map[string]any{"issuer": ns.URL, "public": map[string]string{"id": npub.ClientID}},
	})
	run := exec.CommandContext(ctx, node, "interop.mjs")
	run.Dir = dir
	run.Env = append(os.Environ(), "PORTCULLIS_INTEROP="+string(settings))
	var stderr bytes.Buffer
	run.Stderr = &stderr
	out, err := run.Output()
	reportLines(t, out)
	if err != nil {
		t.Fatalf("node interop.mjs: %v\nstderr: %s", err, stderr.Bytes())
	}
}

// reportLines turns "ok NAME" and "FAIL NAME :: reason" lines into subtests
// and logs other lines.
func reportLines(t *testing.T, out []byte) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(out))
	checks := 0
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "ok "):
			checks++
			t.Run(strings.TrimPrefix(line, "ok "), func(t *testing.T) {})
		case strings.HasPrefix(line, "FAIL "):
			checks++
			name, reason, _ := strings.Cut(strings.TrimPrefix(line, "FAIL "), " :: ")
			t.Run(name, func(t *testing.T) { t.Error(reason) })
		default:
			t.Log(line)
		}
	}
	if checks == 0 {
		t.Errorf("the script reported no checks:\n%s", out)
	}
}

// lookTool returns the path of a program on PATH, skipping the test with a
// message naming it when it is missing.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("interop: %s is not installed (%v); this interop test needs it", name, err)
	}
	return p
}
