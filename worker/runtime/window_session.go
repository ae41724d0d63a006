package runtime

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/worker/state"
	"github.com/sabotdev/sabot/worker/window"
)

// sessionEligible reports whether spec can run on sessionOp: event-time
// session windows (a fixed gap > 0 or a gap column) with the default
// trigger or a non-purging event-time one, no evictor, no allowed
// lateness and built-in aggregates.
func sessionEligible(spec *sabotv1.WindowAggregate) bool {
	if !jobgraph.EventTimeWindows(spec) || spec.GetEvictor() != nil || spec.GetAllowedLatenessMs() != 0 ||
		spec.GetFunction() != "" || len(spec.GetAggregations()) == 0 {
		return false
	}
	if t := spec.GetTrigger(); t != nil && (!t.GetEventTime() || t.GetPurging()) {
		return false
	}
	s := spec.GetSession()
	if s == nil {
		return false
	}
	// A fixed gap ≤ 0 is a configuration error the general operator
	// reports when it opens.
	return s.GetGapField() != "" || s.GetGapMs() > 0
}

// sessionOp is the window operator for event-time session windows with
// built-in aggregates (see sessionEligible). It computes what Flink's
// WindowOperator with a MergingWindowSet computes — each row makes a
// window [ts, ts+gap); windows that intersect, touching included, merge
// into their cover; a session fires when the watermark reaches its
// end - 1 — with far less state traffic: the general operator deletes
// and re-registers a timer and rewrites the merging-window-set state for
// every row that extends a session.
//
// State, per key: one value, state "sessions", holding the key's open
// sessions sorted by start (disjoint and not touching: touching ones have
// merged), each with its start, end and accumulators, and the timestamp
// of the key's one event-time timer. Per input batch, rows are grouped by
// key; each group costs one state read and, if a row was taken, one
// write. The group's rows are merged into the session list one by one in
// arrival order, as the general operator takes them, which matters for
// late rows only: a row is late if its window intersects no open session
// and its own end - 1 ≤ watermark (a window merged with an open session
// ends after the watermark, as the open session does). A late row goes to
// the late_output side output or is dropped and counted; it never forms
// or bridges a session, so a later row of the same batch cannot merge
// with it.
//
// Timers are lazy. The invariant is that the key's timer is at or before
// the earliest session's end - 1. A row that extends a session leaves the
// timer alone; only a row that opens a session ending earlier than the
// timer moves it (delete and register). When the timer fires, the
// sessions with end - 1 ≤ its timestamp are emitted and removed; if
// sessions remain, the timer is registered again at the earliest end - 1
// (if that is at or before the watermark, it fires in the same advance,
// in its turn), else the state is cleared. A session that grows while
// the watermark trails it thus costs one timer firing per time the
// watermark catches up with its end, not timer operations per row, and
// every session is still emitted at the first watermark ≥ its end - 1, in
// the order of window end, then key group and key, as the other window
// operators. State is empty once every session fired (measured by the
// tests).
type sessionOp struct {
	spec    *sabotv1.WindowAggregate
	gap     int64 // fixed gap in ms; unused with a gap column
	gapCol  int   // input column of the dynamic gap, or -1
	mem     memory.Allocator
	logger  *slog.Logger
	schema  *arrow.Schema
	keys    *keySelector
	st      *keyedState
	tsCol   int
	aggs    *waggs
	codec   *sessionCodec
	state   *state.ValueState[*sessionSet]
	timers  *state.TimerService
	lateTag string
	batch   int

	wm      int64
	seq     int64 // arrival sequence of rows (first/last)
	dropped int64 // late rows without a late output

	// per batch, reused
	groups map[string]int32
	first  []int32 // per group: its first row
	last   []int32 // per group: its last row
	next   []int32 // per row: the next row of its group, or -1
	starts []int64 // per row: its window [start, end)
	ends   []int64
	late   []int32

	res    windowResults
	onFire func(state.Timer) error
}

