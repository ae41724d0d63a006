package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sabotdev/sabot/worker/connector/jsonrow"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/jonboulle/clockwork"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/worker/state"
)

var backends = []sabotv1.StateBackend{sabotv1.StateBackend_STATE_BACKEND_HEAP, sabotv1.StateBackend_STATE_BACKEND_PEBBLE}

func backendName(b sabotv1.StateBackend) string {
	return strings.ToLower(strings.TrimPrefix(b.String(), "STATE_BACKEND_"))
}

var tsMs = &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}

// keyedHarness drives one keyed operator subtask directly: batches and
// watermarks in, emitted rows out as JSON lines.
type keyedHarness struct {
	t     *testing.T
	mem   *memory.CheckedAllocator
	clock *clockwork.FakeClock
	v     *jobgraph.Vertex
	op    Operator
	out   *recordingOutput
}

// recordingOutput records what an operator emits: one JSON line per row,
// and the number of batches.
type recordingOutput struct {
	lines   []string
	batches int
	sides   map[string]*recordingOutput
}

// Side returns the recording of side output name, if the test set one.
func (o *recordingOutput) Side(name string) Output {
	if s := o.sides[name]; s != nil {
		return s
	}
	return discardOutput{}
}

func (o *recordingOutput) Emit(_ context.Context, rec arrow.RecordBatch) error {
	o.batches++
	enc := jsonrow.NewEncoder(rec.Schema())
	enc.Reset(rec)
	for i := range int(rec.NumRows()) {
		o.lines = append(o.lines, string(enc.AppendRow(nil, i)))
	}
	return nil
}

func (o *recordingOutput) EmitWatermark(context.Context, int64) error { return nil }

func (o *recordingOutput) EmitIdle(context.Context, bool) error { return nil }

// take returns the lines recorded since the last take.
func (o *recordingOutput) take() []string {
	l := o.lines
	o.lines = nil
	return l
}

type harnessOpt struct {
	backend   sabotv1.StateBackend
	functions map[string]ProcessFunctionFactory
	info      *TaskInfo
	batchSize int
	noPanes   bool
}

