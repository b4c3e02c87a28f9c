package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-auth/portcullis/internal/galera"
)

// galeraScenarios are the scenarios "loadgen galera" compares: the ones
// that write to the database.
var galeraScenarios = []string{"client_credentials", "password", "refresh"}

// galeraDatabase is the name of the databases "loadgen galera" creates
// on the servers it starts, one per set-up: portcullis_bench_1, ….
const galeraDatabase = "portcullis_bench"

// galeraConfig is the command line of "loadgen galera".
type galeraConfig struct {
	*loadFlags
	nodes         int
	rounds        int
	cnf           string
	portcullisBin string
	serverEnv     []string
}

func parseGaleraConfig(args []string, stderr io.Writer) (galeraConfig, error) {
	fs := flag.NewFlagSet("loadgen galera", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := galeraConfig{loadFlags: addLoadFlags(fs, 3*time.Second)}
	fs.IntVar(&cfg.nodes, "nodes", 3, "Galera cluster size: one portcullis replica per node")
	fs.IntVar(&cfg.rounds, "rounds", 3, "rounds: each runs every scenario at every concurrency on both; the report shows medians and the spread")
	fs.StringVar(&cfg.cnf, "cnf", "", "MariaDB option file every server includes (default: deploy/galera/portcullis.cnf of the repository loadgen runs in)")
	fs.StringVar(&cfg.portcullisBin, "portcullis", "", "portcullis executable to run (default: go build ./cmd/portcullis)")
	fs.Func("server-env", "KEY=VALUE added to every portcullis's environment (repeatable), e.g. PORTCULLIS_LOG_LEVEL=warn", func(s string) error {
		if k, _, ok := strings.Cut(s, "="); !ok || !strings.HasPrefix(k, "PORTCULLIS_") {
			return errors.New("want PORTCULLIS_NAME=VALUE")
		}
		cfg.serverEnv = append(cfg.serverEnv, s)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	problems := []error{cfg.loadFlags.validate()}
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Errorf("unexpected arguments: %q", fs.Args()))
	}
	if cfg.nodes < 1 || cfg.nodes > 5 {
		problems = append(problems, fmt.Errorf("-nodes %d: want 1 to 5", cfg.nodes))
	}
	if cfg.rounds < 1 {
		problems = append(problems, fmt.Errorf("-rounds %d must be at least 1", cfg.rounds))
	}
	return cfg, errors.Join(problems...)
}

// runGalera is "loadgen galera": the token and refresh rates through
// portcullis replicas on a Galera cluster, one replica per node, against
// one replica on one standalone mariadbd with the same settings, both
// started by loadgen on this machine and loaded alternately in one run.
// See the package documentation.
func runGalera(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseGaleraConfig(args, stderr)
	if err != nil {
		return err
	}
	if missing := galera.Missing(); missing != "" {
		return fmt.Errorf("loadgen galera starts MariaDB servers with Galera on this machine: %s (install mariadb-server, galera-4 and rsync)", missing)
	}
	if cfg.cnf == "" {
		if cfg.cnf, err = galera.ModuleFile(galera.ConfigPath); err != nil {
			return fmt.Errorf("%w (run loadgen galera inside the repository, or pass -cnf)", err)
		}
	}
	if _, err := os.Stat(cfg.cnf); err != nil {
		return fmt.Errorf("-cnf: %w (run loadgen galera inside the repository, or pass -cnf)", err)
	}
	work, err := os.MkdirTemp("", "loadgen-galera-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if cfg.portcullisBin == "" {
		fmt.Fprintln(stderr, "building portcullis")
		if cfg.portcullisBin, err = buildCommand(ctx, work, "portcullis"); err != nil {
			return fmt.Errorf("%w (run loadgen galera inside the repository, or pass -portcullis)", err)
		}
	}
	machine := describeMachine("galera", args)

	fmt.Fprintf(stderr, "starting a standalone mariadbd and a %d-node Galera cluster\n", cfg.nodes)
	single, err := galera.StartStandalone(cfg.cnf)
	if err != nil {
		return err
	}
	defer single.Close()
	cluster, err := galera.Start(cfg.cnf, cfg.nodes)
	if err != nil {
		return err
	}
	defer cluster.Close()
	version, err := serverVersion(ctx, single)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	users := slices.Max(cfg.concurrency)
	n := cfg.nodes
	repeated := make([]*galera.Node, n)
	for i := range repeated {
		repeated[i] = single
	}
	var backends []*galeraBackend
	for i, be := range []struct {
		name  string
		nodes []*galera.Node
	}{
		{"1 replica, 1 server", []*galera.Node{single}},
		{fmt.Sprintf("%d replicas, 1 server", n), repeated},
		{fmt.Sprintf("%d replicas, %d Galera nodes", n, n), cluster.Nodes},
	} {
		b, err := startGaleraBackend(ctx, cfg, be.name, be.nodes, fmt.Sprintf("%s_%d", galeraDatabase, i+1), filepath.Join(work, strconv.Itoa(i+1)), users, stderr)
		if b != nil {
			defer b.stop()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", be.name, err)
		}
		backends = append(backends, b)
	}

	all := scenarios()
	var runs []galeraRun
	for round := range cfg.rounds {
		prefix := fmt.Sprintf("round %d/%d ", round+1, cfg.rounds)
		for _, c := range cfg.concurrency {
			for _, scName := range galeraScenarios {
				sc := all[slices.IndexFunc(all, func(s scenario) bool { return s.name == scName })]
				rs, err := compareBackends(ctx, cfg, backends, sc, c)
				if err != nil {
					return err
				}
				for i, r := range rs {
					progress(stderr, prefix+backends[i].name+": ", r)
				}
				runs = append(runs, galeraRun{round: round, results: rs})
			}
		}
	}

	fmt.Fprintln(stdout, machine)
	fmt.Fprintln(stdout, "- load average at end:", loadAverage())
	fmt.Fprintf(stdout, "- 1 server: MariaDB %s, one mariadbd without Galera (wsrep_provider=none); %d Galera nodes: %d mariadbd on loopback, synchronous replication\n", version, n, n)
	fmt.Fprintf(stdout, "- every mariadbd includes %s and the same tuning (innodb_flush_log_at_trx_commit=2, 32 MiB buffer pool); "+
		"with %d replicas, each on its own node in the Galera case, every worker sends its successive requests to successive replicas (round-robin)\n", filepath.Base(cfg.cnf), n)
	fmt.Fprintln(stdout)
	writeGaleraTables(stdout, backends, cfg.concurrency, runs)
	fmt.Fprintf(stdout, "\nreq/s: median of %d rounds ± half their range; p50 / p99: medians. The three set-ups run alternately in %d slices of each -duration; "+
		"ratios are taken within each round. CPU: user and system time of the mariadbd and portcullis processes of the set-up "+
		"(not loadgen's) during its slices, per successful request.\n", cfg.rounds, cfg.slices)
	var failed []error
	for _, r := range runs {
		for i, res := range r.results {
			if err := failures([]result{res}); err != nil {
				failed = append(failed, fmt.Errorf("%s: %w", backends[i].name, err))
			}
		}
	}
	return errors.Join(failed...)
}

// serverVersion returns the version of the MariaDB server node runs
// ("10.11.19").
func serverVersion(ctx context.Context, node *galera.Node) (string, error) {
	db, err := node.Open("")
	if err != nil {
		return "", err
	}
	defer db.Close()
	var v string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&v); err != nil {
		return "", err
	}
	v, _, _ = strings.Cut(v, "-")
	return v, nil
}

