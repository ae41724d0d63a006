package expr

import (
	"context"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// vec is the result of evaluating a node over a batch: either an array of
// ec.n values (arr != nil, owned by whoever holds the vec) or a constant
// that stands for ec.n copies of itself. Constants are never broadcast into
// arrays unless a kernel has no constant path or the final result needs it.
type vec struct {
	arr  arrow.Array
	null bool    // constant NULL
	i    int64   // constant of kInt or kTime
	f    float64 // constant of kFloat
	s    string  // constant of kString
	b    bool    // constant of kBool
	// owned marks an array this evaluation allocated and nobody else
	// references, so a parent may overwrite its values in place.
	owned bool
}

func (v vec) isConst() bool { return v.arr == nil }

func (v vec) release() {
	if v.arr != nil {
		v.arr.Release()
	}
}

// evalCtx is what every node's eval sees.
type evalCtx struct {
	ctx context.Context
	mem memory.Allocator
	rec arrow.RecordBatch
	src string
	n   int
	// active, when not nil, is a bitmap of the rows whose results are used
	// (CASE branches, the right side of AND/OR, later COALESCE arguments).
	// Rows outside it may hold any value, and evaluation errors (division
	// by zero, bad casts) are only reported for active rows.
	active []byte
}

// live reports whether an error at row i must be reported: the row is
// active and every operand in valid is non-null there.
func (ec *evalCtx) live(i int, operands ...vec) bool {
	if ec.active != nil && !bitutil.BitIsSet(ec.active, i) {
		return false
	}
	for _, v := range operands {
		if v.arr != nil && v.arr.IsNull(i) {
			return false
		}
	}
	return true
}

// withActive returns a copy of ec restricted to the rows set in active.
func (ec *evalCtx) withActive(active []byte) *evalCtx {
	c := *ec
	c.active = active
	return &c
}

// newBuffer allocates a buffer of n elements of T from mem.
func newBuffer[T int64 | float64 | byte](mem memory.Allocator, n int) (*memory.Buffer, []T) {
	var zero T
	size := int(unsafe.Sizeof(zero))
	buf := memory.NewResizableBuffer(mem)
	buf.Resize(n * size)
	if n == 0 {
		return buf, nil
	}
	b := buf.Bytes()
	return buf, unsafe.Slice((*T)(unsafe.Pointer(&b[0])), n)
}

// newBitmap allocates a zeroed bitmap of n bits from mem.
func newBitmap(mem memory.Allocator, n int) (*memory.Buffer, []byte) {
	buf, b := newBuffer[byte](mem, int(bitutil.BytesForBits(int64(n))))
	clear(b)
	return buf, b
}

// fixedValues returns the n values of a fixed-width array as []T, where T
// has the array's element width (int64 for int64 and timestamp arrays).
func fixedValues[T any](a arrow.Array) []T {
	d := a.Data()
	bufs := d.Buffers()
	if len(bufs) < 2 || bufs[1] == nil || d.Len() == 0 {
		return nil
	}
	b := bufs[1].Bytes()
	if len(b) == 0 {
		return nil
	}
	all := unsafe.Slice((*T)(unsafe.Pointer(&b[0])), len(b)/int(unsafe.Sizeof(*new(T))))
	return all[d.Offset() : d.Offset()+d.Len()]
}

// bitsAt returns the bitmap buf starting at bit off as a bitmap starting at
// bit 0, copying only when off is not byte-aligned.
func bitsAt(buf []byte, off, n int) []byte {
	if off%8 == 0 {
		return buf[off/8:]
	}
	out := make([]byte, bitutil.BytesForBits(int64(n)))
	bitutil.CopyBitmap(buf, off, n, out, 0)
	return out
}

// validBits returns a's validity bitmap starting at bit 0, or nil when a
// has no nulls.
func validBits(a arrow.Array) []byte {
	if a.NullN() == 0 {
		return nil
	}
	b := a.NullBitmapBytes()
	if b == nil { // a null-typed array
		return nil
	}
	return bitsAt(b, a.Data().Offset(), a.Len())
}

// boolBits returns the value bitmap of a boolean array starting at bit 0.
func boolBits(a arrow.Array) []byte {
	return bitsAt(a.Data().Buffers()[1].Bytes(), a.Data().Offset(), a.Len())
}

// andValidity returns a validity bitmap that is the AND of the validity of
// the given arrays (constants and nil arrays are all valid), or nil when
// the result has no nulls, and the null count.
func andValidity(mem memory.Allocator, n int, arrs ...arrow.Array) (*memory.Buffer, int) {
	var out *memory.Buffer
	var ob []byte
	for _, a := range arrs {
		if a == nil || a.NullN() == 0 {
			continue
		}
		src := a.NullBitmapBytes()
		off := a.Data().Offset()
		if out == nil {
			out, ob = newBuffer[byte](mem, int(bitutil.BytesForBits(int64(n))))
			bitutil.CopyBitmap(src, off, n, ob, 0)
			continue
		}
		bitutil.BitmapAnd(ob, src, 0, int64(off), ob, 0, int64(n))
	}
	if out == nil {
		return nil, 0
	}
	return out, n - bitutil.CountSetBits(ob, 0, n)
}

// makeArray wraps freshly allocated buffers into an array, taking over the
// caller's references to them.
func makeArray(dt arrow.DataType, n int, valid *memory.Buffer, nulls int, values *memory.Buffer) arrow.Array {
	d := array.NewData(dt, n, []*memory.Buffer{valid, values}, nil, nulls, 0)
	a := array.MakeFromData(d)
	d.Release()
	if valid != nil {
		valid.Release()
	}
	values.Release()
	return a
}

// constOf turns element 0 of a one-row array into a constant.
func constOf(a arrow.Array) vec {
	if a.IsNull(0) {
		return vec{null: true}
	}
	switch a := a.(type) {
	case *array.Int64:
		return vec{i: a.Value(0)}
	case *array.Timestamp:
		return vec{i: int64(a.Value(0))}
	case *array.Float64:
		return vec{f: a.Value(0)}
	case *array.String:
		return vec{s: a.Value(0)}
	case *array.Boolean:
		return vec{b: a.Value(0)}
	}
	return vec{null: true}
}

// materialize returns v as an array of ec.n values of type t. The caller
// releases the result; v is consumed.
func materialize(ec *evalCtx, v vec, t typ) arrow.Array {
	if !v.isConst() {
		return v.arr
	}
	n := ec.n
	if v.null || t.k == kNull {
		return array.MakeArrayOfNull(ec.mem, t.arrowType(), n)
	}
	switch t.k {
	case kInt, kTime:
		buf, vals := newBuffer[int64](ec.mem, n)
		for i := range vals {
			vals[i] = v.i
		}
		return makeArray(t.arrowType(), n, nil, 0, buf)
	case kFloat:
		buf, vals := newBuffer[float64](ec.mem, n)
		for i := range vals {
			vals[i] = v.f
		}
		return makeArray(t.arrowType(), n, nil, 0, buf)
	case kBool:
		buf, bits := newBitmap(ec.mem, n)
		if v.b {
			bitutil.SetBitsTo(bits, 0, int64(n), true)
		}
		return makeArray(t.arrowType(), n, nil, 0, buf)
	case kString:
		b := array.NewStringBuilder(ec.mem)
		defer b.Release()
		b.Reserve(n)
		b.ReserveData(n * len(v.s))
		for range n {
			b.Append(v.s)
		}
		return b.NewArray()
	default:
		// kNull is handled above.
	}
	return array.MakeArrayOfNull(ec.mem, t.arrowType(), n)
}

// b2u converts a bool to 0 or 1 without a branch.
func b2u(b bool) byte {
	var x byte
	if b {
		x = 1
	}
	return x
}