func newSessionOp(spec *sabotv1.WindowAggregate, v *jobgraph.Vertex, info TaskInfo, e *env) (*sessionOp, error) {
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
	s := &sessionOp{
		spec: spec, gap: spec.GetSession().GetGapMs(), gapCol: -1, mem: e.mem, logger: e.logger, schema: v.Schema,
		keys: keys, st: newKeyedState(v, info, e), tsCol: tsCol, aggs: aggs,
		codec: newSessionCodec(len(aggs.specs)), lateTag: spec.GetLateOutput(), batch: e.batchSize,
		wm: MinWatermark, groups: make(map[string]int32),
	}
	if gf := spec.GetSession().GetGapField(); gf != "" {
		idx := v.InputSchema.FieldIndices(gf)
		if len(idx) == 0 || v.InputSchema.Field(idx[0]).Type.ID() != arrow.INT64 {
			return nil, fmt.Errorf("window: session gap_field %q must be an int64 input column", gf)
		}
		s.gapCol = idx[0]
	}
	s.res = windowResults{mem: e.mem, schema: v.Schema, kinds: keys.kinds, aggs: aggs, batch: e.batchSize}
	s.onFire = s.fire
	return s, nil
}

func (s *sessionOp) Open(ctx context.Context) error {
	if err := s.st.open(ctx); err != nil {
		return err
	}
	var err error
	if s.state, err = state.Value(s.st.keyed, state.ValueDescriptor[*sessionSet]{Name: "sessions", Codec: s.codec}); err != nil {
		return err
	}
	if s.timers, err = s.st.keyed.TimerService(paneTimers); err != nil {
		return err
	}
	s.res.open()
	return nil
}

func (s *sessionOp) Close() error {
	s.res.release()
	if s.dropped > 0 {
		s.logger.Info("runtime: window dropped late rows", "rows", s.dropped)
	}
	return s.st.close()
}

func (s *sessionOp) ProcessBatch(ctx context.Context, rec arrow.RecordBatch, out Output) error {
	n := int(rec.NumRows())
	if n == 0 {
		return nil
	}
	if err := s.keys.prepare(rec); err != nil {
		return err
	}
	if err := s.group(rec); err != nil {
		return err
	}
	s.late = s.late[:0]
	for _, r0 := range s.first {
		if err := s.st.keyed.SetCurrentKey(s.keys.key(int(r0)), s.keys.group(int(r0))); err != nil {
			return err
		}
		set, had, err := s.state.Value()
		if err != nil {
			return err
		}
		if !had {
			set = s.codec.empty()
		}
		taken := false
		for r := r0; r >= 0; r = s.next[r] {
			if !s.insert(set, rec, int(r)) {
				s.late = append(s.late, r)
				continue
			}
			taken = true
		}
		if !taken {
			continue
		}
		// Keep the timer at or before the earliest end - 1: only a new
		// earliest session moves it.
		if first := set.list[0].end - 1; !had || first < set.timer {
			if had {
				if err := s.timers.DeleteEventTimeTimer(set.timer); err != nil {
					return err
				}
			}
			if err := s.timers.RegisterEventTimeTimer(first); err != nil {
				return err
			}
			set.timer = first
		}
		if err := s.state.Update(set); err != nil {
			return err
		}
	}
	s.seq += int64(n)
	return s.emitLate(ctx, rec, out)
}

// group builds the key groups of the prepared batch (rows linked in
// arrival order) and each row's window.
func (s *sessionOp) group(rec arrow.RecordBatch) error {
	clear(s.groups)
	s.first, s.last = s.first[:0], s.last[:0]
	n := int(rec.NumRows())
	if cap(s.next) < n {
		s.next = make([]int32, n)
		s.starts = make([]int64, n)
		s.ends = make([]int64, n)
	}
	s.next, s.starts, s.ends = s.next[:n], s.starts[:n], s.ends[:n]
	col := rec.Column(s.tsCol)
	var gaps *array.Int64
	if s.gapCol >= 0 {
		gaps, _ = rec.Column(s.gapCol).(*array.Int64)
	}
	for i := range n {
		s.next[i] = -1
		if col.IsNull(i) {
			return fmt.Errorf("window: row %d has a null event time in column %q; event-time windows need a time for every row (filter such rows out first)",
				i, rec.ColumnName(s.tsCol))
		}
		ts, gap := timeValue(col, i), s.gap
		if s.gapCol >= 0 {
			// As the general operator (Flink's dynamic gap extractor): a
			// gap ≤ 0 fails; a null gap is 0.
			gap = 0
			if gaps != nil && gaps.IsValid(i) {
				gap = gaps.Value(i)
			}
			if gap <= 0 {
				return fmt.Errorf("%w: row %d has gap %d in column %q", window.ErrInvalidGap, i, gap, rec.ColumnName(s.gapCol))
			}
		}
		s.starts[i], s.ends[i] = ts, ts+gap
		key := s.keys.key(i)
		if g, ok := s.groups[string(key)]; ok {
			s.next[s.last[g]] = int32(i)
			s.last[g] = int32(i)
			continue
		}
		s.groups[string(key)] = int32(len(s.first))
		s.first = append(s.first, int32(i))
		s.last = append(s.last, int32(i))
	}
	return nil
}

