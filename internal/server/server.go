package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/portcullis-auth/portcullis/audit"
	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/clientip"
	"github.com/portcullis-auth/portcullis/internal/cors"
	"github.com/portcullis-auth/portcullis/internal/httpjson"
	"github.com/portcullis-auth/portcullis/internal/ratelimit"
	"github.com/portcullis-auth/portcullis/internal/server/account"
	"github.com/portcullis-auth/portcullis/internal/server/adminapi"
	"github.com/portcullis-auth/portcullis/internal/server/bearer"
	"github.com/portcullis-auth/portcullis/internal/server/console"
	"github.com/portcullis-auth/portcullis/keys"
	"github.com/portcullis-auth/portcullis/oauth"
	"github.com/portcullis-auth/portcullis/oauth/challenge"
	"github.com/portcullis-auth/portcullis/oauth/clients"
	"github.com/portcullis-auth/portcullis/oauth/dpop"
	"github.com/portcullis-auth/portcullis/oauth/revocation"
)

// Store is the storage the listeners use directly: fosite's token
// storage (for the token endpoint's transactions), the user lookup on
// refresh, the CORS origins registered on clients, and a health check.
type Store interface {
	oauth.TokenStore
	oauth.UserLookup
	cors.ClientOrigins
	// Ping checks that the database answers; /health/ready uses it.
	Ping(ctx context.Context) error
}

// Options configure the two listeners. Provider, Store, Users, Clients,
// Keys and Issuer are required; the zero value of every other field means
// what its comment says.
type Options struct {
	// Issuer is the server's issuer identifier (RFC 8414 §2).
	Issuer string
	// Provider is the fosite provider behind the OAuth endpoints
	// (oauth.NewProvider).
	Provider fosite.OAuth2Provider
	Store    Store
	Users    *identity.Service
	Clients  *clients.Service
	Keys     *keys.Manager
	// Audience decides each token's aud; Audience.Default is required.
	Audience oauth.AudiencePolicy
	// AdminAudience is the admin API's audience identifier: its tokens
	// must carry it in aud.
	AdminAudience string
	// AdminURL is the admin listener's base URL as clients reach it, which
	// DPoP proofs at the admin API name; empty means each request's own.
	AdminURL string
	// Prepublication is how long a key rotated through the admin API with
	// ?prepublish=true is published before it signs.
	Prepublication time.Duration
	// DefaultAlgorithm is the JWS algorithm tokens are signed with unless
	// a client or audience asks for RS256 (metadata lists it first).
	DefaultAlgorithm string
	// ScopesSupported is published in the metadata; nil omits it.
	ScopesSupported []string
	// Signup enables POST /signup.
	Signup bool
	// MaxBodyBytes caps request bodies (413 beyond); required.
	MaxBodyBytes int64
	// TokenPerIP limits password grants per client IP and second (burst
	// the same); zero means no limit.
	TokenPerIP int
	// RevokePerClient limits a client's revocations of its own
	// client_credentials access tokens per second (burst ten times); 0
	// disables the limit (rate_limit.revoke_per_client).
	RevokePerClient int
	// SignupPerMinutePerIP limits sign-ups per client IP and minute;
	// zero means no limit.
	SignupPerMinutePerIP int
	// TrustedProxies are the addresses or CIDR prefixes whose
	// X-Forwarded-For is believed; none means the connection's address.
	TrustedProxies []string
	// CORSAllowedOrigins are browser origins allowed server-wide, besides
	// those registered on clients (internal/cors).
	CORSAllowedOrigins []string
	// Registry receives the HTTP and grant metrics and is served at
	// GET /metrics on the admin listener; nil means no metrics.
	Registry *prometheus.Registry
	// Revocations is the list of revoked grants the provider checks
	// (oauth.ProviderConfig.Revocations); the admin API syncs it before
	// every request. Nil skips that.
	Revocations *revocation.List
	// Logger receives access-log lines and errors; nil discards them.
	Logger *slog.Logger
	// Now is the token endpoint's clock (the iat, nbf and exp of access
	// tokens); nil means time.Now. Tests pass the store's fake clock.
	Now func() time.Time
	// DPoP checks DPoP proofs (RFC 9449) at the token endpoint and the
	// admin API; nil turns DPoP off (proofs are ignored, and clients
	// registered with dpop_bound_access_tokens get no tokens).
	DPoP *dpop.Verifier
	// ACR are the acr claims of user tokens.
	ACR oauth.ACRValues
	// FirstParty, when set, serves the authorization challenge endpoint
	// (first-party apps with second factors); nil leaves it out.
	FirstParty *FirstParty
	// Audit serves GET /admin/audit; nil leaves the route out. Every
	// request's context carries its ID and client IP for the audit
	// events recorded while serving it (audit.WithRequest).
	Audit *audit.Log
	// Console serves the admin console (internal/server/console) at
	// /console/ on the admin listener. Its public client (console.ClientID)
	// must be registered by the caller, with the admin listener's origin
	// among its CORS origins, and FirstParty must be set, since the
	// console logs in through the authorization challenge endpoint.
	Console bool
}

