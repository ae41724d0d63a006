package runtime

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/float16"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// gatherSchema has a column of each kind gather copies by hand, plus a
// list column that goes through compute's take.
func gatherSchema() *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{
		{Name: "i8", Type: arrow.PrimitiveTypes.Int8, Nullable: true},
		{Name: "i32", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		{Name: "i64", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "f16", Type: arrow.FixedWidthTypes.Float16, Nullable: true},
		{Name: "f64", Type: arrow.PrimitiveTypes.Float64},
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Millisecond}, Nullable: true},
		{Name: "dec", Type: &arrow.Decimal128Type{Precision: 20, Scale: 2}, Nullable: true},
		{Name: "fsb", Type: &arrow.FixedSizeBinaryType{ByteWidth: 3}, Nullable: true},
		{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "bin", Type: arrow.BinaryTypes.Binary},
		{Name: "ls", Type: arrow.BinaryTypes.LargeString, Nullable: true},
		{Name: "list", Type: arrow.ListOf(arrow.PrimitiveTypes.Int64), Nullable: true},
	}, nil)
}

func gatherBatch(t *testing.T, mem memory.Allocator, n int) arrow.RecordBatch {
	t.Helper()
	r := rand.New(rand.NewPCG(3, 4))
	b := array.NewRecordBuilder(mem, gatherSchema())
	defer b.Release()
	str := func() string { return string(make([]byte, r.IntN(12))) + "x" }
	for i := range n {
		null := r.IntN(5) == 0
		for c, f := range b.Fields() {
			if null && gatherSchema().Field(c).Nullable {
				f.AppendNull()
				continue
			}
			switch f := f.(type) {
			case *array.Int8Builder:
				f.Append(int8(i))
			case *array.Int32Builder:
				f.Append(int32(i * 3))
			case *array.Int64Builder:
				f.Append(int64(i) << 33)
			case *array.Float16Builder:
				f.Append(float16.New(float32(i) / 4))
			case *array.Float64Builder:
				f.Append(float64(i) / 3)
			case *array.TimestampBuilder:
				f.Append(arrow.Timestamp(1e12 + int64(i)))
			case *array.Decimal128Builder:
				f.Append(decimal128.FromI64(int64(i) * 101))
			case *array.FixedSizeBinaryBuilder:
				f.Append([]byte{byte(i), byte(i >> 8), 7})
			case *array.BooleanBuilder:
				f.Append(i%3 == 0)
			case *array.StringBuilder:
				f.Append(str())
			case *array.BinaryBuilder:
				f.Append([]byte(str()))
			case *array.LargeStringBuilder:
				f.Append(str())
			case *array.ListBuilder:
				f.Append(true)
				for k := range i % 4 {
					f.ValueBuilder().(*array.Int64Builder).Append(int64(k))
				}
			default:
				t.Fatalf("column %d: unexpected builder %T", c, f)
			}
		}
	}
	return b.NewRecordBatch()
}

// TestGather checks gather against compute's take, column by column, on
// whole and sliced batches, for increasing, repeated and unordered rows.
func TestGather(t *testing.T) {
	t.Parallel()
	mem := checkedMem(t)
	ctx := context.Background()
	rec := gatherBatch(t, mem, 300)
	defer rec.Release()
	sliced := rec.NewSlice(37, 290)
	defer sliced.Release()
	for name, rows := range map[string][]int32{
		"sparse":    {0, 5, 6, 100, 199, 250},
		"one":       {17},
		"unordered": {9, 3, 3, 120, 0},
		"none":      {},
		"run":       {40, 41, 42, 43},
		"gapped":    {40, 41, 43, 43},
	} {
		for _, src := range []arrow.RecordBatch{rec, sliced} {
			got, err := gather(ctx, mem, src, rows)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			want, err := take(ctx, mem, src, rows)
			if err != nil {
				t.Fatalf("%s: take: %v", name, err)
			}
			if got.NumRows() != int64(len(rows)) {
				t.Errorf("%s: %d rows, want %d", name, got.NumRows(), len(rows))
			}
			for c := range int(src.NumCols()) {
				g, w := got.Column(c), want.Column(c)
				if v, ok := g.(interface{ ValidateFull() error }); ok {
					if err := v.ValidateFull(); err != nil {
						t.Errorf("%s: column %s: %v", name, src.ColumnName(c), err)
					}
				}
				if !array.Equal(g, w) {
					t.Errorf("%s: column %s = %v, want %v", name, src.ColumnName(c), g, w)
				}
			}
			got.Release()
			want.Release()
		}
	}
}

// TestGatherRunIsSlice checks that a contiguous run shares rec's memory.
func TestGatherRunIsSlice(t *testing.T) {
	t.Parallel()
	mem := checkedMem(t)
	rec := gatherBatch(t, mem, 50)
	defer rec.Release()
	before := mem.CurrentAlloc()
	got, err := gather(context.Background(), mem, rec, []int32{10, 11, 12})
	if err != nil {
		t.Fatal(err)
	}
	defer got.Release()
	if mem.CurrentAlloc() != before {
		t.Error("gathering a contiguous run copied")
	}
	if v := got.Column(1).(*array.Int32).Value(0); v != 30 && got.Column(1).IsValid(0) {
		t.Errorf("first row of the run has i32 %d, want 30", v)
	}
}
