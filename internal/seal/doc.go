// Package seal encrypts small secrets at rest (AES-256-GCM) under the
// secrets key: the private signing keys of package keys ([SigningKey]) and
// the secrets of TOTP factors of package identity/totp ([TOTPSecret]):
// per-record secrets that must never be stored in the clear.
//
// Every sealed value is bound to a [Purpose] and to the ID of its record:
// both go into the GCM additional data as purpose, NUL, ID. A value sealed
// for one purpose or one record does not open for another, so a database
// writer who swaps ciphertexts between rows or tables gains nothing. The
// additional data of [SigningKey] is exactly the bytes keys.Sealer used
// before this package existed ("portcullis signing key v1", NUL, kid), so
// signing keys in existing databases open unchanged; testdata holds a blob
// sealed by that code.
//
// A sealed value is the 12-byte nonce followed by the GCM ciphertext and
// tag. It is stored with the wrap-key ID of the secrets key that sealed it
// ([WrapKeyID]), so that the secrets key can be rotated: a [Sealer] seals
// under its primary key and opens values sealed under the primary or any
// older key it was given.
package seal
