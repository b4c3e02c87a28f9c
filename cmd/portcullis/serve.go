package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/clientip"
	"github.com/portcullis-auth/portcullis/internal/cors"
	"github.com/portcullis-auth/portcullis/internal/httpjson"
	"github.com/portcullis-auth/portcullis/internal/ratelimit"
	"github.com/portcullis-auth/portcullis/keys"
	"github.com/portcullis-auth/portcullis/oauth"
	"github.com/portcullis-auth/portcullis/oauth/admin"
)

func serveCmd(g *globals, stdout, stderr io.Writer) *cobra.Command {
	var noMigrate bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the authorization server (public and admin listeners)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := openApp(cmd.Context(), g, stdout, stderr)
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
			return serve(cmd.Context(), a)
		},
	}
	cmd.Flags().BoolVar(&noMigrate, "no-migrate", false, "do not apply database migrations at start-up")
	return cmd
}

// server is the running Portcullis: both listeners and background loops.
type server struct {
	app    *app
	keys   *keys.Manager
	public http.Handler
	admin  http.Handler
}

// newServer wires every component from the app's configuration.
func newServer(ctx context.Context, a *app) (*server, error) {
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
	provider, err := oauth.NewProvider(oauth.ProviderConfig{
		Issuer: cfg.Issuer, AccessTokenTTL: cfg.AccessTokenTTL, RefreshTokenTTL: cfg.RefreshTokenTTL,
		RefreshSecret: rs, RotatedRefreshSecrets: rotated,
	}, a.store, users, km)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := newMetrics(reg)

	maxBytes := cfg.HTTP.MaxBodyBytes
	ips, err := clientip.New(cfg.HTTP.TrustedProxies)
	if err != nil {
		return nil, err
	}
	var tokenLimit, signupLimit *ratelimit.Keyed
	if n := cfg.RateLimit.TokenPerIP; n > 0 {
		tokenLimit = ratelimit.New(float64(n), n, 0)
	}
	if n := cfg.RateLimit.SignupPerMinutePerIP; n > 0 {
		signupLimit = ratelimit.New(float64(n)/60, n, 0)
	}
	token := &oauth.TokenHandler{
		Provider: provider, Store: a.store, Users: a.store, Limiter: tokenLimit, ClientIP: ips.LimitKey,
		MaxBytes: maxBytes, Logger: a.logger, Observe: m.observeGrant,
		Audience: oauth.AudiencePolicy{
			Default:        cfg.TokenDefaultAudience(),
			ScopeAudiences: map[string]string{admin.Scope: cfg.AdminAPIAudience()},
			RS256:          cfg.Keys.RS256Audiences,
		},
	}
	signup := &identity.SignupHandler{Users: users, Enabled: cfg.Signup.Enabled, MaxBytes: maxBytes,
		Limiter: signupLimit, ClientIP: ips.LimitKey, Logger: a.logger}
	md := oauth.NewMetadata(cfg.Issuer, cfg.Keys.Algorithm, cfg.Signup.Enabled)
	md.ScopesSupported = cfg.ScopesSupported
	meta := md.Handler()

	pub := http.NewServeMux()
	route := func(path, method string, h http.Handler) {
		pub.Handle(method+" "+path, m.instrument(path, a.logger, h))
	}
	// CORS (internal/cors): token and revocation for the server-wide
	// origins and those of the client the request names, sign-up for the
	// server-wide origins and those of any client, JWKS and metadata for
	// every origin. Introspection is for resource servers, not browsers;
	// the admin listener never answers CORS.
	corsPolicy, err := cors.NewPolicy(cfg.HTTP.CORSAllowedOrigins, a.store, a.logger)
	if err != nil {
		return nil, fmt.Errorf("http.cors_allowed_origins: %w", err)
	}
	withPreflight := func(path, method string, h http.Handler) {
		route(path, method, h)
		route(path, http.MethodOptions, h)
	}
	withPreflight("/signup", http.MethodPost, corsPolicy.AnyClientEndpoint(signup))
	withPreflight("/oauth2/token", http.MethodPost, corsPolicy.ClientEndpoint(token))
	withPreflight("/oauth2/revoke", http.MethodPost, corsPolicy.ClientEndpoint(
		&oauth.RevokeHandler{Provider: provider, Keys: km, MaxBytes: maxBytes, Logger: a.logger}))
	route("/oauth2/introspect", http.MethodPost, &oauth.IntrospectHandler{Provider: provider, MaxBytes: maxBytes, Logger: a.logger})
	withPreflight("/.well-known/jwks.json", http.MethodGet, cors.Public(km))
	withPreflight("/.well-known/oauth-authorization-server", http.MethodGet, cors.Public(meta))
	// The 404 that points at the RFC 8414 document is readable by browser
	// libraries trying OpenID discovery first, so they can fall back.
	withPreflight("/.well-known/openid-configuration", http.MethodGet, cors.Public(oauth.NoOpenIDConfiguration()))
	route("/health/alive", http.MethodGet, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	route("/health/ready", http.MethodGet, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := a.store.Ping(ctx); err != nil {
			a.logger.Warn("readiness check failed", "err", err)
			httpjson.WriteError(w, r, a.logger, &apperr.Error{Code: apperr.EUnavailable, Message: "database unreachable"})
			return
		}
		if _, err := km.SigningKey(); err != nil {
			httpjson.WriteError(w, r, a.logger, &apperr.Error{Code: apperr.EUnavailable, Message: "no signing key"})
			return
		}
		httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok"})
	}))

	adm := http.NewServeMux()
	(&admin.Handler{
		Audience: cfg.AdminAPIAudience(),
		Provider: provider, Clients: a.clients(), Users: users, Keys: km, Prepublication: cfg.Keys.Prepublication,
		MaxBytes: maxBytes, Logger: a.logger,
	}).Routes(adm)
	adm.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))

	return &server{
		app: a, keys: km,
		public: harden(httpjson.RouteErrors(pub), a.logger),
		admin:  harden(httpjson.RouteErrors(adm), a.logger),
	}, nil
}

// serve runs both listeners until ctx is done, then shuts down gracefully.
func serve(ctx context.Context, a *app) error {
	s, err := newServer(ctx, a)
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

// collectGarbage deletes expired token rows and stale guessing counters
// every ten minutes.
func (s *server) collectGarbage(ctx context.Context) {
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
		}
	}
}
