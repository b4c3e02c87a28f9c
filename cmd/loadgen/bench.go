package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
)

// modulePath is the module whose commands bench builds.
const modulePath = "github.com/portcullis-auth/portcullis"

// benchPassword is the password of the users bench provisions.
const benchPassword = "purple otter lamp 42"

// benchConfig is bench's command line.
type benchConfig struct {
	*loadFlags
	mysqlDSN      string
	mysqlReset    bool
	rounds        int
	idleWait      time.Duration
	portcullisBin string
	userapiBin    string
	serverEnv     []string
}

func parseBenchConfig(args []string, stderr io.Writer) (benchConfig, error) {
	fs := flag.NewFlagSet("loadgen bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := benchConfig{loadFlags: addLoadFlags(fs, 2*time.Second)}
	fs.StringVar(&cfg.mysqlDSN, "mysql-dsn", "", "also run on this MySQL/MariaDB database (go-sql-driver DSN, e.g. root:@tcp(127.0.0.1:3306)/portcullis_bench?parseTime=true); it must be empty or missing")
	fs.BoolVar(&cfg.mysqlReset, "mysql-reset", false, "drop and re-create the -mysql-dsn database first (it is left in place afterwards)")
	fs.IntVar(&cfg.rounds, "rounds", 5, "rounds: each runs every scenario at every concurrency; the report shows medians and the spread")
	fs.DurationVar(&cfg.idleWait, "idle-wait", 2*time.Second, "how long the servers idle before their resident memory is read")
	fs.StringVar(&cfg.portcullisBin, "portcullis", "", "portcullis executable to run (default: go build ./cmd/portcullis)")
	fs.StringVar(&cfg.userapiBin, "userapi-bin", "", "userapi executable to run (default: go build ./cmd/userapi)")
	fs.Func("server-env", "KEY=VALUE added to portcullis's environment (repeatable), e.g. PORTCULLIS_LOG_LEVEL=warn", func(s string) error {
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
	if cfg.rounds < 1 {
		problems = append(problems, fmt.Errorf("-rounds %d must be at least 1", cfg.rounds))
	}
	if cfg.idleWait < 0 {
		problems = append(problems, fmt.Errorf("-idle-wait %v must not be negative", cfg.idleWait))
	}
	if cfg.mysqlReset && cfg.mysqlDSN == "" {
		problems = append(problems, errors.New("-mysql-reset needs -mysql-dsn"))
	}
	return cfg, errors.Join(problems...)
}

// runBench is "loadgen bench": see the package documentation.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseBenchConfig(args, stderr)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "loadgen-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if cfg.portcullisBin == "" || cfg.userapiBin == "" {
		fmt.Fprintln(stderr, "building portcullis and userapi")
		if err := buildCommands(ctx, work, &cfg); err != nil {
			return err
		}
	}
	machine := describeMachine("bench", args)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h := &harness{}
	if err := h.serveTrivial(ctx); err != nil {
		return err
	}
	type backend struct {
		name, dsn, dir string
		mysql          bool
	}
	backends := []backend{{"SQLite", "sqlite://" + filepath.Join(work, "sqlite", "portcullis.db"), filepath.Join(work, "sqlite"), false}}
	if cfg.mysqlDSN != "" {
		// Before SQLite's run, so that a wrong DSN or a database in use
		// fails at once.
		name, dsn, err := prepareMySQL(ctx, cfg.mysqlDSN, cfg.mysqlReset)
		if err != nil {
			return err
		}
		backends = append(backends, backend{name, dsn, filepath.Join(work, "mysql"), true})
	}
	var runs []*backendRun
	for _, be := range backends {
		if err := os.Mkdir(be.dir, 0o700); err != nil {
			return err
		}
		br, err := benchBackend(ctx, cfg, h, be.name, be.dsn, be.dir, stderr)
		if err != nil {
			return fmt.Errorf("%s: %w", be.name, err)
		}
		br.mysql = be.mysql
		runs = append(runs, br)
	}

	fmt.Fprintln(stdout, machine)
	fmt.Fprintln(stdout, "- load average at end:", loadAverage())
	var failed []error
	for _, br := range runs {
		fmt.Fprintf(stdout, "\n### %s\n\n", br.name)
		br.writeTable(stdout)
		fmt.Fprintln(stdout)
		br.writeMemory(stdout)
		fmt.Fprintln(stdout)
		br.writeGoals(stdout)
		for _, round := range br.rounds {
			if err := failures(round); err != nil {
				failed = append(failed, fmt.Errorf("%s: %w", br.name, err))
			}
		}
	}
	fmt.Fprintf(stdout, "\nreq/s: median of %d rounds ± half their range; p50 / p99: medians. jwks, password and usersme alternate with their baseline "+
		"(trivial, argon2, userapi_trivial) in %d slices per run; ratios are taken within each round. argon2 runs min(c, GOMAXPROCS=%d) workers.\n",
		cfg.rounds, cfg.slices, runtime.GOMAXPROCS(0))
	return errors.Join(failed...)
}

// buildCommands builds the portcullis and userapi commands that cfg does
// not name into dir, as the Dockerfile does (CGO_ENABLED=0).
func buildCommands(ctx context.Context, dir string, cfg *benchConfig) error {
	for _, c := range []struct {
		name string
		bin  *string
	}{{"portcullis", &cfg.portcullisBin}, {"userapi", &cfg.userapiBin}} {
		if *c.bin != "" {
			continue
		}
		out, err := buildCommand(ctx, dir, c.name)
		if err != nil {
			return fmt.Errorf("%w (run loadgen bench inside the repository, or pass -portcullis and -userapi-bin)", err)
		}
		*c.bin = out
	}
	return nil
}

// buildCommand builds the module's command name into dir, as the
// Dockerfile does (CGO_ENABLED=0), and returns the executable's path.
func buildCommand(ctx context.Context, dir, name string) (string, error) {
	out := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, modulePath+"/cmd/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", name, err, b)
	}
	return out, nil
}

