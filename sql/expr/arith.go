package expr

import (
	"fmt"
	"math"
	"math/bits"

	"github.com/apache/arrow-go/v18/arrow/bitutil"
)

// node is a type-checked expression tree node. eval is called once per
// batch and does its per-row work in tight loops over typed slices; the
// tree itself is immutable after Compile.
type node interface {
	typ() typ
	eval(ec *evalCtx) (vec, error)
}

// litNode is a constant, including constant-folded subtrees.
type litNode struct {
	t typ
	v vec
}

func (n *litNode) typ() typ                   { return n.t }
func (n *litNode) eval(*evalCtx) (vec, error) { return n.v, nil }

// arithNode is + - * / % (and MOD) over two operands already promoted to
// the result type t (BIGINT or DOUBLE).
type arithNode struct {
	op   byte
	l, r node
	t    typ
	off  int
}

func (n *arithNode) typ() typ { return n.t }

func (n *arithNode) eval(ec *evalCtx) (vec, error) {
	if x, c, left, ok := n.widened(); ok {
		return n.evalWidened(ec, x, c, left)
	}
	lv, err := n.l.eval(ec)
	if err != nil {
		return vec{}, err
	}
	defer func() { lv.release() }() // lv may be handed on below
	rv, err := n.r.eval(ec)
	if err != nil {
		return vec{}, err
	}
	defer func() { rv.release() }() // rv may be handed on below
	if lv.null || rv.null {
		return vec{null: true}, nil
	}
	if lv.isConst() && rv.isConst() {
		return n.evalConst(ec, lv, rv)
	}
	if n.inPlace(lv, rv) {
		// Chains like value * 2 + 1 reuse the child's buffer: same type,
		// same validity, elementwise in place.
		if n.t.k == kFloat {
			a := fixedValues[float64](lv.arr)
			arithLoop(n.op, a, a, nil, 0, rv.f)
		} else {
			a := fixedValues[int64](lv.arr)
			arithLoop(n.op, a, a, nil, 0, rv.i)
		}
		out := lv
		lv = vec{}
		return out, nil
	}
	if n.inPlace(rv, lv) {
		// The same with the constant on the left: 2 * value, 1 - value.
		if n.t.k == kFloat {
			b := fixedValues[float64](rv.arr)
			arithLoop(n.op, b, nil, b, lv.f, 0)
		} else {
			b := fixedValues[int64](rv.arr)
			arithLoop(n.op, b, nil, b, lv.i, 0)
		}
		out := rv
		rv = vec{}
		return out, nil
	}
	valid, nulls := andValidity(ec.mem, ec.n, lv.arr, rv.arr)
	if n.t.k == kFloat {
		buf, out := newBuffer[float64](ec.mem, ec.n)
		a, b := floatOperand(lv), floatOperand(rv)
		if n.op == '%' {
			modFloat(out, a, b, lv.f, rv.f)
		} else {
			arithLoop(n.op, out, a, b, lv.f, rv.f)
		}
		return vec{arr: makeArray(n.t.arrowType(), ec.n, valid, nulls, buf), owned: true}, nil
	}
	buf, out := newBuffer[int64](ec.mem, ec.n)
	a, b := intOperand(lv), intOperand(rv)
	if n.op == '/' || n.op == '%' {
		if row, bad := divInt(ec, n.op, out, a, b, lv, rv); bad {
			buf.Release()
			if valid != nil {
				valid.Release()
			}
			return vec{}, n.divByZero(ec, row)
		}
	} else {
		arithLoop(n.op, out, a, b, lv.i, rv.i)
	}
	return vec{arr: makeArray(n.t.arrowType(), ec.n, valid, nulls, buf), owned: true}, nil
}

// inPlace reports whether the result can overwrite arr's values: arr is
// an array this evaluation owns, c a non-NULL constant, and the operator
// elementwise without errors (+ - *, and / on DOUBLE).
func (n *arithNode) inPlace(arr, c vec) bool {
	if !arr.owned || !c.isConst() {
		return false
	}
	switch n.op {
	case '+', '-', '*':
		return true
	case '/':
		return n.t.k == kFloat
	}
	return false
}

// widened matches DOUBLE arithmetic between a constant and a BIGINT
// promoted to DOUBLE — 0.908 * price, price / 100.0 — which evalWidened
// computes in one loop from the integers, without the promoted array. x
// is the BIGINT operand, c the constant, left whether c is the left
// operand.
func (n *arithNode) widened() (x node, c float64, left, ok bool) {
	if n.t.k != kFloat || n.op == '%' {
		return nil, 0, false, false
	}
	l, r := n.l, n.r
	lit, isLit := l.(*litNode)
	left = isLit
	if !isLit {
		lit, isLit = r.(*litNode)
		r = l
	}
	if !isLit || lit.v.null {
		return nil, 0, false, false
	}
	cast, isCast := r.(*castNode)
	if !isCast || cast.from.k != kInt || cast.to.k != kFloat || cast.narrow != "" {
		return nil, 0, false, false
	}
	return cast.x, lit.v.f, left, true
}

