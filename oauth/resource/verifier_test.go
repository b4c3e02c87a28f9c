package resource_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/internal/testkit"
	"github.com/portcullis-auth/portcullis/oauth/resource"
)

func TestVerify(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	es := is.AddKey(t, jose.ES256)
	rs := is.AddKey(t, jose.RS256)
	ed := is.AddKey(t, jose.EdDSA)
	unpublished := testkit.GenerateKey(t, jose.ES256)
	rsPub, err := x509.MarshalPKIXPublicKey(is.PrivateKey(rs).Public().Key)
	if err != nil {
		t.Fatal(err)
	}
	valid := mint(t, is, mintOpts{kid: es})
	parts := strings.Split(valid, ".")
	set := func(k string, v any) func(map[string]any) { return func(c map[string]any) { c[k] = v } }
	del := func(k string) func(map[string]any) { return func(c map[string]any) { delete(c, k) } }
	rename := func(from, to string) func(map[string]any) {
		return func(c map[string]any) { c[to] = c[from]; delete(c, from) }
	}
	// withMember returns the default claims with member (raw JSON) appended,
	// to build payloads a map cannot: duplicate member names.
	withMember := func(member string) []byte {
		b, err := json.Marshal(defaultClaims(is))
		if err != nil {
			t.Fatal(err)
		}
		return append(b[:len(b)-1], ","+member+"}"...)
	}
	esHeader := `{"alg":"ES256","kid":"` + es + `","typ":"at+jwt"`
	defaultPayload, _ := json.Marshal(defaultClaims(is))

	tests := []struct {
		name    string
		token   string
		wantErr error // nil: must verify
	}{
		// Positive cases.
		{"ES256", valid, nil},
		{"RS256", mint(t, is, mintOpts{kid: rs}), nil},
		{"EdDSA", mint(t, is, mintOpts{kid: ed}), nil},
		{"typ application/at+jwt, mixed case", mint(t, is, mintOpts{kid: es, headers: map[string]any{"typ": "Application/AT+JWT"}}), nil},
		{"aud as a plain string", mint(t, is, mintOpts{kid: es, claims: set("aud", testAudience)}), nil},
		{"client credentials token", mint(t, is, mintOpts{kid: es, claims: func(c map[string]any) {
			delete(c, "roles")
			delete(c, "preferred_username")
			c["sub"] = "web-app"
		}}), nil},
		{"expired within leeway", mint(t, is, mintOpts{kid: es, claims: set("exp", testNow.Add(-10*time.Second).Unix())}), nil},
		{"nbf absent", mint(t, is, mintOpts{kid: es, claims: del("nbf")}), nil},

		// Algorithm confusion.
		{"alg none, empty signature", unsigned(map[string]any{"alg": "none", "kid": es, "typ": "at+jwt"}, defaultClaims(is), ""), resource.ErrMalformed},
		{"alg none, signature present", unsigned(map[string]any{"alg": "none", "kid": es, "typ": "at+jwt"}, defaultClaims(is), parts[2]), resource.ErrAlgorithm},
		{"HS256 signed with the RSA public key", mint(t, is, mintOpts{kid: rs, alg: jose.HS256, signKey: rsPub}), resource.ErrAlgorithm},
		{"RS256 header on an ES256 key", mint(t, is, mintOpts{kid: es, alg: jose.RS256, signKey: is.PrivateKey(rs).Key}), resource.ErrAlgorithm},
		{"ES256 header on an RS256 key", mint(t, is, mintOpts{kid: rs, alg: jose.ES256, signKey: is.PrivateKey(es).Key}), resource.ErrAlgorithm},
		{"EdDSA header on an ES256 key", mint(t, is, mintOpts{kid: es, alg: jose.EdDSA, signKey: is.PrivateKey(ed).Key}), resource.ErrAlgorithm},
		{"signed by an unpublished key under a known kid", mint(t, is, mintOpts{kid: es, signKey: unpublished}), resource.ErrSignature},

		// kid handling.
		{"unknown kid", mint(t, is, mintOpts{kid: es, headers: map[string]any{"kid": "no-such-key"}}), resource.ErrUnknownKey},
		{"kid path traversal", mint(t, is, mintOpts{kid: es, headers: map[string]any{"kid": "../../etc/passwd"}}), resource.ErrUnknownKey},
		{"kid empty", mint(t, is, mintOpts{kid: es, headers: map[string]any{"kid": ""}}), resource.ErrMalformed},
		{"kid missing", mint(t, is, mintOpts{kid: es, headers: map[string]any{"kid": nil}}), resource.ErrMalformed},
		{"kid very long", mint(t, is, mintOpts{kid: es, headers: map[string]any{"kid": strings.Repeat("k", 2000)}}), resource.ErrMalformed},

		// Header checks.
		{"typ JWT", mint(t, is, mintOpts{kid: es, headers: map[string]any{"typ": "JWT"}}), resource.ErrUnsupportedType},
		{"typ missing", mint(t, is, mintOpts{kid: es, headers: map[string]any{"typ": nil}}), resource.ErrUnsupportedType},
		{"crit header", mint(t, is, mintOpts{kid: es, critical: []string{"exp"}, headers: map[string]any{"exp": 1}}), resource.ErrCriticalHeader},

		// Time claims.
		{"expired", mint(t, is, mintOpts{kid: es, claims: set("exp", testNow.Add(-time.Minute).Unix())}), resource.ErrExpired},
		{"not yet valid", mint(t, is, mintOpts{kid: es, claims: set("nbf", testNow.Add(time.Minute).Unix())}), resource.ErrNotYetValid},
		{"iat in the future", mint(t, is, mintOpts{kid: es, claims: set("iat", testNow.Add(time.Minute).Unix())}), resource.ErrIssuedInFuture},
		{"exp missing", mint(t, is, mintOpts{kid: es, claims: del("exp")}), resource.ErrMissingClaim},
		{"iat missing", mint(t, is, mintOpts{kid: es, claims: del("iat")}), resource.ErrMissingClaim},
		{"exp not a number", mint(t, is, mintOpts{kid: es, claims: set("exp", "tomorrow")}), resource.ErrMalformed},
		{"expired just beyond the default leeway", mint(t, is, mintOpts{kid: es, claims: set("exp", testNow.Add(-resource.DefaultLeeway-time.Second).Unix())}), resource.ErrExpired},
		{"expired exactly at the leeway", mint(t, is, mintOpts{kid: es, claims: set("exp", testNow.Add(-resource.DefaultLeeway).Unix())}), resource.ErrExpired},

		// Claim names are case-sensitive (RFC 7519 §4): a case variant is
		// another, unknown claim.
		{"SUB is not sub", mint(t, is, mintOpts{kid: es, claims: rename("sub", "SUB")}), resource.ErrMissingClaim},
		{"Exp is not exp", mint(t, is, mintOpts{kid: es, claims: rename("exp", "Exp")}), resource.ErrMissingClaim},
		{"IAT is not iat", mint(t, is, mintOpts{kid: es, claims: rename("iat", "IAT")}), resource.ErrMissingClaim},
		{"Client_ID is not client_id", mint(t, is, mintOpts{kid: es, claims: rename("client_id", "Client_ID")}), resource.ErrMissingClaim},
		{"JTI is not jti", mint(t, is, mintOpts{kid: es, claims: rename("jti", "JTI")}), resource.ErrMissingClaim},
		{"ISS is not iss", mint(t, is, mintOpts{kid: es, claims: rename("iss", "ISS")}), resource.ErrIssuer},
		{"Aud is not aud", mint(t, is, mintOpts{kid: es, claims: rename("aud", "Aud")}), resource.ErrAudience},
		{"JTI beside jti is ignored", mint(t, is, mintOpts{kid: es, claims: set("JTI", "other")}), nil},
		{"ISS beside iss is ignored", mint(t, is, mintOpts{kid: es, claims: set("ISS", "https://evil.example")}), nil},
		{"unknown claims of any type are ignored", mint(t, is, mintOpts{kid: es, claims: set("x", map[string]any{"a": []any{1, nil}})}), nil},
		{"roles absent", mint(t, is, mintOpts{kid: es, claims: del("roles")}), nil},
		{"roles empty", mint(t, is, mintOpts{kid: es, claims: set("roles", []string{})}), nil},
		{"aud empty string among others", mint(t, is, mintOpts{kid: es, claims: set("aud", []string{"", testAudience})}), nil},

		// Registered claims must have their JSON type (RFC 7519 §4.1:
		// NumericDate is a JSON number, StringOrURI a string).
		{"exp a numeric string", mint(t, is, mintOpts{kid: es, claims: set("exp", "9999999999")}), resource.ErrMalformed},
		{"iat a numeric string", mint(t, is, mintOpts{kid: es, claims: set("iat", fmt.Sprint(testNow.Unix()))}), resource.ErrMalformed},
		{"nbf a numeric string", mint(t, is, mintOpts{kid: es, claims: set("nbf", fmt.Sprint(testNow.Unix()))}), resource.ErrMalformed},
		{"exp null", mint(t, is, mintOpts{kid: es, claims: set("exp", nil)}), resource.ErrMalformed},
		{"nbf null", mint(t, is, mintOpts{kid: es, claims: set("nbf", nil)}), resource.ErrMalformed},
		{"exp a boolean", mint(t, is, mintOpts{kid: es, claims: set("exp", true)}), resource.ErrMalformed},
		{"exp an array", mint(t, is, mintOpts{kid: es, claims: set("exp", []int64{testNow.Add(time.Hour).Unix()})}), resource.ErrMalformed},
		{"iss null", mint(t, is, mintOpts{kid: es, claims: set("iss", nil)}), resource.ErrMalformed},
		{"sub null", mint(t, is, mintOpts{kid: es, claims: set("sub", nil)}), resource.ErrMalformed},
		{"sub a number", mint(t, is, mintOpts{kid: es, claims: set("sub", 123)}), resource.ErrMalformed},
		{"client_id an array", mint(t, is, mintOpts{kid: es, claims: set("client_id", []string{"web-app"})}), resource.ErrMalformed},
		{"jti a number", mint(t, is, mintOpts{kid: es, claims: set("jti", 1)}), resource.ErrMalformed},
		{"scope an array", mint(t, is, mintOpts{kid: es, claims: set("scope", []string{"openid"})}), resource.ErrMalformed},
		{"scope null", mint(t, is, mintOpts{kid: es, claims: set("scope", nil)}), resource.ErrMalformed},
		{"preferred_username null", mint(t, is, mintOpts{kid: es, claims: set("preferred_username", nil)}), resource.ErrMalformed},
		{"preferred_username an object", mint(t, is, mintOpts{kid: es, claims: set("preferred_username", map[string]string{"a": "b"})}), resource.ErrMalformed},
		{"aud null", mint(t, is, mintOpts{kid: es, claims: set("aud", nil)}), resource.ErrMalformed},
		{"aud an object", mint(t, is, mintOpts{kid: es, claims: set("aud", map[string]string{"a": testAudience})}), resource.ErrMalformed},
		{"aud with a number", mint(t, is, mintOpts{kid: es, claims: set("aud", []any{testAudience, 1})}), resource.ErrMalformed},
		{"aud with null", mint(t, is, mintOpts{kid: es, claims: set("aud", []any{testAudience, nil})}), resource.ErrMalformed},
		{"roles a string", mint(t, is, mintOpts{kid: es, claims: set("roles", "admin")}), resource.ErrMalformed},
		{"roles null", mint(t, is, mintOpts{kid: es, claims: set("roles", nil)}), resource.ErrMalformed},
		{"roles with null", mint(t, is, mintOpts{kid: es, claims: set("roles", []any{"admin", nil})}), resource.ErrMalformed},
		{"roles with a number", mint(t, is, mintOpts{kid: es, claims: set("roles", []any{"admin", 7})}), resource.ErrMalformed},
		{"acr a number", mint(t, is, mintOpts{kid: es, claims: set("acr", 2)}), resource.ErrMalformed},
		{"acr null", mint(t, is, mintOpts{kid: es, claims: set("acr", nil)}), resource.ErrMalformed},
		{"acr an array", mint(t, is, mintOpts{kid: es, claims: set("acr", []string{"2"})}), resource.ErrMalformed},
		{"amr a string", mint(t, is, mintOpts{kid: es, claims: set("amr", "pwd")}), resource.ErrMalformed},
		{"amr null", mint(t, is, mintOpts{kid: es, claims: set("amr", nil)}), resource.ErrMalformed},
		{"amr with a number", mint(t, is, mintOpts{kid: es, claims: set("amr", []any{"pwd", 1})}), resource.ErrMalformed},
		{"amr an object", mint(t, is, mintOpts{kid: es, claims: set("amr", map[string]any{"pwd": true})}), resource.ErrMalformed},
		{"auth_time a numeric string", mint(t, is, mintOpts{kid: es, claims: set("auth_time", fmt.Sprint(testNow.Unix()))}), resource.ErrMalformed},
		{"auth_time null", mint(t, is, mintOpts{kid: es, claims: set("auth_time", nil)}), resource.ErrMalformed},
		{"auth_time a boolean", mint(t, is, mintOpts{kid: es, claims: set("auth_time", true)}), resource.ErrMalformed},
		{"auth_time negative", mint(t, is, mintOpts{kid: es, claims: set("auth_time", -1)}), resource.ErrMalformed},
		{"auth_time in the future", mint(t, is, mintOpts{kid: es, claims: set("auth_time", testNow.Add(time.Minute).Unix())}), resource.ErrIssuedInFuture},
		{"auth_time in the future within the leeway", mint(t, is, mintOpts{kid: es, claims: set("auth_time", testNow.Add(10*time.Second).Unix())}), nil},
		{"acr, amr and auth_time", mint(t, is, mintOpts{kid: es, claims: func(c map[string]any) {
			c["acr"], c["amr"], c["auth_time"] = "2", []string{"mfa", "otp", "pwd"}, testNow.Add(-time.Hour).Unix()
		}}), nil},
		{"amr empty", mint(t, is, mintOpts{kid: es, claims: set("amr", []string{})}), nil},
		{"duplicate acr", mint(t, is, mintOpts{kid: es, payload: withMember(`"acr":"2","acr":"1"`)}), resource.ErrMalformed},

		// Duplicate member names (RFC 7519 §4, RFC 7515 §4) are refused,
		// not resolved one way or the other.
		{"duplicate exp", mint(t, is, mintOpts{kid: es, payload: withMember(`"exp":9999999999`)}), resource.ErrMalformed},
		{"duplicate sub through an escape", mint(t, is, mintOpts{kid: es, payload: withMember(`"sub":"root"`)}), resource.ErrMalformed},
		{"duplicate unknown claim", mint(t, is, mintOpts{kid: es, payload: withMember(`"x":1,"x":2`)}), resource.ErrMalformed},
		{"payload not an object", mint(t, is, mintOpts{kid: es, payload: []byte(`["sub"]`)}), resource.ErrMalformed},
		{"payload with trailing data", mint(t, is, mintOpts{kid: es, payload: append(defaultPayload, "{}"...)}), resource.ErrMalformed},
		{"raw header and payload verify", is.SignRawES256(t, es, esHeader+"}", string(defaultPayload)), nil},
		{"duplicate typ header", is.SignRawES256(t, es, esHeader+`,"typ":"JWT"}`, string(defaultPayload)), resource.ErrMalformed},
		{"duplicate crit-free header member", is.SignRawES256(t, es, esHeader+`,"x":1,"x":1}`, string(defaultPayload)), resource.ErrMalformed},

		// Issuer and audience.
		{"wrong iss", mint(t, is, mintOpts{kid: es, claims: set("iss", "https://evil.example")}), resource.ErrIssuer},
		{"iss with trailing slash", mint(t, is, mintOpts{kid: es, claims: set("iss", is.URL()+"/")}), resource.ErrIssuer},
		{"wrong aud", mint(t, is, mintOpts{kid: es, claims: set("aud", []string{"https://other.example.test"})}), resource.ErrAudience},
		{"wrong aud string", mint(t, is, mintOpts{kid: es, claims: set("aud", "https://other.example.test")}), resource.ErrAudience},
		{"aud missing", mint(t, is, mintOpts{kid: es, claims: del("aud")}), resource.ErrAudience},

		// Required identity claims.
		{"sub missing", mint(t, is, mintOpts{kid: es, claims: del("sub")}), resource.ErrMissingClaim},
		{"client_id missing", mint(t, is, mintOpts{kid: es, claims: del("client_id")}), resource.ErrMissingClaim},
		{"jti missing", mint(t, is, mintOpts{kid: es, claims: del("jti")}), resource.ErrMissingClaim},

		// Serialization tricks.
		{"empty", "", resource.ErrMalformed},
		{"truncated to two segments", parts[0] + "." + parts[1], resource.ErrMalformed},
		{"truncated signature", parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])/2], resource.ErrSignature},
		{"empty signature", parts[0] + "." + parts[1] + ".", resource.ErrMalformed},
		{"header re-padded with =", parts[0] + "=." + parts[1] + "." + parts[2], resource.ErrMalformed},
		{"signature re-padded with ==", valid + "==", resource.ErrMalformed},
		{"five segments (JWE-like)", valid + ".AAAA.BBBB", resource.ErrMalformed},
		{"standard base64 alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(valid) + "+/", resource.ErrMalformed},
		{"leading whitespace", " " + valid, resource.ErrMalformed},
		{"JSON serialization", `{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`, resource.ErrMalformed},
		{"payload swapped", parts[0] + "." + strings.Split(mint(t, is, mintOpts{kid: es, claims: set("sub", "root")}), ".")[1] + "." + parts[2], resource.ErrSignature},
		{"too large", mint(t, is, mintOpts{kid: es, claims: set("pad", strings.Repeat("x", resource.MaxTokenSize))}), resource.ErrTooLarge},
	}

	clock := &fakeClock{t: testNow}
	v, _ := newTestVerifier(is, clock, -1)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := v.Verify(t.Context(), tt.token)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if c.Issuer != is.URL() || c.ClientID != "web-app" || c.ID != "jti-1" {
					t.Errorf("claims = %+v", c)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
			}
			e, ok := errors.AsType[*resource.Error](err)
			if !ok || e.Code != resource.CodeInvalidToken || e.Description == "" {
				t.Errorf("error = %#v, want *Error with code invalid_token and a description", err)
			}
			if c != nil {
				t.Errorf("claims = %+v, want nil", c)
			}
		})
	}
}

