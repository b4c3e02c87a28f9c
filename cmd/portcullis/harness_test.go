package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"

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
