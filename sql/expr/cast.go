package expr

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// castNode converts between kinds (CAST, and the implicit BIGINT to
// DOUBLE promotion). narrow, for a CAST to INT, SMALLINT, TINYINT or
// FLOAT, wraps or rounds the value to that width as Java's primitive
// casts do, while it stays stored as BIGINT or DOUBLE.
type castNode struct {
	x      node
	from   typ
	to     typ
	narrow string // "", "INT", "SMALLINT", "TINYINT", "FLOAT"
	off    int
}

func (n *castNode) typ() typ { return n.to }

func (n *castNode) eval(ec *evalCtx) (vec, error) {
	v, err := n.x.eval(ec)
	if err != nil || v.null {
		return vec{null: true}, err
	}
	if n.from.k == n.to.k && n.narrow == "" {
		return v, nil
	}
	if v.isConst() {
		c, msg := n.convert(v, 0)
		if msg != "" {
			for i := range ec.n {
				if ec.live(i) {
					return vec{}, &EvalError{Src: ec.src, Row: i, Offset: n.off, Msg: msg}
				}
			}
			return vec{null: true}, nil
		}
		return c, nil
	}
	defer v.release()
	switch n.to.k {
	case kInt:
		return n.toFixed(ec, v, func(o vec) (float64, int64) { return 0, o.i })
	case kFloat:
		return n.toFixed(ec, v, func(o vec) (float64, int64) { return o.f, 0 })
	case kBool:
		return n.toBool(ec, v)
	default:
		// kString; the checker never casts to NULL or TIMESTAMP.
	}
	return n.toString(ec, v)
}

// convert converts row i of v (or the constant v) to n.to; msg is non-empty
// when the value cannot be converted.
func (n *castNode) convert(v vec, i int) (out vec, msg string) {
	switch n.to.k {
	case kInt:
		var x int64
		switch n.from.k {
		case kInt:
			x = v.i
		case kFloat:
			x = floatToLong(v.f)
		case kBool:
			x = int64(b2u(v.b))
		case kString:
			p, err := strconv.ParseInt(strings.TrimSpace(v.s), 10, 64)
			if err != nil {
				return vec{}, fmt.Sprintf("cannot cast %q to %s", v.s, castName(n))
			}
			x = p
		default:
			// The checker never casts from NULL or TIMESTAMP.
		}
		switch n.narrow {
		case "INT":
			x = int64(int32(x))
		case "SMALLINT":
			x = int64(int16(x))
		case "TINYINT":
			x = int64(int8(x))
		}
		return vec{i: x}, ""
	case kFloat:
		var f float64
		switch n.from.k {
		case kInt:
			f = float64(v.i)
		case kFloat:
			f = v.f
		case kBool:
			f = float64(b2u(v.b))
		case kString:
			p, err := strconv.ParseFloat(strings.TrimSpace(v.s), 64)
			if err != nil && !isRangeErr(err) {
				return vec{}, fmt.Sprintf("cannot cast %q to %s", v.s, castName(n))
			}
			f = p
		default:
			// The checker never casts from NULL or TIMESTAMP.
		}
		if n.narrow == "FLOAT" {
			f = float64(float32(f))
		}
		return vec{f: f}, ""
	case kBool:
		switch n.from.k {
		case kInt:
			return vec{b: v.i != 0}, ""
		case kFloat:
			return vec{b: v.f != 0}, ""
		case kString:
			b, ok := parseBool(v.s)
			if !ok {
				return vec{}, fmt.Sprintf("cannot cast %q to BOOLEAN", v.s)
			}
			return vec{b: b}, ""
		default:
			// kBool is returned unchanged; the checker never casts from
			// NULL or TIMESTAMP.
		}
		return v, ""
	default:
		// kString; the checker never casts to NULL or TIMESTAMP.
	}
	return vec{s: string(n.appendString(nil, v))}, ""
}

func isRangeErr(err error) bool {
	var ne *strconv.NumError
	return errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange)
}

func castName(n *castNode) string {
	if n.narrow != "" {
		return n.narrow
	}
	return n.to.String()
}

// floatToLong is Java's (long) cast: truncate toward zero, NaN is 0, and
// out-of-range values saturate.
func floatToLong(f float64) int64 {
	switch {
	case f != f:
		return 0
	case f >= math.MaxInt64:
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	}
	return int64(f)
}

// parseBool accepts what Flink's string-to-boolean cast accepts.
func parseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "t", "true", "y", "yes", "1":
		return true, true
	case "f", "false", "n", "no", "0":
		return false, true
	}
	return false, false
}

func (n *castNode) appendString(dst []byte, v vec) []byte {
	switch n.from.k {
	case kInt:
		return strconv.AppendInt(dst, v.i, 10)
	case kFloat:
		return appendJavaDouble(dst, v.f)
	case kBool:
		if v.b {
			return append(dst, "TRUE"...)
		}
		return append(dst, "FALSE"...)
	default:
		// kString; the checker never casts from NULL or TIMESTAMP.
	}
	return append(dst, v.s...)
}

