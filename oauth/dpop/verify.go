package dpop

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Defaults of [Options].
const (
	// DefaultMaxAge is how old a proof's iat may be.
	DefaultMaxAge = 60 * time.Second
	// DefaultLeeway is how far in the future a proof's iat may be (the
	// client's clock may be ahead).
	DefaultLeeway = 5 * time.Second
)

// Options configures a [Verifier].
type Options struct {
	// Algorithms is the allow-list of proof algorithms (names of
	// SupportedAlgorithms; others are ignored). Default: all of those.
	Algorithms []string
	// MaxAge is how long after its iat a proof is accepted. Default
	// DefaultMaxAge.
	MaxAge time.Duration
	// Leeway is how far ahead of the server's clock a proof's iat may be.
	// Zero means DefaultLeeway; negative means none.
	Leeway time.Duration
	// Replay remembers accepted proofs (RFC 9449 §11.1). Required: without
	// one, every proof is refused.
	Replay ReplayCache
	// Nonces, when set, makes a server nonce mandatory (§8, §9): a proof
	// without a fresh one is refused with use_dpop_nonce.
	Nonces *Nonces
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// Verifier checks DPoP proofs (RFC 9449 §4.3). It is safe for concurrent
// use.
type Verifier struct {
	opts Options
}

// NewVerifier returns a Verifier with opts, defaults filled in.
func NewVerifier(opts Options) *Verifier {
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	switch {
	case opts.Leeway == 0:
		opts.Leeway = DefaultLeeway
	case opts.Leeway < 0:
		opts.Leeway = 0
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Algorithms == nil {
		opts.Algorithms = SupportedAlgorithms
	}
	return &Verifier{opts: opts}
}

// Algorithms returns the algorithms the Verifier accepts, for metadata
// (dpop_signing_alg_values_supported) and WWW-Authenticate's algs.
func (v *Verifier) Algorithms() []string {
	var out []string
	for _, a := range allowList(v.opts.Algorithms) {
		out = append(out, string(a))
	}
	return out
}

// Nonces returns the Verifier's nonce source, nil when nonces are not
// required.
func (v *Verifier) Nonces() *Nonces { return v.opts.Nonces }

// Request is what a proof must match.
type Request struct {
	// Method is the HTTP method of the request (htm).
	Method string
	// URI is the request's URI as the client addressed it (htu):
	// scheme, host and path; query and fragment are ignored.
	URI string
	// AccessToken, when not empty, is the access token the request
	// presents; the proof must then carry its hash (ath, §7).
	AccessToken string
}

// Verify checks proof against req (RFC 9449 §4.3, and §7 with an access
// token) and records it as used: Check, then Spend. Every refusal is an
// [*Error]: code use_dpop_nonce when only a fresh nonce is missing (the
// caller answers with Nonces().Current() in DPoP-Nonce),
// invalid_dpop_proof otherwise. Any other error is the ReplayCache's: the
// proof could not be checked for replay, and the request must be refused
// as temporarily unavailable.
func (v *Verifier) Verify(ctx context.Context, proof string, req Request) (*Proof, error) {
	p, err := v.Check(proof, req)
	if err != nil {
		return nil, err
	}
	if err := v.Spend(ctx, p); err != nil {
		return nil, err
	}
	return p, nil
}

// Check is Verify without the replay check: a proof that passes it must
// still be spent (Spend) before the request is served. A server splits
// the two to spend proofs (a write to a shared store) only for requests
// that are otherwise acceptable, e.g. after client authentication.
func (v *Verifier) Check(proof string, req Request) (*Proof, error) {
	p, err := Parse(proof, v.opts.Algorithms)
	if err != nil {
		return nil, err
	}
	if p.Method != req.Method {
		return nil, invalid(ErrMethod, "DPoP proof htm does not match the request", nil)
	}
	want, err := NormalizeURI(req.URI)
	if err != nil {
		return nil, fmt.Errorf("dpop: request URI: %w", err)
	}
	if got, err := NormalizeURI(p.URI); err != nil || got != want {
		return nil, invalid(ErrURI, "DPoP proof htu does not match the request", nil)
	}
	now := v.opts.Now()
	if p.IssuedAt.Before(now.Add(-v.opts.MaxAge)) || p.IssuedAt.After(now.Add(v.opts.Leeway)) {
		return nil, invalid(ErrIssuedAt, "DPoP proof iat is outside the acceptance window", nil)
	}
	if req.AccessToken != "" {
		if subtle.ConstantTimeCompare([]byte(p.AccessTokenHash), []byte(AccessTokenHash(req.AccessToken))) != 1 {
			return nil, invalid(ErrAccessTokenHash, "DPoP proof ath does not match the access token", nil)
		}
	}
	if v.opts.Nonces != nil && !v.opts.Nonces.Valid(p.Nonce) {
		return nil, &Error{Code: CodeUseNonce, Description: "DPoP proof requires a fresh server nonce", Err: ErrNonce}
	}
	return p, nil
}

// Spend records p (a proof Check accepted) as used: an invalid_dpop_proof
// [*Error] wrapping [ErrReplay] if it was used before, the ReplayCache's
// error if it cannot tell.
func (v *Verifier) Spend(ctx context.Context, p *Proof) error {
	if v.opts.Replay == nil {
		return errors.New("dpop: no replay cache")
	}
	// The proof can be accepted until MaxAge after its iat; remembered
	// one second longer.
	fresh, err := v.opts.Replay.AddProof(ctx, ReplayID(p), p.IssuedAt.Add(v.opts.MaxAge+time.Second))
	if err != nil {
		return fmt.Errorf("dpop: replay check: %w", err)
	}
	if !fresh {
		return invalid(ErrReplay, "DPoP proof was used before", nil)
	}
	return nil
}

// ReplayID is the key under which a proof is remembered: the base64url
// SHA-256 of its key thumbprint and jti (43 characters), so that jti
// values chosen by one client never collide with another's.
func ReplayID(p *Proof) string {
	h := sha256.New()
	h.Write([]byte(p.JKT))
	h.Write([]byte{0})
	h.Write([]byte(p.ID))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// NormalizeURI returns raw's htu form for comparison (RFC 9449 §4.3 check
// 9, with RFC 3986 §6.2.2 and §6.2.3 normalization): an absolute http or
// https URI without user information, scheme and host in lower case, the
// scheme's default port removed, percent-encoding normalized (see
// normalizePath), an empty path as "/", and the query and fragment
// dropped. Dot segments are not removed: "/a/../b" is compared as it is.
func NormalizeURI(raw string) (string, error) {
	if len(raw) > maxClaimLength {
		return "", errors.New("URI too long")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("not a URI")
	}
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "http" && scheme != "https") || u.Hostname() == "" || u.User != nil || u.Opaque != "" {
		return "", errors.New("not an absolute http(s) URI")
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") { // IPv6, perhaps with a zone: its "%" is written "%25" (RFC 6874)
		host = "[" + strings.Replace(host, "%", "%25", 1) + "]"
	}
	if port := u.Port(); port != "" && !(scheme == "http" && port == "80") && !(scheme == "https" && port == "443") {
		host += ":" + port
	}
	// The path as written: RawPath when it differs from Go's encoding of
	// the decoded Path (which would turn "%2F" into "/").
	path := u.RawPath
	if path == "" {
		path = u.EscapedPath()
	}
	path = normalizePath(path)
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, nil
}

// normalizePath applies RFC 3986 §6.2.2.1 and §6.2.2.2 to path, a URI
// path whose percent-encodings are valid: a percent-encoded unreserved
// character is decoded, every other percent-encoding gets upper-case hex
// digits, and a byte that may not appear in a path as it is (a space,
// non-ASCII) is percent-encoded. A percent-encoded reserved character
// (such as "%2F") stays encoded: it is not equivalent to the character
// (RFC 3986 §2.2).
func normalizePath(path string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(path))
	for i := 0; i < len(path); i++ {
		c := path[i]
		if c == '%' && i+2 < len(path) && isHex(path[i+1]) && isHex(path[i+2]) {
			v := unhex(path[i+1])<<4 | unhex(path[i+2])
			if isUnreserved(v) {
				b.WriteByte(v)
			} else {
				b.WriteByte('%')
				b.WriteByte(hex[v>>4])
				b.WriteByte(hex[v&15])
			}
			i += 2
			continue
		}
		if !isUnreserved(c) && !strings.ContainsRune("!$&'()*+,;=:@/", rune(c)) {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// isUnreserved reports whether c is an RFC 3986 §2.3 unreserved character.
func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
