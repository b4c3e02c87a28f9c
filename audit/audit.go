package audit

import (
	"context"
	"strconv"
	"time"

	"github.com/portcullis-auth/portcullis/internal/listpage"
)

// Event is one entry of the audit trail.
type Event struct {
	// ID orders events: it increases with every event written, and a
	// listing in ID order is stable across pages.
	ID int64 `json:"id"`
	// Time is when the event was recorded (UTC, microseconds).
	Time time.Time `json:"time"`
	// Actor is who acted: "client:ID" for an admin API call with a
	// client's token, "user:ID" for a user (an admin API call with a
	// user's token, or the user's own login and account changes), "cli"
	// for a command of the portcullis CLI, "system" for the server itself
	// (scheduled key rotation), "anonymous" for a login by an unknown or
	// unauthenticated party.
	Actor string `json:"actor"`
	// Action is what happened, e.g. "user.update" (the Action constants).
	Action string `json:"action"`
	// Target is what it happened to: "user:ID", "client:ID", "key:KID";
	// empty when there is none (a failed login with an unknown username).
	Target string `json:"target"`
	// Outcome is OutcomeSuccess or OutcomeFailure.
	Outcome string `json:"outcome"`
	// ClientIP is the address of the HTTP client (behind trusted proxies,
	// the forwarded one); empty for the CLI and the server itself.
	ClientIP string `json:"client_ip"`
	// RequestID is the request's X-Request-Id; empty outside requests.
	RequestID string `json:"request_id"`
}

// Outcomes of an event.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
)

// Actors that are not a client or a user.
const (
	ActorCLI       = "cli"
	ActorSystem    = "system"
	ActorAnonymous = "anonymous"
)

// Actions recorded. A change is recorded with outcome success in its
// transaction when it commits; an admin API change refused (a client
// error: validation, not found, conflict, stale If-Match) with outcome
// failure on its own, after its transaction rolled back. Security events
// record failures too.
const (
	ClientCreate       = "client.create"
	ClientUpdate       = "client.update"
	ClientDelete       = "client.delete"
	ClientRotateSecret = "client.rotate_secret"

	UserCreate = "user.create"
	// UserUpdate is a refused PATCH /admin/users/{id} (outcome failure),
	// whatever it would have changed; a change that commits records one
	// event per aspect changed (UserSetRoles, UserDisable, …).
	UserUpdate      = "user.update"
	UserDelete      = "user.delete"
	UserSetRoles    = "user.set_roles"
	UserDisable     = "user.disable"
	UserEnable      = "user.enable"
	UserSetPassword = "user.set_password"
	UserUnlock      = "user.unlock"
	UserMFARequired = "user.mfa_required"
	UserMFAReset    = "user.mfa_reset"
	UserImport      = "user.import"

	KeyRotate = "key.rotate"
	KeyRewrap = "key.rewrap"

	// AdminDenied is an admin API change refused with 403 for a token
	// that verified: a user's token whose user does not hold role admin,
	// or a token whose client is no longer registered for scope admin
	// (outcome failure). The actor is the token's user or client, the
	// target the client or user the route names, if it exists.
	AdminDenied = "admin.denied"

	// Login is a login at the token endpoint (password grant), the
	// authorization challenge endpoint or the account API's
	// re-authentication: failure for a wrong password (unknown user,
	// wrong password, disabled account); success once per login, when it
	// is complete: the right password of a login that needs no second
	// factor, else (LoginPassword) once the second factor is proven too.
	Login = "login"
	// LoginPassword is the right password of a login that must also prove
	// a second factor, the user's or one the client or the request
	// requires (success): the login is not complete yet.
	LoginPassword = "login.password"
	// LoginSecondFactor is a wrong or replayed TOTP or recovery code
	// presented in a login or an enrolment (failure); a right one
	// completes the login (Login).
	LoginSecondFactor = "login.second_factor"
	// LoginThrottled is a login held back by the lockout policy.
	LoginThrottled = "login.throttled"

	// TokenRefreshReuse is a used (or revoked) refresh token presented
	// again, taken for a stolen one: its grant is revoked (RFC 9700
	// §4.14.2). The actor is the presenting client, the target the
	// grant's user; outcome failure.
	TokenRefreshReuse = "token.refresh_reuse"
	// TokenCodeReplay is an authorization code redeemed again: what its
	// first redemption issued is revoked (RFC 6749 §4.1.2). Actor and
	// target as for TokenRefreshReuse.
	TokenCodeReplay = "token.code_replay"

	MFAEnrol         = "mfa.enrol"
	MFAConfirm       = "mfa.confirm"
	MFARemove        = "mfa.remove"
	MFARecoveryCodes = "mfa.recovery_codes"
	// MFARecoveryCodeUsed is a recovery code used up as a login's second
	// factor, recorded with its use.
	MFARecoveryCodeUsed = "mfa.recovery_code_used"
)

// UserTarget names a user as an event's actor or target.
func UserTarget(id string) string { return "user:" + id }

// ClientTarget names a client as an event's actor or target.
func ClientTarget(id string) string { return "client:" + id }

// KeyTarget names a signing key as an event's target.
func KeyTarget(kid string) string { return "key:" + kid }

// Recorder writes audit events. Record writes ev in the transaction ctx
// carries, if any (so it commits or rolls back with the change it
// records), else on its own; it fills in Time, and Actor, ClientIP and
// RequestID from ctx (WithActor, WithRequest) where ev leaves them empty.
// An error means the event was not written; a caller recording a change
// must then fail the change.
type Recorder interface {
	Record(ctx context.Context, ev Event) error
}

