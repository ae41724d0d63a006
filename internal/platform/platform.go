// Package platform wires Sabot's services into one process: embedded etcd
// (unless external endpoints are given), the gateway, a scheduler and N
// workers, and optionally a Kafka-protocol broker for local trials. It is
// what `sabot dev` runs and what testkit.StartPlatform starts; production
// runs the same constructors (gateway.Start, scheduler.Start, worker.Start)
// as separate processes. Nothing here is known to the services themselves.
//
// Data under DataDir (default ./.sabot):
//
//	etcd/    the embedded etcd member: jobs, assignments, status survive restarts
//	blobs/   checkpoints, savepoints and artifacts (file:// blob store)
//	kafka/   the local broker's log, when --kafka is on
//
// Shutdown order (Close): scheduler (no new decisions) → workers (tasks
// stop, leases revoked so a restart reschedules at once) → gateway
// (in-flight requests drain) → broker → etcd client → etcd.
package platform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sabotdev/sabot/gateway"
	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/internal/etcdserver"
	"github.com/sabotdev/sabot/scheduler"
	"github.com/sabotdev/sabot/scheduler/autoscale"
	"github.com/sabotdev/sabot/worker"
)

// Config configures a platform.
type Config struct {
	// DataDir holds etcd's data, blobs and the broker's log. Default ./.sabot.
	DataDir string
	// Addr is the gateway's listen address. Default 127.0.0.1:8080; port 0
	// picks a free port.
	Addr string
	// EtcdEndpoints, if set, is an etcd cluster to use instead of starting an
	// embedded one.
	EtcdEndpoints []string
	// EtcdAddr is the embedded etcd's client address. Default 127.0.0.1:0.
	EtcdAddr string
	// Workers is the number of in-process workers. Default 2.
	Workers int
	// Slots per worker. Default 4.
	Slots int
	// KafkaAddr, if set, starts an in-process Kafka-protocol broker
	// (franz-go's kfake) listening there, with its log under DataDir/kafka.
	KafkaAddr string
	// LeaseTTL is the worker and scheduler lease TTL. Default 5s.
	LeaseTTL time.Duration
	// PrintOut receives print sinks' lines. Default: discarded.
	PrintOut io.Writer
	// Logger. Default: discard.
	Logger *slog.Logger
	// Provisioner, if set, makes the scheduler's worker provisioner once
	// etcd runs (sabot dev --autoscale: worker child processes), given
	// etcd's endpoints and the blob store's URL; its workers come on top of
	// the in-process ones. Closed with the platform when it has a Close
	// method.
	Provisioner func(etcd []string, blobURL string) (autoscale.Provisioner, error)
}