// describeMachine returns the report's header for "loadgen cmd args":
// date, CPU, Go, load and the command line.
func describeMachine(cmd string, args []string) string {
	model := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## loadgen %s, %s\n\n", cmd, time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- machine: %s, nproc %d, GOMAXPROCS %d, %s/%s\n", model, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "- Go: %s; load average at start: %s\n", runtime.Version(), loadAverage())
	fmt.Fprintf(&b, "- command: %s", strings.Join(append([]string{"loadgen", cmd}, args...), " "))
	return b.String()
}

// loadAverage returns the 1, 5 and 15 minute load averages.
func loadAverage() string {
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			return strings.Join(f[:3], " ")
		}
	}
	return "unknown"
}

// prepareMySQL makes sure the database named by dsn (a go-sql-driver DSN,
// with or without "mysql://") exists and is empty, dropping it first when
// reset. It returns the server's name and version and portcullis's DSN.
func prepareMySQL(ctx context.Context, dsn string, reset bool) (name, portcullisDSN string, err error) {
	raw := strings.TrimPrefix(dsn, "mysql://")
	cfg, err := gomysql.ParseDSN(raw)
	if err != nil {
		return "", "", fmt.Errorf("-mysql-dsn: %w", err)
	}
	if cfg.DBName == "" {
		return "", "", errors.New("-mysql-dsn names no database")
	}
	admin := cfg.Clone()
	admin.DBName = ""
	conn, err := gomysql.NewConnector(admin)
	if err != nil {
		return "", "", fmt.Errorf("-mysql-dsn: %w", err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return "", "", fmt.Errorf("-mysql-dsn: %w", err)
	}
	name = "MySQL " + version
	if v, ok := strings.CutSuffix(version, "-MariaDB"); ok || strings.Contains(version, "MariaDB") {
		name = "MariaDB " + strings.SplitN(v, "-", 2)[0]
	}
	quoted := "`" + strings.ReplaceAll(cfg.DBName, "`", "``") + "`"
	if reset {
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoted); err != nil {
			return "", "", fmt.Errorf("drop %s: %w", cfg.DBName, err)
		}
	}
	var tables int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ?", cfg.DBName).Scan(&tables); err != nil {
		return "", "", fmt.Errorf("-mysql-dsn: %w", err)
	}
	if tables > 0 {
		return "", "", fmt.Errorf("database %s has %d tables: bench needs an empty one (pass -mysql-reset to drop and re-create it)", cfg.DBName, tables)
	}
	if _, err := db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+quoted+" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		return "", "", fmt.Errorf("create %s: %w", cfg.DBName, err)
	}
	return name, "mysql://" + raw, nil
}

