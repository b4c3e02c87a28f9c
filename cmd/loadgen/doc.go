// Command loadgen is Portcullis's load generator and the one command behind
// BENCHMARKS.md. It only ever sends requests to loopback addresses
// (127.0.0.0/8, ::1, localhost), with HTTP keep-alive, and every run is
// bounded by time and optionally by a request count.
//
// Usage:
//
//	loadgen bench [-mysql-dsn DSN [-mysql-reset]] [-c 1,8,32] [-duration 2s] [-requests N] [-slices 8] [-rounds 5] [-idle-wait 2s] [-portcullis BIN] [-userapi-bin BIN] [-server-env K=V]...
//	loadgen galera [-nodes 3] [-c 1,8,32] [-duration 3s] [-requests N] [-slices 8] [-rounds 3] [-cnf FILE] [-portcullis BIN] [-server-env K=V]...
//	loadgen [-url URL] [-userapi URL] [-client ID:SECRET] [-introspector ID:SECRET] [-public-client ID] [-username U] [-password P] [-c 1,8,32] [-duration 3s] [-requests N] [-slices 8] SCENARIO...
//
// "bench", run from inside the repository, builds the real portcullis and
// userapi binaries (go build, CGO_ENABLED=0), starts them on a new SQLite
// database (and then on the MySQL/MariaDB database named by -mysql-dsn, a
// go-sql-driver DSN that must name an empty or missing database;
// -mysql-reset drops and re-creates it), provisions one user per worker
// and three clients through the CLI (portcullis migrate, users create
// --password-stdin, clients create), and runs every scenario at each
// concurrency of -c for -duration, -rounds times. Each ratio of issue 9
// compares a scenario with its baseline (jwks with trivial, password with
// argon2, usersme with userapi_trivial): the two alternate in -slices
// slices (default 8) within one run, so that other load on a shared
// machine weighs on both alike, and the report shows the median over the
// rounds of the ratio measured in each. It reads the resident
// memory of both servers from /proc/PID/status (VmRSS -idle-wait after the
// first token and after the load, VmHWM at the end), prints one Markdown
// report (the machine, one table per database, memory, and each target of
// issue 9 with the measured figure and its ratio) and stops everything it
// started. The servers run with their defaults except
// PORTCULLIS_RATE_LIMIT_TOKEN_PER_IP=0 (every login comes from one
// address) and what -server-env adds. It returns an error when any request
// failed, after printing the report.
//
// "galera", run from inside the repository, measures what a MariaDB
// Galera cluster costs. It builds portcullis, starts a standalone mariadbd
// (wsrep_provider=none) and a -nodes Galera cluster of mariadbd processes
// on loopback (internal/galera; every server includes
// deploy/galera/portcullis.cnf, or -cnf, with the same tuning), and three
// set-ups, each on a database of its own provisioned through the CLI:
// one portcullis on the standalone server; -nodes replicas on the
// standalone server; -nodes replicas, each on its own Galera node. It
// runs client_credentials, password and refresh at each concurrency of -c
// on the three alternately, in -slices slices of -duration, -rounds
// times; with several replicas each worker sends its successive requests
// to successive replicas, as a round-robin load balancer would (a refresh
// chain hops nodes). The report gives per set-up the median rate, p50 and
// p99, and the CPU time of its mariadbd and portcullis processes per
// request (from /proc/PID/stat), and per round the ratio of the Galera
// set-up's rate to the one-server set-up's (the whole cost) and to the
// replicas-on-one-server set-up's (the cost of Galera alone). It stops
// everything it started, and returns an error when any request failed,
// after printing the report. It needs mariadbd, mariadb-install-db, the
// galera-4 provider and rsync.
//
// Without "bench" or "galera", loadgen runs the named scenarios (or "all") against
// servers that are already running, at each concurrency of -c (a
// scenario named right after its baseline alternates with it, as in
// bench), and prints one table.
//
// Scenarios, each reporting requests/s, p50 and p99 latency and errors:
//
//	trivial            GET of a trivial handler a child loadgen process serves on loopback: the machine's ceiling for a separate server process
//	jwks               GET /.well-known/jwks.json
//	client_credentials POST /oauth2/token, grant_type=client_credentials, HTTP Basic (-client)
//	introspect         POST /oauth2/introspect of an access token by a client allowed to (-introspector)
//	refresh            POST /oauth2/token, grant_type=refresh_token: each worker follows its own rotation chain
//	argon2             raw argon2id Verify in-process with identity.DefaultArgon2Params, min(c, GOMAXPROCS) at once
//	password           POST /oauth2/token, grant_type=password (-public-client, -username, -password)
//	userapi_trivial    GET /health/alive at userapi, with the same Bearer header as usersme
//	usersme            GET /users/me at userapi with a user's access token
//	usersme_dpop       GET /users/me at userapi with a user's DPoP-bound access token and a new proof (signed by the worker) per request
//
// Worker i logs in as -username with every "%d" replaced by i (bench
// provisions bench0, bench1, …): the guessing throttle counts a login in
// flight as a failure until it succeeds, so more than
// lockout.max_failures concurrent logins on one account are refused.
// Tokens the scenarios need (refresh chains, access tokens) are obtained
// before timing starts.
//
// Figures are only comparable within one run on one machine: the load
// generator shares the CPUs with the servers, and other processes may
// too. Compare ratios (password to argon2, jwks to trivial, usersme to
// userapi_trivial, usersme_dpop to usersme) rather than absolute rates.
package main
