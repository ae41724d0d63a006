package runtime

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/worker/state"
)

// Built-in window aggregates. A window's (or a pane's) accumulators are
// one wacc per aggregation, kept encoded in keyed state under the window's
// namespace. Every built-in is mergeable (panes of a sliding window merge
// into the window; session windows merge into each other):
//
//   - count, sum, min, max, avg: as the running keyed aggregate;
//   - first and last: the value of the row that arrived first (last) in
//     the window, in the operator's arrival order — each accumulator keeps
//     the arrival sequence number of its value, so merging panes keeps
//     arrival order (Flink SQL's FIRST_VALUE / LAST_VALUE);
//   - count_distinct: the set of distinct non-null values' encodings,
//     stored sorted in the accumulator (its cost grows with the number of
//     distinct values per key and window).
//
// Null inputs are skipped by all but count(*); an aggregate over no
// non-null value is null, except count (0).

// valueKind is how an aggregated column's values are held.
type valueKind uint8

const (
	vkInt   valueKind = iota + 1 // integers, timestamps, booleans (0/1)
	vkFloat                      // floats
	vkBytes                      // strings, binaries
)

func valueKindOf(t arrow.DataType) (valueKind, error) {
	switch {
	case arrow.IsInteger(t.ID()), t.ID() == arrow.TIMESTAMP, t.ID() == arrow.BOOL:
		return vkInt, nil
	case arrow.IsFloating(t.ID()):
		return vkFloat, nil
	case t.ID() == arrow.STRING, t.ID() == arrow.BINARY, t.ID() == arrow.LARGE_STRING, t.ID() == arrow.LARGE_BINARY:
		return vkBytes, nil
	default:
		return 0, fmt.Errorf("runtime: cannot aggregate a column of type %s", t)
	}
}

// waggSpec is one built-in window aggregation.
type waggSpec struct {
	fn   sabotv1.AggregateFunction
	col  int // input column, -1 for count(*)
	kind valueKind
	out  arrow.DataType
}

// wacc is one aggregation's accumulator.
type wacc struct {
	n   int64   // rows (count(*)) or non-null values seen
	i   int64   // integer sum, min, max, first, last
	f   float64 // float sum, min, max, first, last
	seq int64   // arrival sequence of first/last's value
	b   []byte  // first/last bytes value
	set [][]byte
}

// waggs are the built-in aggregations of one window operator.
type waggs struct {
	specs []waggSpec
}

func newWaggs(aggs []*sabotv1.Aggregation, in, out *arrow.Schema, firstOut int) (*waggs, error) {
	w := &waggs{}
	for i, ag := range aggs {
		s := waggSpec{fn: ag.GetFunction(), col: -1, out: out.Field(firstOut + i).Type}
		var inType arrow.DataType
		if ag.GetField() != "" {
			idx := in.FieldIndices(ag.GetField())
			if len(idx) == 0 {
				return nil, fmt.Errorf("aggregation %s: %q is not an input column", ag.GetName(), ag.GetField())
			}
			s.col = idx[0]
			inType = in.Field(s.col).Type
			k, err := valueKindOf(inType)
			if err != nil {
				return nil, fmt.Errorf("aggregation %s: %w", ag.GetName(), err)
			}
			s.kind = k
		}
		t, err := jobgraph.AggregateType(s.fn, inType)
		if err != nil {
			return nil, fmt.Errorf("aggregation %s: %w", ag.GetName(), err)
		}
		if !arrow.TypeEqual(t, s.out) {
			return nil, fmt.Errorf("aggregation %s: type %s differs from the resolved schema's %s", ag.GetName(), t, s.out)
		}
		w.specs = append(w.specs, s)
	}
	return w, nil
}

// reset clears accs to the empty accumulators (reusing memory).
func (w *waggs) reset(accs []wacc) {
	for i := range accs {
		accs[i] = wacc{b: accs[i].b[:0], set: accs[i].set[:0]}
	}
}

