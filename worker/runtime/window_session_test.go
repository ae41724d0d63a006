package runtime

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/jonboulle/clockwork"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
)

// TestSessionWindowSteps spells out the session rules on sessionOp and on
// the general operator, both backends: a row bridging two sessions
// (touching both) merges them; a session fires at the first watermark ≥
// its end - 1; a row behind the watermark joins an open session it
// touches, or is late if it would form a session that already ended —
// the fired session is gone, so it extends nothing — and a late row does
// not take part in merging for the rows after it in the same batch.
func TestSessionWindowSteps(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		for _, general := range []bool{false, true} {
			name := backendName(b)
			if general {
				name += " general"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				spec := &sabotv1.WindowAggregate{
					Assigner:     &sabotv1.WindowAggregate_Session{Session: &sabotv1.SessionWindow{GapMs: 10}},
					Aggregations: []*sabotv1.Aggregation{agg("n", fnCount, ""), agg("sum", fnSum, "v")},
					LateOutput:   "late",
				}
				h := sessionHarness(t, spec, b, general, 0)
				late := &recordingOutput{}
				h.out.sides = map[string]*recordingOutput{"late": late}
				row := func(k string, ts, v int) []any { return []any{k, ts, v, nil} }
				win := func(k string, n, sum int, start, end int64) string {
					return fmt.Sprintf(`{"k":%q,"n":%d,"sum":%d,"window_start":%q,"window_end":%q}`, k, n, sum, at(start), at(end))
				}
				lateRow := func(k string, ts, v int) string {
					return fmt.Sprintf(`{"k":%q,"ts":%q,"v":%d,"gap":null}`, k, at(int64(ts)), v)
				}

				h.mustProcess(row("a", 0, 1), row("a", 20, 2), row("b", 100, 5))
				h.mustProcess(row("a", 10, 4)) // [10, 20) touches [0, 10) and [20, 30)
				h.watermark(28)
				h.expect("watermark 28")
				h.watermark(29)
				h.expect("watermark 29", win("a", 3, 7, 0, 30))
				// Behind the watermark: a@25 forms [25, 35), not late;
				// a@5 would form [5, 15), ended: late; a@15 touches
				// [25, 35) and joins it. b@95 joins b's open session.
				h.mustProcess(row("a", 25, 1), row("a", 5, 2), row("b", 95, 3), row("a", 15, 4))
				h.expect("rows behind the watermark")
				// In one batch: c@15 would form [15, 25), ended: late; so
				// c@22 forms [22, 32) alone. In the other order c@15 would
				// have joined c@22's session.
				h.mustProcess(row("c", 15, 8), row("c", 22, 16))
				if got, want := late.take(), []string{lateRow("a", 5, 2), lateRow("c", 15, 8)}; fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("late rows:\ngot  %s\nwant %s", got, want)
				}
				h.watermark(34)
				h.expect("watermark 34", win("c", 1, 16, 22, 32), win("a", 2, 5, 15, 35))
				h.watermark(200)
				h.expect("watermark 200", win("b", 2, 8, 95, 110))
				h.finish()
				h.expect("finish")
				if _, ok := h.op.(*sessionOp); ok {
					assertNoState(t, h.op.(*sessionOp).st)
				} else {
					assertNoState(t, h.op.(*generalWindowOp).st)
				}
			})
		}
	}
}

// TestSessionWindowInvalidGap: a dynamic gap ≤ 0 or null fails the batch
// on both operators (Flink's dynamic gap extractor rule).
func TestSessionWindowInvalidGap(t *testing.T) {
	t.Parallel()
	for _, general := range []bool{false, true} {
		for _, gap := range []any{0, -5, nil} {
			t.Run(fmt.Sprintf("general=%v gap=%v", general, gap), func(t *testing.T) {
				t.Parallel()
				spec := &sabotv1.WindowAggregate{
					Assigner:     &sabotv1.WindowAggregate_Session{Session: &sabotv1.SessionWindow{GapField: "gap"}},
					Aggregations: []*sabotv1.Aggregation{agg("n", fnCount, "")},
				}
				h := sessionHarness(t, spec, sabotv1.StateBackend_STATE_BACKEND_HEAP, general, 0)
				if err := h.process([]any{"a", 0, 1, gap}); err == nil {
					t.Fatal("no error for an invalid gap")
				}
			})
		}
	}
}

