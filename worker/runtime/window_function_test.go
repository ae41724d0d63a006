package runtime_test

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/worker/runtime"
)

// sumSquares is a user aggregate function: the sum of v² per window, its
// accumulator an 8-byte integer.
type sumSquares struct{ v int }

func (f *sumSquares) Open(ctx *runtime.WindowContext) error {
	f.v = ctx.InputSchema().FieldIndices("value")[0]
	return nil
}

func (f *sumSquares) Process(*runtime.WindowContext, []runtime.StoredRow, *runtime.Collector) error {
	return fmt.Errorf("an aggregator's Process must not be called without an evictor")
}

func (f *sumSquares) CreateAccumulator() []byte { return make([]byte, 8) }

func (f *sumSquares) Add(acc []byte, row runtime.StoredRow) ([]byte, error) {
	x := row.Int64(f.v)
	return binary.BigEndian.AppendUint64(acc[:0], binary.BigEndian.Uint64(acc)+uint64(x*x)), nil
}

func (f *sumSquares) Merge(acc, other []byte) ([]byte, error) {
	return binary.BigEndian.AppendUint64(acc[:0], binary.BigEndian.Uint64(acc)+binary.BigEndian.Uint64(other)), nil
}

func (f *sumSquares) Result(ctx *runtime.WindowContext, acc []byte, out *runtime.Collector) error {
	start, end := ctx.Window()
	out.SetInt64(0, ctx.Key().Int64(0))
	out.SetInt64(1, int64(binary.BigEndian.Uint64(acc)))
	out.SetInt64(2, start)
	out.SetInt64(3, end)
	out.SetInt64(4, ctx.Count())
	return out.Emit()
}

// listRows is a full window function: it emits the window's values joined
// in arrival order.
type listRows struct{ v int }

func (f *listRows) Open(ctx *runtime.WindowContext) error {
	f.v = ctx.InputSchema().FieldIndices("value")[0]
	return nil
}

func (f *listRows) Process(ctx *runtime.WindowContext, rows []runtime.StoredRow, out *runtime.Collector) error {
	var vals []string
	for _, r := range rows {
		vals = append(vals, fmt.Sprint(r.Int64(f.v)))
	}
	start, end := ctx.Window()
	out.SetInt64(0, ctx.Key().Int64(0))
	out.SetString(1, strings.Join(vals, ","))
	out.SetInt64(2, start)
	out.SetInt64(3, end)
	return out.Emit()
}

// eventTime is the tests' event time of sequence value v: blocks of 12
// values in reverse order, so rows arrive out of order and sessions that
// grew apart get bridged (merged) by a later row. Multiples of 40 are
// holes, which split sessions.
func eventTime(v int64) int64 { return (v/12)*12 + 11 - v%12 }

// arrivals calls fn with every event time in arrival order.
func arrivals(n int64, fn func(t int64)) {
	for v := int64(1); v <= n; v++ {
		if t := eventTime(v); t%40 != 0 {
			fn(t)
		}
	}
}

