package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/portcullis-auth/portcullis/identity"
)

// CodeLifetime is how long an authorization code of the challenge
// endpoint can be redeemed: the client redeems it at once, in the same
// back channel (RFC 6749 §4.1.2 recommends at most 10 minutes).
const CodeLifetime = time.Minute

// CodeIssuer issues the authorization codes of the authorization challenge
// endpoint (package oauth/challenge), which the token endpoint redeems with
// fosite's authorization-code and PKCE handlers (NewProvider): the code is
// an HMAC token under the same secret, stored as the grant's request with
// the user's claims, the PKCE challenge and the DPoP key.
type CodeIssuer struct {
	strategy oauth2.AuthorizeCodeStrategy
	store    oauth2.AuthorizeCodeStorage
	now      func() time.Time
}

// NewCodeIssuer returns the CodeIssuer for a provider built by NewProvider
// with the same cfg and store.
func NewCodeIssuer(cfg ProviderConfig, store TokenStore) (*CodeIssuer, error) {
	if len(cfg.RefreshSecret) < 32 {
		return nil, fmt.Errorf("refresh-token secret must be at least 32 bytes")
	}
	fc := &fosite.Config{GlobalSecret: cfg.RefreshSecret, RotatedGlobalSecrets: cfg.RotatedRefreshSecrets,
		AuthorizeCodeLifespan: CodeLifetime}
	return &CodeIssuer{strategy: compose.NewOAuth2HMACStrategy(fc), store: store, now: time.Now}, nil
}

// Authentication is a user's finished login at the challenge endpoint,
// which a code carries to the token endpoint.
type Authentication struct {
	// Client is the client the code is issued to.
	Client fosite.Client
	User   *identity.User
	// Scopes are the scopes granted (checked against the client's:
	// GrantableScopes).
	Scopes []string
	// CodeChallenge is the PKCE S256 challenge (RFC 7636) the redemption
	// must answer.
	CodeChallenge string
	// AMR lists the RFC 8176 methods used; ACR is the acr value; AuthTime
	// is when the user authenticated.
	AMR      []string
	ACR      string
	AuthTime time.Time
	// JKT is the thumbprint of the DPoP key the code (and the tokens) are
	// bound to, or "".
	JKT string
}

// Issue stores a new authorization code for a and returns it.
func (ci *CodeIssuer) Issue(ctx context.Context, a Authentication) (string, error) {
	now := ci.now().UTC()
	ar := fosite.NewAuthorizeRequest()
	ar.Client = a.Client
	ar.RequestedAt = now
	ar.RequestedScope = fosite.Arguments(a.Scopes)
	ar.GrantedScope = fosite.Arguments(a.Scopes)
	ar.ResponseTypes = fosite.Arguments{"code"}
	ar.Form = url.Values{"code_challenge": {a.CodeChallenge}, "code_challenge_method": {"S256"}}
	sess := NewSession()
	setUserClaims(sess, a.User)
	setAuthClaims(sess, a.AMR, a.ACR, a.AuthTime)
	if a.JKT != "" {
		sess.JWTClaims.Extra[cnfClaim] = map[string]any{"jkt": a.JKT}
	}
	sess.SetExpiresAt(fosite.AuthorizeCode, now.Add(CodeLifetime))
	ar.Session = sess
	code, sig, err := ci.strategy.GenerateAuthorizeCode(ctx, ar)
	if err != nil {
		return "", fmt.Errorf("generate authorization code: %w", err)
	}
	if err := ci.store.CreateAuthorizeCodeSession(ctx, sig, ar); err != nil {
		return "", err
	}
	return code, nil
}

// GrantableScopes returns the scopes to grant a client that asked for
// requested: each must be registered for the client (fosite's exact
// strategy); none asked for grants every registered one (RFC 6749 §3.3).
// It returns fosite.ErrInvalidScope otherwise.
func GrantableScopes(client fosite.Client, requested []string) ([]string, error) {
	if len(requested) == 0 {
		return append([]string{}, client.GetScopes()...), nil
	}
	for _, s := range requested {
		if !fosite.ExactScopeStrategy(client.GetScopes(), s) {
			return nil, fosite.ErrInvalidScope
		}
	}
	return requested, nil
}

