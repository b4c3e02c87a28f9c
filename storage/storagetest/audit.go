package storagetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/audit"
)

// testAuditEvents checks the audit trail's store: an event written in a
// transaction that rolls back is gone with it, one that commits stays;
// listing is in ID order, stable across pages (Log.List's cursor), and
// filters by actor, target, action and time; retention deletes by time.
func testAuditEvents(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxTimeout(t)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	now := t0
	log := &audit.Log{Store: s, Now: func() time.Time { return now }}

	// Rolled back: no event.
	errBoom := errors.New("boom")
	err := s.InTx(ctx, func(ctx context.Context) error {
		if err := log.Record(ctx, audit.Event{Actor: "cli", Action: audit.UserDelete, Target: "user:rolled-back"}); err != nil {
			return err
		}
		return errBoom
	})
	wantErr(t, "InTx rolled back", err, errBoom)
	// Committed: the event stays, with every field.
	err = s.InTx(ctx, func(ctx context.Context) error {
		return log.Record(audit.WithRequest(ctx, "req-1", "192.0.2.7"),
			audit.Event{Actor: "cli", Action: audit.UserDelete, Target: "user:committed"})
	})
	wantErr(t, "InTx committed", err, nil)
	page, err := log.List(ctx, audit.Query{})
	wantErr(t, "List", err, nil)
	if len(page.Events) != 1 {
		t.Fatalf("after one rolled-back and one committed event: %d events, want 1: %+v", len(page.Events), page.Events)
	}
	got := page.Events[0]
	want := audit.Event{ID: got.ID, Time: t0.Truncate(time.Microsecond), Actor: "cli", Action: audit.UserDelete,
		Target: "user:committed", Outcome: audit.OutcomeSuccess, ClientIP: "192.0.2.7", RequestID: "req-1"}
	if got.ID <= 0 || !got.Time.Equal(want.Time) || got.Time.Location() != time.UTC {
		t.Fatalf("event %+v: want ID > 0 and time %v UTC", got, want.Time)
	}
	got.Time = want.Time
	if got != want {
		t.Fatalf("event = %+v, want %+v", got, want)
	}
	if page.NextCursor != "" {
		t.Fatalf("single page has next cursor %q", page.NextCursor)
	}

	// 25 more events, one second apart, three actors and two outcomes.
	for i := range 25 {
		now = t0.Add(time.Duration(i+1) * time.Second)
		ev := audit.Event{Actor: fmt.Sprintf("user:%d", i%3), Action: audit.Login, Target: fmt.Sprintf("user:%d", i%3)}
		if i%2 == 1 {
			ev.Outcome, ev.Action = audit.OutcomeFailure, audit.LoginThrottled
		}
		if err := log.Record(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	// Pages of 7: every event once, in increasing ID order.
	var all []audit.Event
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		p, err := log.List(ctx, audit.Query{Limit: 7, Cursor: cursor})
		wantErr(t, "List page", err, nil)
		all = append(all, p.Events...)
		if p.NextCursor == "" {
			break
		}
		if len(p.Events) != 7 {
			t.Fatalf("a page before the last has %d events, want 7", len(p.Events))
		}
		cursor = p.NextCursor
		// An event written meanwhile comes after the cursor, not before.
		if pages == 1 {
			now = t0.Add(time.Minute)
			if err := log.Record(ctx, audit.Event{Actor: "system", Action: audit.KeyRotate, Target: "key:k1"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(all) != 27 {
		t.Fatalf("paged through %d events, want 27", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID <= all[i-1].ID {
			t.Fatalf("events out of order at %d: %d after %d", i, all[i].ID, all[i-1].ID)
		}
	}
	if last := all[len(all)-1]; last.Action != audit.KeyRotate {
		t.Fatalf("the event written while paging is not last: %+v", last)
	}

	count := func(q audit.Query) int {
		t.Helper()
		q.Limit = audit.MaxPageSize
		p, err := log.List(ctx, q)
		wantErr(t, "List filtered", err, nil)
		for _, e := range p.Events {
			if (q.Actor != "" && e.Actor != q.Actor) || (q.Target != "" && e.Target != q.Target) || (q.Action != "" && e.Action != q.Action) ||
				(!q.Since.IsZero() && e.Time.Before(q.Since)) || (!q.Until.IsZero() && !e.Time.Before(q.Until)) {
				t.Fatalf("filter %+v returned %+v", q, e)
			}
		}
		return len(p.Events)
	}
	for _, c := range []struct {
		q    audit.Query
		want int
	}{
		{audit.Query{Actor: "user:0"}, 9},
		{audit.Query{Target: "user:1"}, 8},
		{audit.Query{Action: audit.LoginThrottled}, 12},
		{audit.Query{Actor: "user:0", Action: audit.Login}, 5},
		{audit.Query{Actor: "nobody"}, 0},
		{audit.Query{Since: t0.Add(10 * time.Second), Until: t0.Add(20 * time.Second)}, 10},
		{audit.Query{Since: t0.Add(25 * time.Second)}, 2},
		{audit.Query{Until: t0.Add(time.Second)}, 1},
	} {
		if n := count(c.q); n != c.want {
			t.Errorf("filter %+v: %d events, want %d", c.q, n, c.want)
		}
	}
	if _, err := log.List(ctx, audit.Query{Cursor: "not-a-cursor"}); !errors.Is(err, audit.ErrBadCursor) {
		t.Errorf("bad cursor: %v, want ErrBadCursor", err)
	}
	if _, err := log.List(ctx, audit.Query{Limit: audit.MaxPageSize + 1}); err == nil {
		t.Errorf("limit above the maximum accepted")
	}

	// Retention.
	n, err := log.DeleteBefore(ctx, t0.Add(10*time.Second))
	wantErr(t, "DeleteBefore", err, nil)
	if n != 10 {
		t.Fatalf("DeleteBefore removed %d events, want 10", n)
	}
	if got := count(audit.Query{}); got != 17 {
		t.Fatalf("%d events left after retention, want 17", got)
	}
}
