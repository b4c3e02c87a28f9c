package configs

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/clientip"
	"github.com/portcullis-auth/portcullis/internal/cors"
	"github.com/portcullis-auth/portcullis/keys"
	"github.com/portcullis-auth/portcullis/oauth/clients"
	"github.com/portcullis-auth/portcullis/oauth/dpop"
	"github.com/portcullis-auth/portcullis/storage"
)

// Limits enforced by Validate beyond those of the packages configured
// (identity.Argon2Params.Validate, keys.ParseAlgorithm, cors.ParseOrigins,
// clientip.New, clients.ValidScope and clients.ValidAudience), which Validate
// calls rather than restates.
const (
	minAccessTokenTTL  = time.Second
	maxAccessTokenTTL  = 24 * time.Hour
	maxRefreshTokenTTL = 8760 * time.Hour
	minPasswordLength  = 8
	maxPasswordLength  = 1024
	// minArgon2Salt is for new hashes (RFC 9106 section 3.1 recommends
	// 128 bits); the hasher still accepts stored hashes with 8.
	minArgon2Salt   = 16
	minRotation     = time.Hour
	minMaxBodyBytes = 1 << 10
	maxMaxBodyBytes = 10 << 20
)

// ErrSecretsKeyRequired is joined into the error of [Config.Validate] (and so
// of [Load]) when the DSN is MySQL and secrets_key is empty; test for it with
// [errors.Is].
var ErrSecretsKeyRequired = errors.New("PORTCULLIS_SECRETS_KEY is required with a MySQL DSN: " +
	"signing keys are stored encrypted in the shared database, so every replica needs the same key " +
	"and none may generate its own; generate one with `openssl rand -base64 32`")

// problems collects validation failures, each prefixed with its key.
type problems []error

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

