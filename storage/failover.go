package storage

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
)

// This file holds the MySQL fail-over connector: a DSN that lists several
// servers ("mysql://USER:PASS@tcp(H1:P1),tcp(H2:P2),tcp(H3:P3)/DB", the
// nodes of a Galera cluster) makes every new connection go to the first
// of them, in the DSN's order, that accepts it and can serve, as MariaDB
// Connector/J's "sequential" mode and libpq's host=a,b,c do.

// Fail-over tuning.
const (
	// failoverDialTimeout is the per-host time to connect, authenticate
	// and check a node when a DSN lists several hosts and sets no
	// timeout parameter (half the query timeout when that is shorter, so
	// that a call whose first host hangs still reaches the next); one
	// host keeps the driver's 5s.
	failoverDialTimeout = time.Second
	// failoverCooldown is how long a host found dead or not ready is
	// tried after the others.
	failoverCooldown = 30 * time.Second
)

// errNodeNotReady is a connection's answer from a Galera node that is not
// synced (wsrep_ready OFF, or wsrep_local_state other than 4: joining,
// donor, or outside the primary component).
var errNodeNotReady = errors.New("storage: the database node is not a synced Galera node")

// mysqlConnector returns a failoverConnector over the hosts of cfg's DSN
// (one or several). With one host it fails over nowhere, but its
// connections still watch their errors: a connection whose host failed,
// or whose COMMIT or ROLLBACK failed (a Galera node refusing a COMMIT
// leaves the transaction open), is discarded, not reused.
func mysqlConnector(cfg *gomysql.Config, hosts []MySQLHost, logger *slog.Logger) (driver.Connector, error) {
	if len(hosts) == 0 {
		hosts = []MySQLHost{{Net: cfg.Net, Addr: cfg.Addr}}
	}
	fc := &failoverConnector{perHost: cmpOr(cfg.Timeout, failoverDialTimeout), logger: logger}
	for _, h := range hosts {
		hc := cfg.Clone()
		hc.Net, hc.Addr = h.Net, h.Addr
		conn, err := gomysql.NewConnector(hc)
		if err != nil {
			return nil, err
		}
		fc.hosts = append(fc.hosts, &failoverHost{MySQLHost: h, connector: conn})
	}
	return fc, nil
}

// failoverConnector is a driver.Connector over several MySQL servers.
// Connect tries the hosts in the DSN's order, each within perHost (dial,
// handshake and check), and returns a connection to the first that is
// usable: any server without wsrep (plain MySQL or MariaDB), or a Galera
// node that is synced and ready. A host that failed within
// failoverCooldown is tried after the others.
//
// Its connections watch their errors. One that shows the host dead or not
// ready (an error that classify deems unavailable: a broken connection,
// a statement cut off by its deadline, error 1047 or 1205) marks the host
// failed, and every connection to it made before then is discarded by
// the pool (driver.Validator, driver.SessionResetter) instead of being
// used again. Outside a transaction, a statement the server refused
// without running it (1047, 1205, 1053, 1290, 1792) is reported as
// driver.ErrBadConn as well, which makes database/sql run it again on
// another connection, so that a request does not fail for it.
type failoverConnector struct {
	hosts   []*failoverHost
	perHost time.Duration
	logger  *slog.Logger
}

// failoverHost is one server of a failoverConnector.
type failoverHost struct {
	MySQLHost
	connector driver.Connector
	// failedAt is when the host was last found dead or not ready (Unix
	// nanoseconds), 0 once a connection to it succeeds again.
	failedAt atomic.Int64
	// epoch counts the host's failures: a connection made in an earlier
	// epoch is discarded.
	epoch atomic.Uint64
}

// Driver implements driver.Connector.
func (c *failoverConnector) Driver() driver.Driver { return c.hosts[0].connector.Driver() }

