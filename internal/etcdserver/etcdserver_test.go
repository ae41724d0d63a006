package etcdserver_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/sabotdev/sabot/internal/etcdserver"
)

func TestMain(m *testing.M) {
	// Nothing is ignored: etcd's goroutines and the etcd client's gRPC
	// goroutines all stop on Close.
	goleak.VerifyTestMain(m)
}

func start(t *testing.T, dir string) *etcdserver.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s, err := etcdserver.Start(ctx, etcdserver.Config{
		Dir:        dir,
		ClientAddr: "127.0.0.1:0",
		Logger:     slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return s
}

func client(t *testing.T, s *etcdserver.Server) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: s.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	return cli
}

// TestRestartKeepsData writes a key, stops etcd, starts it again on the same
// directory (with new port-0 client and peer ports) and reads the key back.
func TestRestartKeepsData(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "etcd")

	s1 := start(t, dir)
	ep1 := s1.Endpoints()
	if len(ep1) != 1 || !strings.HasPrefix(ep1[0], "http://127.0.0.1:") || strings.HasSuffix(ep1[0], ":0") {
		t.Fatalf("Endpoints() = %q, want one bound loopback URL", ep1)
	}
	cli := client(t, s1)
	if _, err := cli.Put(t.Context(), "/sabot/test/key", "v1"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := cli.Close(); err != nil {
		t.Fatalf("client Close: %v", err)
	}
	s1.Close()
	s1.Close() // idempotent

	s2 := start(t, dir)
	defer s2.Close()
	cli = client(t, s2)
	defer func() { _ = cli.Close() }()
	resp, err := cli.Get(t.Context(), "/sabot/test/key")
	if err != nil {
		t.Fatalf("Get after restart: %v", err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v1" {
		t.Fatalf("Get after restart = %v, want v1", resp.Kvs)
	}
	// The restarted member still accepts writes (it is leader of its own
	// one-member cluster again).
	if _, err := cli.Put(t.Context(), "/sabot/test/key", "v2"); err != nil {
		t.Fatalf("Put after restart: %v", err)
	}
}

func TestParallelServers(t *testing.T) {
	t.Parallel()
	a := start(t, t.TempDir())
	defer a.Close()
	b := start(t, t.TempDir())
	defer b.Close()
	if a.Endpoints()[0] == b.Endpoints()[0] {
		t.Fatalf("two servers share endpoint %s", a.Endpoints()[0])
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  etcdserver.Config
	}{
		{"no dir", etcdserver.Config{}},
		{"bad client addr", etcdserver.Config{Dir: "x", ClientAddr: "127.0.0.1"}},
		{"bad peer addr", etcdserver.Config{Dir: "x", PeerAddr: "nope"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := etcdserver.Start(t.Context(), tc.cfg)
			if !errors.Is(err, etcdserver.ErrConfig) {
				t.Fatalf("Start = %v, want ErrConfig", err)
			}
		})
	}
}

func TestStartCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := etcdserver.Start(ctx, etcdserver.Config{Dir: t.TempDir()})
	if err == nil {
		t.Fatal("Start with a cancelled context succeeded")
	}
}
