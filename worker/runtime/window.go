package runtime

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/worker/state"
)

// Window operators. A window vertex runs one of three implementations:
//
//   - paneOp, for the common case: event-time tumbling, sliding or
//     cumulating windows with the default trigger, no evictor, no allowed
//     lateness and built-in aggregates. It shares panes: each row is
//     aggregated once, into the pane (the greatest common slice of the
//     windows: the slide of a sliding window whose size is a multiple of
//     it, the step of a cumulating window, the size of a tumbling one),
//     and a window's result is the merge of its panes when it fires. A
//     row of a 10 s window sliding by 2 s is added once, not five times
//     as in Flink's WindowOperator.
//   - sessionOp (window_session.go), for event-time session windows
//     under the same conditions: per key one state value holding the
//     open sessions and one lazily moved timer.
//   - the general window operator (window_general.go) for everything
//     else: global windows, processing time, custom and non-default
//     triggers, evictors, allowed lateness, window functions.
//
// All emit the same rows for the same input: key columns, aggregates,
// window_start, window_end, one row per key and window firing, in the
// order the windows fire (by window end, then key group and key).

// newWindowOp builds the operator of a window vertex.
func newWindowOp(spec *sabotv1.WindowAggregate, v *jobgraph.Vertex, info TaskInfo, e *env) (Operator, error) {
	switch {
	case e.noPanes:
		// Tests compare the fast operators with the general one.
	case paneEligible(spec):
		return newPaneOp(spec, v, info, e)
	case sessionEligible(spec):
		return newSessionOp(spec, v, info, e)
	}
	return newGeneralWindowOp(spec, v, info, e)
}

