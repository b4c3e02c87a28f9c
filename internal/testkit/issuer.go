// Package testkit holds fixtures shared by tests. It is for tests only:
// production code must never import it. Each fixture is self-contained in
// its own file.
//
// [StartGalera] (galera.go) starts a MariaDB Galera cluster of mariadbd
// processes on loopback, configured with deploy/galera/portcullis.cnf.
//
// [Issuer] (issuer.go) is an httptest authorization server that publishes
// RFC 8414 metadata and an RFC 7517 JWK Set, signs tokens with its keys,
// and lets a test change what it serves (the JWK Set, Cache-Control, the
// status, the metadata's issuer) or make it hang.
package testkit

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// Paths served by an [Issuer] (the metadata path is followed by the
// issuer's path, RFC 8414 §3.1).
const (
	MetadataPath = "/.well-known/oauth-authorization-server"
	JWKSPath     = "/.well-known/jwks.json"
)

// DefaultCacheControl is the JWK Set's Cache-Control until
// [Issuer.SetCacheControl] changes it.
const DefaultCacheControl = "public, max-age=300"

// Issuer is a fake authorization server on an httptest server. It serves
// RFC 8414 metadata (issuer and jwks_uri) and, at [JWKSPath], the public
// halves of the keys added with [Issuer.AddKey] (or a document set with
// [Issuer.SetJWKS]) with a strong ETag derived from the body, answering a
// matching If-None-Match with 304.
//
// Its methods are safe for concurrent use. Create it with [NewIssuer] or
// [NewIssuerAt]; it is closed when the test ends.
type Issuer struct {
	srv    *httptest.Server
	ln     *hangListener
	issuer string

	jwksHits, metadataHits, notModified atomic.Int64

	mu           sync.Mutex
	keys         map[string]jose.JSONWebKey // private, by kid
	order        []string                   // kids in publication order
	noAlg        map[string]bool            // kids published without alg
	jwks         *string                    // raw JWK Set overriding keys
	cacheControl []string                   // field lines; none: no header
	status       int
	metaIssuer   string        // overrides the metadata's issuer when set
	gate         chan struct{} // when set, JWKS requests wait for it to close
}

// NewIssuer starts an Issuer whose identifier is its server's URL.
func NewIssuer(tb testing.TB) *Issuer {
	tb.Helper()
	return NewIssuerAt(tb, "")
}

// NewIssuerAt starts an Issuer whose identifier is its server's URL
// followed by path (for example "/tenant/a"); its metadata is served only
// at the RFC 8414 §3.1 location, MetadataPath followed by path.
func NewIssuerAt(tb testing.TB, path string) *Issuer {
	tb.Helper()
	is := &Issuer{
		keys:         map[string]jose.JSONWebKey{},
		noAlg:        map[string]bool{},
		cacheControl: []string{DefaultCacheControl},
		status:       http.StatusOK,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+MetadataPath+path, is.serveMetadata)
	mux.HandleFunc("GET "+JWKSPath, is.serveJWKS)
	is.srv = httptest.NewUnstartedServer(mux)
	is.ln = &hangListener{Listener: is.srv.Listener}
	is.srv.Listener = is.ln
	is.srv.Start()
	is.issuer = is.srv.URL + path
	tb.Cleanup(is.srv.Close)
	tb.Cleanup(is.ln.release) // runs before Close: nothing waits on a held connection
	return is
}

func (is *Issuer) serveMetadata(w http.ResponseWriter, _ *http.Request) {
	is.metadataHits.Add(1)
	is.mu.Lock()
	iss := is.metaIssuer
	is.mu.Unlock()
	if iss == "" {
		iss = is.issuer
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"issuer": iss, "jwks_uri": is.srv.URL + JWKSPath})
}

func (is *Issuer) serveJWKS(w http.ResponseWriter, r *http.Request) {
	is.jwksHits.Add(1)
	is.mu.Lock()
	gate := is.gate
	is.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.status != http.StatusOK {
		w.WriteHeader(is.status)
		return
	}
	body, err := is.jwksLocked()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	w.Header()["Cache-Control"] = append([]string(nil), is.cacheControl...)
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		is.notModified.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_, _ = w.Write(body)
}

