package main

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// docBlock returns the first code block after marker in the file at path:
// a ```sh fence, or (indented) lines starting with four spaces.
func docBlock(t *testing.T, path, marker string) string {
	t.Helper()
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), marker)
	if !ok {
		t.Fatalf("%s has no %q", path, marker)
	}
	if _, fenced, ok := strings.Cut(rest, "```sh\n"); ok && strings.Index(rest, "```sh\n") < strings.Index(rest, "\n    ") {
		block, _, _ := strings.Cut(fenced, "```")
		return block
	}
	var lines []string
	started := false
	for _, line := range strings.Split(rest, "\n") {
		switch {
		case strings.HasPrefix(line, "    "):
			started = true
			lines = append(lines, line[4:])
		case started && line == "":
			lines = append(lines, "")
		case started:
			return strings.Join(lines, "\n")
		}
	}
	return strings.Join(lines, "\n")
}

// runDoc runs a documentation block with bash -euo pipefail, with the
// quickstart's URLs replaced by a real server's and userapi's, and the
// server's environment (so CLI commands work on its database). It returns
// stdout.
func runDoc(t *testing.T, block string, srv *proctest.Server, apiURL string, more ...string) string {
	t.Helper()
	script := strings.NewReplacer(append([]string{
		"http://localhost:8080", srv.URL, "http://localhost:8090", apiURL,
		"go run ./cmd/portcullis", string(portcullis),
	}, more...)...).Replace(block)
	cmd := exec.CommandContext(t.Context(), "bash", "-euo", "pipefail", "-c", script)
	cmd.Env = srv.Env()
	var stderr strings.Builder
	cmd.Stderr = &stderr // the CLI's debug log (tests run servers at level debug)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, out, stderr.String())
	}
	return string(out)
}

// startUserAPI starts the real userapi for srv with its default audience
// (its own URL), as the quickstart does.
func startUserAPI(t *testing.T, srv *proctest.Server) string {
	t.Helper()
	addr := proctest.FreeAddr(t)
	p := proctest.Start(t, string(userapi), []string{"PATH=" + os.Getenv("PATH")}, "--issuer", srv.URL, "--addr", addr)
	if err := p.WaitHTTP("http://"+addr+"/health/alive", http.StatusOK); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

// TestREADMEQuickstart runs the README quickstart's third terminal word for
// word (the two servers' URLs and `go run` aside) against the real server
// and userapi: sign-up, a client, the password grant, /users/me.
func TestREADMEQuickstart(t *testing.T) {
	srv := portcullis.Serve(t)
	api := startUserAPI(t, srv)
	out := runDoc(t, docBlock(t, "../../README.md", "Terminal 3"), srv, api)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var me map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &me); err != nil || me["username"] != "alice" {
		t.Fatalf("quickstart printed %s", out)
	}
}

// TestDeployWalkthrough runs deploy/README.md's "Try it" commands word for
// word against a local server instead of the compose replicas (`$P` is the
// local binary, on the server's database): the password policy accepts its
// password, CLIENT_ID and CLIENT_SECRET are set by the commands, and no jq
// is needed.
func TestDeployWalkthrough(t *testing.T) {
	srv := portcullis.Serve(t)
	api := startUserAPI(t, srv)
	block := docBlock(t, "../../deploy/README.md", "Try it:")
	if !strings.Contains(block, `P="docker compose exec -T portcullis-1 /portcullis"`) {
		t.Fatalf("the walkthrough changed; update this test:\n%s", block)
	}
	out := runDoc(t, block, srv, api, `P="docker compose exec -T portcullis-1 /portcullis"`, `P="`+string(portcullis)+`"`)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var me map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &me); err != nil || me["username"] != "alice" || me["scope"] != "profile" {
		t.Fatalf("walkthrough printed %s", out)
	}
}
