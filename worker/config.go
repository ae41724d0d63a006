package worker

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/internal/cluster"
)

// Config configures a worker.
type Config struct {
	// Etcd is the cluster's etcd. Required; not closed by the worker.
	Etcd *clientv3.Client
	// ID names the worker. Default: a new random id per start (a restarted
	// worker is a new worker).
	ID string
	// Slots is how many subtasks of each vertex the worker runs at most
	// (slot sharing: one slot holds one subtask of every vertex of a job).
	// Default 4.
	Slots int
	// LeaseTTL is how long the worker stays registered after it stops
	// renewing its lease (crash detection time). Default 5s.
	LeaseTTL time.Duration
	// Blob is where checkpoints go (and are restored from). Required to run
	// jobs with checkpointing; not closed by the worker.
	Blob blob.Store
	// StateDir holds pebble state; default a temporary directory per job
	// attempt.
	StateDir string
	// PrintOut receives the lines of print sinks. Default: discarded.
	PrintOut io.Writer
	// Logger. Default: discard.
	Logger *slog.Logger
	// Now returns the current time. Default: time.Now.
	Now func() time.Time
	// MetricsInterval is how often running tasks' metrics are written to
	// their reports (what the autoscaler reads). Default 5s.
	MetricsInterval time.Duration
	// Listen is the host:port of the worker's HTTP/2 endpoint, through
	// which other workers exchange data with its subtasks and coordinate
	// checkpoints. Default "127.0.0.1:0" (a free loopback port).
	Listen string
	// Advertise is the base URL other workers dial (http://host:port);
	// default http:// and the address Listen bound.
	Advertise string
	// FunctionDir holds deployed functions' artifacts and the sockets of
	// their processes. Default: a temporary directory, removed by Close.
	FunctionDir string
}

// Validate reports a missing or contradictory setting.
func (c *Config) Validate() error {
	var errs []error
	if c.Etcd == nil {
		errs = append(errs, errors.New("worker: Etcd is required"))
	}
	if c.Slots < 0 {
		errs = append(errs, fmt.Errorf("worker: Slots %d is negative", c.Slots))
	}
	if c.LeaseTTL < 0 || (c.LeaseTTL > 0 && c.LeaseTTL < time.Second) {
		errs = append(errs, fmt.Errorf("worker: LeaseTTL %s must be at least 1s", c.LeaseTTL))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.ID == "" {
		c.ID = cluster.NewWorkerID("worker")
	}
	if c.Slots == 0 {
		c.Slots = 4
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 5 * time.Second
	}
	if c.PrintOut == nil {
		c.PrintOut = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MetricsInterval == 0 {
		c.MetricsInterval = 5 * time.Second
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:0"
	}
}

// String describes the config.
func (c Config) String() string {
	return fmt.Sprintf("worker.Config{ID: %q, Slots: %d, LeaseTTL: %s}", c.ID, c.Slots, c.LeaseTTL)
}