// Connect implements driver.Connector. It fails, with every host's
// error, when no host is usable, or when ctx ends.
func (c *failoverConnector) Connect(ctx context.Context) (driver.Conn, error) {
	var errs []error
	for _, h := range c.order(time.Now()) {
		start := time.Now()
		conn, err := c.connect(ctx, h)
		if err == nil {
			return conn, nil
		}
		if cerr := ctx.Err(); cerr != nil {
			// The caller gave up: the host is to blame only if it had
			// its whole time.
			if time.Since(start) >= c.perHost {
				c.fail(h, err)
			}
			return nil, fmt.Errorf("storage: connect: %w", errors.Join(append(errs, cerr, err)...))
		}
		c.fail(h, err)
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("storage: no usable MySQL server among the DSN's %d hosts: %w", len(c.hosts), errors.Join(errs...))
}

// order returns the hosts to try: those without a failure within
// failoverCooldown in the DSN's order, then the others, longest failed
// first.
func (c *failoverConnector) order(now time.Time) []*failoverHost {
	out := make([]*failoverHost, 0, len(c.hosts))
	var cooling []*failoverHost
	for _, h := range c.hosts {
		if at := h.failedAt.Load(); at != 0 && now.Sub(time.Unix(0, at)) < failoverCooldown {
			cooling = append(cooling, h)
			continue
		}
		out = append(out, h)
	}
	for len(cooling) > 0 {
		oldest := 0
		for i, h := range cooling {
			if h.failedAt.Load() < cooling[oldest].failedAt.Load() {
				oldest = i
			}
		}
		out = append(out, cooling[oldest])
		cooling = append(cooling[:oldest], cooling[oldest+1:]...)
	}
	return out
}

// connect connects to h and checks it within perHost.
func (c *failoverConnector) connect(ctx context.Context, h *failoverHost) (driver.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.perHost)
	defer cancel()
	epoch := h.epoch.Load()
	conn, err := h.connector.Connect(ctx)
	if err != nil {
		return nil, ended(ctx, err)
	}
	if err := nodeReady(ctx, conn); err != nil {
		_ = conn.Close()
		return nil, ended(ctx, err)
	}
	if h.failedAt.Swap(0) != 0 {
		c.logger.Info("database host usable again", "host", h.Addr)
	}
	return &failoverConn{conn: conn, connector: c, host: h, epoch: epoch}, nil
}

// fail marks h failed: its connections are discarded and new ones try it
// last for failoverCooldown. The first failure after a success is logged.
func (c *failoverConnector) fail(h *failoverHost, err error) {
	h.epoch.Add(1)
	if h.failedAt.Swap(time.Now().UnixNano()) == 0 {
		c.logger.Warn("database host failed; new connections go to the next host of the DSN", "host", h.Addr, "err", err)
	}
}

// nodeReady returns nil when conn's server can serve: it has no wsrep
// (plain MySQL or MariaDB), or it is a Galera node with wsrep_ready ON
// and wsrep_local_state 4 (Synced). SHOW statements are used because a
// node that is not ready still answers them.
func nodeReady(ctx context.Context, conn driver.Conn) error {
	q, ok := conn.(driver.QueryerContext)
	if !ok {
		return errors.New("storage: mysql connection cannot query")
	}
	vars, err := showValues(ctx, q, "SHOW GLOBAL VARIABLES WHERE Variable_name = 'wsrep_on'")
	if err != nil {
		return err
	}
	if !strings.EqualFold(vars["wsrep_on"], "ON") {
		return nil
	}
	status, err := showValues(ctx, q, "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_ready', 'wsrep_local_state')")
	if err != nil {
		return err
	}
	if !strings.EqualFold(status["wsrep_ready"], "ON") || status["wsrep_local_state"] != "4" {
		return errNodeNotReady
	}
	return nil
}

// showValues runs a SHOW statement answering name-value rows and returns
// them by lower-case name.
func showValues(ctx context.Context, q driver.QueryerContext, query string) (map[string]string, error) {
	rows, err := q.QueryContext(ctx, query, nil)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	dest := make([]driver.Value, len(rows.Columns()))
	for {
		if err := rows.Next(dest); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			_ = rows.Close()
			return nil, err
		}
		if len(dest) >= 2 {
			out[strings.ToLower(asString(dest[0]))] = asString(dest[1])
		}
	}
	return out, rows.Close()
}