// add folds row r of rec, which arrived with sequence seq, into accs.
func (w *waggs) add(accs []wacc, rec arrow.RecordBatch, r int, seq int64) {
	for j := range w.specs {
		s, acc := &w.specs[j], &accs[j]
		if s.col < 0 {
			acc.n++
			continue
		}
		col := rec.Column(s.col)
		if col.IsNull(r) {
			continue
		}
		switch s.fn {
		case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_SUM, sabotv1.AggregateFunction_AGGREGATE_FUNCTION_AVG:
			if s.kind == vkFloat {
				acc.f += floatValue(col, r)
			} else {
				acc.i += intValue(col, r)
			}
		case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_MIN:
			if s.kind == vkFloat {
				if v := floatValue(col, r); acc.n == 0 || v < acc.f {
					acc.f = v
				}
			} else if v := intOrBool(col, r); acc.n == 0 || v < acc.i {
				acc.i = v
			}
		case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_MAX:
			if s.kind == vkFloat {
				if v := floatValue(col, r); acc.n == 0 || v > acc.f {
					acc.f = v
				}
			} else if v := intOrBool(col, r); acc.n == 0 || v > acc.i {
				acc.i = v
			}
		case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_FIRST:
			if acc.n == 0 || seq < acc.seq {
				acc.set1(s.kind, col, r, seq)
			}
		case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_LAST:
			if acc.n == 0 || seq >= acc.seq {
				acc.set1(s.kind, col, r, seq)
			}
		case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_COUNT_DISTINCT:
			acc.insert(appendValue(nil, s.kind, col, r))
		default: // COUNT of a field
		}
		acc.n++
	}
}

// addVals folds a stored row (decoded values by input column) with
// arrival sequence seq into accs.
func (w *waggs) addVals(accs []wacc, vals []rowVal, seq int64) {
	for j := range w.specs {
		s, acc := &w.specs[j], &accs[j]
		if s.col < 0 {
			acc.n++
			continue
		}
		if s.col >= len(vals) || vals[s.col].tag == 0 {
			continue
		}
		v := &vals[s.col]
		f := v.f
		if v.tag != 2 {
			f = float64(v.i)
		}
		switch s.fn {
		case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_SUM, sabotv1.AggregateFunction_AGGREGATE_FUNCTION_AVG:
			if s.kind == vkFloat {
				acc.f += f
			} else {
				acc.i += v.i
			}
		case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_MIN:
			if s.kind == vkFloat {
				if acc.n == 0 || f < acc.f {
					acc.f = f
				}
			} else if acc.n == 0 || v.i < acc.i {
				acc.i = v.i
			}
		case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_MAX:
			if s.kind == vkFloat {
				if acc.n == 0 || f > acc.f {
					acc.f = f
				}
			} else if acc.n == 0 || v.i > acc.i {
				acc.i = v.i
			}
		case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_FIRST, sabotv1.AggregateFunction_AGGREGATE_FUNCTION_LAST:
			first := s.fn == sabotv1.AggregateFunction_AGGREGATE_FUNCTION_FIRST
			if acc.n == 0 || (first && seq < acc.seq) || (!first && seq >= acc.seq) {
				acc.seq, acc.i, acc.f = seq, v.i, f
				acc.b = append(acc.b[:0], v.b...)
			}
		case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_COUNT_DISTINCT:
			var e []byte
			switch s.kind {
			case vkFloat:
				e = binary.BigEndian.AppendUint64(nil, floatBits(f))
			case vkBytes:
				e = slices.Clone(v.b)
			default:
				e = binary.BigEndian.AppendUint64(nil, uint64(v.i))
			}
			acc.insert(e)
		default: // COUNT of a field
		}
		acc.n++
	}
}

func intOrBool(col arrow.Array, r int) int64 {
	if b, ok := col.(*array.Boolean); ok {
		if b.Value(r) {
			return 1
		}
		return 0
	}
	return intValue(col, r)
}

func (a *wacc) set1(k valueKind, col arrow.Array, r int, seq int64) {
	a.seq = seq
	switch k {
	case vkFloat:
		a.f = floatValue(col, r)
	case vkBytes:
		a.b = append(a.b[:0], bytesValue(col, r)...)
	default:
		a.i = intOrBool(col, r)
	}
}

// appendValue appends the distinct-set encoding of col[r].
func appendValue(dst []byte, k valueKind, col arrow.Array, r int) []byte {
	switch k {
	case vkFloat:
		return binary.BigEndian.AppendUint64(dst, floatBits(floatValue(col, r)))
	case vkBytes:
		return append(dst, bytesValue(col, r)...)
	default:
		return binary.BigEndian.AppendUint64(dst, uint64(intOrBool(col, r)))
	}
}

