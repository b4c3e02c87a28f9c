package oauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/portcullis-auth/portcullis/oauth/dpop"
)

// DPoPPolicy binds the tokens of requests carrying a DPoP proof to the
// proof's key (RFC 9449 §5): the access token gets cnf.jkt and token type
// DPoP; a public client's refresh token is bound to the key (it remembers
// cnf.jkt in its grant's session) and is refreshed only with a proof by
// that key. A confidential client's refresh token is not bound, as RFC
// 9449 §5 allows: the client's credentials already constrain it; each
// refresh is then bound (or not) by its own proof.
type DPoPPolicy struct {
	// Verifier checks proofs; its ReplayCache must be shared by every
	// replica (the database), so that a proof is used once anywhere.
	Verifier *dpop.Verifier
	// TokenURL is the token endpoint's URL as clients address it (the
	// issuer's), which htu must name.
	TokenURL string
}

// The DPoP errors of the token endpoint (RFC 9449 §5; the verifier's own
// come with fixed descriptions).
var (
	errDPoPRequired = rfcError(dpop.CodeInvalidProof, http.StatusBadRequest,
		"The client must present a DPoP proof.")
	// errRefreshKey: a bound refresh token without a proof by its key.
	errRefreshKey = rfcError("invalid_grant", http.StatusBadRequest,
		"The refresh token is bound to a DPoP key; a proof by that key is required.")
	// errCodeKey: a bound authorization code without a proof by its key.
	errCodeKey = rfcError("invalid_grant", http.StatusBadRequest,
		"The authorization code is bound to a DPoP key; a proof by that key is required.")
)

// cnfClaim is the confirmation claim (RFC 7800) of bound tokens.
const cnfClaim = "cnf"

// boundClient is a client that can require DPoP (oauth.Client).
type boundClient interface {
	DPoPBoundAccessTokens() bool
}

// proof returns the checked (not yet spent) proof of r, or nil when r
// carries none.
func (p *DPoPPolicy) proof(r *http.Request) (*dpop.Proof, error) {
	if p == nil || p.Verifier == nil {
		return nil, nil
	}
	if len(r.Header.Values(dpop.HeaderName)) == 0 {
		return nil, nil
	}
	raw, err := dpop.ProofFromHeader(r.Header)
	if err != nil {
		return nil, err
	}
	return p.Verifier.Check(raw, dpop.Request{Method: r.Method, URI: p.TokenURL})
}

// bind applies RFC 9449 §5 to a validated token request (its client
// authenticated): a client registered with dpop_bound_access_tokens needs
// a proof; a public client's bound refresh token needs a proof by its key;
// the proof is spent (so an anonymous request never writes to the replay
// store: the password grant, the only one open to a public client without
// a token, is rate-limited per address); and the session is bound to the
// proof's key, or unbound without one.
func (p *DPoPPolicy) bind(ctx context.Context, ar fosite.AccessRequester, session *oauth2.JWTSession, proof *dpop.Proof) error {
	client := ar.GetClient()
	if bc, ok := client.(boundClient); ok && bc.DPoPBoundAccessTokens() && proof == nil {
		return errDPoPRequired
	}
	if ar.GetGrantTypes().ExactOne("refresh_token") && client.IsPublic() {
		if bound := BoundKey(session); bound != "" &&
			(proof == nil || subtle.ConstantTimeCompare([]byte(bound), []byte(proof.JKT)) != 1) {
			return errRefreshKey
		}
	}
	if ar.GetGrantTypes().ExactOne("authorization_code") {
		// draft-ietf-oauth-first-party-apps §9.5.1: a code from a
		// challenge that came with a proof is redeemed only with a
		// proof by the same key, whatever the client.
		if bound := BoundKey(session); bound != "" &&
			(proof == nil || subtle.ConstantTimeCompare([]byte(bound), []byte(proof.JKT)) != 1) {
			return errCodeKey
		}
	}
	if proof == nil {
		delete(session.JWTClaims.Extra, cnfClaim)
		return nil
	}
	if err := p.Verifier.Spend(ctx, proof); err != nil {
		return err
	}
	session.JWTClaims.Extra[cnfClaim] = map[string]any{"jkt": proof.JKT}
	return nil
}

// BoundKey returns the DPoP key thumbprint (cnf.jkt) a session's tokens
// are bound to, or "" for bearer tokens.
func BoundKey(s fosite.Session) string {
	js, ok := s.(*oauth2.JWTSession)
	if !ok || js.JWTClaims == nil {
		return ""
	}
	switch c := js.JWTClaims.Extra[cnfClaim].(type) {
	case map[string]any:
		jkt, _ := c["jkt"].(string)
		return jkt
	case map[string]string:
		return c["jkt"]
	}
	return ""
}

// dpopError reports whether err is a refused proof.
func dpopError(err error) (*dpop.Error, bool) {
	return errors.AsType[*dpop.Error](err)
}

// setNonce sends the current server nonce (RFC 9449 §8) when nonces are
// required.
func (p *DPoPPolicy) setNonce(w http.ResponseWriter) {
	if p == nil || p.Verifier == nil || p.Verifier.Nonces() == nil {
		return
	}
	w.Header().Set(dpop.NonceHeader, p.Verifier.Nonces().Current())
}

// proofKeyCtx carries the thumbprint of a token request's checked DPoP
// proof ("" without one) to the storage calls fosite makes for it.
type proofKeyCtx struct{}

func withProofKey(ctx context.Context, proof *dpop.Proof) context.Context {
	jkt := ""
	if proof != nil {
		jkt = proof.JKT
	}
	return context.WithValue(ctx, proofKeyCtx{}, jkt)
}

// GetRefreshTokenSession implements oauth2.RefreshTokenStorage: the
// TokenStore's, except for a used refresh token that is bound to a DPoP
// key (a public client's) presented without a proof by that key. fosite
// takes any used token for a stolen one and revokes its grant (reuse
// detection, RFC 9700 §4.14.2); without the key, the request proves no
// theft of anything usable, only that an old token was seen, and revoking
// would let whoever saw it end the owner's session. It is reported as
// unknown instead (invalid_grant), and the grant lives on. With the key,
// reuse detection applies as to any token.
func (s grantStore) GetRefreshTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, err := s.TokenStore.GetRefreshTokenSession(ctx, signature, session)
	if !errors.Is(err, fosite.ErrInactiveToken) || req == nil {
		return req, err
	}
	if req.GetClient() != nil && req.GetClient().IsPublic() {
		if bound := BoundKey(req.GetSession()); bound != "" {
			if jkt, ok := ctx.Value(proofKeyCtx{}).(string); !ok || subtle.ConstantTimeCompare([]byte(jkt), []byte(bound)) != 1 {
				return nil, fosite.ErrNotFound
			}
		}
	}
	// fosite revokes the grant next (RevokeRefreshToken records it).
	noteReplay(ctx, req)
	return req, err
}
