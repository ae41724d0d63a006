package state

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/sabotdev/sabot/internal/group"
)

// transferParallelism is how many files a pebble snapshot uploads or a
// restore downloads at once: enough to hide S3 latency, few enough that
// memory (each S3 Put buffers up to its part size) stays bounded.
const transferParallelism = 4

// parallel runs fn(ctx, i) for i in [0, n) on at most transferParallelism
// goroutines of its own (internal/group), all returned before it does. The
// first error cancels the others' context and is returned.
func parallel(ctx context.Context, name string, n int, fn func(ctx context.Context, i int) error) error {
	workers := min(n, transferParallelism)
	if workers == 0 {
		return ctx.Err()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	g := group.New(ctx)
	var next atomic.Int64
	// Each worker sends once, when it stops: buffered, so never blocks.
	done := make(chan error, workers)
	for range workers {
		started := g.Go(name, func(ctx context.Context) {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					done <- nil
					return
				}
				if err := ctx.Err(); err != nil {
					done <- context.Cause(ctx)
					return
				}
				if err := fn(ctx, i); err != nil {
					done <- err
					return
				}
			}
		})
		if !started { // only after Stop, which nothing has called
			done <- errors.New("state: transfer group stopped")
		}
	}
	var first error
	for range workers {
		if err := <-done; err != nil && first == nil {
			first = err
			cancel(err)
		}
	}
	g.Stop(nil)
	return first
}
