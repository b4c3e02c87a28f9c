// Package listpage pages through listings in key order with opaque
// cursors: the admin API's GET /admin/users and GET /admin/clients (and the
// CLI's list commands). A listing is read in key order from the database
// after the previous page's last key; filters the database cannot apply
// are applied to each batch read, and one request reads a bounded number
// of rows (ScanBudget), so a rare filter value costs several short pages,
// never one unbounded scan.
package listpage

import (
	"encoding/base64"
	"strings"
	"unicode/utf8"

	"github.com/portcullis-auth/portcullis/internal/apperr"
)

const (
	// DefaultLimit is the page size when the caller names none.
	DefaultLimit = 100
	// MaxLimit is the largest page size a caller may ask for.
	MaxLimit = 1000
	// ScanBudget is how many rows one page reads at most when a filter
	// is applied after reading; a page that reaches it ends early, with a
	// cursor to go on from the last row read.
	ScanBudget = 5000
	// filteredBatch is how many rows one read fetches when a filter is
	// applied after reading.
	filteredBatch = 200
)

// ErrBadCursor answers a cursor this package did not issue (for the kind
// of listing asked for).
var ErrBadCursor = &apperr.Error{Code: apperr.EInvalid, Message: "cursor is not one returned by a previous page"}

// ErrBadLimit answers a page size outside 1..MaxLimit.
var ErrBadLimit = apperr.Errorf(apperr.EInvalid, "limit must be between 1 and %d", MaxLimit)

// Limit returns the page size for the requested n: DefaultLimit for 0, n
// when it is within 1..MaxLimit, ErrBadLimit otherwise.
func Limit(n int) (int, error) {
	switch {
	case n == 0:
		return DefaultLimit, nil
	case n < 1 || n > MaxLimit:
		return 0, ErrBadLimit
	}
	return n, nil
}

// EncodeCursor returns the cursor that continues a listing of kind (a
// short tag such as "u1" that also versions the encoding) after key.
func EncodeCursor(kind, key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + "." + key))
}

// DecodeCursor returns the key c continues after, "" for an empty c, or
// ErrBadCursor for anything EncodeCursor(kind, …) did not return: another
// kind's cursor, bad base64, a key that is not valid UTF-8.
func DecodeCursor(kind, c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", ErrBadCursor
	}
	key, ok := strings.CutPrefix(string(b), kind+".")
	if !ok || key == "" || !utf8.ValidString(key) {
		return "", ErrBadCursor
	}
	return key, nil
}

// Collect reads one page of at most limit items, in key order, after the
// key after. fetch(after, n) returns at most n items whose keys follow
// after, in key order; fewer than n means there are no more. filter, when
// not nil, keeps the items of a batch that belong in the listing (in
// order). next is the key to continue after ("" when the listing is
// complete); the page may hold fewer than limit items, even none, while
// next is set, when ScanBudget rows were read.
func Collect[T any](limit int, after string, key func(T) string,
	fetch func(after string, n int) ([]T, error), filter func([]T) ([]T, error)) (items []T, next string, err error) {
	batch := limit + 1 // one more than a page tells whether another follows
	if filter != nil {
		batch = max(batch, filteredBatch)
	}
	scanned := 0
	for {
		rows, err := fetch(after, batch)
		if err != nil {
			return nil, "", err
		}
		if len(rows) == 0 {
			return items, "", nil
		}
		scanned += len(rows)
		kept := rows
		if filter != nil {
			if kept, err = filter(rows); err != nil {
				return nil, "", err
			}
		}
		for _, it := range kept {
			items = append(items, it)
			if len(items) > limit {
				items = items[:limit]
				return items, key(items[limit-1]), nil
			}
		}
		if len(rows) < batch {
			return items, "", nil
		}
		after = key(rows[len(rows)-1])
		if scanned >= ScanBudget {
			return items, after, nil
		}
	}
}
