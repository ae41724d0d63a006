package runtime

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/jonboulle/clockwork"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/worker/state"
	"github.com/sabotdev/sabot/worker/window"
)

// The general window operator runs worker/window's engine (Flink's
// WindowOperator semantics: every assigner, trigger and evictor, allowed
// lateness with re-firing, session merging) over the rows of a window
// vertex. Each row becomes an element: its arrival sequence number (for
// first/last) and its input columns, encoded (encodeRow), so windows that
// keep their rows (evictors, window functions) store them in keyed state.
//
// Decisions where Flink leaves room:
//   - at the end of a bounded input every window fires, processing-time
//     windows too (Flink quiesces processing-time timers and would drop
//     them); nothing that arrived is lost;
//   - processing time is read from the worker's clock when a batch or
//     watermark arrives, and the task wakes the operator when its next
//     processing-time timer is due even if no input comes;
//   - a global window's result rows have null window_start and
//     window_end.

// WindowFunction is a full window function (Flink's ProcessWindowFunction)
// registered by name in Config.WindowFunctions: at each firing it gets the
// window's rows (after an evictor's EvictBefore) and emits rows of the
// window's declared output columns. A WindowFunction that also implements
// WindowAggregator aggregates incrementally instead of keeping rows
// (unless the window has an evictor).
type WindowFunction interface {
	// Open is called once; check the schemas here.
	Open(ctx *WindowContext) error
	// Process is called at each firing of a window of the current key.
	Process(ctx *WindowContext, rows []StoredRow, out *Collector) error
}

// WindowAggregator is a user aggregate function over window rows (Flink's
// AggregateFunction): an accumulator, encoded as bytes in keyed state, per
// key and window. Merge is required for session windows.
type WindowAggregator interface {
	WindowFunction
	CreateAccumulator() []byte
	Add(acc []byte, row StoredRow) ([]byte, error)
	Merge(acc, other []byte) ([]byte, error)
	// Result emits the window's result rows from the accumulator.
	Result(ctx *WindowContext, acc []byte, out *Collector) error
}

// WindowFunctionFactory creates a subtask's instance of a window function
// from the window's config.
type WindowFunctionFactory func(config map[string]string) (WindowFunction, error)

// WindowContext is what a window function sees at a firing.
type WindowContext struct {
	op   *generalWindowOp
	info window.Info
}

// InputSchema is the schema of the rows.
func (c *WindowContext) InputSchema() *arrow.Schema { return c.op.in }

// OutputSchema is the schema of the rows the Collector builds.
func (c *WindowContext) OutputSchema() *arrow.Schema { return c.op.schema }

// Key is the current key.
func (c *WindowContext) Key() Key { return Key{b: c.info.Key, kinds: c.op.keys.kinds} }

// Window is the window firing: [start, end) in ms (math.MinInt64 and
// math.MaxInt64 for the global window).
func (c *WindowContext) Window() (start, end int64) { return c.info.Window.Start, c.info.Window.End }

// Watermark is the operator's watermark at the firing.
func (c *WindowContext) Watermark() int64 { return c.info.Watermark }

// Count is the number of rows behind the result.
func (c *WindowContext) Count() int64 { return c.info.Count }

// Logger is the job's logger.
func (c *WindowContext) Logger() *slog.Logger { return c.op.logger }

// StoredRow is a row kept in window state: its columns' values decoded
// from state, by input column index. Getters return the zero value for
// null; strings and bytes are valid during the call only.
type StoredRow struct {
	vals []rowVal
}

// rowVal is one decoded column value.
type rowVal struct {
	tag byte // as encodeRow: 0 null, 1 int, 2 float, 3 bytes, 4 bool
	i   int64
	f   float64
	b   []byte
}

// NumColumns is the number of columns.
func (r StoredRow) NumColumns() int { return len(r.vals) }

// IsNull reports whether column col is null.
func (r StoredRow) IsNull(col int) bool { return r.vals[col].tag == 0 }

