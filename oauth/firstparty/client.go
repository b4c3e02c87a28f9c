// Package firstparty is the client side of OAuth 2.0 for First-Party
// Applications (draft-ietf-oauth-first-party-apps-04) as Portcullis
// profiles it: a first-party app logs its user in at the authorization
// challenge endpoint (password, then a TOTP or recovery code when the
// account asks for one), and redeems the code at the token endpoint with
// PKCE S256 (golang.org/x/oauth2 does the exchange). It links nothing of
// the server.
//
// Give Client an HTTPClient whose transport is a dpop.Transport to bind
// the auth_session, the code and the tokens to the app's DPoP key.
package firstparty

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/oauth2"
)

// Client logs users in through one authorization server's challenge
// endpoint.
type Client struct {
	// ChallengeURL is the server's authorization_challenge_endpoint and
	// TokenURL its token_endpoint (RFC 8414 metadata).
	ChallengeURL, TokenURL string
	// ClientID identifies the app; ClientSecret is empty for a public
	// client (a native or browser app), and sent with HTTP Basic
	// otherwise.
	ClientID, ClientSecret string
	// HTTPClient sends every request; nil means http.DefaultClient.
	HTTPClient *http.Client
}

// Credentials are what the user typed: the first request carries
// Username and Password; a later one OTP (a TOTP code) or RecoveryCode.
type Credentials struct {
	Username, Password string
	OTP, RecoveryCode  string
}

// Options are the authorization asked for.
type Options struct {
	// Scope is the scope asked for; none means the client's default.
	Scope []string
	// ACRValues and MaxAge come from a resource server's step-up
	// challenge (RFC 9470); MaxAge 0 means none.
	ACRValues []string
	MaxAge    int
}

// Challenge is the server's insufficient_authorization answer: the user
// must provide more (Continue with it). It is returned as an error.
type Challenge struct {
	// AuthSession continues the login; each answer carries a new one.
	AuthSession string
	// PasswordRequired: ask for the password. OTPRequired: ask for a TOTP
	// code (or a recovery code). EnrollmentRequired: the account must
	// have a second factor and has none; show TOTPSecret / OTPAuthURI
	// (as a QR code) for the user to add to an authenticator app, then
	// ask for a code.
	PasswordRequired, OTPRequired, EnrollmentRequired bool
	TOTPSecret, OTPAuthURI                            string
	// Description is the server's error_description.
	Description string

	verifier string
	opts     Options
}

func (c *Challenge) Error() string { return "firstparty: insufficient_authorization: " + c.Description }

// Error is any other error answer of the server (RFC 6749 §5.2; the
// draft's invalid_session when the auth_session is no longer good: start
// over with Login).
type Error struct {
	Status      int
	Code        string
	Description string
}

func (e *Error) Error() string {
	return fmt.Sprintf("firstparty: %s (HTTP %d): %s", e.Code, e.Status, e.Description)
}

// Token is the result of a finished login.
type Token struct {
	*oauth2.Token
	// AuthSession, when the server sent one with the tokens, starts a
	// later step-up (StepUp).
	AuthSession string
	// RecoveryCodes are set when the login finished the enrolment of a
	// TOTP factor: show them to the user once.
	RecoveryCodes []string
}

// Login starts a login with the user's username and password.
func (c *Client) Login(ctx context.Context, cred Credentials, opts Options) (*Token, error) {
	verifier := oauth2.GenerateVerifier()
	return c.step(ctx, "", verifier, opts, cred, true)
}

// Continue answers a Challenge with what the user typed.
func (c *Client) Continue(ctx context.Context, ch *Challenge, cred Credentials) (*Token, error) {
	return c.step(ctx, ch.AuthSession, ch.verifier, ch.opts, cred, false)
}

// StepUp starts a new authorization on an auth_session the server handed
// out with tokens (Token.AuthSession), as a resource server's step-up
// challenge asks (RFC 9470: its acr_values and max_age), or with a token
// endpoint's insufficient_authorization answer (a password grant or a
// refresh of a user who must prove a second factor). The server then asks
// for a fresh factor (a Challenge) unless cred already carries it.
func (c *Client) StepUp(ctx context.Context, authSession string, cred Credentials, opts Options) (*Token, error) {
	return c.step(ctx, authSession, oauth2.GenerateVerifier(), opts, cred, true)
}

