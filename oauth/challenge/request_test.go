package challenge

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
)

const validChallenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" // RFC 7636 Appendix B

func TestParseRequest(t *testing.T) {
	base := func(kv ...string) url.Values {
		v := url.Values{"client_id": {"app"}, "code_challenge": {validChallenge}, "code_challenge_method": {"S256"}}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "\x00delete" {
				v.Del(kv[i])
				continue
			}
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	for _, c := range []struct {
		name string
		form url.Values
		want error
	}{
		{"minimal", base(), nil},
		{"response_type code", base("response_type", "code"), nil},
		{"response_type token", base("response_type", "token"), ErrResponseType},
		{"response_type empty", base("response_type", ""), ErrResponseType},
		{"response_type code id_token", base("response_type", "code id_token"), ErrResponseType},
		{"plain method", base("code_challenge_method", "plain"), ErrChallengeMeth},
		{"absent method means plain", base("code_challenge_method", "\x00delete"), ErrChallengeMeth},
		{"method without challenge", base("code_challenge", "\x00delete"), ErrCodeChallenge},
		{"short challenge", base("code_challenge", validChallenge[:42]), ErrCodeChallenge},
		{"challenge with padding", base("code_challenge", validChallenge[:42]+"="), ErrCodeChallenge},
		{"no PKCE at all", base("code_challenge", "\x00delete", "code_challenge_method", "\x00delete"), nil},
		{"scope", base("scope", "read write"), nil},
		{"scope double space", base("scope", "read  write"), ErrScope},
		{"scope leading space", base("scope", " read"), ErrScope},
		{"scope quote", base("scope", `re"ad`), ErrScope},
		{"scope empty", base("scope", ""), ErrScope},
		{"scope too long", base("scope", strings.Repeat("a", maxScopeBytes+1)), ErrTooLong},
		{"acr_values", base("acr_values", "2 1"), nil},
		{"acr_values backslash", base("acr_values", `2\`), ErrACRValues},
		{"max_age", base("max_age", "300"), nil},
		{"max_age zero", base("max_age", "0"), nil},
		{"max_age negative", base("max_age", "-1"), ErrMaxAge},
		{"max_age leading zero", base("max_age", "0300"), ErrMaxAge},
		{"max_age plus", base("max_age", "+3"), ErrMaxAge},
		{"max_age huge", base("max_age", "99999999999999999999"), ErrMaxAge},
		{"auth_session", base("auth_session", "abc_DEF-123"), nil},
		{"auth_session odd", base("auth_session", "abc def"), ErrAuthSession},
		{"auth_session long", base("auth_session", strings.Repeat("a", maxAuthSessionBytes+1)), ErrAuthSession},
		{"otp and recovery code", base("otp", "123456", "recovery_code", "ABCD"), ErrBothCodes},
		{"long otp", base("otp", strings.Repeat("1", maxOTPBytes+1)), ErrTooLong},
		{"long password", base("password", strings.Repeat("p", maxPasswordBytes+1)), ErrTooLong},
		{"long username", base("username", strings.Repeat("u", maxUsernameBytes+1)), ErrTooLong},
		{"ignored parameters", base("redirect_uri", "https://x", "state", "s", "nonce", "n"), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseRequest(c.form)
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("ParseRequest = %v, want %v", err, c.want)
			}
		})
	}
	req, err := ParseRequest(base("scope", "read write read", "acr_values", "2", "max_age", "60", "username", "alice", "password", "pw", "otp", "123456"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(req.Scope, []string{"read", "write"}) || !slices.Equal(req.ACRValues, []string{"2"}) || req.MaxAge != 60 ||
		req.Username != "alice" || req.Password != "pw" || req.OTP != "123456" || req.CodeChallenge != validChallenge {
		t.Fatalf("parsed %+v", req)
	}
	if req, _ := ParseRequest(base()); req.MaxAge != -1 || req.Scope != nil {
		t.Fatalf("absent max_age and scope: %+v", req)
	}
}

// FuzzParseRequest: any form either parses into values that satisfy the
// profile's limits or is refused with one of ParseRequest's errors; it
// never panics. Seeds: testdata/fuzz/FuzzParseRequest.
func FuzzParseRequest(f *testing.F) {
	f.Add("client_id=app&code_challenge=" + validChallenge + "&code_challenge_method=S256&username=alice&password=x")
	f.Add("auth_session=abc&otp=123456&scope=a+b&acr_values=2&max_age=300&response_type=code")
	f.Add("code_challenge_method=plain&code_challenge=abc&scope=%22&max_age=-0")
	f.Fuzz(func(t *testing.T, body string) {
		form, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		for k, v := range form {
			form[k] = v[:1] // oauth.ReadForm refuses duplicates first
		}
		req, err := ParseRequest(form)
		if err != nil {
			for _, e := range []error{ErrResponseType, ErrCodeChallenge, ErrChallengeMeth, ErrScope, ErrACRValues, ErrMaxAge, ErrAuthSession, ErrTooLong, ErrBothCodes, ErrDPoPJKT} {
				if err == e {
					return
				}
			}
			t.Fatalf("unknown error %v", err)
		}
		if req.CodeChallenge != "" && (len(req.CodeChallenge) != 43 || !base64url(req.CodeChallenge)) {
			t.Fatalf("accepted code_challenge %q", req.CodeChallenge)
		}
		if len(req.AuthSession) > maxAuthSessionBytes || !base64url(req.AuthSession) {
			t.Fatalf("accepted auth_session %q", req.AuthSession)
		}
		for _, s := range append(slices.Clone(req.Scope), req.ACRValues...) {
			if s == "" || strings.ContainsAny(s, " \"\\") {
				t.Fatalf("accepted token %q", s)
			}
		}
		if req.MaxAge < -1 || req.OTP != "" && req.RecoveryCode != "" {
			t.Fatalf("accepted %+v", req)
		}
	})
}