// Validate checks every field and returns nil, or an error joining (with
// [errors.Join]) one error per problem, each naming its key by dotted path.
// No error contains a secret: neither secrets key nor the DSN password.
func (c *Config) Validate() error {
	var p problems
	c.validateDSN(&p)
	c.validateIssuer(&p)
	c.validateAudiences(&p)
	c.validateScopesSupported(&p)
	validateAddr(&p, "public_addr", c.PublicAddr)
	validateAddr(&p, "admin_addr", c.AdminAddr)
	if c.PublicAddr == c.AdminAddr && c.PublicAddr != "" {
		p.add("admin_addr", "must differ from public_addr (%s)", c.PublicAddr)
	}

	if c.AccessTokenTTL < minAccessTokenTTL || c.AccessTokenTTL > maxAccessTokenTTL {
		p.add("access_token_ttl", "%s is outside %s..%s", fmtDuration(c.AccessTokenTTL),
			fmtDuration(minAccessTokenTTL), fmtDuration(maxAccessTokenTTL))
	}
	if c.RefreshTokenTTL < c.AccessTokenTTL || c.RefreshTokenTTL > maxRefreshTokenTTL {
		p.add("refresh_token_ttl", "%s is outside access_token_ttl (%s)..%s", fmtDuration(c.RefreshTokenTTL),
			fmtDuration(c.AccessTokenTTL), fmtDuration(maxRefreshTokenTTL))
	}

	if c.RefreshTokenReuseGrace < 0 || c.RefreshTokenReuseGrace > 5*time.Minute {
		p.add("refresh_token_reuse_grace", "%s is outside 0..5m", fmtDuration(c.RefreshTokenReuseGrace))
	}
	if c.RevocationSyncInterval < 100*time.Millisecond || c.RevocationSyncInterval > time.Minute {
		p.add("revocation_sync_interval", "%s is outside 100ms..1m", fmtDuration(c.RevocationSyncInterval))
	}

	if _, err := c.SecretsKeyBytes(); err != nil {
		p = append(p, err)
	}
	if _, err := c.SecretsKeyOldBytes(); err != nil {
		p = append(p, err)
	}

	c.validatePassword(&p)
	c.validateArgon2(&p)
	c.validateLockout(&p)
	c.validateKeys(&p)
	c.validateDatabase(&p)
	c.validateHTTP(&p)

	if c.RateLimit.TokenPerIP < 0 {
		p.add("rate_limit.token_per_ip", "must not be negative (0 disables the limit)")
	}
	if c.RateLimit.SignupPerMinutePerIP < 0 {
		p.add("rate_limit.signup_per_minute_per_ip", "must not be negative (0 disables the limit)")
	}
	if r := c.Audit.Retention; r < 0 || (r > 0 && r < time.Hour) {
		p.add("audit.retention", "must be 0 (keep forever) or at least 1h")
	}
	if c.RateLimit.RevokePerClient < 0 {
		p.add("rate_limit.revoke_per_client", "must not be negative (0 disables the limit)")
	}
	if c.ClientCache.TTL < 0 || c.ClientCache.TTL > time.Minute {
		p.add("client_cache.ttl", "%s is outside 0..1m (0 disables the cache)", fmtDuration(c.ClientCache.TTL))
	}
	if c.ClientCache.MaxEntries < 1 {
		p.add("client_cache.max_entries", "must be at least 1")
	}
	c.validateDPoP(&p)
	c.validateMFA(&p)
	if c.AdminURL != "" {
		if u, err := url.Parse(c.AdminURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
			p.add("admin_url", "must be an absolute http(s) URL without user information, query or fragment")
		}
	}
	if c.Argon2.MaxConcurrent < 0 {
		p.add("argon2.max_concurrent", "must not be negative (0 means the number of CPUs)")
	}
	if c.Argon2.MaxWait < 0 || c.Argon2.MaxWait > time.Minute {
		p.add("argon2.max_wait", "%s is outside 0..1m (0 means no bound)", fmtDuration(c.Argon2.MaxWait))
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		p.add("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	if !slices.Contains([]string{"text", "json"}, c.Log.Format) {
		p.add("log.format", "%q is not one of text, json", c.Log.Format)
	}
	return errors.Join(p...)
}

// validateDSN checks the scheme and the form of the DSN without ever quoting
// it, and requires a secrets key with MySQL.
func (c *Config) validateDSN(p *problems) {
	d, err := storage.ParseDSN(c.DSN)
	if err != nil {
		p.add("dsn", "%s", err.Error())
		return
	}
	if d.Driver == storage.DriverMySQL && strings.TrimSpace(c.SecretsKey) == "" {
		*p = append(*p, ErrSecretsKeyRequired)
	}
}

// validateIssuer checks the issuer identifier (RFC 8414 section 2).
func (c *Config) validateIssuer(p *problems) {
	const key = "issuer"
	if c.Issuer == "" {
		p.add(key, "required, an absolute http(s) URL such as https://auth.example.com")
		return
	}
	u, err := url.Parse(c.Issuer)
	switch {
	case err != nil:
		p.add(key, "%q is not a URL: %v", c.Issuer, errors.Unwrap(err))
	case u.Scheme != "http" && u.Scheme != "https":
		p.add(key, "%q is not an absolute http or https URL", c.Issuer)
	case u.Host == "":
		p.add(key, "%q has no host", c.Issuer)
	case u.User != nil:
		p.add(key, "must not contain user information")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.HasSuffix(c.Issuer, "#"):
		p.add(key, "must not have a query or fragment (RFC 8414 section 2)")
	case strings.HasSuffix(c.Issuer, "/"):
		p.add(key, "%q must not end with a slash", c.Issuer)
	}
}

// validateScopesSupported checks that scopes_supported lists distinct
// scopes a client could be registered for (clients.ValidScope: RFC 6749
// section 3.3 scope-tokens of at most 128 characters).
func (c *Config) validateScopesSupported(p *problems) {
	seen := make(map[string]bool, len(c.ScopesSupported))
	for _, s := range c.ScopesSupported {
		switch {
		case !clients.ValidScope(s):
			p.add("scopes_supported", "%q is not an RFC 6749 scope-token (printable ASCII without space, \" or \\, at most 128 characters)", s)
		case seen[s]:
			p.add("scopes_supported", "%q is listed twice", s)
		}
		seen[s] = true
	}
}

// validateAudiences checks default_audience and admin_audience: empty or
// an audience a client could be registered with (clients.ValidAudience), and
// different from each other, or every token without an audience would be
// accepted by the admin API's audience check.
func (c *Config) validateAudiences(p *problems) {
	for _, a := range []struct{ key, value string }{
		{"default_audience", c.DefaultAudience}, {"admin_audience", c.AdminAudience},
	} {
		if a.value != "" && !clients.ValidAudience(a.value) {
			p.add(a.key, "must be at most 512 characters without whitespace")
		}
	}
	if c.Issuer != "" && c.TokenDefaultAudience() == c.AdminAPIAudience() {
		p.add("admin_audience", "must differ from default_audience (%s)", c.TokenDefaultAudience())
	}
}

// validateAddr checks a listener address: host:port with a numeric port.
func validateAddr(p *problems, key, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		p.add(key, `%q is not host:port, such as ":8080" or "127.0.0.1:8081"`, addr)
	}
}

func (c *Config) validatePassword(p *problems) {
	pw := c.Password
	if pw.MinLength < minPasswordLength {
		p.add("password.min_length", "%d is below %d", pw.MinLength, minPasswordLength)
	}
	if pw.MaxLength < pw.MinLength || pw.MaxLength > maxPasswordLength {
		p.add("password.max_length", "%d is outside password.min_length (%d)..%d", pw.MaxLength, pw.MinLength, maxPasswordLength)
	}
}

