// Package galera runs MariaDB servers on loopback for Portcullis's tests
// and its load generator: a Galera cluster of mariadbd processes (Start),
// each with its own data directory, ports and option file including
// deploy/galera/portcullis.cnf, and a standalone mariadbd with the same
// settings but no Galera (StartStandalone), to compare against. Every
// process is started in its own process group and stopped by its PID.
//
// It needs mariadbd, mariadb-install-db, the galera-4 provider and rsync
// (Missing names what is absent). Run as root, the servers run as the
// mysql user, as mariadbd and rsync's state transfer require.
package galera

import (
	"context"
	"database/sql"
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
	"time"

	gomysql "github.com/go-sql-driver/mysql"
)

// Binaries and files the servers need.
const (
	Mariadbd = "/usr/sbin/mariadbd"
	Provider = "/usr/lib/galera/libgalera_smm.so"
	// ConfigPath is the option file every server includes, relative to
	// the module root (ModuleFile finds it).
	ConfigPath = "deploy/galera/portcullis.cnf"
)

// ReadyWait bounds how long Start waits for a node to be synced (and
// StartStandalone for the server to answer).
const ReadyWait = 90 * time.Second

// Missing names what the servers need and this machine lacks, or returns
// "" when nothing is missing.
func Missing() string {
	for _, f := range []string{Mariadbd, Provider} {
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

// ModuleFile returns the absolute path of rel, a path relative to the
// module root: the nearest directory at or above the working directory
// holding go.mod.
func ModuleFile(rel string) (string, error) {
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
			return "", errors.New("galera: no go.mod at or above the working directory")
		}
		dir = parent
	}
}

// Cluster is a Galera cluster of mariadbd processes on loopback.
type Cluster struct {
	dir   string
	gcomm string // wsrep_cluster_address listing every node
	// Nodes are the cluster's nodes; Nodes[0] bootstrapped it.
	Nodes []*Node
}

