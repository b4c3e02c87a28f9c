package main

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/portcullis-auth/portcullis/audit"
	"github.com/portcullis-auth/portcullis/configs"
	"github.com/portcullis-auth/portcullis/internal/server"
	"github.com/portcullis-auth/portcullis/internal/server/adminapi"
	"github.com/portcullis-auth/portcullis/internal/server/console"
	"github.com/portcullis-auth/portcullis/keys"
	"github.com/portcullis-auth/portcullis/oauth"
	"github.com/portcullis-auth/portcullis/oauth/clientcache"
	"github.com/portcullis-auth/portcullis/oauth/clients"
	"github.com/portcullis-auth/portcullis/oauth/dpop"
	"github.com/portcullis-auth/portcullis/oauth/revocation"
)

func serveCmd(g *globals, stdout, stderr io.Writer) *cobra.Command {
	var noMigrate bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the authorization server (public and admin listeners)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := openApp(cmd.Context(), g, stdout, stderr, false, true)
			if err != nil {
				return err
			}
			defer a.Close()
			if a.cfg.Database.AutoMigrate && !noMigrate {
				if _, err := a.migrate(cmd.Context()); err != nil {
					return err
				}
			} else if err := a.requireMigrated(cmd.Context()); err != nil {
				return err
			}
			a.logGalera(cmd.Context())
			return serve(cmd.Context(), a)
		},
	}
	cmd.Flags().BoolVar(&noMigrate, "no-migrate", false, "do not apply database migrations at start-up")
	return cmd
}

// running is the running Portcullis: both listeners and background loops.
type running struct {
	app         *app
	keys        *keys.Manager
	revocations *revocation.List
	public      http.Handler
	admin       http.Handler
}

