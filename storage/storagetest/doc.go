// Package storagetest is the conformance suite every storage backend must
// pass (the Dex storage/conformance pattern). A backend's test runs it in
// three lines:
//
//	func TestSQLite(t *testing.T) {
//		storagetest.Run(t, storagetest.OpenSQLite)
//		storagetest.RunConcurrency(t, storagetest.OpenSQLite)
//	}
//
// open must return a fresh, migrated store for each call and release it
// when the test ends. RunClock checks that a store keeps the clock given as
// storage.Options.Now. The package also provides DSN helpers (SQLiteDSN,
// MySQLDSN) and a settable Clock for other packages' tests.
package storagetest
