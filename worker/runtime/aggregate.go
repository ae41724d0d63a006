package runtime

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/worker/state"
)

// aggregateOp is the KeyedAggregate operator: Flink's GROUP BY without
// windows, as an upsert stream. Per key it keeps one accumulator per
// aggregation in one ValueState ("acc"). For each input batch it groups
// the rows by key (first appearance order), reads and writes each distinct
// key's accumulators once, and emits one batch with one row per distinct
// key: the key columns (taken from the key's first row in the batch) and
// every aggregate's value after the batch.
//
// Nulls in an aggregated field are skipped, as SQL: COUNT(field) counts
// the non-null values, COUNT without a field counts rows, and SUM, MIN,
// MAX and AVG over only nulls (so far) are null. Integer sums wrap on
// overflow (as Java's long); unsigned inputs above MaxInt64 wrap too.
type aggregateOp struct {
	mem    memory.Allocator
	schema *arrow.Schema
	keys   *keySelector
	st     *keyedState
	aggs   []aggSpec
	codec  *accCodec
	acc    *state.ValueState[[]aggAcc]
	ttl    time.Duration

	// per batch, reused
	groups map[string]int32
	first  []int32 // first row of each group
	last   []int32 // last row of each group
	next   []int32 // next row of the same group, -1 at the end
	fresh  []aggAcc
	outs   []array.Builder // one per aggregation
	cols   []arrow.Array
}

// aggSpec is one aggregation.
type aggSpec struct {
	fn    sabotv1.AggregateFunction
	col   int  // input column; -1 for COUNT of rows
	float bool // the input is floating point
	out   arrow.DataType
}

// aggAcc is one aggregation's accumulator for one key: n is the number of
// values (rows for COUNT of rows) folded in; i and f hold the integer and
// floating sum, minimum or maximum, whichever the input type uses.
type aggAcc struct {
	n int64
	i int64
	f float64
}

func newAggregateOp(spec *sabotv1.KeyedAggregate, v *jobgraph.Vertex, info TaskInfo, e *env) (*aggregateOp, error) {
	keys, err := newKeySelector(v, info, e.maxParallelism)
	if err != nil {
		return nil, err
	}
	a := &aggregateOp{mem: e.mem, schema: v.Schema, keys: keys, st: newKeyedState(v, info, e), groups: make(map[string]int32),
		ttl: time.Duration(spec.GetStateTtlMs()) * time.Millisecond}
	nk := len(keys.keys)
	if v.Schema.NumFields() != nk+len(spec.GetAggregations()) {
		return nil, fmt.Errorf("keyed aggregate: resolved schema has %d columns, want %d keys and %d aggregations",
			v.Schema.NumFields(), nk, len(spec.GetAggregations()))
	}
	for i, ag := range spec.GetAggregations() {
		s := aggSpec{fn: ag.GetFunction(), col: -1, out: v.Schema.Field(nk + i).Type}
		var in arrow.DataType
		if ag.GetField() != "" {
			idx := v.InputSchema.FieldIndices(ag.GetField())
			if len(idx) == 0 {
				return nil, fmt.Errorf("aggregation %s: %q is not an input column", ag.GetName(), ag.GetField())
			}
			s.col = idx[0]
			in = v.InputSchema.Field(s.col).Type
			s.float = arrow.IsFloating(in.ID())
		}
		t, err := jobgraph.AggregateType(s.fn, in)
		if err != nil {
			return nil, fmt.Errorf("aggregation %s: %w", ag.GetName(), err)
		}
		if !arrow.TypeEqual(t, s.out) {
			return nil, fmt.Errorf("aggregation %s: type %s differs from the resolved schema's %s", ag.GetName(), t, s.out)
		}
		a.aggs = append(a.aggs, s)
	}
	a.codec = &accCodec{n: len(a.aggs)}
	a.fresh = make([]aggAcc, len(a.aggs))
	a.cols = make([]arrow.Array, v.Schema.NumFields())
	return a, nil
}