// Int64 returns an integer, timestamp (ms) or boolean column's value.
func (r StoredRow) Int64(col int) int64 { return r.vals[col].i }

// Float64 returns a numeric column's value as a float64.
func (r StoredRow) Float64(col int) float64 {
	if v := r.vals[col]; v.tag == 2 {
		return v.f
	}
	return float64(r.vals[col].i)
}

// Bytes returns a string or binary column's bytes.
func (r StoredRow) Bytes(col int) []byte { return r.vals[col].b }

// String returns a string column's value.
func (r StoredRow) String(col int) string { return string(r.vals[col].b) }

// Bool returns a boolean column's value.
func (r StoredRow) Bool(col int) bool { return r.vals[col].i != 0 }

// decodeVals decodes an encodeRow encoding into vals (reused).
func decodeVals(b []byte, vals []rowVal) ([]rowVal, error) {
	vals = vals[:0]
	bad := fmt.Errorf("%w: encoded row", state.ErrCorrupt)
	for len(b) > 0 {
		v := rowVal{tag: b[0]}
		b = b[1:]
		switch v.tag {
		case 0:
		case 1:
			x, w := binary.Varint(b)
			if w <= 0 {
				return vals, bad
			}
			v.i, b = x, b[w:]
		case 2:
			if len(b) < 8 {
				return vals, bad
			}
			v.f, b = math.Float64frombits(binary.BigEndian.Uint64(b)), b[8:]
		case 3:
			n, w := binary.Uvarint(b)
			if w <= 0 || uint64(len(b)-w) < n {
				return vals, bad
			}
			v.b, b = b[w:w+int(n)], b[w+int(n):]
		case 4:
			if len(b) < 1 {
				return vals, bad
			}
			v.i, b = int64(b[0]), b[1:]
		default:
			return vals, bad
		}
		vals = append(vals, v)
	}
	return vals, nil
}

// element is a window element: uvarint arrival sequence, then the row.
type element = []byte

func splitElement(e element) (seq int64, row []byte) {
	s, w := binary.Uvarint(e)
	if w <= 0 {
		return 0, nil
	}
	return int64(s), e[w:]
}

// generalWindowOp runs the window engine over a keyed input.
type generalWindowOp struct {
	spec   *sabotv1.WindowAggregate
	name   string
	mem    memory.Allocator
	logger *slog.Logger
	clock  clockwork.Clock
	in     *arrow.Schema
	schema *arrow.Schema
	keys   *keySelector
	st     *keyedState
	tsCol  int // -1 for processing time and global windows
	batch  int

	aggs   *waggs         // built-in aggregates, or nil
	fn     WindowFunction // user function, or nil
	agg    WindowAggregator
	engine *window.Operator[element, []wacc]
	ufn    *window.Operator[element, struct{}]
	wctx   WindowContext

	seq     int64
	buf     []byte
	vals    []rowVal
	res     windowResults // built-in aggregates' rows
	coll    *Collector    // user function's rows
	late    *Collector    // late rows
	lateTag string
	// err is the first failure inside an aggregate callback (which cannot
	// return one); the operator call that ran it returns it.
	err error
}

// fail records the first error of an aggregate callback.
func (g *generalWindowOp) fail(err error) {
	if g.err == nil {
		g.err = err
	}
}

