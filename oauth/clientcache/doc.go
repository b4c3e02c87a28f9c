// Package clientcache keeps registered OAuth clients in memory for the
// endpoints that look one up on every request (token, revocation,
// introspection: client authentication), so that the common case reads no
// database.
//
// A Cache is safe by construction rather than by convention:
//
//   - It is bounded: at most Options.MaxEntries clients, and only clients
//     that exist. A lookup of an unknown client_id, or one that fails, is
//     never cached, so requests with random client IDs cannot grow it.
//   - It is invalidated at once in the process that changes a client:
//     every write through the clients.Store that Cache.ClientStore wraps
//     (update, secret rotation, deletion, through clients.Service, the admin
//     API or anything else in the process) drops the entry when the write
//     returns, and a lookup that was reading the old row meanwhile does not
//     put it back.
//   - Across processes (another replica, or the CLI run against the same
//     database) a change is honoured within Options.TTL: an entry is served
//     for at most TTL after the read that filled it began. This bound covers
//     every change, the security-relevant ones included (secret rotation,
//     deletion, withdrawn grant types, scopes or introspection permission).
//
// The cache holds what the store returns (the SHA-256 hash of a client's
// secret, never the secret), and hands every caller its own copy of a
// client, so no request can change what another sees.
package clientcache