// galeraBackend is one set-up of the comparison: portcullis replicas,
// each on its mariadbd node (several may share one), and the harness that
// loads them.
type galeraBackend struct {
	name    string
	nodes   []*galera.Node
	servers []*child
	h       *harness
}

// startGaleraBackend creates the database dbName on nodes[0], migrates
// and provisions it through the CLI (users bench0 … and two clients), and
// starts one portcullis per entry of nodes, on that node, sharing the
// first one's URL as issuer. On error it returns what it started, to be
// stopped.
func startGaleraBackend(ctx context.Context, cfg galeraConfig, name string, nodes []*galera.Node, dbName, dir string, users int, stderr io.Writer) (*galeraBackend, error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	db, err := nodes[0].Open("")
	if err != nil {
		return nil, err
	}
	_, err = db.ExecContext(ctx, "CREATE DATABASE "+dbName+" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
	db.Close()
	if err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"PORTCULLIS_SECRETS_KEY=" + base64.StdEncoding.EncodeToString(key),
		// Every login comes from 127.0.0.1; the per-IP limit would cap
		// the password grant at 20/s.
		"PORTCULLIS_RATE_LIMIT_TOKEN_PER_IP=0"}
	env = append(env, cfg.serverEnv...)
	cli := portcullisCLI{bin: cfg.portcullisBin, env: append(slices.Clone(env), "PORTCULLIS_DSN="+nodes[0].DSN(dbName))}
	fmt.Fprintf(stderr, "%s: migrating, provisioning %d users\n", name, users)
	if err := cli.provision(ctx, users); err != nil {
		return nil, err
	}
	public, err := cli.createClient(ctx, "--name", "bench-public", "--public", "--grant-type", "password", "--grant-type", "refresh_token")
	if err != nil {
		return nil, err
	}
	service, err := cli.createClient(ctx, "--name", "bench-service", "--grant-type", "client_credentials")
	if err != nil {
		return nil, err
	}

	b := &galeraBackend{name: name, nodes: nodes}
	var issuer string
	for k, node := range nodes {
		// One at a time: the first creates the signing keys, the others
		// find them.
		srv, err := startListening(ctx, cfg.portcullisBin, filepath.Join(dir, fmt.Sprintf("portcullis-%d.log", k+1)), 2, func(addrs []string) ([]string, []string, string) {
			base := "http://" + addrs[0]
			iss := issuer
			if iss == "" {
				iss = base
			}
			return append(slices.Clone(env), "PORTCULLIS_DSN="+node.DSN(dbName), "PORTCULLIS_ISSUER="+iss,
					"PORTCULLIS_PUBLIC_ADDR="+addrs[0], "PORTCULLIS_ADMIN_ADDR="+addrs[1]),
				[]string{"serve"}, base + "/health/ready"
		})
		if err != nil {
			return b, err
		}
		b.servers = append(b.servers, srv)
		if issuer == "" {
			issuer = srv.base
		}
	}
	t := targets{url: b.servers[0].base, service: service, publicClient: public.id, username: "bench%d", password: benchPassword}
	if len(b.servers) > 1 {
		for _, s := range b.servers {
			t.replicas = append(t.replicas, s.base)
		}
	}
	b.h = &harness{targets: t}
	return b, nil
}