func newGeneralWindowOp(spec *sabotv1.WindowAggregate, v *jobgraph.Vertex, info TaskInfo, e *env) (Operator, error) {
	keys, err := newKeySelector(v, info, e.maxParallelism)
	if err != nil {
		return nil, err
	}
	g := &generalWindowOp{
		spec: spec, name: v.ID, mem: e.mem, logger: e.logger, clock: e.clock, in: v.InputSchema, schema: v.Schema,
		keys: keys, st: newKeyedState(v, info, e), tsCol: -1, batch: e.batchSize, lateTag: spec.GetLateOutput(),
	}
	g.wctx.op = g
	_, global := spec.GetAssigner().(*sabotv1.WindowAggregate_Global)
	if jobgraph.EventTimeWindows(spec) && !global {
		if g.tsCol, err = jobgraph.WindowTimeColumn(v.InputSchema, spec.GetTimestampField()); err != nil {
			return nil, fmt.Errorf("window: %w", err)
		}
	}
	if name := spec.GetFunction(); name != "" {
		factory, ok := e.windowFunctions[name]
		if !ok {
			return nil, fmt.Errorf("runtime: window function %q is not registered on this worker", name)
		}
		if g.fn, err = factory(spec.GetConfig()); err != nil {
			return nil, fmt.Errorf("window function %q: %w", name, err)
		}
		g.agg, _ = g.fn.(WindowAggregator)
		g.coll = newCollector(e.mem, v.Schema, e.batchSize)
	} else {
		nk := len(keys.keys)
		if g.aggs, err = newWaggs(spec.GetAggregations(), v.InputSchema, v.Schema, nk); err != nil {
			return nil, err
		}
	}
	if g.lateTag != "" {
		g.late = newCollector(e.mem, v.InputSchema, e.batchSize)
	}
	return g, nil
}

// assigner builds the engine's assigner from the spec.
func (g *generalWindowOp) assigner() (window.Assigner[element], error) {
	d := window.EventTime
	if !jobgraph.EventTimeWindows(g.spec) {
		d = window.ProcessingTime
	}
	switch a := g.spec.GetAssigner().(type) {
	case *sabotv1.WindowAggregate_Tumbling:
		return window.Tumbling[element](d, a.Tumbling.GetSizeMs(), a.Tumbling.GetOffsetMs())
	case *sabotv1.WindowAggregate_Sliding:
		return window.Sliding[element](d, a.Sliding.GetSizeMs(), a.Sliding.GetSlideMs(), a.Sliding.GetOffsetMs())
	case *sabotv1.WindowAggregate_Cumulate:
		return window.Cumulate[element](d, a.Cumulate.GetStepMs(), a.Cumulate.GetMaxSizeMs(), a.Cumulate.GetOffsetMs())
	case *sabotv1.WindowAggregate_Session:
		if gf := a.Session.GetGapField(); gf != "" {
			col := g.in.FieldIndices(gf)[0]
			return window.DynamicSession[element](d, func(e element) int64 { return g.column(e, col).i })
		}
		return window.Session[element](d, a.Session.GetGapMs())
	case *sabotv1.WindowAggregate_Global:
		return window.Global[element](), nil
	default:
		return nil, fmt.Errorf("window: assigner %T is unknown to this worker", a)
	}
}

// column decodes column col of an element (a copy of the value; bytes
// alias e).
func (g *generalWindowOp) column(e element, col int) rowVal {
	_, row := splitElement(e)
	vals, err := decodeVals(row, g.vals)
	g.vals = vals
	if err != nil || col >= len(vals) {
		return rowVal{}
	}
	return vals[col]
}

func (g *generalWindowOp) trigger() (window.Trigger[element], error) {
	t := g.spec.GetTrigger()
	if t == nil {
		return nil, nil //nolint:nilnil // nil: the assigner's default trigger
	}
	var (
		tr  window.Trigger[element]
		err error
	)
	switch k := t.GetKind().(type) {
	case *sabotv1.WindowTrigger_EventTime:
		tr = window.EventTimeTrigger[element]()
	case *sabotv1.WindowTrigger_ProcessingTime:
		tr = window.ProcessingTimeTrigger[element]()
	case *sabotv1.WindowTrigger_Count:
		tr, err = window.CountTrigger[element](k.Count)
	case *sabotv1.WindowTrigger_ContinuousEventTimeMs:
		tr, err = window.ContinuousEventTimeTrigger[element](k.ContinuousEventTimeMs)
	default:
		return nil, fmt.Errorf("window: trigger %T is unknown to this worker", k)
	}
	if err != nil || !t.GetPurging() {
		return tr, err
	}
	return window.PurgingTrigger(tr)
}

