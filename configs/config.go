package configs

import (
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/portcullis-auth/portcullis/internal/seal"
	"github.com/portcullis-auth/portcullis/storage"
)

// SecretsKeySize is the length in bytes of a decoded secrets key.
const SecretsKeySize = seal.KeySize

// Config is the whole portcullis configuration. Build it with [Load] or
// [Default]; a Config built by hand must pass [Config.Validate] before use.
//
// The yaml tag of each field is its key in the YAML file and, joined with
// dots, in overrides and (upper-cased, with "_") in environment variables.
// A field tagged redact is a secret: it is never printed or logged.
type Config struct {
	// DSN selects and locates the database: "sqlite://PATH" for the embedded,
	// pure-Go SQLite (PATH is a file path, without query parameters) or
	// "mysql://USER:PASS@tcp(HOST:PORT)/DB?parseTime=true" for MySQL or
	// MariaDB, where everything after "mysql://" is a go-sql-driver/mysql DSN.
	// Default: "sqlite://portcullis.db".
	DSN string `yaml:"dsn" redact:"dsn"`

	// Issuer is the "iss" claim of every token and the base of the discovery
	// URLs: an absolute http or https URL with no query or fragment. Load
	// trims a trailing slash. Plain http is allowed everywhere, but see
	// [Config.InsecureIssuer]. Default: "http://localhost:8080".
	Issuer string `yaml:"issuer"`

	// DefaultAudience is the "aud" of an access token whose client has no
	// audience registered and requested none (RFC 9068 section 2.2: aud is
	// required). A URI or other string without whitespace, at most 512
	// characters. Default: "" (empty), which means the issuer.
	DefaultAudience string `yaml:"default_audience"`

	// AdminAudience is the audience identifier of the admin API as a
	// resource server: it accepts only tokens whose "aud" includes it. A
	// token granted scope admin without an explicit audience or resource
	// request carries it, and a client registered for scope admin may
	// request it. Must differ from the default audience. Default: ""
	// (empty), which means the issuer followed by "/admin".
	AdminAudience string `yaml:"admin_audience"`

	// ScopesSupported is the "scopes_supported" member of the RFC 8414
	// metadata: the scope values this server advertises to clients. A
	// client is granted the scopes registered on it, whatever this list
	// says; RFC 8414 section 2 lets a server leave some supported scopes
	// out, so list those meant to be discovered. Each is an RFC 6749
	// section 3.3 scope-token; an empty list omits the member. Default:
	// ["admin"], the one scope Portcullis itself defines (its admin API).
	ScopesSupported []string `yaml:"scopes_supported"`

	// PublicAddr is the host:port of the public listener (token, revoke,
	// introspect, JWKS, discovery, signup, health). Default: ":8080".
	PublicAddr string `yaml:"public_addr"`

	// AdminAddr is the host:port of the admin listener (admin API, metrics).
	// Default: "127.0.0.1:8081".
	AdminAddr string `yaml:"admin_addr"`

	// AdminURL is the admin listener's base URL as admin clients reach it
	// (scheme://host[:port][/prefix], for example behind a TLS-terminating
	// proxy): the htu of a DPoP proof at the admin API must be it plus the
	// request's path. Default: "" (the URL the request names: its Host
	// header, over http).
	AdminURL string `yaml:"admin_url"`

	// AccessTokenTTL is the access-token lifetime, between 1s and 24h; below
	// 1m serve logs a warning (see [Config.ShortAccessTokenTTL]), since such
	// lifetimes are meant for testing refresh and expiry. Default: 15m.
	AccessTokenTTL time.Duration `yaml:"access_token_ttl"`

	// RefreshTokenTTL is the refresh-token lifetime, at least AccessTokenTTL
	// and at most 8760h. Default: 720h.
	RefreshTokenTTL time.Duration `yaml:"refresh_token_ttl"`

	// RefreshTokenReuseGrace is how long after a refresh token was used a
	// second use counts as a concurrent duplicate (refused, the grant
	// survives) instead of a replay (the whole grant is revoked, RFC 9700
	// section 4.14.2), and only while the token's successor is unused;
	// between 0 (strict) and 5m. Default: 0, strict, as Hydra and Keycloak:
	// a grace also spares a thief who refreshed first from detection when
	// the victim's client presents the old token within it.
	RefreshTokenReuseGrace time.Duration `yaml:"refresh_token_reuse_grace"`

	// RevocationSyncInterval is how often each replica reads the grants
	// revoked on other replicas (access tokens are stateless: introspection
	// and the admin API check them against the in-memory list of revoked
	// grants). A revocation is seen at once by the replica that made it
	// and by the others within this interval plus one query; the admin API
	// always reads the newest revocations first. Between 100ms and 1m.
	// Default: 1s.
	RevocationSyncInterval time.Duration `yaml:"revocation_sync_interval"`

	// SecretsKey is the base64 (standard or URL alphabet, padded or not) of
	// the 32-byte key that encrypts private signing keys and TOTP secrets at
	// rest. Required
	// with a MySQL DSN; with SQLite, when empty, the server generates one into
	// PATH.key. Default: "" (empty).
	SecretsKey string `yaml:"secrets_key" redact:"true"`

	// SecretsKeyOld is the previous secrets key, in the same format: what
	// was sealed under it still opens, and `portcullis keys rewrap`
	// re-encrypts signing keys and TOTP secrets under SecretsKey, after
	// which it can be dropped. Default: "" (empty).
	SecretsKeyOld string `yaml:"secrets_key_old" redact:"true"`

	// Signup configures self-service registration (POST /signup).
	Signup Signup `yaml:"signup"`
	// Console configures the admin console on the admin listener.
	Console Console `yaml:"console"`
	// Password is the password policy.
	Password Password `yaml:"password"`
	// Argon2 holds the argon2id parameters for new password hashes.
	Argon2 Argon2 `yaml:"argon2"`
	// Lockout configures account lockout after failed logins.
	Lockout Lockout `yaml:"lockout"`
	// Keys configures signing keys, their rotation and the JWKS.
	Keys Keys `yaml:"keys"`
	// Database tunes the database connection pool and migrations.
	Database Database `yaml:"database"`
	// HTTP holds request limits and timeouts shared by both listeners.
	HTTP HTTP `yaml:"http"`
	// RateLimit configures request rate limits.
	RateLimit RateLimit `yaml:"rate_limit"`
	// ClientCache configures the in-memory cache of clients behind client
	// authentication.
	ClientCache ClientCache `yaml:"client_cache"`
	// DPoP configures sender-constrained tokens (RFC 9449) at the token
	// endpoint and the admin API.
	DPoP DPoP `yaml:"dpop"`
	// MFA configures second factors and the authorization challenge
	// endpoint (first-party apps).
	MFA MFA `yaml:"mfa"`
	// Audit configures the audit trail (table audit_events).
	Audit Audit `yaml:"audit"`
	// Log configures the server's structured log.
	Log Log `yaml:"log"`
}