// benchBackend starts portcullis on dsn and userapi, provisions them
// through the CLI, measures memory and runs cfg.rounds rounds. dir holds
// the servers' logs. Everything it starts is stopped when it returns.
func benchBackend(ctx context.Context, cfg benchConfig, h *harness, name, dsn, dir string, stderr io.Writer) (*backendRun, error) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"PORTCULLIS_DSN=" + dsn, "PORTCULLIS_SECRETS_KEY=" + base64.StdEncoding.EncodeToString(key),
		// Every login comes from 127.0.0.1; the per-IP limit would cap
		// the password grant at 20/s.
		"PORTCULLIS_RATE_LIMIT_TOKEN_PER_IP=0"}
	env = append(env, cfg.serverEnv...)
	cli := portcullisCLI{bin: cfg.portcullisBin, env: env}

	fmt.Fprintf(stderr, "%s: migrating, provisioning %d users\n", name, slices.Max(cfg.concurrency))
	if err := cli.provision(ctx, slices.Max(cfg.concurrency)); err != nil {
		return nil, err
	}

	srv, err := startListening(ctx, cfg.portcullisBin, filepath.Join(dir, "portcullis.log"), 2, func(addrs []string) ([]string, []string, string) {
		base := "http://" + addrs[0]
		return append(slices.Clone(env), "PORTCULLIS_ISSUER="+base, "PORTCULLIS_PUBLIC_ADDR="+addrs[0], "PORTCULLIS_ADMIN_ADDR="+addrs[1]),
			[]string{"serve"}, base + "/health/ready"
	})
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	api, err := startListening(ctx, cfg.userapiBin, filepath.Join(dir, "userapi.log"), 1, func(addrs []string) ([]string, []string, string) {
		base := "http://" + addrs[0]
		return []string{"PATH=" + os.Getenv("PATH")}, []string{"--issuer", srv.base, "--addr", addrs[0], "--audience", base}, base + "/health/alive"
	})
	if err != nil {
		return nil, err
	}
	defer api.stop()

	public, err := cli.createClient(ctx, "--name", "bench-public", "--public", "--grant-type", "password", "--grant-type", "refresh_token", "--audience", api.base)
	if err != nil {
		return nil, err
	}
	service, err := cli.createClient(ctx, "--name", "bench-service", "--grant-type", "client_credentials", "--audience", api.base)
	if err != nil {
		return nil, err
	}
	introspector, err := cli.createClient(ctx, "--name", "bench-introspector", "--grant-type", "client_credentials", "--introspect")
	if err != nil {
		return nil, err
	}
	h.targets = targets{url: srv.base, userapi: api.base, service: service, introspector: introspector,
		publicClient: public.id, username: "bench%d", password: benchPassword}

	br := &backendRun{name: name, conc: cfg.concurrency}
	// The first token, and userapi's first verification of one.
	h.connect(1)
	first, err := h.userBearer(ctx, 0)
	if err == nil {
		err = h.expect("GET", api.base+"/users/me", "", first, nil)(ctx)
	}
	h.disconnect()
	if err != nil {
		return nil, fmt.Errorf("first token: %w", err)
	}
	if err := sleep(ctx, cfg.idleWait); err != nil {
		return nil, err
	}
	if br.mem.portcullisIdle, _, err = srv.memory(); err != nil {
		return nil, err
	}
	if br.mem.userapiIdle, _, err = api.memory(); err != nil {
		return nil, err
	}

	for round := range cfg.rounds {
		var results []result
		prefix := fmt.Sprintf("%s round %d/%d ", name, round+1, cfg.rounds)
		for _, c := range cfg.concurrency {
			rs, err := runAll(ctx, h, scenarios(), c, cfg.bounds, cfg.slices, func(r result) { progress(stderr, prefix, r) })
			if err != nil {
				return nil, err
			}
			results = append(results, rs...)
		}
		br.rounds = append(br.rounds, results)
	}

	if err := sleep(ctx, cfg.idleWait); err != nil {
		return nil, err
	}
	if br.mem.portcullisAfter, br.mem.portcullisPeak, err = srv.memory(); err != nil {
		return nil, err
	}
	if br.mem.userapiAfter, br.mem.userapiPeak, err = api.memory(); err != nil {
		return nil, err
	}
	return br, nil
}