// TestSessionEligible: which session specs take sessionOp.
func TestSessionEligible(t *testing.T) {
	t.Parallel()
	base := func() *sabotv1.WindowAggregate {
		return &sabotv1.WindowAggregate{
			Assigner:     &sabotv1.WindowAggregate_Session{Session: &sabotv1.SessionWindow{GapMs: 10}},
			Aggregations: []*sabotv1.Aggregation{agg("n", fnCount, "")},
		}
	}
	cases := []struct {
		name string
		edit func(*sabotv1.WindowAggregate)
		want bool
	}{
		{"fixed gap", func(*sabotv1.WindowAggregate) {}, true},
		{"gap field", func(w *sabotv1.WindowAggregate) { w.GetSession().GapMs, w.GetSession().GapField = 0, "gap" }, true},
		{"event-time trigger", func(w *sabotv1.WindowAggregate) {
			w.Trigger = &sabotv1.WindowTrigger{Kind: &sabotv1.WindowTrigger_EventTime{EventTime: true}}
		}, true},
		{"late output", func(w *sabotv1.WindowAggregate) { w.LateOutput = "late" }, true},
		{"no gap", func(w *sabotv1.WindowAggregate) { w.GetSession().GapMs = 0 }, false},
		{"processing time", func(w *sabotv1.WindowAggregate) { w.Time = sabotv1.WindowTime_WINDOW_TIME_PROCESSING }, false},
		{"allowed lateness", func(w *sabotv1.WindowAggregate) { w.AllowedLatenessMs = 5 }, false},
		{"purging trigger", func(w *sabotv1.WindowAggregate) {
			w.Trigger = &sabotv1.WindowTrigger{Kind: &sabotv1.WindowTrigger_EventTime{EventTime: true}, Purging: true}
		}, false},
		{"count trigger", func(w *sabotv1.WindowAggregate) {
			w.Trigger = &sabotv1.WindowTrigger{Kind: &sabotv1.WindowTrigger_Count{Count: 3}}
		}, false},
		{"evictor", func(w *sabotv1.WindowAggregate) {
			w.Evictor = &sabotv1.WindowEvictor{Kind: &sabotv1.WindowEvictor_Count{Count: 3}}
		}, false},
		{"window function", func(w *sabotv1.WindowAggregate) { w.Function, w.Aggregations = "f", nil }, false},
		{"tumbling", func(w *sabotv1.WindowAggregate) {
			w.Assigner = &sabotv1.WindowAggregate_Tumbling{Tumbling: &sabotv1.TumblingWindow{SizeMs: 10}}
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := base()
			c.edit(w)
			if got := sessionEligible(w); got != c.want {
				t.Fatalf("sessionEligible = %v, want %v", got, c.want)
			}
		})
	}
}

// BenchmarkSessionWindow feeds batches of 1024 rows over a sweep of key
// counts, times advancing 5 ms a row (sessions of 1 s gap per key grow
// and close as the watermark trails by 2 s), through sessionOp and the
// general operator, counting a count(*) per session.
func BenchmarkSessionWindow(b *testing.B) {
	for _, keys := range []int{100, 10_000} {
		for _, general := range []bool{false, true} {
			b.Run(fmt.Sprintf("keys=%d general=%v", keys, general), func(b *testing.B) {
				benchSessionWindow(b, keys, general)
			})
		}
	}
}

func benchSessionWindow(b *testing.B, keys int, general bool) {
	in := arrow.NewSchema([]arrow.Field{
		{Name: "k", Type: arrow.PrimitiveTypes.Int64},
		{Name: "ts", Type: tsMs},
	}, nil)
	spec := &sabotv1.WindowAggregate{
		Assigner:     &sabotv1.WindowAggregate_Session{Session: &sabotv1.SessionWindow{GapMs: 1000}},
		Aggregations: []*sabotv1.Aggregation{agg("n", fnCount, "")},
	}
	out := arrow.NewSchema([]arrow.Field{
		{Name: "k", Type: arrow.PrimitiveTypes.Int64},
		{Name: "n", Type: arrow.PrimitiveTypes.Int64},
		{Name: "window_start", Type: tsMs},
		{Name: "window_end", Type: tsMs},
	}, nil)
	mem := memory.NewGoAllocator()
	v := &jobgraph.Vertex{ID: "w", Parallelism: 1, Kind: jobgraph.KindTransform, InputSchema: in, Schema: out,
		Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Window{Window: spec}}}
	v.Inputs = []*jobgraph.Edge{{To: v, Partitioning: sabotv1.Partitioning_PARTITIONING_HASH, KeyIndices: []int{0}}}
	e := &env{mem: mem, clock: clockwork.NewFakeClock(), logger: slog.New(slog.DiscardHandler),
		batchSize: DefaultBatchSize, maxParallelism: 128, noPanes: general}
	op, err := newWindowOp(spec, v, TaskInfo{JobID: "j", VertexID: "w", Parallelism: 1, KeyGroupEnd: 127}, e)
	if err != nil {
		b.Fatal(err)
	}
	if err := op.Open(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = op.Close() })
	// Batches are built in the loop (a few µs of the measured time):
	// random keys, times advancing 5 ms a row.
	const rows = 1024
	kb, tb := array.NewInt64Builder(mem), array.NewTimestampBuilder(mem, tsMs)
	defer kb.Release()
	defer tb.Release()
	rng := rand.New(rand.NewPCG(1, 2))
	sink := discardOutput{}
	ts := int64(0)
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		for range rows {
			kb.Append(int64(rng.IntN(keys)))
			tb.Append(arrow.Timestamp(ts))
			ts += 5
		}
		kc, tc := kb.NewArray(), tb.NewArray()
		rec := array.NewRecordBatch(in, []arrow.Array{kc, tc}, rows)
		kc.Release()
		tc.Release()
		err := op.ProcessBatch(b.Context(), rec, sink)
		rec.Release()
		if err != nil {
			b.Fatal(err)
		}
		if err := op.ProcessWatermark(b.Context(), ts-2000, sink); err != nil {
			b.Fatal(err)
		}
		n += rows
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "rows/s")
}