// row reads row i of array v as a constant, for the per-row cast paths.
func (n *castNode) row(v vec, i int, s strSrc, bits []byte) vec {
	switch n.from.k {
	case kInt:
		return vec{i: fixedValues[int64](v.arr)[i]}
	case kFloat:
		return vec{f: fixedValues[float64](v.arr)[i]}
	case kBool:
		return vec{b: bitutil.BitIsSet(bits, i)}
	default:
		// kString; the checker never casts from NULL or TIMESTAMP.
	}
	return vec{s: s.at(i)}
}

// toFixed converts to BIGINT or DOUBLE. Numeric sources get tight loops;
// strings and booleans go row by row.
func (n *castNode) toFixed(ec *evalCtx, v vec, get func(vec) (float64, int64)) (vec, error) {
	valid, nulls := andValidity(ec.mem, ec.n, v.arr)
	// Fresh arrays are owned: a parent may compute into them in place.
	if n.to.k == kFloat && n.from.k == kInt && n.narrow == "" {
		buf, out := newBuffer[float64](ec.mem, ec.n)
		for i, x := range fixedValues[int64](v.arr) {
			out[i] = float64(x)
		}
		return vec{arr: makeArray(n.to.arrowType(), ec.n, valid, nulls, buf), owned: true}, nil
	}
	if n.to.k == kInt && n.from.k == kFloat && n.narrow == "" {
		buf, out := newBuffer[int64](ec.mem, ec.n)
		for i, x := range fixedValues[float64](v.arr) {
			out[i] = floatToLong(x)
		}
		return vec{arr: makeArray(n.to.arrowType(), ec.n, valid, nulls, buf), owned: true}, nil
	}
	var s strSrc
	var bits []byte
	switch n.from.k {
	case kString:
		s = stringsOf(v)
	case kBool:
		bits = boolBits(v.arr)
	default:
		// Numeric sources need neither strings nor bits.
	}
	if n.to.k == kFloat {
		buf, out := newBuffer[float64](ec.mem, ec.n)
		for i := range out {
			if !v.arr.IsValid(i) {
				continue
			}
			c, msg := n.convert(n.row(v, i, s, bits), i)
			if msg != "" && ec.live(i) {
				buf.Release()
				releaseBuf(valid)
				return vec{}, &EvalError{Src: ec.src, Row: i, Offset: n.off, Msg: msg}
			}
			out[i], _ = get(c)
		}
		return vec{arr: makeArray(n.to.arrowType(), ec.n, valid, nulls, buf)}, nil
	}
	buf, out := newBuffer[int64](ec.mem, ec.n)
	for i := range out {
		if !v.arr.IsValid(i) {
			continue
		}
		c, msg := n.convert(n.row(v, i, s, bits), i)
		if msg != "" && ec.live(i) {
			buf.Release()
			releaseBuf(valid)
			return vec{}, &EvalError{Src: ec.src, Row: i, Offset: n.off, Msg: msg}
		}
		_, out[i] = get(c)
	}
	return vec{arr: makeArray(n.to.arrowType(), ec.n, valid, nulls, buf)}, nil
}

func (n *castNode) toBool(ec *evalCtx, v vec) (vec, error) {
	valid, nulls := andValidity(ec.mem, ec.n, v.arr)
	buf, out := newBitmap(ec.mem, ec.n)
	var s strSrc
	if n.from.k == kString {
		s = stringsOf(v)
	}
	for i := range ec.n {
		if !v.arr.IsValid(i) {
			continue
		}
		c, msg := n.convert(n.row(v, i, s, nil), i)
		if msg != "" && ec.live(i) {
			buf.Release()
			releaseBuf(valid)
			return vec{}, &EvalError{Src: ec.src, Row: i, Offset: n.off, Msg: msg}
		}
		if c.b {
			bitutil.SetBit(out, i)
		}
	}
	return vec{arr: makeArray(n.to.arrowType(), ec.n, valid, nulls, buf)}, nil
}

func (n *castNode) toString(ec *evalCtx, v vec) (vec, error) {
	var bits []byte
	if n.from.k == kBool {
		bits = boolBits(v.arr)
	}
	sb := array.NewStringBuilder(ec.mem)
	defer sb.Release()
	sb.Reserve(ec.n)
	var scratch []byte
	for i := range ec.n {
		if v.arr.IsNull(i) {
			sb.AppendNull()
			continue
		}
		scratch = n.appendString(scratch[:0], n.row(v, i, strSrc{}, bits))
		sb.BinaryBuilder.Append(scratch)
	}
	return vec{arr: sb.NewArray()}, nil
}

func releaseBuf(b *memory.Buffer) {
	if b != nil {
		b.Release()
	}
}
