package oauth_test

import (
	"encoding/json"
	"testing"

	"golang.org/x/oauth2"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/identity/identitytest"
	"github.com/portcullis-auth/portcullis/internal/server/servertest"
	"github.com/portcullis-auth/portcullis/oauth/clients"
)

// TestRoleChangeDuringLoginReachesTheToken: a role withdrawn while a
// login's password is being hashed is not in the token the login gets
// afterwards. Before ef7248e the token handler read the user again after
// the password check (setOwner); now the claims come from the row the
// password check read before hashing, and confirmCredentials, which reads
// the row again under its lock, only compares the hash and the disabled
// flag: a user demoted from admin during the login gets a fresh admin
// token issued after the demotion committed.
func TestRoleChangeDuringLoginReachesTheToken(t *testing.T) {
	for name, dsn := range raceBackends {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, servertest.Options{DSN: dsn(t)})
			u := e.user(t, "victim", "admin")
			c, _ := e.client(t, clients.Spec{Name: "app", Public: true, Audience: []string{api}})
			conf := e.conf(c, "", oauth2.AuthStyleInParams)
			owner := &identity.Service{Store: e.Store, Hasher: e.Users.Hasher, Sessions: e.Store, Throttles: e.Store}
			hooked := &lookupHook{Store: e.Store}
			hooked.hook = func() {
				if _, err := owner.Update(t.Context(), u.ID, identity.Change{Roles: &[]string{"user"}}); err != nil {
					t.Errorf("role change: %v", err)
				}
			}
			e.Users.Store = hooked
			tok, err := conf.PasswordCredentialsToken(t.Context(), "victim", identitytest.Password)
			if hooked.hook != nil {
				t.Fatal("the hook did not run")
			}
			if err != nil {
				t.Fatal(err)
			}
			_, cl := claimsOf(t, tok.AccessToken)
			if roles, _ := json.Marshal(cl["roles"]); string(roles) != `["user"]` {
				t.Errorf("roles = %s in a token issued after the roles became [\"user\"]", roles)
			}
		})
	}
}
