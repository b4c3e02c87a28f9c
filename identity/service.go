package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis-auth/portcullis/audit"

	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/listpage"
)

// ErrInvalidCredentials is returned by Authenticate for an unknown user, a
// wrong password, a disabled account and a locked account alike, so that
// callers cannot tell them apart (no user enumeration).
var ErrInvalidCredentials = &apperr.Error{Code: apperr.EUnauthorized, Message: "invalid username or password"}

// Service implements sign-up, authentication and account administration.
// All fields are required except Now, NewID and Logger.
type Service struct {
	Store   Store
	Hasher  *PasswordHasher
	Policy  PasswordPolicy
	Lockout LockoutPolicy
	// Now defaults to time.Now.
	Now func() time.Time
	// NewID defaults to random UUIDs.
	NewID  func() string
	Logger *slog.Logger
	// Sessions, when set, revokes a user's grants on password change,
	// disabling and deletion, in the same transaction as the change
	// (Store.InTx): it must be backed by the same database as Store.
	Sessions SessionRevoker
	// Throttles keeps the guessing counters of Lockout; nil disables
	// throttling.
	Throttles ThrottleStore
	// MFA, when set, enables second factors (mfa.go).
	MFA *MFA
	// Audit, when set, records every change of a user (in the change's
	// transaction: Store.InTx, so it must be backed by the same database
	// as Store), each login and second-factor change (package audit).
	Audit audit.Recorder
	// MaxConcurrentHashes bounds the argon2id computations running at once
	// (each holds the configured memory), and the bcrypt checks of
	// imported hashes with them; further logins wait their turn.
	// Zero means GOMAXPROCS: argon2id is CPU-bound, so more hashes at once
	// only add memory and tail latency (measured: at 8 concurrent logins on
	// 2 CPUs, 2 slots gave 68 grants/s at p99 300 ms, 4 slots 60/s at 490 ms).
	// As many logins again may do their database work (counting the
	// attempt, reading the user) while those hash, so that a slot never
	// idles while a login waits on the database.
	MaxConcurrentHashes int
	// MaxHashWait bounds the wait for admission, one of the
	// 2×MaxConcurrentHashes places of logins and sign-ups under way; a
	// request admitted by none in time fails with ErrOverloaded, so that
	// under a flood the admitted requests stay fast instead of all
	// queueing for seconds. An admitted request then waits for a hashing
	// slot without bound: at most the MaxConcurrentHashes hashes ahead of
	// it. Zero means no bound.
	MaxHashWait time.Duration
	// HashingIdle, when set, is called in its own goroutine once no hash
	// has run for HashingIdleDelay since the last one ended: at most once
	// per burst of logins, never while logins keep coming. Each argon2id
	// computation leaves its MemoryKiB buffer to the garbage collector,
	// which an idle Go program may not run for minutes, so the memory of
	// the last hashes stays resident; cmd/portcullis passes
	// debug.FreeOSMemory.
	HashingIdle func()
	// HashingIdleDelay is how long the hashing slots must stay free before
	// HashingIdle is called. Zero means one second.
	HashingIdleDelay time.Duration

	semOnce sync.Once
	admit   chan struct{} // 2n places: logins and sign-ups under way
	sem     chan struct{} // n slots: hashes running

	idleMu      sync.Mutex
	hashes      int         // hashes running
	idlePending bool        // the slots went free since HashingIdle last ran
	idleTimer   *time.Timer // calls s.idle HashingIdleDelay after the slots went free
}

// ErrOverloaded is returned when no place frees up within MaxHashWait: the
// server is busy; the client should retry shortly.
var ErrOverloaded = &apperr.Error{Code: apperr.EUnavailable, Message: "the server is busy; retry shortly", RetryAfter: time.Second}

func (s *Service) initSlots() {
	s.semOnce.Do(func() {
		n := s.MaxConcurrentHashes
		if n <= 0 {
			n = runtime.GOMAXPROCS(0)
		}
		s.admit = make(chan struct{}, 2*n)
		s.sem = make(chan struct{}, n)
	})
}

