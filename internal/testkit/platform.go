package testkit

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
	"github.com/sabotdev/sabot/internal/platform"
)

// PlatformOptions configures StartPlatform. Zero values pick test-friendly
// defaults.
type PlatformOptions struct {
	// DataDir to use; default a new temp dir. Pass the same dir to a second
	// StartPlatform to test a restart.
	DataDir string
	// Workers in process; default 2.
	Workers int
	// Slots per worker; default 4.
	Slots int
	// LeaseTTL for workers and the scheduler; default 2s so lost workers are
	// noticed quickly.
	LeaseTTL time.Duration
	// KafkaAddr starts the platform's local broker on this address.
	KafkaAddr string
}

// Platform is a running in-process platform: gateway, scheduler and workers
// on an embedded etcd, with a JobService client pointed at its gateway.
type Platform struct {
	*platform.Platform
	DataDir string
	Jobs    sabotv1connect.JobServiceClient
	stopped bool
	t       testing.TB
}

// StartPlatform starts the platform in process on a free port and stops it
// at the end of the test. A test that restarts the platform calls Stop (it
// is idempotent) and starts another on the same DataDir.
func StartPlatform(t testing.TB, opts PlatformOptions) *Platform {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	if opts.LeaseTTL == 0 {
		opts.LeaseTTL = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := platform.Start(ctx, platform.Config{
		DataDir:   opts.DataDir,
		Addr:      "127.0.0.1:0",
		Workers:   opts.Workers,
		Slots:     opts.Slots,
		LeaseTTL:  opts.LeaseTTL,
		KafkaAddr: opts.KafkaAddr,
		Logger:    Logger(t, slog.LevelInfo),
	})
	if err != nil {
		t.Fatalf("testkit: start platform: %v", err)
	}
	tp := &Platform{
		Platform: p,
		DataDir:  opts.DataDir,
		Jobs:     sabotv1connect.NewJobServiceClient(&http.Client{Timeout: 30 * time.Second}, p.URL()),
		t:        t,
	}
	t.Cleanup(tp.Stop)
	return tp
}

// Stop shuts the platform down cleanly. It is idempotent.
func (p *Platform) Stop() {
	if p.stopped {
		return
	}
	p.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		p.t.Errorf("testkit: stop platform: %v", err)
	}
}
