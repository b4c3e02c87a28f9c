package identity

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
)

// fastParams returns cheap valid parameters, for tests that are not about
// cost.
func fastParams() Argon2Params {
	return Argon2Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}
}

func TestDefaultArgon2Params(t *testing.T) {
	p := DefaultArgon2Params()
	want := Argon2Params{MemoryKiB: 19456, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}
	if p != want {
		t.Fatalf("DefaultArgon2Params() = %+v, want %+v", p, want)
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("DefaultArgon2Params().Validate() = %v", err)
	}
}

func TestArgon2ParamsValidate(t *testing.T) {
	with := func(f func(*Argon2Params)) Argon2Params {
		p := DefaultArgon2Params()
		f(&p)
		return p
	}
	tests := []struct {
		name    string
		params  Argon2Params
		wantErr bool
	}{
		{"default", DefaultArgon2Params(), false},
		{"minimum", Argon2Params{MemoryKiB: 8, Iterations: 1, Parallelism: 1, SaltLength: 8, KeyLength: 16}, false},
		{"maximum memory", with(func(p *Argon2Params) { p.MemoryKiB = 1 << 20; p.Iterations = 4 }), false},
		{"maximum iterations", with(func(p *Argon2Params) { p.Iterations = 100 }), false},
		{"maximum lanes", with(func(p *Argon2Params) { p.Parallelism = 255; p.MemoryKiB = 8 * 255 }), false},
		{"maximum lengths", with(func(p *Argon2Params) { p.SaltLength = 64; p.KeyLength = 128 }), false},
		{"zero value", Argon2Params{}, true},
		{"zero parallelism", with(func(p *Argon2Params) { p.Parallelism = 0 }), true},
		{"memory below 8 KiB per lane", with(func(p *Argon2Params) { p.Parallelism = 4; p.MemoryKiB = 31 }), true},
		{"memory above 1 GiB", with(func(p *Argon2Params) { p.MemoryKiB = 1<<20 + 1; p.Iterations = 1 }), true},
		{"zero iterations", with(func(p *Argon2Params) { p.Iterations = 0 }), true},
		{"iterations above 100", with(func(p *Argon2Params) { p.Iterations = 101 }), true},
		{"work above bound", with(func(p *Argon2Params) { p.MemoryKiB = 1 << 20; p.Iterations = 5 }), true},
		{"salt too short", with(func(p *Argon2Params) { p.SaltLength = 7 }), true},
		{"salt too long", with(func(p *Argon2Params) { p.SaltLength = 65 }), true},
		{"key too short", with(func(p *Argon2Params) { p.KeyLength = 15 }), true},
		{"key too long", with(func(p *Argon2Params) { p.KeyLength = 129 }), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.params.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate(%+v) = %v, want error %v", tt.params, err, tt.wantErr)
			}
		})
	}
}

// TestArgon2ParamsProblems: Problems names every parameter out of range
// (a configuration reports them all at once); Validate is its first.
func TestArgon2ParamsProblems(t *testing.T) {
	tests := []struct {
		params Argon2Params
		want   []string // Param of each problem
	}{
		{DefaultArgon2Params(), nil},
		{Argon2Params{}, []string{"Parallelism", "MemoryKiB", "Iterations", "SaltLength", "KeyLength"}},
		{Argon2Params{MemoryKiB: 2 << 20, Iterations: 2, Parallelism: 1, SaltLength: 8, KeyLength: 200}, []string{"MemoryKiB", "KeyLength"}},
		{Argon2Params{MemoryKiB: 1 << 20, Iterations: 5, Parallelism: 1, SaltLength: 16, KeyLength: 32}, []string{""}},
	}
	for _, tt := range tests {
		problems := tt.params.Problems()
		var got []string
		for _, p := range problems {
			got = append(got, p.Param)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Problems(%+v) = %q, want %q", tt.params, got, tt.want)
		}
		err := tt.params.Validate()
		if len(problems) == 0 {
			if err != nil {
				t.Errorf("Validate(%+v) = %v with no problems", tt.params, err)
			}
			continue
		}
		if pe, ok := errors.AsType[*Argon2ParamError](err); !ok || *pe != *problems[0] {
			t.Errorf("Validate(%+v) = %v, want the first problem %v", tt.params, err, problems[0])
		}
	}
}

func TestHashRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		params   Argon2Params
		password string
	}{
		{"fast", fastParams(), "correct horse battery staple"},
		{"default", DefaultArgon2Params(), "correct horse battery staple"},
		{"two lanes short salt long key", Argon2Params{MemoryKiB: 128, Iterations: 3, Parallelism: 2, SaltLength: 8, KeyLength: 64}, "pässwörd 🔑"},
		{"empty password", fastParams(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewPasswordHasher(tt.params)
			encoded, err := h.Hash(tt.password)
			if err != nil {
				t.Fatalf("Hash: %v", err)
			}
			if !strings.HasPrefix(encoded, "$argon2id$v=19$") {
				t.Errorf("Hash = %q, want $argon2id$v=19$ prefix", encoded)
			}
			params, salt, key, err := ParsePHC(encoded)
			if err != nil {
				t.Fatalf("ParsePHC(%q): %v", encoded, err)
			}
			if params != tt.params {
				t.Errorf("ParsePHC params = %+v, want %+v", params, tt.params)
			}
			if got := encodePHC(params, salt, key); got != encoded {
				t.Errorf("re-encoded = %q, want %q", got, encoded)
			}
			ok, rehash, err := h.Verify(tt.password, encoded)
			if err != nil || !ok || rehash {
				t.Errorf("Verify(right password) = %v, %v, %v; want true, false, nil", ok, rehash, err)
			}
			ok, rehash, err = h.Verify(tt.password+"x", encoded)
			if err != nil || ok || rehash {
				t.Errorf("Verify(wrong password) = %v, %v, %v; want false, false, nil", ok, rehash, err)
			}
		})
	}
}

func TestHashUsesRandForSalt(t *testing.T) {
	seed := bytes.Repeat([]byte{0xA5}, 16)
	h := &PasswordHasher{Params: fastParams(), Rand: bytes.NewReader(seed)}
	encoded, err := h.Hash("pw")
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	_, salt, _, err := ParsePHC(encoded)
	if err != nil {
		t.Fatalf("ParsePHC: %v", err)
	}
	if !bytes.Equal(salt, seed) {
		t.Errorf("salt = %x, want %x", salt, seed)
	}

	// Two hashes from crypto/rand differ.
	h = NewPasswordHasher(fastParams())
	a, errA := h.Hash("pw")
	b, errB := h.Hash("pw")
	if errA != nil || errB != nil {
		t.Fatalf("Hash: %v, %v", errA, errB)
	}
	if a == b {
		t.Errorf("two hashes of the same password are equal: %q", a)
	}
}

func TestHashErrors(t *testing.T) {
	tests := []struct {
		name   string
		hasher *PasswordHasher
	}{
		{"invalid params", NewPasswordHasher(Argon2Params{})},
		{"short rand", &PasswordHasher{Params: fastParams(), Rand: bytes.NewReader(make([]byte, 3))}},
		{"empty rand", &PasswordHasher{Params: fastParams(), Rand: strings.NewReader("")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.hasher.Hash("pw")
			if err == nil {
				t.Fatalf("Hash = %q, nil; want error", got)
			}
			if got != "" {
				t.Errorf("Hash returned %q with error", got)
			}
		})
	}
}

func TestVerifyNeedsRehash(t *testing.T) {
	stored := fastParams()
	encoded, err := NewPasswordHasher(stored).Hash("pw")
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	with := func(f func(*Argon2Params)) Argon2Params {
		p := stored
		f(&p)
		return p
	}
	tests := []struct {
		name       string
		current    Argon2Params
		wantRehash bool
	}{
		{"same params", stored, false},
		{"more memory", with(func(p *Argon2Params) { p.MemoryKiB *= 2 }), true},
		{"more iterations", with(func(p *Argon2Params) { p.Iterations++ }), true},
		{"more lanes", with(func(p *Argon2Params) { p.Parallelism = 2 }), true},
		{"longer salt", with(func(p *Argon2Params) { p.SaltLength = 32 }), true},
		{"longer key", with(func(p *Argon2Params) { p.KeyLength = 64 }), true},
		{"default params", DefaultArgon2Params(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewPasswordHasher(tt.current)
			ok, rehash, err := h.Verify("pw", encoded)
			if err != nil || !ok {
				t.Fatalf("Verify(right password) = %v, %v, %v; want true", ok, rehash, err)
			}
			if rehash != tt.wantRehash {
				t.Errorf("needsRehash = %v, want %v", rehash, tt.wantRehash)
			}
			// A wrong password never asks for a rehash.
			if ok, rehash, err := h.Verify("wrong", encoded); ok || rehash || err != nil {
				t.Errorf("Verify(wrong password) = %v, %v, %v; want false, false, nil", ok, rehash, err)
			}
		})
	}
}

