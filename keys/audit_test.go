package keys_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/audit"
	"github.com/portcullis-auth/portcullis/keys"
)

// failingLog is an audit.Log over the store whose Record fails while fail
// is set, as when the audit table cannot be written.
type failingLog struct {
	log  *audit.Log
	fail bool
}

func (f *failingLog) Record(ctx context.Context, ev audit.Event) error {
	if f.fail {
		return errors.New("audit table unavailable")
	}
	return f.log.Record(ctx, ev)
}

// TestRotationAuditedInTransaction: a rotation (scheduled, through Tick,
// or immediate) and a re-seal (Rewrap) commit with their audit event in
// one transaction. While the event cannot be written, no key is created
// or re-sealed and the call fails; once it can, each change has exactly
// one event (the scheduled one by "system").
func TestRotationAuditedInTransaction(t *testing.T) {
	c := newClock()
	store := openStore(t)
	ctx := t.Context()
	rec := &failingLog{log: &audit.Log{Store: store}}
	o := opts(c, keys.ES256)
	o.Audit, o.Tx = rec, store
	oldKey := secret(t)
	m := started(t, store, sealer(t, oldKey), o)
	count := func() int {
		t.Helper()
		recs, err := store.ListKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(recs)
	}
	events := func(action string) []audit.Event {
		t.Helper()
		evs, err := store.ListAuditEvents(ctx, audit.Filter{Action: action, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	before, rotations := count(), len(events(audit.KeyRotate))

	rec.fail = true
	if _, err := m.Rotate(ctx, 0); err == nil {
		t.Fatal("Rotate succeeded without its audit event")
	}
	c.advance(30 * 24 * time.Hour) // a scheduled rotation is due
	if err := m.Tick(ctx); err == nil {
		t.Fatal("scheduled rotation succeeded without its audit event")
	}
	if n := count(); n != before {
		t.Fatalf("%d keys after rotations whose events failed, want %d", n, before)
	}
	if n := len(events(audit.KeyRotate)); n != rotations {
		t.Fatalf("%d key.rotate events, want %d", n, rotations)
	}

	rec.fail = false
	if err := m.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	evs := events(audit.KeyRotate)
	if count() != before+1 || len(evs) != rotations+1 || evs[len(evs)-1].Actor != audit.ActorSystem {
		t.Fatalf("after the scheduled rotation: %d keys, events %+v", count(), evs)
	}

	// Rewrap: a key whose event fails keeps its seal.
	newKey := secret(t)
	rec.fail = true
	if n, err := keys.Rewrap(ctx, store, sealer(t, newKey, oldKey), keys.RewrapOptions{Audit: rec, Tx: store}); err == nil || n != 0 {
		t.Fatalf("Rewrap without its audit event = %d, %v", n, err)
	}
	if err := keys.NewManager(store, sealer(t, oldKey), o).Init(ctx); err != nil {
		t.Fatalf("a key was re-sealed without its event: %v", err)
	}
	rec.fail = false
	n, err := keys.Rewrap(ctx, store, sealer(t, newKey, oldKey), keys.RewrapOptions{Audit: rec, Tx: store})
	if err != nil || n != count() {
		t.Fatalf("Rewrap = %d, %v; want %d", n, err, count())
	}
	if evs := events(audit.KeyRewrap); len(evs) != n {
		t.Fatalf("%d key.rewrap events for %d keys: %+v", len(evs), n, evs)
	}
}