// TestWindowUserFunctions runs registered window functions on both
// backends: an incremental aggregator over tumbling and over session
// windows (whose merging calls Merge: rows arrive out of order and bridge
// sessions), and a full window function over tumbling windows with a
// count evictor; the results equal a direct computation.
func TestWindowUserFunctions(t *testing.T) {
	t.Parallel()
	const n = 400
	col := func(name string, typ sabotv1.ColumnType) *sabotv1.Column {
		return &sabotv1.Column{Name: name, Type: typ}
	}
	i64, str := sabotv1.ColumnType_COLUMN_TYPE_INT64, sabotv1.ColumnType_COLUMN_TYPE_STRING
	cases := []struct {
		name   string
		window *sabotv1.WindowAggregate
		want   func() []string
	}{
		{"aggregator tumbling", &sabotv1.WindowAggregate{
			Assigner: &sabotv1.WindowAggregate_Tumbling{Tumbling: &sabotv1.TumblingWindow{SizeMs: 50}},
			Function: "sum-squares", Output: []*sabotv1.Column{col("k", i64), col("sq", i64), col("s", i64), col("e", i64), col("n", i64)},
		}, func() []string {
			acc := map[[2]int64][2]int64{}
			arrivals(n, func(v int64) {
				w := [2]int64{v % 3, v - v%50}
				a := acc[w]
				acc[w] = [2]int64{a[0] + v*v, a[1] + 1}
			})
			var out []string
			for w, a := range acc {
				out = append(out, fmt.Sprintf("k=%d sq=%d s=%d e=%d n=%d", w[0], a[0], w[1], w[1]+50, a[1]))
			}
			return out
		}},
		{"aggregator sessions", &sabotv1.WindowAggregate{
			// Values of one key are 3 apart: with a gap of 5 a key's rows
			// form one session [first, last+5) per run of consecutive
			// values, split where the sequence has holes (v%40 == 0).
			Assigner: &sabotv1.WindowAggregate_Session{Session: &sabotv1.SessionWindow{GapMs: 5}},
			Function: "sum-squares", Output: []*sabotv1.Column{col("k", i64), col("sq", i64), col("s", i64), col("e", i64), col("n", i64)},
		}, func() []string {
			// Per key, the event times sorted; sessions split where two
			// consecutive ones are more than the gap apart.
			byKey := map[int64][]int64{}
			arrivals(n, func(v int64) { byKey[v%3] = append(byKey[v%3], v) })
			var out []string
			for k, ts := range byKey {
				slices.Sort(ts)
				start, last, sq, cnt := ts[0], ts[0], int64(0), int64(0)
				for i, v := range ts {
					if i > 0 && v-last > 5 {
						out = append(out, fmt.Sprintf("k=%d sq=%d s=%d e=%d n=%d", k, sq, start, last+5, cnt))
						start, sq, cnt = v, 0, 0
					}
					sq += v * v
					cnt++
					last = v
				}
				out = append(out, fmt.Sprintf("k=%d sq=%d s=%d e=%d n=%d", k, sq, start, last+5, cnt))
			}
			return out
		}},
		{"process function with count evictor", &sabotv1.WindowAggregate{
			Assigner: &sabotv1.WindowAggregate_Tumbling{Tumbling: &sabotv1.TumblingWindow{SizeMs: 50}},
			Evictor:  &sabotv1.WindowEvictor{Kind: &sabotv1.WindowEvictor_Count{Count: 4}},
			Function: "list", Output: []*sabotv1.Column{col("k", i64), col("vals", str), col("s", i64), col("e", i64)},
		}, func() []string {
			lists := map[[2]int64][]string{}
			arrivals(n, func(v int64) {
				w := [2]int64{v % 3, v - v%50}
				lists[w] = append(lists[w], fmt.Sprint(v))
			})
			var out []string
			for w, l := range lists {
				out = append(out, fmt.Sprintf("k=%d vals=%s s=%d e=%d", w[0], strings.Join(l[max(0, len(l)-4):], ","), w[1], w[1]+50))
			}
			return out
		}},
	}
	for _, c := range cases {
		for _, b := range stateBackends {
			t.Run(c.name+" "+strings.ToLower(b.String()), func(t *testing.T) {
				t.Parallel()
				g := resolveWith(t, b, []*sabotv1.Vertex{
					seqVertex("seq", 1, 1, ptr[int64](n), 0),
					mapVertex("time", 1, "t", "(value / 12) * 12 + 11 - value % 12"),
					filterVertex("holes", 1, "t % 40 <> 0"),
					mapVertex("prep", 1, "k", "t % 3", "value", "t"),
					{Id: "win", Parallelism: 2, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Window{Window: withTimeField(c.window)}}},
					printVertex("out", 2, "w"),
				}, edge("seq", "time", forward), edge("time", "holes", forward), edge("holes", "prep", forward),
					edge("prep", "win", hash, "k"), edge("win", "out", forward))
				var out lines
				err := runWithin(t, 30*time.Second, runtime.Config{
					JobID: "j", Graph: g, PrintOut: &out, Allocator: checked(t), BatchSize: 16, StateDir: t.TempDir(),
					WindowFunctions: map[string]runtime.WindowFunctionFactory{
						"sum-squares": func(map[string]string) (runtime.WindowFunction, error) { return &sumSquares{}, nil },
						"list":        func(map[string]string) (runtime.WindowFunction, error) { return &listRows{}, nil },
					},
				})
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, l := range out.all() {
					p := parsePrinted(t, l)
					var parts []string
					for _, name := range []string{"k", "sq", "vals", "s", "e", "n"} {
						if v, ok := p.row[name]; ok {
							parts = append(parts, fmt.Sprintf("%s=%v", name, v))
						}
					}
					got = append(got, strings.Join(parts, " "))
				}
				want := c.want()
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Fatalf("got %d rows:\n  %s\nwant %d:\n  %s", len(got), strings.Join(got, "\n  "), len(want), strings.Join(want, "\n  "))
				}
			})
		}
	}
}

// withTimeField returns a copy of w reading its event time from "value"
// (subtests run in parallel: the table's spec is not modified).
func withTimeField(w *sabotv1.WindowAggregate) *sabotv1.WindowAggregate {
	c := proto.CloneOf(w)
	c.TimestampField = "value"
	return c
}

// failingAggregator fails on its third row.
type failingAggregator struct {
	sumSquares
	rows int
}

func (f *failingAggregator) Add(acc []byte, row runtime.StoredRow) ([]byte, error) {
	if f.rows++; f.rows == 3 {
		return nil, fmt.Errorf("bad row %d", row.Int64(f.v))
	}
	return f.sumSquares.Add(acc, row)
}

// TestWindowFunctionErrorFailsJob: an error from a user aggregate
// function fails the job, naming the function; it is not swallowed.
func TestWindowFunctionErrorFailsJob(t *testing.T) {
	t.Parallel()
	w := &sabotv1.WindowAggregate{
		Assigner: &sabotv1.WindowAggregate_Tumbling{Tumbling: &sabotv1.TumblingWindow{SizeMs: 50}},
		Function: "failing", TimestampField: "value",
		Output: []*sabotv1.Column{{Name: "k", Type: sabotv1.ColumnType_COLUMN_TYPE_INT64}},
	}
	g := resolveWith(t, sabotv1.StateBackend_STATE_BACKEND_HEAP, []*sabotv1.Vertex{
		seqVertex("seq", 1, 1, ptr[int64](100), 0),
		mapVertex("prep", 1, "k", "value % 3", "value", "value"),
		{Id: "win", Parallelism: 1, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Window{Window: w}}},
		printVertex("out", 1, "w"),
	}, edge("seq", "prep", forward), edge("prep", "win", hash, "k"), edge("win", "out", forward))
	err := runWithin(t, 30*time.Second, runtime.Config{
		JobID: "j", Graph: g, PrintOut: &lines{}, Allocator: checked(t),
		WindowFunctions: map[string]runtime.WindowFunctionFactory{
			"failing": func(map[string]string) (runtime.WindowFunction, error) { return &failingAggregator{}, nil },
		},
	})
	if err == nil || !strings.Contains(err.Error(), `window function "failing": add: bad row 3`) {
		t.Fatalf("Run = %v, want the function's error", err)
	}
}
