package testkit

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
)

// GaleraEnv names the environment variable that makes a missing Galera
// (mariadbd, galera-4, rsync) fail the tests that need it instead of
// skipping them. .ci/run sets it.
const GaleraEnv = "PORTCULLIS_TEST_GALERA"

// Galera binaries and files StartGalera needs.
const (
	galeraMariadbd  = "/usr/sbin/mariadbd"
	galeraProvider  = "/usr/lib/galera/libgalera_smm.so"
	galeraConfig    = "deploy/galera/portcullis.cnf" // relative to the module root
	galeraReadyWait = 90 * time.Second
)

// Galera is a MariaDB Galera cluster on loopback, started by StartGalera
// for one test: every node a mariadbd process of its own, with its own
// data directory and ports, configured with deploy/galera/portcullis.cnf.
type Galera struct {
	t     testing.TB
	dir   string
	Nodes []*GaleraNode
	gcomm string // wsrep_cluster_address listing every node
}

// GaleraNode is one node of a Galera cluster.
type GaleraNode struct {
	g       *Galera
	Index   int
	Name    string
	Port    int // the MySQL protocol port on 127.0.0.1
	repl    int // group communication port
	ist     int
	sst     int
	datadir string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// StartGalera starts an n-node Galera cluster (n ≥ 1) and waits until
// every node is synced. It skips the test, with the reason, when mariadbd,
// the galera-4 provider or rsync is missing, unless $PORTCULLIS_TEST_GALERA
// is set, when it fails it. Every node is stopped, by its PID, when the
// test ends.
func StartGalera(t testing.TB, n int) *Galera {
	t.Helper()
	if testing.Short() {
		t.Skip("Galera cluster tests start three mariadbd processes; skipped in -short mode")
	}
	if missing := galeraMissing(); missing != "" {
		if os.Getenv(GaleraEnv) != "" {
			t.Fatalf("%s is set but %s", GaleraEnv, missing)
		}
		t.Skipf("skipping this Galera test: %s (install mariadb-server, galera-4 and rsync; set %s=1 to make this a failure)", missing, GaleraEnv)
	}
	cnf, err := moduleFile(galeraConfig)
	if err != nil {
		t.Fatal(err)
	}
	// mariadbd refuses to run as root without --user, and rsync's SST
	// daemon drops root to nobody, who cannot write a root-owned data
	// directory: as root, run the nodes as the mysql user Debian's
	// package creates.
	runAs, uid, gid := "", -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("mysql")
		if err != nil {
			t.Fatalf("running as root, Galera nodes need the mysql user (mariadb-server creates it): %v", err)
		}
		runAs = "mysql"
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	}
	dir, err := os.MkdirTemp("", "portcullis-galera-")
	if err != nil {
		t.Fatal(err)
	}
	g := &Galera{t: t, dir: dir}
	t.Cleanup(g.stopAll)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 4*n)
	var addrs []string
	for i := range n {
		node := &GaleraNode{
			g: g, Index: i, Name: fmt.Sprintf("node%d", i+1),
			Port: ports[4*i], repl: ports[4*i+1], ist: ports[4*i+2], sst: ports[4*i+3],
			datadir: filepath.Join(dir, fmt.Sprintf("node%d", i+1)),
		}
		g.Nodes = append(g.Nodes, node)
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", node.repl))
	}
	g.gcomm = "gcomm://" + strings.Join(addrs, ",")

	// One at a time: concurrent bootstraps of mariadb-install-db collide.
	for _, node := range g.Nodes {
		if err := node.install(cnf, runAs, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Nodes[0].start(true); err != nil {
		t.Fatal(err)
	}
	if err := g.Nodes[0].WaitSynced(galeraReadyWait); err != nil {
		t.Fatal(err)
	}
	for _, node := range g.Nodes[1:] {
		if err := node.start(false); err != nil {
			t.Fatal(err)
		}
	}
	for _, node := range g.Nodes {
		if err := node.WaitSynced(galeraReadyWait); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Nodes[0].WaitClusterSize(n, galeraReadyWait); err != nil {
		t.Fatal(err)
	}
	return g
}

// galeraMissing names what StartGalera needs and this machine lacks.
func galeraMissing() string {
	for _, f := range []string{galeraMariadbd, galeraProvider} {
		if _, err := os.Stat(f); err != nil {
			return f + " is missing"
		}
	}
	for _, cmd := range []string{"mariadb-install-db", "rsync"} {
		if _, err := exec.LookPath(cmd); err != nil {
			return cmd + " is not on PATH"
		}
	}
	return ""
}

// moduleFile returns the absolute path of rel, a path relative to the
// module root (the nearest directory above the working directory holding
// go.mod).
func moduleFile(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, rel), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testkit: no go.mod above the working directory")
		}
		dir = parent
	}
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	out := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out
}