// FirstParty configures the authorization challenge endpoint.
type FirstParty struct {
	// Codes issues the authorization codes (oauth.NewCodeIssuer).
	Codes *oauth.CodeIssuer
	// Sessions stores auth_sessions, shared by every replica.
	Sessions challenge.Store
	// SessionLifetime and StepUpLifetime are the auth_session lifetimes
	// (mfa.auth_session_lifetime, mfa.step_up_session_lifetime).
	SessionLifetime, StepUpLifetime time.Duration
}

// Handlers are the two listeners' handlers, each with every route and its
// middleware in place.
type Handlers struct {
	// Public serves the OAuth endpoints, sign-up, discovery and health.
	Public http.Handler
	// Admin serves the admin API and metrics; never expose it publicly.
	Admin http.Handler
	// PublicRoutes and AdminRoutes are the http.ServeMux patterns
	// ("METHOD /path") registered on each listener, in order: what the
	// OpenAPI documents served at GET /openapi.json must describe.
	PublicRoutes, AdminRoutes []string
}

// New builds both listeners' route tables. It fails only on an invalid
// option (a malformed CORS origin or trusted proxy).
func New(o Options) (*Handlers, error) {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var reg prometheus.Registerer // a nil *Registry must stay a nil interface
	if o.Registry != nil {
		reg = o.Registry
	}
	m := newMetrics(reg)
	ips, err := clientip.New(o.TrustedProxies)
	if err != nil {
		return nil, err
	}
	corsPolicy, err := cors.NewPolicy(o.CORSAllowedOrigins, o.Store, logger)
	if err != nil {
		return nil, fmt.Errorf("http.cors_allowed_origins: %w", err)
	}
	var tokenLimit, signupLimit, revokeLimit *ratelimit.Keyed
	if n := o.TokenPerIP; n > 0 {
		tokenLimit = ratelimit.New(float64(n), n, 0)
	}
	if n := o.RevokePerClient; n > 0 {
		revokeLimit = ratelimit.New(float64(n), 10*n, 0)
	}
	if n := o.SignupPerMinutePerIP; n > 0 {
		signupLimit = ratelimit.New(float64(n)/60, n, 0)
	}
	maxBytes := o.MaxBodyBytes

	token := &oauth.TokenHandler{
		Provider: o.Provider, Store: o.Store, Users: o.Store, Authenticator: o.Users, Limiter: tokenLimit, ClientIP: ips.LimitKey,
		MaxBytes: maxBytes, Logger: logger, Observe: m.observeGrant, Audience: o.Audience, Now: o.Now, ACR: o.ACR,
	}
	if o.Audit != nil {
		token.Audit = o.Audit
	}
	if o.DPoP != nil {
		token.DPoP = &oauth.DPoPPolicy{Verifier: o.DPoP, TokenURL: o.Issuer + "/oauth2/token"}
	}
	var authChallenge *challenge.Handler
	if fp := o.FirstParty; fp != nil {
		f, ok := o.Provider.(*fosite.Fosite)
		if !ok {
			return nil, fmt.Errorf("the authorization challenge endpoint needs a *fosite.Fosite provider")
		}
		authChallenge = &challenge.Handler{
			Provider: f, Users: o.Users, Sessions: fp.Sessions, Codes: fp.Codes, URL: o.Issuer + challenge.Path,
			DPoP: o.DPoP, ACR: o.ACR, SessionLifetime: fp.SessionLifetime, StepUpLifetime: fp.StepUpLifetime,
			MaxBytes: maxBytes, Limiter: tokenLimit, ClientIP: ips.LimitKey, Logger: logger, Now: o.Now,
		}
		token.FirstParty = authChallenge
	}
	signup := &SignupHandler{Users: o.Users, Enabled: o.Signup, MaxBytes: maxBytes,
		Limiter: signupLimit, ClientIP: ips.LimitKey, Logger: logger}
	md := oauth.NewMetadata(o.Issuer, o.DefaultAlgorithm, o.Signup)
	md.ScopesSupported = o.ScopesSupported
	if o.DPoP != nil {
		md.DPoPSigningAlgValuesSupported = o.DPoP.Algorithms()
	}
	if authChallenge != nil {
		md.WithChallengeEndpoint(authChallenge.URL, o.ACR)
	}

	pub := http.NewServeMux()
	var pubRoutes []string
	route := func(path, method string, h http.Handler) {
		pubRoutes = append(pubRoutes, method+" "+path)
		pub.Handle(method+" "+path, m.instrument(path, logger, h))
	}
	// CORS (internal/cors): token and revocation for the server-wide
	// origins and those of the client the request names, sign-up for the
	// server-wide origins and those of any client, JWKS and metadata for
	// every origin. Introspection is for resource servers, not browsers;
	// the admin listener never answers CORS.
	withPreflight := func(path, method string, h http.Handler) {
		route(path, method, h)
		route(path, http.MethodOptions, h)
	}
	withPreflight("/signup", http.MethodPost, corsPolicy.AnyClientEndpoint(signup))
	withPreflight("/oauth2/token", http.MethodPost, corsPolicy.ClientEndpoint(token))
	if authChallenge != nil {
		withPreflight(challenge.Path, http.MethodPost, corsPolicy.ClientEndpoint(authChallenge))
	}
	withPreflight("/oauth2/revoke", http.MethodPost, corsPolicy.ClientEndpoint(
		&oauth.RevokeHandler{Provider: o.Provider, Store: o.Store, Limiter: revokeLimit, MaxBytes: maxBytes, Logger: logger}))
	route("/oauth2/introspect", http.MethodPost, &oauth.IntrospectHandler{Provider: o.Provider, MaxBytes: maxBytes, Logger: logger})
	withPreflight("/.well-known/jwks.json", http.MethodGet, cors.Public(jwksHandler(o.Keys)))
	withPreflight("/.well-known/oauth-authorization-server", http.MethodGet, cors.Public(metadataHandler(md)))
	// The 404 that points at the RFC 8414 document is readable by browser
	// libraries trying OpenID discovery first, so they can fall back.
	withPreflight("/.well-known/openid-configuration", http.MethodGet, cors.Public(noOpenIDConfiguration()))
	// The account API (internal/server/account): browser apps of any
	// client call it with the user's token, so its origins are sign-up's.
	acct := &account.Handler{
		Guard: &bearer.Guard{Realm: "portcullis-account", Provider: o.Provider, Revocations: revocations(o.Revocations),
			DPoP: o.DPoP, ExternalURL: o.Issuer, Name: "account API", Logger: logger},
		Users: o.Users, ClientIP: ips.LimitKey, MaxBytes: maxBytes, Logger: logger,
	}
	accountMethods := []string{http.MethodGet, http.MethodPost, http.MethodDelete}
	for _, rt := range acct.Routes() {
		route(rt.Path, rt.Method, corsPolicy.AnyClientAPI(accountMethods, rt.Handler))
	}
	route("/account/", http.MethodOptions, corsPolicy.AnyClientAPI(accountMethods, http.NotFoundHandler()))
	route("/health/alive", http.MethodGet, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	route("/health/ready", http.MethodGet, ready(o.Store, o.Keys, logger))
	withPreflight("/openapi.json", http.MethodGet, cors.Public(documentHandler(publicOpenAPI)))

	adm := http.NewServeMux()
	var admRoutes []string
	admHandle := handleFunc(func(pattern string, h http.Handler) {
		admRoutes = append(admRoutes, pattern)
		adm.Handle(pattern, h)
	})
	(&adminapi.Handler{
		Audience: o.AdminAudience,
		Provider: o.Provider, Revocations: o.Revocations, Clients: o.Clients, Users: o.Users, Keys: o.Keys, Prepublication: o.Prepublication,
		MaxBytes: maxBytes, Logger: logger, DPoP: o.DPoP, ExternalURL: o.AdminURL, Audit: o.Audit,
	}).Routes(admHandle)
	if o.Console {
		if authChallenge == nil {
			return nil, fmt.Errorf("the admin console needs the authorization challenge endpoint (Options.FirstParty)")
		}
		ch, err := console.Handler(console.Options{Issuer: o.Issuer})
		if err != nil {
			return nil, err
		}
		admHandle.Handle("GET "+console.Path, ch)
		admHandle.Handle("GET "+strings.TrimSuffix(console.Path, "/"), ch)
	}
	if o.Registry != nil {
		admHandle.Handle("GET /metrics", promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{Registry: o.Registry}))
	}
	admHandle.Handle("GET /openapi.json", documentHandler(adminOpenAPI))
	return &Handlers{
		Public:       withRequestID(withAuditRequest(ips.IP, harden(httpjson.RouteErrors(pub), logger))),
		Admin:        withRequestID(withAuditRequest(ips.IP, harden(httpjson.RouteErrors(adm), logger))),
		PublicRoutes: pubRoutes, AdminRoutes: admRoutes,
	}, nil
}

// handleFunc is an adminapi.Mux made of a function.
type handleFunc func(pattern string, h http.Handler)

// Handle calls f.
func (f handleFunc) Handle(pattern string, h http.Handler) { f(pattern, h) }

// revocations returns l as a bearer.Revocations: nil (no list) when l is
// nil, not an interface holding a nil pointer.
func revocations(l *revocation.List) bearer.Revocations {
	if l == nil {
		return nil
	}
	return l
}

// ready answers /health/ready: 200 when the database answers within 2 s
// and a signing key is loaded, else 503.
func ready(store Store, km *keys.Manager, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := store.Ping(ctx); err != nil {
			logger.WarnContext(ctx, "readiness check failed", "err", err)
			httpjson.WriteError(w, r, logger, &apperr.Error{Code: apperr.EUnavailable, Message: "database unreachable"})
			return
		}
		if _, err := km.SigningKey(); err != nil {
			httpjson.WriteError(w, r, logger, &apperr.Error{Code: apperr.EUnavailable, Message: "no signing key"})
			return
		}
		httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}