func (a *aggregateOp) Open(ctx context.Context) error {
	if err := a.st.open(ctx); err != nil {
		return err
	}
	var err error
	a.acc, err = state.Value(a.st.keyed, state.ValueDescriptor[[]aggAcc]{Name: "acc", Codec: a.codec,
		// Idle state retention: OnCreateAndWrite (every row writes), never
		// return expired (a key comes back from zero).
		TTL: state.TTLConfig{TTL: a.ttl}})
	if err != nil {
		return err
	}
	for _, s := range a.aggs {
		a.outs = append(a.outs, array.NewBuilder(a.mem, s.out))
	}
	return nil
}

func (a *aggregateOp) Close() error {
	for _, b := range a.outs {
		b.Release()
	}
	a.outs = nil
	a.releaseCols()
	return a.st.close()
}

func (a *aggregateOp) releaseCols() {
	for i, c := range a.cols {
		if c != nil {
			c.Release()
			a.cols[i] = nil
		}
	}
}

func (a *aggregateOp) ProcessWatermark(context.Context, int64, Output) error { return nil }
func (a *aggregateOp) Finish(context.Context, Output) error                  { return nil }

func (a *aggregateOp) ProcessBatch(ctx context.Context, rec arrow.RecordBatch, out Output) error {
	n := int(rec.NumRows())
	if n == 0 {
		return nil
	}
	if a.ttl > 0 {
		if err := a.st.cleanup(); err != nil {
			return err
		}
	}
	if err := a.keys.prepare(rec); err != nil {
		return err
	}
	a.group(n)
	for _, r0 := range a.first {
		if err := a.st.keyed.SetCurrentKey(a.keys.key(int(r0)), a.keys.group(int(r0))); err != nil {
			return err
		}
		accs, ok, err := a.acc.Value()
		if err != nil {
			return err
		}
		if !ok {
			clear(a.fresh)
			accs = a.fresh
		}
		for r := r0; r >= 0; r = a.next[r] {
			a.add(accs, rec, int(r))
		}
		if err := a.acc.Update(accs); err != nil {
			return err
		}
		a.appendResults(accs)
	}
	return a.emit(ctx, rec, out)
}

// group builds the groups of the prepared batch's n rows.
func (a *aggregateOp) group(n int) {
	clear(a.groups)
	a.first, a.last = a.first[:0], a.last[:0]
	if cap(a.next) < n {
		a.next = make([]int32, n)
	}
	a.next = a.next[:n]
	for i := range n {
		a.next[i] = -1
		k := a.keys.key(i)
		if g, ok := a.groups[string(k)]; ok { // lookup does not allocate
			a.next[a.last[g]] = int32(i)
			a.last[g] = int32(i)
			continue
		}
		a.groups[string(k)] = int32(len(a.first))
		a.first = append(a.first, int32(i))
		a.last = append(a.last, int32(i))
	}
}

// add folds row r into accs.
func (a *aggregateOp) add(accs []aggAcc, rec arrow.RecordBatch, r int) {
	for j := range a.aggs {
		s, acc := &a.aggs[j], &accs[j]
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
			if s.float {
				acc.f += floatValue(col, r)
			} else {
				acc.i += intValue(col, r)
			}
		case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_MIN:
			if s.float {
				if v := floatValue(col, r); acc.n == 0 || v < acc.f {
					acc.f = v
				}
			} else if v := intValue(col, r); acc.n == 0 || v < acc.i {
				acc.i = v
			}
		case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_MAX:
			if s.float {
				if v := floatValue(col, r); acc.n == 0 || v > acc.f {
					acc.f = v
				}
			} else if v := intValue(col, r); acc.n == 0 || v > acc.i {
				acc.i = v
			}
		default: // COUNT of a field
		}
		acc.n++
	}
}

