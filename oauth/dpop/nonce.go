package dpop

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// DefaultNonceLifetime is the default lifetime of a server nonce.
const DefaultNonceLifetime = 5 * time.Minute

// Nonces issues and checks server nonces (RFC 9449 §8, §9) without
// storage: a nonce is the time it was issued, authenticated with an HMAC
// under a key every replica shares, so any replica accepts a nonce another
// issued. All replicas hand out the same nonce within a period of half the
// lifetime; a nonce is accepted for its lifetime from issue.
type Nonces struct {
	key      []byte
	lifetime time.Duration
	now      func() time.Time
}

// nonceClockSkew is how far ahead of a replica's clock a nonce issued by
// another replica may be.
const nonceClockSkew = 5 * time.Second

// nonceMACSize is the length of a nonce's truncated HMAC-SHA-256.
const nonceMACSize = 16

// NewNonces returns nonces authenticated with key (at least 32 bytes,
// shared by every server that must accept them), each valid for lifetime
// (zero: DefaultNonceLifetime). now is the clock (nil: time.Now).
func NewNonces(key []byte, lifetime time.Duration, now func() time.Time) *Nonces {
	if lifetime <= 0 {
		lifetime = DefaultNonceLifetime
	}
	if now == nil {
		now = time.Now
	}
	return &Nonces{key: append([]byte(nil), key...), lifetime: lifetime, now: now}
}

// Current returns the nonce to hand out now.
func (n *Nonces) Current() string {
	period := int64(n.lifetime/2) / int64(time.Second)
	if period < 1 {
		period = 1
	}
	t := n.now().Unix()
	return n.make(t - t%period)
}

func (n *Nonces) make(issued int64) string {
	var b [8 + nonceMACSize]byte
	binary.BigEndian.PutUint64(b[:8], uint64(issued))
	copy(b[8:], n.mac(b[:8]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (n *Nonces) mac(msg []byte) []byte {
	m := hmac.New(sha256.New, n.key)
	m.Write([]byte("portcullis dpop nonce\x00"))
	m.Write(msg)
	return m.Sum(nil)[:nonceMACSize]
}

// Valid reports whether nonce was issued by these Nonces (the same key)
// and is still within its lifetime.
func (n *Nonces) Valid(nonce string) bool {
	b, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(b) != 8+nonceMACSize {
		return false
	}
	if !hmac.Equal(b[8:], n.mac(b[:8])) {
		return false
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(b[:8])), 0)
	now := n.now()
	// A replica whose clock is a little behind the one that issued the
	// nonce still takes it.
	return !issued.After(now.Add(nonceClockSkew)) && now.Sub(issued) < n.lifetime
}
