package storagetest

import (
	"testing"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/oauth/clients"
)

// testListRanges checks ListUsersRange and ListClientsRange: byte order
// on every backend (upper case before lower case, '-' before digits), the
// prefix as a range that LIKE wildcards and ASCII case do not widen, the
// cursor (After), Disabled and Limit.
func testListRanges(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxTimeout(t)
	names := []string{"a_b", "a-b", "a1", "ab", "axb", "a%c", "b", "bob", "zed", "é-accent"}
	byName := map[string]*identity.User{}
	for i, n := range names {
		u := newUser(n)
		u.Disabled = i%3 == 0
		wantErr(t, "create "+n, s.CreateUser(ctx, u), nil)
		byName[n] = u
	}
	usernames := func(us []*identity.User) []string {
		out := []string{}
		for _, u := range us {
			out = append(out, u.Username)
		}
		return out
	}
	yes, no := true, false
	for _, tt := range []struct {
		name string
		r    identity.UserRange
		want []string
	}{
		{"all, byte order", identity.UserRange{Limit: 100}, []string{"a%c", "a-b", "a1", "a_b", "ab", "axb", "b", "bob", "zed", "é-accent"}},
		{"limit", identity.UserRange{Limit: 3}, []string{"a%c", "a-b", "a1"}},
		{"after", identity.UserRange{After: "a_b", Limit: 3}, []string{"ab", "axb", "b"}},
		{"after a name that is not there", identity.UserRange{After: "aa", Limit: 2}, []string{"ab", "axb"}},
		{"prefix a_ is not a LIKE pattern", identity.UserRange{Prefix: "a_", Limit: 100}, []string{"a_b"}},
		{"prefix a% is not a LIKE pattern", identity.UserRange{Prefix: "a%", Limit: 100}, []string{"a%c"}},
		{"prefix b", identity.UserRange{Prefix: "b", Limit: 100}, []string{"b", "bob"}},
		{"prefix and after", identity.UserRange{Prefix: "a", After: "ab", Limit: 100}, []string{"axb"}},
		{"prefix matches nothing", identity.UserRange{Prefix: "c", Limit: 100}, []string{}},
		{"non-ASCII prefix", identity.UserRange{Prefix: "é", Limit: 100}, []string{"é-accent"}},
		{"largest code point", identity.UserRange{Prefix: "z\U0010FFFF", Limit: 100}, []string{}},
		{"disabled", identity.UserRange{Disabled: &yes, Limit: 100}, []string{"a_b", "ab", "b", "é-accent"}},
		{"enabled, prefix", identity.UserRange{Prefix: "a", Disabled: &no, Limit: 100}, []string{"a%c", "a-b", "a1", "axb"}},
	} {
		got, err := s.ListUsersRange(ctx, tt.r)
		wantErr(t, tt.name, err, nil)
		same(t, "ListUsersRange, "+tt.name, usernames(got), tt.want)
	}
	// The rows come back whole.
	got, err := s.ListUsersRange(ctx, identity.UserRange{Prefix: "zed", Limit: 1})
	wantErr(t, "zed", err, nil)
	same(t, "ListUsersRange row", got, []*identity.User{byName["zed"]})

	for _, id := range []string{"App-2", "app-1", "app-10", "app_x", "b"} {
		c := newClient(id)
		c.ID = id
		wantErr(t, "create client "+id, s.CreateClient(ctx, c), nil)
	}
	ids := func(cs []*clients.Client) []string {
		out := []string{}
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}
	for _, tt := range []struct {
		name string
		r    clients.Range
		want []string
	}{
		{"all, byte order", clients.Range{Limit: 100}, []string{"App-2", "app-1", "app-10", "app_x", "b"}},
		{"prefix is case-sensitive", clients.Range{Prefix: "app", Limit: 100}, []string{"app-1", "app-10", "app_x"}},
		{"prefix app_ is not a LIKE pattern", clients.Range{Prefix: "app_", Limit: 100}, []string{"app_x"}},
		{"after, limit", clients.Range{After: "app-1", Limit: 2}, []string{"app-10", "app_x"}},
	} {
		got, err := s.ListClientsRange(ctx, tt.r)
		wantErr(t, tt.name, err, nil)
		same(t, "ListClientsRange, "+tt.name, ids(got), tt.want)
	}
}