func newKeyedHarness(t *testing.T, op *sabotv1.Operator, in *arrow.Schema, keys []int, out *arrow.Schema, o harnessOpt) (*keyedHarness, error) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	v := &jobgraph.Vertex{ID: "keyed", Parallelism: 1, Kind: jobgraph.KindTransform, Operator: op, InputSchema: in, Schema: out}
	v.Inputs = []*jobgraph.Edge{{To: v, Partitioning: sabotv1.Partitioning_PARTITIONING_HASH, KeyIndices: keys}}
	clock := clockwork.NewFakeClockAt(time.UnixMilli(1_000_000))
	e := &env{
		mem: mem, clock: clock, batchSize: o.batchSize, logger: slog.New(slog.DiscardHandler),
		maxParallelism: 128, stateBackend: o.backend, stateDir: t.TempDir(), functions: o.functions,
		noPanes: o.noPanes,
	}
	if e.batchSize == 0 {
		e.batchSize = DefaultBatchSize
	}
	info := TaskInfo{JobID: "job", VertexID: v.ID, Parallelism: 1, KeyGroupStart: 0, KeyGroupEnd: 127}
	if o.info != nil {
		info = *o.info
	}
	opr, err := newOperatorKind(v, info, e)
	if err != nil {
		return nil, err
	}
	h := &keyedHarness{t: t, mem: mem, clock: clock, v: v, op: opr, out: &recordingOutput{}}
	if err := opr.Open(t.Context()); err != nil {
		_ = opr.Close()
		return nil, err
	}
	t.Cleanup(func() {
		if err := h.op.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return h, nil
}

// batch builds a batch of schema from rows of Go values (nil is null;
// timestamps as int64 ms).
func batch(t *testing.T, mem memory.Allocator, schema *arrow.Schema, rows ...[]any) arrow.RecordBatch {
	t.Helper()
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for _, r := range rows {
		for c, v := range r {
			if v == nil {
				b.Field(c).AppendNull()
				continue
			}
			switch fb := b.Field(c).(type) {
			case *array.Int64Builder:
				fb.Append(int64(v.(int)))
			case *array.Float64Builder:
				fb.Append(v.(float64))
			case *array.StringBuilder:
				fb.Append(v.(string))
			case *array.TimestampBuilder:
				fb.Append(arrow.Timestamp(v.(int)))
			case *array.BooleanBuilder:
				fb.Append(v.(bool))
			default:
				t.Fatalf("batch: column %d: unsupported builder %T", c, fb)
			}
		}
	}
	return b.NewRecordBatch()
}

func (h *keyedHarness) process(rows ...[]any) error {
	rec := batch(h.t, h.mem, h.v.InputSchema, rows...)
	defer rec.Release()
	return h.op.ProcessBatch(h.t.Context(), rec, h.out)
}

func (h *keyedHarness) mustProcess(rows ...[]any) {
	h.t.Helper()
	if err := h.process(rows...); err != nil {
		h.t.Fatal(err)
	}
}

func (h *keyedHarness) watermark(wm int64) {
	h.t.Helper()
	if err := h.op.ProcessWatermark(h.t.Context(), wm, h.out); err != nil {
		h.t.Fatal(err)
	}
}

func (h *keyedHarness) finish() {
	h.t.Helper()
	if err := h.op.Finish(h.t.Context(), h.out); err != nil {
		h.t.Fatal(err)
	}
}

func (h *keyedHarness) expect(step string, want ...string) {
	h.t.Helper()
	got := h.out.take()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		h.t.Fatalf("%s: got\n  %s\nwant\n  %s", step, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func aggOp(aggs ...*sabotv1.Aggregation) *sabotv1.Operator {
	return &sabotv1.Operator{Kind: &sabotv1.Operator_KeyedAggregate{KeyedAggregate: &sabotv1.KeyedAggregate{Aggregations: aggs}}}
}

func agg(name string, fn sabotv1.AggregateFunction, field string) *sabotv1.Aggregation {
	return &sabotv1.Aggregation{Name: name, Function: fn, Field: field}
}

const (
	fnCount = sabotv1.AggregateFunction_AGGREGATE_FUNCTION_COUNT
	fnSum   = sabotv1.AggregateFunction_AGGREGATE_FUNCTION_SUM
	fnMin   = sabotv1.AggregateFunction_AGGREGATE_FUNCTION_MIN
	fnMax   = sabotv1.AggregateFunction_AGGREGATE_FUNCTION_MAX
	fnAvg   = sabotv1.AggregateFunction_AGGREGATE_FUNCTION_AVG
)

// aggSchema derives the output schema as the resolver does.
func aggSchema(t *testing.T, in *arrow.Schema, keys []int, aggs ...*sabotv1.Aggregation) *arrow.Schema {
	t.Helper()
	var fields []arrow.Field
	for _, k := range keys {
		fields = append(fields, in.Field(k))
	}
	for _, a := range aggs {
		var typ arrow.DataType
		if a.GetField() != "" {
			typ = in.Field(in.FieldIndices(a.GetField())[0]).Type
		}
		out, err := jobgraph.AggregateType(a.GetFunction(), typ)
		if err != nil {
			t.Fatal(err)
		}
		fields = append(fields, arrow.Field{Name: a.GetName(), Type: out, Nullable: true})
	}
	return arrow.NewSchema(fields, nil)
}

func TestKeyedAggregateUpsertPerBatch(t *testing.T) {
	t.Parallel()
	in := arrow.NewSchema([]arrow.Field{
		{Name: "k", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "v", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "f", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "ts", Type: tsMs, Nullable: true},
	}, nil)
	aggs := []*sabotv1.Aggregation{
		agg("rows", fnCount, ""), agg("n", fnCount, "v"), agg("sum", fnSum, "v"), agg("min", fnMin, "v"),
		agg("max", fnMax, "v"), agg("avg", fnAvg, "v"), agg("fsum", fnSum, "f"), agg("fmin", fnMin, "f"), agg("last", fnMax, "ts"),
	}
	for _, b := range backends {
		t.Run(backendName(b), func(t *testing.T) {
			t.Parallel()
			h, err := newKeyedHarness(t, aggOp(aggs...), in, []int{0}, aggSchema(t, in, []int{0}, aggs...), harnessOpt{backend: b})
			if err != nil {
				t.Fatal(err)
			}
			h.mustProcess(
				[]any{"a", 1, 0.5, 1000},
				[]any{"b", nil, nil, nil},
				[]any{"a", 3, -1.5, 500},
				[]any{nil, 7, nil, nil},
			)
			h.expect("batch 1",
				`{"k":"a","rows":2,"n":2,"sum":4,"min":1,"max":3,"avg":2,"fsum":-1,"fmin":-1.5,"last":"1970-01-01T00:00:01Z"}`,
				`{"k":"b","rows":1,"n":0,"sum":null,"min":null,"max":null,"avg":null,"fsum":null,"fmin":null,"last":null}`,
				`{"k":null,"rows":1,"n":1,"sum":7,"min":7,"max":7,"avg":7,"fsum":null,"fmin":null,"last":null}`,
			)
			if h.out.batches != 1 {
				t.Fatalf("%d batches for one input batch, want 1", h.out.batches)
			}
			h.mustProcess([]any{"b", -4, 2.0, 2000}, []any{"b", 10, nil, nil})
			h.expect("batch 2",
				`{"k":"b","rows":3,"n":2,"sum":6,"min":-4,"max":10,"avg":3,"fsum":2,"fmin":2,"last":"1970-01-01T00:00:02Z"}`)
			h.watermark(5000)
			h.finish()
			h.expect("watermark and finish emit nothing")
		})
	}
}

func TestKeyedAggregateCompositeKey(t *testing.T) {
	t.Parallel()
	in := arrow.NewSchema([]arrow.Field{
		{Name: "a", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "x", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, nil)
	aggs := []*sabotv1.Aggregation{agg("max", fnMax, "x"), agg("avg", fnAvg, "x")}
	h, err := newKeyedHarness(t, aggOp(aggs...), in, []int{1, 0}, aggSchema(t, in, []int{1, 0}, aggs...), harnessOpt{})
	if err != nil {
		t.Fatal(err)
	}
	h.mustProcess([]any{1, true, 1.0}, []any{1, false, 2.0}, []any{2, true, 3.0}, []any{1, true, 5.0})
	h.expect("batch",
		`{"b":true,"a":1,"max":5,"avg":3}`,
		`{"b":false,"a":1,"max":2,"avg":2}`,
		`{"b":true,"a":2,"max":3,"avg":3}`,
	)
}

func TestKeyedKeyGroupOutOfRange(t *testing.T) {
	t.Parallel()
	in := arrow.NewSchema([]arrow.Field{{Name: "k", Type: arrow.PrimitiveTypes.Int64}}, nil)
	aggs := []*sabotv1.Aggregation{agg("n", fnCount, "")}
	// Find the key group of key 1 and give the subtask every other group.
	rec := batch(t, memory.DefaultAllocator, in, []any{1})
	hashes := make([]uint32, 1)
	if err := HashKeys(rec, []int{0}, hashes); err != nil {
		t.Fatal(err)
	}
	rec.Release()
	kg := KeyGroup(hashes[0], 128)
	info := TaskInfo{JobID: "job", VertexID: "keyed", Subtask: 1, Parallelism: 2, KeyGroupStart: kg + 1, KeyGroupEnd: kg + 1}
	if kg == 127 {
		info.KeyGroupStart, info.KeyGroupEnd = 0, 0
	}
	h, err := newKeyedHarness(t, aggOp(aggs...), in, []int{0}, aggSchema(t, in, []int{0}, aggs...), harnessOpt{info: &info})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.process([]any{1}); !errors.Is(err, state.ErrKeyGroupOutOfRange) {
		t.Fatalf("got %v, want ErrKeyGroupOutOfRange", err)
	}
}

func processOpSpec(name string, config map[string]string, out ...*sabotv1.Column) *sabotv1.Operator {
	return &sabotv1.Operator{Kind: &sabotv1.Operator_Process{Process: &sabotv1.ProcessFunction{Name: name, Output: out, Config: config}}}
}

func col(name string, typ sabotv1.ColumnType) *sabotv1.Column {
	return &sabotv1.Column{Name: name, Type: typ}
}

func outSchema(cols ...*sabotv1.Column) *arrow.Schema {
	var fields []arrow.Field
	for _, c := range cols {
		typ, _ := jobgraph.ArrowType(c.GetType())
		fields = append(fields, arrow.Field{Name: c.GetName(), Type: typ, Nullable: true})
	}
	return arrow.NewSchema(fields, nil)
}

var (
	colString = sabotv1.ColumnType_COLUMN_TYPE_STRING
	colInt    = sabotv1.ColumnType_COLUMN_TYPE_INT64
	colTime   = sabotv1.ColumnType_COLUMN_TYPE_TIMESTAMP
)

// alertIn is the input of the process tests: a string key, an event time
// and a payload.
var alertIn = arrow.NewSchema([]arrow.Field{
	{Name: "user", Type: arrow.BinaryTypes.String},
	{Name: "ts", Type: tsMs, Nullable: true},
	{Name: "n", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
}, nil)

func alertHarness(t *testing.T, b sabotv1.StateBackend, delay string) *keyedHarness {
	t.Helper()
	cols := []*sabotv1.Column{col("key", colString), col("count", colInt), col("fired_at", colTime)}
	h, err := newKeyedHarness(t, processOpSpec(EventTimeAlertFunction, map[string]string{"delay_ms": delay}, cols...),
		alertIn, []int{0}, outSchema(cols...), harnessOpt{backend: b})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func at(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano) }

func alertLine(key string, count int, firedAt int64) string {
	return fmt.Sprintf(`{"key":%q,"count":%d,"fired_at":%q}`, key, count, at(firedAt))
}

func TestEventTimeAlertScripted(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(backendName(b), func(t *testing.T) {
			t.Parallel()
			h := alertHarness(t, b, "10")
			// Buckets of 10 ms: [100, 110) fires at 110, and so on. Out of
			// order within and across batches.
			h.mustProcess([]any{"a", 105, 1}, []any{"b", 100, 1}, []any{"a", 101, 1})
			h.expect("elements emit nothing")
			h.watermark(110) // both keys' bucket [100, 110)
			h.expect("wm 110", alertLine("b", 1, 110), alertLine("a", 2, 110))
			h.mustProcess([]any{"a", 99, 1}, []any{"b", nil, 1}, []any{"c", 200, 1})
			// a@99's bucket ended at 100, behind the watermark: it fires at
			// the next advance.
			h.watermark(112)
			h.expect("wm 112: the late bucket", alertLine("a", 1, 100))
			h.watermark(112) // no advance: nothing
			h.mustProcess([]any{"a", 104, 1})
			h.watermark(120) // a@104 reopened bucket [100, 110): a late re-firing
			h.expect("wm 120", alertLine("a", 1, 110))
			h.finish() // end of input fires c's bucket [200, 210)
			h.expect("finish", alertLine("c", 1, 210))
		})
	}
}

// chainFunction registers a timer at the element's timestamp and, on each
// firing, emits it and registers the next one step ms later, up to times
// firings: timers registered in OnTimer.
type chainFunction struct {
	step, times int64
	fired       *state.ValueState[int64]
}

func (f *chainFunction) Open(ctx *ProcessContext) error {
	var err error
	f.fired, err = state.Value(ctx.Keyed(), state.ValueDescriptor[int64]{Name: "fired", Codec: state.Int64Codec{}})
	return err
}

func (f *chainFunction) ProcessElement(ctx *ProcessContext, row Row, _ *Collector) error {
	ts, err := ctx.Timestamp()
	if err != nil {
		return err
	}
	if row.Timestamp(1) != ts || row.String(0) != ctx.Key().String() {
		return fmt.Errorf("row and context disagree: %d %q vs %d %q", row.Timestamp(1), row.String(0), ts, ctx.Key())
	}
	return ctx.RegisterEventTimeTimer(ts)
}

func (f *chainFunction) OnTimer(ctx *ProcessContext, t TimerInfo, out *Collector) error {
	n, _, err := f.fired.Value()
	if err != nil {
		return err
	}
	n++
	if err := f.fired.Update(n); err != nil {
		return err
	}
	if ts, err := ctx.Timestamp(); err != nil || ts != t.Timestamp {
		return fmt.Errorf("timestamp in OnTimer: %d, %w", ts, err)
	}
	if err := out.Collect(ctx.Key().String(), n, time.UnixMilli(t.Timestamp)); err != nil {
		return err
	}
	if n < f.times {
		return ctx.RegisterEventTimeTimer(t.Timestamp + f.step)
	}
	return nil
}

func TestProcessTimersRegisteredInOnTimer(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(backendName(b), func(t *testing.T) {
			t.Parallel()
			cols := []*sabotv1.Column{col("key", colString), col("count", colInt), col("fired_at", colTime)}
			fns := map[string]ProcessFunctionFactory{"chain": func(cfg map[string]string) (ProcessFunction, error) {
				return &chainFunction{step: 5, times: 4}, nil
			}}
			h, err := newKeyedHarness(t, processOpSpec("chain", nil, cols...), alertIn, []int{0}, outSchema(cols...),
				harnessOpt{backend: b, functions: fns})
			if err != nil {
				t.Fatal(err)
			}
			h.mustProcess([]any{"x", 100, nil}, []any{"y", 103, nil})
			// 100, 105 (registered in OnTimer, ≤ wm: same advance), 110 > wm.
			h.watermark(107)
			h.expect("wm 107", alertLine("x", 1, 100), alertLine("y", 1, 103), alertLine("x", 2, 105))
			h.finish() // the rest, in timestamp order
			h.expect("finish",
				alertLine("y", 2, 108), alertLine("x", 3, 110), alertLine("y", 3, 113), alertLine("x", 4, 115), alertLine("y", 4, 118))
		})
	}
}

// procFunction registers a processing-time timer delay ms after each
// element and emits the key and the timer's time when it fires.
type procFunction struct{ delay int64 }

func (f *procFunction) Open(*ProcessContext) error { return nil }

func (f *procFunction) ProcessElement(ctx *ProcessContext, _ Row, _ *Collector) error {
	return ctx.RegisterProcessingTimeTimer(ctx.ProcessingTime() + f.delay)
}

func (f *procFunction) OnTimer(ctx *ProcessContext, t TimerInfo, out *Collector) error {
	if t.Domain != ProcessingTime {
		return fmt.Errorf("domain %s", t.Domain)
	}
	return out.Collect(ctx.Key().String(), nil, time.UnixMilli(t.Timestamp))
}

func TestProcessingTimeTimers(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(backendName(b), func(t *testing.T) {
			t.Parallel()
			cols := []*sabotv1.Column{col("key", colString), col("count", colInt), col("fired_at", colTime)}
			fns := map[string]ProcessFunctionFactory{"proc": func(map[string]string) (ProcessFunction, error) {
				return &procFunction{delay: 100}, nil
			}}
			h, err := newKeyedHarness(t, processOpSpec("proc", nil, cols...), alertIn, []int{0}, outSchema(cols...),
				harnessOpt{backend: b, functions: fns})
			if err != nil {
				t.Fatal(err)
			}
			t0 := h.clock.Now().UnixMilli()
			h.mustProcess([]any{"a", nil, nil})
			h.clock.Advance(50 * time.Millisecond)
			h.mustProcess([]any{"b", nil, nil})
			h.watermark(MaxWatermark - 1) // event time does not fire processing-time timers
			h.expect("before due")
			h.clock.Advance(50 * time.Millisecond)
			h.watermark(MaxWatermark) // a's timer is due
			line := func(k string, ts int64) string {
				return fmt.Sprintf(`{"key":%q,"count":null,"fired_at":%q}`, k, at(ts))
			}
			h.expect("a due", line("a", t0+100))
			h.mustProcess([]any{"c", nil, nil})
			h.clock.Advance(60 * time.Millisecond)
			h.finish() // b due, c not: dropped
			h.expect("finish", line("b", t0+150))
		})
	}
}

func TestCountPerKeyIntKey(t *testing.T) {
	t.Parallel()
	in := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)
	cols := []*sabotv1.Column{col("key", colInt), col("count", colInt)}
	h, err := newKeyedHarness(t, processOpSpec(CountPerKeyFunction, nil, cols...), in, []int{0}, outSchema(cols...), harnessOpt{batchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	h.mustProcess([]any{7}, []any{-3}, []any{7}, []any{7}, []any{-3})
	h.expect("batch", `{"key":7,"count":1}`, `{"key":-3,"count":1}`, `{"key":7,"count":2}`, `{"key":7,"count":3}`, `{"key":-3,"count":2}`)
	if h.out.batches != 3 {
		t.Fatalf("%d batches with batch size 2 for 5 rows, want 3", h.out.batches)
	}
}

func TestProcessFunctionErrors(t *testing.T) {
	t.Parallel()
	good := []*sabotv1.Column{col("key", colString), col("count", colInt), col("fired_at", colTime)}
	noTS := arrow.NewSchema([]arrow.Field{{Name: "user", Type: arrow.BinaryTypes.String}}, nil)
	for _, tc := range []struct {
		name   string
		fn     string
		config map[string]string
		in     *arrow.Schema
		cols   []*sabotv1.Column
		want   string
	}{
		{"unknown name", "no-such-function", nil, alertIn, good, `process function "no-such-function" is not registered`},
		{"bad delay", EventTimeAlertFunction, map[string]string{"delay_ms": "soon"}, alertIn, good, `delay_ms "soon"`},
		{"no timestamp column", EventTimeAlertFunction, nil, noTS, good, "no timestamp column"},
		{"timestamp field missing", EventTimeAlertFunction, map[string]string{TimestampFieldConfig: "when"}, alertIn, good, `"when" is not an input column`},
		{"missing output column", EventTimeAlertFunction, nil, alertIn, good[:2], `declare an output column "fired_at"`},
		{"int key column for a string key", CountPerKeyFunction, nil, alertIn, []*sabotv1.Column{col("key", colInt), col("count", colInt)}, "not a single integer column"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := newKeyedHarness(t, processOpSpec(tc.fn, tc.config, tc.cols...), tc.in, []int{0}, outSchema(tc.cols...), harnessOpt{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestCollectorTypeErrors(t *testing.T) {
	t.Parallel()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	c := newCollector(mem, outSchema(col("key", colString), col("count", colInt)), 10)
	defer c.release()
	c.SetFloat64(1, 1.5)
	if err := c.Emit(); err == nil || !strings.Contains(err.Error(), "cannot hold a float64") {
		t.Fatalf("got %v", err)
	}
	if err := c.Collect("a"); err == nil {
		t.Fatal("too few values accepted")
	}
	if err := c.Collect("a", struct{}{}); err == nil {
		t.Fatal("struct accepted")
	}
	if err := c.Collect("a", 1); err != nil {
		t.Fatal(err)
	}
	if c.rows != 1 {
		t.Fatalf("%d rows, want 1 (failed rows must not be appended)", c.rows)
	}
}

func TestKeyDecode(t *testing.T) {
	t.Parallel()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	in := arrow.NewSchema([]arrow.Field{
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "i", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "f", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	}, nil)
	v := &jobgraph.Vertex{ID: "k", InputSchema: in}
	v.Inputs = []*jobgraph.Edge{{Partitioning: sabotv1.Partitioning_PARTITIONING_HASH, KeyIndices: []int{0, 1, 2, 3}}}
	sel, err := newKeySelector(v, TaskInfo{KeyGroupEnd: 127}, 128)
	if err != nil {
		t.Fatal(err)
	}
	rec := batch(t, mem, in, []any{"héllo", -42, math.Copysign(0, -1), true}, []any{nil, nil, 2.5, nil}, []any{"", 0, 0.0, false})
	defer rec.Release()
	if err := sel.prepare(rec); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"héllo,-42,0,true", "null,null,2.5,null", ",0,0,false"} {
		k := Key{b: sel.key(i), kinds: sel.kinds}
		if got := k.String(); got != want {
			t.Errorf("row %d: %q, want %q", i, got, want)
		}
	}
	k := Key{b: sel.key(0), kinds: sel.kinds}
	if string(k.BytesAt(0)) != "héllo" || k.Int64(1) != -42 || k.Float64(2) != 0 || !k.Bool(3) || k.IsNull(1) {
		t.Errorf("accessors: %q %d %v %v", k.BytesAt(0), k.Int64(1), k.Float64(2), k.Bool(3))
	}
	if k2 := (Key{b: sel.key(1), kinds: sel.kinds}); !k2.IsNull(0) || k2.IsNull(2) {
		t.Error("null flags")
	}
}

func TestPebbleStateDirRemoved(t *testing.T) {
	t.Parallel()
	h := alertHarness(t, sabotv1.StateBackend_STATE_BACKEND_PEBBLE, "0")
	ks := h.op.(*processOp).st
	if _, err := os.Stat(ks.dir); err != nil {
		t.Fatalf("state dir while open: %v", err)
	}
	if err := h.op.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ks.dir); !os.IsNotExist(err) {
		t.Fatalf("state dir after close: %v", err)
	}
}

// TestKeyedAggregateStateTTL: with state_ttl_ms (idle state retention) a
// key that saw no row for the TTL starts again from zero, while a key
// written within the TTL keeps counting; incremental cleanup removes the
// expired key's state without it ever being read again.
func TestKeyedAggregateStateTTL(t *testing.T) {
	t.Parallel()
	in := arrow.NewSchema([]arrow.Field{{Name: "k", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	aggs := []*sabotv1.Aggregation{agg("n", fnCount, "")}
	for _, b := range backends {
		t.Run(backendName(b), func(t *testing.T) {
			t.Parallel()
			op := aggOp(aggs...)
			op.GetKeyedAggregate().StateTtlMs = 1000
			h, err := newKeyedHarness(t, op, in, []int{0}, aggSchema(t, in, []int{0}, aggs...), harnessOpt{backend: b})
			if err != nil {
				t.Fatal(err)
			}
			h.mustProcess([]any{"a"}, []any{"b"}, []any{"gone"})
			h.expect("first", `{"k":"a","n":1}`, `{"k":"b","n":1}`, `{"k":"gone","n":1}`)
			h.clock.Advance(600 * time.Millisecond)
			h.mustProcess([]any{"a"})
			h.expect("a within the TTL", `{"k":"a","n":2}`)
			h.clock.Advance(600 * time.Millisecond) // b and gone: 1200 ms idle; a: 600 ms
			h.mustProcess([]any{"a"}, []any{"b"})
			h.expect("b expired, a kept", `{"k":"a","n":3}`, `{"k":"b","n":1}`)
			// "gone" is never read again: the cleanup steps run per batch
			// must have removed it.
			ag := h.op.(*aggregateOp)
			var keys []string
			err = ag.st.backend.IterateKeyGroups(ag.st.backend.KeyGroups(), func(e *state.Entry) error {
				keys = append(keys, string(e.Key))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if strings.Contains(k, "gone") {
					t.Fatalf("expired key still stored after cleanup: %q (all: %q)", k, keys)
				}
			}
		})
	}
}