func TestVerifyClaims(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	v, _ := newTestVerifier(is, &fakeClock{t: testNow}, 0)
	tok := mint(t, is, mintOpts{kid: kid, claims: func(c map[string]any) {
		c["acr"], c["amr"], c["auth_time"] = "2", []string{"mfa", "otp", "pwd"}, testNow.Add(-time.Hour).Unix()
	}})

	got, err := v.Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	want := resource.Claims{
		Issuer:    is.URL(),
		Subject:   "user-123",
		Audience:  []string{testAudience, "https://other.example.test"},
		ExpiresAt: testNow.Add(15 * time.Minute),
		IssuedAt:  testNow,
		NotBefore: testNow,
		ID:        "jti-1",
		ClientID:  "web-app",
		Scope:     "openid profile users:read",
		Username:  "alice",
		Roles:     []string{"admin", "user"},
		ACR:       "2",
		AMR:       []string{"mfa", "otp", "pwd"},
		AuthTime:  testNow.Add(-time.Hour),
	}
	if fmt.Sprint(*got) != fmt.Sprint(want) {
		t.Errorf("claims:\n got %+v\nwant %+v", *got, want)
	}
	if !got.HasScope("users:read") || got.HasScope("users") || !got.HasRole("admin") || got.HasRole("root") ||
		!got.HasAMR("otp") || got.HasAMR("OTP") || got.HasAMR("hwk") {
		t.Errorf("HasScope/HasRole/HasAMR wrong for %+v", got)
	}
	if s := got.Scopes(); len(s) != 3 || s[2] != "users:read" {
		t.Errorf("Scopes() = %q", s)
	}

	// Later calls are served from the cache; mutating any result must not
	// leak into the next one.
	for i := range 3 {
		got.Roles[0] = "root"
		got.Audience[0] = "x"
		got.AMR[0] = "hwk"
		got.Subject = "mallory"
		if got, err = v.Verify(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(*got) != fmt.Sprint(want) {
			t.Fatalf("call %d: cached claims were mutated:\n got %+v\nwant %+v", i+2, *got, want)
		}
	}
}

func TestVerifyCacheHonoursExpiry(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	clock := &fakeClock{t: testNow}
	v, _ := newTestVerifier(is, clock, 0)
	tok := mint(t, is, mintOpts{kid: kid, claims: func(c map[string]any) { c["exp"] = testNow.Add(time.Minute).Unix() }})
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute) // past exp + 30s leeway
	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, resource.ErrExpired) {
		t.Fatalf("Verify after expiry = %v, want ErrExpired", err)
	}
}

