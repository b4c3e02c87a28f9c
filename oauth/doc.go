// Package oauth is Portcullis's authorization server: the fosite provider
// (resource-owner password, client_credentials and refresh_token grants),
// RFC 9068 JWT access tokens signed by package keys, the token, revocation
// (RFC 7009) and introspection (RFC 7662) endpoints, RFC 8414 metadata, and
// fosite's view of the clients registered in package clients (Client, which
// wraps a *clients.Client, and SecretHasher).
//
// Storage is declared here as TokenStore, implemented by package storage,
// whose GetClient and stored requests return *Client. Passwords are checked
// by package identity through a small adapter, so no password logic lives
// in storage.
package oauth