// insert merges row r's window into the key's sessions and adds the row
// to the session holding it; it returns false, changing nothing, if the
// row is late.
func (s *sessionOp) insert(set *sessionSet, rec arrow.RecordBatch, r int) bool {
	start, end := s.starts[r], s.ends[r]
	l := set.list
	// Sessions are disjoint and sorted by start, so by end too: those
	// intersecting [start, end) are l[i:j], the ones with l.start ≤ end
	// (below j) and l.end ≥ start (from i). Rows mostly extend the last
	// session, so search from the back.
	j := len(l)
	for j > 0 && l[j-1].start > end {
		j--
	}
	i := j
	for i > 0 && l[i-1].end >= start {
		i--
	}
	if i == j {
		if end-1 <= s.wm {
			return false
		}
		set.insertAt(i, start, end, s.aggs)
	} else {
		// Merge l[i:j] and the row's window into l[i].
		for k := i + 1; k < j; k++ {
			s.aggs.merge(l[i].accs, l[k].accs)
		}
		l[i].start = min(l[i].start, start)
		l[i].end = max(l[j-1].end, end)
		set.removeRange(i+1, j)
	}
	s.aggs.add(set.list[i].accs, rec, r, s.seq+int64(r))
	return true
}

// emitLate sends the batch's late rows, in arrival order, to the late
// output, or counts them dropped.
func (s *sessionOp) emitLate(ctx context.Context, rec arrow.RecordBatch, out Output) error {
	if len(s.late) == 0 {
		return nil
	}
	if s.lateTag == "" {
		s.dropped += int64(len(s.late))
		return nil
	}
	slices.Sort(s.late)
	return emitRows(ctx, s.mem, rec, s.late, SideOutputOf(out, s.lateTag))
}

func (s *sessionOp) ProcessWatermark(ctx context.Context, wm int64, out Output) error {
	return s.advance(ctx, wm, out)
}

// Finish fires every remaining session: the final watermark of a bounded
// input.
func (s *sessionOp) Finish(ctx context.Context, out Output) error {
	return s.advance(ctx, MaxWatermark, out)
}

func (s *sessionOp) advance(ctx context.Context, wm int64, out Output) error {
	if wm <= s.wm {
		return nil
	}
	s.wm = wm
	s.res.bind(ctx, out)
	defer s.res.unbind()
	if err := s.timers.AdvanceWatermark(wm, s.onFire); err != nil {
		return err
	}
	return s.res.flush()
}

// fire emits the sessions of t's key that end at or before t.Timestamp+1
// and re-arms the key's timer at the next one.
func (s *sessionOp) fire(t state.Timer) error {
	set, ok, err := s.state.Value()
	if err != nil || !ok {
		return err
	}
	n := 0
	for n < len(set.list) && set.list[n].end-1 <= t.Timestamp {
		if err := s.res.append(t.Key, set.list[n].accs, set.list[n].start, set.list[n].end, true); err != nil {
			return err
		}
		n++
	}
	set.removeRange(0, n)
	if len(set.list) == 0 {
		return s.state.Clear()
	}
	next := set.list[0].end - 1
	if n == 0 && next == set.timer {
		return nil // not the key's current timer; that one is still pending
	}
	if err := s.timers.RegisterEventTimeTimer(next); err != nil {
		return err
	}
	set.timer = next
	return s.state.Update(set)
}

// session is one open session window [start, end) and its accumulators.
type session struct {
	start, end int64
	accs       []wacc
}