// jwksLocked returns the JWK Set document. The caller holds is.mu.
func (is *Issuer) jwksLocked() ([]byte, error) {
	if is.jwks != nil {
		return []byte(*is.jwks), nil
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, kid := range is.order {
		k := is.keys[kid]
		pub := k.Public()
		if is.noAlg[kid] {
			pub.Algorithm = ""
		}
		set.Keys = append(set.Keys, pub)
	}
	return json.Marshal(set)
}

// URL returns the issuer identifier (the iss of its tokens).
func (is *Issuer) URL() string { return is.issuer }

// Client returns an HTTP client for the issuer's server.
func (is *Issuer) Client() *http.Client { return is.srv.Client() }

// Close shuts the issuer's server down: later requests fail to connect.
func (is *Issuer) Close() { is.srv.Close() }

// Hang makes the issuer accept connections and never answer them, like a
// proxy that stopped forwarding (no response, no RST). Connections it is
// serving are dropped, so clients must connect anew.
func (is *Issuer) Hang() {
	is.ln.hang.Store(true)
	is.srv.CloseClientConnections()
}

// HeldConnections returns how many connections were accepted and left
// hanging since Hang.
func (is *Issuer) HeldConnections() int { return is.ln.heldConns() }

// JWKSRequests returns how many JWK Set requests reached the issuer.
func (is *Issuer) JWKSRequests() int64 { return is.jwksHits.Load() }

// MetadataRequests returns how many metadata requests reached the issuer.
func (is *Issuer) MetadataRequests() int64 { return is.metadataHits.Load() }

// NotModified returns how many JWK Set requests were answered 304.
func (is *Issuer) NotModified() int64 { return is.notModified.Load() }

// AddKey generates a key for alg (ES256, RS256 with 2048 bits, or EdDSA),
// publishes it with kid "<alg>-<n>", use "sig" and its alg, and returns the
// kid.
func (is *Issuer) AddKey(tb testing.TB, alg jose.SignatureAlgorithm) string {
	tb.Helper()
	priv := GenerateKey(tb, alg)
	is.mu.Lock()
	defer is.mu.Unlock()
	kid := fmt.Sprintf("%s-%d", alg, len(is.order)+1)
	is.addLocked(jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: string(alg), Use: "sig"})
	return kid
}

// AddKeyWithID is AddKey with the given kid, which must be new.
func (is *Issuer) AddKeyWithID(tb testing.TB, kid string, alg jose.SignatureAlgorithm) {
	tb.Helper()
	priv := GenerateKey(tb, alg)
	is.mu.Lock()
	defer is.mu.Unlock()
	if _, dup := is.keys[kid]; dup {
		tb.Fatalf("testkit: kid %q already added", kid)
	}
	is.addLocked(jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: string(alg), Use: "sig"})
}

func (is *Issuer) addLocked(k jose.JSONWebKey) {
	is.keys[k.KeyID] = k
	is.order = append(is.order, k.KeyID)
}

// PrivateKey returns a copy of the private JWK kid, with a nil Key when
// the issuer has no such key.
func (is *Issuer) PrivateKey(kid string) *jose.JSONWebKey {
	is.mu.Lock()
	defer is.mu.Unlock()
	k := is.keys[kid]
	return &k
}

// PublishWithoutAlg makes the JWK Set carry kid without its "alg" member
// (RFC 7517 §4.4: alg is optional).
func (is *Issuer) PublishWithoutAlg(kid string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.noAlg[kid] = true
}

// SetJWKS makes the issuer serve body as its JWK Set, whatever keys it
// has, until SetJWKS is called again.
func (is *Issuer) SetJWKS(body string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.jwks = &body
}

// SetCacheControl sets the JWK Set's Cache-Control field lines, one per
// argument; none means no Cache-Control header.
func (is *Issuer) SetCacheControl(lines ...string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.cacheControl = lines
}

