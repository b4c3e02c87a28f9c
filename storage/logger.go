package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"gorm.io/gorm"
	gormlogger "gorm.io/gorm/logger"
)

// gormLogger routes gorm's statement trace to slog at debug level. It
// implements gorm's ParamsFilter so that statements are logged with their
// placeholders, never with their arguments: those include password
// hashes, sealed keys and token requests.
type gormLogger struct {
	log *slog.Logger
}

var (
	_ gormlogger.Interface = gormLogger{}
	_ gorm.ParamsFilter    = gormLogger{}
)

func newGormLogger(l *slog.Logger) gormLogger { return gormLogger{log: l} }

// LogMode implements gormlogger.Interface; the level is the slog handler's.
func (l gormLogger) LogMode(gormlogger.LogLevel) gormlogger.Interface { return l }

// Info implements gormlogger.Interface.
func (l gormLogger) Info(ctx context.Context, msg string, args ...any) {
	l.log.DebugContext(ctx, "gorm: "+fmt.Sprintf(msg, args...))
}

// Warn implements gormlogger.Interface.
func (l gormLogger) Warn(ctx context.Context, msg string, args ...any) {
	l.log.DebugContext(ctx, "gorm: "+fmt.Sprintf(msg, args...))
}

// Error implements gormlogger.Interface. Errors are returned to callers,
// who decide whether to log them, so they are only traced here.
func (l gormLogger) Error(ctx context.Context, msg string, args ...any) {
	l.log.DebugContext(ctx, "gorm: "+fmt.Sprintf(msg, args...))
}

// Trace implements gormlogger.Interface.
func (l gormLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	if !l.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	query, rows := fc()
	attrs := []any{"sql", query, "rows", rows, "elapsed", time.Since(begin)}
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		attrs = append(attrs, "err", err)
	}
	l.log.DebugContext(ctx, "sql", attrs...)
}

// ParamsFilter implements gorm.ParamsFilter: it drops every argument.
func (l gormLogger) ParamsFilter(_ context.Context, query string, _ ...any) (string, []any) {
	return query, nil
}
