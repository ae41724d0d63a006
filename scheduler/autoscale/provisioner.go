package autoscale

import (
	"context"
	"errors"
)

// Provisioner adds or removes workers.
//
// The autoscaler asks for workers before a rescale needs them (WorkersNeeded)
// and gives them back after a scale-down; the scheduler places tasks on
// whatever workers have registered in etcd, so a provisioner only has to get
// the count right eventually. Implementations are safe for concurrent use.
type Provisioner interface {
	// Name for logs ("local", "ecs").
	Name() string
	// SetWorkers asks for n workers in total. It returns once the request is
	// made (workers register in etcd when they are up). n is clamped to the
	// provisioner's own bounds.
	SetWorkers(ctx context.Context, n int) error
	// Workers is the number last asked for (or observed).
	Workers(ctx context.Context) (int, error)
}

// Sentinel errors of the provisioners; inspect them with errors.Is.
var (
	// ErrClosed is returned by a Local after Close.
	ErrClosed = errors.New("autoscale: provisioner closed")
)

// clampWorkers bounds n to [lo, hi]; hi 0 means no upper bound.
func clampWorkers(n, lo, hi int) int {
	if hi > 0 && n > hi {
		n = hi
	}
	return max(n, lo, 0)
}
