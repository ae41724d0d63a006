package eventtime_test

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/sabotdev/sabot/worker/eventtime"
)

// TestColumnPunctuatedOracle checks the marker column's bitmap scan against
// a row-by-row oracle over random batches with sparse marks, nulls, and
// slices at offsets that are not byte-aligned.
func TestColumnPunctuatedOracle(t *testing.T) {
	t.Parallel()
	r := seeded(t)
	mem := newAlloc(t)
	schema := testSchema()
	for range 100 {
		n := 1 + r.IntN(700)
		b := array.NewRecordBuilder(mem, schema)
		tb := b.Field(0).(*array.TimestampBuilder)
		mb := b.Field(1).(*array.BooleanBuilder)
		for range n {
			tb.Append(0) // replaced below through ts
			switch p := r.IntN(100); {
			case p < 3:
				mb.Append(true)
			case p < 6:
				mb.AppendNull()
			default:
				mb.Append(false)
			}
		}
		full := b.NewRecordBatch()
		b.Release()
		lo := r.IntN(n)
		hi := lo + r.IntN(n-lo+1)
		rec := full.NewSlice(int64(lo), int64(hi))
		full.Release()

		ts := make([]int64, rec.NumRows())
		for i := range ts {
			ts[i] = r.Int64N(1_000_000)
		}
		marks := rec.Column(1).(*array.Boolean)
		want, wantOK := eventtime.MinWatermark, false
		for i := range ts {
			if marks.IsValid(i) && marks.Value(i) && ts[i] > want {
				want, wantOK = ts[i], true
			}
		}

		g := eventtime.NewColumnPunctuated("wm")
		if err := g.Bind(rec); err != nil {
			t.Fatal(err)
		}
		got, ok := g.OnEvents(ts)
		rec.Release()
		if ok != wantOK || (ok && got != want) {
			t.Fatalf("rows [%d,%d) of %d: OnEvents = %d, %t; oracle %d, %t", lo, hi, n, got, ok, want, wantOK)
		}
	}
}
