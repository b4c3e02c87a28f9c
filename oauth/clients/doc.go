// Package clients is Portcullis's registry of OAuth2 clients: the Client
// model and its registration vocabulary (grant types and token endpoint
// authentication methods, RFC 7591 names), the validation of a client's
// settings (Spec), and the administration Service (create, read, update,
// patch, delete, rotate secret) with the Store it needs, implemented by
// package storage.
//
// Client secrets are generated here (256 random bits) and stored only as
// HashSecret's digest.
//
// The package knows nothing of fosite: package oauth adapts a Client to
// fosite's client interfaces (oauth.Client) and checks secrets with
// HashSecret (oauth.SecretHasher); package server/adminapi owns the JSON
// representation shared by the admin API and the CLI.
package clients