// evalWidened computes float64(x) op c (or c op float64(x) when left),
// exactly as promoting x and then applying op would.
func (n *arithNode) evalWidened(ec *evalCtx, x node, c float64, left bool) (vec, error) {
	v, err := x.eval(ec)
	if err != nil || v.null {
		return vec{null: true}, err
	}
	defer v.release()
	if v.isConst() {
		f := float64(v.i)
		if left {
			return n.evalConst(ec, vec{f: c}, vec{f: f})
		}
		return n.evalConst(ec, vec{f: f}, vec{f: c})
	}
	valid, nulls := andValidity(ec.mem, ec.n, v.arr)
	buf, out := newBuffer[float64](ec.mem, ec.n)
	widenLoop(n.op, out, fixedValues[int64](v.arr), c, left)
	return vec{arr: makeArray(n.t.arrowType(), ec.n, valid, nulls, buf), owned: true}, nil
}

// widenLoop is arithLoop over float64(a[i]) and the constant c, on the
// left when left is set.
func widenLoop(op byte, out []float64, a []int64, c float64, left bool) {
	switch {
	case op == '+':
		for i, x := range a {
			out[i] = float64(x) + c
		}
	case op == '*':
		for i, x := range a {
			out[i] = float64(x) * c
		}
	case op == '-' && left:
		for i, x := range a {
			out[i] = c - float64(x)
		}
	case op == '-':
		for i, x := range a {
			out[i] = float64(x) - c
		}
	case op == '/' && left:
		for i, x := range a {
			out[i] = c / float64(x)
		}
	case op == '/':
		for i, x := range a {
			out[i] = float64(x) / c
		}
	}
}

func (n *arithNode) divByZero(ec *evalCtx, row int) error {
	what := "division"
	if n.op == '%' {
		what = "modulo"
	}
	return &EvalError{Src: ec.src, Row: row, Offset: n.off, Msg: what + " by zero"}
}

// evalConst computes an operator over two constants. A BIGINT division by
// a zero constant fails at the first active row, if there is one.
func (n *arithNode) evalConst(ec *evalCtx, l, r vec) (vec, error) {
	if n.t.k == kFloat {
		switch n.op {
		case '+':
			return vec{f: l.f + r.f}, nil
		case '-':
			return vec{f: l.f - r.f}, nil
		case '*':
			return vec{f: l.f * r.f}, nil
		case '/':
			return vec{f: l.f / r.f}, nil
		}
		return vec{f: math.Mod(l.f, r.f)}, nil
	}
	switch n.op {
	case '+':
		return vec{i: l.i + r.i}, nil
	case '-':
		return vec{i: l.i - r.i}, nil
	case '*':
		return vec{i: l.i * r.i}, nil
	}
	if r.i == 0 {
		for i := range ec.n {
			if ec.live(i) {
				return vec{}, n.divByZero(ec, i)
			}
		}
		return vec{null: true}, nil
	}
	if n.op == '/' {
		return vec{i: l.i / r.i}, nil
	}
	return vec{i: l.i % r.i}, nil
}

func intOperand(v vec) []int64 {
	if v.arr == nil {
		return nil
	}
	return fixedValues[int64](v.arr)
}

func floatOperand(v vec) []float64 {
	if v.arr == nil {
		return nil
	}
	return fixedValues[float64](v.arr)
}

// arithLoop computes out = a op b for + - * and, for floats, /. A nil a or
// b stands for the constant ca or cb; at most one of them is nil. Integer
// overflow wraps, as Java's long arithmetic does.
func arithLoop[T int64 | float64](op byte, out, a, b []T, ca, cb T) {
	switch op {
	case '+':
		switch {
		case a != nil && b != nil:
			for i := range out {
				out[i] = a[i] + b[i]
			}
		case a != nil:
			for i := range out {
				out[i] = a[i] + cb
			}
		default:
			for i := range out {
				out[i] = ca + b[i]
			}
		}
	case '-':
		switch {
		case a != nil && b != nil:
			for i := range out {
				out[i] = a[i] - b[i]
			}
		case a != nil:
			for i := range out {
				out[i] = a[i] - cb
			}
		default:
			for i := range out {
				out[i] = ca - b[i]
			}
		}
	case '*':
		switch {
		case a != nil && b != nil:
			for i := range out {
				out[i] = a[i] * b[i]
			}
		case a != nil:
			for i := range out {
				out[i] = a[i] * cb
			}
		default:
			for i := range out {
				out[i] = ca * b[i]
			}
		}
	case '/': // floats only; integer division goes through divInt
		switch {
		case a != nil && b != nil:
			for i := range out {
				out[i] = a[i] / b[i]
			}
		case a != nil:
			for i := range out {
				out[i] = a[i] / cb
			}
		default:
			for i := range out {
				out[i] = ca / b[i]
			}
		}
	}
}

