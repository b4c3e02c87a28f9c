package keys

import "github.com/portcullis-auth/portcullis/oauth/resource"

// The caching JWKS client for verifiers moved to the resource-server
// library, so that a resource server links neither the key manager nor the
// sealer. These names keep existing callers compiling.

// RemoteKeySet is resource.RemoteKeySet.
//
// Deprecated: use resource.RemoteKeySet.
type RemoteKeySet = resource.RemoteKeySet

// RemoteOptions is resource.RemoteOptions.
//
// Deprecated: use resource.RemoteOptions.
type RemoteOptions = resource.RemoteOptions

// NewRemoteKeySet is resource.NewRemoteKeySet.
//
// Deprecated: use resource.NewRemoteKeySet.
func NewRemoteKeySet(issuer string, opts RemoteOptions) *RemoteKeySet {
	return resource.NewRemoteKeySet(issuer, opts)
}

// Errors of RemoteKeySet, matched with errors.Is.
//
// Deprecated: use resource.ErrKeyNotFound and resource.ErrKeySetUnavailable.
var (
	ErrKeyNotFound       = resource.ErrKeyNotFound
	ErrKeySetUnavailable = resource.ErrKeySetUnavailable
)
