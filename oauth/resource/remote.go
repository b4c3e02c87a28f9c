package resource

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// ErrKeyNotFound is returned (wrapped) by [RemoteKeySet.Key] when the issuer's
// most recently fetched JWK Set has no usable key with the requested kid.
var ErrKeyNotFound = errors.New("resource: key not found")

// ErrKeySetUnavailable is returned (wrapped, together with the cause) by
// [RemoteKeySet.Key] when no JWK Set has ever been fetched successfully, so
// the set cannot say whether a kid exists. Callers typically map it to
// "503 Service Unavailable" rather than to an invalid token.
var ErrKeySetUnavailable = errors.New("resource: remote key set unavailable")

// Defaults applied by [NewRemoteKeySet] to zero fields of [RemoteOptions].
const (
	// DefaultMinRefreshInterval is the default RemoteOptions.MinRefreshInterval.
	DefaultMinRefreshInterval = 5 * time.Second
	// DefaultRemoteMaxAge is the default RemoteOptions.DefaultMaxAge.
	DefaultRemoteMaxAge = 5 * time.Minute
	// DefaultRemoteMaxMaxAge is the default RemoteOptions.MaxMaxAge.
	DefaultRemoteMaxMaxAge = time.Hour
	// DefaultRemoteFetchTimeout is the default RemoteOptions.FetchTimeout.
	DefaultRemoteFetchTimeout = 10 * time.Second
	// DefaultUnknownKIDWait is the default RemoteOptions.UnknownKIDWait.
	DefaultUnknownKIDWait = 2 * time.Second
	// MaxRemoteResponseSize bounds the size of a metadata or JWKS response body.
	MaxRemoteResponseSize = 1 << 20
)

// metadataPath is the RFC 8414 §3 well-known suffix.
const metadataPath = "/.well-known/oauth-authorization-server"

// RemoteOptions configures a [RemoteKeySet]. The zero value is usable.
type RemoteOptions struct {
	// HTTPClient fetches metadata and JWK Sets. Default: a new client with a
	// Timeout of FetchTimeout (it never uses http.DefaultClient).
	HTTPClient *http.Client
	// MinRefreshInterval is the minimum time from the end of one fetch
	// attempt to the start of the next that was not asked for with Refresh:
	// refetches triggered by an unknown kid or an expired cache happen at
	// most once per interval, and never while an attempt is running, so
	// neither a flood of tokens with bogus kids nor a hung issuer leads to
	// more than one attempt at a time. It is also the lower bound on cache
	// freshness (a max-age of 0 counts as this). Default 5s.
	MinRefreshInterval time.Duration
	// DefaultMaxAge is how long a JWK Set stays fresh when the response has
	// no Cache-Control max-age. Default 5m.
	DefaultMaxAge time.Duration
	// MaxMaxAge caps the freshness taken from Cache-Control max-age, so that
	// keys removed at the issuer drop out in bounded time. Default 1h.
	MaxMaxAge time.Duration
	// FetchTimeout bounds one metadata+JWKS fetch, independently of the
	// caller's context (a fetch is shared by all concurrent callers and
	// may run in the background). Default 10s.
	FetchTimeout time.Duration
	// UnknownKIDWait bounds how long Key waits for a running fetch when
	// the kid is not among the keys at hand (or no key set was fetched
	// yet); the fetch itself goes on in the background, up to
	// FetchTimeout. Known kids never wait. Zero means DefaultUnknownKIDWait
	// (2s); a negative value means Key never waits.
	UnknownKIDWait time.Duration
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// Logger receives warnings about fetch failures and rejected keys.
	// Default: discard.
	Logger *slog.Logger
}

