package testkit_test

import (
	"syscall"
	"testing"

	"github.com/portcullis-auth/portcullis/internal/testkit"
)

// TestGaleraCluster starts a three-node cluster, writes on one node and
// reads on the others, stops a node by its PID and starts it again.
func TestGaleraCluster(t *testing.T) {
	g := testkit.StartGalera(t, 3)
	db := g.NewDatabase(t)
	g.Nodes[1].Exec("CREATE TABLE " + db + ".t (id INT PRIMARY KEY)")
	g.Nodes[2].Exec("INSERT INTO " + db + ".t VALUES (1)")
	for _, n := range g.Nodes {
		if v, err := n.Status("wsrep_cluster_size"); err != nil || v != "3" {
			t.Fatalf("%s: cluster size %q, %v", n.Name, v, err)
		}
	}
	g.Nodes[2].Stop(syscall.SIGKILL)
	if err := g.Nodes[0].WaitClusterSize(2, 30e9); err != nil {
		t.Fatal(err)
	}
	g.Nodes[0].Exec("INSERT INTO " + db + ".t VALUES (2)")
	g.Nodes[2].Start()
	if err := g.Nodes[0].WaitClusterSize(3, 30e9); err != nil {
		t.Fatal(err)
	}
}
