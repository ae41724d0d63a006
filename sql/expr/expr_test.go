package expr_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sabotdev/sabot/sql/expr"
)

// testSchema has one column of each supported input type.
func testSchema() *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{
		{Name: "value", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "small", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		{Name: "f", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "flag", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "d", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Millisecond}, Nullable: true},
		{Name: "u", Type: arrow.PrimitiveTypes.Uint8},
		{Name: "f32", Type: arrow.PrimitiveTypes.Float32},
		{Name: "big", Type: arrow.BinaryTypes.LargeString},
		{Name: "weird name", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
}

// testBatch builds a 5-row batch of testSchema; nulls are where the
// validity slices say false.
func testBatch(t testing.TB, mem memory.Allocator) arrow.RecordBatch {
	t.Helper()
	b := array.NewRecordBuilder(mem, testSchema())
	defer b.Release()
	ok := []bool{true, true, false, true, true}
	b.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 2, 0, -4, 5}, ok)
	b.Field(1).(*array.StringBuilder).AppendValues([]string{"a", "Bob", "", "x", "héllo"}, ok)
	b.Field(2).(*array.Int32Builder).AppendValues([]int32{10, 20, 30, 0, 50}, []bool{true, true, true, false, true})
	b.Field(3).(*array.Float64Builder).AppendValues([]float64{1.5, 0, 2.5, -0.5, 0}, []bool{true, false, true, true, true})
	b.Field(4).(*array.BooleanBuilder).AppendValues([]bool{true, false, false, true, false}, ok)
	b.Field(5).(*array.Int64Builder).AppendValues([]int64{1, 0, 2, 0, 3}, []bool{true, true, true, false, true})
	b.Field(6).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{1000, 2000, 3000, 0, 5000}, []bool{true, true, true, false, true})
	b.Field(7).(*array.Uint8Builder).AppendValues([]uint8{1, 2, 3, 4, 255}, nil)
	b.Field(8).(*array.Float32Builder).AppendValues([]float32{0.5, 1, 1.5, 2, 2.5}, nil)
	b.Field(9).(*array.LargeStringBuilder).AppendValues([]string{"p", "q", "r", "s", "t"}, nil)
	b.Field(10).(*array.Int64Builder).AppendValues([]int64{7, 7, 7, 7, 7}, nil)
	return b.NewRecordBatch()
}