// Audit configures the audit trail.
type Audit struct {
	// Retention is how long audit events are kept: the server's garbage
	// collection (every ten minutes) deletes older ones. 0 keeps them
	// forever; otherwise at least 1h. Default: 2160h (90 days).
	Retention time.Duration `yaml:"retention"`
}

// Signup configures self-service registration.
type Signup struct {
	// Enabled mounts POST /signup. Default: true.
	Enabled bool `yaml:"enabled"`
}

// Console configures the admin console (internal/server/console).
type Console struct {
	// Enabled serves the console at /console/ on the admin listener and
	// registers its public client (client ID portcullis-console) at
	// start-up. Default: true.
	Enabled bool `yaml:"enabled"`
}

// Password is the password policy applied at signup and when an administrator
// sets a password.
type Password struct {
	// MinLength is the minimum password length in characters, at least 8.
	// Default: 12.
	MinLength int `yaml:"min_length"`
	// MaxLength is the maximum password length in characters, at least
	// MinLength and at most 1024. Default: 128.
	MaxLength int `yaml:"max_length"`
}

// Argon2 holds the argon2id parameters used for new password hashes. The
// defaults are the OWASP Password Storage Cheat Sheet minimum (m=19 MiB, t=2,
// p=1). Existing hashes keep the parameters encoded in them. The bounds are
// the hasher's, [identity.Argon2Params.Validate], except the salt's minimum.
type Argon2 struct {
	// MemoryKiB is the memory cost in KiB, at least 8*Parallelism and at most
	// 1048576 (1 GiB), and MemoryKiB*Iterations at most 4194304. Default: 19456.
	MemoryKiB uint32 `yaml:"memory_kib"`
	// Iterations is the time cost, 1..100. Default: 2.
	Iterations uint32 `yaml:"iterations"`
	// Parallelism is the number of lanes, at least 1. Default: 1.
	Parallelism uint8 `yaml:"parallelism"`
	// SaltLength is the random salt length in bytes, 16..64. Default: 16.
	SaltLength uint32 `yaml:"salt_length"`
	// KeyLength is the derived key length in bytes, 16..128. Default: 32.
	KeyLength uint32 `yaml:"key_length"`
	// MaxConcurrent bounds how many argon2id computations run at once (each
	// holds MemoryKiB of memory), so a burst of logins queues instead of
	// exhausting memory; 0 means the number of CPUs (GOMAXPROCS). Default: 0.
	MaxConcurrent int `yaml:"max_concurrent"`
	// MaxWait bounds how long a login or sign-up waits to be admitted
	// among the 2×MaxConcurrent under way (as many as hash, and as many
	// again doing their database work meanwhile); beyond it the request is
	// answered 503 temporarily_unavailable with Retry-After, so that under
	// a flood the admitted requests stay fast. 0 means no bound.
	// Default: 1s.
	MaxWait time.Duration `yaml:"max_wait"`
}