// portcullisCLI runs the portcullis command line on one database.
type portcullisCLI struct {
	bin string
	env []string // its whole environment: the DSN, the secrets key, …
}

// run runs portcullis with args and stdin and returns its standard
// output; a non-zero exit is an error carrying its standard error.
func (p portcullisCLI) run(ctx context.Context, stdin string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, p.bin, args...)
	cmd.Env, cmd.Stdin = p.env, strings.NewReader(stdin)
	var errOut strings.Builder
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("portcullis %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return out, nil
}

// provision migrates the database and creates the users bench0 …
// bench<users-1>, each with benchPassword.
func (p portcullisCLI) provision(ctx context.Context, users int) error {
	if _, err := p.run(ctx, "", "migrate"); err != nil {
		return err
	}
	for i := range users {
		if _, err := p.run(ctx, benchPassword+"\n", "users", "create", "--username", "bench"+strconv.Itoa(i), "--password-stdin"); err != nil {
			return err
		}
	}
	return nil
}

// createClient registers a client (clients create with args) and returns
// its ID and secret.
func (p portcullisCLI) createClient(ctx context.Context, args ...string) (credentials, error) {
	out, err := p.run(ctx, "", append([]string{"clients", "create", "--output", "json"}, args...)...)
	if err != nil {
		return credentials{}, err
	}
	var c struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	if err := json.Unmarshal(out, &c); err != nil || c.ID == "" {
		return credentials{}, fmt.Errorf("clients create printed %.200q", out)
	}
	return credentials{c.ID, c.Secret}, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// child is a server bench started.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string // path of its output
	base string // its base URL
}

// startListening starts bin on n free loopback ports: setup returns the
// environment, arguments and health URL for the addresses. It waits until
// the health URL answers 200. A port found free can be taken before the
// server binds it: then it starts again on fresh ports, up to 3 times.
func startListening(ctx context.Context, bin, logPath string, n int, setup func(addrs []string) (env, args []string, health string)) (*child, error) {
	for attempt := 1; ; attempt++ {
		addrs, err := freeAddrs(n)
		if err != nil {
			return nil, err
		}
		env, args, health := setup(addrs)
		c, err := startChild(bin, env, logPath, args...)
		if err != nil {
			return nil, err
		}
		c.base = "http://" + addrs[0]
		err = c.waitHealthy(ctx, health)
		if err == nil {
			return c, nil
		}
		c.stop()
		if attempt < 3 && strings.Contains(c.output(), "address already in use") {
			continue
		}
		return nil, err
	}
}

// freeAddrs returns n distinct loopback addresses whose ports were free a
// moment ago.
func freeAddrs(n int) ([]string, error) {
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

func startChild(bin string, env []string, logPath string, args ...string) (*child, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	c := &child{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(c.done)
	}()
	return c, nil
}

// stop sends SIGTERM and waits for the process to exit, killing it after
// 15 s.
func (c *child) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// output returns the last 4 KiB the process wrote.
func (c *child) output() string {
	b, _ := os.ReadFile(c.log)
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(b)
}

// waitHealthy polls url until it answers 200, for at most 60 s.
func (c *child) waitHealthy(ctx context.Context, url string) error {
	h := &harness{client: newClient(1)}
	defer h.disconnect()
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-c.done:
			return fmt.Errorf("%s exited while starting:\n%s", filepath.Base(c.cmd.Path), c.output())
		default:
		}
		if last = h.expect("GET", url, "", "", nil)(ctx); last == nil {
			return nil
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("%s not healthy after 60 s (%v):\n%s", filepath.Base(c.cmd.Path), last, c.output())
}

// memory reads VmRSS and VmHWM of the process from /proc, in KiB.
func (c *child) memory() (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0, 0, fmt.Errorf("memory of %s: %w", filepath.Base(c.cmd.Path), err)
	}
	return parseStatus(b)
}

// parseStatus reads VmRSS and VmHWM (KiB) from a /proc/PID/status file.
func parseStatus(b []byte) (rss, hwm int64, err error) {
	var found int
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc status %s: %q", k, v)
		}
		found++
		if k == "VmRSS" {
			rss = n
		} else {
			hwm = n
		}
	}
	if found != 2 {
		return 0, 0, errors.New("/proc status lacks VmRSS or VmHWM")
	}
	return rss, hwm, nil
}
