package kafka

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

var fuzzSchema = arrow.NewSchema([]arrow.Field{
	{Name: "i", Type: arrow.PrimitiveTypes.Int32},
	{Name: "u", Type: arrow.PrimitiveTypes.Uint8},
	{Name: "f", Type: arrow.PrimitiveTypes.Float32},
	{Name: "s", Type: arrow.BinaryTypes.String},
	{Name: "b", Type: arrow.FixedWidthTypes.Boolean},
	{Name: "bin", Type: arrow.BinaryTypes.Binary},
	{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}},
	{Name: "d", Type: arrow.FixedWidthTypes.Date32},
}, nil)

func newFuzzDecoder(t testing.TB, format Format) (*decoder, *array.RecordBuilder) {
	rb := array.NewRecordBuilder(memory.NewGoAllocator(), fuzzSchema)
	t.Cleanup(rb.Release)
	return newDecoder(format, fuzzSchema, rb.Fields()), rb
}

// FuzzDecodeJSON: the decoder never panics, accepts only valid JSON, and
// appends exactly one row per accepted record.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"i":1,"u":2,"f":1.5,"s":"x\u00e9\ud83d\ude00","b":true,"bin":"AP8=","ts":"2026-01-02T03:04:05.123456Z","d":"2026-01-02"}`,
		`{"i":null,"zz":[1,{"a":"\n"}],"s":"a\"b"}`,
		`{}`, `{"i":1e2}`, `{"i":2147483648}`, `[1]`, `{"s":"\ud800"}`, `{"i":-0}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, rb := newFuzzDecoder(t, FormatJSON)
		if err := d.stage(data); err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		d.commit()
		rec := rb.NewRecordBatch()
		defer rec.Release()
		if rec.NumRows() != 1 {
			t.Fatalf("%d rows", rec.NumRows())
		}
	})
}

// FuzzDecodeCSV: the decoder never panics and rows stay whole.
func FuzzDecodeCSV(f *testing.F) {
	for _, s := range []string{`1,2,1.5,"a,""b",true,,2026-01-02T03:04:05Z,2026-01-02`, `,,,,,,,`, `"`, `1,2`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, rb := newFuzzDecoder(t, FormatCSV)
		if err := d.stage(data); err != nil {
			return
		}
		d.commit()
		rec := rb.NewRecordBatch()
		defer rec.Release()
		if rec.NumRows() != 1 {
			t.Fatalf("%d rows", rec.NumRows())
		}
	})
}

func TestParseTimestamp(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"2026-01-02T03:04:05Z", "2026-01-02T03:04:05.1Z", "2026-01-02T03:04:05.123456789Z",
		"2026-01-02T03:04:05+02:30", "2026-01-02T03:04:05.5-07:00", "1969-12-31T23:59:59.999Z",
	} {
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := parseTimestamp([]byte(s))
		if !ok || !got.Equal(want) {
			t.Errorf("parseTimestamp(%q) = %v, %v; want %v", s, got, ok, want)
		}
	}
	if got, ok := parseTimestamp([]byte("2026-01-02 03:04:05.250")); !ok || got.UnixMilli() != 1767323045250 {
		t.Errorf("space form: %v %v", got, ok)
	}
	for _, bad := range []string{"", "2026-01-02", "2026-13-02T03:04:05Z", "2026-01-02T03:04:05.Z", "2026-01-02T03:04:05+0200", "2026-01-02T25:04:05Z"} {
		if _, ok := parseTimestamp([]byte(bad)); ok {
			t.Errorf("parseTimestamp(%q) accepted", bad)
		}
	}
}

// TestDecodeJSONAllocs: decoding a record of the common types allocates
// nothing (STYLE §18).
func TestDecodeJSONAllocs(t *testing.T) {
	d, rb := newFuzzDecoder(t, FormatJSON)
	rec := []byte(`{"i":1,"u":2,"f":1.5,"s":"plain","b":true,"ts":"2026-01-02T03:04:05.123456Z","d":"2026-01-02","other":[1,"x"]}`)
	rb.Reserve(2000)
	for _, f := range rb.Fields() {
		if bb, ok := f.(*array.StringBuilder); ok {
			bb.ReserveData(100_000)
		}
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if err := d.stage(rec); err != nil {
			t.Fatal(err)
		}
		d.commit()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per record", allocs)
	}
}
