// Package storagetest is the conformance suite every storage backend must
// pass (the Dex storage/conformance pattern). It checks the Store
// interface (the storage interfaces of identity, second factors and
// recovery codes included, clients, oauth and keys,
// and oauth/dpop's replay cache),
// not a concrete type, so any store can run it; a backend's test does so
// in three lines:
//
//	func TestSQLite(t *testing.T) {
//		storagetest.Run(t, storagetest.OpenSQLite)
//		storagetest.RunConcurrency(t, storagetest.OpenSQLite)
//	}
//
// open must return a fresh, migrated store for each call and release it
// when the test ends. RunClock checks that a store keeps the clock it is
// opened with (OpenClockedDSN). The package also provides DSN helpers
// (SQLiteDSN, MySQLDSN) for other packages' tests.
package storagetest