// Lockout configures the password-guessing throttle
// (identity.LockoutPolicy): a hard lock per account and client network, and
// a bounded, growing delay per account that never locks the owner out.
type Lockout struct {
	// MaxFailures is the number of failed logins on an account from one
	// client network (an IPv4 address or an IPv6 /64) that locks that
	// network out of the account, and the number of failures from all
	// networks after which the account-wide delay starts; 0 disables the
	// throttle. Default: 5.
	MaxFailures int `yaml:"max_failures"`
	// Duration is how long a network stays locked out of an account after
	// its last attempt. Default: 15m.
	Duration time.Duration `yaml:"duration"`
	// Window is how long after the last failure the counters reset.
	// Default: 15m.
	Window time.Duration `yaml:"window"`
	// Delay is the account-wide wait between attempts once MaxFailures
	// failures have been counted from all networks; it doubles with each
	// further failure. 0 disables the account-wide delay. Default: 1s.
	Delay time.Duration `yaml:"delay"`
	// MaxDelay caps the account-wide delay: the longest an account's owner
	// waits, from a network without failures, after an attacker's last
	// attempt. At least Delay. Default: 30s.
	MaxDelay time.Duration `yaml:"max_delay"`
	// TrustedNetworkTTL is how long after a successful login its client
	// network is trusted for the account: attempts from it skip the
	// account-wide delay, so a distributed attack cannot hold back an
	// owner logging in from a network they used before. 0 disables it.
	// Default: 720h.
	TrustedNetworkTTL time.Duration `yaml:"trusted_network_ttl"`
}

