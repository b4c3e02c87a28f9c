package storage

import (
	"context"
	"time"

	"github.com/portcullis-auth/portcullis/audit"
)

// auditRow is the audit_events table (migration 00021).
type auditRow struct {
	ID         int64     `gorm:"column:id;primaryKey;autoIncrement"`
	RecordedAt time.Time `gorm:"column:recorded_at"`
	Actor      string    `gorm:"column:actor"`
	Action     string    `gorm:"column:action"`
	Target     string    `gorm:"column:target"`
	Outcome    string    `gorm:"column:outcome"`
	ClientIP   string    `gorm:"column:client_ip"`
	RequestID  string    `gorm:"column:request_id"`
}

func (auditRow) TableName() string { return "audit_events" }

var _ audit.Store = (*Store)(nil)

// OnAudit sets a hook run once for every audit event that is stored: at
// once for one written outside a transaction, after the commit for one
// written inside (never for one rolled back). cmd/portcullis counts them
// in Prometheus. Set it before the store is used.
func (s *Store) OnAudit(fn func(audit.Event)) { s.onAudit = fn }

// InsertAuditEvent implements audit.Store: it writes ev, in the
// transaction ctx carries if any, and sets ev.ID.
func (s *Store) InsertAuditEvent(ctx context.Context, ev *audit.Event) error {
	row := auditRow{RecordedAt: ev.Time.UTC(), Actor: ev.Actor, Action: ev.Action, Target: ev.Target,
		Outcome: ev.Outcome, ClientIP: ev.ClientIP, RequestID: ev.RequestID}
	if err := s.db(ctx).Create(&row).Error; err != nil {
		return s.wrapf(err, "storage: insert audit event")
	}
	ev.ID = row.ID
	if s.onAudit == nil {
		return nil
	}
	if st := s.activeTx(ctx); st != nil {
		st.shared.mu.Lock()
		st.shared.audited = append(st.shared.audited, *ev)
		st.shared.mu.Unlock()
		return nil
	}
	s.onAudit(*ev)
	return nil
}

// notifyAudited runs the OnAudit hook for the events a committed
// transaction wrote.
func (s *Store) notifyAudited(sh *txShared) {
	if s.onAudit == nil {
		return
	}
	sh.mu.Lock()
	evs := sh.audited
	sh.audited = nil
	sh.mu.Unlock()
	for _, ev := range evs {
		s.onAudit(ev)
	}
}

// ListAuditEvents implements audit.Store.
func (s *Store) ListAuditEvents(ctx context.Context, f audit.Filter) ([]audit.Event, error) {
	q := s.db(ctx).Model(&auditRow{}).Where("id > ?", f.After)
	if f.Actor != "" {
		q = q.Where("actor = ?", f.Actor)
	}
	if f.Target != "" {
		q = q.Where("target = ?", f.Target)
	}
	if f.Action != "" {
		q = q.Where("action = ?", f.Action)
	}
	if !f.Since.IsZero() {
		q = q.Where("recorded_at >= ?", f.Since.UTC())
	}
	if !f.Until.IsZero() {
		q = q.Where("recorded_at < ?", f.Until.UTC())
	}
	var rows []auditRow
	if err := q.Order("id").Limit(f.Limit).Find(&rows).Error; err != nil {
		return nil, s.wrapf(err, "storage: list audit events")
	}
	out := make([]audit.Event, 0, len(rows))
	for _, r := range rows {
		out = append(out, audit.Event{ID: r.ID, Time: r.RecordedAt.UTC(), Actor: r.Actor, Action: r.Action,
			Target: r.Target, Outcome: r.Outcome, ClientIP: r.ClientIP, RequestID: r.RequestID})
	}
	return out, nil
}

// DeleteAuditEventsBefore implements audit.Store.
func (s *Store) DeleteAuditEventsBefore(ctx context.Context, t time.Time) (int64, error) {
	res := s.db(ctx).Where("recorded_at < ?", t.UTC()).Delete(&auditRow{})
	if res.Error != nil {
		return 0, s.wrapf(res.Error, "storage: delete audit events")
	}
	return res.RowsAffected, nil
}