// appendResults appends one output row of aggregate values.
func (a *aggregateOp) appendResults(accs []aggAcc) {
	for j := range a.aggs {
		s, acc := &a.aggs[j], &accs[j]
		b := a.outs[j]
		if s.fn == sabotv1.AggregateFunction_AGGREGATE_FUNCTION_COUNT {
			b.(*array.Int64Builder).Append(acc.n)
			continue
		}
		if acc.n == 0 {
			b.AppendNull()
			continue
		}
		switch bb := b.(type) {
		case *array.Float64Builder:
			switch {
			case s.fn == sabotv1.AggregateFunction_AGGREGATE_FUNCTION_AVG && s.float:
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
		default:
			b.AppendNull() // unreachable: AggregateType yields only these
		}
	}
}

// emit sends the batch of the groups' rows: key columns taken from each
// group's first row, then the aggregate columns.
func (a *aggregateOp) emit(ctx context.Context, rec arrow.RecordBatch, out Output) error {
	defer a.releaseCols()
	nk := len(a.keys.keys)
	for c, k := range a.keys.keys {
		col, err := takeArray(ctx, a.mem, rec.Column(k), a.first)
		if err != nil {
			return err
		}
		a.cols[c] = col
	}
	for j, b := range a.outs {
		a.cols[nk+j] = b.NewArray()
	}
	res := array.NewRecordBatch(a.schema, a.cols, int64(len(a.first)))
	err := out.Emit(ctx, res)
	res.Release()
	return err
}

// takeArray returns a new array of col's values at rows.
func takeArray(ctx context.Context, mem memory.Allocator, col arrow.Array, rows []int32) (arrow.Array, error) {
	return gatherArray(ctx, mem, col, rows)
}

// computeTake is arrow's compute "take": gatherArray's fallback for the
// types it does not copy itself.
func computeTake(ctx context.Context, mem memory.Allocator, col arrow.Array, rows []int32) (arrow.Array, error) {
	idxData := array.NewData(arrow.PrimitiveTypes.Int32, len(rows),
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(rows))}, nil, 0, 0)
	defer idxData.Release()
	idx := array.NewInt32Data(idxData)
	defer idx.Release()
	res, err := compute.TakeArrayOpts(compute.WithAllocator(ctx, mem), col, idx, compute.TakeOptions{BoundsCheck: false})
	if err != nil {
		return nil, fmt.Errorf("runtime: take: %w", err)
	}
	return res, nil
}

// accCodec encodes a key's accumulators as 24 bytes each (n, i, float
// bits; big-endian). Decode fills a scratch slice owned by the codec, valid
// until the next Decode: the operator reads, updates and writes it back
// before the next read, and nothing is allocated per key.
type accCodec struct {
	n       int
	scratch []aggAcc
}

const accSize = 24

// Append implements state.Codec.
func (c *accCodec) Append(dst []byte, v []aggAcc) ([]byte, error) {
	for _, a := range v {
		dst = binary.BigEndian.AppendUint64(dst, uint64(a.n))
		dst = binary.BigEndian.AppendUint64(dst, uint64(a.i))
		dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(a.f))
	}
	return dst, nil
}

// Decode implements state.Codec.
func (c *accCodec) Decode(src []byte) ([]aggAcc, error) {
	if len(src) != c.n*accSize {
		return nil, fmt.Errorf("%w: %d bytes of accumulators, want %d", state.ErrCorrupt, len(src), c.n*accSize)
	}
	if cap(c.scratch) < c.n {
		c.scratch = make([]aggAcc, c.n)
	}
	c.scratch = c.scratch[:c.n]
	for i := range c.scratch {
		b := src[i*accSize:]
		c.scratch[i] = aggAcc{
			n: int64(binary.BigEndian.Uint64(b)),
			i: int64(binary.BigEndian.Uint64(b[8:])),
			f: math.Float64frombits(binary.BigEndian.Uint64(b[16:])),
		}
	}
	return c.scratch, nil
}

func (a *aggregateOp) keyedStateOf() *keyedState { return a.st }
