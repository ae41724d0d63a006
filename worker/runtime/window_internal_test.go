package runtime

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/worker/state"
)

// windowIn is the input schema of the window tests: key, event time,
// value.
var windowIn = arrow.NewSchema([]arrow.Field{ //nolint:gochecknoglobals // test fixture
	{Name: "k", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "ts", Type: tsMs, Nullable: true},
	{Name: "v", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
}, nil)

func windowAggs() []*sabotv1.Aggregation {
	return []*sabotv1.Aggregation{
		agg("n", fnCount, ""), agg("sum", fnSum, "v"), agg("min", fnMin, "v"), agg("max", fnMax, "v"),
		agg("avg", fnAvg, "v"), agg("first", sabotv1.AggregateFunction_AGGREGATE_FUNCTION_FIRST, "v"),
		agg("last", sabotv1.AggregateFunction_AGGREGATE_FUNCTION_LAST, "v"),
		agg("distinct", sabotv1.AggregateFunction_AGGREGATE_FUNCTION_COUNT_DISTINCT, "v"),
	}
}

// windowSchema derives the window's output schema as the resolver does.
func windowSchema(t *testing.T, spec *sabotv1.WindowAggregate) *arrow.Schema {
	t.Helper()
	g, err := jobgraph.Resolve(&sabotv1.JobSpec{Name: "t", Graph: &sabotv1.JobGraph{
		Vertices: []*sabotv1.Vertex{
			{Id: "src", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_FileSource{FileSource: &sabotv1.FileSource{
				Path: "/nonexistent", Format: sabotv1.FileFormat_FILE_FORMAT_JSON_LINES, Columns: []*sabotv1.Column{
					{Name: "k", Type: sabotv1.ColumnType_COLUMN_TYPE_STRING},
					{Name: "ts", Type: sabotv1.ColumnType_COLUMN_TYPE_TIMESTAMP},
					{Name: "v", Type: sabotv1.ColumnType_COLUMN_TYPE_INT64},
				}}}}},
			{Id: "keyed", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Window{Window: spec}}},
			{Id: "out", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Blackhole{Blackhole: &sabotv1.BlackholeSink{}}}},
		},
		Edges: []*sabotv1.Edge{
			{From: "src", To: "keyed", Partitioning: sabotv1.Partitioning_PARTITIONING_HASH, KeyFields: []string{"k"}},
			{From: "keyed", To: "out"},
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return g.Vertex("keyed").Schema
}

// windowOracle computes, by brute force over every window of the
// assigner, what a window operator with allowed lateness 0 must emit: a
// row is added to each of its windows whose end - 1 is still after the
// watermark when the row arrives; a row added to none is late.
type windowOracle struct {
	windows func(ts int64) [][2]int64 // every window [start, end) holding ts
	accs    map[string]*oracleAcc     // by key + window
	late    []string
}

type oracleAcc struct {
	key        string
	start, end int64
	vals       []int64 // non-null values in arrival order
	rows       int64
}

func (o *windowOracle) add(key string, ts int64, v *int64, wm int64) {
	added := false
	for _, w := range o.windows(ts) {
		if w[1]-1 <= wm {
			continue
		}
		added = true
		id := fmt.Sprintf("%s|%d|%d", key, w[0], w[1])
		a := o.accs[id]
		if a == nil {
			a = &oracleAcc{key: key, start: w[0], end: w[1]}
			o.accs[id] = a
		}
		a.rows++
		if v != nil {
			a.vals = append(a.vals, *v)
		}
	}
	// Flink's rule: a row no window took is late if the watermark passed
	// it (a row whose windows all fired always is; a row between the
	// windows of a slide larger than the size only then).
	if !added && ts <= wm {
		o.late = append(o.late, fmt.Sprintf("%s@%d", key, ts))
	}
}

// line renders an oracle window as the operator's JSON line.
func (a *oracleAcc) line() string {
	null := func(ok bool, v string) string {
		if !ok {
			return "null"
		}
		return v
	}
	n := len(a.vals)
	var sum, lo, hi int64
	distinct := map[int64]bool{}
	for i, v := range a.vals {
		sum += v
		if i == 0 || v < lo {
			lo = v
		}
		if i == 0 || v > hi {
			hi = v
		}
		distinct[v] = true
	}
	avg, first, last := "", "", ""
	if n > 0 {
		avg = fmt.Sprint(float64(sum) / float64(n))
		first, last = fmt.Sprint(a.vals[0]), fmt.Sprint(a.vals[n-1])
	}
	return fmt.Sprintf(`{"k":%q,"n":%d,"sum":%s,"min":%s,"max":%s,"avg":%s,"first":%s,"last":%s,"distinct":%d,"window_start":%q,"window_end":%q}`,
		a.key, a.rows, null(n > 0, fmt.Sprint(sum)), null(n > 0, fmt.Sprint(lo)), null(n > 0, fmt.Sprint(hi)),
		null(n > 0, avg), null(n > 0, first), null(n > 0, last), len(distinct), at(a.start), at(a.end))
}

// gridWindows enumerates windows [s, s+size) with s ≡ offset (mod every)
// that hold ts.
func gridWindows(size, every, offset int64) func(ts int64) [][2]int64 {
	return func(ts int64) [][2]int64 {
		var ws [][2]int64
		s := ts - floorMod(ts-offset, every)
		for ; s > ts-size; s -= every {
			ws = append(ws, [2]int64{s, s + size})
		}
		slices.Reverse(ws)
		return ws
	}
}

func cumulateWindows(step, maxSize, offset int64) func(ts int64) [][2]int64 {
	return func(ts int64) [][2]int64 {
		s := ts - floorMod(ts-offset, maxSize)
		var ws [][2]int64
		for e := s + step; e <= s+maxSize; e += step {
			if e > ts {
				ws = append(ws, [2]int64{s, e})
			}
		}
		return ws
	}
}

// TestPaneWindowsAgainstOracle drives the pane-sharing window operator
// with random out-of-order rows, nulls and watermarks (some rows late) for
// every assigner it runs, on both backends, and checks: every window's
// row equals the brute-force oracle; each window fires at the first
// watermark that passes its end, never before; late rows go to the late
// output; and no state is left once the final watermark passed.
func TestPaneWindowsAgainstOracle(t *testing.T) {
	t.Parallel()
	type tc struct {
		name    string
		spec    *sabotv1.WindowAggregate
		windows func(ts int64) [][2]int64
	}
	cases := []tc{
		{"tumbling", &sabotv1.WindowAggregate{Assigner: &sabotv1.WindowAggregate_Tumbling{Tumbling: &sabotv1.TumblingWindow{SizeMs: 1000}}},
			gridWindows(1000, 1000, 0)},
		{"tumbling offset", &sabotv1.WindowAggregate{Assigner: &sabotv1.WindowAggregate_Tumbling{Tumbling: &sabotv1.TumblingWindow{SizeMs: 1000, OffsetMs: 300}}},
			gridWindows(1000, 1000, 300)},
		{"sliding 1000/200", &sabotv1.WindowAggregate{Assigner: &sabotv1.WindowAggregate_Sliding{Sliding: &sabotv1.SlidingWindow{SizeMs: 1000, SlideMs: 200}}},
			gridWindows(1000, 200, 0)},
		{"sliding 1000/300 offset 100", &sabotv1.WindowAggregate{Assigner: &sabotv1.WindowAggregate_Sliding{Sliding: &sabotv1.SlidingWindow{SizeMs: 1000, SlideMs: 300, OffsetMs: 100}}},
			gridWindows(1000, 300, 100)},
		{"sliding 300/1000 gaps", &sabotv1.WindowAggregate{Assigner: &sabotv1.WindowAggregate_Sliding{Sliding: &sabotv1.SlidingWindow{SizeMs: 300, SlideMs: 1000}}},
			gridWindows(300, 1000, 0)},
		{"cumulate 250/1000", &sabotv1.WindowAggregate{Assigner: &sabotv1.WindowAggregate_Cumulate{Cumulate: &sabotv1.CumulateWindow{StepMs: 250, MaxSizeMs: 1000}}},
			cumulateWindows(250, 1000, 0)},
	}
	for _, c := range cases {
		c.spec.Aggregations = windowAggs()
		c.spec.LateOutput = "late"
		for _, b := range backends {
			for _, general := range []bool{false, true} {
				name := c.name + " " + backendName(b)
				if general {
					name += " general"
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					testWindowOracle(t, c.spec, c.windows, b, general)
				})
			}
		}
	}
}

// testWindowOracle runs one case of TestPaneWindowsAgainstOracle on the
// pane operator or the general one.
func testWindowOracle(t *testing.T, spec *sabotv1.WindowAggregate, windows func(int64) [][2]int64, b sabotv1.StateBackend, general bool) {
	if !paneEligible(spec) {
		t.Fatal("spec does not take the pane path")
	}
	out := windowSchema(t, spec)
	h, err := newKeyedHarness(t, &sabotv1.Operator{Kind: &sabotv1.Operator_Window{Window: spec}}, windowIn, []int{0}, out,
		harnessOpt{backend: b, batchSize: 7, noPanes: general})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := h.op.(*paneOp); ok == general {
		t.Fatalf("operator is %T, general %v", h.op, general)
	}
	lateOut := &recordingOutput{}
	h.out.sides = map[string]*recordingOutput{"late": lateOut}
	o := &windowOracle{windows: windows, accs: map[string]*oracleAcc{}}
	rng := rand.New(rand.NewPCG(7, uint64(spec.GetTumbling().GetSizeMs()+spec.GetSliding().GetSlideMs()+spec.GetCumulate().GetStepMs())))
	wm, maxTs := int64(MinWatermark), int64(-2000)
	var got []string
	var gotLate []string
	check := func(lines []string, prev, now int64) {
		t.Helper()
		for _, l := range lines {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatal(err)
			}
			end, _ := time.Parse(time.RFC3339Nano, m["window_end"].(string))
			if e := end.UnixMilli() - 1; e <= prev || e > now {
				t.Fatalf("window %s fired at watermark %d (previous %d)", l, now, prev)
			}
		}
		got = append(got, lines...)
	}
	for range 60 {
		var rows [][]any
		for range rng.IntN(12) {
			k := fmt.Sprintf("k%d", rng.IntN(4))
			ts := maxTs + int64(rng.IntN(700)) - 400 // out of order by up to 400 ms
			maxTs = max(maxTs, ts)
			var v *int64
			var cell any
			if rng.IntN(6) > 0 {
				x := int64(rng.IntN(9)) - 3
				v, cell = &x, int(x)
			}
			rows = append(rows, []any{k, int(ts), cell})
			o.add(k, ts, v, wm)
			if !slices.ContainsFunc(o.windows(ts), func(w [2]int64) bool { return w[1]-1 > wm }) && ts <= wm {
				gotLate = append(gotLate, fmt.Sprintf(`{"k":%q,"ts":%q,"v":%s}`, k, at(ts), nullOr(cell)))
			}
		}
		if len(rows) > 0 {
			h.mustProcess(rows...)
		}
		check(h.out.take(), wm, wm) // nothing fires on rows alone
		if rng.IntN(3) == 0 {
			next := maxTs - 250
			if next > wm {
				h.watermark(next)
				check(h.out.take(), wm, next)
				wm = next
			}
		}
	}
	h.finish()
	check(h.out.take(), wm, MaxWatermark)
	var want []string
	for _, a := range o.accs {
		want = append(want, a.line())
	}
	sort.Strings(want)
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		extra, missing := diffLines(got, want)
		t.Fatalf("windows differ from the oracle (%d rows, want %d):\nunexpected:\n  %s\nmissing:\n  %s",
			len(got), len(want), strings.Join(extra, "\n  "), strings.Join(missing, "\n  "))
	}
	if len(want) == 0 {
		t.Fatal("no windows at all: the test exercises nothing")
	}
	if l := lateOut.take(); strings.Join(l, "\n") != strings.Join(gotLate, "\n") {
		t.Fatalf("late output:\ngot  %s\nwant %s", strings.Join(l, "\n  "), strings.Join(gotLate, "\n  "))
	}
	if p, ok := h.op.(*paneOp); ok {
		assertNoState(t, p.st)
	} else {
		assertNoState(t, h.op.(*generalWindowOp).st)
	}
}

