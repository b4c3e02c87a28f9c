package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// errNotLoopback is returned for a target outside the loopback interface.
var errNotLoopback = errors.New("not a loopback address: loadgen only loads this machine (127.0.0.0/8, ::1, localhost)")

// checkTarget parses a base URL and refuses anything but http:// on a
// loopback address or localhost. It returns the URL without a trailing
// slash.
func checkTarget(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("target %q: %w", raw, err)
	}
	if u.Scheme != "http" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("target %q: want http://HOST[:PORT][/PATH]", raw)
	}
	host := u.Hostname()
	if host != "localhost" {
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.IsLoopback() {
			return "", fmt.Errorf("target %q: %w", raw, errNotLoopback)
		}
	}
	return u.Scheme + "://" + u.Host + trimSlash(u.EscapedPath()), nil
}

func trimSlash(p string) string {
	for len(p) > 0 && p[len(p)-1] == '/' {
		p = p[:len(p)-1]
	}
	return p
}

// loopbackOnly is a net.Dialer Control function refusing every connection
// to a non-loopback address, whatever a name resolved to.
func loopbackOnly(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !ap.Addr().IsLoopback() {
		return fmt.Errorf("dial %s: %w", address, errNotLoopback)
	}
	return nil
}

// newClient returns an HTTP client for n workers: keep-alive with up to n
// connections, no proxy, no compression, loopback only, and a timeout
// that bounds a hung request.
func newClient(n int) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, Control: loopbackOnly}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         d.DialContext,
			MaxIdleConns:        n,
			MaxIdleConnsPerHost: n,
			MaxConnsPerHost:     n,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
		},
		Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