// stop stops the backend's portcullis servers (not its mariadbd nodes).
func (b *galeraBackend) stop() {
	for _, s := range b.servers {
		s.stop()
	}
}

// cpu returns the CPU time used so far by the backend's mariadbd (each
// counted once) and portcullis processes; a process it cannot read counts
// as none.
func (b *galeraBackend) cpu() time.Duration {
	var total time.Duration
	var seen []int
	for _, n := range b.nodes {
		if pid := n.PID(); !slices.Contains(seen, pid) {
			seen = append(seen, pid)
			d, _ := cpuTime(pid)
			total += d
		}
	}
	for _, s := range b.servers {
		d, _ := cpuTime(s.cmd.Process.Pid)
		total += d
	}
	return total
}

// userHZ is the unit of the CPU times in /proc/PID/stat: USER_HZ, 100 on
// every architecture Linux exposes it for.
const userHZ = 100

// cpuTime returns the user and system CPU time process pid has used, from
// /proc/PID/stat (every thread, 10 ms resolution).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStat(b)
}

// parseStat reads utime and stime (fields 14 and 15) from a /proc/PID/stat
// file. The command name (field 2) may hold spaces and parentheses, so
// fields are counted after its last ')'.
func parseStat(b []byte) (time.Duration, error) {
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("/proc stat: no command name")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("/proc stat: too few fields")
	}
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat: %q", v)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// compareBackends runs sc at concurrency c on every backend, alternately
// in slices, each measuring the CPU its own processes use, and returns
// their results in the order of backends.
func compareBackends(ctx context.Context, cfg galeraConfig, backends []*galeraBackend, sc scenario, c int) ([]result, error) {
	var states []*runState
	for _, b := range backends {
		b.h.connect(sc.workers(c))
		defer b.h.disconnect()
		p, err := prepareRun(ctx, b.h, sc, c)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.name, err)
		}
		p.cpu = b.cpu
		states = append(states, p)
	}
	if err := alternate(ctx, cfg.bounds, cfg.slices, states...); err != nil {
		return nil, err
	}
	out := make([]result, len(states))
	for i, p := range states {
		out[i] = p.result()
	}
	return out, nil
}

// galeraRun is one scenario at one concurrency in one round, on every
// backend (in their order).
type galeraRun struct {
	round   int
	results []result
}

