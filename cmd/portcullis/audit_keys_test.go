package main

import (
	"bytes"
	"net/http"
	"os/exec"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/proctest"
)

// TestAuditKeyChangesNeedTheirEvent drives the real binary on both
// backends: a key rotation (admin API, CLI) and a re-seal of the signing
// keys under a new secrets key (`keys rewrap`) commit in one transaction
// with their audit event, so while the event cannot be written (the audit
// table is gone) each fails and the key table is as it was. Before, the
// key changed and only the event was missing.
func TestAuditKeyChangesNeedTheirEvent(t *testing.T) {
	keyA, keyB := proctest.RandomSecretsKey(t), proctest.RandomSecretsKey(t)
	portcullis.EachBackend(t, []string{"PORTCULLIS_SECRETS_KEY=" + keyA}, func(t *testing.T, srv *proctest.Server) {
		adm := srv.CreateClient(t, "--name", "admin", "--grant-type", "client_credentials", "--scope", "admin")
		admin := srv.ClientCredentialsToken(t, adm, "admin").AccessToken
		before := srv.CLI(t, "", "keys", "list", "--output", "json")

		dropAuditTable(t, srv)
		if r := adminCall(t, srv, admin, http.MethodPost, "/admin/keys/rotate", nil); r.Status < 500 {
			t.Errorf("POST /admin/keys/rotate without its audit event: %d %s, want a server error", r.Status, r.Body)
		}
		if _, _, err := srv.TryCLI("", "keys", "rotate"); err == nil {
			t.Error("keys rotate succeeded without its audit event")
		}
		rewrap := exec.CommandContext(t.Context(), string(portcullis), "keys", "rewrap")
		rewrap.Env = append(srv.Env(), "PORTCULLIS_SECRETS_KEY="+keyB, "PORTCULLIS_SECRETS_KEY_OLD="+keyA)
		if out, err := rewrap.CombinedOutput(); err == nil {
			t.Errorf("keys rewrap succeeded without its audit events: %s", out)
		}
		if after := srv.CLI(t, "", "keys", "list", "--output", "json"); !bytes.Equal(after, before) {
			t.Errorf("the signing keys changed without audit events:\nbefore %s\nafter  %s", before, after)
		}
	})
}