func (g *generalWindowOp) evictor() (window.Evictor[element], error) {
	ev := g.spec.GetEvictor()
	if ev == nil {
		return nil, nil //nolint:nilnil // nil: no evictor
	}
	after := ev.GetEvictAfter()
	switch k := ev.GetKind().(type) {
	case *sabotv1.WindowEvictor_Count:
		return window.CountEvictor[element](int(k.Count), after)
	case *sabotv1.WindowEvictor_TimeMs:
		return window.TimeEvictor[element](k.TimeMs, after)
	case *sabotv1.WindowEvictor_Delta:
		col := g.in.FieldIndices(k.Delta.GetField())[0]
		num := func(e element) float64 {
			v := g.column(e, col)
			if v.tag == 2 {
				return v.f
			}
			return float64(v.i)
		}
		return window.DeltaEvictor[element](k.Delta.GetThreshold(), func(a, b element) float64 { return math.Abs(num(a) - num(b)) }, after)
	default:
		return nil, fmt.Errorf("window: evictor %T is unknown to this worker", k)
	}
}

func (g *generalWindowOp) Open(ctx context.Context) error {
	if err := g.st.open(ctx); err != nil {
		return err
	}
	asg, err := g.assigner()
	if err != nil {
		return err
	}
	tr, err := g.trigger()
	if err != nil {
		return err
	}
	ev, err := g.evictor()
	if err != nil {
		return err
	}
	late := g.onLate
	if g.lateTag == "" {
		late = nil
	}
	if g.fn != nil {
		if err := g.fn.Open(&g.wctx); err != nil {
			return fmt.Errorf("window function %q: open: %w", g.spec.GetFunction(), err)
		}
		g.ufn, err = window.New(g.st.keyed, window.Config[element, struct{}]{
			Name: "window", Assigner: asg, Trigger: tr, Evictor: ev, AllowedLateness: g.spec.GetAllowedLatenessMs(),
			Function: g.userFunction(), Codec: state.BytesCodec{},
			Emit: func([]byte, window.Window, struct{}) error { return nil },
			Late: late,
		})
		return err
	}
	g.res = windowResults{mem: g.mem, schema: g.schema, kinds: g.keys.kinds, aggs: g.aggs, batch: g.batch}
	g.res.open()
	g.engine, err = window.New(g.st.keyed, window.Config[element, []wacc]{
		Name: "window", Assigner: asg, Trigger: tr, Evictor: ev, AllowedLateness: g.spec.GetAllowedLatenessMs(),
		Function: window.Aggregate(g.builtinAggregate()), Codec: state.BytesCodec{},
		Emit: g.emitAggregate,
		Late: late,
	})
	return err
}

// builtinAggregate is the built-in aggregations as the engine's aggregate
// function over elements.
func (g *generalWindowOp) builtinAggregate() window.AggregateFunction[element, []wacc, []wacc] {
	n := len(g.aggs.specs)
	codec := &freshWaccCodec{n: n}
	return window.AggregateFunction[element, []wacc, []wacc]{
		Create: func() []wacc { return make([]wacc, n) },
		Add: func(acc []wacc, e element) []wacc {
			seq, row := splitElement(e)
			vals, err := decodeVals(row, g.vals)
			g.vals = vals
			if err != nil {
				g.fail(err)
				return acc
			}
			g.aggs.addVals(acc, vals, seq)
			return acc
		},
		Merge:  func(a, b []wacc) []wacc { g.aggs.merge(a, b); return a },
		Result: func(acc []wacc) []wacc { return acc },
		Codec:  codec,
	}
}

