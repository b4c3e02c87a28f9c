package dpop

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ReplayCache remembers the proofs a Verifier accepted until they can no
// longer be accepted anyway (RFC 9449 §11.1), so that a proof is used at
// most once. The authorization server uses the database (storage.Store),
// shared by every replica; a resource server may use MemoryReplayCache.
type ReplayCache interface {
	// AddProof records id until expires and reports whether it was new:
	// false means id was recorded before (a replay). Of concurrent calls
	// with one id, exactly one reports true. An error means it cannot
	// tell; the proof must then be refused.
	AddProof(ctx context.Context, id string, expires time.Time) (bool, error)
}

// DefaultMemoryReplayEntries is the default bound of a MemoryReplayCache.
const DefaultMemoryReplayEntries = 500_000

// ErrReplayCacheFull is returned by MemoryReplayCache.AddProof when it
// holds its maximum of unexpired proofs: it cannot remember another, so
// the proof must be refused (as temporarily unavailable), not accepted.
var ErrReplayCacheFull = errors.New("dpop: replay cache full")

// MemoryReplayCache is a ReplayCache in the memory of one process: for a
// resource server that runs as one process, or whose replicas each accept
// a proof once (a proof replayed to another replica within its lifetime is
// then accepted there once more). It is bounded; expired entries are
// dropped as it fills. Safe for concurrent use.
type MemoryReplayCache struct {
	mu        sync.Mutex
	seen      map[string]time.Time
	max       int
	now       func() time.Time
	lastSweep time.Time
}

// NewMemoryReplayCache returns a cache holding at most max proofs (zero:
// DefaultMemoryReplayEntries); now is its clock (nil: time.Now).
func NewMemoryReplayCache(max int, now func() time.Time) *MemoryReplayCache {
	if max <= 0 {
		max = DefaultMemoryReplayEntries
	}
	if now == nil {
		now = time.Now
	}
	return &MemoryReplayCache{seen: make(map[string]time.Time), max: max, now: now}
}

// AddProof implements ReplayCache.
func (c *MemoryReplayCache) AddProof(_ context.Context, id string, expires time.Time) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if exp, ok := c.seen[id]; ok && now.Before(exp) {
		return false, nil
	}
	if len(c.seen) >= c.max {
		if now.Sub(c.lastSweep) >= time.Second || len(c.seen) > c.max {
			c.sweep(now)
		}
		if len(c.seen) >= c.max {
			return false, ErrReplayCacheFull
		}
	}
	c.seen[id] = expires
	return true, nil
}

// Len returns the number of proofs remembered.
func (c *MemoryReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

func (c *MemoryReplayCache) sweep(now time.Time) {
	c.lastSweep = now
	for id, exp := range c.seen {
		if !now.Before(exp) {
			delete(c.seen, id)
		}
	}
}
