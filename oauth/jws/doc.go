// Package jws is the one way Portcullis reads a JSON Web Signature (RFC
// 7515): the authorization server's check of its own access tokens
// (introspection, the admin API, revocation), the resource-server library
// oauth/resource, and DPoP proofs (RFC 9449, typ "dpop+jwt") all parse
// through [Parse].
//
// Parse applies the JWT best current practices of RFC 8725 that do not
// depend on a key: the compact serialization only (RFC 7515 §7.1; never
// the JSON serializations of §7.2, whose extra members and unprotected
// headers no caller needs, nor whitespace, nor a JWE), an explicit
// algorithm allow-list (§3.1; "none" and HMAC only if listed), exactly one
// signature, a protected header without duplicate member names (RFC 7515
// §4), without "crit" or "b64" (no extension is understood, RFC 7515
// §4.1.11, RFC 7797), and with the explicit type the caller expects
// (§3.11: "at+jwt" for RFC 9068 access tokens, "dpop+jwt" for proofs).
// It returns the parsed signature and its header; the caller picks the key
// (by kid, or from the header for DPoP), checks that the key fits the
// header's alg, and verifies with it.
//
// [DecodeObject] decodes a header or claims set the same strict way:
// exactly one JSON object, duplicate member names refused.
//
// Errors wrap one of the Err* sentinels, so callers can map them to their
// own error codes with errors.Is.
package jws
