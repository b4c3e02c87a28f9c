package clients

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis-auth/portcullis/audit"
	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/listpage"
)

// Range is what Store.ListClientsRange reads.
type Range struct {
	Prefix, After string
	Limit         int
}

// Store persists clients. Implementations return errors matching
// apperr.ErrNotFound and apperr.ErrAlreadyExists.
type Store interface {
	// CreateClient inserts c or fails with apperr.ErrAlreadyExists.
	CreateClient(ctx context.Context, c *Client) error
	// FindClient returns the client with the given ID or apperr.ErrNotFound.
	FindClient(ctx context.Context, id string) (*Client, error)
	// ListClients returns every client ordered by creation.
	ListClients(ctx context.Context) ([]*Client, error)
	// ListClientsRange returns at most r.Limit clients in client ID byte
	// order whose ID follows r.After and starts with r.Prefix. (A backend
	// may return a few more whose IDs differ from r.Prefix only by
	// trailing spaces of the prefix; ListPage compares again.)
	ListClientsRange(ctx context.Context, r Range) ([]*Client, error)
	// UpdateClient loads the client under a row lock, calls update and
	// stores the result in one transaction; an update error writes nothing.
	UpdateClient(ctx context.Context, id string, update func(*Client) error) (*Client, error)
	// DeleteClient removes a client and every token issued to it, or
	// returns apperr.ErrNotFound.
	DeleteClient(ctx context.Context, id string) error
}

// Transactor runs fn in one transaction carried by the context fn
// receives (storage.Store.InTx): every Store method and audit.Recorder
// called with that context takes part in it. fn's error rolls back and is
// returned.
type Transactor interface {
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
}

// Service administers OAuth2 clients.
type Service struct {
	Store Store
	// Rand defaults to crypto/rand; Now to time.Now.
	Rand io.Reader
	Now  func() time.Time
	// Audit, when set, records every change in the change's transaction
	// (Tx, which is then required and must be backed by the database of
	// Store and Audit).
	Audit audit.Recorder
	Tx    Transactor
}

// change runs fn and records action on the client it returns, in one
// transaction when the changes are audited.
func (s *Service) change(ctx context.Context, action string, fn func(ctx context.Context) (id string, err error)) error {
	if s.Audit == nil {
		_, err := fn(ctx)
		return err
	}
	return s.Tx.InTx(ctx, func(ctx context.Context) error {
		id, err := fn(ctx)
		if err != nil {
			return err
		}
		return s.Audit.Record(ctx, audit.Event{Action: action, Target: audit.ClientTarget(id)})
	})
}

// now is truncated to what the databases store (microseconds), so a
// client reads back exactly as it was returned at creation.
func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC().Truncate(time.Microsecond)
	}
	return time.Now().UTC().Truncate(time.Microsecond)
}

// Create registers a client. For confidential clients it returns the
// generated secret, which is shown once and stored only hashed.
func (s *Service) Create(ctx context.Context, spec Spec) (*Client, string, error) {
	return s.create(ctx, uuid.NewString(), spec)
}

// create registers the client id with spec.
func (s *Service) create(ctx context.Context, id string, spec Spec) (*Client, string, error) {
	if err := spec.normalize(); err != nil {
		return nil, "", err
	}
	now := s.now()
	c := &Client{
		ID: id, Name: spec.Name, AuthMethod: spec.AuthMethod,
		GrantTypes: spec.GrantTypes, Scopes: spec.Scopes, Audience: spec.Audience,
		CreatedAt: now, UpdatedAt: now, IntrospectionAllowed: spec.IntrospectionAllowed,
		AccessTokenSigningAlg: spec.AccessTokenSigningAlg, CORSOrigins: spec.CORSOrigins,
		DPoPBoundAccessTokens: spec.DPoPBoundAccessTokens, MFARequired: spec.MFARequired,
	}
	var secret string
	if !c.IsPublic() {
		var err error
		if secret, c.SecretHash, err = s.newSecret(); err != nil {
			return nil, "", err
		}
	}
	err := s.change(ctx, audit.ClientCreate, func(ctx context.Context) (string, error) {
		return c.ID, s.Store.CreateClient(ctx, c)
	})
	if err != nil {
		return nil, "", fmt.Errorf("create client: %w", err)
	}
	return c, secret, nil
}

// newSecret returns 32 random bytes (256 bits) as base64url and their hash.
func (s *Service) newSecret() (string, []byte, error) {
	r := s.Rand
	if r == nil {
		r = rand.Reader
	}
	b := make([]byte, 32)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", nil, fmt.Errorf("generate client secret: %w", err)
	}
	secret := base64.RawURLEncoding.EncodeToString(b)
	return secret, HashSecret([]byte(secret)), nil
}

