package main

import (
	"strings"
	"time"
)

// The text output of the users and clients commands shows each field the
// same way in a table (list) and in a record (get): a list as its items
// separated by commas, an empty list, string or null as "-", a time in
// RFC 3339 UTC, so that a value reads and parses alike wherever it appears
// and a table cell is never empty (columns split on whitespace stay in
// place).

// textList formats a list field.
func textList(items []string) string {
	if len(items) == 0 {
		return "-"
	}
	return strings.Join(items, ",")
}

// textString formats a string field.
func textString(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// textTime formats a time field; nil is "-".
func textTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