// Keys configures the token signing keys, their rotation and the JWKS.
type Keys struct {
	// Algorithm is the default JWS algorithm of access tokens (ES256 and
	// RS256 keys are kept besides, for clients that ask for them with
	// access_token_signed_response_alg): "ES256", "RS256" or
	// "EdDSA". Default: "ES256".
	Algorithm string `yaml:"algorithm"`
	// RSABits is the modulus size of new RS256 keys: 2048, 3072 or 4096.
	// Default: 2048.
	RSABits int `yaml:"rsa_bits"`
	// RotationInterval is how often a new signing key is created; 0 disables
	// automatic rotation, otherwise at least 1h. Default: 720h.
	RotationInterval time.Duration `yaml:"rotation_interval"`
	// Prepublication is how long a new key is published in the JWKS before it
	// signs. It must exceed JWKSMaxAge + ReloadInterval. Default: 1h.
	Prepublication time.Duration `yaml:"prepublication"`
	// ReloadInterval is how often a replica re-reads the key table.
	// Default: 15s.
	ReloadInterval time.Duration `yaml:"reload_interval"`
	// JWKSMaxAge is the Cache-Control max-age of the JWKS response.
	// Default: 10m.
	JWKSMaxAge time.Duration `yaml:"jwks_max_age"`
	// RetentionLeeway is added to the access-token TTL to decide how long a
	// retired key stays published. Default: 5m.
	RetentionLeeway time.Duration `yaml:"retention_leeway"`
	// RS256Audiences are the audiences of resource servers that only
	// verify RS256: an access token whose aud includes one is RS256-signed
	// unless its client registered access_token_signed_response_alg (RFC
	// 9068 section 2.1). Default: [] (none).
	RS256Audiences []string `yaml:"rs256_audiences"`
}

// Database tunes the database connection pool and migrations.
type Database struct {
	// MaxOpenConns caps open connections (MySQL; SQLite uses exactly one),
	// at least 1. Default: 25.
	MaxOpenConns int `yaml:"max_open_conns"`
	// MaxIdleConns caps idle connections, 1..MaxOpenConns. Default: 25.
	MaxIdleConns int `yaml:"max_idle_conns"`
	// ConnMaxLifetime closes connections older than this; positive, below
	// the server's wait_timeout. Default: 5m.
	ConnMaxLifetime time.Duration `yaml:"conn_max_lifetime"`
	// ConnMaxIdleTime closes connections idle longer than this; positive.
	// Default: 1m.
	ConnMaxIdleTime time.Duration `yaml:"conn_max_idle_time"`
	// QueryTimeout bounds the database work of each storage call: every
	// statement (waiting for a pool connection included) and every
	// transaction as a whole. Work cut off by it is rolled back and the
	// request gets 503 temporarily_unavailable, so a database that stops
	// answering cannot hang requests. It is also SQLite's busy timeout,
	// and the MySQL driver's readTimeout and writeTimeout unless the DSN
	// sets them; migrations are not bounded by it. 100ms..1m. Default: 2s,
	// so that a request answers within 5s even after two timed-out calls.
	QueryTimeout time.Duration `yaml:"query_timeout"`
	// AutoMigrate makes serve apply pending schema migrations at start;
	// without it serve refuses a schema that is not current. Other
	// commands never migrate: only `portcullis migrate` does. Default: true.
	AutoMigrate bool `yaml:"auto_migrate"`
}

// HTTP holds request limits and timeouts shared by both listeners.
type HTTP struct {
	// MaxBodyBytes caps request bodies; larger ones get 413. Between 1024 and
	// 10485760 (10 MiB). Default: 65536.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// ReadHeaderTimeout is http.Server.ReadHeaderTimeout. Default: 5s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout is http.Server.ReadTimeout. Default: 10s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout is http.Server.WriteTimeout. Default: 15s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout is http.Server.IdleTimeout. Default: 60s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// ShutdownTimeout bounds the graceful shutdown of each listener.
	// Default: 15s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// TrustedProxies are the IP addresses or CIDR prefixes of reverse
	// proxies whose X-Forwarded-For header is believed when finding the
	// client IP for rate limits. Default: none.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// CORSAllowedOrigins are browser origins (scheme://host[:port]) allowed,
	// besides each client's allowed_cors_origins, to call the token,
	// revocation and sign-up endpoints of the public listener; "*" and
	// "null" are refused (JWKS and metadata are readable from any origin
	// anyway). The admin listener never answers CORS. In the environment,
	// a comma-separated list. Default: none.
	CORSAllowedOrigins []string `yaml:"cors_allowed_origins"`
}