// modFloat is Java's % on doubles: the remainder has the dividend's sign.
func modFloat(out, a, b []float64, ca, cb float64) {
	for i := range out {
		x, y := ca, cb
		if a != nil {
			x = a[i]
		}
		if b != nil {
			y = b[i]
		}
		out[i] = math.Mod(x, y)
	}
}

// divInt computes BIGINT / or %, truncating toward zero like Java. A zero
// divisor on a live row (active, both operands non-null) is reported by
// returning its index and true; on other rows it yields 0.
// MinInt64 / -1 wraps to MinInt64, as in Java (Go defines the same).
func divInt(ec *evalCtx, op byte, out, a, b []int64, l, r vec) (int, bool) {
	if b == nil {
		c := r.i
		if c == 0 {
			for i := range out {
				if ec.live(i, l) {
					return i, true
				}
				out[i] = 0
			}
			return 0, false
		}
		if c > 0 && c&(c-1) == 0 {
			divPow2(op, out, a, c)
			return 0, false
		}
		if op == '/' {
			for i := range out {
				out[i] = a[i] / c
			}
		} else {
			for i := range out {
				out[i] = a[i] % c
			}
		}
		return 0, false
	}
	for i := range out {
		d := b[i]
		if d == 0 {
			if ec.live(i, l, r) {
				return i, true
			}
			out[i] = 0
			continue
		}
		x := l.i
		if a != nil {
			x = a[i]
		}
		if op == '/' {
			out[i] = x / d
		} else {
			out[i] = x % d
		}
	}
	return 0, false
}

// divPow2 is x / c and x % c for a power-of-two c > 0 with shifts and
// masks instead of IDIV, keeping truncation toward zero: a negative
// dividend is biased by c-1 before shifting, and its remainder is
// negative.
func divPow2(op byte, out, a []int64, c int64) {
	k := uint(bits.TrailingZeros64(uint64(c)))
	m := c - 1
	if op == '/' {
		for i, x := range a {
			out[i] = (x + (x>>63)&m) >> k
		}
		return
	}
	for i, x := range a {
		out[i] = x - (x+(x>>63)&m)>>k<<k
	}
}

// negNode is unary minus.
type negNode struct {
	x node
	t typ
}

func (n *negNode) typ() typ { return n.t }

func (n *negNode) eval(ec *evalCtx) (vec, error) {
	v, err := n.x.eval(ec)
	if err != nil || v.null {
		return v, err
	}
	if v.isConst() {
		return vec{i: -v.i, f: -v.f}, nil
	}
	defer v.release()
	valid, nulls := andValidity(ec.mem, ec.n, v.arr)
	if n.t.k == kFloat {
		buf, out := newBuffer[float64](ec.mem, ec.n)
		for i, x := range fixedValues[float64](v.arr) {
			out[i] = -x
		}
		return vec{arr: makeArray(n.t.arrowType(), ec.n, valid, nulls, buf)}, nil
	}
	buf, out := newBuffer[int64](ec.mem, ec.n)
	for i, x := range fixedValues[int64](v.arr) {
		out[i] = -x
	}
	return vec{arr: makeArray(n.t.arrowType(), ec.n, valid, nulls, buf)}, nil
}

// Comparison operators.
const (
	cmpEQ byte = iota
	cmpNE
	cmpLT
	cmpLE
	cmpGT
	cmpGE
)

func cmpCode(op string) byte {
	switch op {
	case "=":
		return cmpEQ
	case "<>":
		return cmpNE
	case "<":
		return cmpLT
	case "<=":
		return cmpLE
	case ">":
		return cmpGT
	}
	return cmpGE
}

// flip turns "c op x" into "x flip(op) c".
func flip(op byte) byte {
	switch op {
	case cmpLT:
		return cmpGT
	case cmpLE:
		return cmpGE
	case cmpGT:
		return cmpLT
	case cmpGE:
		return cmpLE
	}
	return op
}

// cmpNode compares two operands of the same kind k (numbers already
// promoted to a common type).
type cmpNode struct {
	op   byte
	l, r node
	k    kind
}

func (n *cmpNode) typ() typ { return typ{k: kBool} }

