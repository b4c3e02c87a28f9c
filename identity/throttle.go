package identity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/portcullis-auth/portcullis/internal/apperr"
)

// LockoutPolicy throttles password guessing without letting an attacker
// lock an account's owner out (OWASP ASVS V2.2, Keycloak's "temporary
// lockout with wait increments").
//
// Failures are counted per normalized username, whether or not such a user
// exists (so counting costs the same for every name and reveals nothing),
// at two levels:
//
//   - Per account and client network (an IPv4 address, an IPv6 /64): after
//     MaxFailures failures, that network gets no further attempt on the
//     account until Duration after its last one. This is the hard lock; it
//     only ever holds back the network the guesses came from.
//   - Per account, from all networks together: after MaxFailures failures,
//     each further attempt must wait Delay after the previous one, doubling
//     with each further failure up to MaxDelay. This slows a distributed
//     attack to one guess per MaxDelay; the owner, from a network without
//     failures, waits at most MaxDelay after an attacker's last attempt,
//     and not at all from a trusted network (below).
//
// Counters forget failures Window after the last one; a successful login
// clears its own network's counter and makes that network trusted for
// TrustedNetworkTTL: attempts from a trusted network skip the account-wide
// delay, so a distributed attack cannot hold back an owner logging in from
// a network they used before. Every attempt is counted before its
// password is hashed, in one database transaction, so concurrent guesses on
// any number of replicas cannot run more than MaxFailures hashes per
// network and account.
type LockoutPolicy struct {
	// MaxFailures is the number of failures that lock a network out of an
	// account and start the account-wide delay. Zero disables throttling.
	MaxFailures int
	// Window is how long after the last failure the counters reset.
	Window time.Duration
	// Duration is how long a network stays locked out of an account after
	// its last counted attempt.
	Duration time.Duration
	// Delay is the first account-wide delay; zero disables the
	// account-wide delay.
	Delay time.Duration
	// MaxDelay caps the account-wide delay.
	MaxDelay time.Duration
	// TrustedNetworkTTL is how long after a successful login its client
	// network stays trusted for the account: attempts from a trusted
	// network skip the account-wide delay (the hard lock per network still
	// applies). This is OWASP's "device cookie" defence for a grant that
	// has no cookies: a distributed attack keeps the account-wide delay
	// running, but the owner logging in from a network they used before
	// is never held back by it. Zero disables trust.
	TrustedNetworkTTL time.Duration
}

// Throttle is one guessing counter: its key, the failed (or still
// running) attempts it counts, when the last one was counted, and when the
// counter may be forgotten. A trusted-network marker is stored the same
// way, with Failures 1 and LastAt the time of the successful login.
type Throttle struct {
	Key      string
	Failures int
	LastAt   time.Time
	Expires  time.Time
}

// ThrottleStore keeps the guessing counters of LockoutPolicy.
// Implementations return errors matching apperr.ErrUnavailable when the
// database is unreachable.
type ThrottleStore interface {
	// UpdateThrottles loads the counters of keys, all belonging to
	// account (a counter that does not exist yet is loaded as a zero
	// Throttle with its Key set), under a write lock that serializes
	// concurrent updates of the same keys on every replica, calls update
	// with them in the order of keys, and stores the result in the same
	// transaction; counters left with Failures == 0 are deleted. If update
	// returns an error nothing is written and that error is returned.
	UpdateThrottles(ctx context.Context, account string, keys []string, update func([]*Throttle) error) error
	// AccountThrottles returns the counters (and trust markers) with
	// Failures > 0 of each of accounts, keyed by account; an account
	// without any is absent from the map.
	AccountThrottles(ctx context.Context, accounts []string) (map[string][]Throttle, error)
	// ClearThrottles deletes every counter of account.
	ClearThrottles(ctx context.Context, account string) error
	// DeleteStaleThrottles deletes counters that expire before before and
	// returns how many it deleted.
	DeleteStaleThrottles(ctx context.Context, before time.Time) (int64, error)
}

// ErrThrottled is matched (errors.Is) by the error Authenticate returns when
// an attempt is held back by LockoutPolicy; the error carries the time to
// wait as apperr.Error.RetryAfter. The password was not checked.
var ErrThrottled = &apperr.Error{Code: apperr.ETooManyRequests, Message: "too many failed login attempts; retry later"}