// RemoteKeySet is the verifier's view of an issuer's signing keys: it
// discovers the jwks_uri from the issuer's RFC 8414 metadata, fetches the
// RFC 7517 JWK Set, and caches it according to the response's Cache-Control
// max-age (bounded by RemoteOptions), revalidating with If-None-Match.
//
// Only public asymmetric signing keys are kept: each JWK must carry a kid,
// either a supported alg (ES256, ES384, ES512, RS256, RS384, RS512, PS256,
// PS384, PS512, EdDSA) matching its key type or no alg at all (RFC 7517
// §4.4; [RemoteKeySet.Key] then returns it with an empty Algorithm and the
// verifier decides, as [Verifier] does), a "use" that is absent or "sig",
// no private or symmetric material, EC keys on P-256, P-384 or P-521, and
// RSA moduli of at least 2048 bits. Other keys are skipped and logged.
//
// A key whose kid is in the cache is returned at once, even when the cache
// is no longer fresh: the expired set is then refreshed in the background
// (stale-while-revalidate), so a slow or hung issuer never delays the
// verification of tokens signed by keys already known. When the issuer is
// unreachable, keys from the last successful fetch keep being served
// (stale) until a fetch succeeds again. At most one fetch runs at a time.
//
// A RemoteKeySet is safe for concurrent use. Create it with [NewRemoteKeySet].
type RemoteKeySet struct {
	issuer string
	opts   RemoteOptions

	mu       sync.RWMutex
	jwksURI  string
	keys     map[string]*jose.JSONWebKey
	etag     string
	fetched  bool      // a JWK Set was fetched successfully at least once
	expires  time.Time // freshness of keys
	inflight *flight   // the running fetch, nil when none
	lastDone time.Time // end of the last fetch attempt, for MinRefreshInterval
	lastErr  error     // error of the last finished fetch attempt, nil on success
}

// flight is one fetch attempt, shared by every caller that arrives while it
// runs. err is written before done is closed.
type flight struct {
	done chan struct{}
	err  error
}

// NewRemoteKeySet returns a key set for the issuer identified exactly by
// issuer (for example "https://auth.example.com"). It does no I/O: discovery
// and the first JWKS fetch happen on the first call to Key or Refresh, so the
// issuer need not be up when the key set is created.
func NewRemoteKeySet(issuer string, opts RemoteOptions) *RemoteKeySet {
	if opts.MinRefreshInterval <= 0 {
		opts.MinRefreshInterval = DefaultMinRefreshInterval
	}
	if opts.DefaultMaxAge <= 0 {
		opts.DefaultMaxAge = DefaultRemoteMaxAge
	}
	if opts.MaxMaxAge <= 0 {
		opts.MaxMaxAge = DefaultRemoteMaxMaxAge
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = DefaultRemoteFetchTimeout
	}
	switch {
	case opts.UnknownKIDWait == 0:
		opts.UnknownKIDWait = DefaultUnknownKIDWait
	case opts.UnknownKIDWait < 0:
		opts.UnknownKIDWait = 0
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: opts.FetchTimeout}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &RemoteKeySet{issuer: issuer, opts: opts}
}

// Issuer returns the issuer identifier the key set was created with.
func (s *RemoteKeySet) Issuer() string { return s.issuer }