func TestEval(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, src, typ, want string
	}{
		// Columns and literals.
		{"column", "value", "int64", "[1 2 (null) -4 5]"},
		{"quoted column", "`weird name` + 1", "int64", "[8 8 8 8 8]"},
		{"widen int32", "small", "int64", "[10 20 30 (null) 50]"},
		{"widen uint8", "u * 2", "int64", "[2 4 6 8 510]"},
		{"widen float32", "f32 + 0", "float64", "[0.5 1 1.5 2 2.5]"},
		{"large string", "big || '!'", "utf8", `["p!" "q!" "r!" "s!" "t!"]`},
		{"timestamp passthrough", "ts", "timestamp[ms]", "[1000 2000 3000 (null) 5000]"},
		{"int literal broadcast", "42", "int64", "[42 42 42 42 42]"},
		{"float literal", "1.5e1", "float64", "[15 15 15 15 15]"},
		{"string literal escape", "'it''s'", "utf8", `["it's" "it's" "it's" "it's" "it's"]`},
		{"min bigint literal", "-9223372036854775808", "int64", "[-9223372036854775808 -9223372036854775808 -9223372036854775808 -9223372036854775808 -9223372036854775808]"},
		{"keyword case", "value is NOT null", "bool", "[true true false true true]"},

		// Arithmetic.
		{"add", "value + 1", "int64", "[2 3 (null) -3 6]"},
		{"map example", "value * 2 + 1", "int64", "[3 5 (null) -7 11]"},
		{"sub const left", "10 - value", "int64", "[9 8 (null) 14 5]"},
		{"precedence", "1 + value * 2 - 3", "int64", "[0 2 (null) -10 8]"},
		{"parens", "(1 + value) * 2", "int64", "[4 6 (null) -6 12]"},
		{"unary minus", "-value", "int64", "[-1 -2 (null) 4 -5]"},
		{"unary minus binds tight", "-value * 2", "int64", "[-2 -4 (null) 8 -10]"},
		{"int division truncates", "value / 2", "int64", "[0 1 (null) -2 2]"},
		{"int division by column", "100 / small", "int64", "[10 5 3 (null) 2]"},
		{"modulo sign of dividend", "value % 3", "int64", "[1 2 (null) -1 2]"},
		{"mod function", "MOD(value, 3)", "int64", "[1 2 (null) -1 2]"},
		{"both columns", "value + small", "int64", "[11 22 (null) (null) 55]"},
		{"overflow wraps", "9223372036854775807 + value", "int64", "[-9223372036854775808 -9223372036854775807 (null) 9223372036854775803 -9223372036854775804]"},
		{"promote int float", "value + 0.5", "float64", "[1.5 2.5 (null) -3.5 5.5]"},
		{"float column", "f * 2", "float64", "[3 (null) 5 -1 0]"},
		{"float division", "value / 2.0", "float64", "[0.5 1 (null) -2 2.5]"},
		{"float division by zero", "1.0 / f", "float64", "[0.6666666666666666 (null) 0.4 -2 +Inf]"},
		{"float modulo", "f % 1", "float64", "[0.5 (null) 0.5 -0.5 0]"},
		{"null arithmetic", "value + NULL", "int64", "[(null) (null) (null) (null) (null)]"},
		{"const left in place", "100 - value * 2", "int64", "[98 96 (null) 108 90]"},
		{"const left times in place", "3 * (value + 1)", "int64", "[6 9 (null) -9 18]"},
		{"const left float divide in place", "1.0 / (f * 2)", "float64", "[0.3333333333333333 (null) 0.2 -1 +Inf]"},
		{"owned cast in place", "CAST(f AS BIGINT) * 2", "int64", "[2 (null) 4 0 0]"},
		{"widened times const left", "0.5 * value", "float64", "[0.5 1 (null) -2 2.5]"},
		{"widened minus const left", "1.5 - value", "float64", "[0.5 -0.5 (null) 5.5 -3.5]"},
		{"widened divide const left", "2.0 / value", "float64", "[2 1 (null) -0.5 0.4]"},
		{"widened narrow column", "small * 0.5", "float64", "[5 10 15 (null) 25]"},
		{"widened expression", "0.5 * (value + 1)", "float64", "[1 1.5 (null) -1.5 3]"},
		{"widened null constant", "value * CAST(NULL AS DOUBLE)", "float64", "[(null) (null) (null) (null) (null)]"},
		{"abs", "ABS(value)", "int64", "[1 2 (null) 4 5]"},
		{"abs float", "abs(f)", "float64", "[1.5 (null) 2.5 0.5 0]"},

		// Comparison.
		{"filter example", "value % 2 = 0 AND name <> 'x'", "bool", "[false true (null) false false]"},
		{"eq", "value = 2", "bool", "[false true (null) false false]"},
		{"ne bang", "value != 2", "bool", "[true false (null) true true]"},
		{"lt const left", "2 < value", "bool", "[false false (null) false true]"},
		{"le", "value <= 2", "bool", "[true true (null) true false]"},
		{"gt columns", "small > value", "bool", "[true true (null) (null) true]"},
		{"ge", "value >= -4", "bool", "[true true (null) true true]"},
		{"int vs float", "value > 1.5", "bool", "[false true (null) false true]"},
		{"string compare", "name < 'b'", "bool", "[true true (null) false false]"},
		{"string eq", "name = 'Bob'", "bool", "[false true (null) false false]"},
		{"bool compare", "flag = TRUE", "bool", "[true false (null) true false]"},
		{"timestamp compare", "ts > ts", "bool", "[false false false (null) false]"},
		{"compare null", "value = NULL", "bool", "[(null) (null) (null) (null) (null)]"},
		{"between", "value BETWEEN 1 AND 2", "bool", "[true true (null) false false]"},
		{"not between", "value NOT BETWEEN 1 AND 2", "bool", "[false false (null) true true]"},
		{"between with arithmetic bounds", "value BETWEEN 0 + 1 AND 1 + 1", "bool", "[true true (null) false false]"},
		{"in", "value IN (1, 5, 7)", "bool", "[true false (null) false true]"},
		{"in with null", "value IN (1, NULL)", "bool", "[true (null) (null) (null) (null)]"},
		{"not in", "value NOT IN (1, 5)", "bool", "[false true (null) true false]"},
		{"in strings", "name IN ('a', 'x')", "bool", "[true false (null) true false]"},

		// Boolean logic, three-valued.
		{"and", "flag AND value > 1", "bool", "[false false (null) false false]"},
		{"or", "flag OR value > 1", "bool", "[true true (null) true true]"},
		{"and null false", "flag AND NULL", "bool", "[(null) false (null) (null) false]"},
		{"or null true", "flag OR NULL", "bool", "[true (null) (null) true (null)]"},
		{"and true", "flag AND TRUE", "bool", "[true false (null) true false]"},
		{"or false", "FALSE OR flag", "bool", "[true false (null) true false]"},
		{"false and", "FALSE AND flag", "bool", "[false false false false false]"},
		{"not", "NOT flag", "bool", "[false true (null) false true]"},
		{"not precedence", "NOT value = 2", "bool", "[true false (null) true true]"},
		{"or precedence", "value = 1 OR value = 2 AND FALSE", "bool", "[true false (null) false false]"},
		{"is null", "value IS NULL", "bool", "[false false true false false]"},
		{"is null never null", "u IS NULL", "bool", "[false false false false false]"},
		{"short-circuit and", "d <> 0 AND 10 / d > 3", "bool", "[true false true (null) false]"},
		{"short-circuit or", "d = 0 OR 10 / d > 3", "bool", "[true true true (null) false]"},

		// Strings.
		{"concat", "name || '-' || name", "utf8", `["a-a" "Bob-Bob" (null) "x-x" "héllo-héllo"]`},
		{"concat function", "CONCAT('<', name, '>')", "utf8", `["<a>" "<Bob>" (null) "<x>" "<héllo>"]`},
		{"concat precedence", "name || 'x' = 'ax'", "bool", "[true false (null) false false]"},
		{"lower", "LOWER(name)", "utf8", `["a" "bob" (null) "x" "héllo"]`},
		{"upper", "upper(name)", "utf8", `["A" "BOB" (null) "X" "HÉLLO"]`},
		{"char_length", "CHAR_LENGTH(name)", "int64", "[1 3 (null) 1 5]"},

		// CAST.
		{"cast int to double", "CAST(value AS DOUBLE) / 2", "float64", "[0.5 1 (null) -2 2.5]"},
		{"cast double to bigint truncates", "CAST(f AS BIGINT)", "int64", "[1 (null) 2 0 0]"},
		{"cast to int wraps", "CAST(4294967297 AS INT)", "int64", "[1 1 1 1 1]"},
		{"cast int to string", "CAST(value AS VARCHAR)", "utf8", `["1" "2" (null) "-4" "5"]`},
		{"cast double to string", "CAST(f AS STRING)", "utf8", `["1.5" (null) "2.5" "-0.5" "0.0"]`},
		{"cast big double to string", "CAST(1e20 AS STRING)", "utf8", `["1.0E20" "1.0E20" "1.0E20" "1.0E20" "1.0E20"]`},
		{"cast bool to string", "CAST(flag AS VARCHAR)", "utf8", `["TRUE" "FALSE" (null) "TRUE" "FALSE"]`},
		{"cast string to int", "CAST(' 12 ' AS BIGINT) + 1", "int64", "[13 13 13 13 13]"},
		{"cast string to double", "CAST('2.5' AS DOUBLE)", "float64", "[2.5 2.5 2.5 2.5 2.5]"},
		{"cast string to bool", "CAST('yes' AS BOOLEAN)", "bool", "[true true true true true]"},
		{"cast int to bool", "CAST(d AS BOOLEAN)", "bool", "[true false true (null) true]"},
		{"cast null", "CAST(NULL AS VARCHAR)", "utf8", "[(null) (null) (null) (null) (null)]"},
		{"cast column string to int", "CAST(CAST(value AS VARCHAR) AS INTEGER)", "int64", "[1 2 (null) -4 5]"},

		// COALESCE and CASE.
		{"coalesce", "COALESCE(value, small, 0)", "int64", "[1 2 30 -4 5]"},
		{"coalesce promotes", "COALESCE(f, 0)", "float64", "[1.5 0 2.5 -0.5 0]"},
		{"coalesce strings", "COALESCE(name, '?')", "utf8", `["a" "Bob" "?" "x" "héllo"]`},
		{"case", "CASE WHEN value > 1 THEN 'big' WHEN value < 0 THEN 'neg' ELSE 'small' END", "utf8", `["small" "big" "small" "neg" "big"]`},
		{"case no else", "CASE WHEN value > 1 THEN value END", "int64", "[(null) 2 (null) (null) 5]"},
		{"case guarded division", "CASE WHEN d = 0 THEN -1 ELSE 10 / d END", "int64", "[10 -1 5 (null) 3]"},
		{"simple case", "CASE value WHEN 1 THEN 'one' WHEN 2 THEN 'two' ELSE 'many' END", "utf8", `["one" "two" "many" "many" "many"]`},
		{"case promotes", "CASE WHEN flag THEN 1 ELSE 0.5 END", "float64", "[1 0.5 0.5 1 0.5]"},
		{"case bool", "CASE WHEN flag THEN value > 1 ELSE NULL END", "bool", "[false (null) (null) false (null)]"},

		// Constant folding of errors is deferred to evaluation.
		{"guarded constant error", "CASE WHEN FALSE THEN 1 / 0 ELSE 1 END", "int64", "[1 1 1 1 1]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			x, err := expr.Compile(tc.src, testSchema())
			if err != nil {
				t.Fatalf("Compile(%q): %v", tc.src, err)
			}
			if got := x.Type().String(); got != tc.typ {
				t.Errorf("Type() = %s, want %s", got, tc.typ)
			}
			rec := testBatch(t, mem)
			defer rec.Release()
			got, err := x.Eval(context.Background(), mem, rec)
			if err != nil {
				t.Fatalf("Eval(%q): %v", tc.src, err)
			}
			defer got.Release()
			if !arrow.TypeEqual(got.DataType(), x.Type()) {
				t.Errorf("result type %s, Type() %s", got.DataType(), x.Type())
			}
			if got.Len() != 5 {
				t.Errorf("result has %d rows, want 5", got.Len())
			}
			if s := got.String(); s != tc.want {
				t.Errorf("Eval(%q) =\n  %s\nwant\n  %s", tc.src, s, tc.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, src string
		off       int
		msg       string
	}{
		{"unknown column", "vale + 1", 0, `unknown column "vale" (columns: value, name, small, f, flag, d, ts, u, f32, big, weird name)`},
		{"case-sensitive column", "1 + Value", 4, `did you mean "value"?`},
		{"string plus int", "name + value", 5, "operator + needs numbers, got VARCHAR and BIGINT"},
		{"missing paren", "(value + 1", 10, `expected ")" but found end of expression`},
		{"trailing token", "value 1", 6, `expected end of expression but found "1"`},
		{"empty", "  ", 2, "empty expression"},
		{"dangling operator", "value *", 7, "expected an operand but found end of expression"},
		{"unterminated string", "name = 'abc", 7, "unterminated string"},
		{"bad character", "value # 2", 6, `unexpected character '#'`},
		{"compare mismatch", "name = 1", 5, "operator = cannot compare VARCHAR with BIGINT"},
		{"and non-bool", "value AND flag", 6, "operator AND needs BOOLEAN operands, got BIGINT and BOOLEAN"},
		{"not non-bool", "NOT value", 0, "NOT needs a BOOLEAN, got BIGINT"},
		{"unknown function", "foo(value)", 0, "unknown function FOO"},
		{"arity", "ABS(value, 1)", 0, "function ABS takes 1 argument, got 2"},
		{"lower of int", "LOWER(value)", 0, "function LOWER needs a VARCHAR, got BIGINT"},
		{"unknown cast type", "CAST(value AS DATE)", 14, "unknown type DATE in CAST"},
		{"cast missing as", "CAST(value BIGINT)", 11, `expected AS but found "BIGINT"`},
		{"bare null", "NULL", 0, "expression is always NULL"},
		{"int literal too big", "9223372036854775808", 0, "out of range for BIGINT"},
		{"reserved word", "value + end", 8, "found keyword END"},
		{"coalesce mismatch", "COALESCE(value, 'x')", 16, "COALESCE values must have one type"},
		{"case mismatch", "CASE WHEN flag THEN 1 ELSE 'x' END", 27, "CASE values must have one type"},
		{"case non-bool when", "CASE WHEN value THEN 1 END", 10, "WHEN condition must be BOOLEAN, got BIGINT"},
		{"case without when", "CASE END", 5, "expected WHEN but found"},
		{"in mismatch", "value IN (1, 'a')", 13, "IN list value of type VARCHAR"},
		{"between mismatch", "value BETWEEN 'a' AND 2", 14, "BETWEEN cannot compare BIGINT with lower bound VARCHAR"},
		{"concat non-string", "name || value", 5, "operator || needs strings, got VARCHAR and BIGINT"},
		{"timestamp vs int", "ts > 1", 3, "operator > cannot compare TIMESTAMP(3) with BIGINT"},
		{"is without null", "value IS 1", 9, `expected NULL but found "1"`},
		{"malformed number", "1e", 0, "exponent needs digits"},
		{"empty quoted identifier", "``", 0, "empty quoted identifier"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := expr.Compile(tc.src, testSchema())
			var e *expr.Error
			if !errors.As(err, &e) {
				t.Fatalf("Compile(%q) error = %v, want *expr.Error", tc.src, err)
			}
			if e.Offset != tc.off {
				t.Errorf("Compile(%q) offset = %d, want %d (%v)", tc.src, e.Offset, tc.off, err)
			}
			if !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("Compile(%q) msg = %q, want it to contain %q", tc.src, e.Msg, tc.msg)
			}
			if e.Src != tc.src {
				t.Errorf("Src = %q, want %q", e.Src, tc.src)
			}
			if !strings.HasPrefix(err.Error(), "expr: ") {
				t.Errorf("error %q lacks the expr: prefix", err)
			}
		})
	}
}

func TestEvalErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, src string
		row, off  int
		msg       string
	}{
		{"division by zero column", "value / d", 1, 6, "division by zero"},
		{"modulo by zero", "MOD(value, d)", 1, 0, "modulo by zero"},
		{"division by zero constant", "value / 0", 0, 6, "division by zero"},
		{"constant division by zero", "1 / 0", 0, 2, "division by zero"},
		{"bad cast", "CAST(name AS BIGINT)", 0, 0, `cannot cast "a" to BIGINT`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			x, err := expr.Compile(tc.src, testSchema())
			if err != nil {
				t.Fatal(err)
			}
			rec := testBatch(t, mem)
			defer rec.Release()
			got, err := x.Eval(context.Background(), mem, rec)
			if err == nil {
				got.Release()
				t.Fatalf("Eval(%q) succeeded, want an error", tc.src)
			}
			var e *expr.EvalError
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not an *expr.EvalError", err)
			}
			if e.Row != tc.row || e.Offset != tc.off || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("got row %d offset %d msg %q, want row %d offset %d msg %q", e.Row, e.Offset, e.Msg, tc.row, tc.off, tc.msg)
			}
		})
	}
}

func TestSchemaMismatch(t *testing.T) {
	t.Parallel()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	other := arrow.NewSchema([]arrow.Field{{Name: "value", Type: arrow.BinaryTypes.String}}, nil)
	x, err := expr.Compile("value + 1", testSchema())
	if err != nil {
		t.Fatal(err)
	}
	b := array.NewStringBuilder(mem)
	b.Append("x")
	col := b.NewArray()
	b.Release()
	rec := array.NewRecordBatch(other, []arrow.Array{col}, 1)
	col.Release()
	defer rec.Release()
	if got, err := x.Eval(context.Background(), mem, rec); err == nil {
		got.Release()
		t.Fatal("Eval on a batch of another schema succeeded")
	}
}

