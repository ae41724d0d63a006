package testkit

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sabotdev/sabot/internal/etcdserver"
)

// Etcd is a single-member etcd started by StartEtcd.
type Etcd struct {
	// Server is the embedded server; tests that restart etcd close it and
	// start another on Dir.
	Server *etcdserver.Server
	// Dir is the server's data directory, inside t.TempDir().
	Dir string
	// Endpoints are the client URLs, e.g. "http://127.0.0.1:41234".
	Endpoints []string
	// Client is a ready client, closed on cleanup before the server stops.
	Client *clientv3.Client
}

// StartEtcd starts etcd on a free loopback port in a temp dir and connects a
// client. Both are closed by t.Cleanup. It fails t if etcd is not ready in
// 30 s.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	out := Output(t)
	dir := filepath.Join(t.TempDir(), "etcd")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	srv, err := etcdserver.Start(ctx, etcdserver.Config{
		Dir:    dir,
		Logger: slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatalf("testkit: start etcd: %v", err)
	}
	t.Cleanup(srv.Close)
	e := &Etcd{Server: srv, Dir: dir, Endpoints: srv.Endpoints()}
	e.Client = e.NewClient(t)
	return e
}

// NewClient connects another client (a separate session, as a second
// process would have), closed by t.Cleanup before the server stops.
func (e *Etcd) NewClient(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   e.Endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zapLogger(zapcore.AddSync(Output(t))),
	})
	if err != nil {
		t.Fatalf("testkit: etcd client: %v", err)
	}
	t.Cleanup(func() {
		if err := cli.Close(); err != nil {
			t.Errorf("testkit: close etcd client: %v", err)
		}
	})
	return cli
}

// zapLogger writes the etcd client's warnings and errors to w.
func zapLogger(w zapcore.WriteSyncer) *zap.Logger {
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	return zap.New(zapcore.NewCore(enc, w, zapcore.WarnLevel))
}
