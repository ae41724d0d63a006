package jsonrow_test

import (
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sabotdev/sabot/worker/connector/jsonrow"
)

func TestRowEncoder(t *testing.T) {
	t.Parallel()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "i", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Millisecond}, Nullable: true},
		{Name: "f", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: `we"ird`, Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	}, nil)
	bld := array.NewRecordBuilder(mem, schema)
	defer bld.Release()
	bld.Field(0).(*array.Int64Builder).AppendValues([]int64{-3, 0}, []bool{true, false})
	bld.Field(1).(*array.StringBuilder).AppendValues([]string{"a\"b\\c\n\x01é", ""}, []bool{true, false})
	ts := time.Date(2024, 5, 6, 7, 8, 9, 123e6, time.UTC).UnixMilli()
	bld.Field(2).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{arrow.Timestamp(ts), 0}, []bool{true, false})
	bld.Field(3).(*array.Float64Builder).AppendValues([]float64{1.5, 0}, []bool{true, false})
	bld.Field(4).(*array.BooleanBuilder).AppendValues([]bool{true, false}, []bool{true, false})
	bld.Field(5).(*array.Int32Builder).AppendValues([]int32{7, 0}, []bool{true, false})
	rec := bld.NewRecordBatch()
	defer rec.Release()
	enc := jsonrow.NewEncoder(schema)
	enc.Reset(rec)
	for i, want := range []string{
		`{"i":-3,"s":"a\"b\\c\n\u0001é","ts":"2024-05-06T07:08:09.123Z","f":1.5,"b":true,"we\"ird":7}`,
		`{"i":null,"s":null,"ts":null,"f":null,"b":null,"we\"ird":null}`,
	} {
		if got := string(enc.AppendRow(nil, i)); got != want {
			t.Errorf("row %d:\n got %s\nwant %s", i, got, want)
		}
	}
}