// userFunction adapts the registered window function to the engine.
func (g *generalWindowOp) userFunction() window.Function[element, struct{}] {
	process := func(info window.Info, in []element, _ func(struct{}) error) error {
		g.wctx.info = info
		rows := make([]StoredRow, 0, len(in))
		for _, e := range in {
			_, row := splitElement(e)
			vals, err := decodeVals(row, nil)
			if err != nil {
				return err
			}
			rows = append(rows, StoredRow{vals: vals})
		}
		if err := g.fn.Process(&g.wctx, rows, g.coll); err != nil {
			return fmt.Errorf("window function %q: %w", g.spec.GetFunction(), err)
		}
		return g.flushIfFull()
	}
	if g.agg == nil || g.spec.GetEvictor() != nil {
		return window.Process[element, struct{}](process)
	}
	agg := window.AggregateFunction[element, []byte, []byte]{
		Create: g.agg.CreateAccumulator,
		Add: func(acc []byte, e element) []byte {
			_, row := splitElement(e)
			vals, err := decodeVals(row, g.vals)
			g.vals = vals
			if err != nil {
				g.fail(err)
				return acc
			}
			out, err := g.agg.Add(acc, StoredRow{vals: vals})
			if err != nil {
				g.fail(fmt.Errorf("window function %q: add: %w", g.spec.GetFunction(), err))
				return acc
			}
			return out
		},
		Merge: func(a, b []byte) []byte {
			out, err := g.agg.Merge(a, b)
			if err != nil {
				g.fail(fmt.Errorf("window function %q: merge: %w", g.spec.GetFunction(), err))
				return a
			}
			return out
		},
		Result: func(acc []byte) []byte { return acc },
		Codec:  state.BytesCodec{},
	}
	return window.AggregateProcess(agg, func(info window.Info, in [][]byte, _ func(struct{}) error) error {
		g.wctx.info = info
		if err := g.agg.Result(&g.wctx, in[0], g.coll); err != nil {
			return fmt.Errorf("window function %q: %w", g.spec.GetFunction(), err)
		}
		return g.flushIfFull()
	})
}

func (g *generalWindowOp) flushIfFull() error {
	if g.coll.rows >= g.batch {
		return g.coll.flush()
	}
	return nil
}

// emitAggregate appends a built-in aggregate result row.
func (g *generalWindowOp) emitAggregate(key []byte, w window.Window, accs []wacc) error {
	return g.res.append(key, accs, w.Start, w.End, w != window.GlobalWindow())
}

// onLate stages a late row for the late output.
func (g *generalWindowOp) onLate(_ []byte, _ int64, e element) error {
	_, row := splitElement(e)
	if err := decodeRow(row, g.late); err != nil {
		return err
	}
	if err := g.late.Emit(); err != nil {
		return err
	}
	return nil
}

func (g *generalWindowOp) bind(ctx context.Context, out Output) {
	g.res.bind(ctx, out)
	if g.coll != nil {
		g.coll.bind(ctx, out)
	}
	if g.late != nil {
		g.late.bind(ctx, SideOutputOf(out, g.lateTag))
	}
}

func (g *generalWindowOp) unbind() {
	g.res.unbind()
	if g.coll != nil {
		g.coll.unbind()
	}
	if g.late != nil {
		g.late.unbind()
	}
}

// flush sends what the call produced: results, then late rows.
func (g *generalWindowOp) flush() error {
	if err := g.res.flush(); err != nil {
		return err
	}
	if g.coll != nil {
		if err := g.coll.flush(); err != nil {
			return err
		}
	}
	if g.late != nil {
		return g.late.flush()
	}
	return nil
}

func (g *generalWindowOp) processElement(ts int64, e element) error {
	var err error
	if g.engine != nil {
		err = g.engine.ProcessElement(ts, e)
	} else {
		err = g.ufn.ProcessElement(ts, e)
	}
	return errors.Join(err, g.err)
}

func (g *generalWindowOp) advanceWatermark(wm int64) error {
	var err error
	if g.engine != nil {
		err = g.engine.AdvanceWatermark(wm)
	} else {
		err = g.ufn.AdvanceWatermark(wm)
	}
	return errors.Join(err, g.err)
}

