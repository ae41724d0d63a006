package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/worker/runtime"
)

// memCommitter keeps the latest completed checkpoint in memory.
type memCommitter struct {
	mu       sync.Mutex
	latest   *clusterv1.CheckpointMetadata
	retained []int64
	history  []*sabotv1.CheckpointInfo
}

func (c *memCommitter) Commit(_ context.Context, md *clusterv1.CheckpointMetadata, _ string, retained []int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.latest, c.retained = md, retained
	return nil
}

func (c *memCommitter) Record(_ context.Context, info *sabotv1.CheckpointInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.history = append(c.history, info)
}

func (c *memCommitter) get() (*clusterv1.CheckpointMetadata, []int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.latest, c.retained
}

func (c *memCommitter) completed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, h := range c.history {
		if h.GetStatus() == sabotv1.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED {
			n++
		}
	}
	return n
}

// countGraph is seq (p) → k = value % keys → hash → keyed count (p) → print.
// With p = 2 every count subtask has two input channels, so barriers are
// aligned.
func countGraph(t *testing.T, b sabotv1.StateBackend, mode sabotv1.CheckpointMode, p int32, n, rate int64, keys int) *jobgraph.Graph {
	t.Helper()
	spec := &sabotv1.JobSpec{Name: "t", StateBackend: b, Checkpointing: &sabotv1.Checkpointing{IntervalMs: 30, Mode: mode, Retained: 2},
		Graph: &sabotv1.JobGraph{Vertices: []*sabotv1.Vertex{
			seqVertex("seq", p, 0, ptr(n-1), rate),
			mapVertex("prep", p, "k", fmt.Sprintf("value %% %d", keys)),
			aggVertex("count", p, aggregation("n", sabotv1.AggregateFunction_AGGREGATE_FUNCTION_COUNT, "")),
			printVertex("out", p, "o"),
		}, Edges: []*sabotv1.Edge{
			edge("seq", "prep", sabotv1.Partitioning_PARTITIONING_FORWARD),
			edge("prep", "count", sabotv1.Partitioning_PARTITIONING_HASH, "k"),
			edge("count", "out", sabotv1.Partitioning_PARTITIONING_FORWARD),
		}}}
	g, err := jobgraph.Resolve(spec)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// finalCounts reads the last count printed per key.
func finalCounts(t *testing.T, out *lines, into map[int64]int64) {
	t.Helper()
	for _, l := range out.all() {
		p := parsePrinted(t, l)
		into[intOf(t, p.row["k"])] = intOf(t, p.row["n"])
	}
}

// TestCheckpointRestoreCounts cancels a running job at a random moment
// (like a crash: nothing is flushed or committed on the way out), restores
// the next attempt from the latest completed checkpoint and runs it to the
// end. Exactly-once: every key's final count equals its number of inputs,
// on both backends. At-least-once: no count is lower (nothing lost).
func TestCheckpointRestoreCounts(t *testing.T) {
	t.Parallel()
	const (
		n    = 60000
		keys = 61
	)
	for _, b := range stateBackends {
		for _, mode := range []sabotv1.CheckpointMode{sabotv1.CheckpointMode_CHECKPOINT_MODE_EXACTLY_ONCE, sabotv1.CheckpointMode_CHECKPOINT_MODE_AT_LEAST_ONCE} {
			name := strings.ToLower(strings.TrimPrefix(b.String(), "STATE_BACKEND_") + "/" + strings.TrimPrefix(mode.String(), "CHECKPOINT_MODE_"))
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				store, err := blob.OpenFile(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				defer func() { _ = store.Close() }()
				com := &memCommitter{}
				g := countGraph(t, b, mode, 2, n, 20000, keys)
				rng := rand.New(rand.NewPCG(uint64(b), uint64(mode)))

				// Attempt 1..3: cancelled at random moments, each restoring
				// from the latest completed checkpoint.
				for attempt := int64(1); attempt <= 3; attempt++ {
					md, retained := com.get()
					ctx, cancel := context.WithCancel(t.Context())
					done := make(chan error, 1)
					var out lines
					go func() {
						done <- runtime.Run(ctx, runtime.Config{JobID: "j", Attempt: attempt, Graph: g, PrintOut: &out,
							Checkpoints: &runtime.CheckpointOptions{Store: store, Committer: com, Restore: md, Retained: retained}})
					}()
					time.Sleep(time.Duration(300+rng.IntN(300)) * time.Millisecond)
					cancel()
					if err := <-done; err != nil && ctx.Err() == nil {
						t.Fatalf("attempt %d: %v", attempt, err)
					}
					after, _ := com.get()
					t.Logf("attempt %d restored from %d, latest now %d", attempt, md.GetCheckpointId(), after.GetCheckpointId())
				}
				if com.completed() == 0 {
					t.Fatal("no checkpoint completed")
				}
				md, retained := com.get()
				var out lines
				err = runWithin(t, 30*time.Second, runtime.Config{JobID: "j", Attempt: 4, Graph: g, PrintOut: &out,
					Checkpoints: &runtime.CheckpointOptions{Store: store, Committer: com, Restore: md, Retained: retained}})
				if err != nil {
					t.Fatal(err)
				}
				got := map[int64]int64{}
				finalCounts(t, &out, got)
				for k := range int64(keys) {
					want := int64(n / keys)
					if k < n%keys {
						want++
					}
					c, ok := got[k]
					if !ok {
						// The attempts before ran at most ~36000 of the
						// 60000 rows: the last one updates every key.
						t.Errorf("key %d: no output from the last attempt", k)
						continue
					}
					exact := mode != sabotv1.CheckpointMode_CHECKPOINT_MODE_AT_LEAST_ONCE
					if (exact && c != want) || c < want {
						t.Errorf("key %d: final count %d, want %d", k, c, want)
					}
				}
				t.Logf("restored from checkpoint %d; %d checkpoints completed", md.GetCheckpointId(), com.completed())
			})
		}
	}
}

