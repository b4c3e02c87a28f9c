package ratelimit

import (
	"testing"
	"time"
)

func TestKeyed(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(1, 3, 2)
	l.now = func() time.Time { return now }
	for i := range 3 {
		if !l.Allow("a") {
			t.Fatalf("event %d within the burst refused", i)
		}
	}
	if l.Allow("a") {
		t.Fatal("event past the burst allowed")
	}
	if !l.Allow("b") {
		t.Fatal("another key shares a's bucket")
	}
	now = now.Add(time.Second)
	if !l.Allow("a") {
		t.Fatal("bucket did not refill")
	}
	// A third key exceeds maxKeys; eviction keeps the map bounded.
	l.Allow("c")
	if n := len(l.buckets); n > 2 {
		t.Fatalf("%d buckets tracked, want at most 2", n)
	}
}
