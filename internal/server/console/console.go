package console

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
)

// ClientID is the client ID of the public client the server registers for
// its console.
const ClientID = "portcullis-console"

// Path is where the console is mounted on the admin listener.
const Path = "/console/"

//go:embed static
var static embed.FS

// Options configure the console.
type Options struct {
	// Issuer is the server's issuer identifier: the base URL of the public
	// listener, whose token and authorization challenge endpoints the page
	// calls. Required.
	Issuer string
	// ClientID is the console's public client; empty means ClientID.
	ClientID string
	// Scope is the scope the console asks for; empty means "admin".
	Scope string
}

// config is what the page reads from config.json.
type config struct {
	Issuer            string `json:"issuer"`
	ClientID          string `json:"client_id"`
	Scope             string `json:"scope"`
	TokenEndpoint     string `json:"token_endpoint"`
	ChallengeEndpoint string `json:"authorization_challenge_endpoint"`
}

// Handler returns the console's handler, which serves GET requests for
// Path and the files under it and redirects /console to Path; mount it on
// the admin mux for both patterns. It fails when Issuer is not an
// absolute http(s) URL.
func Handler(o Options) (http.Handler, error) {
	iss, err := url.Parse(o.Issuer)
	if err != nil || (iss.Scheme != "http" && iss.Scheme != "https") || iss.Host == "" {
		return nil, fmt.Errorf("console: the issuer must be an absolute http(s) URL")
	}
	if o.ClientID == "" {
		o.ClientID = ClientID
	}
	if o.Scope == "" {
		o.Scope = "admin"
	}
	base := strings.TrimSuffix(o.Issuer, "/")
	cfg, err := json.Marshal(config{Issuer: o.Issuer, ClientID: o.ClientID, Scope: o.Scope,
		TokenEndpoint: base + "/oauth2/token", ChallengeEndpoint: base + "/oauth2/authorize-challenge"})
	if err != nil {
		return nil, err
	}
	files, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	csp := CSP(iss.Scheme + "://" + iss.Host)
	fileServer := http.StripPrefix(strings.TrimSuffix(Path, "/"), http.FileServerFS(files))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		switch r.URL.Path {
		case strings.TrimSuffix(Path, "/"):
			http.Redirect(w, r, Path, http.StatusMovedPermanently)
		case Path, Path + "index.html":
			h.Set("Cache-Control", "no-store")
			serveFile(w, r, files, "index.html", "text/html; charset=utf-8")
		case Path + "config.json":
			h.Set("Cache-Control", "no-store")
			h.Set("Content-Type", "application/json")
			w.Write(cfg)
		default:
			// The script and the style sheet change with the binary only;
			// revalidating them each time costs little on an admin page.
			h.Set("Cache-Control", "no-cache")
			fileServer.ServeHTTP(w, r)
		}
	}), nil
}

// serveFile writes the embedded file name with content type ctype.
func serveFile(w http.ResponseWriter, r *http.Request, files fs.FS, name, ctype string) {
	b, err := fs.ReadFile(files, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ctype)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
}

// CSP returns the console's Content-Security-Policy: everything from the
// page's own origin only, connections also to issuerOrigin (scheme://host
// of the public listener), no framing, no plugins, no inline code.
func CSP(issuerOrigin string) string {
	return "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
		"connect-src 'self' " + issuerOrigin + "; frame-ancestors 'none'; base-uri 'none'; " +
		"form-action 'none'; object-src 'none'"
}