// Node is one mariadbd process: a node of a Cluster, or a standalone
// server (StartStandalone).
type Node struct {
	cluster *Cluster // nil for a standalone server
	// Index is the node's position in Cluster.Nodes (0 for a standalone
	// server).
	Index int
	// Name is the node's name (wsrep_node_name): "node1", "node2", …, or
	// "standalone".
	Name string
	// Port is the MySQL protocol port on 127.0.0.1.
	Port    int
	repl    int // group communication port
	ist     int
	sst     int
	datadir string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// runAs returns the user mariadbd must run as and its IDs: as root, the
// mysql user that Debian's mariadb-server package creates (mariadbd
// refuses root without --user, and rsync's state-transfer daemon drops
// root to nobody, who cannot write a root-owned data directory);
// otherwise nobody else (uid -1).
func runAs() (name string, uid, gid int, err error) {
	if os.Geteuid() != 0 {
		return "", -1, -1, nil
	}
	u, err := user.Lookup("mysql")
	if err != nil {
		return "", -1, -1, fmt.Errorf("galera: running as root, the servers need the mysql user (mariadb-server creates it): %w", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return "mysql", uid, gid, nil
}

// Start starts an n-node Galera cluster (n ≥ 1) configured with cnf (the
// path of deploy/galera/portcullis.cnf) and returns once every node is
// synced and sees all n. On error it stops whatever it started. Close
// stops the cluster.
func Start(cnf string, n int) (*Cluster, error) {
	if n < 1 {
		return nil, errors.New("galera: a cluster needs at least one node")
	}
	if missing := Missing(); missing != "" {
		return nil, errors.New("galera: " + missing)
	}
	as, uid, gid, err := runAs()
	if err != nil {
		return nil, err
	}
	dir, err := newDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir}
	ports, err := freePorts(4 * n)
	if err != nil {
		c.Close()
		return nil, err
	}
	var addrs []string
	for i := range n {
		node := &Node{
			cluster: c, Index: i, Name: fmt.Sprintf("node%d", i+1),
			Port: ports[4*i], repl: ports[4*i+1], ist: ports[4*i+2], sst: ports[4*i+3],
			datadir: filepath.Join(dir, fmt.Sprintf("node%d", i+1)),
		}
		c.Nodes = append(c.Nodes, node)
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", node.repl))
	}
	c.gcomm = "gcomm://" + strings.Join(addrs, ",")

	fail := func(err error) (*Cluster, error) {
		c.Close()
		return nil, err
	}
	// One at a time: concurrent runs of mariadb-install-db collide.
	for _, node := range c.Nodes {
		if err := node.install(cnf, as, uid, gid); err != nil {
			return fail(err)
		}
	}
	if err := c.Nodes[0].start(true); err != nil {
		return fail(err)
	}
	if err := c.Nodes[0].WaitSynced(ReadyWait); err != nil {
		return fail(err)
	}
	for _, node := range c.Nodes[1:] {
		if err := node.start(false); err != nil {
			return fail(err)
		}
	}
	for _, node := range c.Nodes {
		if err := node.WaitSynced(ReadyWait); err != nil {
			return fail(err)
		}
	}
	if err := c.Nodes[0].WaitClusterSize(n, ReadyWait); err != nil {
		return fail(err)
	}
	return c, nil
}

// StartStandalone starts one mariadbd with the settings of cnf (the path
// of deploy/galera/portcullis.cnf) and the same tuning as a cluster node,
// but without Galera (wsrep_provider=none): the single server a cluster
// is compared with. It returns once the server answers. Close stops it.
func StartStandalone(cnf string) (*Node, error) {
	if _, err := os.Stat(Mariadbd); err != nil {
		return nil, errors.New("galera: " + Mariadbd + " is missing")
	}
	as, uid, gid, err := runAs()
	if err != nil {
		return nil, err
	}
	dir, err := newDir()
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(1)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	node := &Node{Name: "standalone", Port: ports[0], datadir: filepath.Join(dir, "standalone")}
	if err := node.install(cnf, as, uid, gid); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := node.start(false); err != nil {
		node.Close()
		return nil, err
	}
	if err := node.WaitReady(ReadyWait); err != nil {
		node.Close()
		return nil, err
	}
	return node, nil
}

// newDir creates the directory holding a run's data directories, readable
// by the mysql user.
func newDir() (string, error) {
	dir, err := os.MkdirTemp("", "portcullis-galera-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// freePorts returns n distinct TCP ports on 127.0.0.1 that were free a
// moment ago.
func freePorts(n int) ([]int, error) {
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
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// Close stops every node (SIGTERM, by PID) and removes the cluster's
// files.
func (c *Cluster) Close() {
	for _, node := range c.Nodes {
		node.Stop(syscall.SIGTERM)
	}
	_ = os.RemoveAll(c.dir)
}

// Logs returns the last lines (at most lines) of every node's error log,
// each under its node's name.
func (c *Cluster) Logs(lines int) string {
	var b strings.Builder
	for _, node := range c.Nodes {
		fmt.Fprintf(&b, "galera %s error log (last lines):\n%s\n", node.Name, node.Tail(lines))
	}
	return b.String()
}

// Close stops a standalone server and removes its files; on a cluster's
// node, it only stops the node (Cluster.Close removes the files).
func (node *Node) Close() {
	node.Stop(syscall.SIGTERM)
	if node.cluster == nil {
		_ = os.RemoveAll(filepath.Dir(node.datadir))
	}
}

// tuning is what every server of this package runs with besides cnf: small
// buffers for loopback tests, and no fsync per commit (a cluster's
// durability is the other nodes; the standalone server gets the same, so
// that a comparison measures Galera and nothing else).
const tuning = `bind_address = 127.0.0.1
skip_name_resolve = ON
innodb_buffer_pool_size = 32M
innodb_log_file_size = 16M
innodb_flush_log_at_trx_commit = 2
performance_schema = OFF
max_connections = 400
`

// install creates the node's data directory and its option file.
func (node *Node) install(cnf, runAs string, uid, gid int) error {
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
	opts := fmt.Sprintf("!include %s\n[mariadbd]\ndatadir = %s\ntmpdir = %s\nsocket = %s\npid_file = %s\nlog_error = %s\nport = %d\n%s",
		cnf, node.datadir, tmp, filepath.Join(node.datadir, "mariadbd.sock"), filepath.Join(node.datadir, "mariadbd.pid"),
		node.datadir+".err", node.Port, tuning)
	if runAs != "" {
		opts += "user = " + runAs + "\n"
	}
	if c := node.cluster; c != nil {
		opts += fmt.Sprintf(`
[galera]
wsrep_cluster_name = portcullis-test
wsrep_cluster_address = %s
wsrep_node_name = %s
wsrep_node_address = 127.0.0.1:%d
wsrep_sst_receive_address = 127.0.0.1:%d
wsrep_provider_options = "gmcast.listen_addr=tcp://127.0.0.1:%d;ist.recv_addr=127.0.0.1:%d;gcache.size=64M;evs.suspect_timeout=PT3S;evs.inactive_timeout=PT6S;evs.install_timeout=PT4S"
`, c.gcomm, node.Name, node.repl, node.sst, node.repl, node.ist)
	} else {
		// The same settings, without Galera: no provider is loaded.
		opts += "\n[galera]\nwsrep_on = OFF\nwsrep_provider = none\n"
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
func (node *Node) start(bootstrap bool) error {
	node.mu.Lock()
	defer node.mu.Unlock()
	if node.cmd != nil {
		return fmt.Errorf("galera %s: already running", node.Name)
	}
	args := []string{"--defaults-file=" + node.datadir + ".cnf"}
	if bootstrap {
		args = append(args, "--wsrep-new-cluster")
	}
	cmd := exec.Command(Mariadbd, args...)
	// Its own process group: a terminal's ^C reaches the parent, which
	// stops the servers itself, and Stop can reach the SST helpers.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("galera %s: start: %w", node.Name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	node.cmd, node.done = cmd, done
	return nil
}

// Start starts a stopped node again and returns once it is ready: a
// cluster's node rejoins (state transfer from a donor) and is synced; a
// standalone server answers.
func (node *Node) Start() error {
	if err := node.start(false); err != nil {
		return err
	}
	if node.cluster == nil {
		return node.WaitReady(ReadyWait)
	}
	return node.WaitSynced(ReadyWait)
}

// PID returns the node's mariadbd process ID, 0 when it is not running.
func (node *Node) PID() int {
	node.mu.Lock()
	defer node.mu.Unlock()
	if node.cmd == nil {
		return 0
	}
	return node.cmd.Process.Pid
}

// Stop stops the node's mariadbd by its PID with sig (SIGTERM: a clean
// shutdown; SIGKILL: a crash) and waits for the process to end (after
// 60 s it is killed). It does nothing when the node is not running.
func (node *Node) Stop(sig syscall.Signal) {
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

// Addr returns the node's host:port.
func (node *Node) Addr() string { return fmt.Sprintf("127.0.0.1:%d", node.Port) }

// Config returns a go-sql-driver configuration for root (no password) on
// the node, database dbName (none when empty), with parseTime.
func (node *Node) Config(dbName string) *gomysql.Config {
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
func (node *Node) DSN(dbName string) string {
	return "mysql://" + node.Config(dbName).FormatDSN()
}

// Open returns a pool of at most one connection to the node as root, on
// database dbName (none when empty). The caller closes it.
func (node *Node) Open(dbName string) (*sql.DB, error) {
	conn, err := gomysql.NewConnector(node.Config(dbName))
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(1)
	return db, nil
}

// Status returns the node's global status variable name (e.g.
// "wsrep_local_state_comment"), or an error when the node does not
// answer within 3 s.
func (node *Node) Status(name string) (string, error) {
	db, err := node.Open("")
	if err != nil {
		return "", err
	}
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
func (node *Node) WaitSynced(timeout time.Duration) error {
	return node.wait(timeout, func() (bool, string) {
		state, err := node.Status("wsrep_local_state_comment")
		ready, _ := node.Status("wsrep_ready")
		return err == nil && state == "Synced" && ready == "ON", fmt.Sprintf("state %q ready %q err %v", state, ready, err)
	})
}

// WaitReady waits until the node answers a query, or fails after timeout
// (or as soon as its process exits).
func (node *Node) WaitReady(timeout time.Duration) error {
	return node.wait(timeout, func() (bool, string) {
		_, err := node.Status("uptime")
		return err == nil, fmt.Sprint(err)
	})
}

// wait polls ready every 200 ms until it reports true, the timeout passes
// or the process exits.
func (node *Node) wait(timeout time.Duration, ready func() (bool, string)) error {
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
			return fmt.Errorf("galera %s: mariadbd exited while starting; log:\n%s", node.Name, node.Tail(15))
		default:
		}
		var ok bool
		if ok, last = ready(); ok {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("galera %s: not ready after %s (%s); log:\n%s", node.Name, timeout, last, node.Tail(15))
}

// WaitClusterSize waits until the node sees a primary component of size
// nodes, or fails after timeout.
func (node *Node) WaitClusterSize(size int, timeout time.Duration) error {
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

// Tail returns the last lines (at most lines) of the node's error log.
func (node *Node) Tail(lines int) string {
	b, _ := os.ReadFile(node.datadir + ".err")
	ls := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}
