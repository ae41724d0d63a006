package expr_test

import (
	"context"
	"errors"
	"testing"

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
	})
}
