package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// tryCLI runs the real binary with env and args and returns its output and
// exit error, whatever it is.
func tryCLI(t *testing.T, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), string(portcullis), args...)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// TestStartupErrorTexts: the two start-up failures operators meet read as
// one plain sentence that says what to do: an unreachable database (once
// printed as "migrate: storage: migrate: temporarily_unavailable: the
// service is temporarily unavailable, retry later: migration lock:
// storage: …") and a secrets key that does not open the signing keys,
// which must name PORTCULLIS_SECRETS_KEY and keys rewrap.
func TestStartupErrorTexts(t *testing.T) {
	dir := t.TempDir()
	srv := []string{"PATH=/usr/bin:/bin", "HOME=" + dir}
	_, stderr, err := tryCLI(t, append(srv, "PORTCULLIS_DSN=mysql://root:@tcp(127.0.0.1:1)/x?parseTime=true",
		"PORTCULLIS_SECRETS_KEY="+strings.Repeat("A", 43)+"="), "migrate")
	if err == nil {
		t.Fatal("migrate against a closed port succeeded")
	}
	want := "portcullis: migrate: the database is unavailable: dial tcp 127.0.0.1:1: connect: connection refused (check PORTCULLIS_DSN and that the database server is running)"
	lines := strings.Split(strings.TrimSpace(stderr), "\n") // a WARN log line comes first
	if got := lines[len(lines)-1]; got != want {
		t.Errorf("unreachable database:\n got %s\nwant %s", got, want)
	}

	dsn := "PORTCULLIS_DSN=sqlite://" + dir + "/p.db"
	keyA, keyB := "PORTCULLIS_SECRETS_KEY="+strings.Repeat("A", 43)+"=", "PORTCULLIS_SECRETS_KEY="+strings.Repeat("B", 43)+"="
	for _, args := range [][]string{{"migrate"}, {"keys", "rotate"}} {
		if _, stderr, err := tryCLI(t, append(srv, dsn, keyA), args...); err != nil {
			t.Fatalf("%v: %v %s", args, err, stderr)
		}
	}
	_, stderr, err = tryCLI(t, append(srv, dsn, keyB), "keys", "rotate")
	if err == nil {
		t.Fatal("keys rotate with another secrets key succeeded")
	}
	for _, want := range []string{"sealed with a different secrets key", "PORTCULLIS_SECRETS_KEY must be", "PORTCULLIS_SECRETS_KEY_OLD", "portcullis keys rewrap"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("wrong secrets key: %q lacks %q", stderr, want)
		}
	}
	if last := strings.Split(strings.TrimSpace(stderr), "\n"); !strings.HasPrefix(last[len(last)-1], "portcullis: ") ||
		!strings.Contains(last[len(last)-1], "portcullis keys rewrap") {
		t.Errorf("the error is not one line: %q", stderr)
	}
}
