package main

import (
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// procStatusKiB reads one "Name:   N kB" field of /proc/PID/status.
func procStatusKiB(t *testing.T, pid int, name string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Skipf("no /proc status to read (%v): this test needs Linux", err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, name+":"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				t.Fatalf("%s: %q: %v", name, line, err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", name, pid)
	return 0
}

// TestIdleServerReturnsArgon2Memory: once logins stop, the server hands
// the memory of its argon2id hashes back to the operating system. With
// 64 MiB hashes, one password grant raises the peak by 64 MiB; within a
// generous deadline of idling, the anonymous resident memory (RssAnon:
// heap and stacks, not the mapped binary) must come back within 32 MiB of
// what it was before the grant. (Before: the hash's buffer was garbage
// that an idle Go runtime keeps resident until its next collection, at
// least two minutes later: RSS stayed 19 MiB above with the default
// parameters, 47.6 MiB idle after the first token in BENCHMARKS.md.)
func TestIdleServerReturnsArgon2Memory(t *testing.T) {
	const memoryKiB = 64 << 10
	srv := portcullis.Serve(t, "PORTCULLIS_ARGON2_MEMORY_KIB="+strconv.Itoa(memoryKiB))
	app := srv.CreateClient(t, "--name", "app", "--public")
	srv.CreateUser(t, "mia", "purple otter lamp 42")
	pid := srv.Pid()
	before := procStatusKiB(t, pid, "RssAnon")
	if r := passwordGrant(t, srv, app.ClientID, "mia", "purple otter lamp 42", ""); r.Status != http.StatusOK {
		t.Fatalf("password grant: %d %s", r.Status, r.Body)
	}
	if peak := procStatusKiB(t, pid, "VmHWM"); peak < before+memoryKiB/2 {
		t.Fatalf("peak %d KiB, anonymous memory before the grant %d KiB: the grant did not hash with %d KiB", peak, before, memoryKiB)
	}
	limit := before + memoryKiB/2
	deadline := time.Now().Add(30 * time.Second)
	for {
		now := procStatusKiB(t, pid, "RssAnon")
		if now <= limit {
			t.Logf("RssAnon %d KiB before the grant, %d KiB after idling", before, now)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("RssAnon %d KiB before the grant, still %d KiB after 30 s of idling (want at most %d KiB)", before, now, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
