package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	"github.com/sabotdev/sabot/examples"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/manifest"
	"github.com/sabotdev/sabot/internal/platform"
	"github.com/sabotdev/sabot/scheduler/autoscale"
)

// shutdownGrace bounds a clean shutdown after SIGINT/SIGTERM; the process
// exits within 5 s of the signal.
const shutdownGrace = 4 * time.Second

func newDevCmd(g *globals) *cobra.Command {
	var (
		cfg        platform.Config
		demo       bool
		logLevel   string
		autoscaled bool
		maxWorkers int
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole platform in one process, for trying Sabot",
		Long: "dev starts an embedded etcd, the gateway, the scheduler and in-process workers,\n" +
			"keeping everything under --data so a restart finds the same jobs. --demo deploys\n" +
			"the bundled demo job (examples/demo.yaml) unless it is already there.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			cfg.Addr = strings.TrimPrefix(strings.TrimPrefix(g.addr, "http://"), "https://")
			cfg.Logger = log
			cfg.PrintOut = cmd.OutOrStdout()
			if autoscaled {
				cfg.Provisioner = func(etcd []string, blobURL string) (autoscale.Provisioner, error) {
					return localWorkers(etcd, blobURL, cfg.Slots, 0, maxWorkers, cmd.ErrOrStderr(), log)
				}
			}
			ctx := cmd.Context()
			p, err := platform.Start(ctx, cfg)
			if err != nil {
				return err
			}
			log.Info("sabot dev is up", "gateway", p.URL(), "etcd", p.EtcdEndpoints(), "kafka", p.KafkaAddrs(),
				"blobs", p.BlobURL(), "workers", cfg.Workers, "try", "sabot jobs --addr "+p.Addr())
			if demo {
				if err := deployDemo(ctx, &globals{addr: p.Addr()}, log); err != nil {
					log.Error("demo not deployed", "err", err)
				}
			}
			<-ctx.Done()
			log.Info("shutting down")
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
			defer cancel()
			if err := p.Close(sctx); err != nil {
				return fmt.Errorf("shutdown: %w", err)
			}
			log.Info("stopped")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data", ".sabot", "data directory (etcd, blobs, local broker log)")
	f.IntVar(&cfg.Workers, "workers", 2, "number of in-process workers")
	f.IntVar(&cfg.Slots, "slots", 4, "task slots per worker")
	f.StringVar(&cfg.KafkaAddr, "kafka", "", "also start an in-process Kafka-protocol broker on this address, e.g. 127.0.0.1:9092")
	f.StringVar(&cfg.EtcdAddr, "etcd-addr", "127.0.0.1:0", "embedded etcd's client address")
	f.StringSliceVar(&cfg.EtcdEndpoints, "etcd", nil, "use this etcd cluster instead of an embedded one")
	f.BoolVar(&demo, "demo", false, "deploy the bundled demo job")
	f.BoolVar(&autoscaled, "autoscale", false, "let the scheduler start and stop worker child processes (up to --max-workers, on top of --workers) for autoscaled jobs")
	f.IntVar(&maxWorkers, "max-workers", 8, "with --autoscale: most worker processes it starts")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return cmd
}

// deployDemo deploys the bundled demo through the gateway, like a user
// would, unless a job of the same name is still live.
func deployDemo(ctx context.Context, g *globals, log *slog.Logger) error {
	data, err := examples.FS.ReadFile("demo.yaml")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	spec, err := manifest.Parse("examples/demo.yaml", data)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	c := jobClient(g)
	resp, err := c.ListJobs(ctx, connect.NewRequest(&sabotv1.ListJobsRequest{PageSize: 1000}))
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	for _, j := range resp.Msg.GetJobs() {
		if j.GetSpec().GetName() == spec.GetName() && !cluster.IsTerminal(j.GetStatus().GetState()) {
			log.Info("demo job already deployed", "job", j.GetId(), "state", stateName(j.GetStatus().GetState()))
			return nil
		}
	}
	job, err := deploySpec(ctx, c, spec)
	if err != nil {
		return err
	}
	log.Info("demo job deployed", "job", job.GetId(), "name", spec.GetName())
	return nil
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: expected debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}