// install creates the node's data directory and its option file.
func (node *GaleraNode) install(cnf, runAs string, uid, gid int) error {
	// A private tmpdir: concurrent mariadb-install-db runs (clusters of
	// tests in other packages) collide on temporary table names in /tmp.
	tmp := node.datadir + ".tmp"
	for _, d := range []string{node.datadir, tmp} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return err
		}
		if uid >= 0 {
			if err := os.Lchown(d, uid, gid); err != nil {
				return err
			}
		}
	}
	opts := fmt.Sprintf(`!include %s
[mariadbd]
datadir = %s
tmpdir = %s
socket = %s
pid_file = %s
log_error = %s
port = %d
bind_address = 127.0.0.1
skip_name_resolve = ON
innodb_buffer_pool_size = 32M
innodb_log_file_size = 16M
innodb_flush_log_at_trx_commit = 2
performance_schema = OFF
max_connections = 400

[galera]
wsrep_cluster_name = portcullis-test
wsrep_cluster_address = %s
wsrep_node_name = %s
wsrep_node_address = 127.0.0.1:%d
wsrep_sst_receive_address = 127.0.0.1:%d
wsrep_provider_options = "gmcast.listen_addr=tcp://127.0.0.1:%d;ist.recv_addr=127.0.0.1:%d;gcache.size=64M;evs.suspect_timeout=PT3S;evs.inactive_timeout=PT6S;evs.install_timeout=PT4S"
`, cnf, node.datadir, tmp, filepath.Join(node.datadir, "mariadbd.sock"), filepath.Join(node.datadir, "mariadbd.pid"), node.datadir+".err", node.Port,
		node.g.gcomm, node.Name, node.repl, node.sst, node.repl, node.ist)
	if runAs != "" {
		opts = strings.Replace(opts, "[mariadbd]\n", "[mariadbd]\nuser = "+runAs+"\n", 1)
	}
	if err := os.WriteFile(node.datadir+".cnf", []byte(opts), 0o644); err != nil {
		return err
	}
	args := []string{"--no-defaults", "--datadir=" + node.datadir, "--tmpdir=" + tmp, "--auth-root-authentication-method=normal", "--skip-test-db"}
	if runAs != "" {
		args = append(args, "--user="+runAs)
	}
	if out, err := exec.Command("mariadb-install-db", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("galera %s: mariadb-install-db: %v\n%s", node.Name, err, out)
	}
	if uid >= 0 {
		if err := os.WriteFile(node.datadir+".err", nil, 0o640); err != nil {
			return err
		}
		if err := os.Lchown(node.datadir+".err", uid, gid); err != nil {
			return err
		}
		if err := filepath.Walk(node.datadir, func(path string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(path, uid, gid)
		}); err != nil {
			return err
		}
	}
	return nil
}

