package runtime_test

import (
	"strings"
	"testing"
	"time"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/worker/runtime"
)

// resolveOrSkip resolves a graph with expressions, skipping while sql/expr
// is a stub.
func resolveOrSkip(t *testing.T, vs []*sabotv1.Vertex, es ...*sabotv1.Edge) *jobgraph.Graph {
	t.Helper()
	g, err := jobgraph.Resolve(&sabotv1.JobSpec{Name: "t", Graph: &sabotv1.JobGraph{Vertices: vs, Edges: es}})
	if err != nil && strings.Contains(err.Error(), "not implemented") {
		t.Skipf("sql/expr has not landed: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestMapFilter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		cond     string
		p, sinkP int32
		part     sabotv1.Partitioning
		want     func(v int64) (int64, bool) // input value → output, kept
	}{
		{"some rows kept, chained", "value % 3 = 0", 2, 2, forward, func(v int64) (int64, bool) { return 2 * v, (2*v)%3 == 0 }},
		{"some rows kept, rebalanced", "value % 3 = 0", 2, 3, rebalance, func(v int64) (int64, bool) { return 2 * v, (2*v)%3 == 0 }},
		{"all rows kept", "value > 0", 1, 1, forward, func(v int64) (int64, bool) { return 2 * v, true }},
		{"no row kept", "value < 0", 3, 3, forward, func(v int64) (int64, bool) { return 0, false }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const n = 3000
			g := resolveOrSkip(t, []*sabotv1.Vertex{
				seqVertex("seq", tc.p, 1, ptr[int64](n), 0),
				mapVertex("double", tc.p, "value", "value * 2"),
				filterVertex("keep", tc.p, tc.cond),
				printVertex("out", tc.sinkP, ""),
			}, edge("seq", "double", forward), edge("double", "keep", forward), edge("keep", "out", tc.part))
			var out lines
			if err := runWithin(t, 20*time.Second, runtime.Config{Graph: g, PrintOut: &out, Allocator: checked(t), BatchSize: 128}); err != nil {
				t.Fatal(err)
			}
			want := map[int64]bool{}
			for v := int64(1); v <= n; v++ {
				if w, ok := tc.want(v); ok {
					want[w] = true
				}
			}
			got := map[int64]int{}
			for _, l := range out.all() {
				got[intOf(t, parsePrinted(t, l).row["value"])]++
			}
			for w := range want {
				if got[w] != 1 {
					t.Errorf("value %d printed %d times, want once", w, got[w])
				}
			}
			for w := range got {
				if !want[w] {
					t.Errorf("value %d printed but should have been filtered out", w)
				}
			}
		})
	}
}

func TestMapSeveralColumns(t *testing.T) {
	t.Parallel()
	g := resolveOrSkip(t, []*sabotv1.Vertex{
		seqVertex("seq", 1, 1, ptr[int64](5), 0),
		mapVertex("m", 1, "v", "value", "sq", "value * value", "big", "value > 3"),
		printVertex("out", 1, ""),
	}, edge("seq", "m", forward), edge("m", "out", forward))
	var out lines
	if err := runWithin(t, 20*time.Second, runtime.Config{Graph: g, PrintOut: &out, Allocator: checked(t)}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`[0] {"v":1,"sq":1,"big":false}`,
		`[0] {"v":2,"sq":4,"big":false}`,
		`[0] {"v":3,"sq":9,"big":false}`,
		`[0] {"v":4,"sq":16,"big":true}`,
		`[0] {"v":5,"sq":25,"big":true}`,
	}
	got := out.all()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
