package storage

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/ory/fosite"
	"gorm.io/gorm"

	"github.com/portcullis-auth/portcullis/oauth"
)

const tableRefreshTokens = "oauth2_refresh_tokens"

// refreshTokenRow is the oauth2_refresh_tokens table. Signature and
// AccessSignature are hex SHA-256 digests of fosite's signatures.
type refreshTokenRow struct {
	Signature       string       `gorm:"column:signature;primaryKey"`
	AccessSignature string       `gorm:"column:access_signature"`
	RequestID       string       `gorm:"column:request_id"`
	ClientID        string       `gorm:"column:client_id"`
	Subject         string       `gorm:"column:subject"`
	Active          bool         `gorm:"column:active"`
	RequestedAt     time.Time    `gorm:"column:requested_at"`
	ExpiresAt       sql.NullTime `gorm:"column:expires_at"`
	RotatedAt       sql.NullTime `gorm:"column:rotated_at"`
	Request         string       `gorm:"column:request"`
}

func (refreshTokenRow) TableName() string { return tableRefreshTokens }

// storedRequest is the JSON form of a sanitized fosite request.
type storedRequest struct {
	ID                string          `json:"id"`
	RequestedAt       time.Time       `json:"requested_at"`
	ClientID          string          `json:"client_id"`
	RequestedScope    []string        `json:"requested_scope,omitempty"`
	GrantedScope      []string        `json:"granted_scope,omitempty"`
	RequestedAudience []string        `json:"requested_audience,omitempty"`
	GrantedAudience   []string        `json:"granted_audience,omitempty"`
	Form              url.Values      `json:"form,omitempty"`
	Session           json.RawMessage `json:"session,omitempty"`
}

// hashSignature keys token rows: fixed length, and a leaked table does not
// hand out the signatures.
func hashSignature(sig string) string {
	sum := sha256.Sum256([]byte(sig))
	return hex.EncodeToString(sum[:])
}

// tokenFields extracts what both token tables store about a request.
func tokenFields(req fosite.Requester, tokenType fosite.TokenType) (clientID, subject string, requestedAt time.Time, expiresAt sql.NullTime, body string, err error) {
	if req.GetClient() == nil {
		return "", "", time.Time{}, sql.NullTime{}, "", errors.New("request has no client")
	}
	sr := storedRequest{
		ID:                req.GetID(),
		RequestedAt:       req.GetRequestedAt().UTC(),
		ClientID:          req.GetClient().GetID(),
		RequestedScope:    req.GetRequestedScopes(),
		GrantedScope:      req.GetGrantedScopes(),
		RequestedAudience: req.GetRequestedAudience(),
		GrantedAudience:   req.GetGrantedAudience(),
		Form:              req.GetRequestForm(),
	}
	if sess := req.GetSession(); sess != nil {
		if sr.Session, err = json.Marshal(sess); err != nil {
			return "", "", time.Time{}, sql.NullTime{}, "", fmt.Errorf("encode session: %w", err)
		}
		subject = sess.GetSubject()
		expiresAt = nullTime(sess.GetExpiresAt(tokenType))
	}
	b, err := json.Marshal(sr)
	if err != nil {
		return "", "", time.Time{}, sql.NullTime{}, "", fmt.Errorf("encode request: %w", err)
	}
	return sr.ClientID, subject, dbTime(req.GetRequestedAt()), expiresAt, string(b), nil
}