// step sends one challenge request; on a code it redeems it.
func (c *Client) step(ctx context.Context, authSession, verifier string, opts Options, cred Credentials, first bool) (*Token, error) {
	form := url.Values{}
	if c.ClientSecret == "" {
		form.Set("client_id", c.ClientID)
	}
	set := func(k, v string) {
		if v != "" {
			form.Set(k, v)
		}
	}
	set("auth_session", authSession)
	set("username", cred.Username)
	set("password", cred.Password)
	set("otp", cred.OTP)
	set("recovery_code", cred.RecoveryCode)
	if first {
		form.Set("response_type", "code")
		form.Set("code_challenge", oauth2.S256ChallengeFromVerifier(verifier))
		form.Set("code_challenge_method", "S256")
		set("scope", strings.Join(opts.Scope, " "))
		set("acr_values", strings.Join(opts.ACRValues, " "))
		if opts.MaxAge > 0 {
			form.Set("max_age", strconv.Itoa(opts.MaxAge))
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.ChallengeURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if c.ClientSecret != "" {
		req.SetBasicAuth(url.QueryEscape(c.ClientID), url.QueryEscape(c.ClientSecret))
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Code          string   `json:"authorization_code"`
		RecoveryCodes []string `json:"recovery_codes"`
		Error         string   `json:"error"`
		Description   string   `json:"error_description"`
		AuthSession   string   `json:"auth_session"`
		Password      bool     `json:"password_required"`
		OTP           bool     `json:"otp_required"`
		Enrollment    bool     `json:"totp_enrollment_required"`
		TOTPSecret    string   `json:"totp_secret"`
		OTPAuthURI    string   `json:"otpauth_uri"`
	}
	if err := decodeJSON(resp, &body); err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusOK && body.Code != "":
		tok, err := c.exchange(ctx, body.Code, verifier)
		if err != nil {
			return nil, err
		}
		tok.RecoveryCodes = body.RecoveryCodes
		return tok, nil
	case body.Error == "insufficient_authorization" && body.AuthSession != "":
		return nil, &Challenge{
			AuthSession: body.AuthSession, PasswordRequired: body.Password, OTPRequired: body.OTP,
			EnrollmentRequired: body.Enrollment, TOTPSecret: body.TOTPSecret, OTPAuthURI: body.OTPAuthURI,
			Description: body.Description, verifier: verifier, opts: opts,
		}
	case body.Error != "":
		return nil, &Error{Status: resp.StatusCode, Code: body.Error, Description: body.Description}
	}
	return nil, &Error{Status: resp.StatusCode, Code: "invalid_response", Description: "the server's answer is neither a code nor an error"}
}

// exchange redeems a code with golang.org/x/oauth2 (RFC 6749 §4.1.3, RFC
// 7636 §4.5).
func (c *Client) exchange(ctx context.Context, code, verifier string) (*Token, error) {
	cfg := oauth2.Config{ClientID: c.ClientID, ClientSecret: c.ClientSecret,
		Endpoint: oauth2.Endpoint{TokenURL: c.TokenURL, AuthStyle: oauth2.AuthStyleInParams}}
	if c.ClientSecret != "" {
		cfg.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
	}
	tok, err := cfg.Exchange(context.WithValue(ctx, oauth2.HTTPClient, c.httpClient()), code, oauth2.VerifierOption(verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return nil, &Error{Status: re.Response.StatusCode, Code: re.ErrorCode, Description: re.ErrorDescription}
		}
		return nil, err
	}
	out := &Token{Token: tok}
	if as, ok := tok.Extra("auth_session").(string); ok {
		out.AuthSession = as
	}
	return out, nil
}

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return http.DefaultClient
}

// maxResponseBytes bounds what is read of an answer.
const maxResponseBytes = 64 << 10

func decodeJSON(resp *http.Response, v any) error {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "application/json" {
		return &Error{Status: resp.StatusCode, Code: "invalid_response", Description: "the answer is not JSON"}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return &Error{Status: resp.StatusCode, Code: "invalid_response", Description: "the answer is not valid JSON"}
	}
	return nil
}