// Key returns the public key with the given kid.
//
// A kid in the cache is returned at once. If the cache has expired, Key
// also starts a background refresh (unless one is running, or the last
// attempt ended less than MinRefreshInterval ago) and does not wait for it.
//
// A kid not in the cache, or any kid before a key set was ever fetched,
// starts such a refresh (or joins the running one) and waits for it at most
// UnknownKIDWait, then looks again; a refresh that takes longer goes on in
// the background. If a refresh fails, previously fetched keys are still
// served.
//
// On failure it returns an error wrapping [ErrKeyNotFound] if the last
// fetched set lacks the kid, or wrapping [ErrKeySetUnavailable] if no set was
// ever fetched successfully, or ctx.Err() if ctx ends while waiting for a
// fetch. The returned key is a copy; its Key field (the crypto public key)
// is shared and must not be modified.
func (s *RemoteKeySet) Key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	now := s.opts.Now()
	s.mu.RLock()
	k, ok := s.keys[kid]
	fresh := s.fetched && now.Before(s.expires)
	due := s.inflight == nil && s.refreshDue(now)
	s.mu.RUnlock()
	if ok {
		if !fresh && due {
			s.startFetch(ctx, false)
		}
		return copyJWK(k), nil
	}

	// Unknown kid or nothing fetched yet: wait briefly for a (rate-limited)
	// refresh, then look again.
	waited := false
	if f := s.startFetch(ctx, false); f != nil {
		timer := time.NewTimer(s.opts.UnknownKIDWait)
		select {
		case <-f.done:
		case <-timer.C:
			waited = true
		case <-ctx.Done():
			timer.Stop()
			return nil, fmt.Errorf("resource: waiting for key set: %w", ctx.Err())
		}
		timer.Stop()
	}

	s.mu.RLock()
	defer s.mu.RUnlock()
	if k, ok := s.keys[kid]; ok {
		return copyJWK(k), nil
	}
	if !s.fetched {
		cause := s.lastErr
		switch {
		case waited:
			cause = fmt.Errorf("key set fetch still running after %v", s.opts.UnknownKIDWait)
		case cause == nil:
			cause = errors.New("no key set fetched yet")
		}
		return nil, fmt.Errorf("%w: %w", ErrKeySetUnavailable, cause)
	}
	if waited {
		return nil, fmt.Errorf("%w: kid %.64q (refresh still running after %v)", ErrKeyNotFound, kid, s.opts.UnknownKIDWait)
	}
	return nil, fmt.Errorf("%w: kid %.64q", ErrKeyNotFound, kid)
}

// Refresh fetches the JWK Set now (running discovery first if it has not
// succeeded yet), regardless of cache freshness and MinRefreshInterval, and
// waits for the result. A call made while a fetch is running waits for that
// fetch instead of starting another. On failure the cached keys are kept
// and the error is returned; if ctx ends first, Refresh returns ctx.Err()
// and the fetch goes on in the background (bounded by FetchTimeout).
func (s *RemoteKeySet) Refresh(ctx context.Context) error {
	f := s.startFetch(ctx, true)
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// refreshDue reports whether an unforced fetch may start at now: the last
// attempt ended at least MinRefreshInterval ago. The caller holds s.mu.
func (s *RemoteKeySet) refreshDue(now time.Time) bool {
	return s.lastDone.IsZero() || now.Sub(s.lastDone) >= s.opts.MinRefreshInterval
}

// startFetch returns the running fetch, or starts one in a new goroutine
// and returns it. Unless force is set, it returns nil instead of starting a
// fetch when the last attempt ended less than MinRefreshInterval ago.
//
// The fetch is shared by every caller, so it does not end with ctx (only
// ctx's values are kept); FetchTimeout bounds it.
func (s *RemoteKeySet) startFetch(ctx context.Context, force bool) *flight {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight != nil {
		return s.inflight
	}
	if !force && !s.refreshDue(s.opts.Now()) {
		return nil
	}
	f := &flight{done: make(chan struct{})}
	s.inflight = f
	go s.runFetch(context.WithoutCancel(ctx), f)
	return f
}

// runFetch runs the fetch of f, records its end and wakes its waiters.
func (s *RemoteKeySet) runFetch(ctx context.Context, f *flight) {
	fctx, cancel := context.WithTimeout(ctx, s.opts.FetchTimeout)
	err := s.fetch(fctx)
	cancel()
	s.mu.Lock()
	fetched := s.fetched
	s.mu.Unlock()
	if err != nil {
		msg := "fetching issuer key set failed; serving cached keys"
		if !fetched {
			msg = "fetching issuer key set failed; no keys yet, tokens are refused until a fetch succeeds"
		}
		s.opts.Logger.WarnContext(ctx, msg, "issuer", s.issuer, "err", err)
	}
	s.mu.Lock()
	s.lastErr = err
	s.lastDone = s.opts.Now()
	s.inflight = nil
	s.mu.Unlock()
	f.err = err
	close(f.done)
}

// fetch runs discovery if needed, then fetches the JWK Set.
func (s *RemoteKeySet) fetch(ctx context.Context) error {
	s.mu.RLock()
	jwksURI, etag := s.jwksURI, s.etag
	s.mu.RUnlock()
	if jwksURI == "" {
		u, err := s.discover(ctx)
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.jwksURI = u
		s.mu.Unlock()
		jwksURI = u
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, jwksURI, nil)
	if err != nil {
		return fmt.Errorf("resource: building JWKS request: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("resource: fetching JWKS: %w", err)
	}
	defer resp.Body.Close()
	now := s.opts.Now()
	maxAge := s.freshness(resp.Header)

	switch {
	case resp.StatusCode == http.StatusNotModified && etag != "":
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxRemoteResponseSize))
		s.mu.Lock()
		s.expires = now.Add(maxAge)
		s.mu.Unlock()
		return nil
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("resource: fetching JWKS %s: unexpected status %s", jwksURI, resp.Status)
	}

	body, err := readLimited(resp.Body)
	if err != nil {
		return fmt.Errorf("resource: reading JWKS: %w", err)
	}
	keys, err := s.parseJWKS(ctx, body)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.keys = keys
	s.etag = resp.Header.Get("ETag")
	s.fetched = true
	s.expires = now.Add(maxAge)
	s.mu.Unlock()
	return nil
}

