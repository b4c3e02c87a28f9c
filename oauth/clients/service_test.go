package clients_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/oauth/clients"
	"github.com/portcullis-auth/portcullis/storage/storagetest"
)

// TestClientValidation: Create refuses an invalid registration with
// invalid_request and stores nothing; a valid one gets a 256-bit secret,
// stored only hashed, and reads back as Create returned it.
func TestClientValidation(t *testing.T) {
	svc := &clients.Service{Store: storagetest.OpenSQLite(t)}
	tests := []struct {
		name string
		spec clients.Spec
		ok   bool
	}{
		{"defaults", clients.Spec{Name: "a"}, true},
		{"no name", clients.Spec{}, false},
		{"public with client_credentials", clients.Spec{Name: "a", Public: true, GrantTypes: []string{"client_credentials"}}, false},
		{"unknown grant", clients.Spec{Name: "a", GrantTypes: []string{"implicit"}}, false},
		{"bad scope", clients.Spec{Name: "a", Scopes: []string{"a b"}}, false},
		{"bad auth method", clients.Spec{Name: "a", AuthMethod: "private_key_jwt"}, false},
		{"public with secret method", clients.Spec{Name: "a", Public: true, AuthMethod: clients.AuthSecretPost}, false},
		{"confidential introspector", clients.Spec{Name: "a", IntrospectionAllowed: true}, true},
		{"public introspector", clients.Spec{Name: "a", Public: true, IntrospectionAllowed: true}, false},
		{"auth method none introspector", clients.Spec{Name: "a", AuthMethod: clients.AuthNone, IntrospectionAllowed: true}, false},
		{"cors origins", clients.Spec{Name: "a", CORSOrigins: []string{"https://a.example", "http://localhost:5173"}}, true},
		{"cors wildcard", clients.Spec{Name: "a", CORSOrigins: []string{"*"}}, false},
		{"cors null", clients.Spec{Name: "a", CORSOrigins: []string{"null"}}, false},
		{"cors path", clients.Spec{Name: "a", CORSOrigins: []string{"https://a.example/app"}}, false},
		{"cors scheme", clients.Spec{Name: "a", CORSOrigins: []string{"file://a"}}, false},
	}
	created := 0
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, secret, err := svc.Create(t.Context(), tc.spec)
			if !tc.ok {
				if err == nil {
					t.Fatalf("created %+v", c)
				}
				if code := apperr.CodeOf(err); code != apperr.EInvalid {
					t.Errorf("error %v has code %s, want %s", err, code, apperr.EInvalid)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			created++
			if len(secret) < 43 || c.SecretHash == nil || string(c.SecretHash) == secret {
				t.Errorf("secret %q hash %x", secret, c.SecretHash)
			}
			if !clients.SecretMatches(c.SecretHash, []byte(secret)) {
				t.Error("secret does not match its hash")
			}
			got, err := svc.Get(t.Context(), c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c, got); diff != "" {
				t.Errorf("stored client differs from Create's answer (-created +stored):\n%s", diff)
			}
		})
	}
	list, err := svc.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != created {
		t.Errorf("%d clients stored after %d successful creates: a refused one was stored", len(list), created)
	}
}

// TestDPoPBoundAccessTokens: the setting (RFC 9449 §5.2) is stored by
// Create for public and confidential clients alike, false unless given;
// Update replaces it (absent means false) and Patch changes it alone.
func TestDPoPBoundAccessTokens(t *testing.T) {
	svc := &clients.Service{Store: storagetest.OpenSQLite(t)}
	ctx := t.Context()
	bound := func(t *testing.T, what string, c *clients.Client, want bool) {
		t.Helper()
		if c.DPoPBoundAccessTokens != want {
			t.Fatalf("%s: DPoPBoundAccessTokens %v, want %v", what, c.DPoPBoundAccessTokens, want)
		}
		got, err := svc.Get(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.DPoPBoundAccessTokens != want {
			t.Fatalf("%s: stored DPoPBoundAccessTokens %v, want %v", what, got.DPoPBoundAccessTokens, want)
		}
	}
	spa, _, err := svc.Create(ctx, clients.Spec{Name: "spa", Public: true, DPoPBoundAccessTokens: true})
	if err != nil {
		t.Fatal(err)
	}
	bound(t, "public client created bound", spa, true)
	app, _, err := svc.Create(ctx, clients.Spec{Name: "app"})
	if err != nil {
		t.Fatal(err)
	}
	bound(t, "client created without it", app, false)

	app, err = svc.Patch(ctx, app.ID, func(s *clients.Spec) { s.DPoPBoundAccessTokens = true })
	if err != nil {
		t.Fatal(err)
	}
	bound(t, "patched", app, true)
	app, err = svc.Patch(ctx, app.ID, func(s *clients.Spec) { s.Name = "app-2" })
	if err != nil {
		t.Fatal(err)
	}
	bound(t, "patched another field", app, true)
	app, err = svc.Update(ctx, app.ID, clients.Spec{Name: "app-3"})
	if err != nil {
		t.Fatal(err)
	}
	bound(t, "updated without it", app, false)
}

// TestEnsure: Ensure registers a public client under the ID given, leaves
// it untouched (same version) when its settings already match, replaces
// settings that differ, re-registers it after a deletion, and refuses a
// confidential spec.
func TestEnsure(t *testing.T) {
	ctx := t.Context()
	svc := &clients.Service{Store: storagetest.OpenSQLite(t)}
	spec := clients.Spec{Name: "console", Public: true, GrantTypes: []string{"authorization_code", "refresh_token"},
		Scopes: []string{"admin"}, CORSOrigins: []string{"http://127.0.0.1:8081"}}
	c, err := svc.Ensure(ctx, "portcullis-console", spec)
	if err != nil || c.ID != "portcullis-console" || !c.IsPublic() {
		t.Fatalf("Ensure (new) = %+v, %v", c, err)
	}
	again, err := svc.Ensure(ctx, "portcullis-console", spec)
	if err != nil || again.Version() != c.Version() {
		t.Fatalf("Ensure (same settings): version %q → %q, %v; want unchanged", c.Version(), again.Version(), err)
	}
	spec.CORSOrigins = []string{"https://admin.example.test"}
	moved, err := svc.Ensure(ctx, "portcullis-console", spec)
	if err != nil || len(moved.CORSOrigins) != 1 || moved.CORSOrigins[0] != "https://admin.example.test" {
		t.Fatalf("Ensure (new origin) = %+v, %v", moved, err)
	}
	if err := svc.Delete(ctx, "portcullis-console"); err != nil {
		t.Fatal(err)
	}
	if c, err := svc.Ensure(ctx, "portcullis-console", spec); err != nil || c.ID != "portcullis-console" {
		t.Fatalf("Ensure (after deletion) = %+v, %v", c, err)
	}
	if _, err := svc.Ensure(ctx, "other", clients.Spec{Name: "x", GrantTypes: []string{"client_credentials"}}); err == nil {
		t.Fatal("Ensure accepted a confidential client")
	}
}