// SetStatus makes JWK Set requests answer status with an empty body (200
// restores the JWK Set).
func (is *Issuer) SetStatus(status int) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.status = status
}

// SetMetadataIssuer makes the metadata claim issuer iss ("" restores the
// real identifier).
func (is *Issuer) SetMetadataIssuer(iss string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.metaIssuer = iss
}

// SetGate makes JWK Set requests wait until gate is closed (nil: no wait).
func (is *Issuer) SetGate(gate chan struct{}) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.gate = gate
}

// Token is what [Issuer.Sign] signs.
type Token struct {
	// KeyID is the kid header, and names the issuer key that signs unless
	// Key is set.
	KeyID string
	// Algorithm is the alg. Default: the alg of the key KeyID names, or
	// else the one Key's type fixes (ES256, RS256, EdDSA).
	Algorithm jose.SignatureAlgorithm
	// Key, when set, is the key material that signs instead of the
	// issuer's key (forgeries, algorithm confusion).
	Key any
	// Header members are set over typ "at+jwt" and kid; a nil value
	// removes the member.
	Header map[string]any
	// Critical lists the header names of a crit header.
	Critical []string
	// Claims are marshalled to JSON as the payload, unless Payload is set.
	Claims any
	// Payload is the raw payload.
	Payload []byte
}

// Sign returns tok as a compact JWS, failing the test if it cannot.
func (is *Issuer) Sign(tb testing.TB, tok Token) string {
	tb.Helper()
	jwk := is.PrivateKey(tok.KeyID)
	key, alg := tok.Key, tok.Algorithm
	if key == nil {
		if jwk.Key == nil {
			tb.Fatalf("testkit: no key %q", tok.KeyID)
		}
		key = jwk.Key
	}
	if alg == "" {
		alg = jose.SignatureAlgorithm(jwk.Algorithm)
	}
	if alg == "" {
		alg = algorithmOf(key)
	}
	so := (&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", tok.KeyID)
	if len(tok.Critical) > 0 {
		so = so.WithCritical(tok.Critical...)
	}
	for k, v := range tok.Header {
		if v == nil {
			delete(so.ExtraHeaders, jose.HeaderKey(k))
			continue
		}
		so = so.WithHeader(jose.HeaderKey(k), v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, so)
	if err != nil {
		tb.Fatal(err)
	}
	payload := tok.Payload
	if payload == nil {
		if payload, err = json.Marshal(tok.Claims); err != nil {
			tb.Fatal(err)
		}
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

// SignRawES256 signs a raw JSON header and payload with the ES256 key kid,
// for headers go-jose would not produce (such as duplicate members).
func (is *Issuer) SignRawES256(tb testing.TB, kid, header, payload string) string {
	tb.Helper()
	priv, ok := is.PrivateKey(kid).Key.(*ecdsa.PrivateKey)
	if !ok {
		tb.Fatalf("testkit: key %q is not an ES256 key", kid)
	}
	input := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	digest := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, priv, digest[:])
	if err != nil {
		tb.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// GenerateKey returns a new private key for alg: ES256 (P-256), RS256
// (2048 bits) or EdDSA (Ed25519).
func GenerateKey(tb testing.TB, alg jose.SignatureAlgorithm) crypto.Signer {
	tb.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch alg {
	case jose.ES256:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.RS256:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.EdDSA:
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		tb.Fatalf("testkit: unsupported alg %s", alg)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// algorithmOf returns the algorithm GenerateKey's keys of key's type use.
func algorithmOf(key any) jose.SignatureAlgorithm {
	switch key.(type) {
	case *ecdsa.PrivateKey:
		return jose.ES256
	case *rsa.PrivateKey:
		return jose.RS256
	case ed25519.PrivateKey:
		return jose.EdDSA
	}
	return ""
}

// hangListener hands connections to its server until hang is set; from
// then on it accepts connections and never answers them.
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

// heldConns returns how many connections were accepted and left hanging.
func (l *hangListener) heldConns() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.held)
}

// release closes the hanging connections.
func (l *hangListener) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.held {
		_ = c.Close()
	}
}
