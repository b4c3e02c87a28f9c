package keys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-auth/portcullis/audit"
	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/seal"
)

// ErrWrongSecretsKey is matched (errors.Is) by the errors of Init, Reload
// and Rewrap when a stored private key was sealed under a secrets key the
// sealer was not given, or does not open with it. It is seal.ErrWrongKey.
var ErrWrongSecretsKey = seal.ErrWrongKey

// Store persists signing keys. Implementations return errors matching
// apperr.ErrNotFound and apperr.ErrAlreadyExists.
type Store interface {
	// ListKeys returns every stored key ordered by generation.
	ListKeys(ctx context.Context) ([]Record, error)
	// CreateKey inserts rec and, in the same transaction, sets RetiredAt to
	// retireAt on every older key of rec's algorithm not yet retired or due
	// to retire later (each algorithm has its own signing key). It fails with
	// apperr.ErrAlreadyExists, writing nothing, when rec's generation or ID
	// is taken: this is the compare-and-set that lets one replica rotate.
	CreateKey(ctx context.Context, rec Record, retireAt time.Time) error
	// DeleteKey removes a key; a missing key is not an error.
	DeleteKey(ctx context.Context, id string) error
	// ResealKey replaces a key's sealed private key if it is still sealed
	// under oldWrapID, and returns apperr.ErrNotFound otherwise.
	ResealKey(ctx context.Context, id, oldWrapID, newWrapID string, sealed []byte) error
}

// Options configure a Manager. Zero values take the documented defaults.
type Options struct {
	// Algorithm is the default algorithm: SigningKey signs with it.
	// Default ES256.
	Algorithm Algorithm
	// Additional algorithms each keep their own key set beside
	// Algorithm's (SigningKeyFor), published in the same JWKS and rotated
	// on the same schedule, e.g. RS256 for resource servers that only
	// speak RS256 (RFC 9068 §2.1). Default: none.
	Additional []Algorithm
	// RSABits for RS256 keys; default 2048.
	RSABits int
	// RotationInterval between scheduled rotations; 0 disables them.
	RotationInterval time.Duration
	// Prepublication is how long a scheduled key is published before it
	// signs; default 1h.
	Prepublication time.Duration
	// ReloadInterval is how often Run re-reads the key table; default 15s.
	ReloadInterval time.Duration
	// JWKSMaxAge is the Cache-Control max-age of the JWKS; default 10m.
	JWKSMaxAge time.Duration
	// Retention is how long a retired key stays published: the longest
	// access-token lifetime plus clock-skew leeway; default 20m.
	Retention time.Duration
	// Now defaults to time.Now; Rand to crypto/rand.Reader. Rand must be
	// safe for concurrent use: concurrent rotations generate keys at once.
	Now    func() time.Time
	Rand   io.Reader
	Logger *slog.Logger
	// Audit, when set, records each key created (rotation) in the
	// transaction that stores it (Tx): a key whose event cannot be written
	// is not created, and the rotation fails. The actor is the one the
	// context names (audit.WithActor), "system" for scheduled rotations.
	Audit audit.Recorder
	// Tx runs the insert of a key and its audit event in one transaction;
	// it is required with Audit and must be backed by the database of the
	// Store and of Audit (storage.Store.InTx). Without it the event is
	// written right after the key.
	Tx Transactor
}

// Transactor runs fn in one transaction carried by the context fn
// receives (storage.Store.InTx): every Store method and audit.Recorder
// called with that context takes part in it. fn's error rolls back and is
// returned unchanged; fn may run again when the transaction loses to a
// concurrent writer, so it must do nothing but its database work.
type Transactor interface {
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
}

// inTx runs fn in a transaction of tx, or without one when tx is nil.
func inTx(ctx context.Context, tx Transactor, fn func(ctx context.Context) error) error {
	if tx == nil {
		return fn(ctx)
	}
	return tx.InTx(ctx, fn)
}

