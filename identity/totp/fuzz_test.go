package totp_test

import (
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/identity/totp"
)

// FuzzVerify feeds Verify arbitrary codes and times (seed corpus in
// testdata/fuzz/FuzzVerify): it never panics, accepts a code exactly when
// it is six ASCII digits equal to the code of a step in the ±1 window
// after lastUsed, and then returns that step.
func FuzzVerify(f *testing.F) {
	for _, seed := range []string{"287082", "12345", "1234567", "12345a", " 123456", "１２３４５６", "", "\x00\x00\x00\x00\x00\x00"} {
		f.Add(seed, int64(59), int64(0))
	}
	f.Fuzz(func(t *testing.T, code string, unix, lastUsed int64) {
		if unix < 0 || unix > 1<<40 {
			return // pquerna/otp computes codes for non-negative steps
		}
		now := time.Unix(unix, 0)
		step, ok := totp.Verify(rfcSecret, code, now, lastUsed)
		cur := totp.StepAt(now)
		want, wantStep := false, int64(0)
		if len(code) == 6 && digits(code) {
			for s := cur - 1; s <= cur+1; s++ {
				if s >= 0 && s > lastUsed && oracle(t, s) == code {
					want, wantStep = true, s
					break
				}
			}
		}
		if ok != want || step != wantStep {
			t.Fatalf("Verify(%q, %d, %d) = %d, %v; want %d, %v", code, unix, lastUsed, step, ok, wantStep, want)
		}
	})
}

func digits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func oracle(t *testing.T, step int64) string {
	return code(t, rfcSecret, time.Unix(step*30, 0))
}
