package etcdserver

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// slogCore is a zapcore.Core that forwards etcd's zap records to a slog
// handler, so etcd logs where the rest of Sabot logs and never to stderr on
// its own.
type slogCore struct {
	h slog.Handler
	// closing is set by Server.Close: etcd reports its own orderly shutdown
	// ("http: Server closed", "use of closed network connection") at error
	// level, so from then on every record is demoted to debug.
	closing *atomic.Bool
}

func newSlogCore(h slog.Handler, closing *atomic.Bool) zapcore.Core {
	return slogCore{h: h.WithAttrs([]slog.Attr{slog.String("component", "etcd")}), closing: closing}
}

// benign are warnings etcd prints on every start of a single-node,
// plain-HTTP, simple-token server, which is exactly the server this package
// runs: they carry no information for a Sabot operator.
var benign = map[string]bool{ //nolint:gochecknoglobals // read-only table
	"Running http and grpc server on single port. This is not recommended for production.": true,
	"simple token is not cryptographically signed":                                         true,
}

// level maps zap levels onto slog's. etcd's info records describe its own
// internals (raft terms, WAL files, listeners), which is debug detail for a
// Sabot operator.
func (c slogCore) level(l zapcore.Level, msg string) slog.Level {
	switch {
	case c.closing.Load() || benign[msg]:
		return slog.LevelDebug
	case l >= zapcore.ErrorLevel:
		return slog.LevelError
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelDebug
	}
}

// Enabled answers for the most severe mapping of l; Write may still demote a
// record, and the handler then drops it.
func (c slogCore) Enabled(l zapcore.Level) bool {
	return c.h.Enabled(context.Background(), c.level(l, ""))
}

func (c slogCore) With(fields []zapcore.Field) zapcore.Core {
	if len(fields) == 0 {
		return c
	}
	return slogCore{h: c.h.WithAttrs(attrs(fields)), closing: c.closing}
}

func (c slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.h.Enabled(context.Background(), c.level(e.Level, e.Message)) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	r := slog.NewRecord(e.Time, c.level(e.Level, e.Message), e.Message, 0)
	if e.LoggerName != "" {
		r.AddAttrs(slog.String("logger", e.LoggerName))
	}
	r.AddAttrs(attrs(fields)...)
	return c.h.Handle(context.Background(), r)
}

func (slogCore) Sync() error { return nil }

// attrs encodes zap fields with zap's own map encoder, which handles every
// field type (durations, errors, arrays, objects) the way zap would. Keys are
// sorted so that output is stable.
func attrs(fields []zapcore.Field) []slog.Attr {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	out := make([]slog.Attr, 0, len(enc.Fields))
	for _, k := range slices.Sorted(maps.Keys(enc.Fields)) {
		out = append(out, slog.Any(k, enc.Fields[k]))
	}
	return out
}

// ClientLogger returns a zap logger for an etcd client (clientv3.Config's
// Logger) that forwards to log, so the client's retries and warnings appear
// in Sabot's log instead of as JSON on stderr.
func ClientLogger(log *slog.Logger) *zap.Logger {
	return zap.New(newSlogCore(log.Handler(), new(atomic.Bool)))
}