// RateLimit configures request rate limits.
type RateLimit struct {
	// TokenPerIP is the number of password-grant attempts per second allowed
	// from one client IP, with a burst of the same size; 0 disables the limit.
	// Default: 20.
	TokenPerIP int `yaml:"token_per_ip"`
	// SignupPerMinutePerIP is the number of sign-ups per minute allowed from
	// one client IP (each costs an argon2id hash), with a burst of the same
	// size; 0 disables the limit. Default: 30.
	SignupPerMinutePerIP int `yaml:"signup_per_minute_per_ip"`
	// RevokePerClient is the number of a client's own client_credentials
	// access tokens it may revoke per second on one replica, with a burst
	// of ten times that; 0 disables the limit. Access tokens are not
	// stored, so each such revocation is a row every replica keeps in
	// memory until the token would have expired: without a limit, a
	// client minting and revoking tokens in a loop grows every replica's
	// memory. Revocations of users' tokens are bounded by the password
	// grant's own limits. Default: 10.
	RevokePerClient int `yaml:"revoke_per_client"`
}

// DPoP configures DPoP (RFC 9449): proofs at the token endpoint (and the
// admin API) bind access tokens, and public clients' refresh tokens, to
// the client's key. A token request without a proof gets a Bearer token,
// unless its client is registered with dpop_bound_access_tokens.
type DPoP struct {
	// Algorithms are the JWS algorithms proofs may be signed with,
	// published as dpop_signing_alg_values_supported. Default: ES256,
	// ES384, ES512, PS256, PS384, PS512, RS256, RS384, RS512, EdDSA.
	Algorithms []string `yaml:"algorithms"`
	// ProofMaxAge is how long after its iat a proof is accepted (proofs
	// up to 5s ahead of the server's clock are too); each accepted proof's
	// jti is remembered in the database for that long, so that it is
	// accepted once across every replica. Between 5s and 10m. Default: 60s.
	ProofMaxAge time.Duration `yaml:"proof_max_age"`
	// Nonce makes the token endpoint demand a server nonce in every proof
	// (RFC 9449 §8): a proof without a fresh one is answered with
	// use_dpop_nonce and a DPoP-Nonce header, and the client sends it
	// again with that nonce. Nonces need no storage: every replica issues
	// and accepts the same ones (an HMAC under the secrets key). Default:
	// false.
	Nonce bool `yaml:"nonce"`
	// NonceLifetime is how long a nonce is accepted; replicas hand out a
	// new one every half of it. Between 10s and 1h. Default: 5m.
	NonceLifetime time.Duration `yaml:"nonce_lifetime"`
}

// MFA configures second factors (TOTP, RFC 6238) and the authorization
// challenge endpoint of first-party apps
// (draft-ietf-oauth-first-party-apps), where users log in with a password
// and a one-time code.
type MFA struct {
	// TOTPIssuer names the service in users' authenticator apps (the
	// otpauth URI's issuer); no colon. Default: Portcullis.
	TOTPIssuer string `yaml:"totp_issuer"`
	// ACRSingleFactor is the acr claim of tokens from a login with a
	// password alone. Default: "1".
	ACRSingleFactor string `yaml:"acr_single_factor"`
	// ACRMultiFactor is the acr claim of tokens from a login with a
	// password and a second factor, the value resource servers ask for in
	// a step-up challenge (RFC 9470). Default: "2".
	ACRMultiFactor string `yaml:"acr_multi_factor"`
	// AuthSessionLifetime is how long a login at the challenge endpoint
	// may take from one step to the next (each step's auth_session lives
	// that long). Between 30s and 30m. Default: 5m.
	AuthSessionLifetime time.Duration `yaml:"auth_session_lifetime"`
	// StepUpSessionLifetime is how long the auth_session of a finished
	// login (in the token response) can start a step-up, which always
	// needs a fresh factor. Between 1m and 720h. Default: 12h.
	StepUpSessionLifetime time.Duration `yaml:"step_up_session_lifetime"`
}

