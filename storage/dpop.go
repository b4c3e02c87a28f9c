package storage

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
)

const tableDPoPProofs = "dpop_proofs"

// dpopProofRow is the dpop_proofs table (migration 00013): one DPoP proof
// accepted, remembered until it can no longer be accepted anyway.
type dpopProofRow struct {
	ID        string    `gorm:"column:id;primaryKey"`
	ExpiresAt time.Time `gorm:"column:expires_at"`
}

func (dpopProofRow) TableName() string { return tableDPoPProofs }

// proofIDLen is the length of a proof ID: a SHA-256 digest in unpadded
// base64url.
const proofIDLen = 43

// errProofID is AddProof's answer to an ID that is not proofIDLen
// base64url characters.
var errProofID = errors.New("storage: add DPoP proof: the proof ID is not 43 base64url characters")

// validProofID reports whether id is proofIDLen characters of the
// base64url alphabet (RFC 4648 §5), which the dpop_proofs column holds
// exactly on every backend (MySQL's is CHAR(43) ASCII).
func validProofID(id string) bool {
	if len(id) != proofIDLen {
		return false
	}
	for i := range len(id) {
		switch c := id[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// AddProof implements dpop.ReplayCache (RFC 9449 §11.1) in the database
// that every replica shares: it records the proof id until expires and
// reports true, or reports false, without error, when id is recorded
// already (a replay, also one whose expires has passed but that
// DeleteExpired has not removed yet). Of concurrent calls with one id,
// on any replicas and through any nodes of a Galera cluster, exactly one
// reports true: the primary key decides, and a Galera certification
// conflict is retried until the retry finds the winner's row. IDs are
// compared byte for byte (base64url is case-sensitive).
//
// id must be 43 base64url characters (the SHA-256 digest package dpop
// derives); any other is refused with an error. An unreachable database,
// or a conflict that outlasted its retries, yields an error matching
// apperr.ErrUnavailable; the proof must then be refused. Inside a
// transaction carried by ctx (BeginTX) the record is part of it, and is
// forgotten if it rolls back: call it outside one.
func (s *Store) AddProof(ctx context.Context, id string, expires time.Time) (bool, error) {
	if !validProofID(id) {
		return false, errProofID
	}
	row := &dpopProofRow{ID: id, ExpiresAt: dbTime(expires)}
	err := s.write(ctx, func(db *gorm.DB) error { return db.Create(row).Error })
	switch {
	case err == nil:
		return true, nil
	case classify(err) == classDuplicate:
		return false, nil
	}
	return false, s.wrapf(err, "storage: add DPoP proof")
}