// Claims of how the user authenticated (RFC 9068 §2.2.1, RFC 8176).
const (
	claimAMR      = "amr"
	claimACR      = "acr"
	claimAuthTime = "auth_time"
)

// setAuthClaims records in s how and when the user authenticated.
func setAuthClaims(s *oauth2.JWTSession, amr []string, acr string, authTime time.Time) {
	s.JWTClaims.Extra[claimAMR] = append([]string{}, amr...)
	s.JWTClaims.Extra[claimACR] = acr
	s.JWTClaims.Extra[claimAuthTime] = authTime.Unix()
}

// SessionAMR returns the RFC 8176 methods a session's grant was
// authenticated with (nil for a client's own grant, or a grant from
// before amr was recorded).
func SessionAMR(s fosite.Session) []string {
	js, ok := s.(*oauth2.JWTSession)
	if !ok || js.JWTClaims == nil {
		return nil
	}
	switch v := js.JWTClaims.Extra[claimAMR].(type) {
	case []string:
		return v
	case []any:
		out := make([]string, 0, len(v))
		for _, m := range v {
			if s, ok := m.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// keepIssuedClaims returns a function that puts back the claims of
// session as they are now, when the token handler has already stamped them
// (iat set); else one that does nothing.
func keepIssuedClaims(session fosite.Session) func() {
	js, ok := session.(*oauth2.JWTSession)
	if !ok || js.JWTClaims == nil || js.JWTClaims.IssuedAt.IsZero() {
		return func() {}
	}
	claims := *js.JWTClaims
	claims.Extra = maps.Clone(js.JWTClaims.Extra)
	claims.Audience = slices.Clone(js.JWTClaims.Audience)
	subject, username, expires := js.Subject, js.Username, maps.Clone(js.ExpiresAt)
	return func() {
		c := claims
		c.Extra = maps.Clone(claims.Extra)
		js.JWTClaims = &c
		js.Subject, js.Username, js.ExpiresAt = subject, username, maps.Clone(expires)
	}
}

// verifierCtx carries the code_verifier of a token request to the storage
// calls fosite makes for it.
type verifierCtx struct{}

func withCodeVerifier(ctx context.Context, verifier string) context.Context {
	return context.WithValue(ctx, verifierCtx{}, verifier)
}

// GetAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage: the
// TokenStore's, except for a redeemed code presented by someone who cannot
// prove what the redemption needs (the PKCE code_verifier and, for a code
// bound to a DPoP key, a proof by that key). fosite takes any second
// redemption for a stolen code and revokes what the first issued (RFC 6749
// §4.1.2); a request without those proves no theft of anything usable,
// only that the code was seen (a log, a proxy), and revoking would let
// whoever saw it end the owner's session. It is reported as unknown
// instead (invalid_grant) and the grant lives on, as for bound refresh
// tokens (GetRefreshTokenSession).
//
// fosite reads the code twice, the second time (building the response)
// into the session the token handler has meanwhile completed (iat, nbf,
// jti, client_id, sid, the owner's current roles, exp): that read would
// put the code's stored claims back, and the token would lack nbf, which
// this server's own verification requires. The completed claims are kept.
func (s grantStore) GetAuthorizeCodeSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	restore := keepIssuedClaims(session)
	req, err := s.TokenStore.GetAuthorizeCodeSession(ctx, signature, session)
	restore()
	if !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) || req == nil {
		return req, err
	}
	verifier, _ := ctx.Value(verifierCtx{}).(string)
	sum := sha256.Sum256([]byte(verifier))
	challenge := req.GetRequestForm().Get("code_challenge")
	if verifier == "" || subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) != 1 {
		return nil, fosite.ErrNotFound
	}
	if bound := BoundKey(req.GetSession()); bound != "" {
		if jkt, _ := ctx.Value(proofKeyCtx{}).(string); subtle.ConstantTimeCompare([]byte(jkt), []byte(bound)) != 1 {
			return nil, fosite.ErrNotFound
		}
	}
	// fosite revokes the grant next (RevokeRefreshToken records it).
	noteReplay(ctx, req)
	return req, err
}
