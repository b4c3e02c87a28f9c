package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ory/fosite"
	"gorm.io/gorm"

	"github.com/portcullis-auth/portcullis/oauth"
)

const tableAuthorizationCodes = "oauth2_authorization_codes"

// authCodeRow is the oauth2_authorization_codes table (migration 00019).
// Signature is the hex SHA-256 of fosite's code signature.
type authCodeRow struct {
	Signature   string    `gorm:"column:signature;primaryKey"`
	RequestID   string    `gorm:"column:request_id"`
	ClientID    string    `gorm:"column:client_id"`
	Subject     string    `gorm:"column:subject"`
	Active      bool      `gorm:"column:active"`
	RequestedAt time.Time `gorm:"column:requested_at"`
	ExpiresAt   time.Time `gorm:"column:expires_at"`
	Request     string    `gorm:"column:request"`
}

func (authCodeRow) TableName() string { return tableAuthorizationCodes }

// errCodeExpiry: a code must expire (fosite sets the session's
// authorization-code expiry; the challenge endpoint always does).
var errCodeExpiry = errors.New("authorization code has no expiry")

// CreateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage. The
// stored request keeps its form, and with it the PKCE code_challenge that
// GetPKCERequestSession hands back.
func (s *Store) CreateAuthorizeCodeSession(ctx context.Context, signature string, req fosite.Requester) error {
	clientID, subject, requestedAt, expiresAt, body, err := tokenFields(req, fosite.AuthorizeCode)
	if err == nil && !expiresAt.Valid {
		err = errCodeExpiry
	}
	if err != nil {
		return fmt.Errorf("storage: create authorization code: %w", err)
	}
	// The row outlives the code by the longest access-token lifetime:
	// RevokeSubject finds through it the grants of codes redeemed by a
	// client that gets no refresh token (so has no refresh-token row).
	row := &authCodeRow{
		Signature: hashSignature(signature), RequestID: req.GetID(), ClientID: clientID, Subject: subject,
		Active: true, RequestedAt: requestedAt, ExpiresAt: s.revocationExpiry(expiresAt.Time), Request: body,
	}
	if err := s.write(ctx, func(db *gorm.DB) error { return db.Create(row).Error }); err != nil {
		return s.wrapFosite(err, "storage: create authorization code")
	}
	return nil
}

// GetAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage: the
// stored request with its session decoded into session; for a redeemed
// (or revoked) code that request together with
// fosite.ErrInvalidatedAuthorizeCode, so that fosite revokes what the
// first redemption issued (RFC 6749 §4.1.2); fosite.ErrNotFound for an
// unknown one. Expiry is fosite's to check (the session carries it). It
// reads from the primary: a code redeemed a moment ago on another replica
// must be seen as redeemed.
func (s *Store) GetAuthorizeCodeSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	tx := s.db(ctx)
	var rows []authCodeRow
	if err := tx.Where("signature = ?", hashSignature(signature)).Limit(1).Find(&rows).Error; err != nil {
		return nil, s.wrapFosite(err, "storage: get authorization code")
	}
	if len(rows) == 0 {
		return nil, s.wrapFosite(gorm.ErrRecordNotFound, "storage: get authorization code")
	}
	req, err := requester(rows[0].Request, session, func(id string) (*oauth.Client, error) { return findFositeClient(tx, id) })
	if err != nil {
		return nil, s.wrapFosite(err, "storage: get authorization code")
	}
	if !rows[0].Active {
		return req, fosite.ErrInvalidatedAuthorizeCode
	}
	return req, nil
}

// InvalidateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage
// with one conditional UPDATE: of concurrent redemptions of one code, on
// any replicas, exactly one finds it active; the others get
// fosite.ErrInvalidatedAuthorizeCode and must revoke the winner's grant.
func (s *Store) InvalidateAuthorizeCodeSession(ctx context.Context, signature string) error {
	var n int64
	err := s.write(ctx, func(db *gorm.DB) error {
		res := db.Model(&authCodeRow{}).Where("signature = ? AND active = ?", hashSignature(signature), true).
			Update("active", false)
		n = res.RowsAffected
		return res.Error
	})
	if err != nil {
		return s.wrapFosite(err, "storage: invalidate authorization code")
	}
	if n != 1 {
		return fosite.ErrInvalidatedAuthorizeCode
	}
	return nil
}

// CreatePKCERequestSession implements pkce.PKCERequestStorage: the code's
// own row already holds the code_challenge (CreateAuthorizeCodeSession
// stores the request form), so there is nothing more to store.
func (s *Store) CreatePKCERequestSession(context.Context, string, fosite.Requester) error { return nil }

// GetPKCERequestSession implements pkce.PKCERequestStorage: the code's
// request, redeemed or not (a redeemed code never gets this far: fosite's
// code handler refuses it first).
func (s *Store) GetPKCERequestSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, err := s.GetAuthorizeCodeSession(ctx, signature, session)
	if errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
		return req, nil
	}
	return req, err
}

// DeletePKCERequestSession implements pkce.PKCERequestStorage; the code's
// row goes when it expires (DeleteExpired).
func (s *Store) DeletePKCERequestSession(context.Context, string) error { return nil }
