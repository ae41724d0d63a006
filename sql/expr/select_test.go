package expr_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sabotdev/sabot/sql/expr"
)

// trueRows is the oracle for Select: the rows where Eval is TRUE.
func trueRows(t testing.TB, x *expr.Expr, mem memory.Allocator, rec arrow.RecordBatch) []int32 {
	t.Helper()
	res, err := x.Eval(context.Background(), mem, rec)
	if err != nil {
		t.Fatalf("Eval(%q): %v", x, err)
	}
	defer res.Release()
	b := res.(*array.Boolean)
	rows := []int32{}
	for i := range b.Len() {
		if b.IsValid(i) && b.Value(i) {
			rows = append(rows, int32(i))
		}
	}
	return rows
}

func TestSelect(t *testing.T) {
	t.Parallel()
	// testBatch: value [1 2 null -4 5], small [10 20 30 null 50],
	// f [1.5 null 2.5 -0.5 0], flag [t f null t f].
	for _, tc := range []struct {
		src  string
		want []int32
	}{
		// Fused shapes.
		{"value % 2 = 0", []int32{1, 3}},
		{"0 = value % 2", []int32{1, 3}},
		{"MOD(value, 2) <> 0", []int32{0, 4}},
		{"value % 3 < 0", []int32{3}},
		{"value % -3 >= 1", []int32{0, 1, 4}},
		{"value % -1 = 0", []int32{0, 1, 3, 4}},
		{"value > 1", []int32{1, 4}},
		{"2 < value", []int32{4}},
		{"value <= -4", []int32{3}},
		{"value >= 2", []int32{1, 4}},
		{"value = 5", []int32{4}},
		{"value <> 5", []int32{0, 1, 3}},
		{"small % 20 = 10", []int32{0, 2, 4}},
		{"f > 0", []int32{0, 2}},
		{"f < 0", []int32{3}},
		{"0.0 = f", []int32{4}},
		{"u % 2 = 1", []int32{0, 2, 4}},
		// Evaluated, then collected.
		{"flag", []int32{0, 3}},
		{"value > 1.5", []int32{1, 4}},
		{"value % 2 = 0 AND name <> 'x'", []int32{1}},
		{"value IS NULL", []int32{2}},
		{"TRUE", []int32{0, 1, 2, 3, 4}},
		{"FALSE", []int32{}},
		{"CAST(NULL AS BOOLEAN)", []int32{}},
		{"FALSE AND value % 0 = 0", []int32{}},
		{"value = small", []int32{}},
	} {
		t.Run(tc.src, func(t *testing.T) {
			t.Parallel()
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			x, err := expr.Compile(tc.src, testSchema())
			if err != nil {
				t.Fatal(err)
			}
			rec := testBatch(t, mem)
			defer rec.Release()
			got, err := x.Select(context.Background(), mem, rec, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) || !slices.Equal(got, tc.want) {
				t.Errorf("Select(%q) = %v, want %v", tc.src, got, tc.want)
			}
			if oracle := trueRows(t, x, mem, rec); !slices.Equal(got, oracle) && len(got)+len(oracle) > 0 {
				t.Errorf("Select(%q) = %v, but Eval is TRUE at %v", tc.src, got, oracle)
			}
			// Appends to what sel holds, and honours a slice's offset.
			sl := rec.NewSlice(1, 5)
			defer sl.Release()
			pre := []int32{-7}
			got, err = x.Select(context.Background(), mem, sl, pre)
			if err != nil {
				t.Fatal(err)
			}
			want := []int32{-7}
			for _, r := range tc.want {
				if r >= 1 {
					want = append(want, r-1)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("Select(%q) on rows 1..4 after -7 = %v, want %v", tc.src, got, want)
			}
		})
	}
}

func TestSelectErrors(t *testing.T) {
	t.Parallel()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := testBatch(t, mem)
	defer rec.Release()
	ctx := context.Background()

	x, err := expr.Compile("value + 1", testSchema())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.Select(ctx, mem, rec, nil); !errors.Is(err, expr.ErrNotBoolean) {
		t.Errorf("Select of a BIGINT: %v, want ErrNotBoolean", err)
	}

	// A zero modulus is not fused: it fails on the first live row, as Eval.
	x, err = expr.Compile("value % 0 = 0", testSchema())
	if err != nil {
		t.Fatal(err)
	}
	var ee *expr.EvalError
	if _, err := x.Select(ctx, mem, rec, nil); !errors.As(err, &ee) || ee.Row != 0 {
		t.Errorf("Select(value %% 0 = 0): %v, want an EvalError at row 0", err)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	x, err = expr.Compile("value > 0", testSchema())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.Select(cancelled, mem, rec, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Select with a cancelled context: %v", err)
	}
}

// randomBatch has nullable int64 and float64 columns with extreme values
// (MinInt64, MaxInt64, NaN, ±Inf, -0) among random ones.
func randomBatch(t testing.TB, mem memory.Allocator, n int, seed uint64) arrow.RecordBatch {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "i", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "x", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, nil)
	r := rand.New(rand.NewPCG(seed, 7))
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	ib, fb := b.Field(0).(*array.Int64Builder), b.Field(1).(*array.Float64Builder)
	ints := []int64{math.MinInt64, math.MaxInt64, 0, -1, 1, 123, -123, 246}
	floats := []float64{math.NaN(), math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 0, 1.5, -2}
	for range n {
		switch r.IntN(10) {
		case 0:
			ib.AppendNull()
		case 1, 2:
			ib.Append(ints[r.IntN(len(ints))])
		default:
			ib.Append(r.Int64N(2000) - 1000)
		}
		switch r.IntN(10) {
		case 0:
			fb.AppendNull()
		case 1, 2:
			fb.Append(floats[r.IntN(len(floats))])
		default:
			fb.Append(r.Float64()*4 - 2)
		}
	}
	return b.NewRecordBatch()
}

// TestSelectMatchesEval checks every fused shape and operator against
// Eval on random batches with nulls and extreme values, whole and sliced.
func TestSelectMatchesEval(t *testing.T) {
	t.Parallel()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := randomBatch(t, mem, 3000, 1)
	defer rec.Release()
	sl := rec.NewSlice(13, 2990)
	defer sl.Release()
	var srcs []string
	for _, op := range []string{"=", "<>", "<", "<=", ">", ">="} {
		srcs = append(srcs,
			"i "+op+" 5", "-5 "+op+" i", "i % 123 "+op+" 0", "i % -7 "+op+" -3", "0 "+op+" MOD(i, 4)",
			"i % 9223372036854775807 "+op+" -1",
			"x "+op+" 0.5", "0 "+op+" x", "x "+op+" CAST('NaN' AS DOUBLE)",
		)
	}
	for _, src := range srcs {
		x, err := expr.Compile(src, rec.Schema())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range []arrow.RecordBatch{rec, sl} {
			got, err := x.Select(context.Background(), mem, b, make([]int32, 0, 8))
			if err != nil {
				t.Fatalf("Select(%q): %v", src, err)
			}
			if want := trueRows(t, x, mem, b); !slices.Equal(got, want) {
				t.Errorf("Select(%q) over %d rows: %d rows, Eval TRUE at %d", src, b.NumRows(), len(got), len(want))
			}
		}
	}
}

// TestWidenedMatchesPromotion checks that DOUBLE arithmetic between a
// constant and a BIGINT computes exactly what promoting the BIGINT first
// does, bit for bit, for every operator and side.
func TestWidenedMatchesPromotion(t *testing.T) {
	t.Parallel()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := randomBatch(t, mem, 2000, 2)
	defer rec.Release()
	col := rec.Column(0).(*array.Int64)
	const c = 0.908
	for _, tc := range []struct {
		src string
		f   func(x float64) float64
	}{
		{"0.908 * i", func(x float64) float64 { return c * x }},
		{"i * 0.908", func(x float64) float64 { return x * c }},
		{"0.908 + i", func(x float64) float64 { return c + x }},
		{"i - 0.908", func(x float64) float64 { return x - c }},
		{"0.908 - i", func(x float64) float64 { return c - x }},
		{"i / 0.908", func(x float64) float64 { return x / c }},
		{"0.908 / i", func(x float64) float64 { return c / x }},
	} {
		x, err := expr.Compile(tc.src, rec.Schema())
		if err != nil {
			t.Fatal(err)
		}
		res, err := x.Eval(context.Background(), mem, rec)
		if err != nil {
			t.Fatal(err)
		}
		got := res.(*array.Float64)
		for i := range got.Len() {
			if got.IsNull(i) != col.IsNull(i) {
				t.Fatalf("%s: row %d null %v, input null %v", tc.src, i, got.IsNull(i), col.IsNull(i))
			}
			if col.IsNull(i) {
				continue
			}
			want := tc.f(float64(col.Value(i)))
			if math.Float64bits(got.Value(i)) != math.Float64bits(want) {
				t.Fatalf("%s: row %d (%d) = %v, want %v", tc.src, i, col.Value(i), got.Value(i), want)
			}
		}
		res.Release()
	}
}

// BenchmarkSelect compares the fused WHERE kernel with evaluating the same
// condition to a boolean array and collecting its TRUE rows.
func BenchmarkSelect(b *testing.B) {
	mem := memory.NewGoAllocator()
	rec := benchBatch(mem)
	defer rec.Release()
	ctx := context.Background()
	for _, src := range []string{"value % 123 = 0", "value > 549755813888"} {
		x, err := expr.Compile(src, rec.Schema())
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("fused/%s", src), func(b *testing.B) {
			b.ReportAllocs()
			var sel []int32
			for b.Loop() {
				if sel, err = x.Select(ctx, mem, rec, sel[:0]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*benchRows/b.Elapsed().Seconds(), "rows/s")
		})
		b.Run(fmt.Sprintf("eval/%s", src), func(b *testing.B) {
			b.ReportAllocs()
			var sel []int32
			for b.Loop() {
				res, err := x.Eval(ctx, mem, rec)
				if err != nil {
					b.Fatal(err)
				}
				mask := res.(*array.Boolean)
				sel = sel[:0]
				for i := range mask.Len() {
					if mask.IsValid(i) && mask.Value(i) {
						sel = append(sel, int32(i))
					}
				}
				res.Release()
			}
			b.ReportMetric(float64(b.N)*benchRows/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
