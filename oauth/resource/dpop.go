package resource

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/portcullis-auth/portcullis/oauth/dpop"
)

// DPoPOptions configures how [Middleware] accepts DPoP-bound access tokens
// (RFC 9449 §7): "Authorization: DPoP <token>" with a proof of possession
// of the key the token is bound to in the DPoP header. The zero value
// accepts them, with the defaults each field documents.
type DPoPOptions struct {
	// Disabled makes Middleware accept bearer tokens only (RFC 6750): the
	// DPoP scheme is then treated as an unknown scheme (401 with a Bearer
	// challenge), and no DPoP challenge is offered. A DPoP-bound token
	// (one with cnf.jkt) is refused either way when presented as a bearer
	// token (RFC 9449 §7.2). Default false: both schemes are accepted.
	Disabled bool
	// Algorithms is the allow-list of proof signature algorithms (names
	// of dpop.SupportedAlgorithms, all asymmetric; others are ignored),
	// also announced in the algs parameter of DPoP challenges (RFC 9449
	// §7.1). Default (nil or empty): dpop.SupportedAlgorithms.
	Algorithms []string
	// MaxAge is how long after its iat a proof is accepted. Default
	// dpop.DefaultMaxAge (60s).
	MaxAge time.Duration
	// Leeway is how far ahead of this server's clock a proof's iat may
	// be. Zero means dpop.DefaultLeeway (5s); negative means none.
	Leeway time.Duration
	// Replay remembers the proofs accepted, so that each is accepted once
	// (RFC 9449 §11.1). Default: a dpop.MemoryReplayCache of the default
	// size, one per Verifier. Replicas of a resource server that each
	// keep their own cache accept a captured proof once per replica
	// within MaxAge; give them a shared cache to accept it once in all.
	// When Replay fails (an error, such as dpop.ErrReplayCacheFull), the
	// request is refused with 503 temporarily_unavailable, never accepted.
	Replay dpop.ReplayCache
	// Nonces, when set, makes a server nonce mandatory in proofs (RFC 9449
	// §9): a proof without a fresh one is refused with 401, a DPoP
	// challenge with error="use_dpop_nonce" and the nonce to use in the
	// DPoP-Nonce header (dpop.Transport retries with it). Successful DPoP
	// requests also get the current nonce, so that clients keep up with
	// it. Default nil: no nonce required.
	Nonces *dpop.Nonces
	// ExternalURL is the URL at which clients reach the root of what the
	// Middleware sees, scheme://host[:port][/prefix], for a resource
	// server behind a reverse proxy or mounted under http.StripPrefix: the
	// URI a proof must name (htu, RFC 9449 §4.3) is then ExternalURL
	// followed by the request's path as the Middleware receives it (a
	// trailing "/" of ExternalURL is dropped). When the proxy strips a
	// path prefix (https://example.com/api/users/me arrives as
	// /users/me), include the prefix: "https://example.com/api"; when it
	// forwards the path unchanged, give the origin only:
	// "https://example.com".
	//
	// Default (empty): the URI is rebuilt from the request as this server
	// received it: scheme https if the connection is TLS (r.TLS) and http
	// otherwise, the Host header, and the path. X-Forwarded-Proto,
	// X-Forwarded-Host, Forwarded and the like are NOT trusted (any client
	// can send them): behind a proxy, set ExternalURL. Without it, a
	// client may choose the Host the proof is checked against, so a proof
	// made for another server that shares this one's audience could be
	// presented here; ExternalURL closes that gap.
	ExternalURL string
}

// Validate reports the problems of o: an ExternalURL that is not an
// absolute http or https URL without user information, query or fragment.
// An invalid ExternalURL makes Middleware answer every DPoP request with
// 500 server_error; call Validate at start-up.
func (o DPoPOptions) Validate() error {
	_, err := parseExternalURL(o.ExternalURL)
	return err
}

// errExternalURL is the one error of parseExternalURL: the text never
// includes the value, which may come from anywhere.
var errExternalURL = errors.New("resource: DPoP ExternalURL must be an absolute http(s) URL without user information, query or fragment")

// parseExternalURL returns raw without a trailing "/", with the scheme
// and host in lower case, or "" when raw is empty.
func parseExternalURL(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", errExternalURL
	}
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "http" && scheme != "https") || u.Host == "" || u.User != nil || u.Opaque != "" ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(raw, "?#") {
		return "", errExternalURL
	}
	base := scheme + "://" + strings.ToLower(u.Host) + strings.TrimRight(u.EscapedPath(), "/")
	if _, err := dpop.NormalizeURI(base + "/"); err != nil {
		return "", errExternalURL
	}
	return base, nil
}

// dpopConfig is a Verifier's DPoP side.
type dpopConfig struct {
	verifier *dpop.Verifier
	// algs is the algs auth-param of challenges (`algs="ES256 ..."`), ""
	// when no algorithm is allowed.
	algs string
	// external is the parsed ExternalURL; "" means rebuild from the
	// request, unless externalErr is set.
	external    string
	externalErr error
}

