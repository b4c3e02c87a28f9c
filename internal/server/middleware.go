package server

import (
	"crypto/rand"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-auth/portcullis/audit"
	"github.com/portcullis-auth/portcullis/internal/apperr"
	"github.com/portcullis-auth/portcullis/internal/httpjson"
)

// harden sets defensive headers and turns panics into a JSON 500, so no
// stack trace ever reaches a client.
func harden(h http.Handler, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Referrer-Policy", "no-referrer")
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				logger.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", v)
				httpjson.WriteError(w, r, nil, &apperr.Error{Code: apperr.EInternal, Message: "internal error"})
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// metrics are the Prometheus collectors of one server.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	grants   *prometheus.CounterVec
}

// newMetrics creates the collectors and registers them with reg; a nil reg
// leaves them unregistered (they count, nobody reads them).
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "portcullis_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		grants: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_token_requests_total", Help: "Token endpoint requests by grant type and result (success or RFC 6749 error code).",
		}, []string{"grant_type", "result"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.grants)
	}
	return m
}

func (m *metrics) observeGrant(grant, result string) { m.grants.WithLabelValues(grant, result).Inc() }

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// instrument counts requests, observes latency and writes an access-log
// line (health probes at debug level) for one route. Nothing from the
// request body, query or headers is logged: they may carry credentials.
func (m *metrics) instrument(route string, logger *slog.Logger, h http.Handler) http.Handler {
	level := slog.LevelInfo
	if strings.HasPrefix(route, "/health/") {
		level = slog.LevelDebug
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		elapsed := time.Since(start)
		m.requests.WithLabelValues(route, strconv.Itoa(rec.code)).Inc()
		m.duration.WithLabelValues(route).Observe(elapsed.Seconds())
		logger.Log(r.Context(), level, "request", "method", r.Method, "path", route, "status", rec.code,
			"duration", elapsed.Round(time.Microsecond), "remote", r.RemoteAddr, "request_id", w.Header().Get(requestIDHeader))
	})
}

// requestIDHeader carries a request's ID in both directions.
const requestIDHeader = "X-Request-Id"

// withRequestID gives every request an ID, answered in X-Request-Id and
// written to its access-log line, so that a client's report and the logs
// can be matched. A request that arrives with an X-Request-Id of 1 to 64
// characters from [A-Za-z0-9._-] (set by a proxy in front) keeps it; any
// other value is replaced by a random one, so that nothing a client sends
// reaches the log unchecked.
func withRequestID(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(requestIDHeader)
		if !validRequestID(id) {
			id = rand.Text()
		}
		w.Header().Set(requestIDHeader, id)
		h.ServeHTTP(w, r)
	})
}

// withAuditRequest puts the request's ID (set by withRequestID, which
// must run first) and the client's IP address (clientIP) into its context
// for the audit events recorded while serving it.
func withAuditRequest(clientIP func(*http.Request) string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := audit.WithRequest(r.Context(), w.Header().Get(requestIDHeader), clientIP(r))
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
