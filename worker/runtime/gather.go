package runtime

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// gather returns the rows of rec at the given indices (each in range), in
// that order: a filter's output. A contiguous run of rows is a zero-copy
// slice of rec. Otherwise the values are copied by hand-written loops for
// the flat types (fixed-width, boolean, utf8 and binary); other types go
// through arrow's compute "take". compute.Take costs a function lookup,
// an executor and a goroutine per call, which for the few rows a
// selective filter keeps is far more than the copy itself.
func gather(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch, rows []int32) (arrow.RecordBatch, error) {
	n := len(rows)
	if n > 0 && int(rows[n-1]-rows[0]) == n-1 && isIncreasing(rows) {
		return rec.NewSlice(int64(rows[0]), int64(rows[n-1])+1), nil
	}
	cols := make([]arrow.Array, rec.NumCols())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for i, col := range rec.Columns() {
		c, err := gatherArray(ctx, mem, col, rows)
		if err != nil {
			return nil, err
		}
		cols[i] = c
	}
	return array.NewRecordBatch(rec.Schema(), cols, int64(n)), nil
}

// isIncreasing reports whether rows is strictly increasing; with the
// first and last n-1 apart, that makes it a contiguous run.
func isIncreasing(rows []int32) bool {
	for i := 1; i < len(rows); i++ {
		if rows[i] <= rows[i-1] {
			return false
		}
	}
	return true
}

// gatherArray returns col's values at rows as a new array.
func gatherArray(ctx context.Context, mem memory.Allocator, col arrow.Array, rows []int32) (arrow.Array, error) {
	d := col.Data()
	dt := col.DataType()
	n := len(rows)
	switch dt.ID() {
	case arrow.BOOL:
		valid, nulls := gatherValidity(mem, col, rows)
		vals := newBuf(mem, int(bitutil.BytesForBits(int64(n))))
		src, off, out := d.Buffers()[1].Bytes(), d.Offset(), vals.Bytes()
		for j, i := range rows {
			if bitutil.BitIsSet(src, off+int(i)) {
				bitutil.SetBit(out, j)
			}
		}
		return wrap(dt, n, nulls, valid, vals), nil
	case arrow.INT8, arrow.UINT8, arrow.INT16, arrow.UINT16, arrow.INT32, arrow.UINT32,
		arrow.INT64, arrow.UINT64, arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64,
		arrow.DATE32, arrow.DATE64, arrow.TIME32, arrow.TIME64, arrow.TIMESTAMP, arrow.DURATION,
		arrow.INTERVAL_MONTHS, arrow.INTERVAL_DAY_TIME, arrow.INTERVAL_MONTH_DAY_NANO,
		arrow.DECIMAL128, arrow.DECIMAL256, arrow.FIXED_SIZE_BINARY:
		w := dt.(arrow.FixedWidthDataType).BitWidth() / 8
		valid, nulls := gatherValidity(mem, col, rows)
		vals := newBuf(mem, n*w)
		gatherFixed(vals.Bytes(), d.Buffers()[1].Bytes()[d.Offset()*w:], rows, w)
		return wrap(dt, n, nulls, valid, vals), nil
	case arrow.STRING, arrow.BINARY:
		off := arrow.Int32Traits.CastFromBytes(d.Buffers()[1].Bytes())[d.Offset():]
		return gatherVarBinary(mem, col, rows, off, arrow.Int32SizeBytes, arrow.Int32Traits.CastFromBytes), nil
	case arrow.LARGE_STRING, arrow.LARGE_BINARY:
		off := arrow.Int64Traits.CastFromBytes(d.Buffers()[1].Bytes())[d.Offset():]
		return gatherVarBinary(mem, col, rows, off, arrow.Int64SizeBytes, arrow.Int64Traits.CastFromBytes), nil
	default:
		// Nested, dictionary, extension and other types.
		return computeTake(ctx, mem, col, rows)
	}
}

// gatherFixed copies the w-byte values of src at rows into out.
func gatherFixed(out, src []byte, rows []int32, w int) {
	switch w {
	case 8:
		o, s := arrow.Int64Traits.CastFromBytes(out), arrow.Int64Traits.CastFromBytes(src)
		for j, i := range rows {
			o[j] = s[i]
		}
	case 4:
		o, s := arrow.Int32Traits.CastFromBytes(out), arrow.Int32Traits.CastFromBytes(src)
		for j, i := range rows {
			o[j] = s[i]
		}
	default:
		for j, i := range rows {
			copy(out[j*w:(j+1)*w], src[int(i)*w:])
		}
	}
}

// gatherVarBinary gathers a utf8 or binary array (int32 or int64 offsets,
// off already advanced to the array's offset).
func gatherVarBinary[O int32 | int64](mem memory.Allocator, col arrow.Array, rows []int32, off []O, width int, cast func([]byte) []O) arrow.Array {
	d := col.Data()
	n := len(rows)
	var data []byte
	if b := d.Buffers()[2]; b != nil {
		data = b.Bytes()
	}
	total := 0
	for _, i := range rows {
		total += int(off[i+1] - off[i])
	}
	valid, nulls := gatherValidity(mem, col, rows)
	offBuf := newBuf(mem, (n+1)*width)
	dataBuf := newBuf(mem, total)
	o, out := cast(offBuf.Bytes()), dataBuf.Bytes()
	var pos O
	for j, i := range rows {
		o[j] = pos
		pos += O(copy(out[pos:], data[off[i]:off[i+1]]))
	}
	o[n] = pos
	return wrap(col.DataType(), n, nulls, valid, offBuf, dataBuf)
}

// gatherValidity returns the validity bitmap of col at rows and the null
// count, or nil and 0 when col has no nulls.
func gatherValidity(mem memory.Allocator, col arrow.Array, rows []int32) (*memory.Buffer, int) {
	if col.NullN() == 0 {
		return nil, 0
	}
	buf := newBuf(mem, int(bitutil.BytesForBits(int64(len(rows)))))
	src, off, out := col.NullBitmapBytes(), col.Data().Offset(), buf.Bytes()
	nulls := 0
	for j, i := range rows {
		if bitutil.BitIsSet(src, off+int(i)) {
			bitutil.SetBit(out, j)
		} else {
			nulls++
		}
	}
	return buf, nulls
}

// newBuf allocates a zeroed buffer of n bytes from mem.
func newBuf(mem memory.Allocator, n int) *memory.Buffer {
	b := memory.NewResizableBuffer(mem)
	b.Resize(n)
	return b
}

// wrap makes an array of the buffers, taking over the caller's references
// (valid may be nil).
func wrap(dt arrow.DataType, n, nulls int, valid *memory.Buffer, bufs ...*memory.Buffer) arrow.Array {
	d := array.NewData(dt, n, append([]*memory.Buffer{valid}, bufs...), nil, nulls, 0)
	a := array.MakeFromData(d)
	d.Release()
	if valid != nil {
		valid.Release()
	}
	for _, b := range bufs {
		b.Release()
	}
	return a
}
