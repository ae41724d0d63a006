package jobgraph_test

import (
	"strings"
	"testing"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
)

func seq() *sabotv1.Operator {
	end := int64(10)
	return &sabotv1.Operator{Kind: &sabotv1.Operator_Sequence{Sequence: &sabotv1.SequenceSource{Start: 1, End: &end}}}
}

func mapOp(name, e string) *sabotv1.Operator {
	return &sabotv1.Operator{Kind: &sabotv1.Operator_Map{Map: &sabotv1.MapOperator{Columns: []*sabotv1.NamedExpression{{Name: name, Expr: e}}}}}
}

func filterOp(c string) *sabotv1.Operator {
	return &sabotv1.Operator{Kind: &sabotv1.Operator_Filter{Filter: &sabotv1.FilterOperator{Condition: c}}}
}

func printOp() *sabotv1.Operator {
	return &sabotv1.Operator{Kind: &sabotv1.Operator_Print{Print: &sabotv1.PrintSink{}}}
}

func spec(p int32, vs []*sabotv1.Vertex, es ...*sabotv1.Edge) *sabotv1.JobSpec {
	return &sabotv1.JobSpec{Name: "t", Parallelism: p, Graph: &sabotv1.JobGraph{Vertices: vs, Edges: es}}
}

func TestResolveDefaults(t *testing.T) {
	t.Parallel()
	g, err := jobgraph.Resolve(spec(0, []*sabotv1.Vertex{
		// Declared out of order: Resolve sorts topologically.
		{Id: "out", Operator: printOp()},
		{Id: "wide", Parallelism: 3, Operator: mapOp("double", "value * 2")},
		{Id: "numbers", Operator: seq()},
	},
		&sabotv1.Edge{From: "numbers", To: "wide"},
		&sabotv1.Edge{From: "wide", To: "out", Partitioning: sabotv1.Partitioning_PARTITIONING_HASH, KeyFields: []string{"double"}},
	))
	if err != nil {
		t.Fatal(err)
	}
	if g.MaxParallelism != jobgraph.DefaultMaxParallelism {
		t.Errorf("max parallelism %d, want %d", g.MaxParallelism, jobgraph.DefaultMaxParallelism)
	}
	var order []string
	for _, v := range g.Vertices {
		order = append(order, v.ID)
	}
	if got := strings.Join(order, ","); got != "numbers,wide,out" {
		t.Errorf("order %s", got)
	}
	numbers, wide, out := g.Vertex("numbers"), g.Vertex("wide"), g.Vertex("out")
	if numbers.Parallelism != 1 || wide.Parallelism != 3 || out.Parallelism != 1 {
		t.Errorf("parallelism %d %d %d, want 1 3 1", numbers.Parallelism, wide.Parallelism, out.Parallelism)
	}
	// Unequal parallelism and no partitioning: rebalance, as Flink.
	if p := wide.Inputs[0].Partitioning; p != sabotv1.Partitioning_PARTITIONING_REBALANCE {
		t.Errorf("numbers→wide is %s, want REBALANCE", p)
	}
	if wide.Inputs[0].Chained() {
		t.Error("a rebalance edge is chained")
	}
	if e := out.Inputs[0]; len(e.KeyIndices) != 1 || e.KeyIndices[0] != 0 {
		t.Errorf("key indices %v, want [0]", e.KeyIndices)
	}
	if s := wide.Schema.String(); !strings.Contains(s, "double: type=int64") {
		t.Errorf("map schema %s", s)
	}
}