// discover fetches RFC 8414 metadata and returns its jwks_uri. For an issuer
// with a path component it tries the RFC 8414 §3.1 location first
// (well-known suffix inserted before the path), then the suffix appended to
// the issuer (the OpenID Connect Discovery convention).
func (s *RemoteKeySet) discover(ctx context.Context) (string, error) {
	iss, err := url.Parse(s.issuer)
	if err != nil || (iss.Scheme != "https" && iss.Scheme != "http") || iss.Host == "" ||
		iss.RawQuery != "" || iss.Fragment != "" {
		return "", fmt.Errorf("resource: issuer %q is not an absolute http(s) URL without query or fragment", s.issuer)
	}
	candidates := []string{strings.TrimSuffix(s.issuer, "/") + metadataPath}
	if p := strings.TrimSuffix(iss.EscapedPath(), "/"); p != "" {
		inserted := *iss
		inserted.RawPath = ""
		inserted.Path = ""
		candidates = append([]string{inserted.String() + metadataPath + p}, candidates...)
	}

	var errs []error
	for _, u := range candidates {
		jwksURI, err := s.fetchMetadata(ctx, u, iss.Scheme)
		if err == nil {
			return jwksURI, nil
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("resource: discovery for issuer %q failed: %w", s.issuer, errors.Join(errs...))
}

func (s *RemoteKeySet) fetchMetadata(ctx context.Context, metadataURL, issuerScheme string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metadataURL, nil)
	if err != nil {
		return "", fmt.Errorf("building metadata request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("fetching metadata: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("fetching metadata %s: unexpected status %s", metadataURL, resp.Status)
	}
	body, err := readLimited(resp.Body)
	if err != nil {
		return "", fmt.Errorf("reading metadata: %w", err)
	}
	var md struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &md); err != nil {
		return "", fmt.Errorf("decoding metadata %s: %w", metadataURL, err)
	}
	// RFC 8414 §3.3: the issuer in the metadata must be identical to the
	// issuer the metadata was requested for.
	if md.Issuer != s.issuer {
		return "", fmt.Errorf("metadata %s: issuer %q does not match configured issuer %q", metadataURL, md.Issuer, s.issuer)
	}
	ju, err := url.Parse(md.JWKSURI)
	if err != nil || ju.Host == "" || (ju.Scheme != "https" && ju.Scheme != "http") {
		return "", fmt.Errorf("metadata %s: jwks_uri %q is not an absolute http(s) URL", metadataURL, md.JWKSURI)
	}
	if issuerScheme == "https" && ju.Scheme != "https" {
		return "", fmt.Errorf("metadata %s: jwks_uri %q must use https", metadataURL, md.JWKSURI)
	}
	return md.JWKSURI, nil
}

// freshness returns how long a response stays fresh per its Cache-Control
// field lines, bounded to [MinRefreshInterval, MaxMaxAge]. The directives
// of all lines are collected first, so their order does not matter (RFC
// 9111 §5.2; lists split over lines, RFC 9110 §5.3): no-store or no-cache
// (RFC 9111 §5.2.2.4, §5.2.2.5) anywhere count as a max-age of 0, and so do
// max-age directives with different values (RFC 9111 §4.2.1 allows treating
// such a response as stale). Otherwise max-age, in token or quoted-string
// form, is used; without one, DefaultMaxAge. Directive names are
// case-insensitive; commas inside quoted strings do not separate
// directives.
func (s *RemoteKeySet) freshness(h http.Header) time.Duration {
	var (
		noCache  bool
		maxAge   int64 = -1 // seconds; -1: none seen
		conflict bool
	)
	for _, line := range h.Values("Cache-Control") {
		for _, dir := range splitDirectives(line) {
			name, val, _ := strings.Cut(strings.TrimSpace(dir), "=")
			switch strings.ToLower(name) {
			case "max-age":
				n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64)
				if err != nil || n < 0 {
					continue // not delta-seconds: ignored
				}
				if maxAge >= 0 && n != maxAge {
					conflict = true
				}
				maxAge = n
			case "no-store", "no-cache":
				noCache = true
			}
		}
	}
	d := s.opts.DefaultMaxAge
	switch {
	case noCache || conflict:
		d = 0
	case maxAge >= 0:
		d = time.Duration(min(maxAge, int64(s.opts.MaxMaxAge/time.Second))) * time.Second
	}
	return min(max(d, s.opts.MinRefreshInterval), s.opts.MaxMaxAge)
}

