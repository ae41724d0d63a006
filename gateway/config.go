package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sabotdev/sabot/internal/blob"
)

// Config configures a gateway.
type Config struct {
	// Addr is the host:port to listen on; port 0 picks a free port (see
	// Gateway.Addr). Required.
	Addr string
	// Etcd is the client for the cluster's etcd. Required; not closed by the
	// gateway.
	Etcd *clientv3.Client
	// Blob is the cluster's blob store, where savepoints live (the workers'
	// --blob-store). Optional; not closed by the gateway. With it, DeployJob
	// checks a spec's restore before storing the job: the savepoint exists
	// and is readable, it was taken with the job's max_parallelism, and
	// every vertex it holds state of is in the new graph (unless
	// allow_non_restored_state). Without it those checks are skipped and a
	// bad restore fails the job's first attempt on its worker instead.
	Blob blob.Store
	// Logger receives request errors the caller does not see. Default: discard.
	Logger *slog.Logger
	// Now returns the current time. Default: time.Now.
	Now func() time.Time
}

// Validate reports a missing or contradictory setting.
func (c *Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("gateway: Addr is required"))
	}
	if c.Etcd == nil {
		errs = append(errs, errors.New("gateway: Etcd is required"))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// String describes the config without secrets.
func (c Config) String() string {
	return fmt.Sprintf("gateway.Config{Addr: %q, Blob: %t}", c.Addr, c.Blob != nil)
}
