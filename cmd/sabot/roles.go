package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sabotdev/sabot/gateway"
	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/internal/etcdserver"
	"github.com/sabotdev/sabot/scheduler"
	"github.com/sabotdev/sabot/scheduler/autoscale"
	"github.com/sabotdev/sabot/worker"
)

// roleFlags are what every production role needs.
type roleFlags struct {
	etcd     []string
	logLevel string
}

func (r *roleFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringSliceVar(&r.etcd, "etcd", []string{"127.0.0.1:2379"}, "etcd endpoints")
	cmd.Flags().StringVar(&r.logLevel, "log-level", "info", "log level: debug, info, warn, error")
}

func (r *roleFlags) client(ctx context.Context, log *slog.Logger) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   r.etcd,
		DialTimeout: 5 * time.Second,
		Context:     ctx,
		Logger:      etcdserver.ClientLogger(log),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(r.etcd, ","), err)
	}
	return cli, nil
}

// run is the body every role shares: logger and etcd client from the
// flags, start the role, wait for SIGINT/SIGTERM, stop it within
// shutdownGrace.
func (r *roleFlags) run(cmd *cobra.Command, start func(ctx context.Context, cli *clientv3.Client, log *slog.Logger) (stop func(context.Context) error, err error)) error {
	log, err := newLogger(r.logLevel)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	cli, err := r.client(context.WithoutCancel(ctx), log)
	if err != nil {
		return err
	}
	defer closeQuietly(cli)
	stop, err := start(ctx, cli, log)
	if err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	return stop(sctx)
}

func newGatewayCmd(g *globals) *cobra.Command {
	var (
		rf      roleFlags
		blobURL string
	)
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run the gateway role (public API) against an etcd cluster",
		Long: "Gateway serves the public API. With --blob-store (the workers' store) it checks a\n" +
			"deploy --from-savepoint before storing the job: the savepoint exists and is readable, it\n" +
			"was taken with the job's max_parallelism, and every step it holds state of is still in\n" +
			"the job (unless --allow-non-restored-state). Without it those checks are skipped and a\n" +
			"bad restore fails the job's first attempt on its worker instead.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return rf.run(cmd, func(ctx context.Context, cli *clientv3.Client, log *slog.Logger) (func(context.Context) error, error) {
				store, err := openBlob(blobURL)
				if err != nil {
					return nil, err
				}
				gw, err := gateway.Start(ctx, gateway.Config{Addr: strings.TrimPrefix(g.addr, "http://"), Etcd: cli, Blob: store, Logger: log})
				if err != nil {
					closeBlob(store)
					return nil, err
				}
				return func(ctx context.Context) error {
					err := gw.Close(ctx)
					if store != nil {
						err = errors.Join(err, store.Close())
					}
					return err
				}, nil
			})
		},
	}
	rf.register(cmd)
	cmd.Flags().StringVar(&blobURL, "blob-store", "", "the workers' blob store, to check deploys from savepoints: file:///dir or s3://bucket/prefix?endpoint=…&path_style=true")
	return cmd
}

// openBlob opens the store a --blob-store flag names, or returns nil for
// an empty flag.
func openBlob(url string) (blob.Store, error) {
	if url == "" {
		return nil, nil
	}
	store, err := blob.Open(url, blob.Options{})
	if err != nil {
		return nil, fmt.Errorf("--blob-store: %w", err)
	}
	return store, nil
}

// closeBlob closes a store opened by openBlob after a failed start, whose
// error is the one to report.
func closeBlob(store blob.Store) {
	if store != nil {
		_ = store.Close()
	}
}

