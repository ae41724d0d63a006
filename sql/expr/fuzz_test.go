package expr_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sabotdev/sabot/sql/expr"
)

// FuzzCompile compiles arbitrary text against testSchema: it must never
// panic, and whatever compiles must evaluate on testBatch without panicking
// or leaking memory.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		"value * 2 + 1",
		"value % 2 = 0 AND name <> 'x'",
		"CASE WHEN d = 0 THEN -1 ELSE 10 / d END",
		"COALESCE(value, small, 0) BETWEEN -1 AND 3",
		"name || 'it''s' IN ('a', NULL)",
		"CAST(CAST(f AS VARCHAR) AS DOUBLE) > 1e3",
		"NOT flag OR `weird name` IS NOT NULL",
		"UPPER(LOWER(big)) = CONCAT(name, '')",
		"-9223372036854775808 / -1",
		"((((value))))",
		"MOD(value, 123) = 0",
		"0.908 * value > 1",
	} {
		f.Add(s)
	}
	schema := testSchema()
	f.Fuzz(func(t *testing.T, src string) {
		x, err := expr.Compile(src, schema)
		if err != nil {
			var ee *expr.Error
			if !errors.As(err, &ee) {
				t.Fatalf("Compile(%q) returned %T, want *expr.Error", src, err)
			}
			return
		}
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		rec := testBatch(t, mem)
		defer rec.Release()
		got, err := x.Eval(context.Background(), mem, rec)
		if err != nil {
			return
		}
		defer got.Release()
		if got.Len() != int(rec.NumRows()) {
			t.Fatalf("Eval(%q) returned %d rows for %d", src, got.Len(), rec.NumRows())
		}
		// A condition selects exactly the rows where it evaluates TRUE.
		if b, ok := got.(*array.Boolean); ok {
			sel, err := x.Select(context.Background(), mem, rec, nil)
			if err != nil {
				t.Fatalf("Select(%q) failed where Eval did not: %v", src, err)
			}
			var want []int32
			for i := range b.Len() {
				if b.IsValid(i) && b.Value(i) {
					want = append(want, int32(i))
				}
			}
			if !slices.Equal(sel, want) {
				t.Fatalf("Select(%q) = %v, Eval is TRUE at %v", src, sel, want)
			}
		}
	})
}