// newRunning wires every component from the app's configuration.
func newRunning(ctx context.Context, a *app) (*running, error) {
	cfg := a.cfg
	if cfg.InsecureIssuer() {
		a.logger.Warn("the issuer is plain http on a non-loopback host; use https in production", "issuer", cfg.Issuer)
	}
	if cfg.ShortAccessTokenTTL() {
		a.logger.Warn("access_token_ttl is below 1m: meant for testing refresh and expiry, not for production",
			"access_token_ttl", cfg.AccessTokenTTL.String())
	}
	km, primary, old, err := a.keyManager()
	if err != nil {
		return nil, err
	}
	if err := km.Init(ctx); err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	rs, err := refreshSecret(primary)
	if err != nil {
		return nil, err
	}
	var rotated [][]byte
	if old != nil {
		o, err := refreshSecret(old)
		if err != nil {
			return nil, err
		}
		rotated = append(rotated, o)
	}
	users := a.users()
	// A revocation's ID may be read before its transaction commits; it is
	// looked for until well past the longest a transaction may stay open.
	gapTimeout := max(30*time.Second, 2*cfg.Database.QueryTimeout)
	revoked := revocation.New(a.store, revocation.Options{Interval: cfg.RevocationSyncInterval, GapTimeout: gapTimeout, Logger: a.logger})
	a.store.OnRevoke(func(ctx context.Context) {
		if err := revoked.Sync(ctx); err != nil {
			a.logger.Warn("revocation list sync after a revocation failed", "err", err)
		}
	})
	if err := revoked.Sync(ctx); err != nil {
		return nil, fmt.Errorf("revocation list: %w", err)
	}
	// Each argon2id hash leaves MemoryKiB of garbage behind; an idle
	// server would keep it resident until a collection minutes later.
	users.HashingIdle = debug.FreeOSMemory
	// Client authentication reads clients through the cache; this
	// process's own changes (admin API) invalidate it at once, other
	// processes' within client_cache.ttl.
	cache := clientcache.New(clientcache.Options{TTL: cfg.ClientCache.TTL, MaxEntries: cfg.ClientCache.MaxEntries})
	pcfg := oauth.ProviderConfig{
		Issuer: cfg.Issuer, AccessTokenTTL: cfg.AccessTokenTTL, RefreshTokenTTL: cfg.RefreshTokenTTL,
		RefreshSecret: rs, RotatedRefreshSecrets: rotated, Revocations: revoked, Audit: a.audit(), Logger: a.logger,
	}
	provider, err := oauth.NewProvider(pcfg, cache.TokenStore(a.store), km)
	if err != nil {
		return nil, err
	}
	codes, err := oauth.NewCodeIssuer(pcfg, a.store)
	if err != nil {
		return nil, err
	}
	dv, err := dpopVerifier(cfg.DPoP, primary, a.store)
	if err != nil {
		return nil, err
	}
	clientSvc := &clients.Service{Store: cache.ClientStore(a.store), Audit: a.audit(), Tx: cache.Transactor(a.store)}
	if cfg.Console.Enabled {
		if err := registerConsole(ctx, clientSvc, cfg, a.logger); err != nil {
			return nil, err
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	auditEvents := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_audit_events_total",
		Help: "Audit events stored (committed), by action and outcome.",
	}, []string{"action", "outcome"})
	reg.MustRegister(auditEvents)
	a.store.OnAudit(func(ev audit.Event) { auditEvents.WithLabelValues(ev.Action, ev.Outcome).Inc() })
	h, err := server.New(server.Options{
		Issuer: cfg.Issuer, Provider: provider, Store: a.store, Users: users,
		Clients: clientSvc, Keys: km, Console: cfg.Console.Enabled,
		Audit: a.audit(),
		Audience: oauth.AudiencePolicy{
			Default:        cfg.TokenDefaultAudience(),
			ScopeAudiences: map[string]string{adminapi.Scope: cfg.AdminAPIAudience()},
			RS256:          cfg.Keys.RS256Audiences,
		},
		AdminAudience:        cfg.AdminAPIAudience(),
		AdminURL:             cfg.AdminURL,
		Prepublication:       cfg.Keys.Prepublication,
		DefaultAlgorithm:     cfg.Keys.Algorithm,
		ScopesSupported:      cfg.ScopesSupported,
		Signup:               cfg.Signup.Enabled,
		MaxBodyBytes:         cfg.HTTP.MaxBodyBytes,
		TokenPerIP:           cfg.RateLimit.TokenPerIP,
		RevokePerClient:      cfg.RateLimit.RevokePerClient,
		SignupPerMinutePerIP: cfg.RateLimit.SignupPerMinutePerIP,
		TrustedProxies:       cfg.HTTP.TrustedProxies,
		CORSAllowedOrigins:   cfg.HTTP.CORSAllowedOrigins,
		Registry:             reg,
		Revocations:          revoked,
		Logger:               a.logger,
		DPoP:                 dv,
		ACR:                  oauth.ACRValues{Single: cfg.MFA.ACRSingleFactor, Multi: cfg.MFA.ACRMultiFactor},
		FirstParty: &server.FirstParty{Codes: codes, Sessions: a.store,
			SessionLifetime: cfg.MFA.AuthSessionLifetime, StepUpLifetime: cfg.MFA.StepUpSessionLifetime},
	})
	if err != nil {
		return nil, err
	}
	return &running{app: a, keys: km, revocations: revoked, public: h.Public, admin: h.Admin}, nil
}

// registerConsole makes the admin console's public client exist with the
// settings this configuration implies (clients.Service.Ensure): the
// first-party authorization_code grant and refresh_token, scope admin, the
// admin API's audience, and the admin listener's origin as its only CORS
// origin, since the console's page (admin listener) calls the token and
// challenge endpoints (public listener) from there.
func registerConsole(ctx context.Context, svc *clients.Service, cfg *configs.Config, logger *slog.Logger) error {
	origins, guessed := consoleOrigins(cfg)
	if guessed {
		logger.Warn("admin_addr names no single host; the admin console works from the origins listed only, set admin_url to the URL you open it at",
			"origins", origins)
	}
	_, err := svc.Ensure(ctx, console.ClientID, clients.Spec{
		Name: "Portcullis admin console", Public: true,
		GrantTypes: []string{"authorization_code", "refresh_token"},
		Scopes:     []string{adminapi.Scope}, Audience: []string{cfg.AdminAPIAudience()},
		CORSOrigins: origins,
	})
	if err != nil {
		return fmt.Errorf("register the admin console's client: %w", err)
	}
	return nil
}