// insert adds v to the sorted distinct set.
func (a *wacc) insert(v []byte) {
	i, found := slices.BinarySearchFunc(a.set, v, compareBytes)
	if !found {
		a.set = slices.Insert(a.set, i, v)
	}
}

func compareBytes(a, b []byte) int {
	switch {
	case string(a) < string(b):
		return -1
	case string(a) > string(b):
		return 1
	default:
		return 0
	}
}

// merge folds src into dst (both accumulators of the same aggregations).
func (w *waggs) merge(dst, src []wacc) {
	for j := range w.specs {
		s, d, o := &w.specs[j], &dst[j], &src[j]
		if o.n == 0 {
			continue
		}
		switch s.fn {
		case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_SUM, sabotv1.AggregateFunction_AGGREGATE_FUNCTION_AVG:
			d.i += o.i
			d.f += o.f
		case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_MIN:
			if d.n == 0 || (s.kind == vkFloat && o.f < d.f) || (s.kind != vkFloat && o.i < d.i) {
				d.i, d.f = o.i, o.f
			}
		case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_MAX:
			if d.n == 0 || (s.kind == vkFloat && o.f > d.f) || (s.kind != vkFloat && o.i > d.i) {
				d.i, d.f = o.i, o.f
			}
		case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_FIRST:
			if d.n == 0 || o.seq < d.seq {
				d.i, d.f, d.seq, d.b = o.i, o.f, o.seq, append(d.b[:0], o.b...)
			}
		case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_LAST:
			if d.n == 0 || o.seq >= d.seq {
				d.i, d.f, d.seq, d.b = o.i, o.f, o.seq, append(d.b[:0], o.b...)
			}
		case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_COUNT_DISTINCT:
			for _, v := range o.set {
				d.insert(slices.Clone(v))
			}
		default:
		}
		d.n += o.n
	}
}

// appendResults appends one output row of aggregate values to outs.
func (w *waggs) appendResults(accs []wacc, outs []array.Builder) {
	for j := range w.specs {
		s, acc, b := &w.specs[j], &accs[j], outs[j]
		switch s.fn { //nolint:exhaustive // the others are read from the accumulator below
		case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_COUNT:
			b.(*array.Int64Builder).Append(acc.n)
			continue
		case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_COUNT_DISTINCT:
			b.(*array.Int64Builder).Append(int64(len(acc.set)))
			continue
		}
		if acc.n == 0 {
			b.AppendNull()
			continue
		}
		switch bb := b.(type) {
		case *array.Float64Builder:
			switch {
			case s.fn == sabotv1.AggregateFunction_AGGREGATE_FUNCTION_AVG && s.kind == vkFloat:
				bb.Append(acc.f / float64(acc.n))
			case s.fn == sabotv1.AggregateFunction_AGGREGATE_FUNCTION_AVG:
				bb.Append(float64(acc.i) / float64(acc.n))
			default:
				bb.Append(acc.f)
			}
		case *array.Int64Builder:
			bb.Append(acc.i)
		case *array.TimestampBuilder:
			bb.Append(arrow.Timestamp(acc.i))
		case *array.BooleanBuilder:
			bb.Append(acc.i != 0)
		case *array.StringBuilder:
			bb.BinaryBuilder.Append(acc.b)
		case *array.BinaryBuilder:
			bb.Append(acc.b)
		default:
			b.AppendNull() // unreachable: AggregateType yields only these
		}
	}
}

// waccCodec encodes a window's accumulators: per aggregation n, i, seq
// (varints), f (8 bytes), then b and the distinct set (length-prefixed).
// Decode fills a scratch slice owned by the codec, valid until the next
// Decode; use decodeInto to keep two decoded sets at once.
type waccCodec struct {
	n       int
	scratch []wacc
}

// Append implements state.Codec.
func (c *waccCodec) Append(dst []byte, v []wacc) ([]byte, error) {
	for i := range v {
		a := &v[i]
		dst = binary.AppendVarint(dst, a.n)
		dst = binary.AppendVarint(dst, a.i)
		dst = binary.AppendVarint(dst, a.seq)
		dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(a.f))
		dst = binary.AppendUvarint(dst, uint64(len(a.b)))
		dst = append(dst, a.b...)
		dst = binary.AppendUvarint(dst, uint64(len(a.set)))
		for _, e := range a.set {
			dst = binary.AppendUvarint(dst, uint64(len(e)))
			dst = append(dst, e...)
		}
	}
	return dst, nil
}

