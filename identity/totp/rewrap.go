package totp

import (
	"context"
	"fmt"

	"github.com/portcullis-auth/portcullis/internal/seal"
)

// SealedSecret is the sealed TOTP secret of one factor, as stored: what
// Rewrap reads and re-seals.
type SealedSecret struct {
	// FactorID is the ID of the factor, to which the secret is bound.
	FactorID string
	// WrapKeyID names the secrets key that sealed Sealed.
	WrapKeyID string
	// Sealed is the sealed secret (SealSecret).
	Sealed []byte
}

// ResealStore is what Rewrap needs of the store of second factors
// (implemented by package storage). Errors as for identity.FactorStore.
type ResealStore interface {
	// SealedFactorSecrets returns up to limit sealed secrets of TOTP
	// factors, of every user and confirmed or not, that are not sealed
	// under the secrets key notUnder and whose factor ID sorts after
	// after (in the store's order; "" for the first page), ordered by
	// factor ID. Fewer than limit means there are no more.
	SealedFactorSecrets(ctx context.Context, notUnder, after string, limit int) ([]SealedSecret, error)
	// ResealFactorSecret replaces the sealed secret of factor factorID
	// with sealed, under the secrets key newWrapID, and reports true, only
	// if the factor's secret is still sealed under oldWrapID (one
	// conditional update). It reports false, without error and writing
	// nothing, otherwise: the factor was deleted or re-sealed meanwhile.
	ResealFactorSecret(ctx context.Context, factorID, oldWrapID, newWrapID string, sealed []byte) (bool, error)
}

// rewrapBatch is how many secrets Rewrap reads, and re-seals in one
// transaction, at a time.
const rewrapBatch = 500

// RewrapOptions configure Rewrap. Zero values record nothing and re-seal
// each secret on its own.
type RewrapOptions struct {
	// Record, when set, is called in the transaction of each batch that
	// re-sealed at least one secret, after its re-seals (cmd/portcullis
	// writes the batch's audit event there); its error rolls the batch
	// back and stops Rewrap.
	Record func(ctx context.Context) error
	// Tx runs each batch's re-seals and Record in one transaction
	// (storage.Store.InTx), backed by the database of the store.
	Tx interface {
		InTx(ctx context.Context, fn func(ctx context.Context) error) error
	}
}

// Rewrap re-seals the secret of every TOTP factor, confirmed or not, that
// is not sealed under the sealer's primary secrets key: it opens it with
// the older key the sealer was also given and seals it again under the
// primary, one conditional update per factor (store.ResealFactorSecret),
// so that the older key can then be dropped. The secrets are re-sealed in
// batches of up to rewrapBatch, each batch in one transaction with its
// audit event (opts): a whole table in one transaction would hold its
// locks for minutes, and a batch whose event cannot be written is rolled
// back, so nothing is re-sealed without its event. It returns how many secrets
// it re-sealed, and how many it skipped because they changed meanwhile
// (the factor was deleted, or re-sealed by another Rewrap). It stops at
// the first secret that does not open, with an error matching
// seal.ErrWrongKey, after re-sealing those before it; running it again
// resumes.
//
// A factor created under an older key after Rewrap has passed its ID is
// missed, so the servers must seal under the new primary key before
// Rewrap runs.
func Rewrap(ctx context.Context, store ResealStore, sealer *seal.Sealer, opts RewrapOptions) (resealed, skipped int, err error) {
	primary := sealer.PrimaryID()
	after := ""
	for {
		page, err := store.SealedFactorSecrets(ctx, primary, after, rewrapBatch)
		if err != nil {
			return resealed, skipped, fmt.Errorf("totp: load sealed secrets: %w", err)
		}
		// Open and seal outside the transaction: it holds only the
		// conditional updates and the event.
		type resealing struct {
			old    SealedSecret
			wrapID string
			sealed []byte
		}
		batch := make([]resealing, 0, len(page))
		var openErr error
		for _, s := range page {
			secret, err := OpenSecret(sealer, s.FactorID, s.WrapKeyID, s.Sealed)
			if err != nil {
				openErr = err // re-seal those before it, then stop
				break
			}
			wrapID, sealed, err := SealSecret(sealer, s.FactorID, secret)
			if err != nil {
				return resealed, skipped, err
			}
			batch = append(batch, resealing{old: s, wrapID: wrapID, sealed: sealed})
		}
		var n, k int // of this batch; set again if the transaction runs again
		run := func(ctx context.Context) error {
			n, k = 0, 0
			for _, b := range batch {
				ok, err := store.ResealFactorSecret(ctx, b.old.FactorID, b.old.WrapKeyID, b.wrapID, b.sealed)
				if err != nil {
					return fmt.Errorf("totp: reseal secret of factor %s: %w", b.old.FactorID, err)
				}
				if ok {
					n++
				} else {
					k++
				}
			}
			if n == 0 || opts.Record == nil {
				return nil
			}
			if err := opts.Record(ctx); err != nil {
				return fmt.Errorf("totp: record re-seal: %w", err)
			}
			return nil
		}
		if opts.Tx != nil {
			err = opts.Tx.InTx(ctx, run)
		} else {
			err = run(ctx)
		}
		if err != nil {
			return resealed, skipped, err
		}
		resealed, skipped = resealed+n, skipped+k
		if openErr != nil {
			return resealed, skipped, openErr
		}
		if len(page) < rewrapBatch {
			return resealed, skipped, nil
		}
		after = page[len(page)-1].FactorID
	}
}
