// Package proctest runs the real portcullis and userapi executables for
// tests, the way users run them: built once per test binary (Build, from
// TestMain), started as separate processes on free loopback ports, driven
// over HTTP and through the CLI, and stopped with SIGTERM when the test
// ends, their output logged if it failed.
//
// It is for tests only (cmd/portcullis, interop); production code never
// imports it, which internal/archtest checks.
package proctest