// failoverConn is a connection of a failoverConnector: the driver's
// connection, whose errors it watches (see failoverConnector).
// database/sql uses a connection from one goroutine at a time.
type failoverConn struct {
	conn      driver.Conn
	connector *failoverConnector
	host      *failoverHost
	epoch     uint64 // host's epoch when the connection was made
	inTx      bool
	// broken is set when a COMMIT or ROLLBACK failed: the transaction
	// may still be open on the server (a Galera node refusing a COMMIT
	// with 1047 leaves it so), and the next BEGIN on the connection would
	// fail ("1568: Transaction characteristics can't be changed").
	broken bool
}

// Interface guards: everything the driver's connection implements.
var (
	_ driver.Conn               = (*failoverConn)(nil)
	_ driver.ConnBeginTx        = (*failoverConn)(nil)
	_ driver.ConnPrepareContext = (*failoverConn)(nil)
	_ driver.ExecerContext      = (*failoverConn)(nil)
	_ driver.QueryerContext     = (*failoverConn)(nil)
	_ driver.Pinger             = (*failoverConn)(nil)
	_ driver.SessionResetter    = (*failoverConn)(nil)
	_ driver.Validator          = (*failoverConn)(nil)
	_ driver.NamedValueChecker  = (*failoverConn)(nil)
)

// observe marks the host failed when err shows it dead or not ready, and
// turns a statement the server refused without running it into
// driver.ErrBadConn (keeping err in the chain) when retry allows:
// database/sql then runs it again on another connection. alive tells
// whether the call's context was alive when the call began: a deadline
// that had passed before is not the server's fault.
func (c *failoverConn) observe(alive bool, err error, retry bool) error {
	if err == nil || classify(err) != classUnavailable {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// Only a deadline that passed while the server kept the
		// connection waiting counts (the driver then closed it).
		if !alive || c.valid() {
			return err
		}
	}
	c.connector.fail(c.host, err)
	if retry && refusedStatement(err) {
		return fmt.Errorf("%w: %w", driver.ErrBadConn, err)
	}
	return err
}

// refusedStatement reports whether err is a server's refusal of a
// statement it did not run.
func refusedStatement(err error) bool {
	me, ok := errors.AsType[*gomysql.MySQLError](err)
	if !ok {
		return false
	}
	switch me.Number {
	case mysqlWsrepNotReady, mysqlLockWaitTimeout, mysqlServerShutdown, mysqlReadOnly, mysqlReadOnlyTx:
		return true
	}
	return false
}

// stale reports whether the host failed since the connection was made,
// or the connection's last COMMIT or ROLLBACK failed.
func (c *failoverConn) stale() bool { return c.broken || c.host.epoch.Load() != c.epoch }

// valid is the driver connection's own IsValid.
func (c *failoverConn) valid() bool {
	v, ok := c.conn.(driver.Validator)
	return !ok || v.IsValid()
}

