package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis-auth/portcullis/configs"
	"github.com/portcullis-auth/portcullis/internal/proctest"
	"github.com/portcullis-auth/portcullis/storage"
)

// Docker is not available where these tests run, so the compose files
// under deploy/ are checked here against what they configure: the
// portcullis and userapi commands and environment they run, the services
// they connect, and (for deploy/galera) the Galera nodes and their
// settings.

// composeFile is the part of a docker-compose.yml these tests read.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   yaml.Node         `yaml:"depends_on"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// dependsOn returns the services s depends on and the condition of each
// ("" in the short, list form).
func (s composeService) dependsOn(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch s.DependsOn.Kind {
	case 0:
	case yaml.SequenceNode:
		var names []string
		if err := s.DependsOn.Decode(&names); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			out[n] = ""
		}
	default:
		var m map[string]struct {
			Condition string `yaml:"condition"`
		}
		if err := s.DependsOn.Decode(&m); err != nil {
			t.Fatal(err)
		}
		for n, d := range m {
			out[n] = d.Condition
		}
	}
	return out
}

// readCompose parses a compose file (YAML anchors and merge keys
// resolved).
func readCompose(t *testing.T, path string) composeFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(f.Services) == 0 {
		t.Fatalf("%s: no services", path)
	}
	return f
}

// composeVar is compose's ${NAME}, ${NAME:-default} and ${NAME:?error}.
var composeVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:[-?])([^}]*))?\}`)

// interpolate substitutes compose variables in s from env as docker
// compose does, failing the test where compose would refuse to start
// (${NAME:?…} unset, or a bare $).
func interpolate(t *testing.T, s string, env map[string]string) string {
	t.Helper()
	out := composeVar.ReplaceAllStringFunc(s, func(m string) string {
		g := composeVar.FindStringSubmatch(m)
		v := env[g[1]]
		switch {
		case v != "":
			return v
		case g[2] == ":-":
			return g[3]
		case g[2] == ":?":
			t.Errorf("%s is required (%s)", g[1], g[3])
		}
		return ""
	})
	if strings.Contains(strings.ReplaceAll(out, "$$", ""), "$") {
		t.Errorf("%q: a $ compose cannot interpolate", s)
	}
	return strings.ReplaceAll(out, "$$", "$")
}

// knownEnv returns the environment variable of every configuration key
// (configs.Load reads PORTCULLIS_ plus the key's dotted YAML path, upper
// case, "." → "_", and ignores any other PORTCULLIS_ variable).
func knownEnv() map[string]bool {
	out := map[string]bool{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			sf := t.Field(i)
			name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			if !sf.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = strings.ToLower(sf.Name)
			}
			if sf.Type.Kind() == reflect.Struct {
				walk(sf.Type, prefix+name+"_")
				continue
			}
			out["PORTCULLIS_"+strings.ToUpper(prefix+name)] = true
		}
	}
	walk(reflect.TypeFor[configs.Config](), "")
	return out
}

// portcullisServices checks every service of the compose file at path that
// runs the portcullis binary (the portcullis image with its own
// entrypoint): its command is a portcullis command that accepts its flags,
// its environment names only configuration keys and loads into a valid
// configuration (with a secrets key in .env, as the file's header says),
// and every server shares one secrets key and issuer, which userapi
// trusts and the load balancer fronts. It returns the services by name and
// their configurations.
func portcullisServices(t *testing.T, path string) (composeFile, map[string]*configs.Config) {
	t.Helper()
	f := readCompose(t, path)
	dotEnv := map[string]string{"PORTCULLIS_SECRETS_KEY": proctest.RandomSecretsKey(t)}
	known := knownEnv()
	cfgs := map[string]*configs.Config{}
	var servers []string
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range f.Services {
			if !yield(n) {
				return
			}
		}
	}) {
		s := f.Services[name]
		if s.Image != "portcullis:dev" || len(s.Entrypoint) > 0 {
			continue
		}
		if len(s.Command) == 0 || (s.Command[0] != "serve" && s.Command[0] != "migrate") {
			t.Errorf("%s: command %q, want serve or migrate", name, s.Command)
			continue
		}
		var out bytes.Buffer
		if err := run(t.Context(), append(slices.Clone(s.Command), "--help"), nil, strings.NewReader(""), &out, io.Discard); err != nil {
			t.Errorf("%s: portcullis %s: %v", name, strings.Join(s.Command, " "), err)
		}
		var environ []string
		for k, v := range s.Environment {
			if strings.HasPrefix(k, "PORTCULLIS_") && !known[k] {
				t.Errorf("%s: %s is no configuration key (portcullis ignores it)", name, k)
			}
			environ = append(environ, k+"="+interpolate(t, v, dotEnv))
		}
		cfg, err := configs.Load("", environ, nil)
		if err != nil {
			t.Errorf("%s: its environment does not load: %v", name, err)
			continue
		}
		cfgs[name] = cfg
		if s.Command[0] == "serve" {
			servers = append(servers, name)
		}
	}
	if len(servers) < 2 {
		t.Fatalf("%s: %d portcullis serve replicas, want several", path, len(servers))
	}
	first := cfgs[servers[0]]
	for _, name := range servers[1:] {
		if c := cfgs[name]; c.Issuer != first.Issuer || c.SecretsKey != first.SecretsKey {
			t.Errorf("%s and %s differ in issuer or secrets key", servers[0], name)
		}
	}
	for name, c := range cfgs {
		if c.StorageDriver() != storage.DriverMySQL {
			t.Errorf("%s: database driver %s, want MySQL", name, c.StorageDriver())
		}
	}
	api, ok := f.Services["userapi"]
	if !ok {
		t.Fatalf("%s: no userapi", path)
	}
	if got := interpolate(t, api.Environment["USERAPI_ISSUER"], dotEnv); got != first.Issuer {
		t.Errorf("userapi trusts issuer %q, the replicas issue %q", got, first.Issuer)
	}

	// The load balancer: its service name is the issuer's host, and it
	// fronts every replica on its public port.
	caddy, err := os.ReadFile(filepath.Join(filepath.Dir(path), "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*reverse_proxy ([^{]+)\{`).FindSubmatch(caddy)
	if m == nil {
		t.Fatal("Caddyfile: no reverse_proxy")
	}
	upstreams := strings.Fields(string(m[1]))
	var want []string
	for _, name := range servers {
		_, port, _ := net.SplitHostPort(cfgs[name].PublicAddr)
		want = append(want, name+":"+port)
	}
	slices.Sort(upstreams)
	if !slices.Equal(upstreams, want) {
		t.Errorf("Caddyfile proxies to %q, the replicas are %q", upstreams, want)
	}
	if _, ok := f.Services["portcullis"]; !ok || !strings.HasPrefix(first.Issuer, "http://portcullis:") {
		t.Errorf("the issuer %q is not the load balancer service portcullis", first.Issuer)
	}
	return f, cfgs
}