func TestVerifyCacheBounded(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	clock := &fakeClock{t: testNow}
	v, _ := newTestVerifier(is, clock, 2)
	var toks []string
	for i := range 3 {
		toks = append(toks, mint(t, is, mintOpts{kid: kid, claims: func(c map[string]any) { c["jti"] = fmt.Sprint(i) }}))
	}
	for _, tok := range toks {
		if _, err := v.Verify(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
	// All three still verify (the evicted one is verified again).
	for _, tok := range toks {
		if _, err := v.Verify(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
}

func TestVerifyEmptyConfigRejects(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	ks := resource.NewRemoteKeySet(is.URL(), resource.RemoteOptions{HTTPClient: is.Client()})
	now := func() time.Time { return testNow }
	tests := []struct {
		name   string
		opts   resource.Options
		claims func(map[string]any)
		want   error
	}{
		{"empty Issuer vs empty iss", resource.Options{Audience: testAudience, Now: now},
			func(c map[string]any) { c["iss"] = "" }, resource.ErrIssuer},
		{"empty Audience vs empty aud", resource.Options{Issuer: is.URL(), Now: now},
			func(c map[string]any) { c["aud"] = "" }, resource.ErrAudience},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := resource.NewVerifier(ks, tt.opts)
			if _, err := v.Verify(t.Context(), mint(t, is, mintOpts{kid: kid, claims: tt.claims})); !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestKeyRotationPickedUp(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	old := is.AddKey(t, jose.ES256)
	clock := &fakeClock{t: testNow}
	v, _ := newTestVerifier(is, clock, -1)
	if _, err := v.Verify(t.Context(), mint(t, is, mintOpts{kid: old})); err != nil {
		t.Fatal(err)
	}

	rotated := is.AddKey(t, jose.EdDSA)
	clock.Advance(resource.DefaultMinRefreshInterval) // within max-age, past the refetch rate limit
	if _, err := v.Verify(t.Context(), mint(t, is, mintOpts{kid: rotated})); err != nil {
		t.Fatalf("token signed with rotated key: %v", err)
	}
	if _, err := v.Verify(t.Context(), mint(t, is, mintOpts{kid: old})); err != nil {
		t.Fatalf("token signed with old key after rotation: %v", err)
	}
	if n := is.JWKSRequests(); n != 2 {
		t.Errorf("JWKS fetched %d times, want 2", n)
	}
}

func TestBogusKidFloodIsRateLimited(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	clock := &fakeClock{t: testNow}
	v, _ := newTestVerifier(is, clock, -1)

	flood := func(round int) {
		var wg sync.WaitGroup
		for i := range 200 {
			tok := mint(t, is, mintOpts{kid: kid, headers: map[string]any{"kid": fmt.Sprintf("bogus-%d-%d", round, i)}})
			wg.Go(func() {
				if _, err := v.Verify(context.Background(), tok); !errors.Is(err, resource.ErrUnknownKey) {
					t.Errorf("Verify = %v, want ErrUnknownKey", err)
				}
			})
		}
		wg.Wait()
	}
	flood(1)
	if n := is.JWKSRequests(); n != 1 {
		t.Errorf("after first flood: %d JWKS fetches, want 1", n)
	}
	flood(2)
	if n := is.JWKSRequests(); n != 1 {
		t.Errorf("after second flood in the same interval: %d JWKS fetches, want 1", n)
	}
	clock.Advance(resource.DefaultMinRefreshInterval)
	flood(3)
	if n := is.JWKSRequests(); n != 2 {
		t.Errorf("after a flood in the next interval: %d JWKS fetches, want 2", n)
	}
	// Good tokens still verify throughout.
	if _, err := v.Verify(t.Context(), mint(t, is, mintOpts{kid: kid})); err != nil {
		t.Fatal(err)
	}
}

func TestIssuerDownServesCachedKeys(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.RS256)
	clock := &fakeClock{t: testNow}
	v, _ := newTestVerifier(is, clock, -1)
	if _, err := v.Verify(t.Context(), mint(t, is, mintOpts{kid: kid})); err != nil {
		t.Fatal(err)
	}
	is.Close()

	// Well past the JWKS max-age (300s): the refetch fails, stale keys serve.
	clock.Advance(10 * time.Minute)
	tok := mint(t, is, mintOpts{kid: kid, claims: func(c map[string]any) {
		c["iat"] = clock.Now().Unix()
		c["exp"] = clock.Now().Add(time.Minute).Unix()
	}})
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatalf("Verify with issuer down: %v", err)
	}
	// An unknown kid is still an invalid token, not an outage.
	bogus := mint(t, is, mintOpts{kid: kid, headers: map[string]any{"kid": "new-key"}, claims: func(c map[string]any) {
		c["iat"] = clock.Now().Unix()
		c["exp"] = clock.Now().Add(time.Minute).Unix()
	}})
	if _, err := v.Verify(t.Context(), bogus); !errors.Is(err, resource.ErrUnknownKey) {
		t.Fatalf("Verify unknown kid with issuer down = %v, want ErrUnknownKey", err)
	}
}

func TestIssuerNeverReachable(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	tok := mint(t, is, mintOpts{kid: kid})
	is.Close()
	v, _ := newTestVerifier(is, &fakeClock{t: testNow}, 0)

	_, err := v.Verify(t.Context(), tok)
	e, ok := errors.AsType[*resource.Error](err)
	if !ok || e.Code != resource.CodeTemporarilyUnavailable || !errors.Is(err, resource.ErrKeysUnavailable) {
		t.Fatalf("Verify = %#v, want temporarily_unavailable wrapping ErrKeysUnavailable", err)
	}
	if !errors.Is(err, resource.ErrKeySetUnavailable) {
		t.Errorf("Verify = %v, want it to wrap resource.ErrKeySetUnavailable", err)
	}
}

// staticKeys is a KeySet over fixed keys, for checks RemoteKeySet would
// already filter out.
type staticKeys map[string]*jose.JSONWebKey

func (s staticKeys) Key(_ context.Context, kid string) (*jose.JSONWebKey, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	return nil, resource.ErrKeyNotFound
}

func TestVerifyRejectsUnsafeKeySetKeys(t *testing.T) {
	t.Parallel()
	is := testkit.NewIssuer(t)
	kid := is.AddKey(t, jose.ES256)
	pub := is.PrivateKey(kid).Public()
	priv := *is.PrivateKey(kid)
	noAlg := pub
	noAlg.Algorithm = ""
	enc := pub
	enc.Use = "enc"
	tests := []struct {
		name string
		key  jose.JSONWebKey
		want error
	}{
		{"public key verifies", pub, nil},
		{"P-256 key without alg (ES256 by its type)", noAlg, nil},
		{"key with use enc", enc, resource.ErrAlgorithm},
		{"private key", priv, resource.ErrAlgorithm},
	}
	tok := mint(t, is, mintOpts{kid: kid})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := resource.NewVerifier(staticKeys{kid: &tt.key}, resource.Options{
				Issuer: is.URL(), Audience: testAudience, Now: func() time.Time { return testNow },
			})
			_, err := v.Verify(t.Context(), tok)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}