// TestFileSinkExactlyOnce cancels a sequence → file sink job at random
// moments and restores it: the committed part files hold every value
// exactly once, and no uncommitted file is left.
func TestFileSinkExactlyOnce(t *testing.T) {
	t.Parallel()
	const n = 40000
	dir := t.TempDir()
	store, err := blob.OpenFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = store.Close() }()
	g, err := jobgraph.Resolve(&sabotv1.JobSpec{Name: "t", Checkpointing: &sabotv1.Checkpointing{IntervalMs: 40},
		Graph: &sabotv1.JobGraph{Vertices: []*sabotv1.Vertex{
			seqVertex("seq", 2, 0, ptr(int64(n-1)), 20000),
			fileVertex("out", 2, dir),
		}, Edges: []*sabotv1.Edge{edge("seq", "out", sabotv1.Partitioning_PARTITIONING_FORWARD)}}})
	if err != nil {
		t.Fatal(err)
	}
	com := &memCommitter{}
	rng := rand.New(rand.NewPCG(7, 8))
	for attempt := int64(1); attempt <= 3; attempt++ {
		md, retained := com.get()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			done <- runtime.Run(ctx, runtime.Config{JobID: "j", Attempt: attempt, Graph: g,
				Checkpoints: &runtime.CheckpointOptions{Store: store, Committer: com, Restore: md, Retained: retained}})
		}()
		time.Sleep(time.Duration(200+rng.IntN(300)) * time.Millisecond)
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
	}
	md, retained := com.get()
	if err := runWithin(t, 30*time.Second, runtime.Config{JobID: "j", Attempt: 4, Graph: g,
		Checkpoints: &runtime.CheckpointOptions{Store: store, Committer: com, Restore: md, Retained: retained}}); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var values []int64
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("uncommitted file %s left behind", e.Name())
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if l == "" {
				continue
			}
			var row struct{ Value int64 }
			if err := json.Unmarshal([]byte(l), &row); err != nil {
				t.Fatalf("%s: %q: %v", e.Name(), l, err)
			}
			values = append(values, row.Value)
		}
	}
	t.Logf("%d part files; restored from checkpoint %d", len(ents), md.GetCheckpointId())
	checkExactlyOnce(t, values, 0, n-1)
}
