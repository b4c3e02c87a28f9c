package testkit

import (
	"sync"
	"time"
)

// Clock is a settable time source, safe for concurrent use. Its zero
// value reads 2030-01-02 03:04:05 UTC.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time in UTC; pass the method value as a Now
// func.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.now.IsZero() {
		c.now = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	}
	return c.now.UTC()
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
