package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// adminToken registers an admin client and returns a token with scope admin.
func adminToken(t *testing.T, srv *proctest.Server) string {
	t.Helper()
	adm := srv.CreateClient(t, "--name", "admin", "--grant-type", "client_credentials", "--scope", "admin")
	cc := &clientcredentials.Config{ClientID: adm.ClientID, ClientSecret: adm.ClientSecret,
		TokenURL: srv.URL + "/oauth2/token", Scopes: []string{"admin"}, AuthStyle: oauth2.AuthStyleInHeader}
	tok, err := cc.Token(t.Context())
	if err != nil {
		t.Fatalf("admin token: %v", err)
	}
	return tok.AccessToken
}

func adminDo(t *testing.T, srv *proctest.Server, token, method, path string, out any) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, srv.AdminURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

// TestKeyRotationUnderLoad keeps several goroutines fetching fresh tokens
// and calling userapi while the signing key is rotated three times through
// the admin API with pre-publication (as scheduled rotation does): not a
// single verification may fail. Windows are shortened
// (published 8 s before signing, JWKS max-age 1 s) so the test is quick;
// the invariant prepublication > JWKS max-age + userapi's refresh interval
// is the same as with the defaults.
func TestKeyRotationUnderLoad(t *testing.T) {
	srv := portcullis.Serve(t,
		"PORTCULLIS_KEYS_PREPUBLICATION=8s", "PORTCULLIS_KEYS_JWKS_MAX_AGE=1s",
		"PORTCULLIS_KEYS_RELOAD_INTERVAL=1s", "PORTCULLIS_RATE_LIMIT_TOKEN_PER_IP=0",
		"PORTCULLIS_LOG_LEVEL=info")
	api := userapi.Serve(t, srv.URL, audience)
	admin := adminToken(t, srv)
	signup(t, srv.URL, "rita", "purple otter lamp 42")
	cl := srv.CreateClient(t, "--name", "app", "--public", "--audience", audience)
	conf := &oauth2.Config{ClientID: cl.ClientID, Endpoint: oauth2.Endpoint{TokenURL: srv.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}

	var ok, failed atomic.Int64
	var kids sync.Map
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				// A fresh token per request, so each carries the kid that
				// signs right now (client_credentials would do as well).
				fresh, err := conf.PasswordCredentialsToken(t.Context(), "rita", "purple otter lamp 42")
				if err != nil {
					t.Errorf("token: %v", err)
					return
				}
				h, _ := proctest.DecodeJWT(t, fresh.AccessToken)
				kids.Store(h["kid"], true)
				status, body, _ := me(t, api, fresh.AccessToken)
				if status == http.StatusOK {
					ok.Add(1)
				} else {
					failed.Add(1)
					t.Errorf("kid %v: %d %s", h["kid"], status, body)
				}
			}
		})
	}
	for i := range 3 {
		var rot struct {
			KID         string    `json:"kid"`
			ActivatesAt time.Time `json:"activates_at"`
		}
		if status := adminDo(t, srv, admin, http.MethodPost, "/admin/keys/rotate?prepublish=true", &rot); status != http.StatusCreated {
			t.Fatalf("rotation %d: status %d", i, status)
		}
		// Wait until tokens carry the new kid, then a little longer.
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, seen := kids.Load(rot.KID); seen {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rotation %d: key %s never started signing", i, rot.KID)
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	n := 0
	kids.Range(func(any, any) bool { n++; return true })
	t.Logf("%d verifications, %d failed, %d distinct signing keys", ok.Load(), failed.Load(), n)
	if failed.Load() != 0 || n != 4 || ok.Load() == 0 {
		t.Fatalf("%d failed verifications across %d keys", failed.Load(), n)
	}

	// Each rotation replaced the ES256 and the RS256 key. The RS256 key of
	// the last rotation may activate a moment after the ES256 one the loop
	// waited for (it is created second), so poll briefly.
	var states map[string]int
	deadline := time.Now().Add(10 * time.Second)
	for {
		var listed []map[string]any
		if status := adminDo(t, srv, admin, http.MethodGet, "/admin/keys", &listed); status != http.StatusOK || len(listed) != 8 {
			t.Fatalf("GET /admin/keys: %d, %d keys", status, len(listed))
		}
		states = map[string]int{}
		for _, k := range listed {
			states[fmt.Sprint(k["alg"], " ", k["state"])]++
		}
		if states["ES256 active"] == 1 && states["ES256 retired"] == 3 && states["RS256 active"] == 1 && states["RS256 retired"] == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("states = %v", states)
		}
		time.Sleep(200 * time.Millisecond)
	}

	t.Run("issuer down", func(t *testing.T) {
		// A token userapi has not seen yet, verified with cached keys
		// after the authorization server is gone.
		fresh, err := conf.PasswordCredentialsToken(t.Context(), "rita", "purple otter lamp 42")
		if err != nil {
			t.Fatal(err)
		}
		srv.Stop()
		time.Sleep(1500 * time.Millisecond) // past the JWKS max-age
		if status, body, _ := me(t, api, fresh.AccessToken); status != http.StatusOK {
			t.Fatalf("userapi with the issuer down: %d %s", status, body)
		}
	})
}