// Validate reports a contradictory setting.
func (c *Config) Validate() error {
	var errs []error
	if c.Workers < 0 {
		errs = append(errs, fmt.Errorf("platform: Workers %d is negative", c.Workers))
	}
	if c.Slots < 0 {
		errs = append(errs, fmt.Errorf("platform: Slots %d is negative", c.Slots))
	}
	if c.KafkaAddr != "" {
		if _, _, err := net.SplitHostPort(c.KafkaAddr); err != nil {
			errs = append(errs, fmt.Errorf("platform: KafkaAddr %q: %w", c.KafkaAddr, err))
		}
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.DataDir == "" {
		c.DataDir = ".sabot"
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8080"
	}
	if c.EtcdAddr == "" {
		c.EtcdAddr = "127.0.0.1:0"
	}
	if c.Workers == 0 {
		c.Workers = 2
	}
	if c.PrintOut == nil {
		c.PrintOut = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Platform is a running platform.
type Platform struct {
	cfg       Config
	etcd      *etcdserver.Server // nil with external endpoints
	endpoints []string
	cli       *clientv3.Client
	gw        *gateway.Gateway
	sched     *scheduler.Scheduler
	workers   []*worker.Worker
	kafka     *kfake.Cluster
	prov      autoscale.Provisioner
	blobDir   string
	blob      *blob.FileStore
}

// Start starts every part and returns once the gateway serves, the workers
// are registered and the scheduler leads. On error, whatever started is
// stopped again.
func Start(ctx context.Context, cfg Config) (p *Platform, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	log := cfg.Logger
	p = &Platform{cfg: cfg}
	started := p // the returns below set p to nil on error
	defer func() {
		if err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = started.Close(cctx)
			p = nil
		}
	}()

	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("platform: data dir: %w", err)
	}
	p.blobDir = filepath.Join(cfg.DataDir, "blobs")
	if err := os.MkdirAll(p.blobDir, 0o755); err != nil {
		return nil, fmt.Errorf("platform: blob dir: %w", err)
	}
	absBlobs, err := filepath.Abs(p.blobDir)
	if err != nil {
		return nil, fmt.Errorf("platform: blob dir: %w", err)
	}
	if p.blob, err = blob.OpenFile(absBlobs); err != nil {
		return nil, fmt.Errorf("platform: blob store: %w", err)
	}

	p.endpoints = cfg.EtcdEndpoints
	if len(p.endpoints) == 0 {
		p.etcd, err = etcdserver.Start(ctx, etcdserver.Config{
			Dir:        filepath.Join(cfg.DataDir, "etcd"),
			ClientAddr: cfg.EtcdAddr,
			Logger:     log,
		})
		if err != nil {
			return nil, fmt.Errorf("platform: etcd: %w", err)
		}
		p.endpoints = p.etcd.Endpoints()
		log.Info("etcd (embedded) listening", "endpoints", p.endpoints, "dir", filepath.Join(cfg.DataDir, "etcd"))
	}
	p.cli, err = clientv3.New(clientv3.Config{
		Endpoints:   p.endpoints,
		DialTimeout: 5 * time.Second,
		Context:     context.WithoutCancel(ctx),
		Logger:      etcdserver.ClientLogger(log),
	})
	if err != nil {
		return nil, fmt.Errorf("platform: etcd client: %w", err)
	}

	if cfg.KafkaAddr != "" {
		_, portStr, _ := net.SplitHostPort(cfg.KafkaAddr)
		port, perr := strconv.Atoi(portStr)
		if perr != nil {
			return nil, fmt.Errorf("platform: kafka port %q: %w", portStr, perr)
		}
		kdir := filepath.Join(cfg.DataDir, "kafka")
		p.kafka, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(kdir), kfake.AllowAutoTopicCreation())
		if err != nil {
			return nil, fmt.Errorf("platform: kafka broker: %w", err)
		}
		log.Info("kafka broker (in-process, kfake) listening", "addrs", p.kafka.ListenAddrs(), "dir", kdir)
	}

	for i := range cfg.Workers {
		w, werr := worker.Start(ctx, worker.Config{
			Etcd:     p.cli,
			Blob:     p.blob,
			StateDir: filepath.Join(cfg.DataDir, "state"),
			// Per worker: each runs its own function processes.
			FunctionDir: filepath.Join(cfg.DataDir, "functions", strconv.Itoa(i)),
			Slots:       cfg.Slots,
			LeaseTTL:    cfg.LeaseTTL,
			PrintOut:    cfg.PrintOut,
			Logger:      log,
		})
		if werr != nil {
			return nil, fmt.Errorf("platform: worker %d: %w", i, werr)
		}
		p.workers = append(p.workers, w)
	}

	if cfg.Provisioner != nil {
		if p.prov, err = cfg.Provisioner(p.endpoints, p.BlobURL()); err != nil {
			return nil, fmt.Errorf("platform: provisioner: %w", err)
		}
	}
	p.sched, err = scheduler.Start(ctx, scheduler.Config{Etcd: p.cli, LeaseTTL: cfg.LeaseTTL, Logger: log,
		Provisioner: p.prov, SlotsPerWorker: cfg.Slots, StaticWorkers: cfg.Workers})
	if err != nil {
		return nil, fmt.Errorf("platform: scheduler: %w", err)
	}
	select {
	case <-p.sched.Leading():
	case <-ctx.Done():
		return nil, fmt.Errorf("platform: waiting for the scheduler to lead: %w", ctx.Err())
	}

	p.gw, err = gateway.Start(ctx, gateway.Config{Addr: cfg.Addr, Etcd: p.cli, Blob: p.blob, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("platform: %w", err)
	}
	log.Info("blob store", "url", p.BlobURL())
	return p, nil
}

// Addr is the gateway's address (host:port).
func (p *Platform) Addr() string { return p.gw.Addr() }

// URL is the gateway's base URL.
func (p *Platform) URL() string { return "http://" + p.gw.Addr() }

// EtcdEndpoints are the endpoints of the etcd the platform uses.
func (p *Platform) EtcdEndpoints() []string { return p.endpoints }

// Etcd is the platform's etcd client.
func (p *Platform) Etcd() *clientv3.Client { return p.cli }

// KafkaAddrs are the local broker's addresses, if one runs.
func (p *Platform) KafkaAddrs() []string {
	if p.kafka == nil {
		return nil
	}
	return p.kafka.ListenAddrs()
}

// Worker returns the in-process worker with the given id, or nil.
func (p *Platform) Worker(id string) *worker.Worker {
	for _, w := range p.workers {
		if w.ID() == id {
			return w
		}
	}
	return nil
}

// BlobURL is where checkpoints, savepoints and artifacts go.
func (p *Platform) BlobURL() string {
	abs, err := filepath.Abs(p.blobDir)
	if err != nil {
		abs = p.blobDir
	}
	return "file://" + abs
}

// Close stops everything in order (see the package doc). ctx bounds how long
// in-flight requests may take to finish. It is safe on a partly started
// platform.
func (p *Platform) Close(ctx context.Context) error {
	var errs []error
	if p.sched != nil {
		p.sched.Close()
	}
	if c, ok := p.prov.(interface{ Close() error }); ok {
		if err := c.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, w := range p.workers {
		w.Close()
	}
	if p.gw != nil {
		if err := p.gw.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if p.kafka != nil {
		p.kafka.Close()
	}
	if p.cli != nil {
		if err := p.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
	}
	if p.etcd != nil {
		p.etcd.Close()
	}
	if p.blob != nil {
		if err := p.blob.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