// validateArgon2 reports every parameter the hasher refuses
// (identity.Argon2Params.Problems, the bounds that also guard stored
// hashes), so that a value it would refuse is a start-up error rather than
// failing sign-ups and making unknown-user logins cheaper than wrong
// passwords; and new salts shorter than 16 bytes.
func (c *Config) validateArgon2(p *problems) {
	saltChecked := false
	for _, e := range c.Argon2Params().Problems() {
		key := "argon2"
		switch e.Param {
		case "Parallelism":
			key = "argon2.parallelism"
		case "MemoryKiB":
			key = "argon2.memory_kib"
		case "Iterations":
			key = "argon2.iterations"
		case "SaltLength":
			key, saltChecked = "argon2.salt_length", true
		case "KeyLength":
			key = "argon2.key_length"
		}
		p.add(key, "%v", e)
	}
	if a := c.Argon2; !saltChecked && a.SaltLength < minArgon2Salt {
		p.add("argon2.salt_length", "%d is below %d bytes", a.SaltLength, minArgon2Salt)
	}
}

// Argon2Params returns the argon2id parameters for identity's hasher.
func (c *Config) Argon2Params() identity.Argon2Params {
	a := c.Argon2
	return identity.Argon2Params{
		MemoryKiB: a.MemoryKiB, Iterations: a.Iterations, Parallelism: a.Parallelism,
		SaltLength: a.SaltLength, KeyLength: a.KeyLength,
	}
}

func (c *Config) validateLockout(p *problems) {
	l := c.Lockout
	if l.MaxFailures < 0 {
		p.add("lockout.max_failures", "must not be negative (0 disables lockout)")
	}
	if l.MaxFailures > 0 {
		if l.Duration <= 0 {
			p.add("lockout.duration", "must be positive while lockout is enabled (lockout.max_failures > 0)")
		}
		if l.Window <= 0 {
			p.add("lockout.window", "must be positive while lockout is enabled (lockout.max_failures > 0)")
		}
		if l.Delay < 0 {
			p.add("lockout.delay", "must not be negative (0 disables the account-wide delay)")
		}
		if l.Delay > 0 && (l.MaxDelay < l.Delay || l.MaxDelay > time.Hour) {
			p.add("lockout.max_delay", "%s is outside lockout.delay..1h", fmtDuration(l.MaxDelay))
		}
		if l.TrustedNetworkTTL < 0 || l.TrustedNetworkTTL > 8760*time.Hour {
			p.add("lockout.trusted_network_ttl", "%s is outside 0..8760h", fmtDuration(l.TrustedNetworkTTL))
		}
	}
}

func (c *Config) validateKeys(p *problems) {
	k := c.Keys
	if _, err := keys.ParseAlgorithm(k.Algorithm); err != nil {
		p.add("keys.algorithm", "%v", err)
	}
	if !slices.Contains([]int{2048, 3072, 4096}, k.RSABits) {
		p.add("keys.rsa_bits", "%d is not one of 2048, 3072, 4096", k.RSABits)
	}
	if k.RotationInterval != 0 && k.RotationInterval < minRotation {
		p.add("keys.rotation_interval", "%s is below %s (0 disables automatic rotation)",
			fmtDuration(k.RotationInterval), fmtDuration(minRotation))
	}
	if k.ReloadInterval <= 0 {
		p.add("keys.reload_interval", "must be positive")
	}
	if k.JWKSMaxAge < 0 {
		p.add("keys.jwks_max_age", "must not be negative")
	}
	if k.RetentionLeeway < 0 {
		p.add("keys.retention_leeway", "must not be negative")
	}
	for _, a := range k.RS256Audiences {
		if !clients.ValidAudience(a) {
			p.add("keys.rs256_audiences", "%q is not an audience (1 to 512 characters without whitespace)", a)
		}
	}
	if k.JWKSMaxAge+k.ReloadInterval >= k.Prepublication {
		p.add("keys.prepublication", "%s must exceed keys.jwks_max_age + keys.reload_interval (%s + %s): "+
			"a new key must reach every replica and every cached JWKS before it signs, "+
			"or verifiers reject its tokens as signed by an unknown key",
			fmtDuration(k.Prepublication), fmtDuration(k.JWKSMaxAge), fmtDuration(k.ReloadInterval))
	}
	if k.RotationInterval > 0 && k.Prepublication >= k.RotationInterval {
		p.add("keys.prepublication", "%s must be shorter than keys.rotation_interval (%s)",
			fmtDuration(k.Prepublication), fmtDuration(k.RotationInterval))
	}
}