// start starts the node's mariadbd; bootstrap starts a new cluster
// (--wsrep-new-cluster), which only the first node of a new cluster does.
func (node *GaleraNode) start(bootstrap bool) error {
	node.mu.Lock()
	defer node.mu.Unlock()
	if node.cmd != nil {
		return fmt.Errorf("galera %s: already running", node.Name)
	}
	args := []string{"--defaults-file=" + node.datadir + ".cnf"}
	if bootstrap {
		args = append(args, "--wsrep-new-cluster")
	}
	cmd := exec.Command(galeraMariadbd, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("galera %s: start: %w", node.Name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	node.cmd, node.done = cmd, done
	return nil
}

// Start starts a stopped node again; it rejoins the cluster (state
// transfer from a donor) and Start returns once it is synced.
func (node *GaleraNode) Start() {
	node.g.t.Helper()
	if err := node.start(false); err != nil {
		node.g.t.Fatal(err)
	}
	if err := node.WaitSynced(galeraReadyWait); err != nil {
		node.g.t.Fatal(err)
	}
}

// PID returns the node's mariadbd process ID, 0 when it is not running.
func (node *GaleraNode) PID() int {
	node.mu.Lock()
	defer node.mu.Unlock()
	if node.cmd == nil {
		return 0
	}
	return node.cmd.Process.Pid
}

// Stop stops the node's mariadbd by its PID with sig (SIGTERM: a clean
// shutdown; SIGKILL: a crash) and waits for the process to end (after
// 60 s it is killed).
func (node *GaleraNode) Stop(sig syscall.Signal) {
	node.mu.Lock()
	cmd, done := node.cmd, node.done
	node.cmd, node.done = nil, nil
	node.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(cmd.Process.Pid, sig)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	// SST helpers (rsync daemons) run in the node's process group.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// stopAll stops every node and removes the cluster's files, keeping each
// node's error log in the test log when the test failed.
func (g *Galera) stopAll() {
	for _, node := range g.Nodes {
		node.Stop(syscall.SIGTERM)
	}
	if g.t.Failed() {
		for _, node := range g.Nodes {
			if b, err := os.ReadFile(node.datadir + ".err"); err == nil {
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				if len(lines) > 40 {
					lines = lines[len(lines)-40:]
				}
				g.t.Logf("galera %s error log (last lines):\n%s", node.Name, strings.Join(lines, "\n"))
			}
		}
	}
	_ = os.RemoveAll(g.dir)
}

// Addr returns the node's host:port.
func (node *GaleraNode) Addr() string { return fmt.Sprintf("127.0.0.1:%d", node.Port) }

// Config returns a go-sql-driver configuration for root on the node,
// database dbName (none when empty), with parseTime.
func (node *GaleraNode) Config(dbName string) *gomysql.Config {
	cfg := gomysql.NewConfig()
	cfg.User = "root"
	cfg.Net = "tcp"
	cfg.Addr = node.Addr()
	cfg.DBName = dbName
	cfg.ParseTime = true
	cfg.Timeout = 5 * time.Second
	return cfg
}

// DSN returns a Portcullis DSN ("mysql://…") for database dbName on the
// node.
func (node *GaleraNode) DSN(dbName string) string {
	return "mysql://" + node.Config(dbName).FormatDSN()
}

// Exec runs statements on the node as root, failing the test on error.
func (node *GaleraNode) Exec(query string, args ...any) {
	node.g.t.Helper()
	db := node.open("")
	defer db.Close()
	if _, err := db.Exec(query, args...); err != nil {
		node.g.t.Fatalf("galera %s: %s: %v", node.Name, query, err)
	}
}

func (node *GaleraNode) open(dbName string) *sql.DB {
	conn, err := gomysql.NewConnector(node.Config(dbName))
	if err != nil {
		node.g.t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(1)
	return db
}

// Status returns the node's global status variable name (e.g.
// "wsrep_local_state_comment"), or an error when the node does not answer.
func (node *GaleraNode) Status(name string) (string, error) {
	db := node.open("")
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var v string
	if err := db.QueryRowContext(ctx, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = ?",
		strings.ToUpper(name)).Scan(&v); err != nil {
		return "", err
	}
	return v, nil
}

// WaitSynced waits until the node answers and reports itself Synced and
// ready, or fails after timeout (or as soon as its process exits).
func (node *GaleraNode) WaitSynced(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		node.mu.Lock()
		done := node.done
		node.mu.Unlock()
		if done == nil {
			return fmt.Errorf("galera %s: not running", node.Name)
		}
		select {
		case <-done:
			return fmt.Errorf("galera %s: mariadbd exited while starting; see %s", node.Name, node.tail())
		default:
		}
		state, err := node.Status("wsrep_local_state_comment")
		ready, _ := node.Status("wsrep_ready")
		if err == nil && state == "Synced" && ready == "ON" {
			return nil
		}
		last = fmt.Sprintf("state %q ready %q err %v", state, ready, err)
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("galera %s: not synced after %s (%s); log: %s", node.Name, timeout, last, node.tail())
}

// WaitClusterSize waits until the node sees a primary component of size
// nodes.
func (node *GaleraNode) WaitClusterSize(size int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		v, err := node.Status("wsrep_cluster_size")
		if err == nil && v == strconv.Itoa(size) {
			return nil
		}
		last = fmt.Sprintf("%q %v", v, err)
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("galera %s: cluster size not %d after %s (last %s)", node.Name, size, timeout, last)
}

// tail returns the last lines of the node's error log.
func (node *GaleraNode) tail() string {
	b, _ := os.ReadFile(node.datadir + ".err")
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "\n" + strings.Join(lines, "\n")
}

// NewDatabase creates a database with a random name (replicated to every
// node) and returns its name; it is dropped when the test ends.
func (g *Galera) NewDatabase(t testing.TB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "portcullis_g_" + hex.EncodeToString(b[:])
	g.Nodes[0].Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
	t.Cleanup(func() {
		for _, node := range g.Nodes {
			if node.PID() == 0 {
				continue
			}
			db := node.open("")
			_, err := db.Exec("DROP DATABASE IF EXISTS " + name)
			_ = db.Close()
			if err == nil {
				return
			}
		}
	})
	return name
}
