package totp_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-auth/portcullis/identity/totp"
	"github.com/portcullis-auth/portcullis/internal/seal"
)

// memResealStore is a totp.ResealStore in memory that counts its pages
// and can make a factor vanish between listing and re-sealing.
type memResealStore struct {
	secrets map[string]totp.SealedSecret
	pages   int
	vanish  string // factor deleted right after the first page is listed
}

func (m *memResealStore) SealedFactorSecrets(_ context.Context, notUnder, after string, limit int) ([]totp.SealedSecret, error) {
	m.pages++
	var out []totp.SealedSecret
	for _, s := range m.secrets {
		if s.WrapKeyID != notUnder && s.FactorID > after {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b totp.SealedSecret) int { return strings.Compare(a.FactorID, b.FactorID) })
	if len(out) > limit {
		out = out[:limit]
	}
	if m.pages == 1 && m.vanish != "" {
		delete(m.secrets, m.vanish)
	}
	return out, nil
}

func (m *memResealStore) ResealFactorSecret(_ context.Context, id, oldWrapID, newWrapID string, sealed []byte) (bool, error) {
	s, ok := m.secrets[id]
	if !ok || s.WrapKeyID != oldWrapID {
		return false, nil
	}
	m.secrets[id] = totp.SealedSecret{FactorID: id, WrapKeyID: newWrapID, Sealed: sealed}
	return true, nil
}

// TestRewrap re-seals more secrets than fit in one page, all but one
// (deleted meanwhile) and those already under the new key: afterwards each
// opens under the new key alone, to its own secret.
func TestRewrap(t *testing.T) {
	keyA, keyB := bytes.Repeat([]byte{1}, seal.KeySize), bytes.Repeat([]byte{2}, seal.KeySize)
	onlyA, _ := seal.New(keyA)
	onlyB, _ := seal.New(keyB)
	rotated, err := seal.New(keyB, keyA)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1203 // three pages
	m := &memResealStore{secrets: map[string]totp.SealedSecret{}}
	for i := range n {
		id := fmt.Sprintf("factor-%04d", i)
		s := onlyA
		if i%100 == 0 {
			s = onlyB // already under the new key
		}
		wrapID, sealed, err := totp.SealSecret(s, id, "SECRET"+id)
		if err != nil {
			t.Fatal(err)
		}
		m.secrets[id] = totp.SealedSecret{FactorID: id, WrapKeyID: wrapID, Sealed: sealed}
	}
	m.vanish = "factor-0001"

	resealed, skipped, err := totp.Rewrap(t.Context(), m, rotated, totp.RewrapOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := n - 13 - 1; resealed != want || skipped != 1 {
		t.Errorf("Rewrap = %d re-sealed, %d skipped; want %d and 1", resealed, skipped, want)
	}
	if m.pages != 3 {
		t.Errorf("Rewrap read %d pages, want 3", m.pages)
	}
	for id, s := range m.secrets {
		got, err := totp.OpenSecret(onlyB, id, s.WrapKeyID, s.Sealed)
		if err != nil || got != "SECRET"+id {
			t.Fatalf("%s after Rewrap opens under the new key to %q, %v", id, got, err)
		}
	}

	// Nothing left to do.
	if r, s, err := totp.Rewrap(t.Context(), m, rotated, totp.RewrapOptions{}); r != 0 || s != 0 || err != nil {
		t.Errorf("second Rewrap = %d, %d, %v; want nothing", r, s, err)
	}
}

// TestRewrapWrongKey: a secret that does not open stops Rewrap with
// seal.ErrWrongKey, and it is left as it was.
func TestRewrapWrongKey(t *testing.T) {
	keyA, keyB := bytes.Repeat([]byte{1}, seal.KeySize), bytes.Repeat([]byte{2}, seal.KeySize)
	onlyA, _ := seal.New(keyA)
	onlyB, _ := seal.New(keyB)
	wrapID, sealed, err := totp.SealSecret(onlyA, "f1", "SECRET")
	if err != nil {
		t.Fatal(err)
	}
	m := &memResealStore{secrets: map[string]totp.SealedSecret{"f1": {FactorID: "f1", WrapKeyID: wrapID, Sealed: sealed}}}
	resealed, skipped, err := totp.Rewrap(t.Context(), m, onlyB, totp.RewrapOptions{})
	if !errors.Is(err, seal.ErrWrongKey) || resealed != 0 || skipped != 0 {
		t.Fatalf("Rewrap without the old key = %d, %d, %v; want ErrWrongKey", resealed, skipped, err)
	}
	if m.secrets["f1"].WrapKeyID != wrapID || !bytes.Equal(m.secrets["f1"].Sealed, sealed) {
		t.Errorf("the secret changed: %+v", m.secrets["f1"])
	}
}

// InTx runs fn as a transaction of m: an error restores the secrets as
// they were before it.
func (m *memResealStore) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	saved := maps.Clone(m.secrets)
	if err := fn(ctx); err != nil {
		m.secrets = saved
		return err
	}
	return nil
}

// batchRecorder counts its calls, failing from the call numbered failAt
// on (0: never).
type batchRecorder struct {
	calls  int
	failAt int
}

func (r *batchRecorder) record(context.Context) error {
	if r.failAt > 0 && r.calls+1 >= r.failAt {
		return errors.New("audit table unavailable")
	}
	r.calls++
	return nil
}

// TestRewrapAuditedPerBatch: each batch of re-sealed secrets commits with
// one call of Record (its audit event), in its transaction; a batch whose
// Record fails is left as it was (the batches before it stay re-sealed)
// and Rewrap fails.
func TestRewrapAuditedPerBatch(t *testing.T) {
	keyA, keyB := bytes.Repeat([]byte{1}, seal.KeySize), bytes.Repeat([]byte{2}, seal.KeySize)
	onlyA, _ := seal.New(keyA)
	rotated, err := seal.New(keyB, keyA)
	if err != nil {
		t.Fatal(err)
	}
	fill := func() *memResealStore {
		m := &memResealStore{secrets: map[string]totp.SealedSecret{}}
		for i := range 1203 { // three batches
			id := fmt.Sprintf("factor-%04d", i)
			wrapID, sealed, err := totp.SealSecret(onlyA, id, "SECRET"+id)
			if err != nil {
				t.Fatal(err)
			}
			m.secrets[id] = totp.SealedSecret{FactorID: id, WrapKeyID: wrapID, Sealed: sealed}
		}
		return m
	}
	underB := func(m *memResealStore) int {
		n := 0
		for _, s := range m.secrets {
			if s.WrapKeyID == rotated.PrimaryID() {
				n++
			}
		}
		return n
	}

	m, rec := fill(), &batchRecorder{}
	resealed, _, err := totp.Rewrap(t.Context(), m, rotated, totp.RewrapOptions{Record: rec.record, Tx: m})
	if err != nil || resealed != 1203 {
		t.Fatalf("Rewrap = %d, %v", resealed, err)
	}
	if rec.calls != 3 {
		t.Fatalf("%d events for three batches", rec.calls)
	}

	m, rec = fill(), &batchRecorder{failAt: 2}
	resealed, _, err = totp.Rewrap(t.Context(), m, rotated, totp.RewrapOptions{Record: rec.record, Tx: m})
	if err == nil || resealed != 500 || underB(m) != 500 || rec.calls != 1 {
		t.Fatalf("Rewrap failing on the second batch's event = %d, %v; %d under the new key, %d events", resealed, err, underB(m), rec.calls)
	}
}
