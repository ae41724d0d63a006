package eventtime_test

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sabotdev/sabot/worker/eventtime"
)

// newAlloc returns a checked allocator that must end at zero.
func newAlloc(t testing.TB) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

// tsColumn builds a timestamp column of unit; nil in valid means all valid.
func tsColumn(mem memory.Allocator, unit arrow.TimeUnit, vs []int64, valid []bool) arrow.Array {
	b := array.NewTimestampBuilder(mem, &arrow.TimestampType{Unit: unit, TimeZone: "UTC"})
	defer b.Release()
	for i, v := range vs {
		if valid != nil && !valid[i] {
			b.AppendNull()
			continue
		}
		b.Append(arrow.Timestamp(v))
	}
	return b.NewArray()
}

func TestMillis(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		unit arrow.TimeUnit
		in   []int64
		want []int64
	}{
		{"seconds", arrow.Second, []int64{0, 1, -1, 1_700_000_000}, []int64{0, 1000, -1000, 1_700_000_000_000}},
		{"millis", arrow.Millisecond, []int64{0, 5, -5, math.MaxInt64, math.MinInt64}, []int64{0, 5, -5, math.MaxInt64, math.MinInt64}},
		// Floor division: instants before the epoch keep their order.
		{"micros", arrow.Microsecond, []int64{0, 999, 1000, 1999, -1, -1000, -1001}, []int64{0, 0, 1, 1, -1, -1, -2}},
		{"nanos", arrow.Nanosecond, []int64{0, 999_999, 1_000_000, -1, -1_000_000, -1_000_001, math.MinInt64}, []int64{0, 0, 1, -1, -1, -2, math.MinInt64/1_000_000 - 1}},
		{"empty", arrow.Millisecond, []int64{}, []int64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mem := newAlloc(t)
			col := tsColumn(mem, tc.unit, tc.in, nil)
			defer col.Release()
			got, err := eventtime.Millis(nil, col)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Millis = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMillisOtherTypes(t *testing.T) {
	t.Parallel()
	mem := newAlloc(t)

	ib := array.NewInt64Builder(mem)
	ib.AppendValues([]int64{3, -4, 5}, nil)
	ints := ib.NewArray()
	ib.Release()
	defer ints.Release()
	got, err := eventtime.Millis(make([]int64, 0, 1), ints)
	if err != nil || !slices.Equal(got, []int64{3, -4, 5}) {
		t.Errorf("int64: Millis = %v, %v", got, err)
	}

	db := array.NewDate64Builder(mem)
	db.AppendValues([]arrow.Date64{86_400_000}, nil)
	dates := db.NewArray()
	db.Release()
	defer dates.Release()
	got, err = eventtime.Millis(nil, dates)
	if err != nil || !slices.Equal(got, []int64{86_400_000}) {
		t.Errorf("date64: Millis = %v, %v", got, err)
	}

	sb := array.NewStringBuilder(mem)
	sb.Append("2026-01-01")
	strs := sb.NewArray()
	sb.Release()
	defer strs.Release()
	if _, err := eventtime.Millis(nil, strs); !errors.Is(err, eventtime.ErrColumnType) {
		t.Errorf("string: err = %v, want ErrColumnType", err)
	}
}

func TestMillisErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		unit    arrow.TimeUnit
		in      []int64
		valid   []bool
		wantErr error
		wantRow int
	}{
		{"null names the first null row", arrow.Millisecond, []int64{1, 0, 0}, []bool{true, false, false}, eventtime.ErrNullTimestamp, 1},
		{"null in nanos", arrow.Nanosecond, []int64{0}, []bool{false}, eventtime.ErrNullTimestamp, 0},
		{"seconds overflow", arrow.Second, []int64{1, math.MaxInt64 / 999}, nil, eventtime.ErrTimestampRange, 1},
		{"seconds underflow", arrow.Second, []int64{math.MinInt64 / 999}, nil, eventtime.ErrTimestampRange, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mem := newAlloc(t)
			col := tsColumn(mem, tc.unit, tc.in, tc.valid)
			defer col.Release()
			_, err := eventtime.Millis(nil, col)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			var re *eventtime.RowError
			if !errors.As(err, &re) || re.Row != tc.wantRow {
				t.Fatalf("err = %v, want a RowError for row %d", err, tc.wantRow)
			}
		})
	}
}

