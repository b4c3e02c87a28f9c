package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// fakeIssuer is an httptest authorization server publishing RFC 8414
// metadata and a one-key JWKS, able to mint RFC 9068 access tokens.
type fakeIssuer struct {
	srv *httptest.Server
	ln  *hangListener
	key jose.JSONWebKey // private, kid "k1"
	// cacheControl is the JWKS Cache-Control; set it before the issuer
	// is used. Default "public, max-age=300".
	cacheControl string
}

// hangListener hands connections to its server until hang is set; from
// then on it accepts connections and never answers them, like a proxy that
// stopped forwarding (no response, no RST).
type hangListener struct {
	net.Listener
	hang atomic.Bool

	mu   sync.Mutex
	held []net.Conn
}

func (l *hangListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || !l.hang.Load() {
			return c, err
		}
		l.mu.Lock()
		l.held = append(l.held, c)
		l.mu.Unlock()
	}
}

// release closes the hanging connections.
func (l *hangListener) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.held {
		_ = c.Close()
	}
}

// hang makes the issuer accept connections and never answer, dropping the
// connections it is serving so that clients must connect anew.
func (fi *fakeIssuer) hang() {
	fi.ln.hang.Store(true)
	fi.srv.CloseClientConnections()
}

func newFakeIssuer(tb testing.TB) *fakeIssuer {
	tb.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	fi := &fakeIssuer{
		key:          jose.JSONWebKey{Key: priv, KeyID: "k1", Algorithm: "ES256", Use: "sig"},
		cacheControl: "public, max-age=300",
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": fi.srv.URL, "jwks_uri": fi.srv.URL + "/.well-known/jwks.json"})
	})
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", fi.cacheControl)
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{fi.key.Public()}})
	})
	fi.srv = httptest.NewUnstartedServer(mux)
	fi.ln = &hangListener{Listener: fi.srv.Listener}
	fi.srv.Listener = fi.ln
	fi.srv.Start()
	tb.Cleanup(fi.srv.Close)
	tb.Cleanup(fi.ln.release) // before Close: nothing waits on a held connection
	return fi
}

// claims returns valid user-token claims for audience.
func (fi *fakeIssuer) claims(audience string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": fi.srv.URL, "sub": "user-42", "aud": []string{audience},
		"exp": now.Add(15 * time.Minute).Unix(), "iat": now.Unix(), "nbf": now.Unix(),
		"jti": "jti-1", "client_id": "cli-1", "scope": "openid profile",
		"preferred_username": "alice", "roles": []string{"admin", "user"},
	}
}

// mint signs claims with key (default: the published key) and kid.
func (fi *fakeIssuer) mint(tb testing.TB, claims map[string]any, kid string, key any) string {
	tb.Helper()
	if key == nil {
		key = fi.key.Key
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", kid))
	if err != nil {
		tb.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
