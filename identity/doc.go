// Package identity owns Portcullis's users: sign-up, argon2id password
// hashing in PHC form, username and password policy, roles, and the
// throttling of password guessing (per-account lockout).
//
// The package declares the small Store it needs and never imports storage;
// storage implements Store, and cmd/portcullis wires the two together.
package identity