// phcCase is one line of testdata/phc_cases.txt.
type phcCase struct {
	valid    bool
	password string // valid cases only
	note     string
	phc      string
}

func readPHCCases(t *testing.T) []phcCase {
	t.Helper()
	f, err := os.Open("testdata/phc_cases.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []phcCase
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, "\t")
		switch {
		case fields[0] == "valid" && len(fields) == 4:
			cases = append(cases, phcCase{valid: true, password: fields[1], phc: fields[2], note: fields[3]})
		case fields[0] == "invalid" && len(fields) == 3:
			cases = append(cases, phcCase{note: fields[1], phc: fields[2]})
		default:
			t.Fatalf("phc_cases.txt:%d: malformed line %q", n, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("phc_cases.txt: no cases")
	}
	return cases
}

func TestPHCFixtures(t *testing.T) {
	h := NewPasswordHasher(DefaultArgon2Params())
	for _, c := range readPHCCases(t) {
		t.Run(c.note, func(t *testing.T) {
			params, salt, key, err := ParsePHC(c.phc)
			if !c.valid {
				if !errors.Is(err, ErrMalformedHash) {
					t.Fatalf("ParsePHC(%q) error = %v, want ErrMalformedHash", c.phc, err)
				}
				if salt != nil || key != nil || params != (Argon2Params{}) {
					t.Errorf("ParsePHC returned values with an error: %+v %x %x", params, salt, key)
				}
				ok, rehash, err := h.Verify("password", c.phc)
				if ok || rehash || !errors.Is(err, ErrMalformedHash) {
					t.Errorf("Verify = %v, %v, %v; want false, false, ErrMalformedHash", ok, rehash, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePHC(%q): %v", c.phc, err)
			}
			if got := encodePHC(params, salt, key); got != c.phc {
				t.Errorf("re-encoded = %q, want %q", got, c.phc)
			}
			ok, _, err := h.Verify(c.password, c.phc)
			if err != nil || !ok {
				t.Errorf("Verify(%q) = %v, %v; want true, nil", c.password, ok, err)
			}
			ok, _, err = h.Verify(c.password+"!", c.phc)
			if err != nil || ok {
				t.Errorf("Verify(wrong) = %v, %v; want false, nil", ok, err)
			}
		})
	}
}

func TestParsePHCReferenceVector(t *testing.T) {
	// From the argon2 reference implementation's test suite (src/test.c):
	// argon2id, version 0x13, t=2, m=2^16, p=1, "password", "somesalt".
	const encoded = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	const wantKeyHex = "09316115d5cf24ed5a15a31a3ba326e5cf32edc24702987c02b6566f61913cf7"
	params, salt, key, err := ParsePHC(encoded)
	if err != nil {
		t.Fatalf("ParsePHC: %v", err)
	}
	want := Argon2Params{MemoryKiB: 65536, Iterations: 2, Parallelism: 1, SaltLength: 8, KeyLength: 32}
	if params != want {
		t.Errorf("params = %+v, want %+v", params, want)
	}
	if string(salt) != "somesalt" {
		t.Errorf("salt = %q, want %q", salt, "somesalt")
	}
	if got := hex.EncodeToString(key); got != wantKeyHex {
		t.Errorf("key = %s, want %s", got, wantKeyHex)
	}
	// The hasher reproduces it given the same salt.
	h := &PasswordHasher{Params: want, Rand: strings.NewReader("somesalt")}
	got, err := h.Hash("password")
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	if got != encoded {
		t.Errorf("Hash = %q, want %q", got, encoded)
	}
}

// TestParsePHCRejects covers inputs a tab-separated fixture cannot hold.
func TestParsePHCRejects(t *testing.T) {
	const good = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	tests := []struct {
		name    string
		encoded string
	}{
		{"newline in salt", strings.Replace(good, "c29tZXNh", "c29t\nZXNh", 1)},
		{"carriage return in hash", strings.Replace(good, "CTFh", "CT\rFh", 1)},
		{"trailing newline", good + "\n"},
		{"tab in parameters", strings.Replace(good, "t=2", "t=2\t", 1)},
		{"NUL in parameters", strings.Replace(good, "p=1", "p=1\x00", 1)},
		{"non-ASCII digit", strings.Replace(good, "t=2", "t=\u0662", 1)},
		{"invalid UTF-8", strings.Replace(good, "c29t", "\xff\xfe", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, _, err := ParsePHC(tt.encoded); !errors.Is(err, ErrMalformedHash) {
				t.Errorf("ParsePHC(%q) error = %v, want ErrMalformedHash", tt.encoded, err)
			}
		})
	}
}

func TestBurn(t *testing.T) {
	tests := []struct {
		name   string
		params Argon2Params
		want   bool // whether a dummy hash is built
	}{
		{"fast", fastParams(), true},
		{"default", DefaultArgon2Params(), true},
		{"invalid params", Argon2Params{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewPasswordHasher(tt.params)
			h.Burn("pw")
			h.Burn("another") // reuses the dummy hash
			if !tt.want {
				if h.burnHash != "" {
					t.Errorf("burnHash = %q, want empty", h.burnHash)
				}
				return
			}
			params, _, _, err := ParsePHC(h.burnHash)
			if err != nil {
				t.Fatalf("ParsePHC(burnHash): %v", err)
			}
			if params != tt.params {
				t.Errorf("burn hash params = %+v, want %+v", params, tt.params)
			}
			// The dummy hash matches no password, so Burn can never be
			// mistaken for a successful login.
			if ok, _, err := h.Verify("", h.burnHash); ok || err != nil {
				t.Errorf("Verify(\"\", burnHash) = %v, %v; want false, nil", ok, err)
			}
		})
	}
}

func TestBurnConcurrent(t *testing.T) {
	h := NewPasswordHasher(fastParams())
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			h.Burn("pw")
		}()
	}
	for range 4 {
		<-done
	}
	if h.burnHash == "" {
		t.Error("burnHash not set")
	}
}

func FuzzParsePHC(f *testing.F) {
	f.Add("$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc")
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$")
	f.Add("")
	f.Fuzz(func(t *testing.T, encoded string) {
		params, salt, key, err := ParsePHC(encoded)
		if err != nil {
			if !errors.Is(err, ErrMalformedHash) {
				t.Fatalf("ParsePHC(%q) error %v does not wrap ErrMalformedHash", encoded, err)
			}
			return
		}
		if err := params.Validate(); err != nil {
			t.Fatalf("ParsePHC(%q) accepted invalid params %+v: %v", encoded, params, err)
		}
		if int(params.SaltLength) != len(salt) || int(params.KeyLength) != len(key) {
			t.Fatalf("ParsePHC(%q) lengths %+v disagree with salt %d, key %d bytes", encoded, params, len(salt), len(key))
		}
		if got := encodePHC(params, salt, key); got != encoded {
			t.Fatalf("ParsePHC(%q) re-encodes to %q", encoded, got)
		}
	})
}

func BenchmarkHash(b *testing.B) {
	h := NewPasswordHasher(DefaultArgon2Params())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Hash("correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	h := NewPasswordHasher(DefaultArgon2Params())
	encoded, err := h.Hash("correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, _, err := h.Verify("correct horse battery staple", encoded); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkVerifyAfterRelease is BenchmarkVerify on memory returned to
// the operating system before each hash, as after the idle release
// (Service.HashingIdle, debug.FreeOSMemory in serve): the first hash of
// a burst pays for faulting its memory back in.
func BenchmarkVerifyAfterRelease(b *testing.B) {
	h := NewPasswordHasher(DefaultArgon2Params())
	encoded, err := h.Hash("correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		debug.FreeOSMemory()
		b.StartTimer()
		if ok, _, err := h.Verify("correct horse battery staple", encoded); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkReleaseAfterVerify is the cost of the idle release itself
// (debug.FreeOSMemory) after a hash.
func BenchmarkReleaseAfterVerify(b *testing.B) {
	h := NewPasswordHasher(DefaultArgon2Params())
	encoded, err := h.Hash("correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		b.StopTimer()
		if ok, _, err := h.Verify("correct horse battery staple", encoded); !ok || err != nil {
			b.Fatal(ok, err)
		}
		b.StartTimer()
		debug.FreeOSMemory()
	}
}
