package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/configs"
	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// The end-to-end tests build the real binaries once and run them as
// separate processes on loopback, as users do.
var (
	portcullis proctest.Portcullis
	userapi    proctest.UserAPI
)

func TestMain(m *testing.M) {
	bin, removePortcullis, err := proctest.Build(".")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	apiBin, removeUserAPI, err := proctest.Build("../userapi")
	if err != nil {
		removePortcullis()
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	portcullis, userapi = proctest.Portcullis(bin), proctest.UserAPI(apiBin)
	code := m.Run()
	removePortcullis()
	removeUserAPI()
	os.Exit(code)
}

// clientCacheTTL is the servers' client_cache.ttl (the default): the bound
// on how long a change that another process (the CLI) makes to a client
// goes unnoticed by a running server.
var clientCacheTTL = configs.Default().ClientCache.TTL

// withinClientCacheTTL waits for a running server to honour a change the
// CLI made to a client, the CLI having returned at changed: it repeats the
// request in seen until seen reports the change, and fails the test if a
// request sent more than client_cache.ttl after changed still did not. No
// request sent after the bound may see the old client, however slow the
// machine; seen must not fail the test on the old answer.
func withinClientCacheTTL(t *testing.T, changed time.Time, what string, seen func() bool) {
	t.Helper()
	for {
		sent := time.Now()
		if seen() {
			return
		}
		if sent.Sub(changed) > clientCacheTTL {
			t.Fatalf("%s: still not honoured by a request sent %s after the CLI changed the client (client_cache.ttl %s)",
				what, sent.Sub(changed).Round(time.Millisecond), clientCacheTTL)
		}
		time.Sleep(clientCacheTTL / 20)
	}
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

// me calls GET /users/me with token and returns the status, body and
// WWW-Authenticate header.
func me(t testing.TB, userAPI, token string) (int, []byte, string) {
	t.Helper()
	r := proctest.Do(t, http.MethodGet, userAPI+"/users/me", "", nil, "Authorization", "Bearer "+token)
	return r.Status, r.Body, r.Header.Get("WWW-Authenticate")
}
