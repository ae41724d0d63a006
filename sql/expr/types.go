package expr

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

// kind is the SQL type of a value inside the evaluator. Every integer
// input widens to kInt (BIGINT) and every float to kFloat (DOUBLE), so
// the kernels only ever see int64, float64, utf8, bool and timestamps.
type kind uint8

const (
	kNull   kind = iota // the type of an untyped NULL literal
	kInt                // BIGINT, stored as int64
	kFloat              // DOUBLE, stored as float64
	kString             // VARCHAR, stored as arrow utf8
	kBool               // BOOLEAN, stored as arrow bool
	kTime               // TIMESTAMP, stored as arrow timestamp (int64)
)

// typ is a kind plus, for timestamps, the exact Arrow type (unit and zone).
type typ struct {
	k  kind
	ts *arrow.TimestampType
}

func (t typ) numeric() bool { return t.k == kInt || t.k == kFloat }

// String is the SQL name used in error messages.
func (t typ) String() string {
	switch t.k {
	case kNull:
		return "NULL"
	case kInt:
		return "BIGINT"
	case kFloat:
		return "DOUBLE"
	case kString:
		return "VARCHAR"
	case kBool:
		return "BOOLEAN"
	case kTime:
		p := 3 * int(t.ts.Unit) // Second=0, Milli=1, Micro=2, Nano=3
		if t.ts.TimeZone != "" {
			return fmt.Sprintf("TIMESTAMP_LTZ(%d)", p)
		}
		return fmt.Sprintf("TIMESTAMP(%d)", p)
	}
	return "?"
}

// arrowType is the Arrow type of results of type t.
func (t typ) arrowType() arrow.DataType {
	switch t.k {
	case kInt:
		return arrow.PrimitiveTypes.Int64
	case kFloat:
		return arrow.PrimitiveTypes.Float64
	case kString:
		return arrow.BinaryTypes.String
	case kBool:
		return arrow.FixedWidthTypes.Boolean
	case kTime:
		return t.ts
	default:
		// kNull: an untyped NULL is Arrow's null type.
	}
	return arrow.Null
}

func (t typ) equal(u typ) bool {
	if t.k != u.k {
		return false
	}
	return t.k != kTime || arrow.TypeEqual(t.ts, u.ts)
}

// columnType maps an input column's Arrow type to the SQL type it is read
// as, or reports that expressions cannot use it.
func columnType(dt arrow.DataType) (typ, bool) {
	switch dt.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return typ{k: kInt}, true
	case arrow.FLOAT32, arrow.FLOAT64:
		return typ{k: kFloat}, true
	case arrow.STRING, arrow.LARGE_STRING:
		return typ{k: kString}, true
	case arrow.BOOL:
		return typ{k: kBool}, true
	case arrow.TIMESTAMP:
		return typ{k: kTime, ts: dt.(*arrow.TimestampType)}, true
	default:
		// Other Arrow types cannot be used in expressions.
	}
	return typ{}, false
}

// common is the type that values of types a and b both convert to
// (for COALESCE, CASE, comparison and IN), ignoring untyped NULL.
func common(a, b typ) (typ, bool) {
	switch {
	case a.k == kNull:
		return b, true
	case b.k == kNull:
		return a, true
	case a.numeric() && b.numeric():
		if a.k == kFloat || b.k == kFloat {
			return typ{k: kFloat}, true
		}
		return typ{k: kInt}, true
	case a.equal(b):
		return a, true
	}
	return typ{}, false
}