// record builds a batch with an event-time column "ts" (ms) and a boolean
// column "wm"; a nil marks slice leaves "wm" all null.
func record(mem memory.Allocator, schema *arrow.Schema, ts []int64, marks []bool) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	tb := b.Field(0).(*array.TimestampBuilder)
	mb := b.Field(1).(*array.BooleanBuilder)
	for i, v := range ts {
		tb.Append(arrow.Timestamp(v))
		if marks == nil {
			mb.AppendNull()
		} else {
			mb.Append(marks[i])
		}
	}
	return b.NewRecordBatch()
}

func testSchema() *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Millisecond}},
		{Name: "wm", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	}, nil)
}

func TestExtractor(t *testing.T) {
	t.Parallel()
	mem := newAlloc(t)
	schema := testSchema()
	e := eventtime.NewExtractor("ts")

	rec := record(mem, schema, []int64{5, 7}, nil)
	defer rec.Release()
	got, err := e.Extract(rec)
	if err != nil || !slices.Equal(got, []int64{5, 7}) {
		t.Fatalf("Extract = %v, %v", got, err)
	}
	rec2 := record(mem, schema, []int64{9}, nil)
	defer rec2.Release()
	if got, err := e.Extract(rec2); err != nil || !slices.Equal(got, []int64{9}) {
		t.Fatalf("Extract = %v, %v", got, err)
	}

	// A marker column is not a timestamp column.
	if _, err := eventtime.NewExtractor("wm").Extract(rec); !errors.Is(err, eventtime.ErrColumnType) {
		t.Errorf("bool column: err = %v, want ErrColumnType", err)
	}
	if _, err := eventtime.NewExtractor("nope").Extract(rec); !errors.Is(err, eventtime.ErrColumnNotFound) {
		t.Errorf("missing column: err = %v, want ErrColumnNotFound", err)
	}
}

func TestColumnPunctuated(t *testing.T) {
	t.Parallel()
	mem := newAlloc(t)
	schema := testSchema()
	mux := eventtime.NewMultiplexer(0)
	split, err := mux.AddSplit("p0", eventtime.Strategy{Kind: eventtime.KindPunctuated, MarkerColumn: "wm"}.NewGenerator())
	if err != nil {
		t.Fatal(err)
	}
	e := eventtime.NewExtractor("ts")

	for _, step := range []struct {
		ts      []int64
		marks   []bool
		wantWM  int64
		wantAdv bool
	}{
		{[]int64{10, 12, 11}, []bool{false, true, false}, 12, true},
		{[]int64{13, 14}, nil, 12, false}, // null marks are no marks
		{[]int64{9, 20}, []bool{true, false}, 12, false},
		{[]int64{30, 25}, []bool{true, true}, 30, true},
	} {
		rec := record(mem, schema, step.ts, step.marks)
		ts, err := e.Extract(rec)
		if err != nil {
			t.Fatal(err)
		}
		wm, adv, err := split.OnBatch(rec, ts)
		rec.Release()
		if err != nil || wm != step.wantWM || adv != step.wantAdv {
			t.Errorf("OnBatch(%v, %v) = %d, %t, %v; want %d, %t", step.ts, step.marks, wm, adv, err, step.wantWM, step.wantAdv)
		}
	}

	// Bind failures name the column and leave the watermark alone.
	other := arrow.NewSchema([]arrow.Field{
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Millisecond}},
		{Name: "wm", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	b := array.NewRecordBuilder(mem, other)
	b.Field(0).(*array.TimestampBuilder).Append(40)
	b.Field(1).(*array.Int64Builder).Append(1)
	bad := b.NewRecordBatch()
	b.Release()
	defer bad.Release()
	if _, _, err := split.OnBatch(bad, []int64{40}); !errors.Is(err, eventtime.ErrColumnType) {
		t.Errorf("int64 marker: err = %v, want ErrColumnType", err)
	}
	missing := eventtime.NewColumnPunctuated("absent")
	if err := missing.Bind(bad); !errors.Is(err, eventtime.ErrColumnNotFound) {
		t.Errorf("absent marker: err = %v, want ErrColumnNotFound", err)
	}
	if got := mux.Watermark(); got != 30 {
		t.Errorf("watermark after bind errors = %d, want 30", got)
	}
}
