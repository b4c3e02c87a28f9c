package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if os.Getenv(trivialEnv) == "1" {
		if err := serveTrivialChild(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen trivial server:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// run is loadgen: "bench" (runBench), "galera" (runGalera) or a load run
// against servers that are already running. Reports go to stdout, progress and usage to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "bench" {
		return runBench(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "galera" {
		return runGalera(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: loadgen [flags] SCENARIO... (or all)\n       loadgen bench [flags]\n       loadgen galera [flags]\nscenarios: %s\n", strings.Join(scenarioNames(), ", "))
		fs.PrintDefaults()
	}
	var t targets
	var client, introspector string
	fs.StringVar(&t.url, "url", "", "portcullis public base URL (loopback)")
	fs.StringVar(&t.userapi, "userapi", "", "userapi base URL (loopback)")
	fs.StringVar(&client, "client", "", "ID:SECRET of a confidential client allowed client_credentials")
	fs.StringVar(&introspector, "introspector", "", "ID:SECRET of a confidential client with introspection_allowed")
	fs.StringVar(&t.publicClient, "public-client", "", "ID of a public client allowed password and refresh_token, with userapi's audience")
	fs.StringVar(&t.username, "username", "", `username of worker i, "%d" replaced by i`)
	fs.StringVar(&t.password, "password", "", "the users' password")
	lf := addLoadFlags(fs, 3*time.Second)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := lf.validate(); err != nil {
		return err
	}
	var problems []error
	for _, u := range []*string{&t.url, &t.userapi} {
		if *u == "" {
			continue
		}
		clean, err := checkTarget(*u)
		problems = append(problems, err)
		*u = clean
	}
	if client != "" {
		c, err := parseCredentials(client)
		problems = append(problems, wrapFlag("-client", err))
		t.service = c
	}
	if introspector != "" {
		c, err := parseCredentials(introspector)
		problems = append(problems, wrapFlag("-introspector", err))
		t.introspector = c
	}
	selected, err := selectScenarios(fs.Args())
	problems = append(problems, err)
	if err := errors.Join(problems...); err != nil {
		return err
	}

	h := &harness{targets: t}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := h.serveTrivial(ctx); err != nil {
		return err
	}
	var results []result
	for _, c := range lf.concurrency {
		rs, err := runAll(ctx, h, selected, c, lf.bounds, lf.slices, func(r result) { progress(stderr, "", r) })
		if err != nil {
			return err
		}
		results = append(results, rs...)
	}
	writeResults(stdout, results)
	return failures(results)
}

// wrapFlag names the flag in err, if any.
func wrapFlag(name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", name, err)
}

// selectScenarios resolves scenario names ("all" is every one).
func selectScenarios(names []string) ([]scenario, error) {
	all := scenarios()
	if len(names) == 0 {
		return nil, fmt.Errorf("name scenarios to run (or all): %s", strings.Join(scenarioNames(), ", "))
	}
	if slices.Equal(names, []string{"all"}) {
		return all, nil
	}
	var out []scenario
	for _, n := range names {
		i := slices.IndexFunc(all, func(s scenario) bool { return s.name == n })
		if i < 0 {
			return nil, fmt.Errorf("unknown scenario %q (have %s)", n, strings.Join(scenarioNames(), ", "))
		}
		out = append(out, all[i])
	}
	return out, nil
}

// loadFlags are the flags bounding a load run, shared by both modes.
type loadFlags struct {
	bounds
	slices      int
	concurrency []int
	cList       string
}

// addLoadFlags defines -c, -duration (default d) and -requests on fs.
func addLoadFlags(fs *flag.FlagSet, d time.Duration) *loadFlags {
	lf := &loadFlags{}
	fs.StringVar(&lf.cList, "c", "1,8,32", "concurrencies to run, comma-separated (workers, each with its own keep-alive connection)")
	fs.DurationVar(&lf.duration, "duration", d, "how long each scenario runs at each concurrency")
	fs.Int64Var(&lf.requests, "requests", 0, "stop a scenario run after this many requests (0: only -duration bounds it)")
	fs.IntVar(&lf.slices, "slices", 8, "a scenario compared to a baseline (jwks: trivial, password: argon2, usersme: userapi_trivial) alternates with it in this many slices of -duration/slices, when both run")
	return lf
}

// validate checks the bounds and parses -c.
func (lf *loadFlags) validate() error {
	var problems []error
	if lf.duration <= 0 {
		problems = append(problems, fmt.Errorf("-duration %v must be positive", lf.duration))
	}
	if lf.slices < 1 || (lf.duration > 0 && lf.duration/time.Duration(max(lf.slices, 1)) < time.Millisecond) {
		problems = append(problems, fmt.Errorf("-slices %d: want at least 1, and slices of at least 1 ms", lf.slices))
	}
	if lf.requests < 0 {
		problems = append(problems, fmt.Errorf("-requests %d must not be negative", lf.requests))
	}
	c, err := parseConcurrency(lf.cList)
	problems = append(problems, err)
	lf.concurrency = c
	return errors.Join(problems...)
}

// parseConcurrency reads "1,8,32": positive, at most 1024, no duplicates.
func parseConcurrency(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1024 || slices.Contains(out, n) {
			return nil, fmt.Errorf("-c %q: want distinct concurrencies from 1 to 1024, comma-separated", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// failures returns an error naming the failed runs, or nil when every
// request of every run succeeded.
func failures(results []result) error {
	var errs []error
	for _, r := range results {
		if r.errors > 0 {
			errs = append(errs, fmt.Errorf("%s c=%d: %d errors, first: %w", r.scenario, r.concurrency, r.errors, r.firstErr))
		}
	}
	return errors.Join(errs...)
}
