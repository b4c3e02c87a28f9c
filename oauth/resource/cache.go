package resource

import (
	"crypto/sha256"
	"sync"
	"time"
)

// tokenCache maps the SHA-256 of a raw token to its verified claims until a
// deadline. It holds at most max entries: when full, the entry inserted
// first is evicted (tokens have similar lifetimes, so it is also about the
// first to expire). Expired entries are never served and age out the same
// way. Create it with newTokenCache.
type tokenCache struct {
	max int

	mu      sync.RWMutex
	entries map[[sha256.Size]byte]cacheEntry
	// ring holds the keys in insertion order; a key is pushed only when it
	// is not in entries, and removed from entries when its slot is reused,
	// so every key in entries is in ring and len(entries) <= max.
	ring [][sha256.Size]byte
	next int // slot to reuse once len(ring) == max: the oldest key
}

type cacheEntry struct {
	claims   *Claims // never modified after insertion
	deadline time.Time
}

func newTokenCache(size int) *tokenCache {
	return &tokenCache{
		max:     size,
		entries: make(map[[sha256.Size]byte]cacheEntry, min(size, 1024)),
		ring:    make([][sha256.Size]byte, 0, min(size, 1024)),
	}
}

// get returns the claims cached under key if their deadline is after now.
// The caller must not modify them.
func (c *tokenCache) get(key [sha256.Size]byte, now time.Time) (*Claims, bool) {
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || !now.Before(e.deadline) {
		return nil, false
	}
	return e.claims, true
}

// put caches claims under key until deadline, evicting the oldest entry
// when the cache is full. The cache keeps claims; the caller must not
// modify them afterwards.
func (c *tokenCache) put(key [sha256.Size]byte, claims *Claims, deadline time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; ok {
		c.entries[key] = cacheEntry{claims: claims, deadline: deadline}
		return
	}
	if len(c.ring) < c.max {
		c.ring = append(c.ring, key)
	} else {
		delete(c.entries, c.ring[c.next])
		c.ring[c.next] = key
		c.next = (c.next + 1) % c.max
	}
	c.entries[key] = cacheEntry{claims: claims, deadline: deadline}
}
