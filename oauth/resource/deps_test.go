package resource_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoServerDependencies: a resource server linking this package gets
// none of the authorization server's packages (the key manager with its
// sealer, storage, identity, fosite): only verifying is linked.
func TestNoServerDependencies(t *testing.T) {
	t.Parallel()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found:", err)
	}
	out, err := exec.CommandContext(t.Context(), gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const module = "github.com/portcullis-auth/portcullis/"
	// Server packages, each with its subpackages; "oauth" itself only.
	server := []string{module + "keys/", module + "storage/", module + "identity/", module + "configs/",
		module + "server/", "github.com/ory/fosite/", "gorm.io/"}
	for _, dep := range strings.Fields(string(out)) {
		bad := dep == module+"oauth"
		for _, s := range server {
			bad = bad || dep+"/" == s || strings.HasPrefix(dep, s)
		}
		if bad {
			t.Errorf("oauth/resource depends on %s", dep)
		}
	}
}
