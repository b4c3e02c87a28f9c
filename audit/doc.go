// Package audit is Portcullis's audit trail: who changed what (clients,
// users, roles, keys, imports) and the security events (logins, lockouts,
// token replay, second factors), one Event per fact, kept in a table of
// the server's database for a configurable retention.
//
// An event that records a change is written in the same transaction as
// the change (Recorder.Record joins the transaction its context carries),
// so a change that is rolled back leaves no event and a committed change
// always has one. A change the admin API refuses is recorded on its own,
// with outcome failure, once its transaction rolled back. Events carry
// identifiers only, never a secret, password, token or hash.
//
// Request data (the actor, the client's IP address, the request ID)
// travels in the request's context under this package's keys: the HTTP
// layer sets them (WithActor, WithRequest), and Recorder.Record fills
// them into each event.
package audit