// paneEligible reports whether spec can run on paneOp.
func paneEligible(spec *sabotv1.WindowAggregate) bool {
	if !jobgraph.EventTimeWindows(spec) || spec.GetEvictor() != nil || spec.GetAllowedLatenessMs() != 0 ||
		spec.GetFunction() != "" || len(spec.GetAggregations()) == 0 {
		return false
	}
	if t := spec.GetTrigger(); t != nil && (!t.GetEventTime() || t.GetPurging()) {
		return false
	}
	switch a := spec.GetAssigner().(type) {
	case *sabotv1.WindowAggregate_Tumbling, *sabotv1.WindowAggregate_Cumulate:
		return true
	case *sabotv1.WindowAggregate_Sliding:
		// Panes need windows made of whole panes: the pane is
		// gcd(size, slide), at most a few dozen panes per window.
		g := gcd(a.Sliding.GetSizeMs(), a.Sliding.GetSlideMs())
		return a.Sliding.GetSizeMs()/g <= 64
	default:
		return false
	}
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// floorMod is x mod m in [0, m) for m > 0.
func floorMod(x, m int64) int64 {
	r := x % m
	if r < 0 {
		r += m
	}
	return r
}

// paneLayout is the pane arithmetic of one assigner. All times are ms;
// windows are [start, end), a window or pane is named by its end.
type paneLayout struct {
	kind   paneKind
	size   int64 // window size (cumulate: max size)
	slide  int64 // distance between window ends (cumulate: step)
	pane   int64
	offset int64
}

type paneKind uint8

const (
	paneTumbling paneKind = iota + 1
	paneSliding
	paneCumulate
)

func newPaneLayout(spec *sabotv1.WindowAggregate) paneLayout {
	switch a := spec.GetAssigner().(type) {
	case *sabotv1.WindowAggregate_Tumbling:
		s := a.Tumbling.GetSizeMs()
		return paneLayout{kind: paneTumbling, size: s, slide: s, pane: s, offset: a.Tumbling.GetOffsetMs()}
	case *sabotv1.WindowAggregate_Sliding:
		sz, sl := a.Sliding.GetSizeMs(), a.Sliding.GetSlideMs()
		return paneLayout{kind: paneSliding, size: sz, slide: sl, pane: gcd(sz, sl), offset: a.Sliding.GetOffsetMs()}
	default:
		c := spec.GetCumulate()
		return paneLayout{kind: paneCumulate, size: c.GetMaxSizeMs(), slide: c.GetStepMs(), pane: c.GetStepMs(), offset: c.GetOffsetMs()}
	}
}

// paneEnd is the end of the pane holding ts.
func (l paneLayout) paneEnd(ts int64) int64 {
	return ts - floorMod(ts-l.offset, l.pane) + l.pane
}

// endPhase is where window ends sit: ends are ≡ endPhase (mod slide).
// Sliding and tumbling windows start at offset + k·slide, so they end at
// offset + size + k·slide; cumulating windows end at their max window's
// start + k·step, ≡ offset (mod step) as the max size is a multiple of
// the step.
func (l paneLayout) endPhase() int64 {
	if l.kind == paneCumulate {
		return l.offset
	}
	return l.offset + l.size
}

// firstEnd is the smallest window end ≥ pe (for a pane end pe: the end of
// the first window containing the pane).
func (l paneLayout) firstEnd(pe int64) int64 {
	return pe + floorMod(l.endPhase()-pe, l.slide)
}

// lastEnd is the end of the last window containing the pane ending at pe.
func (l paneLayout) lastEnd(pe int64) int64 {
	switch l.kind {
	case paneSliding:
		// Windows [E-size, E) with E ≥ pe and E-size ≤ pe-pane.
		last := pe - l.pane + l.size
		return last - floorMod(last-l.endPhase(), l.slide)
	case paneCumulate:
		return l.maxStart(pe-1) + l.size
	default:
		return pe
	}
}

// maxStart is the start of the cumulating max-size window holding ts.
func (l paneLayout) maxStart(ts int64) int64 { return ts - floorMod(ts-l.offset, l.size) }

// start is the start of the window ending at end.
func (l paneLayout) start(end int64) int64 {
	if l.kind == paneCumulate {
		return l.maxStart(end - 1)
	}
	return end - l.size
}

// nextEnd is the end of the window after the one ending at end that still
// shares panes with it, or false when none does.
func (l paneLayout) nextEnd(end int64) (int64, bool) {
	switch l.kind {
	case paneSliding:
		return end + l.slide, l.slide < l.size
	case paneCumulate:
		return end + l.slide, end < l.maxStart(end-1)+l.size
	default:
		return 0, false
	}
}

// paneNamespace encodes a pane end as keyed-state namespace bytes (order
// preserving).
func paneNamespace(dst []byte, end int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(end)^(1<<63))
}

// paneTimers is the timer service name of window operators.
const paneTimers = "window"

// paneOp is the pane-sharing window operator (see the top of this file).
//
// State, per key: one accumulator set per pane, state "pane", namespace =
// pane end; one event-time timer per key at the max timestamp (end - 1)
// of the next window to fire. Per input batch, rows are grouped by (key,
// pane) and each group's rows are folded into the pane's accumulators
// with one state read and write. A row all of whose windows have fired
// (the last window's end - 1 ≤ watermark) is late: it goes to the
// late_output side output or is dropped and counted. A row whose first
// windows have fired but not its last joins only the later ones (as
// Flink skips late windows).
//
// When the timer of window [s, e) fires, the panes ending in (s, e] are
// merged and one row is emitted if any had rows; panes no later window
// needs are cleared; if the next window shares panes with this one and
// any had rows, a timer for it is registered. So state holds only panes
// of windows that have not fired, and is empty once the watermark passed
// every window (measured by the tests).
type paneOp struct {
	spec    *sabotv1.WindowAggregate
	layout  paneLayout
	mem     memory.Allocator
	logger  *slog.Logger
	schema  *arrow.Schema
	keys    *keySelector
	st      *keyedState
	tsCol   int
	aggs    *waggs
	codec   *waccCodec
	pane    *state.ValueState[[]wacc]
	timers  *state.TimerService
	lateTag string
	batch   int

	wm      int64
	seq     int64 // arrival sequence of rows (first/last)
	dropped int64 // late rows without a late output

	// per batch, reused
	groups map[string]int32
	gkey   []byte
	first  []int32
	last   []int32
	next   []int32
	ends   []int64 // per group: pane end
	late   []int32
	fresh  []wacc
	merged []wacc
	nsBuf  []byte

	res    windowResults
	onFire func(state.Timer) error
}

