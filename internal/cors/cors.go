package cors

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// ErrInvalidOrigin is returned by [ParseOrigin] for anything but an http or
// https origin. Its text never repeats the input.
var ErrInvalidOrigin = errors.New("not an origin: want scheme://host[:port] with scheme http or https, " +
	"without path, query, fragment, user info or wildcard (\"*\" and \"null\" are refused)")

// MaxAge is the Access-Control-Max-Age of every allowed preflight, in
// seconds: Chromium's cap (2 hours). A long cache is safe because a cached
// preflight only lets the browser send the request; whether it may read the
// answer is decided again on every actual response.
const MaxAge = 7200

// Headers a browser may send on the endpoints of a [Policy]: what Swagger
// UI, oidc-client-ts and fetch-based OAuth clients send.
const allowHeaders = "Authorization, Content-Type, DPoP, X-Requested-With"

// Response headers a browser may read beyond the CORS-safelisted ones:
// RFC 6749 §5.2 WWW-Authenticate on 401, Retry-After on 429 and 503, and
// RFC 9449 §8 DPoP-Nonce.
const exposeHeaders = "DPoP-Nonce, Retry-After, WWW-Authenticate"

// ParseOrigin returns the serialised origin (RFC 6454 §6.2) of s as browsers
// send it in the Origin header: lower-case scheme and host, no default
// port ("https://app.example.com:443/" becomes "https://app.example.com").
// A single trailing "/" is accepted; any other path, a query, fragment,
// user info, a wildcard, "null", or a scheme other than http and https
// fails with [ErrInvalidOrigin].
func ParseOrigin(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 512 || strings.ContainsAny(s, "*#?@\\ \t\r\n") {
		return "", ErrInvalidOrigin
	}
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawPath != "" {
		return "", ErrInvalidOrigin
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", ErrInvalidOrigin
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if host == "" || strings.HasSuffix(u.Host, ":") {
		return "", ErrInvalidOrigin
	}
	if strings.Contains(host, ":") { // IPv6 literal
		if net.ParseIP(host) == nil {
			return "", ErrInvalidOrigin
		}
	} else if strings.Trim(host, "abcdefghijklmnopqrstuvwxyz0123456789-.") != "" ||
		strings.HasPrefix(host, ".") || strings.Contains(host, "..") {
		// Browsers send internationalised names as punycode (A-labels).
		return "", ErrInvalidOrigin
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return "", ErrInvalidOrigin
		}
		if scheme == "http" && port == "80" || scheme == "https" && port == "443" {
			port = ""
		}
	}
	hostport := host
	switch {
	case port != "":
		hostport = net.JoinHostPort(host, port)
	case strings.Contains(host, ":"):
		hostport = "[" + host + "]"
	}
	return scheme + "://" + hostport, nil
}

