package storage

import (
	"testing"
	"time"
)

func TestProviderDuration(t *testing.T) {
	opts := "evs.inactive_timeout = PT15S; evs.suspect_timeout = PT5S; gcache.size = 128M; evs.x = PT1M30S; evs.y = PT0.5S; evs.z = 5"
	for _, c := range []struct {
		key  string
		want time.Duration
		ok   bool
	}{
		{"evs.suspect_timeout", 5 * time.Second, true},
		{"evs.inactive_timeout", 15 * time.Second, true},
		{"evs.x", 90 * time.Second, true},
		{"evs.y", 500 * time.Millisecond, true},
		{"evs.z", 0, false},
		{"gcache.size", 0, false},
		{"missing", 0, false},
	} {
		if got, ok := providerDuration(opts, c.key); got != c.want || ok != c.ok {
			t.Errorf("providerDuration(%q) = %s, %v; want %s, %v", c.key, got, ok, c.want, c.ok)
		}
	}
}
