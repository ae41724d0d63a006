package runtime

import (
	"encoding/json"
	"fmt"
	"log/slog"
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

// TestSessionWindowsAgainstOracle drives session windows (fixed and
// dynamic gap) with random out-of-order rows on sessionOp and on the
// general operator, both backends, and checks them against a model of
// Flink's merging window set: per key, the open sessions; a row's window
// [ts, ts+gap) absorbs every open session it intersects (touching
// included, to a fixed point); a row that intersects none and whose
// window ends at or before the watermark + 1 is late (fired sessions are
// gone, so a late row extends or bridges nothing); a watermark fires the
// sessions with end - 1 ≤ it. At every watermark the operator must emit
// exactly the sessions the model fires then, late rows must reach the
// late output in arrival order (or be counted dropped), and no state may
// remain at the end. In the variant without late rows the result must
// also equal the offline merge of every row's window.
func TestSessionWindowsAgainstOracle(t *testing.T) {
	t.Parallel()
	for _, dynamic := range []bool{false, true} {
		for _, late := range []sessionLateMode{sessionNoLate, sessionLateOutput, sessionLateDropped} {
			for _, b := range backends {
				for _, general := range []bool{false, true} {
					name := fmt.Sprintf("dynamic=%v %s %s", dynamic, late, backendName(b))
					if general {
						name += " general"
					}
					t.Run(name, func(t *testing.T) {
						t.Parallel()
						testSessionOracle(t, dynamic, late, b, general)
					})
				}
			}
		}
	}
}

type sessionLateMode string

const (
	sessionNoLate      sessionLateMode = "no late rows"
	sessionLateOutput  sessionLateMode = "late output"
	sessionLateDropped sessionLateMode = "late dropped"
)

// sessionIn is the input schema of the session tests: key, event time,
// value, dynamic gap.
var sessionIn = arrow.NewSchema([]arrow.Field{ //nolint:gochecknoglobals // test fixture
	{Name: "k", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "ts", Type: tsMs, Nullable: true},
	{Name: "v", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "gap", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
}, nil)

// sessionSchema derives a session window's output schema over sessionIn
// as the resolver does.
func sessionSchema(t *testing.T, spec *sabotv1.WindowAggregate) *arrow.Schema {
	t.Helper()
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
	return g.Vertex("keyed").Schema
}

// sessionHarness opens spec over sessionIn on sessionOp, or on the general
// operator, and checks which one it got.
func sessionHarness(t *testing.T, spec *sabotv1.WindowAggregate, b sabotv1.StateBackend, general bool, batchSize int) *keyedHarness {
	t.Helper()
	if !sessionEligible(spec) {
		t.Fatal("spec does not take the session path")
	}
	h, err := newKeyedHarness(t, &sabotv1.Operator{Kind: &sabotv1.Operator_Window{Window: spec}}, sessionIn, []int{0}, sessionSchema(t, spec),
		harnessOpt{backend: b, batchSize: batchSize, noPanes: general})
	if err != nil {
		t.Fatal(err)
	}
	// The harness has no logger; the operators log dropped rows on Close.
	switch op := h.op.(type) {
	case *sessionOp:
		if general {
			t.Fatal("noPanes did not select the general operator")
		}
		op.logger = slog.New(slog.DiscardHandler)
	case *generalWindowOp:
		if !general {
			t.Fatal("a session window did not take sessionOp")
		}
		op.logger = slog.New(slog.DiscardHandler)
	default:
		t.Fatalf("operator is %T", h.op)
	}
	return h
}

// sessionModel is the oracle of TestSessionWindowsAgainstOracle.
type sessionModel struct {
	evs   []sessionEv
	open  map[string][]*modelSession
	late  []int // arrival indices of late rows
	taken int   // rows at or behind the watermark that joined an open session
}

type sessionEv struct {
	key     string
	ts, gap int64
	v       *int64
}

type modelSession struct {
	start, end int64
	members    []int // arrival indices
}

// add takes row e arriving at watermark wm.
func (m *sessionModel) add(e sessionEv, wm int64) {
	idx := len(m.evs)
	m.evs = append(m.evs, e)
	cur := &modelSession{start: e.ts, end: e.ts + e.gap, members: []int{idx}}
	rest := m.open[e.key]
	absorbed := true
	for absorbed {
		absorbed = false
		for i, o := range rest {
			if o.start <= cur.end && o.end >= cur.start {
				cur.start, cur.end = min(cur.start, o.start), max(cur.end, o.end)
				cur.members = append(cur.members, o.members...)
				rest = slices.Delete(slices.Clone(rest), i, i+1)
				absorbed = true
				break
			}
		}
	}
	if len(cur.members) == 1 && cur.end-1 <= wm {
		m.late = append(m.late, idx)
		return
	}
	if e.ts <= wm {
		m.taken++
	}
	m.open[e.key] = append(rest, cur)
}

// fire removes and renders the open sessions with end - 1 ≤ wm.
func (m *sessionModel) fire(wm int64) []string {
	var lines []string
	for k, open := range m.open {
		var keep []*modelSession
		for _, o := range open {
			if o.end-1 > wm {
				keep = append(keep, o)
				continue
			}
			a := &oracleAcc{key: k, start: o.start, end: o.end}
			slices.Sort(o.members) // arrival order for first/last
			for _, i := range o.members {
				a.rows++
				if v := m.evs[i].v; v != nil {
					a.vals = append(a.vals, *v)
				}
			}
			lines = append(lines, a.line())
		}
		m.open[k] = keep
	}
	sort.Strings(lines)
	return lines
}

// lateLine renders row i as the late output does.
func (m *sessionModel) lateLine(i int) string {
	e := m.evs[i]
	v := "null"
	if e.v != nil {
		v = fmt.Sprint(*e.v)
	}
	return fmt.Sprintf(`{"k":%q,"ts":%q,"v":%s,"gap":%d}`, e.key, at(e.ts), v, e.gap)
}

// offline is the sessions of every row by the offline merge: per key,
// windows sorted by start, merged while they intersect. It equals the
// model's output when no row is late.
func (m *sessionModel) offline() []string {
	byKey := map[string][]int{}
	for i, e := range m.evs {
		byKey[e.key] = append(byKey[e.key], i)
	}
	var want []string
	for k, idx := range byKey {
		sort.SliceStable(idx, func(a, b int) bool { return m.evs[idx[a]].ts < m.evs[idx[b]].ts })
		var cur *oracleAcc
		var members []int
		flush := func() {
			slices.Sort(members)
			for _, i := range members {
				cur.rows++
				if m.evs[i].v != nil {
					cur.vals = append(cur.vals, *m.evs[i].v)
				}
			}
			want = append(want, cur.line())
		}
		for _, i := range idx {
			e := m.evs[i]
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
	return want
}

// testSessionOracle runs one case of TestSessionWindowsAgainstOracle.
func testSessionOracle(t *testing.T, dynamic bool, mode sessionLateMode, b sabotv1.StateBackend, general bool) {
	sess := &sabotv1.SessionWindow{GapMs: 300}
	if dynamic {
		sess = &sabotv1.SessionWindow{GapField: "gap"}
	}
	spec := &sabotv1.WindowAggregate{Assigner: &sabotv1.WindowAggregate_Session{Session: sess}, Aggregations: windowAggs()}
	if mode == sessionLateOutput {
		spec.LateOutput = "late"
	}
	h := sessionHarness(t, spec, b, general, 5)
	lateOut := &recordingOutput{}
	h.out.sides = map[string]*recordingOutput{"late": lateOut}
	m := &sessionModel{open: map[string][]*modelSession{}}
	seed := uint64(11)
	if dynamic {
		seed++
	}
	if mode != sessionNoLate {
		seed += 100
	}
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 13))
	wm, maxTs := int64(MinWatermark), int64(0)
	var all []string
	step := func(what string, want []string) {
		t.Helper()
		got := h.out.take()
		sort.Strings(got)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			extra, missing := diffLines(got, want)
			t.Fatalf("%s: sessions differ from the model (%d, want %d):\nunexpected:\n  %s\nmissing:\n  %s",
				what, len(got), len(want), strings.Join(extra, "\n  "), strings.Join(missing, "\n  "))
		}
		all = append(all, got...)
	}
	// Times are multiples of 10 ms and watermarks sometimes one less, so
	// windows often touch exactly and end exactly at the watermark + 1.
	for range 150 {
		var rows [][]any
		for range rng.IntN(12) {
			e := sessionEv{key: fmt.Sprintf("k%d", rng.IntN(5)), gap: 300}
			if dynamic {
				e.gap = 100 + 10*int64(rng.IntN(40))
			}
			behind := mode != sessionNoLate && wm > MinWatermark
			switch {
			case behind && rng.IntN(8) == 0:
				e.ts = wm + 1 - e.gap + int64(rng.IntN(2)) // ends at the watermark + 1 (late unless it joins) or + 2
			case behind && rng.IntN(3) == 0:
				e.ts = wm + 1 - 10*int64(rng.IntN(150)) // behind the watermark: late or joining an open session
			default:
				e.ts = maxTs + 10*int64(rng.IntN(50)) - 200 // out of order by up to 200 ms
				maxTs = max(maxTs, e.ts)
			}
			var cell any
			if rng.IntN(5) > 0 {
				x := int64(rng.IntN(7))
				e.v, cell = &x, int(x)
			}
			m.add(e, wm)
			rows = append(rows, []any{e.key, int(e.ts), cell, int(e.gap)})
		}
		if len(rows) > 0 {
			h.mustProcess(rows...)
			step("rows", nil) // nothing fires on rows alone
		}
		next := maxTs - 1000 // no row late
		if mode != sessionNoLate {
			next = maxTs - 10*int64(rng.IntN(40)) - int64(rng.IntN(2))
		}
		if rng.IntN(3) == 0 && next > wm {
			h.watermark(next)
			step(fmt.Sprintf("watermark %d", next), m.fire(next))
			wm = next
		}
	}
	h.finish()
	step("finish", m.fire(MaxWatermark))
	if len(all) == 0 {
		t.Fatal("no sessions at all: the test exercises nothing")
	}
	var wantLate []string
	if mode == sessionLateOutput {
		for _, i := range m.late {
			wantLate = append(wantLate, m.lateLine(i))
		}
	}
	if l := lateOut.take(); strings.Join(l, "\n") != strings.Join(wantLate, "\n") {
		t.Fatalf("late output:\ngot  %s\nwant %s", strings.Join(l, "\n  "), strings.Join(wantLate, "\n  "))
	}
	var st *keyedState
	var dropped int64
	switch op := h.op.(type) {
	case *sessionOp:
		st, dropped = op.st, op.dropped
	case *generalWindowOp:
		st, dropped = op.st, op.engine.LateRecordsDropped()
	}
	wantDropped := 0
	if mode == sessionLateDropped {
		wantDropped = len(m.late)
	}
	if dropped != int64(wantDropped) {
		t.Fatalf("%d late rows dropped, want %d", dropped, wantDropped)
	}
	switch mode {
	case sessionNoLate:
		if len(m.late) > 0 {
			t.Fatalf("%d late rows in the variant without", len(m.late))
		}
		sort.Strings(all)
		if want := m.offline(); strings.Join(all, "\n") != strings.Join(want, "\n") {
			extra, missing := diffLines(all, want)
			t.Fatalf("sessions differ from the offline merge:\nunexpected:\n  %s\nmissing:\n  %s",
				strings.Join(extra, "\n  "), strings.Join(missing, "\n  "))
		}
	default:
		if len(m.late) == 0 || m.taken == 0 {
			t.Fatalf("%d late rows, %d rows behind the watermark taken: the test exercises too little", len(m.late), m.taken)
		}
	}
	t.Logf("%d sessions, %d rows, %d late, %d behind the watermark taken", len(all), len(m.evs), len(m.late), m.taken)
	assertNoState(t, st)
}
