// Package keys manages the keys that sign Portcullis access tokens and the
// JSON Web Key Set that resource servers verify them with.
//
// Lifecycle. Every key is stored with a generation number and three
// timestamps: created (published in the JWKS), activates (starts signing)
// and retired (a newer key took over). Its state is derived from those
// timestamps and the clock, so every replica that has read the key table
// agrees on it without coordination:
//
//	published  created <= now < activates   in the JWKS, not signing yet
//	active     the newest key whose activates <= now: it signs
//	retired    superseded, still in the JWKS until retired + retention
//	expired    past retention: dropped from the JWKS and deleted
//
// A scheduled rotation inserts generation N+1 with activates = now +
// prepublication, so resource-server caches learn the key before any token
// carries it. Two replicas racing to rotate insert the same generation; the
// unique index lets exactly one win (compare-and-set on the key table).
//
// Private keys are sealed with AES-256-GCM under the secrets key by
// internal/seal (purpose seal.SigningKey, bound to the kid); the sealed row
// records the wrapping key's ID so the secrets key can be rotated
// (Rewrap). The other side, the cached, self-refreshing view of an
// issuer's JWKS for resource servers, is oauth/resource's RemoteKeySet.
package keys