// ClientCache configures the in-memory cache of registered clients that
// client authentication at the token, revocation and introspection
// endpoints reads (package oauth/clientcache).
type ClientCache struct {
	// TTL is how long a client read from the database is served from
	// memory, between 0 and 1m; 0 disables the cache. It bounds how long a
	// change made by another process (another replica, or the CLI) goes
	// unnoticed: a rotated secret, a deleted client or a withdrawn grant
	// type, scope or introspection permission still works on this server
	// for at most TTL. Changes through this server's own admin API take
	// effect at once. Default: 1s.
	TTL time.Duration `yaml:"ttl"`
	// MaxEntries is the most clients kept, at least 1; only clients that
	// exist are cached, so unknown client IDs cannot fill it. Default:
	// 10000.
	MaxEntries int `yaml:"max_entries"`
}

// Log configures the server's structured log.
type Log struct {
	// Level is the minimum level logged: "debug", "info", "warn" or "error".
	// Default: "info".
	Level string `yaml:"level"`
	// Format is the log encoding: "text" or "json". Default: "text".
	Format string `yaml:"format"`
}

// Default returns the default configuration. It is valid as is: a server
// started with it uses SQLite in ./portcullis.db and listens on :8080.
func Default() Config {
	return Config{
		DSN:                    "sqlite://portcullis.db",
		Issuer:                 "http://localhost:8080",
		PublicAddr:             ":8080",
		AdminAddr:              "127.0.0.1:8081",
		AccessTokenTTL:         15 * time.Minute,
		RefreshTokenReuseGrace: 0,
		RevocationSyncInterval: time.Second,
		RefreshTokenTTL:        720 * time.Hour,
		ScopesSupported:        []string{"admin"},
		Signup:                 Signup{Enabled: true},
		Console:                Console{Enabled: true},
		Password:               Password{MinLength: 12, MaxLength: 128},
		Argon2: Argon2{
			MemoryKiB:   19456,
			Iterations:  2,
			Parallelism: 1,
			SaltLength:  16,
			KeyLength:   32,
			MaxWait:     time.Second,
		},
		Lockout: Lockout{
			MaxFailures:       5,
			Duration:          15 * time.Minute,
			Window:            15 * time.Minute,
			Delay:             time.Second,
			MaxDelay:          30 * time.Second,
			TrustedNetworkTTL: 720 * time.Hour,
		},
		Keys: Keys{
			Algorithm:        "ES256",
			RSABits:          2048,
			RotationInterval: 720 * time.Hour,
			Prepublication:   time.Hour,
			ReloadInterval:   15 * time.Second,
			JWKSMaxAge:       10 * time.Minute,
			RetentionLeeway:  5 * time.Minute,
			RS256Audiences:   []string{},
		},
		Database: Database{
			MaxOpenConns:    25,
			MaxIdleConns:    25,
			ConnMaxLifetime: 5 * time.Minute,
			ConnMaxIdleTime: time.Minute,
			QueryTimeout:    2 * time.Second,
			AutoMigrate:     true,
		},
		HTTP: HTTP{
			MaxBodyBytes:       64 << 10,
			ReadHeaderTimeout:  5 * time.Second,
			ReadTimeout:        10 * time.Second,
			WriteTimeout:       15 * time.Second,
			IdleTimeout:        60 * time.Second,
			ShutdownTimeout:    15 * time.Second,
			TrustedProxies:     []string{},
			CORSAllowedOrigins: []string{},
		},
		RateLimit:   RateLimit{TokenPerIP: 20, SignupPerMinutePerIP: 30, RevokePerClient: 10},
		ClientCache: ClientCache{TTL: time.Second, MaxEntries: 10000},
		DPoP: DPoP{
			Algorithms:    []string{"ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512", "EdDSA"},
			ProofMaxAge:   60 * time.Second,
			NonceLifetime: 5 * time.Minute,
		},
		MFA: MFA{TOTPIssuer: "Portcullis", ACRSingleFactor: "1", ACRMultiFactor: "2",
			AuthSessionLifetime: 5 * time.Minute, StepUpSessionLifetime: 12 * time.Hour},
		Audit: Audit{Retention: 90 * 24 * time.Hour},
		Log:   Log{Level: "info", Format: "text"},
	}
}

