package eventtime

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
)

const (
	// MinWatermark is the watermark of an output that has emitted none yet
	// (Flink's Long.MIN_VALUE).
	MinWatermark int64 = math.MinInt64
	// MaxWatermark is the final watermark: event time is complete and every
	// event-time timer may fire (Flink's Watermark.MAX_WATERMARK). A source
	// sends it at end of input; an input that ended counts as MaxWatermark.
	MaxWatermark int64 = math.MaxInt64
)

// Generator produces watermarks from the event times it observes, like
// Flink's WatermarkGenerator. A generator belongs to one source split (or
// one source subtask) and is driven from one goroutine.
//
// Every method returns the watermark to send downstream and whether to send
// it. A generator never returns a watermark at or below one it returned
// before: watermarks only move forward.
type Generator interface {
	// OnEvent observes one record's event time (ms). Periodic generators
	// only record it and return false; punctuated generators may return a
	// watermark to emit at once.
	OnEvent(ts int64) (wm int64, emit bool)
	// OnEvents observes a batch's event-time column, row i of the batch
	// being ts[i]. It is the hot path: it must not allocate. The result is
	// as for OnEvent, for the batch as a whole: a punctuated watermark takes
	// effect after the batch, not between its rows.
	OnEvents(ts []int64) (wm int64, emit bool)
	// OnPeriodicEmit is called every auto-watermark interval (see
	// Periodic); periodic generators return their current watermark if it
	// advanced since the last one they returned.
	OnPeriodicEmit() (wm int64, emit bool)
}

// Binder is implemented by generators that read more of a batch than its
// event times, such as a punctuated generator reading a marker column. The
// source task calls Bind with a batch before passing its event times to
// OnEvents; Split.OnBatch does both.
type Binder interface {
	Bind(rec arrow.RecordBatch) error
}

// BoundedOutOfOrderness is Flink's BoundedOutOfOrdernessWatermarks: a
// periodic generator that assumes records arrive at most maxDelay late
// relative to the highest event time seen. Its watermark is
//
//	maxTimestamp - maxDelay - 1
//
// (the -1 because a watermark t says no record with timestamp <= t follows,
// and a record exactly maxDelay late must still be on time). Before any
// event, maxTimestamp starts at MinInt64 + maxDelay + 1, so the formula
// yields MinWatermark and nothing is emitted until the first event.
type BoundedOutOfOrderness struct {
	delay int64 // ms
	maxTS int64
	last  int64 // last emitted watermark
}

var _ Generator = (*BoundedOutOfOrderness)(nil)

// NewBoundedOutOfOrderness returns a generator tolerating records up to
// maxDelay late. maxDelay is truncated to milliseconds (as Flink's
// Duration.toMillis); a negative maxDelay is treated as zero (use
// Strategy.Validate to reject it from configuration).
func NewBoundedOutOfOrderness(maxDelay time.Duration) *BoundedOutOfOrderness {
	d := max(maxDelay.Milliseconds(), 0)
	return &BoundedOutOfOrderness{delay: d, maxTS: math.MinInt64 + d + 1, last: MinWatermark}
}

// NewMonotonous returns Flink's AscendingTimestampsWatermarks: bounded
// out-of-orderness with zero delay, for sources whose timestamps never
// decrease. Its watermark is maxTimestamp - 1.
func NewMonotonous() *BoundedOutOfOrderness { return NewBoundedOutOfOrderness(0) }

// OnEvent records ts; it never emits (periodic generator).
func (g *BoundedOutOfOrderness) OnEvent(ts int64) (int64, bool) {
	g.maxTS = max(g.maxTS, ts)
	return g.last, false
}

// OnEvents records the highest timestamp of ts; it never emits.
func (g *BoundedOutOfOrderness) OnEvents(ts []int64) (int64, bool) {
	g.maxTS = maxOf(g.maxTS, ts)
	return g.last, false
}

// OnPeriodicEmit returns maxTimestamp - maxDelay - 1 if it is above the
// last watermark returned.
func (g *BoundedOutOfOrderness) OnPeriodicEmit() (int64, bool) {
	// maxTS >= MinInt64 + delay + 1, so this cannot underflow.
	wm := g.maxTS - g.delay - 1
	if wm <= g.last {
		return g.last, false
	}
	g.last = wm
	return wm, true
}

// maxOf returns the maximum of cur and ts. Four independent accumulators
// break the dependency chain so the loop runs at several compares a cycle
// (the compiler lowers max to conditional moves).
func maxOf(cur int64, ts []int64) int64 {
	m0, m1, m2, m3 := cur, cur, cur, cur
	i := 0
	for ; i+4 <= len(ts); i += 4 {
		s := ts[i : i+4 : i+4]
		m0 = max(m0, s[0])
		m1 = max(m1, s[1])
		m2 = max(m2, s[2])
		m3 = max(m3, s[3])
	}
	for ; i < len(ts); i++ {
		m0 = max(m0, ts[i])
	}
	return max(m0, m1, m2, m3)
}

