package scheduler

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sabotdev/sabot/scheduler/autoscale"
)

// Config configures a scheduler.
type Config struct {
	// Etcd is the cluster's etcd. Required; not closed by the scheduler.
	Etcd *clientv3.Client
	// ID names this scheduler in the election. Default: a random id.
	ID string
	// LeaseTTL is the leader lease's time to live: how long a dead leader
	// keeps the role. Default 5s.
	LeaseTTL time.Duration
	// ReconcileInterval is the longest time between two reconciliations when
	// nothing changes. Default 1s.
	ReconcileInterval time.Duration
	// Logger. Default: discard.
	Logger *slog.Logger
	// Clock drives everything timed in job lifecycles: status timestamps,
	// restart delays and the failure-rate window, the timer that wakes the
	// reconciler when a delayed restart is due, and ReconcileInterval.
	// (Leader election keeps etcd's own lease timing.) Default: the real
	// clock.
	Clock clockwork.Clock
	// Provisioner, if set, is asked for the workers the jobs need (see
	// autoscaler.go); nil: the worker pool is managed elsewhere.
	Provisioner autoscale.Provisioner
	// SlotsPerWorker is the slots of a worker the provisioner starts (what
	// the worker count is computed from). Default 4.
	SlotsPerWorker int
	// StaticWorkers is how many workers run besides the provisioner's
	// (they count towards the jobs' slots). Default 0.
	StaticWorkers int
}

// Validate reports a missing or contradictory setting.
func (c *Config) Validate() error {
	var errs []error
	if c.Etcd == nil {
		errs = append(errs, errors.New("scheduler: Etcd is required"))
	}
	if c.LeaseTTL < 0 || (c.LeaseTTL > 0 && c.LeaseTTL < time.Second) {
		errs = append(errs, fmt.Errorf("scheduler: LeaseTTL %s must be at least 1s", c.LeaseTTL))
	}
	if c.SlotsPerWorker < 0 || c.StaticWorkers < 0 {
		errs = append(errs, fmt.Errorf("scheduler: SlotsPerWorker %d and StaticWorkers %d must not be negative", c.SlotsPerWorker, c.StaticWorkers))
	}
	if c.ReconcileInterval < 0 {
		errs = append(errs, fmt.Errorf("scheduler: ReconcileInterval %s is negative", c.ReconcileInterval))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.ID == "" {
		c.ID = randomID("scheduler")
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 5 * time.Second
	}
	if c.ReconcileInterval == 0 {
		c.ReconcileInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = clockwork.NewRealClock()
	}
	if c.SlotsPerWorker == 0 {
		c.SlotsPerWorker = 4
	}
}

// String describes the config.
func (c Config) String() string {
	return fmt.Sprintf("scheduler.Config{ID: %q, LeaseTTL: %s, ReconcileInterval: %s}", c.ID, c.LeaseTTL, c.ReconcileInterval)
}
