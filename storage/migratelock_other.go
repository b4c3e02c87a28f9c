//go:build !unix

package storage

import (
	"context"
	"time"
)

// lockFile does nothing where flock is not available: there, processes
// migrating one SQLite file at once rely on Migrate reading the schema
// version again after a failed migration.
func lockFile(context.Context, string, time.Duration) (func(), error) {
	return func() {}, nil
}