func (o *Options) fill() {
	if o.Algorithm == "" {
		o.Algorithm = ES256
	}
	if o.RSABits == 0 {
		o.RSABits = 2048
	}
	if o.Prepublication == 0 {
		o.Prepublication = time.Hour
	}
	if o.ReloadInterval == 0 {
		o.ReloadInterval = 15 * time.Second
	}
	if o.JWKSMaxAge == 0 {
		o.JWKSMaxAge = 10 * time.Minute
	}
	if o.Retention == 0 {
		o.Retention = 20 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Manager holds the opened signing keys in memory, signs with the active
// one, serves the JWKS, and rotates keys. Its methods are safe for
// concurrent use. Signing and the JWKS never touch the database, so both
// keep working while it is unreachable.
type Manager struct {
	store  Store
	sealer *seal.Sealer
	opts   Options
	ring   atomic.Pointer[ring]
	mu     sync.Mutex // serializes reloads and rotations in this process
	// started is when NewManager ran (see reloadLocked).
	started time.Time
}

// algorithms returns the managed algorithms, the default first.
func (o *Options) algorithms() []Algorithm {
	out := []Algorithm{o.Algorithm}
	for _, a := range o.Additional {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// ring is an immutable snapshot of the loaded keys.
type ring struct {
	keys []*Key // ascending generation (unique across algorithms)
	byID map[string]*Key
	jwks []byte
	etag string
}

// NewManager returns a Manager whose private keys sealer seals and opens
// (as seal.SigningKey); call Init before use.
func NewManager(store Store, sealer *seal.Sealer, opts Options) *Manager {
	opts.fill()
	m := &Manager{store: store, sealer: sealer, opts: opts, started: opts.Now().UTC().Truncate(time.Second)}
	m.ring.Store(&ring{byID: map[string]*Key{}})
	return m
}

// Init loads the stored keys, creating the first key of each managed
// algorithm that has none (it signs at once). It fails when a stored key
// cannot be opened with the configured secrets key, so a wrong key is a
// start-up error and never produces bad tokens.
func (m *Manager) Init(ctx context.Context) error {
	if err := m.Reload(ctx); err != nil {
		return err
	}
	// Each first key is a compare-and-set on the generation following the
	// snapshot (generations are unique across the table): a replica that
	// lost a start-up race re-reads the table and finds the winner's key
	// instead of creating a second one that would retire it at once.
	for attempt := 0; ; attempt++ {
		r := m.ring.Load()
		var missing Algorithm
		for _, alg := range m.opts.algorithms() {
			if !r.has(alg) {
				missing = alg
				break
			}
		}
		if missing == "" {
			return nil
		}
		if attempt == 20 {
			return fmt.Errorf("create first %s signing key: lost the race %d times", missing, attempt)
		}
		if _, err := m.rotate(ctx, missing, m.activation(0), r.maxGeneration()+1); err != nil && !errors.Is(err, apperr.ErrAlreadyExists) {
			return fmt.Errorf("create first %s signing key: %w", missing, err)
		}
		if err := m.Reload(ctx); err != nil { // another replica may have won the race
			return err
		}
	}
}

// has reports whether the ring holds a key of alg.
func (r *ring) has(alg Algorithm) bool {
	return slices.ContainsFunc(r.keys, func(k *Key) bool { return k.Algorithm == alg })
}

// maxGeneration returns the highest generation in the ring, 0 when empty.
func (r *ring) maxGeneration() int64 {
	if n := len(r.keys); n > 0 {
		return r.keys[n-1].Generation
	}
	return 0
}

// newest returns the key of alg with the highest generation, or nil.
func (r *ring) newest(alg Algorithm) *Key {
	for i := len(r.keys) - 1; i >= 0; i-- {
		if r.keys[i].Algorithm == alg {
			return r.keys[i]
		}
	}
	return nil
}

// Reload re-reads the key table. Keys already opened are reused; a key
// that cannot be opened fails the reload and leaves the previous set.
func (m *Manager) Reload(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reloadLocked(ctx)
}

func (m *Manager) reloadLocked(ctx context.Context) error {
	recs, err := m.store.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	old := m.ring.Load()
	next := &ring{byID: make(map[string]*Key, len(recs))}
	now := m.opts.Now()
	jwks := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	managed := m.opts.algorithms()
	for i, rec := range recs {
		if !slices.Contains(managed, rec.Algorithm) && rec.RetiredAt.IsZero() {
			// A key of an algorithm no longer managed (keys.algorithm was
			// changed): this process never signs with it; it counts as
			// retired once a later key of the default algorithm signs, but
			// not before this process started, since replicas still on the
			// old setting may have signed with it until then.
			for _, later := range recs[i+1:] {
				if later.Algorithm == m.opts.Algorithm {
					rec.RetiredAt = later.ActivatesAt
					if rec.RetiredAt.Before(m.started) {
						rec.RetiredAt = m.started
					}
					break
				}
			}
		}
		k, ok := old.byID[rec.ID]
		if !ok || k.WrapKeyID != rec.WrapKeyID {
			der, err := openKey(m.sealer, rec)
			if err != nil {
				return err
			}
			if k, err = newKey(rec, der); err != nil {
				return err
			}
		} else {
			copied := *k
			copied.Record = rec
			k = &copied
		}
		next.keys = append(next.keys, k)
		next.byID[k.ID] = k
		if k.StateAt(now, false, m.opts.Retention) != StateExpired {
			jwks.Keys = append(jwks.Keys, k.Public)
		}
	}
	if next.jwks, err = json.Marshal(jwks); err != nil {
		return fmt.Errorf("encode JWKS: %w", err)
	}
	sum := sha256.Sum256(next.jwks)
	next.etag = `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
	m.ring.Store(next)
	return nil
}

// SigningKey returns the key of the default algorithm that signs now: the
// newest key of that algorithm whose activation time has passed.
func (m *Manager) SigningKey() (*Key, error) {
	return m.ring.Load().signer(m.opts.Algorithm, m.opts.Now())
}

// SigningKeyFor returns the key of alg that signs now. It fails when alg
// is not one of Algorithms.
func (m *Manager) SigningKeyFor(alg Algorithm) (*Key, error) {
	if !slices.Contains(m.opts.algorithms(), alg) {
		return nil, fmt.Errorf("no %s signing keys are managed", alg)
	}
	return m.ring.Load().signer(alg, m.opts.Now())
}

// Algorithms returns the algorithms this manager keeps signing keys for,
// the default first.
func (m *Manager) Algorithms() []Algorithm { return m.opts.algorithms() }

func (r *ring) signer(alg Algorithm, now time.Time) (*Key, error) {
	for i := len(r.keys) - 1; i >= 0; i-- {
		if k := r.keys[i]; k.Algorithm == alg && !now.Before(k.ActivatesAt) {
			return k, nil
		}
	}
	return nil, fmt.Errorf("no active %s signing key is loaded", alg)
}

// Lookup returns the loaded key with the given ID, whatever its state.
func (m *Manager) Lookup(kid string) (*Key, bool) {
	k, ok := m.ring.Load().byID[kid]
	return k, ok
}

// Rotate creates a new key for every managed algorithm, each starting to
// sign after activateIn (0: at once) and retiring the current key of its
// algorithm at that moment, and returns the default algorithm's new key.
// It returns an error matching apperr.ErrAlreadyExists when another replica
// rotated concurrently.
func (m *Manager) Rotate(ctx context.Context, activateIn time.Duration) (*Key, error) {
	var first *Key
	at := m.activation(activateIn) // one instant for all, however long key generation takes
	for _, alg := range m.opts.algorithms() {
		k, err := m.rotate(ctx, alg, at, 0)
		if err != nil {
			return nil, err
		}
		if first == nil {
			first = k
		}
	}
	return first, nil
}

// activation returns the activation time of a key created now that starts
// signing after activateIn (whole seconds, as stored).
func (m *Manager) activation(activateIn time.Duration) time.Time {
	return m.opts.Now().UTC().Truncate(time.Second).Add(activateIn)
}

// rotate creates a key of alg, signing from activatesAt, as generation
// gen, or the next one after the stored keys when gen is 0. Generations
// are unique across algorithms: a
// scheduled rotation passes the generation following the snapshot it
// decided on, so the insert is a true compare-and-set: if anyone rotated
// any key since, it fails.
//
// The key is generated before the manager's lock is taken (an RSA key can
// take a second), so that a concurrent Reload or rotation does not wait for
// it; choosing the generation, the insert and the reload happen under the
// lock.
func (m *Manager) rotate(ctx context.Context, alg Algorithm, activatesAt time.Time, gen int64) (*Key, error) {
	priv, err := generate(alg, m.opts.RSABits, m.opts.Rand)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	pub, err := publicJWK(priv, alg)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	pubJSON, err := json.Marshal(pub)
	if err != nil {
		return nil, err
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if gen == 0 {
		recs, err := m.store.ListKeys(ctx)
		if err != nil {
			return nil, fmt.Errorf("load signing keys: %w", err)
		}
		gen = 1
		if n := len(recs); n > 0 {
			gen = recs[n-1].Generation + 1
		}
	}
	wrapID, sealed, err := m.sealer.Seal(seal.SigningKey, pub.KeyID, der)
	if err != nil {
		return nil, err
	}
	now := m.opts.Now().UTC().Truncate(time.Second)
	rec := Record{
		ID: pub.KeyID, Algorithm: alg, Generation: gen,
		PublicJWK: pubJSON, Sealed: sealed, WrapKeyID: wrapID,
		CreatedAt: now, ActivatesAt: activatesAt,
	}
	// The key and its audit event commit together: a rotation that
	// cannot be recorded does not happen.
	err = inTx(ctx, m.opts.Tx, func(ctx context.Context) error {
		if err := m.store.CreateKey(ctx, rec, rec.ActivatesAt); err != nil {
			return fmt.Errorf("store key: %w", err)
		}
		if err := audit.Record(ctx, m.opts.Audit, audit.Event{Action: audit.KeyRotate, Target: audit.KeyTarget(rec.ID)}); err != nil {
			return fmt.Errorf("record key rotation: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	m.opts.Logger.InfoContext(ctx, "signing key created", "kid", rec.ID, "alg", rec.Algorithm,
		"generation", gen, "activates_at", rec.ActivatesAt)
	if err := m.reloadLocked(ctx); err != nil {
		return nil, err
	}
	k, _ := m.ring.Load().byID[rec.ID]
	return k, nil
}

// Status describes a key for listings.
type Status struct {
	ID          string     `json:"kid"`
	Algorithm   Algorithm  `json:"alg"`
	State       State      `json:"state"`
	Generation  int64      `json:"generation"`
	CreatedAt   time.Time  `json:"created_at"`
	ActivatesAt time.Time  `json:"activates_at"`
	RetiredAt   *time.Time `json:"retired_at,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	WrapKeyID   string     `json:"wrap_key_id"`
}

// List reads every stored key from the database with its current state.
// It needs no secrets key.
func List(ctx context.Context, store Store, retention time.Duration, now time.Time) ([]Status, error) {
	recs, err := store.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	r := &ring{}
	for i := range recs {
		r.keys = append(r.keys, &Key{Record: recs[i]})
	}
	out := make([]Status, 0, len(recs))
	for _, k := range r.keys {
		signer, _ := r.signer(k.Algorithm, now)
		st := Status{
			ID: k.ID, Algorithm: k.Algorithm, Generation: k.Generation, WrapKeyID: k.WrapKeyID,
			State:     k.StateAt(now, k == signer, retention),
			CreatedAt: k.CreatedAt.UTC(), ActivatesAt: k.ActivatesAt.UTC(),
		}
		if !k.RetiredAt.IsZero() {
			ret, exp := k.RetiredAt.UTC(), k.RetiredAt.Add(retention).UTC()
			st.RetiredAt, st.ExpiresAt = &ret, &exp
		}
		out = append(out, st)
	}
	return out, nil
}

// Status lists the keys known to this manager (from the database).
func (m *Manager) Status(ctx context.Context) ([]Status, error) {
	return List(ctx, m.store, m.opts.Retention, m.opts.Now())
}

// Run reloads the key table every ReloadInterval, performs scheduled
// rotations (one replica wins each), and deletes expired keys, until ctx
// is done. Failures are logged and retried on the next tick; the loaded
// keys stay in use meanwhile.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(m.opts.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := m.Tick(ctx); err != nil && ctx.Err() == nil {
				m.opts.Logger.WarnContext(ctx, "signing key maintenance failed; keeping the loaded keys", "err", err)
			}
		}
	}
}