func (n *cmpNode) eval(ec *evalCtx) (vec, error) {
	lv, err := n.l.eval(ec)
	if err != nil {
		return vec{}, err
	}
	defer lv.release()
	rv, err := n.r.eval(ec)
	if err != nil {
		return vec{}, err
	}
	defer rv.release()
	if lv.null || rv.null {
		return vec{null: true}, nil
	}
	op := n.op
	if lv.isConst() && rv.isConst() {
		return vec{b: cmpConst(op, n.k, lv, rv)}, nil
	}
	if lv.isConst() {
		lv, rv = rv, lv
		op = flip(op)
	}
	valid, nulls := andValidity(ec.mem, ec.n, lv.arr, rv.arr)
	buf, out := newBitmap(ec.mem, ec.n)
	switch n.k {
	case kInt, kTime:
		cmpLoop(op, out, fixedValues[int64](lv.arr), intOperand(rv), rv.i)
	case kFloat:
		cmpLoop(op, out, fixedValues[float64](lv.arr), floatOperand(rv), rv.f)
	case kString:
		cmpStrings(op, out, lv, rv)
	case kBool:
		cmpBools(op, out, lv, rv, ec.n)
	default:
		panic(fmt.Sprintf("expr: comparison of unexpected kind %v", n.k))
	}
	return vec{arr: makeArray(typ{k: kBool}.arrowType(), ec.n, valid, nulls, buf)}, nil
}

func cmpConst(op byte, k kind, l, r vec) bool {
	var c int
	switch k {
	case kInt, kTime:
		c = cmp3(l.i, r.i)
	case kFloat:
		// NaN compares false with everything, except <> which is true
		// (Java's primitive double comparisons).
		if l.f != l.f || r.f != r.f {
			return op == cmpNE
		}
		c = cmp3(l.f, r.f)
	case kString:
		c = cmp3(l.s, r.s)
	case kBool:
		c = cmp3(b2u(l.b), b2u(r.b))
	default:
		panic(fmt.Sprintf("expr: comparison of unexpected kind %v", k))
	}
	return cmpResult(op, c)
}

func cmp3[T int64 | float64 | string | byte](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpResult(op byte, c int) bool {
	switch op {
	case cmpEQ:
		return c == 0
	case cmpNE:
		return c != 0
	case cmpLT:
		return c < 0
	case cmpLE:
		return c <= 0
	case cmpGT:
		return c > 0
	}
	return c >= 0
}

// cmpLoop sets bit i of out (zeroed) when a[i] op b[i], or a[i] op c when
// b is nil. Each operator gets its own loop so the comparison compiles to
// a branch-free SETcc per row.
func cmpLoop[T int64 | float64](op byte, out []byte, a, b []T, c T) {
	if b != nil {
		switch op {
		case cmpEQ:
			for i := range a {
				out[i>>3] |= b2u(a[i] == b[i]) << (i & 7)
			}
		case cmpNE:
			for i := range a {
				out[i>>3] |= b2u(a[i] != b[i]) << (i & 7)
			}
		case cmpLT:
			for i := range a {
				out[i>>3] |= b2u(a[i] < b[i]) << (i & 7)
			}
		case cmpLE:
			for i := range a {
				out[i>>3] |= b2u(a[i] <= b[i]) << (i & 7)
			}
		case cmpGT:
			for i := range a {
				out[i>>3] |= b2u(a[i] > b[i]) << (i & 7)
			}
		case cmpGE:
			for i := range a {
				out[i>>3] |= b2u(a[i] >= b[i]) << (i & 7)
			}
		}
		return
	}
	switch op {
	case cmpEQ:
		for i, x := range a {
			out[i>>3] |= b2u(x == c) << (i & 7)
		}
	case cmpNE:
		for i, x := range a {
			out[i>>3] |= b2u(x != c) << (i & 7)
		}
	case cmpLT:
		for i, x := range a {
			out[i>>3] |= b2u(x < c) << (i & 7)
		}
	case cmpLE:
		for i, x := range a {
			out[i>>3] |= b2u(x <= c) << (i & 7)
		}
	case cmpGT:
		for i, x := range a {
			out[i>>3] |= b2u(x > c) << (i & 7)
		}
	case cmpGE:
		for i, x := range a {
			out[i>>3] |= b2u(x >= c) << (i & 7)
		}
	}
}

// cmpStrings compares UTF-8 bytes, as Flink's StringData.compareTo does.
// l is an array; r may be a constant.
func cmpStrings(op byte, out []byte, l, r vec) {
	a, b := stringsOf(l), stringsOf(r)
	for i := range l.arr.Len() {
		if cmpResult(op, cmp3(a.at(i), b.at(i))) {
			bitutil.SetBit(out, i)
		}
	}
}

func cmpBools(op byte, out []byte, l, r vec, n int) {
	ab := boolBits(l.arr)
	var bb []byte
	if r.arr != nil {
		bb = boolBits(r.arr)
	}
	for i := range n {
		x := bitutil.BitIsSet(ab, i)
		y := r.b
		if bb != nil {
			y = bitutil.BitIsSet(bb, i)
		}
		if cmpResult(op, cmp3(b2u(x), b2u(y))) {
			bitutil.SetBit(out, i)
		}
	}
}
