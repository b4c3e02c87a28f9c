package testkit

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-auth/portcullis/internal/galera"
)

// GaleraEnv names the environment variable that makes a missing Galera
// (mariadbd, galera-4, rsync) fail the tests that need it instead of
// skipping them. .ci/run sets it.
const GaleraEnv = "PORTCULLIS_TEST_GALERA"

// Galera is a MariaDB Galera cluster on loopback, started by StartGalera
// for one test: every node a mariadbd process of its own, with its own
// data directory and ports, configured with deploy/galera/portcullis.cnf
// (internal/galera runs the processes).
type Galera struct {
	t       testing.TB
	cluster *galera.Cluster
	Nodes   []*GaleraNode
}

// GaleraNode is one node of a Galera cluster: a galera.Node (Index, Name,
// Port, Addr, Config, DSN, Status, WaitSynced, WaitClusterSize, PID,
// Stop) whose Start and Exec fail the test instead of returning an error.
type GaleraNode struct {
	*galera.Node
	g *Galera
}

// StartGalera starts an n-node Galera cluster (n ≥ 1) and waits until
// every node is synced. It skips the test, with the reason, when mariadbd,
// the galera-4 provider or rsync is missing, unless $PORTCULLIS_TEST_GALERA
// is set, when it fails it. Every node is stopped, by its PID, when the
// test ends; when the test failed, the nodes' error logs are in its log.
func StartGalera(t testing.TB, n int) *Galera {
	t.Helper()
	if testing.Short() {
		t.Skip("Galera cluster tests start three mariadbd processes; skipped in -short mode")
	}
	if missing := galera.Missing(); missing != "" {
		if os.Getenv(GaleraEnv) != "" {
			t.Fatalf("%s is set but %s", GaleraEnv, missing)
		}
		t.Skipf("skipping this Galera test: %s (install mariadb-server, galera-4 and rsync; set %s=1 to make this a failure)", missing, GaleraEnv)
	}
	cnf, err := galera.ModuleFile(galera.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	// A port freePorts found free can be taken by another process (a
	// parallel test's server) before mariadbd binds it: start again on
	// fresh ports, a bounded number of times, as proctest.Serve does.
	var c *galera.Cluster
	for attempt := 1; ; attempt++ {
		c, err = galera.Start(cnf, n)
		if err == nil {
			break
		}
		if attempt < 3 && strings.Contains(err.Error(), "Address already in use") {
			t.Logf("a port was taken meanwhile; starting the cluster again on other ports")
			continue
		}
		t.Fatal(err)
	}
	g := &Galera{t: t, cluster: c}
	for _, node := range c.Nodes {
		g.Nodes = append(g.Nodes, &GaleraNode{Node: node, g: g})
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(c.Logs(40))
		}
		c.Close()
	})
	return g
}

// Start starts a stopped node again; it rejoins the cluster (state
// transfer from a donor) and Start returns once it is synced.
func (node *GaleraNode) Start() {
	node.g.t.Helper()
	if err := node.Node.Start(); err != nil {
		node.g.t.Fatal(err)
	}
}

// Exec runs statements on the node as root, failing the test on error.
func (node *GaleraNode) Exec(query string, args ...any) {
	node.g.t.Helper()
	db, err := node.Open("")
	if err != nil {
		node.g.t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(query, args...); err != nil {
		node.g.t.Fatalf("galera %s: %s: %v", node.Name, query, err)
	}
}

// DB opens a connection pool (of one connection) to database dbName on
// the node as root, closed when the test ends; it fails the test on
// error.
func (node *GaleraNode) DB(dbName string) *sql.DB {
	node.g.t.Helper()
	db, err := node.Open(dbName)
	if err != nil {
		node.g.t.Fatal(err)
	}
	node.g.t.Cleanup(func() { _ = db.Close() })
	return db
}

// NewDatabase creates a database with a random name (replicated to every
// node) and returns its name; it is dropped when the test ends.
func (g *Galera) NewDatabase(t testing.TB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "portcullis_g_" + hex.EncodeToString(b[:])
	g.Nodes[0].Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
	// The other nodes apply the CREATE in total order but on their own
	// time, and connecting with a database name is no causal read: wait
	// until every running node has it, or a connection to a lagging node
	// fails with 1049 (seen in CI).
	for _, node := range g.Nodes {
		if node.PID() == 0 {
			continue
		}
		if err := waitDatabase(node, name, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, node := range g.Nodes {
			if node.PID() == 0 {
				continue
			}
			db, err := node.Open("")
			if err != nil {
				continue
			}
			_, err = db.Exec("DROP DATABASE IF EXISTS " + name)
			_ = db.Close()
			if err == nil {
				return
			}
		}
	})
	return name
}

// waitDatabase waits until database name exists on node.
func waitDatabase(node *GaleraNode, name string, timeout time.Duration) error {
	db, err := node.Open("")
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(timeout)
	for {
		var n int
		err := db.QueryRow("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", name).Scan(&n)
		if err == nil && n == 1 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("galera %s: database %s not there after %s (%v)", node.Name, name, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
