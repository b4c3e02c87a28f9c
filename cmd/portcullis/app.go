package main

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/portcullis-auth/portcullis/audit"
	"github.com/portcullis-auth/portcullis/configs"
	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/seal"
	"github.com/portcullis-auth/portcullis/keys"
	"github.com/portcullis-auth/portcullis/oauth/clients"
	"github.com/portcullis-auth/portcullis/storage"
)

// app holds what every subcommand shares: configuration, logger and the
// open store. Services are built on demand, so a CLI call that only lists
// clients never needs the secrets key.
type app struct {
	cfg    *configs.Config
	logger *slog.Logger
	store  *storage.Store
	stdout io.Writer
	stderr io.Writer
	json   bool
}

// openApp loads the configuration and opens the database.
// openApp loads the configuration and opens the database. With
// requireSchema, a database whose schema is not at this binary's version
// is refused before anything in it changes (storage.Options.RequireSchema).
// serving is true for serve, the one command that issues access tokens.
func openApp(ctx context.Context, g *globals, stdout, stderr io.Writer, requireSchema, serving bool) (*app, error) {
	cfg, err := configs.Load(g.configFile, g.environ, g.overrides())
	if err != nil {
		return nil, err
	}
	logger := newLogger(cfg, stderr)
	// A revocation is remembered as long as the grant's access tokens may
	// live. Only serve knows that (its access_token_ttl); another command
	// (users disable, delete) may run without the servers' configuration,
	// so it records revocations for the longest lifetime the configuration
	// allows (the store's default).
	var accessTTL time.Duration
	if serving {
		accessTTL = cfg.AccessTokenTTL
	}
	store, err := storage.Open(ctx, cfg.DSN, storage.Options{
		MaxOpenConns:      cfg.Database.MaxOpenConns,
		MaxIdleConns:      cfg.Database.MaxIdleConns,
		ConnMaxLifetime:   cfg.Database.ConnMaxLifetime,
		ConnMaxIdleTime:   cfg.Database.ConnMaxIdleTime,
		QueryTimeout:      cfg.Database.QueryTimeout,
		RefreshReuseGrace: cfg.RefreshTokenReuseGrace,
		AccessTokenTTL:    accessTTL,
		RequireSchema:     requireSchema,
		Logger:            logger,
	})
	if se, ok := errors.AsType[*storage.SchemaError](err); ok {
		return nil, migrateHint(se)
	}
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	return &app{cfg: cfg, logger: logger, store: store, stdout: stdout, stderr: stderr, json: g.output == "json"}, nil
}

func (a *app) Close() error { return a.store.Close() }

func newLogger(cfg *configs.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel(), ReplaceAttr: plainErrors}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// plainErrors logs error values as their message only. slog's text handler
// formats them with %+v, which prints the stack trace fosite's errors carry
// (github.com/pkg/errors); logs never hold stack traces.
func plainErrors(_ []string, a slog.Attr) slog.Attr {
	if err, ok := a.Value.Any().(error); ok && a.Value.Kind() == slog.KindAny {
		return slog.String(a.Key, err.Error())
	}
	return a
}

