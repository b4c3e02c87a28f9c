package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/portcullis-auth/portcullis/oauth/resource"
)

// shutdownTimeout bounds graceful shutdown.
const shutdownTimeout = 10 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "userapi:", err)
		os.Exit(1)
	}
}

// config is userapi's configuration after flags and environment.
type config struct {
	Issuer   string
	Addr     string
	Audience string // empty: derived from the listener
	// UnknownKIDWait is resource.RemoteOptions.UnknownKIDWait: how long a
	// request whose token names a key not in the cache waits for the
	// issuer's JWKS. Default resource.DefaultUnknownKIDWait.
	UnknownKIDWait time.Duration
	// ExternalURL is resource.DPoPOptions.ExternalURL: the URL clients
	// reach userapi's root at behind a reverse proxy, the base of the URI
	// DPoP proofs must name, and then the default Audience. Default empty:
	// derived from each request (scheme, Host, path).
	ExternalURL string
	// StepUpACR is the acr values GET /users/me/security accepts (RFC
	// 9470 resource.StepUp.ACRValues), space-separated after parsing
	// (the flag and environment also take commas). Default "2", the
	// authorization server's default acr of a login with a second factor.
	StepUpACR string
	// StepUpMaxAge is resource.StepUp.MaxAge of GET /users/me/security:
	// how long ago the user may have authenticated at most, a whole
	// number of seconds. Default 0: not checked.
	StepUpMaxAge time.Duration
}

// defaultStepUpACR is the default config.StepUpACR.
const defaultStepUpACR = "2"

// stepUp is the requirement of GET /users/me/security.
func (c config) stepUp() resource.StepUp {
	return resource.StepUp{ACRValues: strings.Fields(c.StepUpACR), MaxAge: c.StepUpMaxAge}
}

// parseACRValues returns the acr values of s, separated by commas or
// spaces, joined by single spaces; an error when there are none or one
// has characters the acr_values quoted string of a challenge cannot carry.
func parseACRValues(s string) (string, error) {
	vals := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	if len(vals) == 0 {
		return "", errors.New("--step-up-acr must name at least one acr value")
	}
	for _, v := range vals {
		for _, r := range v {
			if r <= 0x20 || r > 0x7e || r == '"' || r == '\\' {
				return "", errors.New("--step-up-acr values must be printable ASCII without quotes or backslashes")
			}
		}
	}
	return strings.Join(vals, " "), nil
}