func TestResolveForwardIsChained(t *testing.T) {
	t.Parallel()
	g, err := jobgraph.Resolve(spec(2, []*sabotv1.Vertex{
		{Id: "a", Operator: seq()}, {Id: "b", Operator: filterOp("value > 3")}, {Id: "c", Operator: printOp()},
	}, &sabotv1.Edge{From: "a", To: "b"}, &sabotv1.Edge{From: "b", To: "c"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range g.Edges {
		if e.Partitioning != sabotv1.Partitioning_PARTITIONING_FORWARD || !e.Chained() {
			t.Errorf("%s→%s: %s chained=%v, want a chained forward edge", e.From.ID, e.To.ID, e.Partitioning, e.Chained())
		}
	}
}

func TestResolveErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		spec *sabotv1.JobSpec
		want string
	}{
		{"cycle", spec(1, []*sabotv1.Vertex{
			{Id: "s", Operator: seq()}, {Id: "a", Operator: filterOp("value > 1")}, {Id: "b", Operator: filterOp("value > 2")}, {Id: "out", Operator: printOp()},
		}, &sabotv1.Edge{From: "s", To: "a"}, &sabotv1.Edge{From: "a", To: "b"}, &sabotv1.Edge{From: "b", To: "a"}, &sabotv1.Edge{From: "b", To: "out"}),
			"cycle"},
		{"forward across parallelism", spec(1, []*sabotv1.Vertex{
			{Id: "s", Operator: seq()}, {Id: "out", Parallelism: 2, Operator: printOp()},
		}, &sabotv1.Edge{From: "s", To: "out", Partitioning: sabotv1.Partitioning_PARTITIONING_FORWARD}),
			"vertex out: graph.edges[0].partitioning: a forward edge needs equal parallelism"},
		{"sink without input", spec(1, []*sabotv1.Vertex{
			{Id: "s", Operator: seq()}, {Id: "out", Operator: printOp()}, {Id: "lonely", Operator: printOp()},
		}, &sabotv1.Edge{From: "s", To: "out"}),
			"vertex lonely: graph.edges: sink lonely has no input"},
		{"source with no output", spec(1, []*sabotv1.Vertex{{Id: "s", Operator: seq()}}),
			"source s has no output"},
		{"unknown column", spec(1, []*sabotv1.Vertex{
			{Id: "s", Operator: seq()}, {Id: "f", Operator: filterOp("vale > 1")}, {Id: "out", Operator: printOp()},
		}, &sabotv1.Edge{From: "s", To: "f"}, &sabotv1.Edge{From: "f", To: "out"}),
			`vertex f: operator.filter.condition: expr: at offset 0: unknown column "vale"`},
		{"non-boolean filter", spec(1, []*sabotv1.Vertex{
			{Id: "s", Operator: seq()}, {Id: "f", Operator: filterOp("value + 1")}, {Id: "out", Operator: printOp()},
		}, &sabotv1.Edge{From: "s", To: "f"}, &sabotv1.Edge{From: "f", To: "out"}),
			"condition must be boolean"},
		{"unknown key field", spec(1, []*sabotv1.Vertex{
			{Id: "s", Operator: seq()}, {Id: "out", Operator: printOp()},
		}, &sabotv1.Edge{From: "s", To: "out", Partitioning: sabotv1.Partitioning_PARTITIONING_HASH, KeyFields: []string{"nope"}}),
			`graph.edges[0].key_fields[0]: key field "nope" is not a column of s`},
		{"parallelism above max", &sabotv1.JobSpec{Name: "t", MaxParallelism: 2, Graph: &sabotv1.JobGraph{
			Vertices: []*sabotv1.Vertex{{Id: "s", Parallelism: 3, Operator: seq()}, {Id: "out", Operator: printOp()}},
			Edges:    []*sabotv1.Edge{{From: "s", To: "out"}},
		}}, "graph.vertices[0].parallelism: parallelism 3 exceeds max_parallelism 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := jobgraph.Resolve(tc.spec)
			if err == nil {
				t.Fatal("Resolve succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// TestKeyGroupRanges checks Flink's KeyGroupRangeAssignment arithmetic: the
// ranges of p subtasks tile [0, maxP) in order, differ in size by at most
// one, and SubtaskForKeyGroup inverts them.
func TestKeyGroupRanges(t *testing.T) {
	t.Parallel()
	// Values Flink computes for maxP 128, p 3.
	for i, want := range [][2]int{{0, 42}, {43, 85}, {86, 127}} {
		if s, e := jobgraph.KeyGroupRange(128, 3, i); s != want[0] || e != want[1] {
			t.Errorf("KeyGroupRange(128, 3, %d) = [%d, %d], want %v", i, s, e, want)
		}
	}
	for _, maxP := range []int{1, 7, 128, 1000, 32768} {
		for p := 1; p <= min(maxP, 64); p++ {
			next := 0
			for i := range p {
				s, e := jobgraph.KeyGroupRange(maxP, p, i)
				if s != next || e < s || e-s+1 < maxP/p || e-s+1 > maxP/p+1 {
					t.Fatalf("maxP %d p %d subtask %d: range [%d, %d] after %d", maxP, p, i, s, e, next)
				}
				for _, kg := range []int{s, e} {
					if got := jobgraph.SubtaskForKeyGroup(maxP, p, kg); got != i {
						t.Fatalf("maxP %d p %d: key group %d maps to subtask %d, want %d", maxP, p, kg, got, i)
					}
				}
				next = e + 1
			}
			if next != maxP {
				t.Fatalf("maxP %d p %d: ranges end at %d", maxP, p, next)
			}
		}
	}
}