// Decode implements state.Codec.
func (c *waccCodec) Decode(src []byte) ([]wacc, error) {
	if cap(c.scratch) < c.n {
		c.scratch = make([]wacc, c.n)
	}
	c.scratch = c.scratch[:c.n]
	return c.scratch, c.decodeInto(c.scratch, src)
}

// decodeInto decodes src into dst (len(dst) accumulators). Byte values
// are copied: dst does not alias src.
func (c *waccCodec) decodeInto(dst []wacc, src []byte) error {
	bad := func() error { return fmt.Errorf("%w: window accumulators", state.ErrCorrupt) }
	for i := range dst {
		a := &dst[i]
		var w int
		if a.n, w = binary.Varint(src); w <= 0 {
			return bad()
		}
		src = src[w:]
		if a.i, w = binary.Varint(src); w <= 0 {
			return bad()
		}
		src = src[w:]
		if a.seq, w = binary.Varint(src); w <= 0 {
			return bad()
		}
		src = src[w:]
		if len(src) < 8 {
			return bad()
		}
		a.f = math.Float64frombits(binary.BigEndian.Uint64(src))
		src = src[8:]
		l, w := binary.Uvarint(src)
		if w <= 0 || uint64(len(src)-w) < l {
			return bad()
		}
		a.b = append(a.b[:0], src[w:w+int(l)]...)
		src = src[w+int(l):]
		ns, w := binary.Uvarint(src)
		if w <= 0 || ns > uint64(len(src)) {
			return bad()
		}
		src = src[w:]
		a.set = a.set[:0]
		for range ns {
			l, w := binary.Uvarint(src)
			if w <= 0 || uint64(len(src)-w) < l {
				return bad()
			}
			a.set = append(a.set, slices.Clone(src[w:w+int(l)]))
			src = src[w+int(l):]
		}
	}
	if len(src) != 0 {
		return bad()
	}
	return nil
}

// windowResults builds the result rows of a window operator with built-in
// aggregates — key columns, aggregates, window_start, window_end — and
// sends them in batches of at most batch rows. paneOp, sessionOp and the
// general operator share it, so their rows are the same.
type windowResults struct {
	mem    memory.Allocator
	schema *arrow.Schema
	kinds  []keyKind
	aggs   *waggs
	batch  int

	outs []array.Builder
	rows int
	ctx  context.Context
	out  Output
}

func (r *windowResults) open() {
	for _, f := range r.schema.Fields() {
		r.outs = append(r.outs, array.NewBuilder(r.mem, f.Type))
	}
}

func (r *windowResults) release() {
	for _, b := range r.outs {
		b.Release()
	}
	r.outs = nil
}

// bind points the results at out for one operator call; unbind ends it.
func (r *windowResults) bind(ctx context.Context, out Output) { r.ctx, r.out = ctx, out }
func (r *windowResults) unbind()                              { r.ctx, r.out = nil, nil }

// append adds the row of key's window [start, end) with accumulators
// accs; bounded false leaves the window bounds null (the global window).
// A full batch is sent.
func (r *windowResults) append(key []byte, accs []wacc, start, end int64, bounded bool) error {
	k := Key{b: key, kinds: r.kinds}
	nk := len(r.kinds)
	for c := range nk {
		if err := appendKeyColumn(r.outs[c], k, c); err != nil {
			return err
		}
	}
	r.aggs.appendResults(accs, r.outs[nk:])
	sb, eb := r.outs[len(r.outs)-2].(*array.TimestampBuilder), r.outs[len(r.outs)-1].(*array.TimestampBuilder)
	if bounded {
		sb.Append(arrow.Timestamp(start))
		eb.Append(arrow.Timestamp(end))
	} else {
		sb.AppendNull()
		eb.AppendNull()
	}
	r.rows++
	if r.rows >= r.batch {
		return r.flush()
	}
	return nil
}

// flush sends the rows built so far as one batch.
func (r *windowResults) flush() error {
	if r.rows == 0 {
		return nil
	}
	if r.out == nil {
		return errors.New("runtime: window: emitted outside a call")
	}
	rec := buildBatch(r.schema, r.outs, r.rows)
	r.rows = 0
	defer rec.Release()
	return r.out.Emit(r.ctx, rec)
}
