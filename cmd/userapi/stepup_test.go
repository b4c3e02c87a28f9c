package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/internal/proctest"
	"github.com/portcullis-auth/portcullis/oauth/dpop"
)

// stepUpDesc is the fixed error_description of an RFC 9470 refusal.
const stepUpDesc = "A different authentication level is required."

// TestBinaryStepUp runs the real userapi executable, once with the
// default step-up requirement (acr "2", no max_age) and once with
// --step-up-acr "2,3" --step-up-max-age 5m, and checks GET
// /users/me/security with tokens signed by a test issuer carrying the acr,
// amr and auth_time Portcullis puts in user tokens (RFC 9470, RFC 8176).
func TestBinaryStepUp(t *testing.T) {
	t.Parallel()
	fi := newFakeIssuer(t)
	bin := proctest.UserAPI(userapiBinary(t))
	const aud = "http://api.test"
	defaults := bin.Serve(t, fi.URL(), aud, "--unknown-kid-wait", "10s")
	fresh := bin.Serve(t, fi.URL(), aud, "--unknown-kid-wait", "10s", "--step-up-acr", "2,3", "--step-up-max-age", "5m")

	key, err := dpop.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	dpopClient := &http.Client{Transport: dpop.NewTransport(key, nil)}
	t.Cleanup(dpopClient.CloseIdleConnections)
	algs := `algs="` + strings.Join(dpop.SupportedAlgorithms, " ") + `"`

	now := time.Now()
	mfa := []string{"mfa", "otp", "pwd"}
	// token returns a user token with acr, amr and auth_time (each left
	// out when empty or zero), bound to key when bound is set.
	token := func(acr string, amr []string, authTime time.Time, bound bool) string {
		c := userClaims(fi, aud)
		if acr != "" {
			c["acr"] = acr
		}
		if amr != nil {
			c["amr"] = amr
		}
		if !authTime.IsZero() {
			c["auth_time"] = authTime.Unix()
		}
		if bound {
			c["cnf"] = map[string]any{"jkt": key.Thumbprint()}
		}
		return mint(t, fi, c, "k1", nil)
	}
	svc := userClaims(fi, aud)
	delete(svc, "preferred_username")
	delete(svc, "roles")
	svc["sub"], svc["acr"] = "cli-1", "2"
	clientToken := mint(t, fi, svc, "k1", nil)

	refused := func(scheme, params string) []string {
		return []string{scheme + ` error="insufficient_user_authentication", error_description="` + stepUpDesc + `"` + params}
	}
	stepUpBody := map[string]any{"error": "insufficient_user_authentication", "error_description": stepUpDesc}
	tests := []struct {
		name       string
		url        string
		dpop       bool // DPoP scheme with proofs; Bearer otherwise
		token      string
		wantStatus int
		wantChall  []string       // every WWW-Authenticate value, exactly
		wantBody   map[string]any // exact JSON
	}{
		{"no acr", defaults + "/users/me/security", false, token("", nil, time.Time{}, false),
			401, refused("Bearer", `, acr_values="2"`), stepUpBody},
		{"acr 1", defaults + "/users/me/security", false, token("1", []string{"pwd"}, now, false),
			401, refused("Bearer", `, acr_values="2"`), stepUpBody},
		{"acr 2", defaults + "/users/me/security", false, token("2", mfa, now, false), 200, nil,
			map[string]any{"sub": "user-42", "preferred_username": "alice", "acr": "2", "amr": mfa, "auth_time": now.Unix()}},
		{"acr 2 without amr and auth_time", defaults + "/users/me/security", false, token("2", nil, time.Time{}, false), 200, nil,
			map[string]any{"sub": "user-42", "preferred_username": "alice", "acr": "2", "amr": []string{}, "auth_time": nil}},
		{"acr 1 is enough for /users/me", defaults + "/users/me", false, token("1", []string{"pwd"}, now, false), 200, nil, nil},
		{"client_credentials token: not a user, whatever its acr", defaults + "/users/me/security", false, clientToken, 403,
			[]string{`Bearer error="insufficient_scope", error_description="token does not identify a user"`},
			map[string]any{"error": "insufficient_scope", "error_description": "token does not identify a user"}},

		{"max_age: auth_time too old", fresh + "/users/me/security", false, token("2", mfa, now.Add(-time.Hour), false),
			401, refused("Bearer", `, acr_values="2 3", max_age=300`), stepUpBody},
		{"max_age: auth_time missing", fresh + "/users/me/security", false, token("3", mfa, time.Time{}, false),
			401, refused("Bearer", `, acr_values="2 3", max_age=300`), stepUpBody},
		{"max_age: acr 1 and recent", fresh + "/users/me/security", false, token("1", []string{"pwd"}, now, false),
			401, refused("Bearer", `, acr_values="2 3", max_age=300`), stepUpBody},
		{"max_age: acr 3 and recent", fresh + "/users/me/security", false, token("3", mfa, now.Add(-time.Minute), false), 200, nil,
			map[string]any{"sub": "user-42", "preferred_username": "alice", "acr": "3", "amr": mfa, "auth_time": now.Add(-time.Minute).Unix()}},

		{"DPoP-bound token, acr 1", defaults + "/users/me/security", true, token("1", []string{"pwd"}, now, true),
			401, refused("DPoP", `, acr_values="2", `+algs), stepUpBody},
		{"DPoP-bound token, too old", fresh + "/users/me/security", true, token("2", mfa, now.Add(-time.Hour), true),
			401, refused("DPoP", `, acr_values="2 3", max_age=300, `+algs), stepUpBody},
		{"DPoP-bound token, acr 2", defaults + "/users/me/security", true, token("2", mfa, now, true), 200, nil,
			map[string]any{"sub": "user-42", "preferred_username": "alice", "acr": "2", "amr": mfa, "auth_time": now.Unix()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client, scheme := http.DefaultClient, "Bearer "
			if tt.dpop {
				client, scheme = dpopClient, "DPoP "
			}
			status, hdr, got := proctest.GetJSONVia(t, client, tt.url, http.Header{"Authorization": {scheme + tt.token}})
			if status != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %v; WWW-Authenticate %q", status, tt.wantStatus, got, hdr.Values("WWW-Authenticate"))
			}
			if ch := hdr.Values("WWW-Authenticate"); strings.Join(ch, "\n") != strings.Join(tt.wantChall, "\n") {
				t.Errorf("WWW-Authenticate =\n %q\nwant\n %q", ch, tt.wantChall)
			}
			if ct, cc := hdr.Get("Content-Type"), hdr.Get("Cache-Control"); ct != "application/json" || cc != "no-store" {
				t.Errorf("Content-Type %q, Cache-Control %q; want application/json, no-store", ct, cc)
			}
			if tt.wantBody != nil {
				gj, _ := json.Marshal(got)
				wj, _ := json.Marshal(tt.wantBody)
				if string(gj) != string(wj) {
					t.Errorf("body = %s, want %s", gj, wj)
				}
			}
		})
	}

	t.Run("wrong method", func(t *testing.T) {
		t.Parallel()
		r := proctest.Do(t, http.MethodPost, defaults+"/users/me/security", "", nil)
		if r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, HEAD" {
			t.Fatalf("POST: %d (Allow %q), want 405 with Allow GET, HEAD", r.Status, r.Header.Get("Allow"))
		}
	})
}