func nullOr(v any) string {
	if v == nil {
		return "null"
	}
	return fmt.Sprint(v)
}

// assertNoState fails if the operator's backend still holds any entry.
func assertNoState(t *testing.T, st *keyedState) {
	t.Helper()
	var left []string
	err := st.backend.IterateKeyGroups(st.backend.KeyGroups(), func(e *state.Entry) error {
		left = append(left, fmt.Sprintf("%s/%s key=%q ns=%x col=%x", e.Operator, e.State, e.Key, e.Namespace, e.Column))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Fatalf("%d state entries left after every window fired, e.g. %s", len(left), left[0])
	}
}

// diffLines returns the lines only in got and only in want (multisets).
func diffLines(got, want []string) (extra, missing []string) {
	n := map[string]int{}
	for _, l := range want {
		n[l]++
	}
	for _, l := range got {
		if n[l] > 0 {
			n[l]--
			continue
		}
		extra = append(extra, l)
	}
	for _, l := range want {
		if n[l] > 0 {
			n[l]--
			missing = append(missing, l)
		}
	}
	return extra, missing
}

// TestSessionWindowsAgainstOracle: session windows (fixed and dynamic gap)
// over random out-of-order rows with a watermark that leaves no row late,
// on both backends: every session (Flink's merge of the rows' [t, t+gap)
// windows, touching windows merging too) equals the oracle's, fires at the
// first watermark past its end, and leaves no state behind.
func TestSessionWindowsAgainstOracle(t *testing.T) {
	t.Parallel()
	in := arrow.NewSchema([]arrow.Field{
		{Name: "k", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "ts", Type: tsMs, Nullable: true},
		{Name: "v", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "gap", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}, nil)
	for _, dynamic := range []bool{false, true} {
		for _, b := range backends {
			t.Run(fmt.Sprintf("dynamic=%v %s", dynamic, backendName(b)), func(t *testing.T) {
				t.Parallel()
				sess := &sabotv1.SessionWindow{GapMs: 300}
				if dynamic {
					sess = &sabotv1.SessionWindow{GapField: "gap"}
				}
				spec := &sabotv1.WindowAggregate{Assigner: &sabotv1.WindowAggregate_Session{Session: sess}, Aggregations: windowAggs()}
				g, err := jobgraph.Resolve(&sabotv1.JobSpec{Name: "t", Graph: &sabotv1.JobGraph{
					Vertices: []*sabotv1.Vertex{
						{Id: "src", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_FileSource{FileSource: &sabotv1.FileSource{
							Path: "/nonexistent", Columns: []*sabotv1.Column{
								{Name: "k", Type: sabotv1.ColumnType_COLUMN_TYPE_STRING},
								{Name: "ts", Type: sabotv1.ColumnType_COLUMN_TYPE_TIMESTAMP},
								{Name: "v", Type: sabotv1.ColumnType_COLUMN_TYPE_INT64},
								{Name: "gap", Type: sabotv1.ColumnType_COLUMN_TYPE_INT64},
							}}}}},
						{Id: "keyed", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Window{Window: spec}}},
						{Id: "out", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Blackhole{Blackhole: &sabotv1.BlackholeSink{}}}},
					},
					Edges: []*sabotv1.Edge{
						{From: "src", To: "keyed", Partitioning: sabotv1.Partitioning_PARTITIONING_HASH, KeyFields: []string{"k"}},
						{From: "keyed", To: "out"},
					},
				}})
				if err != nil {
					t.Fatal(err)
				}
				h, err := newKeyedHarness(t, &sabotv1.Operator{Kind: &sabotv1.Operator_Window{Window: spec}}, in, []int{0}, g.Vertex("keyed").Schema,
					harnessOpt{backend: b, batchSize: 5})
				if err != nil {
					t.Fatal(err)
				}
				type ev struct {
					ts, gap int64
					v       *int64
				}
				byKey := map[string][]ev{}
				rng := rand.New(rand.NewPCG(11, 13))
				wm, maxTs := int64(MinWatermark), int64(0)
				var got []string
				take := func(prev, now int64) {
					for _, l := range h.out.take() {
						var m map[string]any
						if err := json.Unmarshal([]byte(l), &m); err != nil {
							t.Fatal(err)
						}
						end, _ := time.Parse(time.RFC3339Nano, m["window_end"].(string))
						if e := end.UnixMilli() - 1; e <= prev || e > now {
							t.Fatalf("session %s fired at watermark %d (previous %d)", l, now, prev)
						}
						got = append(got, l)
					}
				}
				for range 80 {
					var rows [][]any
					for range rng.IntN(8) {
						k := fmt.Sprintf("k%d", rng.IntN(3))
						ts := maxTs + int64(rng.IntN(500)) - 200
						maxTs = max(maxTs, ts)
						gap := int64(300)
						if dynamic {
							gap = 100 + int64(rng.IntN(400))
						}
						var v *int64
						var cell any
						if rng.IntN(5) > 0 {
							x := int64(rng.IntN(7))
							v, cell = &x, int(x)
						}
						byKey[k] = append(byKey[k], ev{ts: ts, gap: gap, v: v})
						rows = append(rows, []any{k, int(ts), cell, int(gap)})
					}
					if len(rows) > 0 {
						h.mustProcess(rows...)
						take(wm, wm)
					}
					if next := maxTs - 1000; rng.IntN(3) == 0 && next > wm {
						h.watermark(next)
						take(wm, next)
						wm = next
					}
				}
				h.finish()
				take(wm, MaxWatermark)
				// The oracle: per key, windows [t, t+gap) sorted by start,
				// merged while they intersect (touching included).
				var want []string
				for k, evs := range byKey {
					idx := make([]int, len(evs))
					for i := range idx {
						idx[i] = i
					}
					sort.SliceStable(idx, func(a, b int) bool { return evs[idx[a]].ts < evs[idx[b]].ts })
					var cur *oracleAcc
					var members []int
					flush := func() {
						slices.Sort(members) // arrival order for first/last
						for _, m := range members {
							cur.rows++
							if evs[m].v != nil {
								cur.vals = append(cur.vals, *evs[m].v)
							}
						}
						want = append(want, cur.line())
					}
					for _, i := range idx {
						e := evs[i]
						if cur != nil && e.ts <= cur.end {
							cur.end = max(cur.end, e.ts+e.gap)
							members = append(members, i)
							continue
						}
						if cur != nil {
							flush()
						}
						cur, members = &oracleAcc{key: k, start: e.ts, end: e.ts + e.gap}, []int{i}
					}
					if cur != nil {
						flush()
					}
				}
				sort.Strings(want)
				sort.Strings(got)
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					extra, missing := diffLines(got, want)
					t.Fatalf("sessions differ from the oracle (%d, want %d):\nunexpected:\n  %s\nmissing:\n  %s",
						len(got), len(want), strings.Join(extra, "\n  "), strings.Join(missing, "\n  "))
				}
				assertNoState(t, h.op.(*generalWindowOp).st)
			})
		}
	}
}
