package runtime

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sabotdev/sabot/examples"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/internal/manifest"
)

// countingSink discards batches, counting rows and summing column 0.
type countingSink struct {
	baseOperator
	rows, sum *atomic.Int64
}

func (s *countingSink) ProcessBatch(_ context.Context, rec arrow.RecordBatch, _ Output) error {
	var sum int64
	for _, v := range rec.Column(0).(*array.Int64).Int64Values() {
		sum += v
	}
	s.rows.Add(rec.NumRows())
	s.sum.Add(sum)
	return nil
}

func benchGraph(b *testing.B, n int64, p int32, mapFilter bool) *jobgraph.Graph {
	b.Helper()
	vs := []*sabotv1.Vertex{{Id: "seq", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Sequence{
		Sequence: &sabotv1.SequenceSource{Start: 1, End: &n},
	}}}}
	var es []*sabotv1.Edge
	last := "seq"
	if mapFilter {
		vs = append(vs,
			&sabotv1.Vertex{Id: "double", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Map{Map: &sabotv1.MapOperator{
				Columns: []*sabotv1.NamedExpression{{Name: "value", Expr: "value * 2"}},
			}}}},
			&sabotv1.Vertex{Id: "thirds", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Filter{Filter: &sabotv1.FilterOperator{
				Condition: "value % 3 = 0",
			}}}})
		es = append(es, &sabotv1.Edge{From: "seq", To: "double"}, &sabotv1.Edge{From: "double", To: "thirds"})
		last = "thirds"
	}
	vs = append(vs, &sabotv1.Vertex{Id: "sink", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Print{Print: &sabotv1.PrintSink{}}}})
	es = append(es, &sabotv1.Edge{From: last, To: "sink"})
	g, err := jobgraph.Resolve(&sabotv1.JobSpec{Name: "bench", Parallelism: p, Graph: &sabotv1.JobGraph{Vertices: vs, Edges: es}})
	if err != nil {
		b.Skipf("resolve (sql/expr not landed?): %v", err)
	}
	return g
}

// expected computes the pipeline's answer with a plain loop.
func expected(n int64) (rows, sum int64) {
	for v := int64(1); v <= n; v++ {
		w := v * 2
		if w%3 == 0 {
			rows++
			sum += w
		}
	}
	return rows, sum
}

// BenchmarkPipeline runs sequence(1..n) → map value*2 → filter value%3=0 →
// a counting sink, chained (parallelism 1 and 4), next to a hand-written
// loop computing the same answer, and the bare sequence → sink for the
// runtime's own overhead. Compare events/s across sub-benchmarks.
//
//	go test -run '^$' -bench Pipeline -benchtime 5x ./worker/runtime/
func BenchmarkPipeline(b *testing.B) {
	const n = 10_000_000
	wantRows, wantSum := expected(n)
	b.Run("baseline-loop", func(b *testing.B) {
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			rows, sum := expected(n)
			if rows != wantRows || sum != wantSum {
				b.Fatal("wrong answer")
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/time.Since(start).Seconds(), "events/s")
	})
	for _, tc := range []struct {
		name      string
		p         int32
		mapFilter bool
	}{
		{"engine-seq-only-p1", 1, false},
		{"engine-map-filter-p1", 1, true},
		{"engine-map-filter-p4", 4, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			g := benchGraph(b, n, tc.p, tc.mapFilter)
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				var rows, sum atomic.Int64
				err := Run(context.Background(), Config{
					Graph:     g,
					Allocator: memory.NewGoAllocator(),
					operatorHook: func(v *jobgraph.Vertex, _ TaskInfo) Operator {
						if v.ID == "sink" {
							return &countingSink{rows: &rows, sum: &sum}
						}
						return nil
					},
				})
				if err != nil && !errors.Is(err, context.Canceled) {
					b.Fatal(err)
				}
				if tc.mapFilter && (rows.Load() != wantRows || sum.Load() != wantSum) {
					b.Fatalf("got %d rows summing to %d, want %d, %d", rows.Load(), sum.Load(), wantRows, wantSum)
				}
				if !tc.mapFilter && rows.Load() != n {
					b.Fatalf("got %d rows, want %d", rows.Load(), n)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// nexmarkGraph resolves examples/nexmark/<q>.yaml for n events at
// parallelism 1.
func nexmarkGraph(b *testing.B, q string, n int64) *jobgraph.Graph {
	b.Helper()
	data, err := examples.FS.ReadFile("nexmark/" + q + ".yaml")
	if err != nil {
		b.Fatal(err)
	}
	spec, err := manifest.Parse(q+".yaml", data)
	if err != nil {
		b.Fatal(err)
	}
	spec.Parallelism = 1
	for _, v := range spec.GetGraph().GetVertices() {
		v.Parallelism = 0
		if nx := v.GetOperator().GetNexmark(); nx != nil {
			nx.Events = n
		}
	}
	g, err := jobgraph.Resolve(spec)
	if err != nil {
		b.Fatal(err)
	}
	return g
}

// BenchmarkNexmark runs the bundled Nexmark q0–q2 manifests (source →
// map/filter → blackhole, chained at parallelism 1) on the default
// allocator, as `sabot bench nexmark` does, reporting events/s and the
// bytes allocated per event.
//
//	go test -run '^$' -bench Nexmark -benchtime 3x -cpuprofile cpu.out ./worker/runtime/
func BenchmarkNexmark(b *testing.B) {
	const n = 2_000_000
	for _, q := range []string{"q0", "q1", "q2"} {
		b.Run(q, func(b *testing.B) {
			g := nexmarkGraph(b, q, n)
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				var rows atomic.Int64
				if err := Run(context.Background(), Config{Graph: g, SinkRows: &rows}); err != nil {
					b.Fatal(err)
				}
				if rows.Load() == 0 {
					b.Fatal("no rows reached the sink")
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}
