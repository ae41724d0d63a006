package runtime_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/worker/runtime"
)

// slowSink is a print sink's output that takes d per write (one write
// per batch): a slow sink that backpressures the whole job.
type slowSink struct {
	d time.Duration
	lines
	mu sync.Mutex
}

func (w *slowSink) Write(p []byte) (int, error) {
	w.mu.Lock()
	d := w.d
	w.mu.Unlock()
	time.Sleep(d)
	return w.lines.Write(p)
}

// TestUnalignedCheckpointsUnderBackpressure runs the counting job with a
// sink that takes 40 ms per batch and deep queues (32 batches), so every
// queue is full. Aligned barriers wait behind the queues (seconds) and
// checkpoints time out (1 s);
// unaligned barriers overtake them and checkpoints complete. Then the job
// restores from the latest unaligned checkpoint (its in-flight data
// included) and runs to the end with a fast sink: every count is exact.
func TestUnalignedCheckpointsUnderBackpressure(t *testing.T) {
	t.Parallel()
	const (
		n    = 400000
		keys = 31
	)
	for _, unaligned := range []bool{false, true} {
		t.Run(fmt.Sprintf("unaligned=%v", unaligned), func(t *testing.T) {
			t.Parallel()
			store, err := blob.OpenFile(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = store.Close() }()
			g := countGraph(t, sabotv1.StateBackend_STATE_BACKEND_HEAP, sabotv1.CheckpointMode_CHECKPOINT_MODE_EXACTLY_ONCE, 2, n, 0, keys)
			g.Spec.GetCheckpointing().IntervalMs = 100
			g.Spec.GetCheckpointing().TimeoutMs = 1000
			g.Spec.GetCheckpointing().TolerableFailures = 1000
			g.Spec.GetCheckpointing().Unaligned = unaligned
			com := &memCommitter{}
			out := &slowSink{d: 40 * time.Millisecond}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() {
				done <- runtime.Run(ctx, runtime.Config{JobID: "j", Attempt: 1, Graph: g, PrintOut: out, QueueCapacity: 32,
					Checkpoints: &runtime.CheckpointOptions{Store: store, Committer: com}})
			}()
			// Unaligned runs longer: on a loaded 2-CPU CI machine some of
			// its checkpoints time out too (2 of 5 completed in 5 s once);
			// the test is about them completing at all while aligned ones
			// cannot.
			run := 5 * time.Second
			if unaligned {
				run = 10 * time.Second
			}
			time.Sleep(run)
			cancel()
			if err := <-done; err != nil && ctx.Err() == nil {
				t.Fatal(err)
			}
			com.mu.Lock()
			completed, failed := 0, 0
			var longest int64
			for _, h := range com.history {
				switch h.GetStatus() { //nolint:exhaustive // in progress is neither
				case sabotv1.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED:
					completed++
					longest = max(longest, h.GetDurationMs())
				case sabotv1.CheckpointStatus_CHECKPOINT_STATUS_FAILED:
					failed++
					if failed <= 3 {
						t.Logf("checkpoint %d failed: %s", h.GetId(), h.GetFailureReason())
					}
				}
			}
			com.mu.Unlock()
			t.Logf("unaligned=%v: %d checkpoints completed (longest %d ms), %d failed", unaligned, completed, longest, failed)
			if !unaligned {
				if completed > failed {
					t.Fatalf("aligned checkpoints under backpressure: %d completed, %d failed; expected most to time out", completed, failed)
				}
				return
			}
			if completed < 3 {
				t.Fatalf("unaligned checkpoints under backpressure: only %d completed (%d failed)", completed, failed)
			}
			// Restore (with the channel state) and finish quickly.
			md, retained := com.get()
			fast := &slowSink{}
			err = runWithin(t, 60*time.Second, runtime.Config{JobID: "j", Attempt: 2, Graph: g, PrintOut: fast,
				Checkpoints: &runtime.CheckpointOptions{Store: store, Committer: com, Restore: md, Retained: retained}})
			if err != nil {
				t.Fatal(err)
			}
			inflight := 0
			for _, s := range md.GetOperators() {
				inflight += len(s.GetChannelState())
			}
			t.Logf("restored from checkpoint %d with %d channel-state objects", md.GetCheckpointId(), inflight)
			if inflight == 0 {
				t.Error("the restored unaligned checkpoint holds no in-flight data; the test did not exercise it")
			}
			got := map[int64]int64{}
			finalCounts(t, &fast.lines, got)
			for k := range int64(keys) {
				want := int64(n / keys)
				if k < n%keys {
					want++
				}
				if got[k] != want {
					t.Errorf("key %d: final count %d, want %d", k, got[k], want)
				}
			}
		})
	}
}