// MarkFunc says whether row of the current batch, with event time ts,
// carries a punctuated watermark, and which. It is called for every row on
// the hot path and must not allocate.
type MarkFunc func(row int, ts int64) (wm int64, ok bool)

// Punctuated is a punctuated generator (Flink's WatermarkGenerator that
// emits from onEvent): particular records carry a watermark, decided by a
// MarkFunc. It emits nothing periodically.
//
// Within a batch the highest marked watermark is returned once, after the
// batch: rows of the batch after the marking row are not treated as late,
// where Flink, emitting between records, would treat them so.
type Punctuated struct {
	mark MarkFunc
	col  *markerColumn // set for NewColumnPunctuated: a bitmap scan replaces mark
	last int64
}

var (
	_ Generator = (*Punctuated)(nil)
	_ Binder    = (*Punctuated)(nil)
)

// NewPunctuated returns a punctuated generator asking mark about each row.
func NewPunctuated(mark MarkFunc) *Punctuated {
	return &Punctuated{mark: mark, last: MinWatermark}
}

// NewColumnPunctuated returns the punctuated generator a manifest can name:
// column is a boolean column of each batch, and a row where it is true
// carries a watermark equal to the row's own event time (null and false
// rows carry none). Bind must be called with each batch before OnEvents.
func NewColumnPunctuated(column string) *Punctuated {
	c := &markerColumn{name: column}
	return &Punctuated{mark: c.mark, col: c, last: MinWatermark}
}

// Bind prepares the generator for rec: a column generator looks up its
// marker column (failing with ErrColumnNotFound or ErrColumnType); a
// MarkFunc generator does nothing.
func (p *Punctuated) Bind(rec arrow.RecordBatch) error {
	if p.col == nil {
		return nil
	}
	return p.col.bind(rec)
}

// OnEvent treats ts as a one-row batch (row 0) and emits its mark, if any,
// when it is above the last watermark emitted.
func (p *Punctuated) OnEvent(ts int64) (int64, bool) {
	if wm, ok := p.mark(0, ts); ok && wm > p.last {
		p.last = wm
		return wm, true
	}
	return p.last, false
}

// OnEvents emits the highest mark in the batch if it is above the last
// watermark emitted.
func (p *Punctuated) OnEvents(ts []int64) (int64, bool) {
	best := p.last
	if p.col != nil {
		best = p.col.maxMarked(ts, best)
	} else {
		for i, t := range ts {
			if wm, ok := p.mark(i, t); ok {
				best = max(best, wm)
			}
		}
	}
	if best > p.last {
		p.last = best
		return best, true
	}
	return p.last, false
}

// OnPeriodicEmit emits nothing: punctuated watermarks come with records.
func (p *Punctuated) OnPeriodicEmit() (int64, bool) { return p.last, false }

// markerColumn reads a named boolean column of the bound batch.
type markerColumn struct {
	name   string
	schema *arrow.Schema // schema idx was resolved against
	idx    int
	col    *array.Boolean
}

func (c *markerColumn) bind(rec arrow.RecordBatch) error {
	// Batches of one source share a schema pointer: look the name up once
	// (FieldIndices allocates) and again only when the schema changes.
	if s := rec.Schema(); s != c.schema {
		idx := s.FieldIndices(c.name)
		if len(idx) == 0 {
			c.col = nil
			return fmt.Errorf("%w: marker column %q", ErrColumnNotFound, c.name)
		}
		c.schema, c.idx = s, idx[0]
	}
	col, ok := rec.Column(c.idx).(*array.Boolean)
	if !ok {
		c.col = nil
		return fmt.Errorf("%w: marker column %q is %s, want bool", ErrColumnType, c.name, rec.Column(c.idx).DataType())
	}
	c.col = col
	return nil
}

func (c *markerColumn) mark(row int, ts int64) (int64, bool) {
	if c.col == nil || row >= c.col.Len() || !c.col.IsValid(row) || !c.col.Value(row) {
		return 0, false
	}
	return ts, true
}

// maxMarked returns the maximum of best and the event times of the marked
// rows. Marker columns are mostly false, so it skips 64 and then 8 rows at
// a time over zero words of the value bitmap before testing single bits.
func (c *markerColumn) maxMarked(ts []int64, best int64) int64 {
	if c.col == nil {
		return best
	}
	n := min(len(ts), c.col.Len())
	bits := c.col.Data().Buffers()[1].Bytes()
	off := c.col.Data().Offset()
	hasNulls := c.col.NullN() > 0
	for i := 0; i < n; {
		b := off + i
		if b%64 == 0 && i+64 <= n && binary.LittleEndian.Uint64(bits[b/8:]) == 0 {
			i += 64
			continue
		}
		if b%8 == 0 && i+8 <= n && bits[b/8] == 0 {
			i += 8
			continue
		}
		if bitutil.BitIsSet(bits, b) && (!hasNulls || c.col.IsValid(i)) {
			best = max(best, ts[i])
		}
		i++
	}
	return best
}