func (g *generalWindowOp) advanceProcessingTime(now int64) error {
	var err error
	if g.engine != nil {
		err = g.engine.AdvanceProcessingTime(now)
	} else {
		err = g.ufn.AdvanceProcessingTime(now)
	}
	return errors.Join(err, g.err)
}

func (g *generalWindowOp) ProcessBatch(ctx context.Context, rec arrow.RecordBatch, out Output) error {
	g.bind(ctx, out)
	defer g.unbind()
	if err := g.advanceProcessingTime(nowMillis(g.clock)); err != nil {
		return err
	}
	if err := g.keys.prepare(rec); err != nil {
		return err
	}
	all := make([]int, rec.NumCols())
	for i := range all {
		all[i] = i
	}
	var tsCol arrow.Array
	if g.tsCol >= 0 {
		tsCol = rec.Column(g.tsCol)
	}
	for i := range int(rec.NumRows()) {
		var ts int64
		if tsCol != nil {
			if tsCol.IsNull(i) {
				return fmt.Errorf("window: row %d has a null event time in column %q; event-time windows need a time for every row (filter such rows out first)",
					i, rec.ColumnName(g.tsCol))
			}
			ts = timeValue(tsCol, i)
		}
		if err := g.st.keyed.SetCurrentKey(g.keys.key(i), g.keys.group(i)); err != nil {
			return err
		}
		g.buf = binary.AppendUvarint(g.buf[:0], uint64(g.seq))
		g.seq++
		g.buf = encodeRow(g.buf, Row{rec: rec, i: i}, all)
		if err := g.processElement(ts, slices.Clip(g.buf)); err != nil {
			return err
		}
	}
	return g.flush()
}

func (g *generalWindowOp) ProcessWatermark(ctx context.Context, wm int64, out Output) error {
	g.bind(ctx, out)
	defer g.unbind()
	if err := g.advanceProcessingTime(nowMillis(g.clock)); err != nil {
		return err
	}
	if err := g.advanceWatermark(wm); err != nil {
		return err
	}
	return g.flush()
}

// NextProcessingTime implements processingTimer.
func (g *generalWindowOp) NextProcessingTime() (int64, bool) {
	if g.engine != nil {
		return g.engine.NextProcessingTime()
	}
	return g.ufn.NextProcessingTime()
}

// OnProcessingTime implements processingTimer.
func (g *generalWindowOp) OnProcessingTime(ctx context.Context, out Output) error {
	g.bind(ctx, out)
	defer g.unbind()
	if err := g.advanceProcessingTime(nowMillis(g.clock)); err != nil {
		return err
	}
	return g.flush()
}

func (g *generalWindowOp) Finish(ctx context.Context, out Output) error {
	g.bind(ctx, out)
	defer g.unbind()
	if err := g.advanceWatermark(MaxWatermark); err != nil {
		return err
	}
	if err := g.advanceProcessingTime(math.MaxInt64); err != nil {
		return err
	}
	return g.flush()
}

func (g *generalWindowOp) Close() error {
	g.res.release()
	if g.coll != nil {
		g.coll.release()
	}
	if g.late != nil {
		g.late.release()
	}
	if g.engine != nil && g.engine.LateRecordsDropped() > 0 {
		g.logger.Info("runtime: window dropped late rows", "vertex", g.name, "rows", g.engine.LateRecordsDropped())
	}
	return g.st.close()
}

// freshWaccCodec is waccCodec decoding into a new slice each time: the
// engine may hold two decoded accumulators at once (merging windows).
type freshWaccCodec struct{ n int }

func (c *freshWaccCodec) Append(dst []byte, v []wacc) ([]byte, error) {
	return (&waccCodec{n: c.n}).Append(dst, v)
}

func (c *freshWaccCodec) Decode(src []byte) ([]wacc, error) {
	accs := make([]wacc, c.n)
	return accs, (&waccCodec{n: c.n}).decodeInto(accs, src)
}

func (g *generalWindowOp) keyedStateOf() *keyedState { return g.st }