// admission waits for one of the places of logins and sign-ups under way
// and returns the function that gives it back. It returns ErrOverloaded
// if no place frees up within MaxHashWait, or ctx's error if the context
// ends first.
func (s *Service) admission(ctx context.Context) (release func(), err error) {
	s.initSlots()
	release = func() { <-s.admit }
	select {
	case s.admit <- struct{}{}:
		return release, nil
	default:
	}
	var timeout <-chan time.Time
	if s.MaxHashWait > 0 {
		t := time.NewTimer(s.MaxHashWait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case s.admit <- struct{}{}:
		return release, nil
	case <-timeout:
		return nil, ErrOverloaded
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting to hash a password: %w", context.Cause(ctx))
	}
}

// hash runs fn, an argon2id computation, holding one of the hashing
// slots. The caller holds a place (admission), so the wait is short: it
// is not bounded, and an attempt counted before it is always checked.
func (s *Service) hash(fn func()) {
	s.sem <- struct{}{}
	s.idleMu.Lock()
	s.hashes++
	s.idleMu.Unlock()
	defer func() {
		s.idleMu.Lock()
		s.hashes--
		if s.hashes == 0 && s.HashingIdle != nil {
			s.idlePending = true
			delay := s.HashingIdleDelay
			if delay <= 0 {
				delay = time.Second
			}
			if s.idleTimer == nil {
				s.idleTimer = time.AfterFunc(delay, s.idle)
			} else {
				s.idleTimer.Reset(delay)
			}
		}
		s.idleMu.Unlock()
		<-s.sem
	}()
	fn()
}

// idle calls HashingIdle if no hash has run since the slots went free.
func (s *Service) idle() {
	s.idleMu.Lock()
	run := s.hashes == 0 && s.idlePending
	s.idlePending = false
	s.idleMu.Unlock()
	if run {
		s.HashingIdle()
	}
}

// hashing runs fn, an argon2id computation, with a place (admission) and
// a hashing slot. It returns ErrOverloaded if no place frees up within
// MaxHashWait, or ctx's error if the context ends first; fn has not run
// then.
func (s *Service) hashing(ctx context.Context, fn func()) error {
	release, err := s.admission(ctx)
	if err != nil {
		return err
	}
	defer release()
	s.hash(fn)
	return nil
}

// now is truncated to what the databases store (microseconds), so a user
// reads back exactly as it was returned at creation.
func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().Truncate(time.Microsecond)
	}
	return time.Now().Truncate(time.Microsecond)
}

func (s *Service) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

var roleRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$`)

// ValidateRoles checks role names: 1 to 64 characters of letters, digits,
// '_', '.', ':' and '-', starting with a letter or digit. It returns the
// roles sorted and without duplicates.
func ValidateRoles(roles []string) ([]string, error) {
	out := make([]string, 0, len(roles))
	for _, r := range roles {
		if !roleRE.MatchString(r) {
			return nil, &PolicyError{Field: "roles", Problems: []string{fmt.Sprintf("invalid role name %q", r)}}
		}
		out = append(out, r)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Signup creates a user after checking the username and password policies.
// It returns a *PolicyError (apperr.EInvalid semantics) for rejected input
// and an error matching apperr.ErrAlreadyExists when the name is taken.
func (s *Service) Signup(ctx context.Context, username, password string, roles []string) (*User, error) {
	if err := ValidateNewUsername(username); err != nil {
		return nil, err
	}
	if err := s.Policy.Validate(password, username); err != nil {
		return nil, err
	}
	roles, err := ValidateRoles(roles)
	if err != nil {
		return nil, err
	}
	var hash string
	if werr := s.hashing(ctx, func() { hash, err = s.Hasher.Hash(password) }); werr != nil {
		return nil, werr
	}
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	now := s.now().UTC()
	id := uuid.NewString()
	if s.NewID != nil {
		id = s.NewID()
	}
	u := &User{ID: id, Username: username, PasswordHash: hash, Roles: roles, CreatedAt: now, UpdatedAt: now}
	if !audit.HasActor(ctx) {
		ctx = audit.WithActor(ctx, audit.UserTarget(id)) // a sign-up: the new user acts
	}
	err = s.Store.InTx(ctx, func(ctx context.Context) error {
		if err := s.Store.CreateUser(ctx, u); err != nil {
			return err
		}
		return s.record(ctx, audit.UserCreate, audit.UserTarget(id))
	})
	if err != nil {
		if errors.Is(err, apperr.ErrAlreadyExists) {
			return nil, &apperr.Error{Code: apperr.EConflict, Message: "username is already taken"}
		}
		return nil, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

// Authenticate checks a username and password for a login from clientIP
// (the client's address, used by LockoutPolicy). Every failure that
// depends on the account (unknown, wrong password, disabled) returns
// ErrInvalidCredentials after the same work: the user is looked up, the
// attempt counted (for unknown usernames too) and one argon2id hash
// computed. An attempt held back by the lockout policy returns an error
// matching ErrThrottled without checking the password, whether or not the
// user exists; ErrOverloaded when no hashing slot frees up in time (the
// attempt is then not counted); storage failures as they are. A success
// resets the account's counters (unless the user must still prove a second
// factor: NeedsSecondFactor, LoginSucceeded) and upgrades the hash when the
// parameters changed.
//
// The attempt is counted once the login is admitted (MaxHashWait), right
// before it waits for a hashing slot: requests refused for want of a place
// cost no database work, an attempt once counted is always checked, and
// the slots hash while the next logins do their database work.
func (s *Service) Authenticate(ctx context.Context, username, password, clientIP string) (*User, error) {
	if len(password) > authMaxPasswordBytes || ValidateUsername(username) != nil {
		// No account can have this name: the same hashing work, but no
		// counter is written (a spray of random names must not fill the
		// counter table). What this reveals, that the name is malformed,
		// anyone can tell from the username rules.
		if err := s.hashing(ctx, func() { s.Hasher.Burn(password) }); err != nil {
			return nil, err
		}
		return nil, ErrInvalidCredentials
	}
	release, werr := s.admission(ctx)
	if werr != nil {
		return nil, werr
	}
	var u *User
	var ok, rehash bool
	var verr, rerr error
	func() {
		defer release()
		if rerr = s.reserve(ctx, username, clientIP, s.now().UTC()); rerr != nil {
			return
		}
		var err error
		u, err = s.Store.GetUserByUsername(ctx, username)
		if errors.Is(err, apperr.ErrNotFound) {
			u, err = nil, nil
		}
		if err != nil {
			rerr = fmt.Errorf("look up user: %w", err)
			return
		}
		if u == nil {
			s.hash(func() { s.Hasher.Burn(password) })
			return
		}
		s.hash(func() { ok, rehash, verr = s.Hasher.Verify(password, u.PasswordHash) })
	}()
	switch {
	case errors.Is(rerr, ErrThrottled):
		s.recordLogin(ctx, audit.LoginThrottled, nil, audit.OutcomeFailure)
		return nil, rerr
	case rerr != nil:
		return nil, rerr
	case verr != nil:
		s.logger().ErrorContext(ctx, "stored password hash is unusable", "user_id", u.ID, "err", verr.Error())
		s.recordLogin(ctx, audit.Login, u, audit.OutcomeFailure)
		return nil, ErrInvalidCredentials
	case u == nil || u.Disabled || !ok:
		s.recordLogin(ctx, audit.Login, u, audit.OutcomeFailure)
		return nil, ErrInvalidCredentials
	}
	// A user with a second factor has not logged in yet: the counters
	// stay until the factor is proven too (LoginSucceeded), so that a
	// right password cannot reset what wrong codes counted, and the
	// audit trail has a complete login only then.
	need, err := s.NeedsSecondFactor(ctx, u)
	if err != nil {
		return nil, err
	}
	if need {
		s.recordLogin(ctx, audit.LoginPassword, u, audit.OutcomeSuccess)
	} else {
		s.recordLogin(ctx, audit.Login, u, audit.OutcomeSuccess)
		if err := s.succeeded(ctx, username, clientIP); err != nil {
			return nil, err
		}
	}
	if rehash {
		var upgraded string
		_ = s.hashing(ctx, func() {
			if h, err := s.Hasher.Hash(password); err == nil {
				upgraded = h
			}
		})
		if upgraded != "" {
			return s.upgradeHash(ctx, u, password, upgraded)
		}
	}
	return u, nil
}

// errHashChanged: the stored hash is no longer the one a login checked.
var errHashChanged = errors.New("password hash changed since it was checked")

// upgradeHash replaces checked's password hash, the one password was just
// verified against, with upgraded, but only if it is still the stored
// hash: a password change, disabling or deletion that committed since the
// check must not be overwritten with a hash of the old password (that
// undid the change and let the login's grant outlive it). If the hash
// changed meanwhile (a password change, or another login's upgrade of the
// same password), password is checked again against the stored hash; a
// deleted account fails with ErrInvalidCredentials.
func (s *Service) upgradeHash(ctx context.Context, checked *User, password, upgraded string) (*User, error) {
	now := s.now().UTC()
	u, err := s.Store.UpdateUser(ctx, checked.ID, func(u *User) error {
		if u.PasswordHash != checked.PasswordHash {
			return errHashChanged
		}
		u.PasswordHash, u.UpdatedAt = upgraded, now
		return nil
	})
	switch {
	case err == nil:
		return u, nil
	case errors.Is(err, apperr.ErrNotFound):
		return nil, ErrInvalidCredentials
	case !errors.Is(err, errHashChanged):
		return nil, fmt.Errorf("upgrade password hash: %w", err)
	}
	u, err = s.Store.GetUser(ctx, checked.ID)
	if errors.Is(err, apperr.ErrNotFound) {
		return nil, ErrInvalidCredentials
	}
	if err != nil {
		return nil, fmt.Errorf("look up user: %w", err)
	}
	var ok bool
	if werr := s.hashing(ctx, func() { ok, _, err = s.Hasher.Verify(password, u.PasswordHash) }); werr != nil {
		return nil, werr
	}
	if err != nil || !ok || u.Disabled {
		return nil, ErrInvalidCredentials
	}
	return u, nil
}

// errUserNotFound is the answer for an ID or username that names no user.
var errUserNotFound = &apperr.Error{Code: apperr.ENotFound, Message: "user not found"}

// Get returns the user with the given ID. IDs are never matched against
// usernames: every change and every authorisation decision goes by ID,
// so a user whose name happens to equal another user's ID cannot be
// mistaken for that user. It returns an error matching apperr.ErrNotFound
// when no user has the ID.
func (s *Service) Get(ctx context.Context, id string) (*User, error) {
	u, err := s.Store.GetUser(ctx, id)
	if errors.Is(err, apperr.ErrNotFound) {
		return nil, errUserNotFound
	}
	return u, err
}

// GetByUsername returns the user with the given username, compared
// case-insensitively (NormalizeUsername), or an error matching
// apperr.ErrNotFound. Only callers that are explicitly given a username
// use it (the CLI's "users get U"); nothing authorises by username.
func (s *Service) GetByUsername(ctx context.Context, username string) (*User, error) {
	u, err := s.Store.GetUserByUsername(ctx, username)
	if errors.Is(err, apperr.ErrNotFound) {
		return nil, errUserNotFound
	}
	return u, err
}

// Update applies a partial change to the user with the given ID (never a
// username; see Get). Nil fields are left alone; a non-nil Password is
// checked against the policy and hashed, and clears the account's
// guessing counters. A new password or disabling revokes the user's
// grants (Sessions) in the same transaction as the change: if the
// revocation fails, nothing is changed and its error is returned.
func (s *Service) Update(ctx context.Context, id string, ch Change) (*User, error) {
	u, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if ch.IfMatch != nil && !ch.IfMatch(u.Version()) {
		return nil, ErrVersionMismatch // before hashing a password in vain
	}
	var roles []string
	if ch.Roles != nil {
		if roles, err = ValidateRoles(*ch.Roles); err != nil {
			return nil, err
		}
	}
	var hash string
	if ch.Password != nil {
		if err := s.Policy.Validate(*ch.Password, u.Username); err != nil {
			return nil, err
		}
		if werr := s.hashing(ctx, func() { hash, err = s.Hasher.Hash(*ch.Password) }); werr != nil {
			return nil, werr
		}
		if err != nil {
			return nil, fmt.Errorf("hash password: %w", err)
		}
	}
	now := s.now().UTC()
	var updated *User
	err = s.Store.InTx(ctx, func(ctx context.Context) error {
		var err error
		updated, err = s.Store.UpdateUser(ctx, u.ID, func(u *User) error {
			if ch.IfMatch != nil && !ch.IfMatch(u.Version()) {
				return ErrVersionMismatch
			}
			if ch.Roles != nil {
				u.Roles = roles
			}
			if ch.Disabled != nil {
				u.Disabled = *ch.Disabled
			}
			if ch.MFARequired != nil {
				u.MFARequired = *ch.MFARequired
			}
			if hash != "" {
				u.PasswordHash = hash
			}
			u.UpdatedAt = now
			return nil
		})
		if err != nil {
			return err
		}
		if hash != "" || (ch.Disabled != nil && *ch.Disabled) {
			if err := s.revokeSessions(ctx, u.ID); err != nil {
				return err
			}
		}
		if hash != "" || ch.Unlock {
			if err := s.clearThrottles(ctx, u.Username); err != nil {
				return err
			}
		}
		for _, action := range ch.actions() {
			if err := s.record(ctx, action, audit.UserTarget(u.ID)); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, apperr.ErrNotFound) {
		return nil, errUserNotFound // deleted since Get
	}
	if err != nil {
		return nil, err
	}
	return updated, nil
}

// revokeSessions ends the user's grants, if a SessionRevoker is set.
func (s *Service) revokeSessions(ctx context.Context, userID string) error {
	if s.Sessions == nil {
		return nil
	}
	if err := s.Sessions.RevokeSubject(ctx, userID); err != nil {
		return fmt.Errorf("revoke the user's tokens: %w", err)
	}
	return nil
}

// Change is a partial update of a user; nil means unchanged.
type Change struct {
	Roles    *[]string
	Disabled *bool
	Password *string
	// MFARequired sets User.MFARequired: the user must prove a second
	// factor at every login from then on.
	MFARequired *bool
	// Unlock clears the account's guessing counters (LockoutPolicy),
	// including the locks of every network.
	Unlock bool
	// IfMatch, when set, makes the change conditional: it is made only if
	// IfMatch accepts the user's current Version, checked under the row
	// lock in the change's transaction; otherwise nothing is changed and
	// ErrVersionMismatch is returned.
	IfMatch func(version string) bool
}

// actions returns the audit actions of the change, one per aspect.
func (ch Change) actions() []string {
	var out []string
	if ch.Roles != nil {
		out = append(out, audit.UserSetRoles)
	}
	if ch.Disabled != nil {
		out = append(out, map[bool]string{true: audit.UserDisable, false: audit.UserEnable}[*ch.Disabled])
	}
	if ch.Password != nil {
		out = append(out, audit.UserSetPassword)
	}
	if ch.Unlock {
		out = append(out, audit.UserUnlock)
	}
	if ch.MFARequired != nil {
		out = append(out, audit.UserMFARequired)
	}
	return out
}

// record writes an audit event of action on target with s.Audit, in the
// transaction ctx carries; nothing without s.Audit.
func (s *Service) record(ctx context.Context, action, target string) error {
	return audit.Record(ctx, s.Audit, audit.Event{Action: action, Target: target})
}

// recordLogin writes the audit event of a login (on its own: a login has
// no transaction). The user acts when known; a failure to write is
// logged, never turned into a failed login.
func (s *Service) recordLogin(ctx context.Context, action string, u *User, outcome string) {
	ev := audit.Event{Action: action, Outcome: outcome, Actor: audit.ActorAnonymous}
	if u != nil {
		ev.Target = audit.UserTarget(u.ID)
		if outcome == audit.OutcomeSuccess {
			ev.Actor = ev.Target
		}
	}
	if err := audit.Record(ctx, s.Audit, ev); err != nil {
		s.logger().ErrorContext(ctx, "audit event not recorded", "action", action, "err", err)
	}
}

// ErrVersionMismatch is returned by Update when Change.IfMatch refuses the
// user's current version: the user changed since the caller read it.
var ErrVersionMismatch = &apperr.Error{Code: apperr.EPreconditionFailed, Message: "the user has changed since it was read; read it again"}

// Delete removes the user with the given ID (never a username; see Get)
// and revokes the user's grants in the same transaction: if the
// revocation fails, the user is kept and its error is returned.
func (s *Service) Delete(ctx context.Context, id string) error {
	err := s.Store.InTx(ctx, func(ctx context.Context) error {
		if err := s.Store.DeleteUser(ctx, id); err != nil {
			return err
		}
		if err := s.revokeSessions(ctx, id); err != nil {
			return err
		}
		return s.record(ctx, audit.UserDelete, audit.UserTarget(id))
	})
	if errors.Is(err, apperr.ErrNotFound) {
		return errUserNotFound
	}
	return err
}

// List returns every user.
func (s *Service) List(ctx context.Context) ([]*User, error) {
	return s.Store.ListUsers(ctx)
}

// UserQuery selects the users of one page of ListPage.
type UserQuery struct {
	// UsernamePrefix keeps the users whose username starts with it,
	// ignoring ASCII case as usernames do.
	UsernamePrefix string
	// Role keeps the users who hold it.
	Role string
	// Disabled and Locked, when set, keep the users whose Disabled, or
	// whose LockState.Locked now, is the value pointed to.
	Disabled, Locked *bool
	// Cursor is a previous page's Next; empty starts at the first user.
	Cursor string
	// Limit is the page size: 0 means listpage.DefaultLimit; outside
	// 1..listpage.MaxLimit is refused.
	Limit int
}

// UserPage is one page of users in normalized-username order.
type UserPage struct {
	Users []*User
	// Next continues the listing after this page; empty on the last
	// page. A page may hold fewer than Limit users, even none, while Next
	// is set (listpage.ScanBudget).
	Next string
}

// userCursor tags (and versions) the cursors of user listings.
const userCursor = "u1"

// ListPage returns the page of users q selects. It returns an
// apperr.EInvalid error for a cursor it did not issue or an out-of-range
// limit.
func (s *Service) ListPage(ctx context.Context, q UserQuery) (*UserPage, error) {
	limit, err := listpage.Limit(q.Limit)
	if err != nil {
		return nil, err
	}
	after, err := listpage.DecodeCursor(userCursor, q.Cursor)
	if err != nil {
		return nil, err
	}
	prefix := NormalizeUsername(q.UsernamePrefix)
	var filter func([]*User) ([]*User, error)
	if prefix != "" || q.Role != "" || q.Locked != nil {
		filter = func(batch []*User) ([]*User, error) {
			var locks map[string]LockState
			if q.Locked != nil {
				var err error
				if locks, err = s.LockStates(ctx, batch); err != nil {
					return nil, err
				}
			}
			kept := batch[:0:0]
			for _, u := range batch {
				if strings.HasPrefix(NormalizeUsername(u.Username), prefix) &&
					(q.Role == "" || slices.Contains(u.Roles, q.Role)) &&
					(q.Locked == nil || locks[u.ID].Locked == *q.Locked) {
					kept = append(kept, u)
				}
			}
			return kept, nil
		}
	}
	users, next, err := listpage.Collect(limit, after,
		func(u *User) string { return NormalizeUsername(u.Username) },
		func(after string, n int) ([]*User, error) {
			return s.Store.ListUsersRange(ctx, UserRange{Prefix: prefix, After: after, Disabled: q.Disabled, Limit: n})
		}, filter)
	if err != nil {
		return nil, err
	}
	p := &UserPage{Users: users}
	if next != "" {
		p.Next = listpage.EncodeCursor(userCursor, next)
	}
	return p, nil
}
