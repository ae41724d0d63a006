package expr

import (
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// strSrc reads a string array or a constant string.
type strSrc struct {
	arr *array.String
	c   string
}

func stringsOf(v vec) strSrc {
	if v.arr == nil {
		return strSrc{c: v.s}
	}
	return strSrc{arr: v.arr.(*array.String)}
}

func (s strSrc) at(i int) string {
	if s.arr != nil {
		return s.arr.Value(i)
	}
	return s.c
}

// evalAll evaluates nodes in order, releasing what it has on error.
func evalAll(ec *evalCtx, nodes []node) ([]vec, error) {
	vs := make([]vec, 0, len(nodes))
	for _, x := range nodes {
		v, err := x.eval(ec)
		if err != nil {
			releaseAll(vs)
			return nil, err
		}
		vs = append(vs, v)
	}
	return vs, nil
}

func releaseAll(vs []vec) {
	for _, v := range vs {
		v.release()
	}
}

// concatNode is || and CONCAT: NULL if any argument is NULL.
type concatNode struct{ args []node }

func (n *concatNode) typ() typ { return typ{k: kString} }

func (n *concatNode) eval(ec *evalCtx) (vec, error) {
	vs, err := evalAll(ec, n.args)
	if err != nil {
		return vec{}, err
	}
	defer releaseAll(vs)
	arrs := make([]arrow.Array, 0, len(vs))
	srcs := make([]strSrc, len(vs))
	allConst := true
	for k, v := range vs {
		if v.null {
			return vec{null: true}, nil
		}
		if !v.isConst() {
			allConst = false
			arrs = append(arrs, v.arr)
		}
		srcs[k] = stringsOf(v)
	}
	if allConst {
		var b strings.Builder
		for _, v := range vs {
			b.WriteString(v.s)
		}
		return vec{s: b.String()}, nil
	}
	valid, _ := andValidity(ec.mem, ec.n, arrs...)
	if valid != nil {
		defer valid.Release()
	}
	sb := array.NewStringBuilder(ec.mem)
	defer sb.Release()
	sb.Reserve(ec.n)
	var scratch []byte
	for i := range ec.n {
		if valid != nil && !bitIsSet(valid.Bytes(), i) {
			sb.AppendNull()
			continue
		}
		scratch = scratch[:0]
		for _, s := range srcs {
			scratch = append(scratch, s.at(i)...)
		}
		sb.BinaryBuilder.Append(scratch)
	}
	return vec{arr: sb.NewArray()}, nil
}

func bitIsSet(b []byte, i int) bool { return b[i>>3]&(1<<(i&7)) != 0 }

// Scalar functions of one argument.
const (
	fnAbs byte = iota
	fnLower
	fnUpper
	fnCharLength
)

// funcNode is ABS, LOWER, UPPER or CHAR_LENGTH.
type funcNode struct {
	fn byte
	x  node
	t  typ
}

func (n *funcNode) typ() typ { return n.t }

func (n *funcNode) eval(ec *evalCtx) (vec, error) {
	v, err := n.x.eval(ec)
	if err != nil || v.null {
		return v, err
	}
	if v.isConst() {
		switch n.fn {
		case fnAbs:
			return vec{i: absInt(v.i), f: math.Abs(v.f)}, nil
		case fnCharLength:
			return vec{i: int64(utf8.RuneCountInString(v.s))}, nil
		case fnLower:
			return vec{s: string(appendCase(nil, v.s, false))}, nil
		}
		return vec{s: string(appendCase(nil, v.s, true))}, nil
	}
	defer v.release()
	valid, nulls := andValidity(ec.mem, ec.n, v.arr)
	switch n.fn {
	case fnAbs:
		if n.t.k == kFloat {
			buf, out := newBuffer[float64](ec.mem, ec.n)
			for i, x := range fixedValues[float64](v.arr) {
				out[i] = math.Abs(x)
			}
			return vec{arr: makeArray(n.t.arrowType(), ec.n, valid, nulls, buf)}, nil
		}
		buf, out := newBuffer[int64](ec.mem, ec.n)
		for i, x := range fixedValues[int64](v.arr) {
			out[i] = absInt(x)
		}
		return vec{arr: makeArray(n.t.arrowType(), ec.n, valid, nulls, buf)}, nil
	case fnCharLength:
		buf, out := newBuffer[int64](ec.mem, ec.n)
		s := v.arr.(*array.String)
		for i := range out {
			out[i] = int64(utf8.RuneCountInString(s.Value(i)))
		}
		return vec{arr: makeArray(n.t.arrowType(), ec.n, valid, nulls, buf)}, nil
	}
	if valid != nil {
		valid.Release()
	}
	s := v.arr.(*array.String)
	sb := array.NewStringBuilder(ec.mem)
	defer sb.Release()
	sb.Reserve(ec.n)
	sb.ReserveData(len(s.ValueBytes()))
	var scratch []byte
	for i := range ec.n {
		if s.IsNull(i) {
			sb.AppendNull()
			continue
		}
		scratch = appendCase(scratch[:0], s.Value(i), n.fn == fnUpper)
		sb.BinaryBuilder.Append(scratch)
	}
	return vec{arr: sb.NewArray()}, nil
}

// absInt wraps ABS(MinInt64) to MinInt64, as Java's Math.abs does.
func absInt(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// appendCase appends s upper- or lower-cased, with an ASCII fast path and
// no allocation.
func appendCase(dst []byte, s string, upper bool) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case upper && 'a' <= c && c <= 'z':
				c -= 'a' - 'A'
			case !upper && 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if upper {
			r = unicode.ToUpper(r)
		} else {
			r = unicode.ToLower(r)
		}
		dst = utf8.AppendRune(dst, r)
		i += size
	}
	return dst
}

// appendJavaDouble formats f as Java's Double.toString does (and so as
// Flink casts DOUBLE to STRING): "1.0", "0.001", "1.0E7", "1.0E-4", "NaN",
// "Infinity".
func appendJavaDouble(dst []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	case f == 0:
		if math.Signbit(f) {
			return append(dst, "-0.0"...)
		}
		return append(dst, "0.0"...)
	}
	if a := math.Abs(f); a >= 1e-3 && a < 1e7 {
		start := len(dst)
		dst = strconv.AppendFloat(dst, f, 'f', -1, 64)
		for _, c := range dst[start:] {
			if c == '.' {
				return dst
			}
		}
		return append(dst, ".0"...)
	}
	var tmp [32]byte
	e := strconv.AppendFloat(tmp[:0], f, 'e', -1, 64) // d.ddddde±xx
	k := 0
	for e[k] != 'e' {
		k++
	}
	mant, exp := e[:k], e[k+1:]
	dst = append(dst, mant...)
	hasDot := false
	for _, c := range mant {
		hasDot = hasDot || c == '.'
	}
	if !hasDot {
		dst = append(dst, ".0"...)
	}
	dst = append(dst, 'E')
	if exp[0] == '-' {
		dst = append(dst, '-')
	}
	exp = exp[1:]
	for len(exp) > 1 && exp[0] == '0' {
		exp = exp[1:]
	}
	return append(dst, exp...)
}