// sessionSet is one key's open sessions, sorted by start, and the
// timestamp of its timer. The slots of list past its length are spare
// sessions whose accumulators are reused; every slot owns its accs (the
// methods move sessions by swapping, never by copying).
type sessionSet struct {
	timer int64
	list  []session
}

// push appends a session slot, reusing a spare one, and returns it (its
// fields are stale).
func (ss *sessionSet) push(naggs int) *session {
	if n := len(ss.list); n < cap(ss.list) {
		ss.list = ss.list[:n+1]
	} else {
		ss.list = append(ss.list, session{})
	}
	w := &ss.list[len(ss.list)-1]
	if len(w.accs) != naggs {
		w.accs = make([]wacc, naggs)
	}
	return w
}

// insertAt inserts an empty session [start, end) at index i.
func (ss *sessionSet) insertAt(i int, start, end int64, aggs *waggs) {
	w := ss.push(len(aggs.specs))
	w.start, w.end = start, end
	aggs.reset(w.accs)
	for k := len(ss.list) - 1; k > i; k-- {
		ss.list[k], ss.list[k-1] = ss.list[k-1], ss.list[k]
	}
}

// removeRange removes the sessions [i, j), keeping their slots as spares.
func (ss *sessionSet) removeRange(i, j int) {
	if i >= j {
		return
	}
	d := j - i
	for k := j; k < len(ss.list); k++ {
		ss.list[k-d], ss.list[k] = ss.list[k], ss.list[k-d]
	}
	ss.list = ss.list[:len(ss.list)-d]
}

// sessionCodec encodes a sessionSet: the timer (varint), the number of
// sessions (uvarint), then per session its start (varint), length end -
// start (uvarint) and its accumulators as waccCodec writes them, behind
// their length (uvarint). Decode fills one set owned by the codec, valid
// until the next Decode or empty.
type sessionCodec struct {
	accs waccCodec
	set  sessionSet
	tmp  []byte
}

func newSessionCodec(naggs int) *sessionCodec {
	return &sessionCodec{accs: waccCodec{n: naggs}}
}

// empty returns the codec's set, emptied: a key without sessions.
func (c *sessionCodec) empty() *sessionSet {
	c.set.timer, c.set.list = 0, c.set.list[:0]
	return &c.set
}

// Append implements state.Codec.
func (c *sessionCodec) Append(dst []byte, ss *sessionSet) ([]byte, error) {
	dst = binary.AppendVarint(dst, ss.timer)
	dst = binary.AppendUvarint(dst, uint64(len(ss.list)))
	for i := range ss.list {
		w := &ss.list[i]
		dst = binary.AppendVarint(dst, w.start)
		dst = binary.AppendUvarint(dst, uint64(w.end-w.start))
		var err error
		if c.tmp, err = c.accs.Append(c.tmp[:0], w.accs); err != nil {
			return dst, err
		}
		dst = binary.AppendUvarint(dst, uint64(len(c.tmp)))
		dst = append(dst, c.tmp...)
	}
	return dst, nil
}

// Decode implements state.Codec.
func (c *sessionCodec) Decode(src []byte) (*sessionSet, error) {
	bad := func() error { return fmt.Errorf("%w: session windows", state.ErrCorrupt) }
	ss := c.empty()
	var w int
	if ss.timer, w = binary.Varint(src); w <= 0 {
		return nil, bad()
	}
	src = src[w:]
	n, w := binary.Uvarint(src)
	if w <= 0 || n > uint64(len(src)) {
		return nil, bad()
	}
	src = src[w:]
	for range n {
		start, w := binary.Varint(src)
		if w <= 0 {
			return nil, bad()
		}
		src = src[w:]
		size, w := binary.Uvarint(src)
		if w <= 0 {
			return nil, bad()
		}
		src = src[w:]
		l, w := binary.Uvarint(src)
		if w <= 0 || uint64(len(src)-w) < l {
			return nil, bad()
		}
		s := ss.push(c.accs.n)
		s.start, s.end = start, start+int64(size)
		if err := c.accs.decodeInto(s.accs, src[w:w+int(l)]); err != nil {
			return nil, err
		}
		src = src[w+int(l):]
	}
	if len(src) != 0 {
		return nil, bad()
	}
	return ss, nil
}

func (s *sessionOp) keyedStateOf() *keyedState { return s.st }