func (c *Config) validateDatabase(p *problems) {
	d := c.Database
	if d.MaxOpenConns < 1 {
		p.add("database.max_open_conns", "must be at least 1: an unbounded pool can exhaust a shared database")
	}
	if d.MaxIdleConns < 1 || d.MaxIdleConns > max(d.MaxOpenConns, 1) {
		p.add("database.max_idle_conns", "must be between 1 and max_open_conns (%d)", d.MaxOpenConns)
	}
	if d.ConnMaxLifetime <= 0 {
		p.add("database.conn_max_lifetime", "must be positive (keep it below the server's wait_timeout)")
	}
	if d.ConnMaxIdleTime <= 0 {
		p.add("database.conn_max_idle_time", "must be positive")
	}
	if d.QueryTimeout < 100*time.Millisecond || d.QueryTimeout > time.Minute {
		p.add("database.query_timeout", "%s is outside 100ms..1m", fmtDuration(d.QueryTimeout))
	}
}

func (c *Config) validateHTTP(p *problems) {
	h := c.HTTP
	if h.MaxBodyBytes < minMaxBodyBytes || h.MaxBodyBytes > maxMaxBodyBytes {
		p.add("http.max_body_bytes", "%d is outside %d..%d (10 MiB)", h.MaxBodyBytes, minMaxBodyBytes, maxMaxBodyBytes)
	}
	for _, t := range []struct {
		key string
		d   time.Duration
	}{
		{"http.read_header_timeout", h.ReadHeaderTimeout},
		{"http.read_timeout", h.ReadTimeout},
		{"http.write_timeout", h.WriteTimeout},
		{"http.idle_timeout", h.IdleTimeout},
		{"http.shutdown_timeout", h.ShutdownTimeout},
	} {
		if t.d <= 0 {
			p.add(t.key, "must be positive")
		}
	}
	for _, tp := range h.TrustedProxies {
		if _, err := clientip.New([]string{tp}); err != nil {
			p.add("http.trusted_proxies", "%v", err)
		}
	}
	if _, err := cors.ParseOrigins(h.CORSAllowedOrigins); err != nil {
		p.add("http.cors_allowed_origins", "%v", err)
	}
}

// validateDPoP checks the dpop section.
func (c *Config) validateDPoP(p *problems) {
	d := c.DPoP
	if len(d.Algorithms) == 0 {
		p.add("dpop.algorithms", "must name at least one algorithm")
	}
	for _, a := range d.Algorithms {
		if !slices.Contains(dpop.SupportedAlgorithms, a) {
			p.add("dpop.algorithms", "%q is not supported (%s)", a, strings.Join(dpop.SupportedAlgorithms, ", "))
		}
	}
	if d.ProofMaxAge < 5*time.Second || d.ProofMaxAge > 10*time.Minute {
		p.add("dpop.proof_max_age", "%s is outside 5s..10m", fmtDuration(d.ProofMaxAge))
	}
	if d.NonceLifetime < 10*time.Second || d.NonceLifetime > time.Hour {
		p.add("dpop.nonce_lifetime", "%s is outside 10s..1h", fmtDuration(d.NonceLifetime))
	}
}

// acrRE is the character set of an acr value: printable ASCII without
// space, quote or backslash, so that it fits a WWW-Authenticate
// acr_values parameter (RFC 9470 §3) unescaped.
var acrRE = regexp.MustCompile(`^[!#-\[\]-~]{1,64}$`)

// validateMFA checks the mfa section.
func (c *Config) validateMFA(p *problems) {
	m := c.MFA
	if m.TOTPIssuer == "" || strings.Contains(m.TOTPIssuer, ":") || len(m.TOTPIssuer) > 64 {
		p.add("mfa.totp_issuer", "must be 1 to 64 characters without a colon")
	}
	if !acrRE.MatchString(m.ACRSingleFactor) {
		p.add("mfa.acr_single_factor", "must be 1 to 64 printable ASCII characters without space, quote or backslash")
	}
	if !acrRE.MatchString(m.ACRMultiFactor) {
		p.add("mfa.acr_multi_factor", "must be 1 to 64 printable ASCII characters without space, quote or backslash")
	}
	if m.ACRSingleFactor == m.ACRMultiFactor {
		p.add("mfa.acr_multi_factor", "must differ from mfa.acr_single_factor")
	}
	if m.AuthSessionLifetime < 30*time.Second || m.AuthSessionLifetime > 30*time.Minute {
		p.add("mfa.auth_session_lifetime", "%s is outside 30s..30m", fmtDuration(m.AuthSessionLifetime))
	}
	if m.StepUpSessionLifetime < time.Minute || m.StepUpSessionLifetime > 720*time.Hour {
		p.add("mfa.step_up_session_lifetime", "%s is outside 1m..720h", fmtDuration(m.StepUpSessionLifetime))
	}
}
