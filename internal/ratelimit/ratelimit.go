// Package ratelimit limits events per key (a client IP) with token buckets.
package ratelimit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Keyed is a token-bucket rate limiter per key (a client IP), with a
// bounded number of keys so that a flood of addresses cannot exhaust
// memory. It is local to one replica.
type Keyed struct {
	rate    rate.Limit
	burst   int
	maxKeys int
	now     func() time.Time

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

// New allows perSecond events per key with the given burst,
// tracking at most maxKeys keys (default 100000).
func New(perSecond float64, burst, maxKeys int) *Keyed {
	if maxKeys <= 0 {
		maxKeys = 100000
	}
	return &Keyed{rate: rate.Limit(perSecond), burst: burst, maxKeys: maxKeys, now: time.Now, buckets: map[string]*rate.Limiter{}}
}

// Allow reports whether one more event for key is allowed now.
func (l *Keyed) Allow(key string) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.maxKeys {
			l.evict(now)
		}
		b = rate.NewLimiter(l.rate, l.burst)
		l.buckets[key] = b
	}
	return b.AllowN(now, 1)
}

// evict drops buckets that have refilled completely (they carry no state)
// and, if that is not enough, an arbitrary half of the rest: forgetting a
// bucket only forgives its key, and dropping everything would let a client
// with many addresses reset every other client's limit at once.
func (l *Keyed) evict(now time.Time) {
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
	drop := len(l.buckets) - l.maxKeys/2
	for k := range l.buckets {
		if drop <= 0 {
			break
		}
		delete(l.buckets, k)
		drop--
	}
}