func newPaneOp(spec *sabotv1.WindowAggregate, v *jobgraph.Vertex, info TaskInfo, e *env) (*paneOp, error) {
	keys, err := newKeySelector(v, info, e.maxParallelism)
	if err != nil {
		return nil, err
	}
	tsCol, err := jobgraph.WindowTimeColumn(v.InputSchema, spec.GetTimestampField())
	if err != nil {
		return nil, fmt.Errorf("window: %w", err)
	}
	nk := len(keys.keys)
	if v.Schema.NumFields() != nk+len(spec.GetAggregations())+2 {
		return nil, fmt.Errorf("window: resolved schema has %d columns, want %d keys, %d aggregations and the window bounds",
			v.Schema.NumFields(), nk, len(spec.GetAggregations()))
	}
	aggs, err := newWaggs(spec.GetAggregations(), v.InputSchema, v.Schema, nk)
	if err != nil {
		return nil, err
	}
	p := &paneOp{
		spec: spec, layout: newPaneLayout(spec), mem: e.mem, logger: e.logger, schema: v.Schema,
		keys: keys, st: newKeyedState(v, info, e), tsCol: tsCol, aggs: aggs,
		codec: &waccCodec{n: len(aggs.specs)}, lateTag: spec.GetLateOutput(), batch: e.batchSize,
		wm: MinWatermark, groups: make(map[string]int32),
		fresh: make([]wacc, len(aggs.specs)), merged: make([]wacc, len(aggs.specs)),
	}
	p.res = windowResults{mem: e.mem, schema: v.Schema, kinds: keys.kinds, aggs: aggs, batch: e.batchSize}
	p.onFire = p.fire
	return p, nil
}

func (p *paneOp) Open(ctx context.Context) error {
	if err := p.st.open(ctx); err != nil {
		return err
	}
	var err error
	if p.pane, err = state.Value(p.st.keyed, state.ValueDescriptor[[]wacc]{Name: "pane", Codec: p.codec}); err != nil {
		return err
	}
	if p.timers, err = p.st.keyed.TimerService(paneTimers); err != nil {
		return err
	}
	p.res.open()
	return nil
}

func (p *paneOp) Close() error {
	p.res.release()
	if p.dropped > 0 {
		p.logger.Info("runtime: window dropped late rows", "rows", p.dropped)
	}
	return p.st.close()
}

func (p *paneOp) ProcessBatch(ctx context.Context, rec arrow.RecordBatch, out Output) error {
	n := int(rec.NumRows())
	if n == 0 {
		return nil
	}
	if err := p.keys.prepare(rec); err != nil {
		return err
	}
	if err := p.group(rec); err != nil {
		return err
	}
	for g, r0 := range p.first {
		if err := p.st.keyed.SetCurrentKey(p.keys.key(int(r0)), p.keys.group(int(r0))); err != nil {
			return err
		}
		pe := p.ends[g]
		p.nsBuf = paneNamespace(p.nsBuf[:0], pe)
		p.st.keyed.SetCurrentNamespace(p.nsBuf)
		accs, ok, err := p.pane.Value()
		if err != nil {
			return err
		}
		if !ok {
			p.aggs.reset(p.fresh)
			accs = p.fresh
		}
		for r := r0; r >= 0; r = p.next[r] {
			p.aggs.add(accs, rec, int(r), p.seq+int64(r))
		}
		if err := p.pane.Update(accs); err != nil {
			return err
		}
		// The first window of the pane that has not fired yet: the
		// smallest window end ≥ the pane's first one with end - 1 > wm
		// (window ends are on the grid offset + k·slide).
		end := p.layout.firstEnd(pe)
		if end-1 <= p.wm {
			end = p.layout.firstEnd(p.wm + 2)
		}
		p.st.keyed.SetCurrentNamespace(nil)
		if err := p.timers.RegisterEventTimeTimer(end - 1); err != nil {
			return err
		}
	}
	p.seq += int64(n)
	return p.emitLate(ctx, rec, out)
}