// splitDirectives splits one Cache-Control field line at the commas that
// are not inside a quoted string (RFC 9110 §5.6.1, §5.6.4).
func splitDirectives(line string) []string {
	var (
		out     []string
		start   int
		quoted  bool
		escaped bool
	)
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case escaped:
			escaped = false
		case quoted && c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			out = append(out, line[start:i])
			start = i + 1
		}
	}
	return append(out, line[start:])
}

// parseJWKS decodes a JWK Set, keeping only acceptable public signing keys.
func (s *RemoteKeySet) parseJWKS(ctx context.Context, body []byte) (map[string]*jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("resource: decoding JWKS: %w", err)
	}
	if set.Keys == nil {
		return nil, errors.New(`resource: decoding JWKS: no "keys" member`)
	}
	out := make(map[string]*jose.JSONWebKey, len(set.Keys))
	for i, raw := range set.Keys {
		k, err := parseRemoteJWK(raw)
		if err != nil {
			s.opts.Logger.WarnContext(ctx, "ignoring JWK from issuer", "issuer", s.issuer, "index", i, "err", err)
			continue
		}
		if _, dup := out[k.KeyID]; dup {
			s.opts.Logger.WarnContext(ctx, "ignoring JWK with duplicate kid", "issuer", s.issuer, "kid", k.KeyID)
			continue
		}
		out[k.KeyID] = k
	}
	return out, nil
}