// throttleKeys returns the counter keys of a login attempt: the account's
// (also the account key), the (account, network) one, and the key of the
// (account, network) trust marker. Keys are SHA-256 digests, so the table
// holds neither usernames nor addresses.
func throttleKeys(username, clientIP string) (account, network, trusted string) {
	norm, net := NormalizeUsername(username), clientNetwork(clientIP)
	return digest("account\x00" + norm), digest("network\x00" + norm + "\x00" + net), digest("trusted\x00" + norm + "\x00" + net)
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// clientNetwork is the unit of the hard lock: an IPv4 address, or the /64
// of an IPv6 address (one subscriber or host usually holds a whole /64).
// Anything that does not parse as an address is used as it is.
func clientNetwork(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	addr = addr.Unmap()
	if addr.Is6() {
		p, _ := addr.WithZone("").Prefix(64)
		return p.String()
	}
	return addr.String()
}

// forget is how long a failure counter is kept after its last attempt:
// until it can neither lock nor delay anything.
func (p LockoutPolicy) forget() time.Duration {
	return max(p.Window, p.Duration) + p.MaxDelay
}

// lockFor is how long a network is locked out after its failures-th
// counted attempt: Duration from MaxFailures on.
func (p LockoutPolicy) lockFor(failures int) time.Duration {
	if failures < p.MaxFailures {
		return 0
	}
	return p.Duration
}

// accountDelay is the account-wide wait after failures failures.
func (p LockoutPolicy) accountDelay(failures int) time.Duration {
	if p.Delay <= 0 || failures < p.MaxFailures {
		return 0
	}
	d := p.Delay
	for i := p.MaxFailures; i < failures && d < p.MaxDelay; i++ {
		d *= 2
	}
	return min(d, max(p.MaxDelay, p.Delay))
}

// reserve counts one attempt on username from clientIP before its password
// is checked, or returns an error matching ErrThrottled (with the time to
// wait) when LockoutPolicy holds it back.
func (s *Service) reserve(ctx context.Context, username, clientIP string, now time.Time) error {
	p := s.Lockout
	if p.MaxFailures <= 0 || s.Throttles == nil {
		return nil
	}
	account, network, trustKey := throttleKeys(username, clientIP)
	var wait time.Duration
	err := s.Throttles.UpdateThrottles(ctx, account, []string{account, network, trustKey}, func(ts []*Throttle) error {
		acct, net, trust := ts[0], ts[1], ts[2]
		counters := []*Throttle{acct, net}
		// A counter resets Window after its last attempt, but never while
		// it still locks (net) or delays (acct).
		if net.Failures > 0 && now.Sub(net.LastAt) >= max(p.Window, p.lockFor(net.Failures)) {
			net.Failures = 0
		}
		if acct.Failures > 0 && now.Sub(acct.LastAt) >= max(p.Window, p.accountDelay(acct.Failures)) {
			acct.Failures = 0
		}
		if d := p.lockFor(net.Failures); d > 0 {
			wait = max(wait, net.LastAt.Add(d).Sub(now))
		}
		trusted := trust.Failures > 0 && now.Sub(trust.LastAt) < p.TrustedNetworkTTL
		if d := p.accountDelay(acct.Failures); d > 0 && !trusted {
			wait = max(wait, acct.LastAt.Add(d).Sub(now))
		}
		if wait > 0 {
			return ErrThrottled
		}
		for _, t := range counters {
			t.Failures++
			t.LastAt = now
			t.Expires = now.Add(p.forget())
		}
		return nil
	})
	if errors.Is(err, ErrThrottled) {
		return &apperr.Error{Code: ErrThrottled.Code, Message: ErrThrottled.Message, RetryAfter: wait}
	}
	if err != nil {
		return fmt.Errorf("count login attempt: %w", err)
	}
	return nil
}

// succeeded resets the counter of the network a successful login came
// from and trusts that network for the account for TrustedNetworkTTL. The
// account-wide counter and other networks' locks stay (they decay with
// Window): the owner's login must not hand attackers fresh guesses.
func (s *Service) succeeded(ctx context.Context, username, clientIP string) error {
	if s.Lockout.MaxFailures <= 0 || s.Throttles == nil {
		return nil
	}
	account, network, trustKey := throttleKeys(username, clientIP)
	now := s.now().UTC()
	err := s.Throttles.UpdateThrottles(ctx, account, []string{account, network, trustKey}, func(ts []*Throttle) error {
		ts[1].Failures = 0
		if s.Lockout.TrustedNetworkTTL > 0 {
			ts[2].Failures, ts[2].LastAt, ts[2].Expires = 1, now, now.Add(s.Lockout.TrustedNetworkTTL)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reset login failures: %w", err)
	}
	return nil
}

// clearThrottles resets every counter of username's account (an
// administrator's unlock, a password change).
func (s *Service) clearThrottles(ctx context.Context, username string) error {
	if s.Throttles == nil {
		return nil
	}
	account, _, _ := throttleKeys(username, "")
	if err := s.Throttles.ClearThrottles(ctx, account); err != nil {
		return fmt.Errorf("clear login failures: %w", err)
	}
	return nil
}

// LockState is what LockoutPolicy holds against an account at one moment,
// as an administrator sees it. The policy has two kinds of holds (see
// LockoutPolicy): the hard lock of one client network, which only ever
// holds back that network, and the account-wide delay, which holds back
// every network the user has not logged in from within
// TrustedNetworkTTL. No state ever keeps out the owner on a trusted
// network, except a hard lock of that very network.
type LockState struct {
	// Locked reports that some login attempts on the account are being
	// held back now: the account-wide delay is in force, or at least one
	// client network is locked out of the account.
	Locked bool
	// Until is when the last of those holds ends if no further attempt
	// fails (zero when not Locked): attempts held back do not extend it,
	// further failures counted from elsewhere do.
	Until time.Time
	// DelayedUntil is when the account-wide delay ends (zero when it is
	// not in force): until then, attempts from networks the user has not
	// logged in from recently are answered 429.
	DelayedUntil time.Time
	// LockedNetworks is how many client networks (IPv4 addresses, IPv6
	// /64s) are locked out of the account after MaxFailures failures from
	// each; their addresses are not stored, only digests.
	LockedNetworks int
}

// LockStates returns the LockState of each of users now, keyed by user ID,
// in one query. Without throttling (no ThrottleStore, or MaxFailures 0)
// every state is zero. Unlock (Change.Unlock) and a password change clear
// the counters behind it.
func (s *Service) LockStates(ctx context.Context, users []*User) (map[string]LockState, error) {
	out := make(map[string]LockState, len(users))
	if s.Lockout.MaxFailures <= 0 || s.Throttles == nil || len(users) == 0 {
		return out, nil
	}
	accounts := make([]string, 0, len(users))
	accountOf := make(map[string]string, len(users))
	for _, u := range users {
		a, _, _ := throttleKeys(u.Username, "")
		accounts = append(accounts, a)
		accountOf[u.ID] = a
	}
	rows, err := s.Throttles.AccountThrottles(ctx, accounts)
	if err != nil {
		return nil, fmt.Errorf("read login failures: %w", err)
	}
	now := s.now().UTC()
	for _, u := range users {
		a := accountOf[u.ID]
		out[u.ID] = s.Lockout.lockState(a, rows[a], now)
	}
	return out, nil
}

// lockState reads the counters of the account whose account key is
// account at now.
func (p LockoutPolicy) lockState(account string, ts []Throttle, now time.Time) LockState {
	var st LockState
	hold := func(end time.Time) {
		if now.Before(end) {
			st.Locked = true
			if end.After(st.Until) {
				st.Until = end
			}
		}
	}
	for _, t := range ts {
		switch {
		case t.Key == account:
			if d := p.accountDelay(t.Failures); d > 0 && now.Before(t.LastAt.Add(d)) {
				st.DelayedUntil = t.LastAt.Add(d)
				hold(st.DelayedUntil)
			}
		case p.isTrustMarker(t):
		case p.lockFor(t.Failures) > 0 && now.Before(t.LastAt.Add(p.Duration)):
			st.LockedNetworks++
			hold(t.LastAt.Add(p.Duration))
		}
	}
	return st
}

// isTrustMarker tells a trust marker (succeeded) from a network's
// counter, which share the table under digests: a marker always has
// Failures 1 and is kept TrustedNetworkTTL after its login, a counter
// forget() after its last attempt. (With MaxFailures above 1, a counter
// at 1 locks nothing, so the guess only matters for MaxFailures 1.)
func (p LockoutPolicy) isTrustMarker(t Throttle) bool {
	if t.Failures != 1 || p.TrustedNetworkTTL <= 0 {
		return false
	}
	kept := t.Expires.Sub(t.LastAt)
	return (kept - p.TrustedNetworkTTL).Abs() < (kept - p.forget()).Abs()
}