// consoleOrigins returns the browser origin(s) of the admin listener:
// admin_url's, else http:// plus admin_addr; when admin_addr has no host
// or an unspecified one (":8081", "0.0.0.0:8081"), the loopback origins of
// its port, with guessed true.
func consoleOrigins(cfg *configs.Config) (origins []string, guessed bool) {
	if cfg.AdminURL != "" {
		if u, err := url.Parse(cfg.AdminURL); err == nil {
			return []string{u.Scheme + "://" + u.Host}, false
		}
	}
	host, port, err := net.SplitHostPort(cfg.AdminAddr)
	if err != nil {
		return nil, true
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return []string{"http://localhost:" + port, "http://127.0.0.1:" + port}, true
	}
	return []string{"http://" + net.JoinHostPort(host, port)}, false
}

// dpopVerifier checks DPoP proofs as cfg says, remembering proofs in the
// database (shared by every replica) and, when nonces are required,
// issuing them under a key derived from the secrets key (the same on
// every replica).
func dpopVerifier(cfg configs.DPoP, secretsKey []byte, replay dpop.ReplayCache) (*dpop.Verifier, error) {
	opts := dpop.Options{Algorithms: cfg.Algorithms, MaxAge: cfg.ProofMaxAge, Replay: replay}
	if cfg.Nonce {
		key, err := hkdf.Key(sha256.New, secretsKey, nil, "portcullis dpop nonce v1", 32)
		if err != nil {
			return nil, err
		}
		opts.Nonces = dpop.NewNonces(key, cfg.NonceLifetime, nil)
	}
	return dpop.NewVerifier(opts), nil
}

// serve runs both listeners until ctx is done, then shuts down gracefully.
func serve(ctx context.Context, a *app) error {
	s, err := newRunning(ctx, a)
	if err != nil {
		return err
	}
	cfg := a.cfg
	pubLn, err := net.Listen("tcp", cfg.PublicAddr)
	if err != nil {
		return fmt.Errorf("public listener: %w", err)
	}
	admLn, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		pubLn.Close()
		return fmt.Errorf("admin listener: %w", err)
	}
	newHTTP := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler: h, ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout, ReadTimeout: cfg.HTTP.ReadTimeout,
			WriteTimeout: cfg.HTTP.WriteTimeout, IdleTimeout: cfg.HTTP.IdleTimeout, MaxHeaderBytes: 32 << 10,
			ErrorLog: slog.NewLogLogger(a.logger.Handler(), slog.LevelWarn),
		}
	}
	pubSrv, admSrv := newHTTP(s.public), newHTTP(s.admin)

	bg, stopBG := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.keys.Run(bg) })
	wg.Go(func() { s.revocations.Run(bg) })
	wg.Go(func() { s.collectGarbage(bg) })

	errc := make(chan error, 2)
	go func() { errc <- pubSrv.Serve(pubLn) }()
	go func() { errc <- admSrv.Serve(admLn) }()
	a.logger.Info("portcullis listening", "public", pubLn.Addr().String(), "admin", admLn.Addr().String(),
		"issuer", cfg.Issuer, "storage", a.store.Driver())

	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	stopBG()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.HTTP.ShutdownTimeout)
	defer cancel()
	a.logger.Info("shutting down")
	serr := errors.Join(pubSrv.Shutdown(shutdownCtx), admSrv.Shutdown(shutdownCtx))
	wg.Wait()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return serr
}

// collectGarbage deletes expired token rows, revocations, stale guessing
// counters and audit events past audit.retention every ten minutes.
func (s *running) collectGarbage(ctx context.Context) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := s.app.store.DeleteExpired(ctx, time.Now().Add(-time.Hour))
			if err != nil {
				s.app.logger.Warn("token clean-up failed", "err", err)
				continue
			}
			if n > 0 {
				s.app.logger.Info("expired tokens removed", "rows", n)
			}
			if _, err := s.app.store.DeleteStaleThrottles(ctx, time.Now()); err != nil {
				s.app.logger.Warn("login counter clean-up failed", "err", err)
			}
			if r := s.app.cfg.Audit.Retention; r > 0 {
				n, err := s.app.audit().DeleteBefore(ctx, time.Now().Add(-r))
				if err != nil {
					s.app.logger.Warn("audit event clean-up failed", "err", err)
				} else if n > 0 {
					s.app.logger.Info("audit events past retention removed", "rows", n)
				}
			}
		}
	}
}