// Tick runs one maintenance step: reload, scheduled rotation of each
// managed algorithm, clean-up.
func (m *Manager) Tick(ctx context.Context) error {
	if err := m.Reload(ctx); err != nil {
		return err
	}
	now := m.opts.Now()
	current := map[string]bool{} // kid of each algorithm's signing key
	for _, alg := range m.opts.algorithms() {
		// Decide on a fresh snapshot: a rotation of the previous algorithm
		// reloaded the ring.
		r := m.ring.Load()
		cur, err := r.signer(alg, now)
		if err != nil {
			return err
		}
		current[cur.ID] = true
		if m.opts.RotationInterval > 0 && r.newest(alg) == cur &&
			!now.Before(cur.ActivatesAt.Add(m.opts.RotationInterval-m.opts.Prepublication)) {
			_, err := m.rotate(ctx, alg, m.activation(m.opts.Prepublication), r.maxGeneration()+1)
			switch {
			case errors.Is(err, apperr.ErrAlreadyExists):
				// Someone changed the table since the snapshot; the next
				// tick decides again on a fresh one.
				m.opts.Logger.DebugContext(ctx, "another replica rotated a signing key", "alg", alg)
				return nil
			case err != nil:
				return fmt.Errorf("scheduled %s rotation: %w", alg, err)
			}
		}
	}
	for _, k := range m.ring.Load().keys {
		if !current[k.ID] && k.StateAt(now, false, m.opts.Retention) == StateExpired {
			if err := m.store.DeleteKey(ctx, k.ID); err != nil {
				return fmt.Errorf("delete expired key %s: %w", k.ID, err)
			}
			m.opts.Logger.InfoContext(ctx, "expired signing key removed", "kid", k.ID)
		}
	}
	return nil
}