// Ensure makes the public client id exist with the settings spec: it
// registers it when absent and, when present with other settings, replaces
// them (as Update). A client that already has these settings is left as
// it is (its version unchanged). It is meant for clients the server
// registers for itself, such as the admin console's, and is safe to call
// from several replicas at once. A confidential spec is refused: nobody
// would ever see its secret.
func (s *Service) Ensure(ctx context.Context, id string, spec Spec) (*Client, error) {
	if !spec.Public {
		return nil, &apperr.Error{Code: apperr.EInvalid, Message: "only a public client can be ensured"}
	}
	if err := spec.normalize(); err != nil {
		return nil, err
	}
	for range 2 {
		c, err := s.Store.FindClient(ctx, id)
		if errors.Is(err, apperr.ErrNotFound) {
			c, _, err = s.create(ctx, id, spec)
			if errors.Is(err, apperr.ErrAlreadyExists) {
				continue // another replica registered it meanwhile
			}
			return c, err
		}
		if err != nil {
			return nil, fmt.Errorf("find client: %w", err)
		}
		cur := c.spec()
		if err := cur.normalize(); err == nil && reflect.DeepEqual(cur, spec) {
			return c, nil
		}
		return s.patch(ctx, id, nil, func(cur *Spec) { *cur = spec })
	}
	return nil, fmt.Errorf("ensure client %s: registered and deleted concurrently", id)
}

// Get returns a client or an apperr.ENotFound error.
func (s *Service) Get(ctx context.Context, id string) (*Client, error) {
	c, err := s.Store.FindClient(ctx, id)
	if errors.Is(err, apperr.ErrNotFound) {
		return nil, &apperr.Error{Code: apperr.ENotFound, Message: "client not found"}
	}
	return c, err
}

// List returns every client.
func (s *Service) List(ctx context.Context) ([]*Client, error) { return s.Store.ListClients(ctx) }

// Query selects the clients of one page of ListPage.
type Query struct {
	// IDPrefix keeps the clients whose ID starts with it (exactly).
	IDPrefix string
	// NamePrefix keeps the clients whose name starts with it, ignoring
	// case.
	NamePrefix string
	// GrantType and Scope keep the clients registered for them.
	GrantType, Scope string
	// Cursor is a previous page's Next; empty starts at the first client.
	Cursor string
	// Limit is the page size: 0 means listpage.DefaultLimit; outside
	// 1..listpage.MaxLimit is refused.
	Limit int
}

// Page is one page of clients in client ID order.
type Page struct {
	Clients []*Client
	// Next continues the listing after this page; empty on the last
	// page. A page may hold fewer than Limit clients, even none, while
	// Next is set (listpage.ScanBudget).
	Next string
}

// clientCursor tags (and versions) the cursors of client listings.
const clientCursor = "c1"

// ListPage returns the page of clients q selects. It returns an
// apperr.EInvalid error for a cursor it did not issue or an out-of-range
// limit.
func (s *Service) ListPage(ctx context.Context, q Query) (*Page, error) {
	limit, err := listpage.Limit(q.Limit)
	if err != nil {
		return nil, err
	}
	after, err := listpage.DecodeCursor(clientCursor, q.Cursor)
	if err != nil {
		return nil, err
	}
	var filter func([]*Client) ([]*Client, error)
	if q.IDPrefix != "" || q.NamePrefix != "" || q.GrantType != "" || q.Scope != "" {
		name := strings.ToLower(q.NamePrefix)
		filter = func(batch []*Client) ([]*Client, error) {
			kept := batch[:0:0]
			for _, c := range batch {
				if strings.HasPrefix(c.ID, q.IDPrefix) && strings.HasPrefix(strings.ToLower(c.Name), name) &&
					(q.GrantType == "" || slices.Contains(c.GrantTypes, q.GrantType)) &&
					(q.Scope == "" || slices.Contains(c.Scopes, q.Scope)) {
					kept = append(kept, c)
				}
			}
			return kept, nil
		}
	}
	cs, next, err := listpage.Collect(limit, after, func(c *Client) string { return c.ID },
		func(after string, n int) ([]*Client, error) {
			return s.Store.ListClientsRange(ctx, Range{Prefix: q.IDPrefix, After: after, Limit: n})
		}, filter)
	if err != nil {
		return nil, err
	}
	p := &Page{Clients: cs}
	if next != "" {
		p.Next = listpage.EncodeCursor(clientCursor, next)
	}
	return p, nil
}