// group builds the (key, pane) groups of the prepared batch, setting late
// rows aside.
func (p *paneOp) group(rec arrow.RecordBatch) error {
	clear(p.groups)
	p.first, p.last, p.ends, p.late = p.first[:0], p.last[:0], p.ends[:0], p.late[:0]
	n := int(rec.NumRows())
	if cap(p.next) < n {
		p.next = make([]int32, n)
	}
	p.next = p.next[:n]
	col := rec.Column(p.tsCol)
	for i := range n {
		p.next[i] = -1
		if col.IsNull(i) {
			return fmt.Errorf("window: row %d has a null event time in column %q; event-time windows need a time for every row (filter such rows out first)",
				i, rec.ColumnName(p.tsCol))
		}
		ts := timeValue(col, i)
		pe := p.layout.paneEnd(ts)
		last := p.layout.lastEnd(pe)
		if last < p.layout.firstEnd(pe) {
			// Between the windows of a slide larger than the size: in
			// none. As Flink, such a row is late if the watermark passed
			// it, and otherwise dropped.
			if ts <= p.wm {
				p.late = append(p.late, int32(i))
			}
			continue
		}
		if last-1 <= p.wm {
			p.late = append(p.late, int32(i))
			continue
		}
		p.gkey = binary.BigEndian.AppendUint64(append(p.gkey[:0], p.keys.key(i)...), uint64(pe))
		if g, ok := p.groups[string(p.gkey)]; ok {
			p.next[p.last[g]] = int32(i)
			p.last[g] = int32(i)
			continue
		}
		p.groups[string(p.gkey)] = int32(len(p.first))
		p.first = append(p.first, int32(i))
		p.last = append(p.last, int32(i))
		p.ends = append(p.ends, pe)
	}
	return nil
}

// timeValue reads an event-time column (a timestamp in any unit, or an
// int64 of ms) as ms.
func timeValue(col arrow.Array, i int) int64 {
	if ts, ok := col.(*array.Timestamp); ok {
		return toMillis(int64(ts.Value(i)), ts.DataType().(*arrow.TimestampType).Unit)
	}
	return intValue(col, i)
}

// emitLate sends the batch's late rows to the late output, or counts them
// dropped.
func (p *paneOp) emitLate(ctx context.Context, rec arrow.RecordBatch, out Output) error {
	if len(p.late) == 0 {
		return nil
	}
	if p.lateTag == "" {
		p.dropped += int64(len(p.late))
		return nil
	}
	return emitRows(ctx, p.mem, rec, p.late, SideOutputOf(out, p.lateTag))
}

// emitRows emits the rows of rec at the given indices.
func emitRows(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch, rows []int32, out Output) error {
	cols := make([]arrow.Array, rec.NumCols())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for c := range cols {
		col, err := takeArray(ctx, mem, rec.Column(c), rows)
		if err != nil {
			return err
		}
		cols[c] = col
	}
	res := array.NewRecordBatch(rec.Schema(), cols, int64(len(rows)))
	defer res.Release()
	return out.Emit(ctx, res)
}

func (p *paneOp) ProcessWatermark(ctx context.Context, wm int64, out Output) error {
	return p.advance(ctx, wm, out)
}

// Finish fires every remaining window: the final watermark of a bounded
// input.
func (p *paneOp) Finish(ctx context.Context, out Output) error {
	return p.advance(ctx, MaxWatermark, out)
}