// requester rebuilds a *fosite.Request from its stored JSON, decoding the
// session into session (unless nil) and loading the client with client,
// which is given the stored request's client ID and must return that
// client or an error.
func requester(body string, session fosite.Session, client func(id string) (*oauth.Client, error)) (*fosite.Request, error) {
	var sr storedRequest
	if err := json.Unmarshal([]byte(body), &sr); err != nil {
		return nil, fmt.Errorf("decode stored request: %w", err)
	}
	c, err := client(sr.ClientID)
	if err != nil {
		return nil, err
	}
	if session != nil && len(sr.Session) > 0 {
		if err := json.Unmarshal(sr.Session, session); err != nil {
			return nil, fmt.Errorf("decode stored session: %w", err)
		}
	}
	form := sr.Form
	if form == nil {
		form = url.Values{}
	}
	return &fosite.Request{
		ID:                sr.ID,
		RequestedAt:       sr.RequestedAt,
		Client:            c,
		RequestedScope:    fosite.Arguments(nonNil(sr.RequestedScope)),
		GrantedScope:      fosite.Arguments(nonNil(sr.GrantedScope)),
		RequestedAudience: fosite.Arguments(nonNil(sr.RequestedAudience)),
		GrantedAudience:   fosite.Arguments(nonNil(sr.GrantedAudience)),
		Form:              form,
		Session:           session,
	}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// CreateRefreshTokenSession implements oauth2.RefreshTokenStorage. The
// token is active and expires at the session's refresh-token expiry (never,
// when that is zero).
func (s *Store) CreateRefreshTokenSession(ctx context.Context, signature, accessSignature string, req fosite.Requester) error {
	clientID, subject, requestedAt, expiresAt, body, err := tokenFields(req, fosite.RefreshToken)
	if err != nil {
		return fmt.Errorf("storage: create refresh token: %w", err)
	}
	row := &refreshTokenRow{
		Signature: hashSignature(signature), RequestID: req.GetID(), ClientID: clientID, Subject: subject,
		Active: true, RequestedAt: requestedAt, ExpiresAt: expiresAt, Request: body,
	}
	if accessSignature != "" {
		row.AccessSignature = hashSignature(accessSignature)
	}
	if err := s.db(ctx).Create(row).Error; err != nil {
		return s.wrapFosite(err, "storage: create refresh token")
	}
	return nil
}

// GetRefreshTokenSession implements oauth2.RefreshTokenStorage. It returns
// the stored request with its session decoded into session (which may be
// nil); for a rotated or revoked token it returns that request together
// with fosite.ErrInactiveToken, which fosite's reuse detection needs; for
// an unknown one fosite.ErrNotFound.
//
// A token rotated less than Options.RefreshReuseGrace ago whose successor
// is still unused is reported active: the request is a concurrent duplicate
// (a retry after a timeout, two tabs), and RotateRefreshToken will refuse it
// without revoking the grant the first request just renewed. Once the
// successor has been used (or the grant revoked), presenting the token is a
// replay and revokes the grant however recent it is. No token is ever
// issued twice.
func (s *Store) GetRefreshTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	tx := s.reader(ctx)
	var row refreshWithClient
	res := tx.Raw(s.refreshSelect, hashSignature(signature)).Scan(&row)
	if res.Error == nil && res.RowsAffected == 0 {
		res.Error = gorm.ErrRecordNotFound
	}
	if res.Error != nil {
		return nil, s.wrapFosite(res.Error, "storage: get refresh token")
	}
	req, err := requester(row.Token.Request, session, func(id string) (*oauth.Client, error) {
		if row.Client.ID != id || id == "" {
			// The join found no client, or not byte for byte this one
			// (MySQL's PAD SPACE collations): look it up as requester does.
			return findFositeClient(tx, id)
		}
		c, err := row.Client.client()
		if err != nil {
			return nil, err
		}
		return &oauth.Client{Client: c}, nil
	})
	if err != nil {
		return nil, s.wrapFosite(err, "storage: get refresh token")
	}
	if !row.Token.Active {
		if row.Token.RotatedAt.Valid && s.now().Sub(row.Token.RotatedAt.Time) < s.reuseGrace {
			dup, err := s.isDuplicate(tx, &row.Token)
			if err != nil {
				return nil, s.wrapFosite(err, "storage: get refresh token")
			}
			if dup {
				return req, nil
			}
		}
		return req, fosite.ErrInactiveToken
	}
	return req, nil
}

// refreshWithClient is a refresh token row with the row of its client
// (zero when there is none), read in one statement by
// GetRefreshTokenSession: the query refreshSelectSQL builds.
type refreshWithClient struct {
	Token  refreshTokenRow `gorm:"embedded"`
	Client clientRow       `gorm:"embedded;embeddedPrefix:client__"`
}

// refreshSelectSQL returns the SELECT of a refresh token by hashed
// signature joined with its client's row, every column of both named
// after refreshWithClient's fields.
func refreshSelectSQL(db *gorm.DB) (string, error) {
	cols := func(model any, table, prefix string) ([]string, error) {
		stmt := &gorm.Statement{DB: db}
		if err := stmt.Parse(model); err != nil {
			return nil, err
		}
		out := make([]string, 0, len(stmt.Schema.DBNames))
		for _, name := range stmt.Schema.DBNames {
			out = append(out, table+"."+name+" AS "+prefix+name)
		}
		return out, nil
	}
	tok, err := cols(&refreshTokenRow{}, "t", "")
	if err != nil {
		return "", err
	}
	cli, err := cols(&clientRow{}, "c", "client__")
	if err != nil {
		return "", err
	}
	return "SELECT " + strings.Join(append(tok, cli...), ", ") +
		" FROM " + tableRefreshTokens + " t LEFT JOIN clients c ON c.id = t.client_id WHERE t.signature = ?", nil
}

