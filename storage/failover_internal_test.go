package storage

import (
	"testing"
	"time"
)

// TestFailoverOrder: hosts are tried in the DSN's order, except that those
// that failed within failoverCooldown come last, the longest failed first.
func TestFailoverOrder(t *testing.T) {
	now := time.Now()
	c := &failoverConnector{}
	for _, addr := range []string{"a:3306", "b:3306", "c:3306"} {
		c.hosts = append(c.hosts, &failoverHost{MySQLHost: MySQLHost{Net: "tcp", Addr: addr}})
	}
	order := func() string {
		var s string
		for _, h := range c.order(now) {
			s += h.Addr[:1]
		}
		return s
	}
	if got := order(); got != "abc" {
		t.Fatalf("no failure: order %s, want abc", got)
	}
	c.hosts[1].failedAt.Store(now.Add(-time.Second).UnixNano())
	c.hosts[0].failedAt.Store(now.Add(-2 * time.Second).UnixNano())
	if got := order(); got != "cab" {
		t.Fatalf("a and b failed (a first): order %s, want cab", got)
	}
	c.hosts[0].failedAt.Store(now.Add(-failoverCooldown - time.Second).UnixNano())
	if got := order(); got != "acb" {
		t.Fatalf("a failed before the cooldown, b within: order %s, want acb", got)
	}
}
