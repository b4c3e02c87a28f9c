package adminapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/portcullis-auth/portcullis/audit"
	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/httpjson"
)

// listAudit answers GET /admin/audit: the audit trail, oldest first, one
// page at a time ({"events": [...], "next_cursor": "..."}). Query
// parameters: actor, target, action (exact matches), since and until
// (RFC 3339; since <= time < until), limit (page size, default
// audit.DefaultPageSize, at most audit.MaxPageSize) and cursor (a
// previous page's next_cursor, opaque). next_cursor is empty on the last
// page.
func (h *Handler) listAudit(w http.ResponseWriter, r *http.Request) error {
	// The listings' query reading: a query string that does not parse,
	// or a filter given twice, is refused rather than dropped, which
	// would list the events unfiltered.
	p := newListParams(r)
	q, err := AuditQuery(p.text)
	if p.err != nil {
		return p.err
	}
	if err != nil {
		return err
	}
	page, err := h.Audit.List(r.Context(), q)
	if err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, page)
	return nil
}

// AuditQuery reads the filters of GET /admin/audit (and the CLI's audit
// list) through get; it returns an apperr.EInvalid error naming the
// malformed parameter, never repeating its value.
func AuditQuery(get func(string) string) (audit.Query, error) {
	q := audit.Query{Actor: get("actor"), Target: get("target"), Action: get("action"), Cursor: get("cursor")}
	for _, p := range []struct {
		name string
		to   *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		if v := get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return q, &apperr.Error{Code: apperr.EInvalid, Message: p.name + " must be an RFC 3339 time"}
			}
			*p.to = t
		}
	}
	if v := get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > audit.MaxPageSize {
			return q, apperr.Errorf(apperr.EInvalid, "limit must be between 1 and %d", audit.MaxPageSize)
		}
		q.Limit = n
	}
	return q, nil
}