// StorageDriver returns "sqlite" or "mysql" according to the DSN scheme, or
// "" for any other DSN (which [Config.Validate] rejects).
func (c *Config) StorageDriver() string {
	d, err := storage.ParseDSN(c.DSN)
	if err != nil {
		return ""
	}
	return d.Driver
}

// SQLitePath returns the database file path of a "sqlite://PATH" DSN, or ""
// when the DSN is not a valid SQLite DSN.
func (c *Config) SQLitePath() string {
	d, err := storage.ParseDSN(c.DSN)
	if err != nil {
		return ""
	}
	return d.Path
}

// MySQLDSN returns the go-sql-driver/mysql DSN that follows "mysql://", with
// parseTime=true always set (storage scans DATETIME columns into time.Time;
// Validate rejects an explicit parseTime=false) and interpolateParams=true
// unless the DSN turns it off (storage.ParseDSN); for a DSN listing several
// hosts, it names the first. It returns "" when the DSN is not a valid MySQL
// DSN.
func (c *Config) MySQLDSN() string {
	d, err := storage.ParseDSN(c.DSN)
	if err != nil || d.MySQL == nil {
		return ""
	}
	return d.MySQL.FormatDSN()
}

// SecretsKeyBytes decodes SecretsKey. It returns nil and no error when the key
// is empty, and an error that never contains the key when it is not base64
// of exactly [SecretsKeySize] bytes.
func (c *Config) SecretsKeyBytes() ([]byte, error) {
	return decodeSecretsKey("secrets_key", c.SecretsKey)
}

// SecretsKeyOldBytes decodes SecretsKeyOld like [Config.SecretsKeyBytes].
func (c *Config) SecretsKeyOldBytes() ([]byte, error) {
	return decodeSecretsKey("secrets_key_old", c.SecretsKeyOld)
}

// decodeSecretsKey decodes a base64 key with seal.DecodeKey. Its
// errors name the configuration key and its environment variable but never
// include the value.
func decodeSecretsKey(name, s string) ([]byte, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	b, err := seal.DecodeKey(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (set by %s or the config file; generate one with `openssl rand -base64 %d`)",
			name, err, envName(name), SecretsKeySize)
	}
	return b, nil
}

// InsecureIssuer reports whether the issuer uses plain http on a host other
// than localhost or a loopback address, so that serve can log a warning: an
// OAuth server must be reached over TLS (RFC 6749 section 1.6), possibly
// terminated by a proxy in front of it.
func (c *Config) InsecureIssuer() bool {
	u, err := url.Parse(c.Issuer)
	if err != nil || u.Scheme != "http" {
		return false
	}
	return !isLoopbackHost(u.Hostname())
}

// ShortAccessTokenTTL reports whether the access-token lifetime is below one
// minute, so that serve can log a warning: such lifetimes are valid (for
// testing refresh and expiry, as Hydra and Keycloak allow), but in
// production they multiply refresh traffic and leave resource servers with
// no room for clock skew.
func (c *Config) ShortAccessTokenTTL() bool { return c.AccessTokenTTL < time.Minute }

// isLoopbackHost reports whether host is "localhost" or a loopback IP.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// LogLevel returns the slog level named by Log.Level, or [slog.LevelInfo]
// when the name is not one Validate accepts.
func (c *Config) LogLevel() slog.Level {
	switch strings.ToLower(c.Log.Level) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// TokenDefaultAudience returns the effective [Config.DefaultAudience]: the
// issuer when it is empty.
func (c *Config) TokenDefaultAudience() string {
	if c.DefaultAudience != "" {
		return c.DefaultAudience
	}
	return c.Issuer
}

// AdminAPIAudience returns the effective [Config.AdminAudience]: the
// issuer followed by "/admin" when it is empty.
func (c *Config) AdminAPIAudience() string {
	if c.AdminAudience != "" {
		return c.AdminAudience
	}
	return c.Issuer + "/admin"
}
