package eventtime

import (
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Millis converts col, an event-time column, to int64 milliseconds since
// the epoch in dst[:0] (grown if too short) and returns it. Accepted types:
//
//   - timestamp with any unit and any time zone (the value is an instant):
//     seconds are multiplied by 1000; micro- and nanoseconds are divided,
//     rounding toward negative infinity so that instants before the epoch
//     keep their order (-1 µs is -1 ms, not 0);
//   - int64, taken as milliseconds;
//   - date64 (milliseconds by definition).
//
// A null value fails with a *RowError wrapping ErrNullTimestamp and naming
// the first null row; a seconds value beyond the int64 millisecond range
// fails with a *RowError wrapping ErrTimestampRange. Other types fail with
// ErrColumnType. The conversion allocates nothing once dst has capacity.
func Millis(dst []int64, col arrow.Array) ([]int64, error) {
	n := col.Len()
	if cap(dst) < n {
		dst = make([]int64, n)
	}
	dst = dst[:n]
	switch col.(type) {
	case *array.Timestamp, *array.Int64, *array.Date64:
	default:
		return dst[:0], fmt.Errorf("%w: %s, want timestamp, int64 or date64", ErrColumnType, col.DataType())
	}
	if col.NullN() > 0 {
		for i := range n {
			if col.IsNull(i) {
				return dst[:0], &RowError{Row: i, Err: ErrNullTimestamp}
			}
		}
	}
	switch a := col.(type) {
	case *array.Timestamp:
		vs := a.TimestampValues()
		switch a.DataType().(*arrow.TimestampType).Unit {
		case arrow.Second:
			for i, v := range vs {
				if int64(v) > math.MaxInt64/1000 || int64(v) < math.MinInt64/1000 {
					return dst[:0], &RowError{Row: i, Err: ErrTimestampRange}
				}
				dst[i] = int64(v) * 1000
			}
		case arrow.Millisecond:
			// Same width and layout: a reinterpreting view, then a memmove.
			copy(dst, arrow.Int64Traits.CastFromBytes(arrow.TimestampTraits.CastToBytes(vs)))
		case arrow.Microsecond:
			floorDivMicros(dst, vs)
		case arrow.Nanosecond:
			floorDivNanos(dst, vs)
		default:
			return dst[:0], fmt.Errorf("%w: %s", ErrColumnType, col.DataType())
		}
	case *array.Int64:
		copy(dst, a.Int64Values())
	case *array.Date64:
		copy(dst, arrow.Int64Traits.CastFromBytes(arrow.Date64Traits.CastToBytes(a.Date64Values())))
	default:
		// Unreachable: the type was checked above.
		return dst[:0], fmt.Errorf("%w: %s", ErrColumnType, col.DataType())
	}
	return dst, nil
}

// floorDivMicros and floorDivNanos store floor(v / unit) for each value.
// They are separate functions so the divisor is a constant, which the
// compiler turns into a multiply (a variable divisor costs a hardware
// divide per row). Go truncates toward zero, so a negative remainder steps
// the quotient down.
func floorDivMicros(dst []int64, vs []arrow.Timestamp) {
	dst = dst[:len(vs)]
	for i, v := range vs {
		q := int64(v) / 1_000
		if int64(v)-q*1_000 < 0 {
			q--
		}
		dst[i] = q
	}
}

func floorDivNanos(dst []int64, vs []arrow.Timestamp) {
	dst = dst[:len(vs)]
	for i, v := range vs {
		q := int64(v) / 1_000_000
		if int64(v)-q*1_000_000 < 0 {
			q--
		}
		dst[i] = q
	}
}

// Extractor reads a named event-time column from record batches into a
// buffer it reuses, for a source task's hot path: the column is looked up
// once per schema, and the returned slice is valid until the next Extract.
// An Extractor is used from one goroutine.
type Extractor struct {
	column string
	schema *arrow.Schema // schema idx was resolved against
	idx    int
	buf    []int64
}

// NewExtractor returns an extractor for the named column.
func NewExtractor(column string) *Extractor { return &Extractor{column: column} }

// Column returns the column name.
func (e *Extractor) Column() string { return e.column }

// Extract returns rec's event times in milliseconds (see Millis for types
// and errors); it fails with ErrColumnNotFound if rec has no such column.
// Errors name the column.
func (e *Extractor) Extract(rec arrow.RecordBatch) ([]int64, error) {
	if s := rec.Schema(); s != e.schema {
		idx := s.FieldIndices(e.column)
		if len(idx) == 0 {
			return nil, fmt.Errorf("%w: event-time column %q", ErrColumnNotFound, e.column)
		}
		e.schema, e.idx = s, idx[0]
	}
	ts, err := Millis(e.buf, rec.Column(e.idx))
	e.buf = ts[:0]
	if err != nil {
		return nil, fmt.Errorf("event-time column %q: %w", e.column, err)
	}
	return ts, nil
}