// Store persists events. InsertAuditEvent writes ev (setting its ID) in
// the transaction ctx carries, if any. ListAuditEvents returns at most
// f.Limit events matching f, in increasing ID order, starting after
// f.After. DeleteAuditEventsBefore removes events recorded before t and
// returns how many.
type Store interface {
	InsertAuditEvent(ctx context.Context, ev *Event) error
	ListAuditEvents(ctx context.Context, f Filter) ([]Event, error)
	DeleteAuditEventsBefore(ctx context.Context, t time.Time) (int64, error)
}

// Filter selects events. Empty strings and zero times match everything.
type Filter struct {
	Actor  string
	Target string
	Action string
	// Since and Until bound Time: Since <= Time < Until.
	Since time.Time
	Until time.Time
	// After is the ID of the last event of the previous page; 0 starts
	// at the first.
	After int64
	// Limit is the largest number of events returned; it must be
	// positive.
	Limit int
}

// DefaultPageSize and MaxPageSize bound a page of Log.List.
const (
	DefaultPageSize = listpage.DefaultLimit
	MaxPageSize     = listpage.MaxLimit
)

// Log is the Recorder and reader of the audit trail over a Store.
type Log struct {
	Store Store
	// Now defaults to time.Now.
	Now func() time.Time
}

var _ Recorder = (*Log)(nil)

// Record implements Recorder.
func (l *Log) Record(ctx context.Context, ev Event) error {
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	ev.ID = 0
	ev.Time = now().UTC().Truncate(time.Microsecond)
	info, _ := ctx.Value(requestKey{}).(requestInfo)
	if ev.Actor == "" {
		ev.Actor = ActorFrom(ctx)
	}
	if ev.ClientIP == "" {
		ev.ClientIP = info.clientIP
	}
	if ev.RequestID == "" {
		ev.RequestID = info.requestID
	}
	if ev.Outcome == "" {
		ev.Outcome = OutcomeSuccess
	}
	return l.Store.InsertAuditEvent(ctx, &ev)
}

// Page is one page of a listing.
type Page struct {
	Events []Event `json:"events"`
	// NextCursor continues the listing after the last event of this
	// page; empty when no events follow it (yet).
	NextCursor string `json:"next_cursor"`
}

// Query is a listing request as the API and the CLI take it.
type Query struct {
	Actor, Target, Action string
	Since, Until          time.Time
	// Cursor is a Page's NextCursor; empty starts at the oldest event.
	Cursor string
	// Limit is the page size: 0 means DefaultPageSize; more than
	// MaxPageSize is refused.
	Limit int
}

// ErrBadCursor answers a cursor this package did not issue.
var ErrBadCursor = listpage.ErrBadCursor

// List returns the page of events q selects, oldest first. It returns an
// apperr.EInvalid error for a malformed cursor or an out-of-range limit.
func (l *Log) List(ctx context.Context, q Query) (*Page, error) {
	limit, err := listpage.Limit(q.Limit)
	if err != nil {
		return nil, err
	}
	after, err := decodeCursor(q.Cursor)
	if err != nil {
		return nil, err
	}
	evs, err := l.Store.ListAuditEvents(ctx, Filter{Actor: q.Actor, Target: q.Target, Action: q.Action,
		Since: q.Since, Until: q.Until, After: after, Limit: limit + 1})
	if err != nil {
		return nil, err
	}
	p := &Page{Events: evs}
	if len(evs) > limit {
		p.Events = evs[:limit]
		p.NextCursor = encodeCursor(p.Events[limit-1].ID)
	}
	if p.Events == nil {
		p.Events = []Event{}
	}
	return p, nil
}

// DeleteBefore removes the events recorded before t (retention) and
// returns how many.
func (l *Log) DeleteBefore(ctx context.Context, t time.Time) (int64, error) {
	return l.Store.DeleteAuditEventsBefore(ctx, t)
}

// auditCursor tags (and versions) the cursors of the audit trail.
const auditCursor = "a1"

func encodeCursor(id int64) string {
	return listpage.EncodeCursor(auditCursor, strconv.FormatInt(id, 10))
}

func decodeCursor(c string) (int64, error) {
	if c == "" {
		return 0, nil
	}
	key, err := listpage.DecodeCursor(auditCursor, c)
	if err != nil {
		return 0, err
	}
	id, err := strconv.ParseInt(key, 10, 64)
	if err != nil || id <= 0 {
		return 0, ErrBadCursor
	}
	return id, nil
}

type actorKey struct{}

type requestKey struct{}

type requestInfo struct{ requestID, clientIP string }

// WithActor returns ctx naming actor as who acts in it (see Event.Actor).
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorFrom returns the actor ctx names (WithActor), ActorSystem when it
// names none.
func ActorFrom(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
		return a
	}
	return ActorSystem
}

// HasActor reports whether ctx names an actor (WithActor).
func HasActor(ctx context.Context) bool {
	a, ok := ctx.Value(actorKey{}).(string)
	return ok && a != ""
}

// WithRequest returns ctx carrying the request's ID and the client's IP
// address, which Record puts into every event recorded with it.
func WithRequest(ctx context.Context, requestID, clientIP string) context.Context {
	return context.WithValue(ctx, requestKey{}, requestInfo{requestID: requestID, clientIP: clientIP})
}

// Record writes ev with r, which may be nil (no audit trail): a helper for
// the packages whose audit trail is optional.
func Record(ctx context.Context, r Recorder, ev Event) error {
	if r == nil {
		return nil
	}
	return r.Record(ctx, ev)
}
