package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/portcullis-auth/portcullis/oauth"
	"github.com/portcullis-auth/portcullis/oauth/clients"
)

// clientRow is the clients table.
type clientRow struct {
	ID         string    `gorm:"column:id;primaryKey"`
	Name       string    `gorm:"column:name"`
	SecretHash []byte    `gorm:"column:secret_hash"`
	AuthMethod string    `gorm:"column:auth_method"`
	GrantTypes string    `gorm:"column:grant_types"`
	Scopes     string    `gorm:"column:scopes"`
	Audience   string    `gorm:"column:audience"`
	CreatedAt  time.Time `gorm:"column:created_at;autoCreateTime:false"`
	UpdatedAt  time.Time `gorm:"column:updated_at;autoUpdateTime:false"`

	IntrospectionAllowed bool `gorm:"column:introspection_allowed"` // migration 00006
	// AccessTokenSigningAlg is "" for the server's default (migration 00009).
	AccessTokenSigningAlg string `gorm:"column:access_token_signing_alg"`
	// AllowedCORSOrigins is a JSON list of normalised origins (migration
	// 00008); "" on rows written before it, read as none.
	AllowedCORSOrigins string `gorm:"column:allowed_cors_origins"`
	// DPoPBoundAccessTokens is dpop_bound_access_tokens, RFC 9449 §5.2
	// (migration 00014).
	DPoPBoundAccessTokens bool `gorm:"column:dpop_bound_access_tokens"`
	// MFARequired is Client.MFARequired (migration 00018).
	MFARequired bool `gorm:"column:mfa_required"`
}

func (clientRow) TableName() string { return "clients" }

func jsonList(v []string) (string, error) {
	if v == nil {
		v = []string{}
	}
	b, err := json.Marshal(v)
	return string(b), err
}

func parseList(s string) ([]string, error) {
	out := []string{}
	if s == "" {
		return out, nil
	}
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

func toClientRow(c *clients.Client) (*clientRow, error) {
	r := &clientRow{
		ID: c.ID, Name: c.Name, SecretHash: c.SecretHash, AuthMethod: c.AuthMethod,
		CreatedAt: dbTime(c.CreatedAt), UpdatedAt: dbTime(c.UpdatedAt), IntrospectionAllowed: c.IntrospectionAllowed,
		AccessTokenSigningAlg: c.AccessTokenSigningAlg, DPoPBoundAccessTokens: c.DPoPBoundAccessTokens,
		MFARequired: c.MFARequired,
	}
	var err error
	if r.GrantTypes, err = jsonList(c.GrantTypes); err != nil {
		return nil, err
	}
	if r.Scopes, err = jsonList(c.Scopes); err != nil {
		return nil, err
	}
	if r.Audience, err = jsonList(c.Audience); err != nil {
		return nil, err
	}
	if r.AllowedCORSOrigins, err = jsonList(c.CORSOrigins); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *clientRow) client() (*clients.Client, error) {
	c := &clients.Client{
		ID: r.ID, Name: r.Name, SecretHash: r.SecretHash, AuthMethod: r.AuthMethod,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), IntrospectionAllowed: r.IntrospectionAllowed,
		AccessTokenSigningAlg: r.AccessTokenSigningAlg, DPoPBoundAccessTokens: r.DPoPBoundAccessTokens,
		MFARequired: r.MFARequired,
	}
	if len(c.SecretHash) == 0 {
		c.SecretHash = nil
	}
	var err error
	if c.GrantTypes, err = parseList(r.GrantTypes); err != nil {
		return nil, fmt.Errorf("decode grant types of client %s: %w", r.ID, err)
	}
	if c.Scopes, err = parseList(r.Scopes); err != nil {
		return nil, fmt.Errorf("decode scopes of client %s: %w", r.ID, err)
	}
	if c.Audience, err = parseList(r.Audience); err != nil {
		return nil, fmt.Errorf("decode audience of client %s: %w", r.ID, err)
	}
	if c.CORSOrigins, err = parseList(r.AllowedCORSOrigins); err != nil {
		return nil, fmt.Errorf("decode allowed CORS origins of client %s: %w", r.ID, err)
	}
	return c, nil
}

// CreateClient implements clients.Store. A zero CreatedAt or UpdatedAt
// is set to the current time (and written back to c). It fails with an
// error matching ErrAlreadyExists when the ID is taken.
func (s *Store) CreateClient(ctx context.Context, c *clients.Client) error {
	now := s.now().UTC()
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = c.CreatedAt
	}
	row, err := toClientRow(c)
	if err != nil {
		return fmt.Errorf("storage: create client: %w", err)
	}
	if err := s.write(ctx, func(db *gorm.DB) error { return db.Create(row).Error }); err != nil {
		return s.wrapf(err, "storage: create client %s", c.ID)
	}
	return nil
}

func findClient(tx *gorm.DB, id string) (*clients.Client, error) {
	var row clientRow
	if err := tx.Where("id = ?", id).Take(&row).Error; err != nil {
		return nil, err
	}
	if row.ID != id {
		// MySQL's PAD SPACE collations match "id " to "id"; a client ID
		// matches byte for byte on every backend.
		return nil, gorm.ErrRecordNotFound
	}
	return row.client()
}

// FindClient implements clients.Store: the client with the given ID or
// an error matching ErrNotFound.
func (s *Store) FindClient(ctx context.Context, id string) (*clients.Client, error) {
	c, err := findClient(s.db(ctx), id)
	if err != nil {
		return nil, s.wrapf(err, "storage: find client %s", id)
	}
	return c, nil
}