// migrate applies pending migrations and logs what it applied.
func (a *app) migrate(ctx context.Context) ([]string, error) {
	applied, err := a.store.Migrate(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if len(applied) > 0 {
		a.logger.Info("database migrated", "applied", strings.Join(applied, ","))
	}
	return applied, nil
}

// logGalera says in the start-up log whether the database is a node of a
// MariaDB Galera cluster and warns about each setting Portcullis needs
// that the node lacks. A failed check is logged, not fatal.
func (a *app) logGalera(ctx context.Context) {
	r, err := a.store.CheckGalera(ctx)
	switch {
	case err != nil:
		a.logger.Warn("could not read the database's Galera settings", "err", err)
	case r != nil:
		a.logger.Info("database is a MariaDB Galera cluster node; causal reads on", "cluster_size", r.ClusterSize)
		for _, p := range r.Problems {
			a.logger.Warn("Galera setting: " + p)
		}
	}
}

// requireMigrated fails with one line naming both schema versions when the
// database is not migrated to this binary's schema, without touching it:
// only migrate (and serve, unless told not to) apply migrations.
func (a *app) requireMigrated(ctx context.Context) error {
	current, latest, err := a.store.SchemaVersion(ctx)
	if err != nil {
		return fmt.Errorf("read the database schema version: %w", err)
	}
	if current != latest {
		return migrateHint(&storage.SchemaError{Current: current, Latest: latest})
	}
	return nil
}

// migrateHint tells the operator what to do about a schema that is not at
// this binary's version.
func migrateHint(se *storage.SchemaError) error {
	return fmt.Errorf("%w: run `portcullis migrate`", se)
}

// secrets returns the secrets key and the old one (if configured). On
// SQLite without a configured key it generates PATH.key (mode 0600).
func (a *app) secrets() (primary, old []byte, err error) {
	primary, err = a.cfg.SecretsKeyBytes()
	if err != nil {
		return nil, nil, err
	}
	if primary == nil {
		path := a.cfg.SQLitePath()
		if path == "" {
			return nil, nil, fmt.Errorf("PORTCULLIS_SECRETS_KEY is required with a MySQL DSN")
		}
		var created bool
		primary, created, err = seal.LoadOrCreateKeyFile(path+".key", nil)
		if err != nil {
			return nil, nil, err
		}
		if created {
			a.logger.Warn("PORTCULLIS_SECRETS_KEY is not set: generated a secrets key; back it up, losing it loses the signing keys",
				"file", path+".key")
		}
	}
	old, err = a.cfg.SecretsKeyOldBytes()
	return primary, old, err
}

// sealer returns the Sealer for the configured secrets keys.
func (a *app) sealer() (*seal.Sealer, []byte, []byte, error) {
	primary, old, err := a.secrets()
	if err != nil {
		return nil, nil, nil, err
	}
	var olds [][]byte
	if old != nil {
		olds = append(olds, old)
	}
	s, err := seal.New(primary, olds...)
	return s, primary, old, err
}

// keyManager builds the signing-key manager from the configuration.
func (a *app) keyManager() (*keys.Manager, []byte, []byte, error) {
	sealer, primary, old, err := a.sealer()
	if err != nil {
		return nil, nil, nil, err
	}
	alg, err := keys.ParseAlgorithm(a.cfg.Keys.Algorithm)
	if err != nil {
		return nil, nil, nil, err
	}
	k := a.cfg.Keys
	return keys.NewManager(a.store, sealer, keys.Options{
		// ES256 and RS256 are always available to clients
		// (access_token_signed_response_alg; RFC 9068 §2.1 requires RS256).
		Algorithm: alg, Additional: []keys.Algorithm{keys.ES256, keys.RS256},
		RSABits: k.RSABits, RotationInterval: k.RotationInterval,
		Prepublication: k.Prepublication, ReloadInterval: k.ReloadInterval, JWKSMaxAge: k.JWKSMaxAge,
		Retention: a.cfg.AccessTokenTTL + k.RetentionLeeway, Logger: a.logger, Audit: a.audit(), Tx: a.store,
	}), primary, old, nil
}

// users builds the identity service.
func (a *app) users() *identity.Service {
	c := a.cfg
	return &identity.Service{
		Store:  a.store,
		Hasher: identity.NewPasswordHasher(c.Argon2Params()),
		Policy: identity.PasswordPolicy{MinLength: c.Password.MinLength, MaxLength: c.Password.MaxLength},
		Lockout: identity.LockoutPolicy{MaxFailures: c.Lockout.MaxFailures, Window: c.Lockout.Window,
			Duration: c.Lockout.Duration, Delay: c.Lockout.Delay, MaxDelay: c.Lockout.MaxDelay,
			TrustedNetworkTTL: c.Lockout.TrustedNetworkTTL},
		Logger:              a.logger,
		Sessions:            a.store,
		Throttles:           a.store,
		MaxConcurrentHashes: c.Argon2.MaxConcurrent,
		MaxHashWait:         c.Argon2.MaxWait,
		MFA:                 a.mfa(),
		Audit:               a.audit(),
	}
}

// audit is the audit trail, in the app's database.
func (a *app) audit() *audit.Log { return &audit.Log{Store: a.store} }

// mfa builds the second-factor part of the identity service. TOTP secrets
// are sealed under the secrets key; when it cannot be loaded (a CLI
// command on MySQL without PORTCULLIS_SECRETS_KEY), enrolment and code
// checks fail, while listing and resetting factors still work.
func (a *app) mfa() *identity.MFA {
	m := &identity.MFA{Factors: a.store, RecoveryCodes: a.store, Issuer: a.cfg.MFA.TOTPIssuer}
	if s, _, _, err := a.sealer(); err == nil {
		m.Sealer = s
	}
	return m
}

func (a *app) clients() *clients.Service {
	return &clients.Service{Store: a.store, Audit: a.audit(), Tx: a.store}
}

// refreshSecret derives the refresh-token HMAC key from a secrets key, so
// every replica sharing PORTCULLIS_SECRETS_KEY shares it too.
func refreshSecret(secretsKey []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, secretsKey, nil, "portcullis refresh-token hmac v1", 32)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
