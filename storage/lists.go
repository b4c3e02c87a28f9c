package storage

import (
	"context"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/oauth/clients"
)

// prefixRange narrows q to the rows whose column starts with prefix, as a
// range (column >= prefix AND column < the least string above every string
// with that prefix), which both backends answer from the column's index.
// The columns it serves are byte (code point) ordered on both backends:
// utf8mb4_bin on MySQL, BINARY on SQLite. MySQL's PAD SPACE comparison
// ignores trailing spaces of the prefix, so callers compare again byte for
// byte. prefix must be valid UTF-8.
func prefixRange(q *gorm.DB, column, prefix string) *gorm.DB {
	if prefix == "" {
		return q
	}
	q = q.Where(column+" >= ?", prefix)
	if end, ok := prefixEnd(prefix); ok {
		q = q.Where(column+" < ?", end)
	}
	return q
}

// prefixEnd returns the least valid UTF-8 string greater than every string
// that starts with prefix: prefix with its last rune that can be
// incremented incremented and what follows it dropped. ok is false when
// there is none (every rune is the largest code point).
func prefixEnd(prefix string) (string, bool) {
	for s := prefix; s != ""; {
		r, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
		next := r + 1
		if next == 0xD800 { // surrogates are not valid UTF-8
			next = 0xE000
		}
		if r != utf8.RuneError && next <= utf8.MaxRune {
			return s + string(next), true
		}
	}
	return "", false
}

// ListUsersRange implements identity.Store.
func (s *Store) ListUsersRange(ctx context.Context, r identity.UserRange) ([]*identity.User, error) {
	q := s.db(ctx).Model(&userRow{})
	if r.After != "" {
		q = q.Where("username_normalized > ?", r.After)
	}
	q = prefixRange(q, "username_normalized", r.Prefix)
	if r.Disabled != nil {
		q = q.Where("disabled = ?", *r.Disabled)
	}
	var rows []userRow
	if err := q.Order("username_normalized").Limit(r.Limit).Find(&rows).Error; err != nil {
		return nil, s.wrapf(err, "storage: list users")
	}
	return usersOf(rows)
}

// ListClientsRange implements clients.Store.
func (s *Store) ListClientsRange(ctx context.Context, r clients.Range) ([]*clients.Client, error) {
	q := s.db(ctx).Model(&clientRow{})
	if r.After != "" {
		q = q.Where("id > ?", r.After)
	}
	q = prefixRange(q, "id", r.Prefix)
	var rows []clientRow
	if err := q.Order("id").Limit(r.Limit).Find(&rows).Error; err != nil {
		return nil, s.wrapf(err, "storage: list clients")
	}
	return clientsOf(rows)
}