// TestDeployCompose checks deploy/docker-compose.yml (two replicas on one
// MariaDB).
func TestDeployCompose(t *testing.T) {
	t.Parallel()
	portcullisServices(t, "../../deploy/docker-compose.yml")
}

// TestDeployGaleraCompose checks deploy/galera/docker-compose.yml: three
// Galera nodes, each with the settings file Portcullis's Galera tests use
// (portcullis.cnf) and start-node.sh, in one cluster; one replica per
// node; the migrate step first.
func TestDeployGaleraCompose(t *testing.T) {
	t.Parallel()
	const dir = "../../deploy/galera"
	f, cfgs := portcullisServices(t, filepath.Join(dir, "docker-compose.yml"))

	var nodes []string
	for name, s := range f.Services {
		if strings.HasPrefix(s.Image, "mariadb:") {
			nodes = append(nodes, name)
		}
	}
	slices.Sort(nodes)
	if !slices.Equal(nodes, []string{"galera-1", "galera-2", "galera-3"}) {
		t.Fatalf("MariaDB services %q, want galera-1, galera-2, galera-3", nodes)
	}
	firstNodes := 0
	dataVolumes := map[string]bool{}
	for _, name := range nodes {
		s := f.Services[name]
		if s.Image != "mariadb:11" {
			t.Errorf("%s: image %s; mariadb:11 has Galera built in", name, s.Image)
		}
		// Every node mounts the settings Portcullis needs, read-only, where
		// the image reads its configuration, and the start script it runs.
		mounts := map[string]string{}
		for _, v := range s.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) < 2 {
				t.Errorf("%s: volume %q", name, v)
				continue
			}
			mounts[parts[1]] = parts[0]
			if parts[1] == "/etc/mysql/conf.d/portcullis.cnf" && (len(parts) != 3 || parts[2] != "ro") {
				t.Errorf("%s: %q is not read-only", name, v)
			}
			if parts[1] == "/var/lib/mysql" {
				if _, declared := f.Volumes[parts[0]]; !declared || dataVolumes[parts[0]] {
					t.Errorf("%s: data volume %q is not a volume of its own", name, parts[0])
				}
				dataVolumes[parts[0]] = true
			}
		}
		if mounts["/etc/mysql/conf.d/portcullis.cnf"] != "./portcullis.cnf" {
			t.Errorf("%s does not mount ./portcullis.cnf into /etc/mysql/conf.d: %q", name, s.Volumes)
		}
		if mounts["/usr/local/bin/start-node.sh"] != "./start-node.sh" || !slices.Equal(s.Entrypoint, []string{"bash", "/usr/local/bin/start-node.sh"}) {
			t.Errorf("%s does not start through start-node.sh: entrypoint %q, volumes %q", name, s.Entrypoint, s.Volumes)
		}
		if mounts["/var/lib/mysql"] == "" {
			t.Errorf("%s has no data volume", name)
		}
		// One cluster: every node lists every node, under its own name.
		for _, want := range []string{"--wsrep_cluster_address=gcomm://" + strings.Join(nodes, ","), "--wsrep_node_name=" + name, "--wsrep_cluster_name=portcullis"} {
			if !slices.Contains(s.Command, want) {
				t.Errorf("%s: command %q lacks %s", name, s.Command, want)
			}
		}
		if slices.Contains(s.Command, "--wsrep-new-cluster") {
			t.Errorf("%s: --wsrep-new-cluster in its command bootstraps a new cluster at every start (start-node.sh adds it when it is safe)", name)
		}
		if !slices.Contains(s.Healthcheck.Test, "--galera_online") {
			t.Errorf("%s: healthcheck %q does not wait for the node to be synced", name, s.Healthcheck.Test)
		}
		if s.Environment["GALERA_FIRST_NODE"] == "1" {
			firstNodes++
		}
	}
	if firstNodes != 1 {
		t.Errorf("%d nodes start the cluster on a fresh volume (GALERA_FIRST_NODE=1), want 1", firstNodes)
	}
	if f.Services["galera-1"].Environment["GALERA_FIRST_NODE"] != "1" {
		t.Error("galera-1, which the others wait for, does not start the cluster")
	}
	for _, name := range nodes[1:] {
		if len(f.Services[name].dependsOn(t)) == 0 {
			t.Errorf("%s starts without waiting for the cluster", name)
		}
	}

	// One replica per node, each after its node is synced and after
	// migrate succeeded; migrate after galera-1.
	used := map[string]string{}
	for name, cfg := range cfgs {
		dsn, err := storage.ParseDSN(cfg.DSN)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		host, _, _ := net.SplitHostPort(dsn.MySQL.Addr)
		if !slices.Contains(nodes, host) {
			t.Errorf("%s: database host %s is no Galera node", name, host)
			continue
		}
		deps := f.Services[name].dependsOn(t)
		if deps[host] != "service_healthy" {
			t.Errorf("%s: does not wait for %s to be healthy: %v", name, host, deps)
		}
		if name == "migrate" {
			continue
		}
		if other, dup := used[host]; dup {
			t.Errorf("%s and %s both use %s", name, other, host)
		}
		used[host] = name
		if deps["migrate"] != "service_completed_successfully" {
			t.Errorf("%s: does not wait for migrate: %v", name, deps)
		}
	}
	if len(used) != len(nodes) {
		t.Errorf("replicas on %d of %d nodes", len(used), len(nodes))
	}

	// mariadbd accepts every node's options on top of portcullis.cnf.
	t.Run("mariadbd", func(t *testing.T) {
		const mariadbd = "/usr/sbin/mariadbd"
		if _, err := os.Stat(mariadbd); err != nil {
			t.Skipf("%s is missing (install mariadb-server)", mariadbd)
		}
		cnf, err := filepath.Abs(filepath.Join(dir, "portcullis.cnf"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range nodes {
			args := append([]string{"--defaults-file=" + cnf}, f.Services[name].Command...)
			args = append(args, "--wsrep-new-cluster", "--verbose", "--help")
			var stderr bytes.Buffer
			cmd := exec.CommandContext(t.Context(), mariadbd, args...)
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil || strings.Contains(stderr.String(), "[ERROR]") {
				t.Errorf("%s: mariadbd %q: %v\n%s", name, args, err, &stderr)
				continue
			}
			for _, want := range []string{"wsrep-node-name +" + name + "\n", "wsrep-cluster-address +gcomm://galera-1,galera-2,galera-3\n",
				"binlog-format +ROW\n", "wsrep-mode +REQUIRED_PRIMARY_KEY\n", "wsrep-sync-wait +1\n", "innodb-autoinc-lock-mode +2\n"} {
				if !regexp.MustCompile("(?m)^" + want).Match(out) {
					t.Errorf("%s: mariadbd would not run with %q", name, strings.TrimSpace(want))
				}
			}
		}
	})
}

// TestDeployGaleraStartNode runs deploy/galera/start-node.sh, the Galera
// nodes' entrypoint, with a stand-in for the image's entrypoint that
// prints its arguments: it adds --wsrep-new-cluster only when no node of
// the cluster address answers and the node may start the cluster (a fresh
// data directory on the first node, or safe_to_bootstrap: 1).
func TestDeployGaleraStartNode(t *testing.T) {
	t.Parallel()
	script, err := filepath.Abs("../../deploy/galera/start-node.sh")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "docker-entrypoint.sh"), []byte("#!/bin/sh\nprintf '%s\\n' \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A peer that answers, and an address where nothing does.
	peer, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = peer.Close() }) // after the parallel subtests
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := closed.Addr().String()
	closed.Close()
	up := peer.Addr().String()

	grastate := func(safe int) string {
		return fmt.Sprintf("# GALERA saved state\nversion: 2.1\nuuid:    e70b7437-645f-11e8-9f44-5b204e58220b\nseqno:   7099\nsafe_to_bootstrap: %d\n", safe)
	}
	for _, tc := range []struct {
		name      string
		state     string // grastate.dat; "" for none
		first     bool   // GALERA_FIRST_NODE=1
		peers     []string
		bootstrap bool
	}{
		{"first start of the first node", "", true, []string{down}, true},
		{"first start of another node", "", false, []string{down}, false},
		{"first node's volume lost while the cluster runs", "", true, []string{down, up}, false},
		{"last node to leave", grastate(1), false, []string{down}, true},
		{"last node to leave, a cluster already runs", grastate(1), true, []string{up}, false},
		{"not the last to leave", grastate(0), true, []string{down}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			data := t.TempDir()
			if tc.state != "" {
				if err := os.WriteFile(filepath.Join(data, "grastate.dat"), []byte(tc.state), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			args := []string{script, "--character-set-server=utf8mb4", "--wsrep_cluster_address=gcomm://" + strings.Join(tc.peers, ","), "--wsrep_node_name=galera-1"}
			cmd := exec.CommandContext(t.Context(), "bash", args...)
			cmd.Env = []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "GALERA_DATADIR=" + data, "GALERA_PROBE_TIMEOUT=2"}
			if tc.first {
				cmd.Env = append(cmd.Env, "GALERA_FIRST_NODE=1")
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("start-node.sh: %v\n%s", err, &stderr)
			}
			want := slices.Clone(args[1:])
			if tc.bootstrap {
				want = append(want, "--wsrep-new-cluster")
			}
			if got := strings.Fields(string(out)); !slices.Equal(got, want) {
				t.Fatalf("docker-entrypoint.sh got %q, want %q", got, want)
			}
		})
	}
}