// cells returns, for scenario sc at concurrency c, backend i's result in
// each round.
func cells(runs []galeraRun, i int, sc string, c int) []result {
	var out []result
	for _, r := range runs {
		if r.results[i].scenario == sc && r.results[i].concurrency == c {
			out = append(out, r.results[i])
		}
	}
	return out
}

// ratioCells returns, per round, the rate of backend num over that of
// backend den for sc at c: the median and every round's, formatted.
func ratioCells(runs []galeraRun, num, den int, sc string, c int) (string, string) {
	var ratios []float64
	for _, r := range runs {
		n, d := r.results[num], r.results[den]
		if n.scenario == sc && n.concurrency == c && d.rate() > 0 {
			ratios = append(ratios, n.rate()/d.rate())
		}
	}
	if len(ratios) == 0 {
		return "–", ""
	}
	format := func(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) }
	return format(median(ratios)), joinFloats(ratios, format)
}

// writeGaleraTables writes two tables with a row per scenario and
// concurrency. The first has each backend's median rate ± spread and
// median p50 / p99; the last backend's rate over the first's (the cost of
// the whole set-up) and over the second's (the cost of Galera alone), the
// median of the rounds with every round's; and the failed requests. The
// second has each backend's CPU time per request.
func writeGaleraTables(w io.Writer, backends []*galeraBackend, conc []int, runs []galeraRun) {
	last := len(backends) - 1
	head, rule := "| scenario | c |", "|---|--:|"
	for _, b := range backends {
		head += fmt.Sprintf(" %s: req/s, p50 / p99 ms |", b.name)
		rule += "--:|"
	}
	head += fmt.Sprintf(" %s ÷ %s (each round) | %s ÷ %s (each round) | errors |", backends[last].name, backends[0].name, backends[last].name, backends[1].name)
	rule += "--:|--:|--:|"
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, rule)
	for _, sc := range galeraScenarios {
		for _, c := range conc {
			if len(cells(runs, 0, sc, c)) == 0 {
				continue
			}
			row := fmt.Sprintf("| %s | %d |", sc, c)
			var errs []string
			for i := range backends {
				rs := cells(runs, i, sc, c)
				row += fmt.Sprintf(" %s, %s |", rateCell(rs), latencyCell(rs))
				errs = append(errs, strconv.FormatInt(errorSum(rs), 10))
			}
			for _, den := range []int{0, 1} {
				med, each := ratioCells(runs, last, den, sc, c)
				row += fmt.Sprintf(" **%s** (%s) |", med, each)
			}
			fmt.Fprintln(w, row+" "+strings.Join(errs, " / ")+" |")
		}
	}
	fmt.Fprintln(w)
	head, rule = "| CPU ms per request | c |", "|---|--:|"
	for _, b := range backends {
		head += " " + b.name + " |"
		rule += "--:|"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, rule)
	for _, sc := range galeraScenarios {
		for _, c := range conc {
			if len(cells(runs, 0, sc, c)) == 0 {
				continue
			}
			row := fmt.Sprintf("| %s | %d |", sc, c)
			for i := range backends {
				row += " " + cpuCell(cells(runs, i, sc, c)) + " |"
			}
			fmt.Fprintln(w, row)
		}
	}
}

// rateCell formats the median rate of rs ± half their range.
func rateCell(rs []result) string {
	rates := make([]float64, len(rs))
	for i, r := range rs {
		rates[i] = r.rate()
	}
	med := median(rates)
	spread := 0.0
	if med > 0 {
		spread = (slices.Max(rates) - slices.Min(rates)) / 2 / med
	}
	return fmt.Sprintf("%s ±%.0f%%", thousands(med), 100*spread)
}

// latencyCell formats the median p50 and p99 of rs.
func latencyCell(rs []result) string {
	var p50, p99 []time.Duration
	for _, r := range rs {
		p50, p99 = append(p50, r.p50), append(p99, r.p99)
	}
	return ms(medianDuration(p50)) + " / " + ms(medianDuration(p99))
}

// cpuCell formats the CPU time of rs per successful request, in ms.
func cpuCell(rs []result) string {
	var cpu time.Duration
	var ok int64
	for _, r := range rs {
		cpu += r.cpu
		ok += r.ok
	}
	if ok == 0 {
		return "–"
	}
	return strconv.FormatFloat(float64(cpu)/float64(time.Millisecond)/float64(ok), 'f', 2, 64)
}

// errorSum returns the failed requests of rs.
func errorSum(rs []result) int64 {
	var n int64
	for _, r := range rs {
		n += r.errors
	}
	return n
}
