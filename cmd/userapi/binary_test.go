package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/proctest"
	"github.com/portcullis-auth/portcullis/oauth/dpop"
)

// builtBinary is the userapi executable, built on first use.
var builtBinary struct {
	once   sync.Once
	path   string
	remove func()
	err    error
}

// userapiBinary returns the path of the userapi executable built from
// this package (once per test binary; TestMain removes it).
func userapiBinary(t *testing.T) string {
	t.Helper()
	builtBinary.once.Do(func() {
		builtBinary.path, builtBinary.remove, builtBinary.err = proctest.Build(".")
	})
	if builtBinary.err != nil {
		t.Fatal(builtBinary.err)
	}
	return builtBinary.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBinary.remove != nil {
		builtBinary.remove()
	}
	os.Exit(code)
}

// TestBinaryDPoP runs the real userapi executable behind a reverse proxy
// that serves it under /userapi (and sends its own Host), with
// --external-url naming the proxy's URL: a DPoP-bound token with proofs
// made by dpop.Transport for the proxy's URLs is accepted; the same token
// as a bearer token is not, nor proofs for userapi's own address; the
// audience defaults to the external URL.
func TestBinaryDPoP(t *testing.T) {
	t.Parallel()
	fi := newFakeIssuer(t)
	bin := userapiBinary(t)

	var proxy *httptest.Server
	var direct string
	for attempt := 1; ; attempt++ {
		addr := proctest.FreeAddr(t)
		direct = "http://" + addr
		target, _ := url.Parse(direct)
		proxy = httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			pr.Out.URL.Path = strings.TrimPrefix(pr.In.URL.Path, "/userapi")
			pr.Out.URL.RawPath = ""
		}})
		t.Cleanup(proxy.Close)
		p := proctest.Start(t, bin, []string{"PATH=" + os.Getenv("PATH")},
			"--issuer", fi.URL(), "--addr", addr, "--external-url", proxy.URL+"/userapi/", "--unknown-kid-wait", "10s")
		err := p.WaitHTTP(direct+"/health/alive", http.StatusOK)
		if err == nil {
			break
		}
		if attempt < 3 && strings.Contains(p.Output(), "address already in use") {
			continue
		}
		t.Fatal(err)
	}
	external := proxy.URL + "/userapi" // the default audience: --external-url without its trailing slash

	key, err := dpop.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	boundClaims := func(aud string) map[string]any {
		c := userClaims(fi, aud)
		c["cnf"] = map[string]any{"jkt": key.Thumbprint()}
		return c
	}
	tok := mint(t, fi, boundClaims(external), "k1", nil)
	dpopClient := &http.Client{Transport: dpop.NewTransport(key, nil)}

	do := func(t *testing.T, client *http.Client, u, auth string) (*http.Response, map[string]any) {
		t.Helper()
		h := http.Header{}
		if auth != "" {
			h.Set("Authorization", auth)
		}
		status, hdr, got := proctest.GetJSONVia(t, client, u, h)
		return &http.Response{StatusCode: status, Header: hdr}, got
	}
	algs := `algs="` + strings.Join(dpop.SupportedAlgorithms, " ") + `"`

	t.Run("bound token with proofs through the proxy", func(t *testing.T) {
		for i := range 2 { // a new proof each time
			resp, got := do(t, dpopClient, external+"/users/me", "DPoP "+tok)
			if resp.StatusCode != http.StatusOK || got["id"] != "user-42" || got["username"] != "alice" {
				t.Fatalf("request %d: %d %v, want 200 for user-42", i, resp.StatusCode, got)
			}
		}
	})
	t.Run("bound token as bearer", func(t *testing.T) {
		resp, got := do(t, http.DefaultClient, external+"/users/me", "Bearer "+tok)
		want := []string{`Bearer error="invalid_token", error_description="token is DPoP-bound: present it with the DPoP scheme and a proof"`, "DPoP " + algs}
		if resp.StatusCode != http.StatusUnauthorized || got["error"] != "invalid_token" ||
			fmt.Sprint(resp.Header.Values("WWW-Authenticate")) != fmt.Sprint(want) {
			t.Fatalf("%d %v %q; want 401 invalid_token with %q", resp.StatusCode, got, resp.Header.Values("WWW-Authenticate"), want)
		}
	})
	t.Run("proofs for userapi's own address", func(t *testing.T) {
		resp, got := do(t, dpopClient, direct+"/users/me", "DPoP "+tok)
		want := `DPoP error="invalid_dpop_proof", error_description="DPoP proof htu does not match the request", ` + algs
		if resp.StatusCode != http.StatusUnauthorized || got["error"] != "invalid_dpop_proof" || resp.Header.Get("WWW-Authenticate") != want {
			t.Fatalf("%d %v %q; want 401 with %q", resp.StatusCode, got, resp.Header.Get("WWW-Authenticate"), want)
		}
	})
	t.Run("audience of the listener", func(t *testing.T) {
		other := mint(t, fi, boundClaims(direct), "k1", nil)
		resp, got := do(t, dpopClient, external+"/users/me", "DPoP "+other)
		if resp.StatusCode != http.StatusUnauthorized || got["error"] != "invalid_token" ||
			!strings.Contains(resp.Header.Get("WWW-Authenticate"), `error_description="wrong audience"`) {
			t.Fatalf("%d %v %q; want 401 wrong audience", resp.StatusCode, got, resp.Header.Get("WWW-Authenticate"))
		}
	})
	t.Run("no credentials", func(t *testing.T) {
		resp, got := do(t, http.DefaultClient, external+"/users/me", "")
		want := []string{`Bearer realm="` + external + `"`, "DPoP " + algs}
		if resp.StatusCode != http.StatusUnauthorized || got["error"] != "unauthorized" ||
			fmt.Sprint(resp.Header.Values("WWW-Authenticate")) != fmt.Sprint(want) {
			t.Fatalf("%d %v %q; want 401 with %q", resp.StatusCode, got, resp.Header.Values("WWW-Authenticate"), want)
		}
	})
}