// findFositeClient is findClient for fosite: the client as oauth.Client,
// the type of every client GetClient returns and every stored request
// carries.
func findFositeClient(tx *gorm.DB, id string) (*oauth.Client, error) {
	c, err := findClient(tx, id)
	if err != nil {
		return nil, err
	}
	return &oauth.Client{Client: c}, nil
}

// GetClient implements fosite.ClientManager: the *oauth.Client with the
// given ID, or fosite.ErrNotFound.
func (s *Store) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := findFositeClient(s.reader(ctx), id)
	if err != nil {
		return nil, s.wrapFosite(err, "storage: get client %s", id)
	}
	return c, nil
}

// ClientAssertionJWTValid implements fosite.ClientManager. Portcullis does
// not support private_key_jwt client authentication, so there is nothing
// to replay and every JTI is valid.
func (s *Store) ClientAssertionJWTValid(context.Context, string) error { return nil }

// SetClientAssertionJWT implements fosite.ClientManager as a no-op; see
// ClientAssertionJWTValid.
func (s *Store) SetClientAssertionJWT(context.Context, string, time.Time) error { return nil }

// ListClients implements clients.Store: every client ordered by
// creation time, then ID.
func (s *Store) ListClients(ctx context.Context) ([]*clients.Client, error) {
	var rows []clientRow
	if err := s.db(ctx).Order("created_at, id").Find(&rows).Error; err != nil {
		return nil, s.wrapf(err, "storage: list clients")
	}
	return clientsOf(rows)
}

// clientsOf decodes rows in order.
func clientsOf(rows []clientRow) ([]*clients.Client, error) {
	out := make([]*clients.Client, 0, len(rows))
	for i := range rows {
		c, err := rows[i].client()
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// UpdateClient implements clients.Store. It reads the client with
// SELECT … FOR UPDATE, calls update and writes every field but the ID back
// in the same transaction. An error from update is returned unchanged and
// nothing is written.
func (s *Store) UpdateClient(ctx context.Context, id string, update func(*clients.Client) error) (*clients.Client, error) {
	var (
		out       *clients.Client
		updateErr error
	)
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		c, err := findClient(tx.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate}), id)
		if err != nil {
			return err
		}
		if updateErr = update(c); updateErr != nil {
			return updateErr
		}
		c.ID = id
		next, err := toClientRow(c)
		if err != nil {
			return err
		}
		if err := tx.Model(&clientRow{}).Where("id = ?", id).Updates(map[string]any{
			"name":        next.Name,
			"secret_hash": next.SecretHash,
			"auth_method": next.AuthMethod,
			"grant_types": next.GrantTypes,
			"scopes":      next.Scopes,
			"audience":    next.Audience,
			"created_at":  next.CreatedAt,
			"updated_at":  next.UpdatedAt,

			"introspection_allowed":    next.IntrospectionAllowed,
			"access_token_signing_alg": next.AccessTokenSigningAlg,
			"allowed_cors_origins":     next.AllowedCORSOrigins,
			"dpop_bound_access_tokens": next.DPoPBoundAccessTokens,
			"mfa_required":             next.MFARequired,
		}).Error; err != nil {
			return err
		}
		out, err = next.client()
		return err
	})
	if updateErr != nil && errors.Is(err, updateErr) {
		return nil, updateErr
	}
	if err != nil {
		return nil, s.wrapf(err, "storage: update client %s", id)
	}
	return out, nil
}

// DeleteClient implements clients.Store: it removes the client and,
// in the same transaction, every refresh token issued to it (the foreign
// keys cascade too), or returns an error matching ErrNotFound. Its access
// tokens, not stored, stop introspecting as active with it: introspection
// needs the token's client.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		if err := tx.Where("client_id = ?", id).Delete(&refreshTokenRow{}).Error; err != nil {
			return err
		}
		res := tx.Where("id = ?", id).Delete(&clientRow{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return gorm.ErrRecordNotFound
		}
		return nil
	})
	if err != nil {
		return s.wrapf(err, "storage: delete client %s", id)
	}
	return nil
}

// ClientAllowsOrigin implements cors.ClientOrigins: whether the client with
// the given ID lists origin in its allowed CORS origins (exact match). An
// unknown client lists nothing: false and no error.
func (s *Store) ClientAllowsOrigin(ctx context.Context, clientID, origin string) (bool, error) {
	c, err := findClient(s.db(ctx), clientID)
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return false, nil
	}
	if err != nil {
		return false, s.wrapf(err, "storage: find client %s", clientID)
	}
	return slices.Contains(c.CORSOrigins, origin), nil
}

// AnyClientAllowsOrigin implements cors.ClientOrigins: whether at least one
// client lists origin (exact match). The database narrows the candidates
// with LIKE on the JSON list; each is then compared exactly, so neither a
// LIKE wildcard nor a case-insensitive collation can widen the match.
func (s *Store) AnyClientAllowsOrigin(ctx context.Context, origin string) (bool, error) {
	quoted, err := json.Marshal(origin)
	if err != nil {
		return false, fmt.Errorf("storage: encode origin: %w", err)
	}
	// '!' escapes LIKE's wildcards alike on SQLite and MySQL (MySQL's
	// default, a backslash, is also an escape in its string literals).
	pattern := "%" + strings.NewReplacer("!", "!!", "%", "!%", "_", "!_").Replace(string(quoted)) + "%"
	var lists []string
	if err := s.db(ctx).Model(&clientRow{}).Where(`allowed_cors_origins LIKE ? ESCAPE '!'`, pattern).
		Limit(1000).Pluck("allowed_cors_origins", &lists).Error; err != nil {
		return false, s.wrapf(err, "storage: find clients by origin")
	}
	for _, l := range lists {
		origins, err := parseList(l)
		if err != nil {
			continue
		}
		if slices.Contains(origins, origin) {
			return true, nil
		}
	}
	return false, nil
}