func (p *paneOp) advance(ctx context.Context, wm int64, out Output) error {
	if wm <= p.wm {
		return nil
	}
	p.wm = wm
	p.res.bind(ctx, out)
	defer p.res.unbind()
	if err := p.timers.AdvanceWatermark(wm, p.onFire); err != nil {
		return err
	}
	return p.res.flush()
}

// fire emits the window whose max timestamp is t.Timestamp for t's key.
func (p *paneOp) fire(t state.Timer) error {
	end := t.Timestamp + 1
	start := p.layout.start(end)
	p.aggs.reset(p.merged)
	found := false
	nextEnd, hasNext := p.layout.nextEnd(end)
	keep := false // a pane the next window needs had rows
	for pe := start + p.layout.pane; pe <= end; pe += p.layout.pane {
		p.nsBuf = paneNamespace(p.nsBuf[:0], pe)
		p.st.keyed.SetCurrentNamespace(p.nsBuf)
		accs, ok, err := p.pane.Value()
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		found = true
		p.aggs.merge(p.merged, accs)
		if hasNext && p.layout.start(nextEnd) < pe-p.layout.pane+1 {
			keep = true
			continue
		}
		if err := p.pane.Clear(); err != nil {
			return err
		}
	}
	p.st.keyed.SetCurrentNamespace(nil)
	if keep {
		if err := p.timers.RegisterEventTimeTimer(nextEnd - 1); err != nil {
			return err
		}
	}
	if !found {
		return nil
	}
	return p.res.append(t.Key, p.merged, start, end, true)
}

// buildBatch makes a batch of the builders' rows, resetting the builders.
func buildBatch(schema *arrow.Schema, bs []array.Builder, rows int) arrow.RecordBatch {
	cols := make([]arrow.Array, len(bs))
	for i, b := range bs {
		cols[i] = b.NewArray()
	}
	rec := array.NewRecordBatch(schema, cols, int64(rows))
	for _, c := range cols {
		c.Release()
	}
	return rec
}

// appendKeyColumn appends key column i of k to b, a builder of the key
// column's type.
func appendKeyColumn(b array.Builder, k Key, i int) error {
	if k.IsNull(i) {
		b.AppendNull()
		return nil
	}
	switch bb := b.(type) {
	case *array.Int64Builder:
		bb.Append(k.Int64(i))
	case *array.Int32Builder:
		bb.Append(int32(k.Int64(i)))
	case *array.Int16Builder:
		bb.Append(int16(k.Int64(i)))
	case *array.Int8Builder:
		bb.Append(int8(k.Int64(i)))
	case *array.Uint64Builder:
		bb.Append(uint64(k.Int64(i)))
	case *array.Uint32Builder:
		bb.Append(uint32(k.Int64(i)))
	case *array.Uint16Builder:
		bb.Append(uint16(k.Int64(i)))
	case *array.Uint8Builder:
		bb.Append(uint8(k.Int64(i)))
	case *array.TimestampBuilder:
		bb.Append(arrow.Timestamp(k.Int64(i)))
	case *array.Date32Builder:
		bb.Append(arrow.Date32(k.Int64(i)))
	case *array.Date64Builder:
		bb.Append(arrow.Date64(k.Int64(i)))
	case *array.Float64Builder:
		bb.Append(k.Float64(i))
	case *array.Float32Builder:
		bb.Append(float32(k.Float64(i)))
	case *array.BooleanBuilder:
		bb.Append(k.Bool(i))
	case *array.StringBuilder:
		bb.BinaryBuilder.Append(k.BytesAt(i))
	case *array.LargeStringBuilder:
		bb.BinaryBuilder.Append(k.BytesAt(i))
	case *array.BinaryBuilder:
		bb.Append(k.BytesAt(i))
	default:
		return fmt.Errorf("runtime: window: cannot output a key column of type %s", b.Type())
	}
	return nil
}

func (p *paneOp) keyedStateOf() *keyedState { return p.st }
