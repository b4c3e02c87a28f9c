package challenge

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// Request is a parsed Authorization Challenge Request
// (draft-ietf-oauth-first-party-apps-04 §5.1) with Portcullis's profile
// parameters (username, password, otp, recovery_code).
type Request struct {
	// ClientID is client_id ("" when absent: an auth_session or client
	// authentication names the client).
	ClientID string
	// Scope is the requested scope, nil when absent.
	Scope []string
	// AuthSession continues a session ("" to start one).
	AuthSession string
	// CodeChallenge is the PKCE S256 challenge (RFC 7636 §4.2), "" when
	// absent.
	CodeChallenge string
	// ACRValues are the requested acr values in order of preference
	// (OpenID Connect Core §3.1.2.1), as a step-up challenge names them.
	ACRValues []string
	// MaxAge is max_age in seconds, -1 when absent.
	MaxAge int64
	// Username and Password are the first factor.
	Username, Password string
	// OTP is a TOTP code; RecoveryCode a one-time recovery code.
	OTP, RecoveryCode string
	// DPoPJKT is dpop_jkt (RFC 9449 §10): the thumbprint of the key the
	// code is to be bound to.
	DPoPJKT string
}

// Limits of the profile's parameters.
const (
	maxUsernameBytes     = 256
	maxPasswordBytes     = 4096
	maxOTPBytes          = 16
	maxRecoveryCodeBytes = 64
	maxScopeBytes        = 2048
	maxACRValuesBytes    = 1024
	maxAuthSessionBytes  = 128
	maxMaxAge            = 1 << 31
)

// Errors of ParseRequest (sent as invalid_request with a fixed
// description; never the offending value).
var (
	ErrResponseType  = errors.New("response_type must be code")
	ErrCodeChallenge = errors.New("code_challenge must be 43 base64url characters (S256)")
	ErrChallengeMeth = errors.New("code_challenge_method must be S256")
	ErrScope         = errors.New("scope is malformed")
	ErrACRValues     = errors.New("acr_values is malformed")
	ErrMaxAge        = errors.New("max_age must be a non-negative integer")
	ErrAuthSession   = errors.New("auth_session is malformed")
	ErrTooLong       = errors.New("a parameter is too long")
	ErrBothCodes     = errors.New("send either otp or recovery_code, not both")
	ErrDPoPJKT       = errors.New("dpop_jkt must be a base64url SHA-256 thumbprint")
)

// ParseRequest validates the parameters of a challenge request. form must
// hold one value per parameter (oauth.ReadForm checked that); unknown
// parameters are ignored (RFC 6749 §3.1), as are authorization-endpoint
// parameters without meaning here (redirect_uri, state, response_mode,
// nonce, prompt).
func ParseRequest(form url.Values) (*Request, error) {
	req := &Request{
		ClientID: form.Get("client_id"), AuthSession: form.Get("auth_session"),
		Username: form.Get("username"), Password: form.Get("password"),
		OTP: form.Get("otp"), RecoveryCode: form.Get("recovery_code"), MaxAge: -1,
	}
	// draft -04 §5.1: response_type is REQUIRED and must be code; the
	// draft's own examples omit it, so absent is accepted too.
	if rt, ok := form["response_type"]; ok && (len(rt) != 1 || rt[0] != "code") {
		return nil, ErrResponseType
	}
	if len(req.ClientID) > 255 || len(req.Username) > maxUsernameBytes || len(req.Password) > maxPasswordBytes ||
		len(req.OTP) > maxOTPBytes || len(req.RecoveryCode) > maxRecoveryCodeBytes {
		return nil, ErrTooLong
	}
	if req.OTP != "" && req.RecoveryCode != "" {
		return nil, ErrBothCodes
	}
	if j, ok := form["dpop_jkt"]; ok {
		req.DPoPJKT = j[0]
		if len(req.DPoPJKT) != 43 || !base64url(req.DPoPJKT) {
			return nil, ErrDPoPJKT
		}
	}
	if req.AuthSession != "" && (len(req.AuthSession) > maxAuthSessionBytes || !base64url(req.AuthSession)) {
		return nil, ErrAuthSession
	}
	if cc, ok := form["code_challenge"]; ok {
		req.CodeChallenge = cc[0]
		if len(req.CodeChallenge) != 43 || !base64url(req.CodeChallenge) {
			return nil, ErrCodeChallenge
		}
		// RFC 7636 §4.3: an absent method means plain, which is refused.
		if form.Get("code_challenge_method") != "S256" {
			return nil, ErrChallengeMeth
		}
	} else if _, ok := form["code_challenge_method"]; ok {
		return nil, ErrCodeChallenge
	}
	if s, ok := form["scope"]; ok {
		if len(s[0]) > maxScopeBytes {
			return nil, ErrTooLong
		}
		scopes, ok := tokens(s[0], scopeChar)
		if !ok {
			return nil, ErrScope
		}
		req.Scope = scopes
	}
	if a, ok := form["acr_values"]; ok {
		if len(a[0]) > maxACRValuesBytes {
			return nil, ErrTooLong
		}
		values, ok := tokens(a[0], scopeChar)
		if !ok {
			return nil, ErrACRValues
		}
		req.ACRValues = values
	}
	if m, ok := form["max_age"]; ok {
		n, err := strconv.ParseInt(m[0], 10, 64)
		if err != nil || n < 0 || n > maxMaxAge || m[0] != strconv.FormatInt(n, 10) {
			return nil, ErrMaxAge
		}
		req.MaxAge = n
	}
	return req, nil
}

// tokens splits a space-delimited list (RFC 6749 §3.3) of non-empty
// tokens of allowed characters: single spaces between them, none around;
// duplicates are dropped.
func tokens(s string, allowed func(byte) bool) ([]string, bool) {
	if s == "" {
		return nil, false
	}
	var out []string
	for _, t := range strings.Split(s, " ") {
		if t == "" {
			return nil, false
		}
		for i := range len(t) {
			if !allowed(t[i]) {
				return nil, false
			}
		}
		dup := false
		for _, o := range out {
			dup = dup || o == t
		}
		if !dup {
			out = append(out, t)
		}
	}
	return out, true
}

// scopeChar is RFC 6749 §3.3's NQCHAR set: %x21 / %x23-5B / %x5D-7E.
func scopeChar(c byte) bool {
	return c == 0x21 || (c >= 0x23 && c <= 0x5B) || (c >= 0x5D && c <= 0x7E)
}

func base64url(s string) bool {
	for i := range len(s) {
		switch c := s[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}
