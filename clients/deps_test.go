package clients_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoFositeDependencies: the client registry is domain code: it links
// neither fosite nor go-jose (package oauth adapts clients to fosite), nor
// storage or transport.
func TestNoFositeDependencies(t *testing.T) {
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
	// Each with its subpackages.
	forbidden := []string{"github.com/ory/fosite/", "github.com/go-jose/", "gorm.io/",
		module + "oauth/", module + "storage/", module + "server/"}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep+"/" == f || strings.HasPrefix(dep, f) {
				t.Errorf("clients depends on %s", dep)
			}
		}
	}
}
