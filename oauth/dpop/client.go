package dpop

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Key is a client's DPoP key: it signs proofs. Create it with [NewKey] or
// [GenerateKey]. Safe for concurrent use.
type Key struct {
	signer jose.Signer
	jkt    string
	now    func() time.Time
}

// GenerateKey returns a new ES256 (P-256) key, RFC 9449's most widely
// supported algorithm.
func GenerateKey() (*Key, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return NewKey(priv)
}

// NewKey returns a Key that signs with priv: an *ecdsa.PrivateKey (P-256,
// P-384 or P-521: ES256, ES384, ES512), an ed25519.PrivateKey (EdDSA) or
// an *rsa.PrivateKey of at least 2048 bits (PS256).
func NewKey(priv crypto.Signer) (*Key, error) {
	var alg jose.SignatureAlgorithm
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		alg = map[elliptic.Curve]jose.SignatureAlgorithm{
			elliptic.P256(): jose.ES256, elliptic.P384(): jose.ES384, elliptic.P521(): jose.ES512,
		}[k.Curve]
	case ed25519.PrivateKey:
		alg = jose.EdDSA
	case *rsa.PrivateKey:
		if k.N.BitLen() >= minRSABits {
			alg = jose.PS256
		}
	}
	if alg == "" {
		return nil, errors.New("dpop: unsupported key (ECDSA P-256/384/521, Ed25519 or RSA >= 2048 bits)")
	}
	pub := jose.JSONWebKey{Key: priv.Public()}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	opts := (&jose.SignerOptions{EmbedJWK: true}).WithType(ProofType)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: priv}, opts)
	if err != nil {
		return nil, err
	}
	return &Key{signer: signer, jkt: base64.RawURLEncoding.EncodeToString(tp), now: time.Now}, nil
}

// Thumbprint returns the key's RFC 7638 SHA-256 thumbprint (base64url):
// the cnf.jkt of tokens bound to it.
func (k *Key) Thumbprint() string { return k.jkt }

// Proof returns a new proof for a request with method to uri (its query
// and fragment are left out of htu), with ath when accessToken is not
// empty and a nonce claim when nonce is not empty.
func (k *Key) Proof(method, uri, accessToken, nonce string) (string, error) {
	htu := uri
	if i := strings.IndexAny(htu, "?#"); i >= 0 {
		htu = htu[:i]
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	claims := map[string]any{
		"jti": base64.RawURLEncoding.EncodeToString(jti),
		"htm": method,
		"htu": htu,
		"iat": k.now().Unix(),
	}
	if accessToken != "" {
		claims["ath"] = AccessTokenHash(accessToken)
	}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	obj, err := k.signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

// Transport is an http.RoundTripper that sends a DPoP proof (signed by
// Key) with every request: for the token endpoint, and, with ath, for
// every request carrying "Authorization: DPoP <token>". It remembers the
// latest DPoP-Nonce each server (scheme://host) sent and includes it in
// later proofs; when a server refuses a proof with use_dpop_nonce (400 at
// a token endpoint, 401 at a resource server, RFC 9449 §8 and §9), it
// sends the request once more with a proof carrying the new nonce, if the
// request's body can be replayed (http.NewRequest sets GetBody for the
// usual bodies).
//
// With golang.org/x/oauth2, put an *http.Client with this Transport in the
// context under oauth2.HTTPClient: the token requests then carry proofs,
// the tokens come back with token type DPoP, and the client from
// Config.Client sends them as "Authorization: DPoP" with a proof each.
type Transport struct {
	// Key signs the proofs; required.
	Key *Key
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper

	mu     sync.Mutex
	nonces map[string]string
}

// NewTransport returns a Transport signing with key over base.
func NewTransport(key *Key, base http.RoundTripper) *Transport {
	return &Transport{Key: key, Base: base}
}

// maxErrorBody bounds how much of an error response is read to look for
// use_dpop_nonce.
const maxErrorBody = 64 << 10

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.Key == nil {
		return nil, errors.New("dpop: Transport has no Key")
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	origin := req.URL.Scheme + "://" + req.URL.Host
	nonce := t.nonce(origin)
	resp, err := t.send(base, req, nonce)
	if err != nil {
		return nil, err
	}
	fresh := resp.Header.Get(NonceHeader)
	if fresh == "" {
		return resp, nil
	}
	t.setNonce(origin, fresh)
	if fresh == nonce || !wantsNonce(resp) {
		return resp, nil
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return resp, nil // the body is gone; the caller sees the refusal
	}
	retry := req.Clone(req.Context())
	if req.GetBody != nil {
		if retry.Body, err = req.GetBody(); err != nil {
			return resp, nil
		}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
	return t.send(base, retry, fresh)
}

// send sends a copy of req with a new proof.
func (t *Transport) send(base http.RoundTripper, req *http.Request, nonce string) (*http.Response, error) {
	var token string
	if scheme, rest, ok := strings.Cut(req.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, Scheme) {
		token = strings.TrimSpace(rest)
	}
	u := *req.URL
	u.RawQuery, u.Fragment, u.User = "", "", nil
	proof, err := t.Key.Proof(req.Method, u.String(), token, nonce)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	out := req.Clone(req.Context())
	out.Header.Set(HeaderName, proof)
	return base.RoundTrip(out)
}

// wantsNonce reports whether resp refuses a proof for lacking a nonce: a
// 401 whose DPoP challenge says use_dpop_nonce, or a 400 whose JSON error
// is use_dpop_nonce. The body it reads is put back.
func wantsNonce(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		for _, c := range resp.Header.Values("WWW-Authenticate") {
			if strings.Contains(c, CodeUseNonce) {
				return true
			}
		}
		return false
	case http.StatusBadRequest:
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if err != nil {
			return false
		}
		var e struct {
			Error string `json:"error"`
		}
		return json.Unmarshal(body, &e) == nil && e.Error == CodeUseNonce
	}
	return false
}

func (t *Transport) nonce(origin string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nonces[origin]
}

func (t *Transport) setNonce(origin, nonce string) {
	if len(nonce) > maxClaimLength {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nonces == nil {
		t.nonces = make(map[string]string)
	}
	t.nonces[origin] = nonce
}
