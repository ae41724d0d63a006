package runtime_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/worker/runtime"
)

// splitFunction sends even values to the main output and odd values to the
// side output "odd", with the value doubled, and counts what it sent to
// "odd" per key on a processing of every element.
type splitFunction struct {
	in  int
	odd *runtime.Collector
}

func (f *splitFunction) Open(ctx *runtime.ProcessContext) error {
	f.in = ctx.InputSchema().FieldIndices("v")[0]
	var err error
	f.odd, err = ctx.Output("odd")
	if err != nil {
		return err
	}
	if _, err := ctx.Output("nope"); err == nil {
		return fmt.Errorf("an undeclared side output was accepted")
	}
	return nil
}

func (f *splitFunction) ProcessElement(_ *runtime.ProcessContext, row runtime.Row, out *runtime.Collector) error {
	v := row.Int64(f.in)
	if v%2 == 0 {
		out.SetInt64(0, v)
		return out.Emit()
	}
	f.odd.SetInt64(0, v)
	f.odd.SetInt64(1, 2*v)
	return f.odd.Emit()
}

func (f *splitFunction) OnTimer(*runtime.ProcessContext, runtime.TimerInfo, *runtime.Collector) error {
	return nil
}

// TestSideOutputs runs seq → key_by → split, with its main output and its
// side output "odd" each read by a sink, once chained (forward edges) and
// once across exchanges (rebalance to a different parallelism), and checks
// every value arrives exactly once on the right output with the side
// output's own columns.
func TestSideOutputs(t *testing.T) {
	t.Parallel()
	const n = 3000
	for _, b := range stateBackends {
		for _, sinkP := range []int32{2, 3} {
			t.Run(fmt.Sprintf("%s sink-p%d", strings.ToLower(b.String()), sinkP), func(t *testing.T) {
				t.Parallel()
				split := processVertex("split", 2, "split", nil, &sabotv1.Column{Name: "even", Type: sabotv1.ColumnType_COLUMN_TYPE_INT64})
				split.GetOperator().GetProcess().SideOutputs = []*sabotv1.SideOutput{{Name: "odd", Columns: []*sabotv1.Column{
					{Name: "odd", Type: sabotv1.ColumnType_COLUMN_TYPE_INT64},
					{Name: "twice", Type: sabotv1.ColumnType_COLUMN_TYPE_INT64},
				}}}
				part := forward
				if sinkP != 2 {
					part = sabotv1.Partitioning_PARTITIONING_REBALANCE
				}
				sideEdge := edge("split", "odds", part)
				sideEdge.SideOutput = "odd"
				g := resolveWith(t, b, []*sabotv1.Vertex{
					seqVertex("seq", 2, 1, ptr[int64](n), 0),
					mapVertex("prep", 2, "k", "value % 7", "v", "value"),
					split,
					printVertex("evens", sinkP, "even"),
					printVertex("odds", sinkP, "odd"),
				}, edge("seq", "prep", forward), edge("prep", "split", hash, "k"), edge("split", "evens", part), sideEdge)
				if got := g.Vertex("odds").InputSchema.String(); !strings.Contains(got, "twice") {
					t.Fatalf("odds reads schema %s, want the side output's", got)
				}
				var out lines
				err := runWithin(t, 30*time.Second, runtime.Config{
					JobID: "j", Graph: g, PrintOut: &out, Allocator: checked(t), BatchSize: 64, StateDir: t.TempDir(),
					Functions: map[string]runtime.ProcessFunctionFactory{
						"split": func(map[string]string) (runtime.ProcessFunction, error) { return &splitFunction{}, nil },
					},
				})
				if err != nil {
					t.Fatal(err)
				}
				var evens, odds []int64
				for _, l := range out.all() {
					p := parsePrinted(t, l)
					switch p.prefix {
					case "even":
						if len(p.row) != 1 {
							t.Fatalf("main output row %v, want only column even", p.row)
						}
						evens = append(evens, intOf(t, p.row["even"])/2)
					case "odd":
						v, tw := intOf(t, p.row["odd"]), intOf(t, p.row["twice"])
						if tw != 2*v {
							t.Fatalf("side output row %v: twice is not 2×odd", p.row)
						}
						odds = append(odds, (v+1)/2)
					default:
						t.Fatalf("unexpected line %q", l)
					}
				}
				checkExactlyOnce(t, evens, 1, n/2)
				checkExactlyOnce(t, odds, 1, n/2)
			})
		}
	}
}

// TestSideOutputUnknown: an edge reading a side output that the vertex
// does not declare is refused at resolve time, naming it.
func TestSideOutputUnknown(t *testing.T) {
	t.Parallel()
	e := edge("agg", "out", forward)
	e.SideOutput = "late"
	_, err := resolveSpec([]*sabotv1.Vertex{
		seqVertex("seq", 1, 1, ptr[int64](10), 0),
		aggVertex("agg", 1, aggregation("n", sabotv1.AggregateFunction_AGGREGATE_FUNCTION_COUNT, "")),
		printVertex("out", 1, ""),
	}, edge("seq", "agg", hash, "value"), e)
	if err == nil || !strings.Contains(err.Error(), `agg has no side output "late"`) {
		t.Fatalf("got %v, want an error naming the missing side output", err)
	}
}

func resolveSpec(vs []*sabotv1.Vertex, es ...*sabotv1.Edge) (*jobgraph.Graph, error) {
	return jobgraph.Resolve(&sabotv1.JobSpec{Name: "t", Graph: &sabotv1.JobGraph{Vertices: vs, Edges: es}})
}