func TestColumns(t *testing.T) {
	t.Parallel()
	x, err := expr.Compile("value + small * value > `weird name`", testSchema())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(x.Columns(), ","), "value,small,weird name"; got != want {
		t.Errorf("Columns() = %s, want %s", got, want)
	}
	if x.String() != "value + small * value > `weird name`" {
		t.Errorf("String() = %q", x.String())
	}
}

// TestSlicedBatch checks that evaluation honours array offsets, as in a
// batch sliced from a larger one.
func TestSlicedBatch(t *testing.T) {
	t.Parallel()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := testBatch(t, mem)
	defer rec.Release()
	sl := rec.NewSlice(1, 5)
	defer sl.Release()
	for src, want := range map[string]string{
		"value * 2 + small":       "[24 (null) (null) 60]",
		"flag AND value > 0":      "[false (null) false false]",
		"NOT flag":                "[true (null) false true]",
		"COALESCE(value, 99)":     "[2 99 -4 5]",
		"name || '!'":             `["Bob!" (null) "x!" "héllo!"]`,
		"value IS NULL":           "[false true false false]",
		"CAST(small AS VARCHAR)":  `["20" "30" (null) "50"]`,
		"u + CAST(f32 AS BIGINT)": "[3 4 6 257]",
	} {
		x, err := expr.Compile(src, testSchema())
		if err != nil {
			t.Fatal(err)
		}
		got, err := x.Eval(context.Background(), mem, sl)
		if err != nil {
			t.Fatalf("Eval(%q): %v", src, err)
		}
		if got.String() != want {
			t.Errorf("Eval(%q) = %s, want %s", src, got, want)
		}
		got.Release()
	}
}