// Update replaces a client's settable fields (a field left zero in spec
// takes its default, as in Create). Switching between public and
// confidential is refused (delete and re-create instead), so a secret is
// never silently dropped or needed.
func (s *Service) Update(ctx context.Context, id string, spec Spec) (*Client, error) {
	return s.UpdateIf(ctx, id, spec, nil)
}

// ErrVersionMismatch is returned by UpdateIf when the client changed since
// the caller read it.
var ErrVersionMismatch = &apperr.Error{Code: apperr.EPreconditionFailed, Message: "the client has changed since it was read; read it again"}

// UpdateIf is Update, made only if match, when not nil, accepts the
// client's current Version, checked under the row lock in the transaction
// of the update: otherwise nothing is stored and ErrVersionMismatch is
// returned. Of two updates made from the same read, one succeeds and the
// other fails, whichever the order.
func (s *Service) UpdateIf(ctx context.Context, id string, spec Spec, match func(version string) bool) (*Client, error) {
	if err := spec.normalize(); err != nil {
		return nil, err
	}
	return s.patch(ctx, id, match, func(cur *Spec) { *cur = spec })
}

// Patch changes some of a client's settable fields: patch receives the
// client's current settings and edits them; the result is validated as in
// Update and stored, all in one transaction, so concurrent changes of
// other fields are not lost. On a validation error nothing is stored.
func (s *Service) Patch(ctx context.Context, id string, patch func(*Spec)) (*Client, error) {
	return s.patch(ctx, id, nil, patch)
}

func (s *Service) patch(ctx context.Context, id string, match func(string) bool, patch func(*Spec)) (c *Client, err error) {
	err = s.change(ctx, audit.ClientUpdate, func(ctx context.Context) (string, error) {
		var err error
		c, err = s.Store.UpdateClient(ctx, id, func(c *Client) error {
			if match != nil && !match(c.Version()) {
				return ErrVersionMismatch
			}
			spec := c.spec()
			patch(&spec)
			if err := spec.normalize(); err != nil {
				return err
			}
			if c.IsPublic() != spec.Public {
				return &apperr.Error{Code: apperr.EInvalid, Message: "a client cannot change between public and confidential"}
			}
			c.Name, c.AuthMethod, c.GrantTypes, c.Scopes, c.Audience = spec.Name, spec.AuthMethod, spec.GrantTypes, spec.Scopes, spec.Audience
			c.IntrospectionAllowed = spec.IntrospectionAllowed
			c.AccessTokenSigningAlg = spec.AccessTokenSigningAlg
			c.CORSOrigins = spec.CORSOrigins
			c.DPoPBoundAccessTokens = spec.DPoPBoundAccessTokens
			c.MFARequired = spec.MFARequired
			c.UpdatedAt = s.now()
			return nil
		})
		return id, err
	})
	if errors.Is(err, apperr.ErrNotFound) {
		return nil, &apperr.Error{Code: apperr.ENotFound, Message: "client not found"}
	}
	return c, err
}

// Delete removes a client and the tokens issued to it.
func (s *Service) Delete(ctx context.Context, id string) error {
	err := s.change(ctx, audit.ClientDelete, func(ctx context.Context) (string, error) {
		return id, s.Store.DeleteClient(ctx, id)
	})
	if errors.Is(err, apperr.ErrNotFound) {
		return &apperr.Error{Code: apperr.ENotFound, Message: "client not found"}
	}
	return err
}

// RotateSecret replaces a confidential client's secret and returns the new
// one; the old secret stops working at once.
func (s *Service) RotateSecret(ctx context.Context, id string) (*Client, string, error) {
	secret, hash, err := s.newSecret()
	if err != nil {
		return nil, "", err
	}
	var c *Client
	err = s.change(ctx, audit.ClientRotateSecret, func(ctx context.Context) (string, error) {
		var err error
		c, err = s.Store.UpdateClient(ctx, id, func(c *Client) error {
			if c.IsPublic() {
				return &apperr.Error{Code: apperr.EInvalid, Message: "a public client has no secret"}
			}
			c.SecretHash, c.UpdatedAt = hash, s.now()
			return nil
		})
		return id, err
	})
	if errors.Is(err, apperr.ErrNotFound) {
		return nil, "", &apperr.Error{Code: apperr.ENotFound, Message: "client not found"}
	}
	if err != nil {
		return nil, "", err
	}
	return c, secret, nil
}