// ParseOrigins normalises every entry of list with [ParseOrigin] and drops
// duplicates, keeping the first order. It fails with [ErrInvalidOrigin]
// (wrapped with the entry's index, never its text) on the first bad entry.
func ParseOrigins(list []string) ([]string, error) {
	out := make([]string, 0, len(list))
	for i, s := range list {
		o, err := ParseOrigin(s)
		if err != nil {
			return nil, &IndexError{Index: i, Err: err}
		}
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out, nil
}

// IndexError names the position of a bad entry in a list of origins.
type IndexError struct {
	Index int // zero-based
	Err   error
}

// Error implements error; it never contains the entry itself.
func (e *IndexError) Error() string { return "entry " + strconv.Itoa(e.Index+1) + ": " + e.Err.Error() }

// Unwrap returns Err.
func (e *IndexError) Unwrap() error { return e.Err }

// ClientOrigins looks up the origins registered on OAuth clients. Both
// methods compare origins exactly (they are stored normalised by
// ParseOrigin); an error is logged and treated as "not allowed".
type ClientOrigins interface {
	// ClientAllowsOrigin reports whether the client with the given ID lists
	// origin; an unknown client lists nothing (false, nil).
	ClientAllowsOrigin(ctx context.Context, clientID, origin string) (bool, error)
	// AnyClientAllowsOrigin reports whether at least one client lists
	// origin.
	AnyClientAllowsOrigin(ctx context.Context, origin string) (bool, error)
}

// Policy allows configured origins on endpoints that take credentials
// (token, revocation, sign-up). Build it with [NewPolicy]; it is safe for
// concurrent use.
type Policy struct {
	origins []string
	clients ClientOrigins
	logger  *slog.Logger
}

// NewPolicy returns a policy allowing the server-wide origins (normalised
// with [ParseOrigins]; "*" and "null" are refused) and, when clients is not
// nil, the origins registered on clients. logger may be nil.
func NewPolicy(origins []string, clients ClientOrigins, logger *slog.Logger) (*Policy, error) {
	list, err := ParseOrigins(origins)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Policy{origins: list, clients: clients, logger: logger}, nil
}

// ClientEndpoint wraps h, an endpoint called with POST where the request
// names its OAuth client (token, revocation). OPTIONS is answered here as
// a preflight and never reaches h. A request whose Origin neither the
// server-wide list nor any client allows is refused at once (403, an RFC
// 6749 §5.2-shaped invalid_request): browsers send form POSTs across sites
// without a preflight, and such a request must not reach the password
// check (a page could otherwise make its visitors' browsers guess
// passwords and get their own network locked out). Otherwise h runs, and
// its response carries Access-Control-Allow-Origin when the server-wide
// list or the named client lists the Origin; the client is the HTTP Basic
// user name, else the client_id of r.PostForm as h parsed it. Requests
// without an Origin (non-browser clients) are not affected. Mount the
// result for both POST and OPTIONS.
func (p *Policy) ClientEndpoint(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			p.preflight(w, r)
			return
		}
		w.Header().Add("Vary", "Origin")
		origin := r.Header.Get("Origin")
		if origin == "" {
			h.ServeHTTP(w, r)
			return
		}
		if !p.allowedAny(r.Context(), origin) {
			refuse(w, `{"error":"invalid_request","error_description":"The request's origin is not allowed."}`)
			return
		}
		if slices.Contains(p.origins, origin) {
			allow(w.Header(), origin)
			h.ServeHTTP(w, r)
			return
		}
		if p.clients == nil {
			h.ServeHTTP(w, r)
			return
		}
		lw := &lateWriter{ResponseWriter: w}
		lw.decide = func() {
			id := clientID(r)
			if id == "" {
				return
			}
			ok, err := p.clients.ClientAllowsOrigin(r.Context(), id, origin)
			if err != nil {
				p.logger.Warn("cors: client origin lookup failed", "err", err)
				return
			}
			if ok {
				allow(w.Header(), origin)
			}
		}
		h.ServeHTTP(lw, r)
		lw.decideOnce() // h wrote nothing: net/http sends the headers after return
	})
}

// AnyClientEndpoint wraps h, an endpoint called with POST without a client
// (sign-up): an origin is allowed when the server-wide list or any client
// lists it; a request from any other origin is refused at once (403), as
// in ClientEndpoint. OPTIONS is answered as a preflight. Mount the result
// for both POST and OPTIONS.
func (p *Policy) AnyClientEndpoint(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			p.preflight(w, r)
			return
		}
		w.Header().Add("Vary", "Origin")
		if origin := r.Header.Get("Origin"); origin != "" {
			if !p.allowedAny(r.Context(), origin) {
				refuse(w, `{"error":"forbidden","error_description":"The request's origin is not allowed."}`)
				return
			}
			allow(w.Header(), origin)
		}
		h.ServeHTTP(w, r)
	})
}

// AnyClientAPI wraps h, an API called by browser apps of any client with
// a user's access token in the Authorization header (the account API),
// with the methods listed: an origin is allowed as in AnyClientEndpoint
// (the server-wide list or any client lists it), and a request from any
// other origin is refused at once (403). OPTIONS is answered as a
// preflight for methods. Mount the result for methods and OPTIONS.
func (p *Policy) AnyClientAPI(methods []string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			p.preflightFor(w, r, methods)
			return
		}
		w.Header().Add("Vary", "Origin")
		if origin := r.Header.Get("Origin"); origin != "" {
			if !p.allowedAny(r.Context(), origin) {
				refuse(w, `{"error":"forbidden","error_description":"The request's origin is not allowed."}`)
				return
			}
			allow(w.Header(), origin)
		}
		h.ServeHTTP(w, r)
	})
}