func newSchedulerCmd() *cobra.Command {
	var (
		rf       roleFlags
		id       string
		leaseTTL time.Duration
		pf       provisionFlags
	)
	cmd := &cobra.Command{
		Use:   "scheduler",
		Short: "Run a scheduler (one is elected leader) against an etcd cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return rf.run(cmd, func(ctx context.Context, cli *clientv3.Client, log *slog.Logger) (func(context.Context) error, error) {
				prov, err := pf.provisioner(ctx, rf.etcd, log)
				if err != nil {
					return nil, err
				}
				closeProv := func() error {
					if c, ok := prov.(interface{ Close() error }); ok {
						return c.Close()
					}
					return nil
				}
				s, err := scheduler.Start(ctx, scheduler.Config{Etcd: cli, Logger: log, ID: id, LeaseTTL: leaseTTL,
					Provisioner: prov, SlotsPerWorker: pf.slots})
				if err != nil {
					_ = closeProv()
					return nil, err
				}
				return func(context.Context) error { s.Close(); return closeProv() }, nil
			})
		},
	}
	rf.register(cmd)
	cmd.Flags().StringVar(&id, "id", "", "scheduler id in the leader election (default: a random id)")
	cmd.Flags().DurationVar(&leaseTTL, "lease-ttl", 0, "leader lease: how long a dead leader keeps the role before a standby takes over (default 5s)")
	cmd.Flags().StringVar(&pf.kind, "provisioner", "", "who adds and removes workers for the autoscaler: local (worker child processes of this binary), ecs (an ECS service's desired count) or none")
	cmd.Flags().IntVar(&pf.slots, "worker-slots", 4, "slots of each provisioned worker (what the worker count is computed from)")
	cmd.Flags().IntVar(&pf.minWorkers, "min-workers", 0, "fewest provisioned workers")
	cmd.Flags().IntVar(&pf.maxWorkers, "max-workers", 8, "most provisioned workers")
	cmd.Flags().StringVar(&pf.blobURL, "worker-blob-store", "", "local provisioner: the workers' --blob-store")
	cmd.Flags().StringVar(&pf.ecsCluster, "ecs-cluster", "", "ecs provisioner: cluster name (default: the default cluster)")
	cmd.Flags().StringVar(&pf.ecsService, "ecs-service", "", "ecs provisioner: the workers' service")
	cmd.Flags().StringVar(&pf.ecsRegion, "ecs-region", "", "ecs provisioner: AWS region (default AWS_REGION)")
	return cmd
}

func newWorkerCmd() *cobra.Command {
	var (
		rf       roleFlags
		slots    int
		id       string
		blobURL  string
		stateDir string
		leaseTTL time.Duration
		listen   string
		adv      string
		metrics  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run a worker against an etcd cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return rf.run(cmd, func(ctx context.Context, cli *clientv3.Client, log *slog.Logger) (func(context.Context) error, error) {
				var store blob.Store
				if blobURL != "" {
					var err error
					if store, err = blob.Open(blobURL, blob.Options{}); err != nil {
						return nil, fmt.Errorf("--blob-store: %w", err)
					}
				}
				if id == "" {
					id = os.Getenv(autoscale.WorkerIDEnv) // set by the local provisioner
				}
				w, err := worker.Start(ctx, worker.Config{Etcd: cli, ID: id, Slots: slots, Logger: log, PrintOut: cmd.OutOrStdout(),
					Blob: store, StateDir: stateDir, LeaseTTL: leaseTTL, Listen: listen, Advertise: adv, MetricsInterval: metrics})
				if err != nil {
					if store != nil {
						_ = store.Close()
					}
					return nil, err
				}
				return func(context.Context) error {
					w.Close()
					if store != nil {
						return store.Close()
					}
					return nil
				}, nil
			})
		},
	}
	rf.register(cmd)
	cmd.Flags().IntVar(&slots, "slots", 4, "task slots")
	cmd.Flags().StringVar(&blobURL, "blob-store", "", "blob store for checkpoints: file:///dir or s3://bucket/prefix?endpoint=…&path_style=true")
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "directory for pebble state (default: a temporary directory per job attempt)")
	cmd.Flags().DurationVar(&leaseTTL, "lease-ttl", 0, "how long the worker stays registered after it stops renewing (crash detection time; default 5s)")
	cmd.Flags().StringVar(&id, "id", "", "worker id (default: a new random id per start; reuse one only for a worker that really is the same)")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "host:port of the worker's data exchange endpoint (HTTP/2); other workers connect to it")
	cmd.Flags().StringVar(&adv, "advertise", "", "base URL other workers dial, http://host:port (default: the address --listen bound)")
	cmd.Flags().DurationVar(&metrics, "metrics-interval", 0, "how often running tasks' metrics are reported for the autoscaler (default 5s)")
	return cmd
}

// closeQuietly closes the etcd client at exit; by then there is nobody to
// report a close error to.
func closeQuietly(cli *clientv3.Client) { _ = cli.Close() }