// parseConfig reads flags from args over the environment (via getenv).
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	cfg := config{
		Issuer: getenv("USERAPI_ISSUER"), Addr: getenv("USERAPI_ADDR"), Audience: getenv("USERAPI_AUDIENCE"),
		UnknownKIDWait: resource.DefaultUnknownKIDWait, ExternalURL: getenv("USERAPI_EXTERNAL_URL"),
		StepUpACR: defaultStepUpACR,
	}
	if cfg.Addr == "" {
		cfg.Addr = ":8090"
	}
	if v := getenv("USERAPI_UNKNOWN_KID_WAIT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return config{}, fmt.Errorf("USERAPI_UNKNOWN_KID_WAIT: %w", err)
		}
		cfg.UnknownKIDWait = d
	}
	if v := getenv("USERAPI_STEP_UP_ACR"); v != "" {
		cfg.StepUpACR = v
	}
	if v := getenv("USERAPI_STEP_UP_MAX_AGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return config{}, fmt.Errorf("USERAPI_STEP_UP_MAX_AGE: %w", err)
		}
		cfg.StepUpMaxAge = d
	}
	fs := flag.NewFlagSet("userapi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: userapi --issuer URL [flags]

The reference resource server. GET /users/me answers with the caller of an
access token sent as "Authorization: Bearer <token>" (RFC 6750) or, for a
token bound to the client's key, "Authorization: DPoP <token>" with a proof
in the DPoP header (RFC 9449); a DPoP-bound token sent as a bearer token is
refused. GET /users/me/security answers with how the caller authenticated
({"sub","preferred_username","acr","amr","auth_time"}) only to a token whose
acr is one of --step-up-acr and, with --step-up-max-age, whose auth_time is
recent enough; other tokens get 401 insufficient_user_authentication with
acr_values and max_age in the challenge (RFC 9470 step-up).

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.Issuer, "issuer", cfg.Issuer, "issuer URL, exactly as in the tokens' iss (env USERAPI_ISSUER; required)")
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "listen address (env USERAPI_ADDR)")
	fs.StringVar(&cfg.Audience, "audience", cfg.Audience,
		"audience tokens must carry (env USERAPI_AUDIENCE; default --external-url when set, else http://HOST:PORT of this server)")
	fs.StringVar(&cfg.ExternalURL, "external-url", cfg.ExternalURL,
		"URL clients use to reach this server's root behind a reverse proxy, scheme://host[:port][/prefix]: "+
			"DPoP proofs must name it followed by the request path (env USERAPI_EXTERNAL_URL; "+
			"default: rebuilt from each request's scheme, Host and path, X-Forwarded-* ignored)")
	fs.DurationVar(&cfg.UnknownKIDWait, "unknown-kid-wait", cfg.UnknownKIDWait,
		"how long a request whose token names a signing key not yet known waits for the issuer's JWKS; "+
			"known keys never wait (env USERAPI_UNKNOWN_KID_WAIT)")
	fs.StringVar(&cfg.StepUpACR, "step-up-acr", cfg.StepUpACR,
		"acr values GET /users/me/security accepts, separated by commas or spaces, sent as acr_values when it "+
			"refuses a token (env USERAPI_STEP_UP_ACR)")
	fs.DurationVar(&cfg.StepUpMaxAge, "step-up-max-age", cfg.StepUpMaxAge,
		"how long ago the user may have authenticated at most for GET /users/me/security, a whole number of "+
			"seconds such as 5m, sent as max_age; 0 means not checked (env USERAPI_STEP_UP_MAX_AGE)")
	err := fs.Parse(args)
	if err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if cfg.UnknownKIDWait <= 0 {
		return config{}, fmt.Errorf("--unknown-kid-wait %v must be positive", cfg.UnknownKIDWait)
	}
	if cfg.StepUpACR, err = parseACRValues(cfg.StepUpACR); err != nil {
		return config{}, err
	}
	if cfg.StepUpMaxAge < 0 || cfg.StepUpMaxAge%time.Second != 0 {
		return config{}, fmt.Errorf("--step-up-max-age %v must be 0 or a positive whole number of seconds", cfg.StepUpMaxAge)
	}
	if cfg.Issuer == "" {
		return config{}, errors.New("--issuer (or USERAPI_ISSUER) is required")
	}
	if u, err := url.Parse(cfg.Issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return config{}, fmt.Errorf("--issuer %q is not an absolute http(s) URL", cfg.Issuer)
	}
	if err := (resource.DPoPOptions{ExternalURL: cfg.ExternalURL}).Validate(); err != nil {
		return config{}, fmt.Errorf("--external-url %q is not an absolute http(s) URL without user information, query or fragment", cfg.ExternalURL)
	}
	return cfg, nil
}

// defaultAudience is this server's base URL: the host of addr ("localhost"
// if empty or unspecified) and the port actually listened on.
func defaultAudience(addr string, listened net.Addr) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	port := "80"
	if ta, ok := listened.(*net.TCPAddr); ok {
		port = fmt.Sprint(ta.Port)
	}
	return "http://" + net.JoinHostPort(host, port)
}

// run starts userapi and serves until ctx ends, then shuts down gracefully.
// Logs and usage go to stderr; stdout is not written to.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, os.Getenv, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))

	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	switch {
	case cfg.Audience != "":
	case cfg.ExternalURL != "":
		// Behind a proxy, this server's base URL is the one clients use.
		cfg.Audience = strings.TrimRight(cfg.ExternalURL, "/")
	default:
		cfg.Audience = defaultAudience(cfg.Addr, ln.Addr())
	}

	ks := resource.NewRemoteKeySet(cfg.Issuer, resource.RemoteOptions{Logger: logger, UnknownKIDWait: cfg.UnknownKIDWait})
	v := resource.NewVerifier(ks, resource.Options{
		Issuer: cfg.Issuer, Audience: cfg.Audience,
		DPoP: resource.DPoPOptions{ExternalURL: cfg.ExternalURL},
	})
	srv := &http.Server{
		Handler:           newHandler(v, cfg.stepUp()),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	var wg sync.WaitGroup
	// Warm the key cache without making start-up depend on the issuer.
	wg.Go(func() {
		if err := ks.Refresh(ctx); err != nil && ctx.Err() == nil {
			logger.Warn("issuer keys not available yet; will retry on demand", "issuer", cfg.Issuer, "err", err)
		}
	})
	defer wg.Wait()

	logger.Info("userapi configured", "issuer", cfg.Issuer, "audience", cfg.Audience, "external_url", cfg.ExternalURL,
		"step_up_acr", cfg.StepUpACR, "step_up_max_age", cfg.StepUpMaxAge)
	logger.Info("userapi listening", "addr", ln.Addr().String())
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("userapi shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