// parseRemoteJWK decodes one untrusted JWK and checks that it is a usable
// public signing key.
func parseRemoteJWK(raw json.RawMessage) (*jose.JSONWebKey, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return nil, fmt.Errorf("decoding JWK: %w", err)
	}
	// Members that carry private or symmetric key material
	// (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2).
	for _, m := range [...]string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"} {
		if _, ok := members[m]; ok {
			return nil, fmt.Errorf("JWK has private or symmetric member %q", m)
		}
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("decoding JWK: %w", err)
	}
	switch {
	case k.KeyID == "":
		return nil, errors.New("JWK has no kid")
	case k.Use != "" && k.Use != "sig":
		return nil, fmt.Errorf("JWK %q has use %q, want sig", k.KeyID, k.Use)
	case !k.Valid() || !k.IsPublic():
		return nil, fmt.Errorf("JWK %q is not a valid public key", k.KeyID)
	}
	if k.Algorithm == "" {
		// RFC 7517 §4.4: alg is OPTIONAL. The verifier then takes the
		// algorithm from the key type where it fixes one and from its own
		// allow-list otherwise (RFC 8725 §3.1); here the key only has to be
		// of a type some supported algorithm uses.
		if err := checkKeyType(k.Key); err != nil {
			return nil, fmt.Errorf("JWK %q without alg: %w", k.KeyID, err)
		}
		return &k, nil
	}
	if err := checkAlgMatchesKey(k.Algorithm, k.Key); err != nil {
		return nil, fmt.Errorf("JWK %q: %w", k.KeyID, err)
	}
	return &k, nil
}

// checkKeyType reports whether key is a public key of a type and size that
// some supported algorithm signs with: EC on P-256, P-384 or P-521, RSA of
// at least 2048 bits, or Ed25519.
func checkKeyType(key any) error {
	switch pub := key.(type) {
	case *ecdsa.PublicKey:
		if c := pub.Curve; c != elliptic.P256() && c != elliptic.P384() && c != elliptic.P521() {
			return fmt.Errorf("unsupported EC curve %s", c.Params().Name)
		}
	case *rsa.PublicKey:
		if pub.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits is too short", pub.N.BitLen())
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("unsupported key type %T", key)
	}
	return nil
}

// checkAlgMatchesKey reports whether alg is a supported JWS algorithm for
// the public key's type (and curve or size).
func checkAlgMatchesKey(alg string, key any) error {
	switch jose.SignatureAlgorithm(alg) {
	case jose.ES256, jose.ES384, jose.ES512:
		want := elliptic.P256()
		switch jose.SignatureAlgorithm(alg) {
		case jose.ES384:
			want = elliptic.P384()
		case jose.ES512:
			want = elliptic.P521()
		}
		pub, ok := key.(*ecdsa.PublicKey)
		if !ok || pub.Curve != want {
			return fmt.Errorf("alg %s needs an EC key on %s", alg, want.Params().Name)
		}
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		pub, ok := key.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("alg %s needs an RSA key", alg)
		}
		if pub.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits is too short", pub.N.BitLen())
		}
	case jose.EdDSA:
		if _, ok := key.(ed25519.PublicKey); !ok {
			return fmt.Errorf("alg %s needs an Ed25519 key", alg)
		}
	default:
		return fmt.Errorf("unsupported alg %q", alg)
	}
	return nil
}

// readLimited reads at most MaxRemoteResponseSize bytes, failing on more.
func readLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxRemoteResponseSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxRemoteResponseSize {
		return nil, fmt.Errorf("response body exceeds %d bytes", MaxRemoteResponseSize)
	}
	return bytes.TrimSpace(b), nil
}

// copyJWK returns a shallow copy of k with its slices cloned.
func copyJWK(k *jose.JSONWebKey) *jose.JSONWebKey {
	c := *k
	c.Certificates = append(c.Certificates[:0:0], k.Certificates...)
	c.CertificateThumbprintSHA1 = append(c.CertificateThumbprintSHA1[:0:0], k.CertificateThumbprintSHA1...)
	c.CertificateThumbprintSHA256 = append(c.CertificateThumbprintSHA256[:0:0], k.CertificateThumbprintSHA256...)
	return &c
}
