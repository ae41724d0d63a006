package expr_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sabotdev/sabot/sql/expr"
)

const benchRows = 4096

func benchBatch(mem memory.Allocator) arrow.RecordBatch {
	schema := arrow.NewSchema([]arrow.Field{{Name: "value", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)
	b := array.NewInt64Builder(mem)
	defer b.Release()
	r := rand.New(rand.NewPCG(1, 2)) // fixed seed
	for range benchRows {
		if r.IntN(100) == 0 {
			b.AppendNull()
		} else {
			b.Append(r.Int64N(1 << 40))
		}
	}
	col := b.NewArray()
	defer col.Release()
	return array.NewRecordBatch(schema, []arrow.Array{col}, benchRows)
}

// BenchmarkEval compares the engine with a hand-written loop computing the
// same result into a fresh array (the floor for any vectorized engine),
// and, for the map case, with arrow-go's compute kernels.
func BenchmarkEval(b *testing.B) {
	mem := memory.NewGoAllocator()
	rec := benchBatch(mem)
	defer rec.Release()
	ctx := context.Background()
	report := func(b *testing.B) {
		b.ReportMetric(float64(b.N)*benchRows/b.Elapsed().Seconds(), "rows/s")
	}
	engine := func(src string) func(b *testing.B) {
		return func(b *testing.B) {
			x, err := expr.Compile(src, rec.Schema())
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				out, err := x.Eval(ctx, mem, rec)
				if err != nil {
					b.Fatal(err)
				}
				out.Release()
			}
			report(b)
		}
	}
	b.Run("map/engine", engine("value * 2 + 1"))
	b.Run("map/baseline", func(b *testing.B) {
		b.ReportAllocs()
		col := rec.Column(0).(*array.Int64)
		for b.Loop() {
			vals := memory.NewResizableBuffer(mem)
			vals.Resize(benchRows * 8)
			out := arrow.Int64Traits.CastFromBytes(vals.Bytes())
			for i, v := range col.Int64Values() {
				out[i] = v*2 + 1
			}
			valid := memory.NewResizableBuffer(mem)
			valid.Resize(int(bitutil.BytesForBits(benchRows)))
			bitutil.CopyBitmap(col.NullBitmapBytes(), col.Data().Offset(), benchRows, valid.Bytes(), 0)
			d := array.NewData(arrow.PrimitiveTypes.Int64, benchRows, []*memory.Buffer{valid, vals}, nil, col.NullN(), 0)
			a := array.NewInt64Data(d)
			d.Release()
			valid.Release()
			vals.Release()
			a.Release()
		}
		report(b)
	})
	b.Run("map/arrow-compute", func(b *testing.B) {
		b.ReportAllocs()
		cctx := compute.WithAllocator(ctx, mem)
		col := compute.NewDatum(rec.Column(0))
		defer col.Release()
		two, one := compute.NewDatum(int64(2)), compute.NewDatum(int64(1))
		for b.Loop() {
			m, err := compute.CallFunction(cctx, "multiply", nil, col, two)
			if err != nil {
				b.Fatal(err)
			}
			r, err := compute.CallFunction(cctx, "add", nil, m, one)
			if err != nil {
				b.Fatal(err)
			}
			m.Release()
			r.Release()
		}
		report(b)
	})
	b.Run("filter/engine", engine("value % 2 = 0"))
	b.Run("filter/baseline", func(b *testing.B) {
		b.ReportAllocs()
		col := rec.Column(0).(*array.Int64)
		for b.Loop() {
			bits := memory.NewResizableBuffer(mem)
			bits.Resize(int(bitutil.BytesForBits(benchRows)))
			out := bits.Bytes()
			clear(out)
			for i, v := range col.Int64Values() {
				if v%2 == 0 {
					out[i>>3] |= 1 << (i & 7)
				}
			}
			valid := memory.NewResizableBuffer(mem)
			valid.Resize(int(bitutil.BytesForBits(benchRows)))
			bitutil.CopyBitmap(col.NullBitmapBytes(), col.Data().Offset(), benchRows, valid.Bytes(), 0)
			d := array.NewData(arrow.FixedWidthTypes.Boolean, benchRows, []*memory.Buffer{valid, bits}, nil, col.NullN(), 0)
			a := array.NewBooleanData(d)
			d.Release()
			valid.Release()
			bits.Release()
			a.Release()
		}
		report(b)
	})
	b.Run("filter/arrow-compute", func(b *testing.B) {
		// arrow-go has no integer modulo kernel; this measures "equal"
		// alone on the column, a lower bound for the compute path.
		b.ReportAllocs()
		cctx := compute.WithAllocator(ctx, mem)
		col := compute.NewDatum(rec.Column(0))
		defer col.Release()
		zero := compute.NewDatum(int64(0))
		for b.Loop() {
			r, err := compute.CallFunction(cctx, "equal", nil, col, zero)
			if err != nil {
				b.Fatal(err)
			}
			r.Release()
		}
		report(b)
	})
	b.Run("case/engine", engine("CASE WHEN value % 3 = 0 THEN value / 3 WHEN value > 100 THEN -value ELSE 0 END"))
	b.Run("string/engine", engine("CAST(value AS VARCHAR) || 'x'"))
}
