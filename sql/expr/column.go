package expr

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// colNode reads an input column. int64, float64, utf8, bool and timestamp
// columns are passed through without copying; narrower integers and
// float32 are widened, and large_utf8 is copied to utf8.
type colNode struct {
	idx  int
	name string
	dt   arrow.DataType
	t    typ
}

func (n *colNode) typ() typ { return n.t }

func (n *colNode) eval(ec *evalCtx) (vec, error) {
	if n.idx >= int(ec.rec.NumCols()) {
		return vec{}, fmt.Errorf("expr: column %q (index %d) is missing: the batch has %d columns", n.name, n.idx, ec.rec.NumCols())
	}
	col := ec.rec.Column(n.idx)
	if !arrow.TypeEqual(col.DataType(), n.dt) {
		return vec{}, fmt.Errorf("expr: column %q is %s in the batch but %s in the schema the expression was compiled for", n.name, col.DataType(), n.dt)
	}
	switch n.dt.ID() {
	case arrow.INT64, arrow.FLOAT64, arrow.STRING, arrow.BOOL, arrow.TIMESTAMP:
		col.Retain()
		return vec{arr: col}, nil
	case arrow.INT8:
		return widenInt(ec.mem, col, fixedValues[int8](col)), nil
	case arrow.INT16:
		return widenInt(ec.mem, col, fixedValues[int16](col)), nil
	case arrow.INT32:
		return widenInt(ec.mem, col, fixedValues[int32](col)), nil
	case arrow.UINT8:
		return widenInt(ec.mem, col, fixedValues[uint8](col)), nil
	case arrow.UINT16:
		return widenInt(ec.mem, col, fixedValues[uint16](col)), nil
	case arrow.UINT32:
		return widenInt(ec.mem, col, fixedValues[uint32](col)), nil
	case arrow.UINT64:
		// Values above MaxInt64 wrap to negative BIGINTs: SQL has no
		// unsigned types.
		return widenInt(ec.mem, col, fixedValues[uint64](col)), nil
	case arrow.FLOAT32:
		valid, nulls := andValidity(ec.mem, ec.n, col)
		buf, out := newBuffer[float64](ec.mem, ec.n)
		for i, x := range fixedValues[float32](col) {
			out[i] = float64(x)
		}
		return vec{arr: makeArray(arrow.PrimitiveTypes.Float64, ec.n, valid, nulls, buf)}, nil
	case arrow.LARGE_STRING:
		src := col.(*array.LargeString)
		sb := array.NewStringBuilder(ec.mem)
		defer sb.Release()
		sb.Reserve(ec.n)
		sb.ReserveData(len(src.ValueBytes()))
		for i := range ec.n {
			if src.IsNull(i) {
				sb.AppendNull()
				continue
			}
			sb.Append(src.Value(i))
		}
		return vec{arr: sb.NewArray()}, nil
	default:
		// Unsupported types are reported below.
	}
	return vec{}, fmt.Errorf("expr: column %q has unsupported type %s", n.name, n.dt)
}

func widenInt[T int8 | int16 | int32 | uint8 | uint16 | uint32 | uint64](mem memory.Allocator, col arrow.Array, vals []T) vec {
	valid, nulls := andValidity(mem, col.Len(), col)
	buf, out := newBuffer[int64](mem, col.Len())
	for i, x := range vals {
		out[i] = int64(x)
	}
	return vec{arr: makeArray(arrow.PrimitiveTypes.Int64, col.Len(), valid, nulls, buf)}
}