// Prepare implements driver.Conn.
func (c *failoverConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// PrepareContext implements driver.ConnPrepareContext.
func (c *failoverConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	alive := ctx.Err() == nil
	var stmt driver.Stmt
	var err error
	if p, ok := c.conn.(driver.ConnPrepareContext); ok {
		stmt, err = p.PrepareContext(ctx, query)
	} else {
		stmt, err = c.conn.Prepare(query)
	}
	if err != nil {
		return nil, c.observe(alive, err, !c.inTx)
	}
	return &failoverStmt{stmt: stmt, conn: c}, nil
}

// Close implements driver.Conn.
func (c *failoverConn) Close() error { return c.conn.Close() }

// Begin implements driver.Conn.
func (c *failoverConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx implements driver.ConnBeginTx.
func (c *failoverConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	alive := ctx.Err() == nil
	b, ok := c.conn.(driver.ConnBeginTx)
	if !ok {
		return nil, errors.New("storage: mysql connection cannot begin a transaction with options")
	}
	tx, err := b.BeginTx(ctx, opts)
	if err != nil {
		return nil, c.observe(alive, err, true)
	}
	c.inTx = true
	return &failoverTx{tx: tx, conn: c}, nil
}

// ExecContext implements driver.ExecerContext.
func (c *failoverConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := c.conn.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	alive := ctx.Err() == nil
	res, err := e.ExecContext(ctx, query, args)
	return res, c.observe(alive, err, !c.inTx)
}

// QueryContext implements driver.QueryerContext.
func (c *failoverConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := c.conn.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	alive := ctx.Err() == nil
	rows, err := q.QueryContext(ctx, query, args)
	return rows, c.observe(alive, err, !c.inTx)
}

// Ping implements driver.Pinger.
func (c *failoverConn) Ping(ctx context.Context) error {
	p, ok := c.conn.(driver.Pinger)
	if !ok {
		return nil
	}
	alive := ctx.Err() == nil
	return c.observe(alive, p.Ping(ctx), true)
}

// ResetSession implements driver.SessionResetter: a connection to a host
// that failed since it was made is bad.
func (c *failoverConn) ResetSession(ctx context.Context) error {
	if c.stale() {
		return driver.ErrBadConn
	}
	if r, ok := c.conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

// IsValid implements driver.Validator.
func (c *failoverConn) IsValid() bool { return !c.stale() && c.valid() }

// CheckNamedValue implements driver.NamedValueChecker with the driver's
// own conversions.
func (c *failoverConn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.conn.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// failoverTx is a transaction on a failoverConn.
type failoverTx struct {
	tx   driver.Tx
	conn *failoverConn
}

// Commit implements driver.Tx.
func (t *failoverTx) Commit() error {
	t.conn.inTx = false
	err := t.tx.Commit()
	t.conn.broken = t.conn.broken || leavesTxOpen(err)
	return t.conn.observe(true, err, false)
}

// Rollback implements driver.Tx.
func (t *failoverTx) Rollback() error {
	t.conn.inTx = false
	err := t.tx.Rollback()
	t.conn.broken = t.conn.broken || leavesTxOpen(err)
	return t.conn.observe(true, err, false)
}

// leavesTxOpen reports whether a failed COMMIT or ROLLBACK (err) may have
// left its transaction open on the server: any failure but a deadlock or
// certification conflict (1213), after which the server has rolled the
// whole transaction back.
func leavesTxOpen(err error) bool {
	return err != nil && classify(err) != classConflict
}

// failoverStmt is a prepared statement on a failoverConn (a DSN with
// interpolateParams=false).
type failoverStmt struct {
	stmt driver.Stmt
	conn *failoverConn
}

var (
	_ driver.StmtExecContext   = (*failoverStmt)(nil)
	_ driver.StmtQueryContext  = (*failoverStmt)(nil)
	_ driver.NamedValueChecker = (*failoverStmt)(nil)
)

// Close implements driver.Stmt.
func (s *failoverStmt) Close() error { return s.stmt.Close() }

// NumInput implements driver.Stmt.
func (s *failoverStmt) NumInput() int { return s.stmt.NumInput() }

// Exec implements driver.Stmt.
func (s *failoverStmt) Exec(args []driver.Value) (driver.Result, error) {
	//lint:ignore SA1019 driver.Stmt requires Exec; database/sql calls ExecContext
	res, err := s.stmt.Exec(args)
	return res, s.conn.observe(true, err, false)
}

// Query implements driver.Stmt.
func (s *failoverStmt) Query(args []driver.Value) (driver.Rows, error) {
	//lint:ignore SA1019 driver.Stmt requires Query; database/sql calls QueryContext
	rows, err := s.stmt.Query(args)
	return rows, s.conn.observe(true, err, false)
}

// ExecContext implements driver.StmtExecContext.
func (s *failoverStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	e, ok := s.stmt.(driver.StmtExecContext)
	if !ok {
		return nil, errors.New("storage: mysql statement cannot execute with a context")
	}
	alive := ctx.Err() == nil
	res, err := e.ExecContext(ctx, args)
	return res, s.conn.observe(alive, err, !s.conn.inTx)
}

// QueryContext implements driver.StmtQueryContext.
func (s *failoverStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := s.stmt.(driver.StmtQueryContext)
	if !ok {
		return nil, errors.New("storage: mysql statement cannot query with a context")
	}
	alive := ctx.Err() == nil
	rows, err := q.QueryContext(ctx, args)
	return rows, s.conn.observe(alive, err, !s.conn.inTx)
}

// CheckNamedValue implements driver.NamedValueChecker with the driver's
// own conversions.
func (s *failoverStmt) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := s.stmt.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return s.conn.CheckNamedValue(nv)
}
