package runtime_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/internal/testkit"
	"github.com/sabotdev/sabot/worker/runtime"
	"github.com/sabotdev/sabot/worker/state"
)

// savepointGraph is Kafka (p) → keyed count by k (p) → print.
func savepointGraph(t *testing.T, k *testkit.Kafka, b sabotv1.StateBackend, p int32) *jobgraph.Graph {
	t.Helper()
	g, err := jobgraph.Resolve(&sabotv1.JobSpec{Name: "sp", StateBackend: b, Checkpointing: &sabotv1.Checkpointing{IntervalMs: 1000},
		Graph: &sabotv1.JobGraph{Vertices: []*sabotv1.Vertex{
			kafkaSourceVertex("src", p, k, "in", sabotv1.BadRecordPolicy_BAD_RECORD_POLICY_UNSPECIFIED,
				column("k", sabotv1.ColumnType_COLUMN_TYPE_STRING)),
			aggVertex("count", p, aggregation("n", sabotv1.AggregateFunction_AGGREGATE_FUNCTION_COUNT, "")),
			printVertex("out", p, "o"),
		}, Edges: []*sabotv1.Edge{
			edge("src", "count", sabotv1.Partitioning_PARTITIONING_HASH, "k"),
			edge("count", "out", sabotv1.Partitioning_PARTITIONING_FORWARD),
		}}})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// keyedEntries decodes every keyed state entry of a savepoint, in key
// order, through a heap backend that owns every key group.
func keyedEntries(t *testing.T, store blob.Store, md *clusterv1.CheckpointMetadata) []string {
	t.Helper()
	h, err := state.NewHeap(state.Config{KeyGroups: state.KeyGroupRange{Start: 0, End: uint16(md.GetMaxParallelism())}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.Close() }()
	for _, s := range md.GetOperators() {
		if full := s.GetKeyed().GetFull(); full != nil {
			r := state.KeyGroupRange{Start: uint16(s.GetKeyGroupStart()), End: uint16(s.GetKeyGroupEnd())}
			if err := state.RestoreFull(t.Context(), store, full, r, h); err != nil {
				t.Fatal(err)
			}
		}
	}
	var out []string
	err = h.IterateKeyGroups(state.KeyGroupRange{Start: 0, End: uint16(md.GetMaxParallelism())}, func(e *state.Entry) error {
		out = append(out, fmt.Sprintf("%d/%s/%s/%x/%x/%x=%x", e.KeyGroup, e.Operator, e.State, e.Key, e.Namespace, e.Column, e.Value))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// runUntilCounts runs g until the printed counts reach want, then stops
// it with a savepoint and returns the savepoint's metadata.
func runUntilCounts(t *testing.T, store blob.Store, g *jobgraph.Graph, attempt int64, restore *clusterv1.CheckpointMetadata, want map[string]int64, name string) *clusterv1.CheckpointMetadata {
	t.Helper()
	com := &memCommitter{}
	ctl := runtime.NewControl()
	var out lines
	done := make(chan error, 1)
	go func() {
		done <- runtime.Run(t.Context(), runtime.Config{JobID: "j", Attempt: attempt, Graph: g, PrintOut: &out, Control: ctl,
			Checkpoints: &runtime.CheckpointOptions{Store: store, Committer: com, Restore: restore}})
	}()
	got := map[string]int64{}
	testkit.Eventually(t, 30*time.Second, func() error {
		for _, l := range out.all() {
			p := parsePrinted(t, l)
			got[p.row["k"].(string)] = intOf(t, p.row["n"])
		}
		for k, n := range want {
			if got[k] != n {
				return fmt.Errorf("key %s: count %d, want %d", k, got[k], n)
			}
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	loc, err := ctl.Savepoint(ctx, name, true, false)
	if err != nil {
		t.Fatalf("savepoint: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run after stop with savepoint = %v, want nil", err)
	}
	md, err := runtime.ReadMetadata(t.Context(), store, loc)
	if err != nil {
		t.Fatal(err)
	}
	if !md.GetSavepoint() {
		t.Fatal("metadata does not say savepoint")
	}
	return md
}

// TestSavepointRoundTrips stops a p=2 job with a savepoint, restores it at
// p=3 and p=1 on the other backend, and checks that a savepoint taken
// right after the restore holds exactly the same keyed state; then more
// input arrives and every count continues from the restored value.
func TestSavepointRoundTrips(t *testing.T) {
	t.Parallel()
	heap, pebble := sabotv1.StateBackend_STATE_BACKEND_HEAP, sabotv1.StateBackend_STATE_BACKEND_PEBBLE
	for _, tc := range []struct {
		from, to sabotv1.StateBackend
		p        int32
	}{{heap, pebble, 3}, {pebble, heap, 1}, {heap, heap, 3}, {pebble, pebble, 1}} {
		name := fmt.Sprintf("%s-p2-to-%s-p%d", strings.ToLower(strings.TrimPrefix(tc.from.String(), "STATE_BACKEND_")),
			strings.ToLower(strings.TrimPrefix(tc.to.String(), "STATE_BACKEND_")), tc.p)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			k := testkit.StartKafka(t, testkit.WithTopics(4, "in"))
			cl := k.Client(t, kgo.DefaultProduceTopic("in"))
			store, err := blob.OpenFile(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = store.Close() }()
			want := map[string]int64{}
			produce := func(n int) {
				var recs []*kgo.Record
				for i := range n {
					key := fmt.Sprintf("k%d", (i*7)%53)
					want[key]++
					recs = append(recs, &kgo.Record{Key: []byte(key), Value: fmt.Appendf(nil, `{"k":%q}`, key)})
				}
				if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
			produce(2000)
			sp1 := runUntilCounts(t, store, savepointGraph(t, k, tc.from, 2), 1, nil, want, "sp1")
			before := keyedEntries(t, store, sp1)
			if len(before) < 53 {
				t.Fatalf("savepoint holds %d entries, want at least one per key", len(before))
			}
			// Restore at the new parallelism and backend; nothing new has
			// arrived, so a savepoint taken now must equal the first.
			g2 := savepointGraph(t, k, tc.to, tc.p)
			sp2 := runUntilCounts(t, store, g2, 2, sp1, nil, "sp2")
			after := keyedEntries(t, store, sp2)
			if !slices.Equal(before, after) {
				t.Fatalf("state differs after restore: %d entries before, %d after", len(before), len(after))
			}
			if n := len(sp2.GetOperators()); n != 3*int(tc.p) {
				t.Errorf("second savepoint has %d operator snapshots, want %d", n, 3*tc.p)
			}
			// The restored job goes on from the restored counts.
			produce(500)
			runUntilCounts(t, store, g2, 3, sp2, want, "sp3")
			var objs []string
			for info, err := range store.List(t.Context(), "") {
				if err != nil {
					t.Fatal(err)
				}
				objs = append(objs, info.Key)
			}
			for _, o := range objs {
				if !strings.HasPrefix(o, "savepoints/") && !strings.HasPrefix(o, "jobs/") {
					t.Errorf("unexpected object %s", o)
				}
			}
		})
	}
}