// RewrapOptions configure Rewrap. Zero values record nothing.
type RewrapOptions struct {
	// Audit, when set, records each key re-sealed (audit.KeyRewrap on
	// audit.KeyTarget) in the transaction of its re-seal (Tx, then
	// required, as in Options).
	Audit audit.Recorder
	Tx    Transactor
}

// Rewrap re-seals every private key under the sealer's primary secrets key.
// The sealer must also hold the old secrets key. It returns how many keys
// were re-sealed. Each key is re-sealed in its own transaction with its
// audit event (opts): a key whose event cannot be written stays sealed as
// it was, and Rewrap stops there with the error, after the keys before it.
func Rewrap(ctx context.Context, store Store, sealer *seal.Sealer, opts RewrapOptions) (int, error) {
	recs, err := store.ListKeys(ctx)
	if err != nil {
		return 0, fmt.Errorf("load signing keys: %w", err)
	}
	n := 0
	for _, rec := range recs {
		if rec.WrapKeyID == sealer.PrimaryID() {
			continue
		}
		der, err := openKey(sealer, rec)
		if err != nil {
			return n, err
		}
		wrapID, sealed, err := sealer.Seal(seal.SigningKey, rec.ID, der)
		if err != nil {
			return n, err
		}
		err = inTx(ctx, opts.Tx, func(ctx context.Context) error {
			if err := store.ResealKey(ctx, rec.ID, rec.WrapKeyID, wrapID, sealed); err != nil {
				return fmt.Errorf("reseal key %s: %w", rec.ID, err)
			}
			if err := audit.Record(ctx, opts.Audit, audit.Event{Action: audit.KeyRewrap, Target: audit.KeyTarget(rec.ID)}); err != nil {
				return fmt.Errorf("record re-seal of key %s: %w", rec.ID, err)
			}
			return nil
		})
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// openKey opens the sealed private key of rec. Its error matches
// ErrWrongSecretsKey when the key does not open.
func openKey(sealer *seal.Sealer, rec Record) ([]byte, error) {
	der, err := sealer.Open(seal.SigningKey, rec.ID, rec.WrapKeyID, rec.Sealed)
	if err != nil {
		return nil, fmt.Errorf("signing key %w", err) // "signing key KID does not open with …"
	}
	return der, nil
}

// JWKS is the JWK Set document (RFC 7517) of the current key ring, as
// the server publishes it.
type JWKS struct {
	// Body is the JSON document; callers must not modify it.
	Body []byte
	// ETag is a strong entity-tag of Body; it changes whenever the set
	// does.
	ETag string
	// MaxAge is how long caches may keep the document (Options.JWKSMaxAge,
	// shorter than the pre-publication window).
	MaxAge time.Duration
}

// JWKS returns the published JWK Set: every key that is pending, active,
// or retired within the retention window. It reads memory only.
func (m *Manager) JWKS() JWKS {
	ring := m.ring.Load()
	return JWKS{Body: ring.jwks, ETag: ring.etag, MaxAge: m.opts.JWKSMaxAge}
}