// isDuplicate reports whether the rotated token row may still be treated as
// a concurrent duplicate: it must be the family's most recently rotated
// token, and its successor must still be active (unused). A token whose
// successor has been used (rotated) or revoked is a replay, whatever the
// grace says. One statement reads both counts, from one snapshot.
func (s *Store) isDuplicate(tx *gorm.DB, row *refreshTokenRow) (bool, error) {
	var counts struct {
		Later  int64 `gorm:"column:later"`
		Active int64 `gorm:"column:active"`
	}
	if err := tx.Raw("SELECT COALESCE(SUM(CASE WHEN rotated_at > ? THEN 1 ELSE 0 END), 0) AS later, "+
		"COALESCE(SUM(CASE WHEN active = ? THEN 1 ELSE 0 END), 0) AS active "+
		"FROM "+tableRefreshTokens+" WHERE request_id = ?",
		row.RotatedAt.Time, true, row.RequestID).Scan(&counts).Error; err != nil {
		return false, err
	}
	return counts.Later == 0 && counts.Active > 0, nil
}

// DeleteRefreshTokenSession implements oauth2.RefreshTokenStorage.
// Deleting an unknown token is not an error.
func (s *Store) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	if err := s.write(ctx, func(db *gorm.DB) error {
		return db.Where("signature = ?", hashSignature(signature)).Delete(&refreshTokenRow{}).Error
	}); err != nil {
		return s.wrapFosite(err, "storage: delete refresh token")
	}
	return nil
}

// RotateRefreshToken implements oauth2.RefreshTokenStorage. It marks the
// refresh token inactive with a conditional UPDATE … WHERE active, so that
// of concurrent rotations of one token exactly one succeeds and the others
// get fosite.ErrInactiveToken. Access tokens are not stored: the one
// issued with the old refresh token stays valid until its exp, as in
// Keycloak, Dex and Hydra's graceful rotation (RFC 9700 §4.14.2 leaves
// this open); revoking the grant ends it. Call it inside BeginTX/Commit,
// as fosite does, so that the new refresh token is written atomically with
// the rotation.
func (s *Store) RotateRefreshToken(ctx context.Context, requestID, refreshSignature string) error {
	tx := s.db(ctx)
	if err := s.lockRefreshOwner(tx, hashSignature(refreshSignature)); err != nil {
		return s.wrapFosite(err, "storage: rotate refresh token: lock its user")
	}
	res := tx.Model(&refreshTokenRow{}).
		Where("signature = ? AND request_id = ? AND active = ?", hashSignature(refreshSignature), requestID, true).
		Updates(map[string]any{"active": false, "rotated_at": dbTime(s.now())})
	if res.Error != nil {
		return s.wrapFosite(res.Error, "storage: rotate refresh token")
	}
	if res.RowsAffected == 0 {
		return fosite.ErrInactiveToken
	}
	return nil
}

// lockRefreshOwner takes a shared lock on the row of the user the refresh
// token (by hashed signature) was issued to, on MySQL; SQLite's one
// connection already serialises transactions. A password change,
// disabling or deletion locks that row first (UpdateUser, DeleteUser) and
// then revokes the user's grants (RevokeSubject) in the same transaction,
// so it either commits before the rotation, which then finds the token
// inactive, or waits for the rotation to commit and revokes the tokens it
// wrote. Without the lock, RevokeSubject's UPDATE skips the rotation's
// uncommitted new row (READ COMMITTED's semi-consistent read) and the new
// refresh token outlives the password change. A token of no user (no row)
// locks nothing.
func (s *Store) lockRefreshOwner(tx *gorm.DB, signature string) error {
	if s.driver != DriverMySQL {
		return nil
	}
	// One statement: InnoDB locks the rows of the outer SELECT only, not
	// the token row the subquery reads (a shared lock there would deadlock
	// two rotations of one token when both then UPDATE it).
	var ids []string
	return tx.Raw("SELECT id FROM users WHERE id = (SELECT subject FROM "+tableRefreshTokens+
		" WHERE signature = ?) LOCK IN SHARE MODE", signature).Scan(&ids).Error
}

// RevokeRefreshToken implements oauth2.TokenRevocationStorage: it marks
// every refresh token of the family requestID inactive (kept for reuse
// detection until DeleteExpired) and deletes the grant's step-up
// auth_session. An unknown family is not an error.
func (s *Store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	if err := s.write(ctx, func(db *gorm.DB) error {
		if err := db.Model(&refreshTokenRow{}).Where("request_id = ?", requestID).Update("active", false).Error; err != nil {
			return err
		}
		// The grant's step-up auth_session (the challenge endpoint's)
		// ends with it: revocation, refresh reuse, a code redeemed twice.
		return db.Where("grant_id = ?", requestID).Delete(&authSessionRow{}).Error
	}); err != nil {
		return s.wrapFosite(err, "storage: revoke refresh tokens")
	}
	return nil
}
