package adminapi

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/httpjson"
	"github.com/portcullis-auth/portcullis/oauth/clients"
)

// maxFilterBytes bounds a text filter: no username, client ID, name, role,
// grant type or scope worth matching is longer.
const maxFilterBytes = 255

// listParams reads a listing's query parameters: a query string that
// parses, each parameter at most once, text filters valid UTF-8 without
// control characters and at most maxFilterBytes long, booleans "true" or
// "false", limit a decimal. Errors name the parameter, never its value.
type listParams struct {
	query url.Values
	err   error
}

// errBadQuery answers a query string that does not parse (a stray '%',
// a bad escape, a ';'): url.Values would drop the pair, and the listing
// would silently go without that filter.
var errBadQuery = &apperr.Error{Code: apperr.EInvalid, Message: "the query string is malformed (percent-encoding or ';')"}

// newListParams reads the request's query string whole, or records
// errBadQuery.
func newListParams(r *http.Request) *listParams {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return &listParams{query: url.Values{}, err: errBadQuery}
	}
	return &listParams{query: q}
}

func (p *listParams) one(name string) string {
	vs := p.query[name]
	switch {
	case p.err != nil || len(vs) == 0:
		return ""
	case len(vs) > 1:
		p.err = &apperr.Error{Code: apperr.EInvalid, Message: name + " must be given at most once"}
		return ""
	}
	return vs[0]
}

func (p *listParams) text(name string) string {
	v := p.one(name)
	if p.err == nil && (len(v) > maxFilterBytes || !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl)) {
		p.err = apperr.Errorf(apperr.EInvalid, "%s must be text of at most %d bytes", name, maxFilterBytes)
	}
	return v
}

func (p *listParams) boolean(name string) *bool {
	switch v := p.one(name); v {
	case "":
		return nil
	case "true", "false":
		b := v == "true"
		return &b
	default:
		if p.err == nil {
			p.err = &apperr.Error{Code: apperr.EInvalid, Message: name + " must be true or false"}
		}
		return nil
	}
}

func (p *listParams) limit() int {
	v := p.one("limit")
	if v == "" || p.err != nil {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		// identity and clients refuse the values out of range with the
		// same message.
		return -1
	}
	return n
}

// listUsers answers GET /admin/users: one page of users in username order
// (case-insensitively), a JSON array; when more may follow, a Link header
// (RFC 8288) with rel="next" names the next page's URL. Query parameters:
// username_prefix, role, disabled (true|false), locked (true|false),
// limit (default 100, at most 1000) and cursor (from a next link). A page
// may hold fewer users than limit, even none, while a next link is
// present: follow it until there is none.
func (h *Handler) listUsers(w http.ResponseWriter, r *http.Request) error {
	p := newListParams(r)
	q := identity.UserQuery{UsernamePrefix: p.text("username_prefix"), Role: p.text("role"),
		Disabled: p.boolean("disabled"), Locked: p.boolean("locked"), Limit: p.limit(), Cursor: p.text("cursor")}
	if p.err != nil {
		return p.err
	}
	page, err := h.Users.ListPage(r.Context(), q)
	if err != nil {
		return err
	}
	out, err := UsersJSON(r.Context(), h.Users, page.Users)
	if err != nil {
		return err
	}
	h.linkNext(w, r, p.query, page.Next, "username_prefix", "role", "disabled", "locked", "limit")
	httpjson.Write(w, http.StatusOK, out)
	return nil
}

// listClients answers GET /admin/clients: one page of clients in client ID
// order, a JSON array, with a Link rel="next" header as for users. Query
// parameters: client_id_prefix (exact case), name_prefix (any case),
// grant_type, scope, limit (default 100, at most 1000) and cursor.
func (h *Handler) listClients(w http.ResponseWriter, r *http.Request) error {
	p := newListParams(r)
	q := clients.Query{IDPrefix: p.text("client_id_prefix"), NamePrefix: p.text("name_prefix"),
		GrantType: p.text("grant_type"), Scope: p.text("scope"), Limit: p.limit(), Cursor: p.text("cursor")}
	if p.err != nil {
		return p.err
	}
	page, err := h.Clients.ListPage(r.Context(), q)
	if err != nil {
		return err
	}
	out := make([]ClientJSON, 0, len(page.Clients))
	for _, c := range page.Clients {
		out = append(out, NewClientJSON(c, ""))
	}
	h.linkNext(w, r, p.query, page.Next, "client_id_prefix", "name_prefix", "grant_type", "scope", "limit")
	httpjson.Write(w, http.StatusOK, out)
	return nil
}

// linkNext sets the Link header naming the next page (RFC 8288 §3): the
// request's path with the parameters keep that the request had and the
// cursor next; relative to the request, or absolute under ExternalURL. It
// does nothing for an empty next.
func (h *Handler) linkNext(w http.ResponseWriter, r *http.Request, query url.Values, next string, keep ...string) {
	if next == "" {
		return
	}
	v := url.Values{}
	for _, k := range keep {
		if x := query.Get(k); x != "" {
			v.Set(k, x)
		}
	}
	v.Set("cursor", next)
	target := strings.TrimSuffix(h.ExternalURL, "/") + r.URL.Path + "?" + v.Encode()
	w.Header().Add("Link", "<"+target+`>; rel="next"`)
}
