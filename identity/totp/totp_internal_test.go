package totp

import (
	"errors"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/pquerna/otp"
)

// TestRFC6238Vectors checks codeAt against the test vectors of RFC 6238
// Appendix B: 8 digits, with the seeds as corrected by errata 2866 (the
// ASCII "1234567890" repeated to the hash's size: 20 bytes for SHA-1, 32
// for SHA-256, 64 for SHA-512).
func TestRFC6238Vectors(t *testing.T) {
	seed := func(n int) []byte { return []byte(strings.Repeat("1234567890", 7)[:n]) }
	algs := []struct {
		name string
		alg  otp.Algorithm
		key  []byte
	}{
		{"SHA1", otp.AlgorithmSHA1, seed(20)},
		{"SHA256", otp.AlgorithmSHA256, seed(32)},
		{"SHA512", otp.AlgorithmSHA512, seed(64)},
	}
	vectors := []struct {
		unix  int64
		codes [3]string // SHA1, SHA256, SHA512
	}{
		{59, [3]string{"94287082", "46119246", "90693936"}},
		{1111111109, [3]string{"07081804", "68084774", "25091201"}},
		{1111111111, [3]string{"14050471", "67062674", "99943326"}},
		{1234567890, [3]string{"89005924", "91819424", "93441116"}},
		{2000000000, [3]string{"69279037", "90698825", "38618901"}},
		{20000000000, [3]string{"65353130", "77737706", "47863826"}},
	}
	for _, v := range vectors {
		for i, a := range algs {
			tm := time.Unix(v.unix, 0).UTC()
			if got := codeAt(a.key, tm, 8, a.alg); got != v.codes[i] {
				t.Errorf("%s at %d (%s): code %q, want %q", a.name, v.unix, tm.Format(time.DateTime), got, v.codes[i])
			}
		}
	}
}

func TestStepAt(t *testing.T) {
	for _, tc := range []struct {
		unix, step int64
	}{{0, 0}, {29, 0}, {30, 1}, {59, 1}, {1111111109, 37037036}, {-1, -1}, {-30, -1}, {-31, -2}} {
		if got := StepAt(time.Unix(tc.unix, 0)); got != tc.step {
			t.Errorf("StepAt(%d) = %d, want %d", tc.unix, got, tc.step)
		}
	}
}

func TestGenerateRandomFailure(t *testing.T) {
	broken := errors.New("no entropy")
	if _, err := generate(iotest.ErrReader(broken), "Portcullis", "alice"); !errors.Is(err, broken) {
		t.Errorf("generate with a failing random source: %v, want its error", err)
	}
	if _, _, err := newRecoveryCodes(iotest.ErrReader(broken), 3); !errors.Is(err, broken) {
		t.Errorf("newRecoveryCodes with a failing random source: %v, want its error", err)
	}
}

// TestWellFormed checks the branch-free digit test byte by byte: exactly
// the ten ASCII digits pass.
func TestWellFormed(t *testing.T) {
	for c := range 256 {
		code := "12345" + string([]byte{byte(c)})
		want := 0
		if '0' <= c && c <= '9' {
			want = 1
		}
		if got := wellFormed(code); got != want {
			t.Errorf("wellFormed(%q) = %d, want %d", code, got, want)
		}
	}
}
