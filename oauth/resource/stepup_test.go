package resource_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/oauth/resource"
)

// stepUpChallenge is the start of every step-up refusal's challenge
// params (RFC 9470 §3).
const stepUpChallenge = `error="insufficient_user_authentication", error_description="A different authentication level is required."`

func TestRequireAuthentication(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	clock := &fakeClock{t: testNow}
	v := newDPoPVerifier(is, clock, resource.DPoPOptions{})
	strict := resource.NewVerifier(resource.NewRemoteKeySet(is.URL(), resource.RemoteOptions{
		HTTPClient: is.Client(), Now: clock.Now, UnknownKIDWait: 10 * time.Second,
	}), resource.Options{Issuer: is.URL(), Audience: testAudience, Now: clock.Now, Leeway: -1})
	key := newProofKey(t)

	// token mints a user token with the given acr, amr and auth_time
	// (each omitted when empty or zero).
	token := func(acr string, amr []string, authAgo time.Duration, mod ...func(map[string]any)) string {
		return mint(t, is, mintOpts{kid: kid, claims: func(c map[string]any) {
			if acr != "" {
				c["acr"] = acr
			}
			if amr != nil {
				c["amr"] = amr
			}
			if authAgo != 0 {
				c["auth_time"] = testNow.Add(-authAgo).Unix()
			}
			for _, m := range mod {
				m(c)
			}
		}})
	}
	mfa := []string{"mfa", "otp", "pwd"}
	clientToken := mint(t, is, mintOpts{kid: kid, claims: func(c map[string]any) {
		delete(c, "roles")
		delete(c, "preferred_username")
		c["sub"] = c["client_id"]
	}})
	acr2 := resource.StepUp{ACRValues: []string{"2"}}
	fresh := resource.StepUp{MaxAge: 5 * time.Minute}
	ok := dpopResponse{200, nil, "", "sub=user-123"}
	refused := func(scheme, params string) dpopResponse {
		return dpopResponse{401, []string{scheme + " " + stepUpChallenge + params}, "insufficient_user_authentication", ""}
	}

	tests := []struct {
		name  string
		v     *resource.Verifier // default v
		step  resource.StepUp
		token string
		want  dpopResponse
	}{
		{"acr required and present", v, acr2, token("2", mfa, time.Minute), ok},
		{"acr one of several", v, resource.StepUp{ACRValues: []string{"2", "3"}}, token("3", nil, 0), ok},
		{"no acr", v, acr2, token("", nil, 0), refused("Bearer", `, acr_values="2"`)},
		{"acr too low", v, acr2, token("1", []string{"pwd"}, time.Minute), refused("Bearer", `, acr_values="2"`)},
		{"acr matched case-sensitively", v, resource.StepUp{ACRValues: []string{"urn:acr:mfa"}}, token("URN:ACR:MFA", nil, 0),
			refused("Bearer", `, acr_values="urn:acr:mfa"`)},
		{"acr values in order, unsafe characters dropped", v, resource.StepUp{ACRValues: []string{"3", "2\"\\\x01é"}}, token("1", nil, 0),
			refused("Bearer", `, acr_values="3 2"`)},
		{"empty acr value does not match a token without acr", v, resource.StepUp{ACRValues: []string{""}}, token("", nil, 0),
			refused("Bearer", `, acr_values=""`)},
		{"client_credentials token has no acr", v, acr2, clientToken, refused("Bearer", `, acr_values="2"`)},

		{"amr all present", v, resource.StepUp{AMR: []string{"otp", "pwd"}}, token("2", mfa, 0), ok},
		{"amr one missing: no acr_values or max_age to name", v, resource.StepUp{AMR: []string{"otp", "pwd"}}, token("1", []string{"pwd"}, 0),
			refused("Bearer", "")},
		{"amr absent", v, resource.StepUp{AMR: []string{"pwd"}}, token("1", nil, 0), refused("Bearer", "")},

		{"auth_time recent", v, fresh, token("", nil, 4*time.Minute), ok},
		{"auth_time exactly max_age ago", v, fresh, token("", nil, 5*time.Minute), ok},
		{"auth_time max_age plus the leeway ago", v, fresh, token("", nil, 5*time.Minute+resource.DefaultLeeway), ok},
		{"auth_time too old", v, fresh, token("2", mfa, 5*time.Minute+resource.DefaultLeeway+time.Second), refused("Bearer", ", max_age=300")},
		{"auth_time missing", v, fresh, token("2", mfa, 0), refused("Bearer", ", max_age=300")},
		{"auth_time in the future within the leeway", v, fresh, token("", nil, -10*time.Second), ok},
		{"no leeway: a second beyond max_age", strict, fresh, token("", nil, 5*time.Minute+time.Second), refused("Bearer", ", max_age=300")},
		{"no leeway: exactly max_age", strict, fresh, token("", nil, 5*time.Minute), ok},
		{"max_age in whole seconds, rounded down", v, resource.StepUp{MaxAge: 90500 * time.Millisecond}, token("", nil, time.Hour),
			refused("Bearer", ", max_age=90")},
		{"negative MaxAge is not checked", v, resource.StepUp{MaxAge: -time.Minute}, token("", nil, 0), ok},

		{"acr and max_age both named", v, resource.StepUp{ACRValues: []string{"2", "3"}, MaxAge: 10 * time.Minute}, token("2", mfa, time.Hour),
			refused("Bearer", `, acr_values="2 3", max_age=600`)},
		{"acr and max_age both met", v, resource.StepUp{ACRValues: []string{"2"}, AMR: []string{"mfa"}, MaxAge: 10 * time.Minute},
			token("2", mfa, time.Minute), ok},
		{"zero StepUp lets every token through", v, resource.StepUp{}, clientToken, dpopResponse{200, nil, "", "sub=web-app"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(http.MethodGet, testURL, nil)
			req.Header.Set("Authorization", "Bearer "+tt.token)
			rec := httptest.NewRecorder()
			resource.Middleware(tt.v)(tt.v.RequireAuthentication(tt.step)(echoSubject)).ServeHTTP(rec, req)
			tt.want.check(t, rec)
		})
	}

	// A DPoP-bound token is answered in the DPoP scheme, with algs.
	dpopTests := []struct {
		name  string
		step  resource.StepUp
		token string
		want  dpopResponse
	}{
		{"bound token meets the requirement", acr2, token("2", mfa, time.Minute, bound(key.jkt)),
			dpopResponse{200, nil, "", "sub=user-123 jkt=" + key.jkt}},
		{"bound token without acr", acr2, token("", nil, 0, bound(key.jkt)), refused("DPoP", `, acr_values="2", `+allAlgs)},
		{"bound token too old", resource.StepUp{ACRValues: []string{"2"}, MaxAge: 5 * time.Minute}, token("2", mfa, time.Hour, bound(key.jkt)),
			refused("DPoP", `, acr_values="2", max_age=300, `+allAlgs)},
		{"bound token lacking a method", resource.StepUp{AMR: []string{"hwk"}}, token("2", mfa, 0, bound(key.jkt)), refused("DPoP", ", "+allAlgs)},
	}
	for _, tt := range dpopTests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(http.MethodGet, testURL, nil)
			req.Header.Set("Authorization", "DPoP "+tt.token)
			req.Header.Set("DPoP", key.proof(t, tt.token, nil))
			rec := httptest.NewRecorder()
			resource.Middleware(v)(v.RequireAuthentication(tt.step)(echoDPoP)).ServeHTTP(rec, req)
			tt.want.check(t, rec)
		})
	}

	t.Run("without Middleware fails closed", func(t *testing.T) {
		t.Parallel()
		req := httptest.NewRequest(http.MethodGet, testURL, nil)
		req.Header.Set("Authorization", "Bearer "+token("2", mfa, time.Minute))
		rec := httptest.NewRecorder()
		v.RequireAuthentication(acr2)(echoSubject).ServeHTTP(rec, req)
		dpopResponse{401, []string{"Bearer"}, "unauthorized", ""}.check(t, rec)
	})
	t.Run("the requirement is copied", func(t *testing.T) {
		t.Parallel()
		step := resource.StepUp{ACRValues: []string{"2"}, AMR: []string{"otp"}}
		h := resource.Middleware(v)(v.RequireAuthentication(step)(echoSubject))
		step.ACRValues[0], step.AMR[0] = "1", "pwd"
		req := httptest.NewRequest(http.MethodGet, testURL, nil)
		req.Header.Set("Authorization", "Bearer "+token("1", []string{"pwd"}, 0))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		refused("Bearer", `, acr_values="2"`).check(t, rec)
	})
}

// TestRequireAuthenticationDPoPDisabled: with DPoP disabled, a bound token
// never gets past Middleware, and unbound ones get Bearer challenges
// without algs.
func TestRequireAuthenticationDPoPDisabled(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	v := newDPoPVerifier(is, &fakeClock{t: testNow}, resource.DPoPOptions{Disabled: true})
	tok := mint(t, is, mintOpts{kid: kid, claims: func(c map[string]any) { c["acr"] = "1" }})
	req := httptest.NewRequest(http.MethodGet, testURL, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	resource.Middleware(v)(v.RequireAuthentication(resource.StepUp{ACRValues: []string{"2"}})(echoSubject)).ServeHTTP(rec, req)
	dpopResponse{401, []string{`Bearer ` + stepUpChallenge + `, acr_values="2"`}, "insufficient_user_authentication", ""}.check(t, rec)
}
