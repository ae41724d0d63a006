package runtime_test

import (
	"sync/atomic"
	"testing"
	"time"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/worker/runtime"
)

func TestLatencyHistogramQuantiles(t *testing.T) {
	t.Parallel()
	var h runtime.LatencyHistogram
	if h.Quantile(0.99) != 0 {
		t.Fatal("empty histogram has a quantile")
	}
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, 1000 * time.Microsecond}} {
		got := h.Quantile(tc.q)
		// Buckets are at most 12.5 % wide, and Quantile reports a bucket's
		// upper bound.
		if got < tc.want || float64(got) > 1.125*float64(tc.want) {
			t.Errorf("q%.2f = %s, want within [%s, +12.5%%]", tc.q, got, tc.want)
		}
	}
	if h.Count() != 1000 {
		t.Errorf("count %d", h.Count())
	}
}

// TestSinkLatencyAcrossExchange: batch origins travel through a rebalance
// exchange to the sink, which records one latency per batch.
func TestSinkLatencyAcrossExchange(t *testing.T) {
	t.Parallel()
	end := int64(100_000)
	spec := &sabotv1.JobSpec{Name: "lat", Graph: &sabotv1.JobGraph{
		Vertices: []*sabotv1.Vertex{
			{Id: "seq", Parallelism: 1, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Sequence{Sequence: &sabotv1.SequenceSource{Start: 1, End: &end}}}},
			{Id: "sink", Parallelism: 2, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Blackhole{Blackhole: &sabotv1.BlackholeSink{}}}},
		},
		Edges: []*sabotv1.Edge{{From: "seq", To: "sink"}},
	}}
	g, err := jobgraph.Resolve(spec)
	if err != nil {
		t.Fatal(err)
	}
	var rows atomic.Int64
	var lat runtime.LatencyHistogram
	start := time.Now()
	if err := runtime.Run(t.Context(), runtime.Config{JobID: "lat", Graph: g, BatchSize: 1000, SinkRows: &rows, SinkLatency: &lat}); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	if rows.Load() != end {
		t.Fatalf("sink saw %d rows, want %d", rows.Load(), end)
	}
	if lat.Count() != end/1000 {
		t.Fatalf("%d latencies recorded, want one per batch (%d)", lat.Count(), end/1000)
	}
	if p := lat.Quantile(1); p <= 0 || p > 2*elapsed {
		t.Fatalf("max latency %s is not within the run (%s)", p, elapsed)
	}
}
