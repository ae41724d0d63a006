package group_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/sabotdev/sabot/internal/group"
)

func TestStopCancelsAndWaits(t *testing.T) {
	t.Parallel()
	g := group.New(context.Background())
	var exited atomic.Int32
	for range 4 {
		if !g.Go("waiter", func(ctx context.Context) {
			<-ctx.Done()
			exited.Add(1)
		}, "test", "stop") {
			t.Fatal("Go refused before Stop")
		}
	}
	g.Stop(nil)
	if got := exited.Load(); got != 4 {
		t.Fatalf("Stop returned with %d of 4 goroutines exited", got)
	}
	if g.Go("late", func(context.Context) {}) {
		t.Fatal("Go accepted a goroutine after Stop")
	}
	g.Stop(nil) // idempotent
}
