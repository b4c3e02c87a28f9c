package proctest

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Build compiles the main package at pkgPath (as go build takes it,
// relative to the calling test's package directory, such as "." or
// "../userapi") with CGO_ENABLED=0 into a new temporary directory. It
// returns the executable's path and a function that removes the directory.
// Call it from TestMain, so that each executable is built once per test
// binary; on error, print it and exit non-zero without running the tests.
func Build(pkgPath string) (bin string, remove func(), err error) {
	abs, err := filepath.Abs(pkgPath)
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "proctest-bin")
	if err != nil {
		return "", nil, err
	}
	remove = func() { _ = os.RemoveAll(dir) }
	bin = filepath.Join(dir, filepath.Base(abs))
	cmd := exec.Command("go", "build", "-o", bin, pkgPath)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		remove()
		return "", nil, fmt.Errorf("build %s: %w\n%s", pkgPath, err, out)
	}
	return bin, remove, nil
}

// syncBuffer collects a process's output for failure messages.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Process is a running child process, stopped with SIGTERM when the test
// that started it ends.
type Process struct {
	cmd  *exec.Cmd
	out  syncBuffer
	done chan struct{}
}

// Start runs bin with args and env (nil env: the test's own environment)
// and fails the test if it cannot be started. At clean-up it stops the
// process (Stop) and, if the test failed, logs the process's output.
func Start(t testing.TB, bin string, env []string, args ...string) *Process {
	t.Helper()
	p := &Process{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("output of %s %s:\n%s", filepath.Base(bin), strings.Join(args, " "), p.Output())
		}
	})
	return p
}

// Stop sends SIGTERM and waits for the process to exit, killing it after
// 15 s. It does nothing once the process has exited.
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitCode returns the exit code of the exited process, or -1 while it
// runs or when a signal ended it.
func (p *Process) ExitCode() int {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	default:
		return -1
	}
}

// Pid returns the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Output returns what the process has written to stdout and stderr so far.
func (p *Process) Output() string { return p.out.String() }

// WaitHTTP polls url until it answers want. It returns an error, with the
// process's output, when the process exits first or after 60 s.
func (p *Process) WaitHTTP(url string, want int) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("process exited while waiting for %s:\n%s", url, p.Output())
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer %d in time:\n%s", url, want, p.Output())
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago. Another process may take it before the caller binds it: servers
// started on it retry on "address already in use" (see Portcullis.Serve).
func FreeAddr(t testing.TB) string {
	t.Helper()
	return freeAddrs(t, 1)[0]
}

// freeAddrs is FreeAddr for n distinct addresses: each port is held until
// all are picked, so that the kernel cannot hand out one twice.
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs[i] = ln.Addr().String()
	}
	return addrs
}