func newDPoPConfig(o DPoPOptions, now func() time.Time) *dpopConfig {
	if o.Replay == nil {
		o.Replay = dpop.NewMemoryReplayCache(0, now)
	}
	algs := o.Algorithms
	if len(algs) == 0 {
		algs = nil // dpop.SupportedAlgorithms
	}
	c := &dpopConfig{verifier: dpop.NewVerifier(dpop.Options{
		Algorithms: algs, MaxAge: o.MaxAge, Leeway: o.Leeway, Replay: o.Replay, Nonces: o.Nonces, Now: now,
	})}
	if a := c.verifier.Algorithms(); len(a) > 0 {
		c.algs = `algs="` + strings.Join(a, " ") + `"`
	}
	c.external, c.externalErr = parseExternalURL(o.ExternalURL)
	return c
}

// challenge returns a DPoP challenge (RFC 9449 §7.1) with params (each
// `name="value"`, values already safe) and algs.
func (c *dpopConfig) challenge(params ...string) string {
	if c.algs != "" {
		params = append(params, c.algs)
	}
	if len(params) == 0 {
		return dpop.Scheme
	}
	return dpop.Scheme + " " + strings.Join(params, ", ")
}

// requestURI returns the URI a proof for r must name (htu): see
// DPoPOptions.ExternalURL.
func (c *dpopConfig) requestURI(r *http.Request) string {
	path := r.URL.EscapedPath()
	if c.external != "" {
		return c.external + path
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + path
}

// Fixed descriptions of the DPoP refusals that are not the dpop package's.
const (
	descNotBound       = "token is not DPoP-bound: present it with the Bearer scheme"
	descKeyBinding     = "DPoP proof key does not match the token's binding"
	descBoundAsBearer  = "token is DPoP-bound: present it with the DPoP scheme and a proof"
	descURIUnusable    = "DPoP proof htu does not match the request"
	descMisconfigured  = "DPoP is misconfigured on this resource server"
	descProofUnchecked = "DPoP proof could not be checked for replay"
)

// serveDPoP authenticates a request carrying "Authorization: DPoP token"
// (RFC 9449 §7) and passes it to next, or answers it.
func (v *Verifier) serveDPoP(w http.ResponseWriter, r *http.Request, next http.Handler, token string) {
	c := v.dpop
	refuse := func(code, desc string) {
		writeError(w, http.StatusUnauthorized, code, desc,
			c.challenge(`error="`+code+`"`, `error_description="`+quoteSafe(desc)+`"`))
	}
	if c.externalErr != nil {
		writeError(w, http.StatusInternalServerError, "server_error", descMisconfigured)
		return
	}
	// RFC 9449 §4.3 check 1 and §7.1: exactly one proof.
	proof, err := dpop.ProofFromHeader(r.Header)
	if err != nil {
		refuse(dpop.CodeInvalidProof, proofErrorDescription(err))
		return
	}
	claims, err := v.Verify(r.Context(), token)
	if err != nil {
		writeTokenError(w, err, c.challenge)
		return
	}
	if claims.JKT == "" {
		refuse(CodeInvalidToken, descNotBound)
		return
	}
	uri := c.requestURI(r)
	if _, err := dpop.NormalizeURI(uri); err != nil {
		// Without ExternalURL, a Host header that makes no URI: no proof
		// can name this request.
		refuse(dpop.CodeInvalidProof, descURIUnusable)
		return
	}
	p, err := c.verifier.Check(proof, dpop.Request{Method: r.Method, URI: uri, AccessToken: token})
	if err != nil {
		refuseProof(w, c, err, refuse)
		return
	}
	// RFC 9449 §6.1 and §7.1: the proof's key must be the token's. A
	// mismatch is the token's refusal ("invalid DPoP key binding"): a new
	// proof from the same key cannot help.
	if subtle.ConstantTimeCompare([]byte(p.JKT), []byte(claims.JKT)) != 1 {
		refuse(CodeInvalidToken, descKeyBinding)
		return
	}
	// Only an otherwise acceptable proof is recorded (a write to the
	// replay cache, perhaps a shared store).
	if err := c.verifier.Spend(r.Context(), p); err != nil {
		refuseProof(w, c, err, refuse)
		return
	}
	if n := c.verifier.Nonces(); n != nil {
		w.Header().Set(dpop.NonceHeader, n.Current())
	}
	next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, claims)))
}

// refuseProof answers a refusal of dpop.Verifier.Check or Spend: a
// *dpop.Error with its code (and, for use_dpop_nonce, the nonce to use),
// or, for any other error, which can only be the replay cache's (the URI
// was checked before), 503: the proof may be a replay, so it is not
// accepted, and the client may retry with a new one.
func refuseProof(w http.ResponseWriter, c *dpopConfig, err error, refuse func(code, desc string)) {
	e, ok := errors.AsType[*dpop.Error](err)
	switch {
	case !ok:
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, CodeTemporarilyUnavailable, descProofUnchecked)
	case e.Code == dpop.CodeUseNonce:
		w.Header().Set(dpop.NonceHeader, c.verifier.Nonces().Current())
		refuse(dpop.CodeUseNonce, e.Description)
	default:
		refuse(dpop.CodeInvalidProof, e.Description)
	}
}

// proofErrorDescription is the fixed description of a dpop error, or a
// generic one.
func proofErrorDescription(err error) string {
	if e, ok := errors.AsType[*dpop.Error](err); ok {
		return e.Description
	}
	return "invalid DPoP proof"
}
