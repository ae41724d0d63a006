package expr

import (
	"context"
	"math/bits"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Select evaluates the expression, which must be BOOLEAN, over every row
// of rec and appends to sel the indices of the rows where it is TRUE, in
// increasing order: FALSE and NULL rows are left out, as in a WHERE clause.
// It returns the extended slice, which it grows only when sel lacks room
// for every row of rec, so a caller reusing one slice allocates nothing
// once it has grown. Errors are those of Eval.
//
// Comparisons of one column, or of one BIGINT column modulo a constant,
// with a constant (`price > 100`, `auction % 123 = 0`, `0 = MOD(a, 7)`)
// run as fused kernels straight into sel, with no intermediate arrays;
// every other condition is evaluated as by Eval and its TRUE rows
// collected.
func (e *Expr) Select(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch, sel []int32) ([]int32, error) {
	if e.root.typ().k != kBool {
		return sel, ErrNotBoolean
	}
	if err := ctx.Err(); err != nil {
		return sel, err
	}
	ec := e.newEvalCtx(ctx, mem, rec)
	defer e.doneEvalCtx()
	if e.fused != nil {
		return e.fused.selectRows(ec, sel)
	}
	v, err := e.root.eval(ec)
	if err != nil {
		return sel, err
	}
	defer v.release()
	if v.isConst() {
		if v.null || !v.b {
			return sel, nil
		}
		sel = slices.Grow(sel, ec.n)
		for i := range ec.n {
			sel = append(sel, int32(i))
		}
		return sel, nil
	}
	return appendSetBits(sel, boolBits(v.arr), validBits(v.arr), ec.n), nil
}

// appendSetBits appends the indices below n whose bit is set in data and,
// if valid is not nil, in valid.
func appendSetBits(sel []int32, data, valid []byte, n int) []int32 {
	nb := (n + 7) / 8
	for j := range nb {
		b := data[j]
		if valid != nil {
			b &= valid[j]
		}
		if j == nb-1 && n%8 != 0 {
			b &= 1<<(n%8) - 1 // bits past n are unspecified
		}
		for b != 0 {
			sel = append(sel, int32(j*8+bits.TrailingZeros8(b)))
			b &= b - 1
		}
	}
	return sel
}

// cmpSelect is a fused WHERE kernel: "col op k" or "col % m op k" (m ≠
// 0), col an input column and k a non-NULL constant, compared as BIGINT,
// TIMESTAMP or DOUBLE. It has the semantics of the cmpNode it replaces:
// NULL rows are not selected, NaN compares as in cmpLoop, and BIGINT % by
// a non-zero constant cannot fail (MinInt64 % -1 is 0, as in Java).
type cmpSelect struct {
	col *colNode
	mod int64 // 0: no modulo
	op  byte
	k   vec
	f   bool // compare as DOUBLE
}

// fuse returns the fused kernel of the condition n, or nil when n does not
// have a fused shape.
func fuse(n node) *cmpSelect {
	c, ok := n.(*cmpNode)
	if !ok || (c.k != kInt && c.k != kTime && c.k != kFloat) {
		return nil
	}
	x, y, op := c.l, c.r, c.op
	if _, ok := x.(*litNode); ok {
		x, y, op = y, x, flip(op)
	}
	lit, ok := y.(*litNode)
	if !ok || lit.v.null {
		return nil
	}
	s := &cmpSelect{op: op, k: lit.v, f: c.k == kFloat}
	switch x := x.(type) {
	case *colNode:
		s.col = x
	case *arithNode:
		col, isCol := x.l.(*colNode)
		m, isLit := x.r.(*litNode)
		if x.op != '%' || x.t.k != kInt || !isCol || !isLit || m.v.null || m.v.i == 0 {
			return nil
		}
		s.col, s.mod = col, m.v.i
	default:
		return nil
	}
	return s
}

func (s *cmpSelect) selectRows(ec *evalCtx, sel []int32) ([]int32, error) {
	v, err := s.col.eval(ec) // a column is never a constant
	if err != nil {
		return sel, err
	}
	defer v.release()
	start := len(sel)
	sel = slices.Grow(sel, ec.n)[:start+ec.n]
	out := sel[start:]
	var k int
	switch {
	case s.f:
		k = selectCmp(s.op, out, fixedValues[float64](v.arr), s.k.f)
	case s.mod != 0:
		k = selectMod(s.op, out, fixedValues[int64](v.arr), s.mod, s.k.i)
	default:
		k = selectCmp(s.op, out, fixedValues[int64](v.arr), s.k.i)
	}
	if valid := validBits(v.arr); valid != nil {
		// Values under NULLs were compared too (branch-free); drop them.
		j := 0
		for _, i := range out[:k] {
			out[j] = i
			j += int(valid[i>>3] >> (i & 7) & 1)
		}
		k = j
	}
	return sel[:start+k], nil
}

// selectCmp writes to out the indices i where a[i] op c, returning how
// many. out has room for len(a). Each index is written unconditionally and
// kept by advancing k, so the loop has no data-dependent branch.
func selectCmp[T int64 | float64](op byte, out []int32, a []T, c T) int {
	out = out[:len(a)]
	k := 0
	switch op {
	case cmpEQ:
		for i, x := range a {
			out[k] = int32(i)
			k += int(b2u(x == c))
		}
	case cmpNE:
		for i, x := range a {
			out[k] = int32(i)
			k += int(b2u(x != c))
		}
	case cmpLT:
		for i, x := range a {
			out[k] = int32(i)
			k += int(b2u(x < c))
		}
	case cmpLE:
		for i, x := range a {
			out[k] = int32(i)
			k += int(b2u(x <= c))
		}
	case cmpGT:
		for i, x := range a {
			out[k] = int32(i)
			k += int(b2u(x > c))
		}
	case cmpGE:
		for i, x := range a {
			out[k] = int32(i)
			k += int(b2u(x >= c))
		}
	}
	return k
}

// selectMod is selectCmp over a[i] % m (m ≠ 0), Java's remainder.
func selectMod(op byte, out []int32, a []int64, m, c int64) int {
	out = out[:len(a)]
	k := 0
	switch op {
	case cmpEQ:
		for i, x := range a {
			out[k] = int32(i)
			k += int(b2u(x%m == c))
		}
	case cmpNE:
		for i, x := range a {
			out[k] = int32(i)
			k += int(b2u(x%m != c))
		}
	default:
		for i, x := range a {
			out[k] = int32(i)
			k += int(b2u(cmpResult(op, cmp3(x%m, c))))
		}
	}
	return k
}
