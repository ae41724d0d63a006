package expr_test

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sabotdev/sabot/sql/expr"
)

func Example() {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "value", Type: arrow.PrimitiveTypes.Int64},
		{Name: "name", Type: arrow.BinaryTypes.String},
	}, nil)
	mem := memory.NewGoAllocator()
	b := array.NewRecordBuilder(mem, schema)
	b.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 2, 3, 4}, nil)
	b.Field(1).(*array.StringBuilder).AppendValues([]string{"a", "x", "b", "c"}, nil)
	rec := b.NewRecordBatch()
	b.Release()
	defer rec.Release()

	filter, err := expr.Compile("value % 2 = 0 AND name <> 'x'", schema)
	if err != nil {
		panic(err)
	}
	keep, err := filter.Eval(context.Background(), mem, rec)
	if err != nil {
		panic(err)
	}
	defer keep.Release()
	fmt.Println(filter.Type(), keep)

	_, err = expr.Compile("vale * 2", schema)
	fmt.Println(err)
	// Output:
	// bool [false false false true]
	// expr: at offset 0: unknown column "vale" (columns: value, name)
}