// refuse answers a request from an origin that is not allowed: 403 with a
// fixed JSON error, without Access-Control-Allow-Origin (a page on that
// origin cannot read it).
func refuse(w http.ResponseWriter, body string) {
	h := w.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusForbidden)
	_, _ = w.Write([]byte(body))
}

// allowedAny reports whether the server-wide list or any client lists
// origin.
func (p *Policy) allowedAny(ctx context.Context, origin string) bool {
	if slices.Contains(p.origins, origin) {
		return true
	}
	if p.clients == nil {
		return false
	}
	ok, err := p.clients.AnyClientAllowsOrigin(ctx, origin)
	if err != nil {
		p.logger.Warn("cors: origin lookup failed", "err", err)
		return false
	}
	return ok
}

// preflight answers an OPTIONS request: 204 always, with the CORS headers
// only when it is a preflight for POST from an allowed origin. A refused
// preflight carries no Access-Control-Allow-Origin, which is how the Fetch
// standard's CORS check fails; its status says nothing about the policy.
func (p *Policy) preflight(w http.ResponseWriter, r *http.Request) {
	p.preflightFor(w, r, []string{http.MethodPost})
}

// preflightFor is preflight for an endpoint answering methods.
func (p *Policy) preflightFor(w http.ResponseWriter, r *http.Request, methods []string) {
	h := w.Header()
	h.Add("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
	h.Set("Allow", "OPTIONS, "+strings.Join(methods, ", "))
	origin := r.Header.Get("Origin")
	if origin != "" && slices.Contains(methods, r.Header.Get("Access-Control-Request-Method")) && p.allowedAny(r.Context(), origin) {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Methods", strings.Join(methods, ", "))
		h.Set("Access-Control-Allow-Headers", allowHeaders)
		h.Set("Access-Control-Max-Age", strconv.Itoa(MaxAge))
	}
	w.WriteHeader(http.StatusNoContent)
}

// allow marks a response readable by origin (never with credentials).
func allow(h http.Header, origin string) {
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Expose-Headers", exposeHeaders)
}

// clientID returns the client a request names: the HTTP Basic user name
// (form-decoded, RFC 6749 §2.3.1), else the client_id of the parsed form.
// It never parses the body itself.
func clientID(r *http.Request) string {
	if user, _, ok := r.BasicAuth(); ok {
		id, err := url.QueryUnescape(user)
		if err != nil {
			return ""
		}
		return id
	}
	if r.PostForm == nil {
		return ""
	}
	return r.PostForm.Get("client_id")
}

// lateWriter runs decide once, just before the response header is written,
// when the wrapped handler has parsed the request.
type lateWriter struct {
	http.ResponseWriter
	decide  func()
	decided bool
}

func (l *lateWriter) decideOnce() {
	if !l.decided {
		l.decided = true
		l.decide()
	}
}

// WriteHeader implements http.ResponseWriter.
func (l *lateWriter) WriteHeader(code int) {
	l.decideOnce()
	l.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (l *lateWriter) Write(b []byte) (int, error) {
	l.decideOnce()
	return l.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (l *lateWriter) Unwrap() http.ResponseWriter { return l.ResponseWriter }

// Public wraps h, a GET endpoint whose documents hold no secret (JWKS,
// metadata): every origin may read it ("Access-Control-Allow-Origin: *",
// the same for all, so no Vary). OPTIONS is answered as a preflight for
// GET. Mount the result for both GET and OPTIONS.
func Public(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		if r.Method == http.MethodOptions {
			hdr.Set("Allow", "OPTIONS, GET, HEAD")
			if r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != "" {
				hdr.Set("Access-Control-Allow-Origin", "*")
				hdr.Set("Access-Control-Allow-Methods", "GET, HEAD")
				hdr.Set("Access-Control-Allow-Headers", "If-None-Match")
				hdr.Set("Access-Control-Max-Age", strconv.Itoa(MaxAge))
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		// Set whether or not the request has an Origin, so that a shared
		// cache never serves a copy without it to a browser.
		hdr.Set("Access-Control-Allow-Origin", "*")
		hdr.Set("Access-Control-Expose-Headers", "ETag")
		h.ServeHTTP(w, r)
	})
}
