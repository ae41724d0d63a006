package expr

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
)

// logicNode is AND or OR with SQL's three-valued logic. The right operand
// is only evaluated for rows the left one does not decide (FALSE for AND,
// TRUE for OR), as Flink's generated code short-circuits: so
// `d <> 0 AND x / d > 1` does not fail on rows where d is 0.
type logicNode struct {
	and  bool
	l, r node
}

func (n *logicNode) typ() typ { return typ{k: kBool} }

func (n *logicNode) eval(ec *evalCtx) (vec, error) {
	lv, err := n.l.eval(ec)
	if err != nil {
		return vec{}, err
	}
	defer lv.release()
	if lv.isConst() && !lv.null {
		if lv.b != n.and { // FALSE AND x, TRUE OR x
			return vec{b: lv.b}, nil
		}
		return n.r.eval(ec) // TRUE AND x, FALSE OR x
	}
	rec := ec
	if !lv.isConst() {
		// Rows left decides are inactive for the right operand.
		active := decided(ec, lv.arr, n.and)
		rec = ec.withActive(active)
	}
	rv, err := n.r.eval(rec)
	if err != nil {
		return vec{}, err
	}
	defer rv.release()
	if rv.isConst() && !rv.null {
		if rv.b != n.and {
			return vec{b: rv.b}, nil
		}
		return retain(lv), nil
	}
	if lv.null && rv.null {
		return vec{null: true}, nil
	}
	nb := int(bitutil.BytesForBits(int64(ec.n)))
	ld, lval, lc, lcv := logicOperand(lv)
	rd, rval, rc, rcv := logicOperand(rv)
	vbuf, vb := newBuffer[byte](ec.mem, nb)
	dbuf, db := newBuffer[byte](ec.mem, nb)
	for j := range nb {
		ad, av, bd, bv := lc, lcv, rc, rcv
		if ld != nil {
			ad = ld[j]
		}
		if lval != nil {
			av = lval[j]
		}
		if rd != nil {
			bd = rd[j]
		}
		if rval != nil {
			bv = rval[j]
		}
		if n.and {
			vb[j] = av&bv | av&^ad | bv&^bd
			db[j] = ad & bd
		} else {
			vb[j] = av&bv | av&ad | bv&bd
			db[j] = ad | bd
		}
	}
	nulls := ec.n - bitutil.CountSetBits(vb, 0, ec.n)
	if nulls == 0 {
		vbuf.Release()
		vbuf = nil
	}
	return vec{arr: makeArray(arrow.FixedWidthTypes.Boolean, ec.n, vbuf, nulls, dbuf)}, nil
}

// logicOperand returns the data and validity bytes of a boolean operand,
// or, for a constant, the byte every position has (nil slices).
func logicOperand(v vec) (data, valid []byte, cdata, cvalid byte) {
	if v.isConst() {
		if v.null {
			return nil, nil, 0, 0
		}
		if v.b {
			return nil, nil, 0xff, 0xff
		}
		return nil, nil, 0, 0xff
	}
	data = boolBits(v.arr)
	valid = validBits(v.arr)
	if valid == nil {
		cvalid = 0xff
	}
	return data, valid, 0, cvalid
}

// decided returns the rows of ec still active after the left side of
// AND (and) or OR (!and) has been evaluated to l: those where l is not
// the deciding value.
func decided(ec *evalCtx, l arrow.Array, and bool) []byte {
	nb := int(bitutil.BytesForBits(int64(ec.n)))
	out := make([]byte, nb)
	d := boolBits(l)
	v := validBits(l)
	for j := range nb {
		dec := d[j] // OR: valid TRUE decides
		if and {
			dec = ^d[j] // AND: valid FALSE decides
		}
		if v != nil {
			dec &= v[j]
		}
		out[j] = ^dec
		if ec.active != nil {
			out[j] &= ec.active[j]
		}
	}
	return out
}

func retain(v vec) vec {
	if v.arr != nil {
		v.arr.Retain()
	}
	return v
}

// notNode is NOT: NULL stays NULL.
type notNode struct{ x node }

func (n *notNode) typ() typ { return typ{k: kBool} }

func (n *notNode) eval(ec *evalCtx) (vec, error) {
	v, err := n.x.eval(ec)
	if err != nil || v.isConst() {
		return vec{null: v.null, b: !v.b}, err
	}
	defer v.release()
	valid, nulls := andValidity(ec.mem, ec.n, v.arr)
	buf, out := newBuffer[byte](ec.mem, int(bitutil.BytesForBits(int64(ec.n))))
	for j, b := range boolBits(v.arr)[:len(out)] {
		out[j] = ^b
	}
	return vec{arr: makeArray(arrow.FixedWidthTypes.Boolean, ec.n, valid, nulls, buf)}, nil
}

// isNullNode is IS [NOT] NULL, which is never NULL itself.
type isNullNode struct {
	x   node
	not bool
}

func (n *isNullNode) typ() typ { return typ{k: kBool} }

func (n *isNullNode) eval(ec *evalCtx) (vec, error) {
	v, err := n.x.eval(ec)
	if err != nil {
		return vec{}, err
	}
	defer v.release()
	if v.isConst() {
		return vec{b: v.null != n.not}, nil
	}
	if v.arr.NullN() == 0 {
		return vec{b: n.not}, nil
	}
	buf, out := newBuffer[byte](ec.mem, int(bitutil.BytesForBits(int64(ec.n))))
	for j, b := range validBits(v.arr)[:len(out)] {
		if n.not {
			out[j] = b
		} else {
			out[j] = ^b
		}
	}
	return vec{arr: makeArray(arrow.FixedWidthTypes.Boolean, ec.n, nil, 0, buf)}, nil
}

// caseNode is a searched CASE; a simple CASE is rewritten into one by the
// checker. Each THEN is evaluated only for the rows its WHEN takes, so a
// guarded division cannot fail on rows it does not serve.
type caseNode struct {
	conds, vals []node
	els         node // nil means ELSE NULL
	t           typ
}

func (n *caseNode) typ() typ { return n.t }

func (n *caseNode) eval(ec *evalCtx) (vec, error) {
	nb := int(bitutil.BytesForBits(int64(ec.n)))
	rem := make([]byte, nb)
	if ec.active != nil {
		copy(rem, ec.active)
	} else {
		for j := range rem {
			rem[j] = 0xff
		}
	}
	taken := make([][]byte, len(n.conds))
	for k, c := range n.conds {
		cv, err := c.eval(ec.withActive(rem))
		if err != nil {
			return vec{}, err
		}
		t := make([]byte, nb)
		switch {
		case cv.isConst():
			if !cv.null && cv.b {
				copy(t, rem)
			}
		default:
			d, v := boolBits(cv.arr), validBits(cv.arr)
			for j := range t {
				t[j] = rem[j] & d[j]
				if v != nil {
					t[j] &= v[j]
				}
			}
		}
		cv.release()
		for j := range rem {
			rem[j] &^= t[j]
		}
		taken[k] = t
	}
	res := vec{null: true}
	if n.els != nil && anySet(rem, ec.n) {
		v, err := n.els.eval(ec.withActive(rem))
		if err != nil {
			return vec{}, err
		}
		res = v
	}
	for k := len(n.vals) - 1; k >= 0; k-- {
		if !anySet(taken[k], ec.n) {
			continue
		}
		v, err := n.vals[k].eval(ec.withActive(taken[k]))
		if err != nil {
			res.release()
			return vec{}, err
		}
		res = ifElse(ec, taken[k], v, res, n.t)
	}
	return res, nil
}

func anySet(bits []byte, n int) bool {
	return bitutil.CountSetBits(bits, 0, n) > 0
}

// coalesceNode is COALESCE: the first non-NULL argument. Each argument is
// only evaluated for the rows still NULL after the earlier ones.
type coalesceNode struct {
	args []node
	t    typ
}

func (n *coalesceNode) typ() typ { return n.t }

func (n *coalesceNode) eval(ec *evalCtx) (vec, error) {
	res, err := n.args[0].eval(ec)
	if err != nil {
		return vec{}, err
	}
	for _, a := range n.args[1:] {
		if !res.null && (res.isConst() || res.arr.NullN() == 0) {
			break
		}
		var mask []byte // rows res already has a value for
		active := ec.active
		if !res.isConst() {
			mask = validBits(res.arr)
			active = make([]byte, bitutil.BytesForBits(int64(ec.n)))
			for j := range active {
				active[j] = ^mask[j]
				if ec.active != nil {
					active[j] &= ec.active[j]
				}
			}
		}
		v, err := a.eval(ec.withActive(active))
		if err != nil {
			res.release()
			return vec{}, err
		}
		if res.isConst() { // constant NULL so far
			res = v
			continue
		}
		res = ifElse(ec, mask, res, v, n.t)
	}
	return res, nil
}

// ifElse returns, per row, a where mask is set and b elsewhere. It
// consumes a and b.
func ifElse(ec *evalCtx, mask []byte, a, b vec, t typ) vec {
	defer a.release()
	defer b.release()
	n := ec.n
	// Validity: the chosen side's.
	av, bv := validSrc(a), validSrc(b)
	valid, vb := newBitmap(ec.mem, n)
	for i := range n {
		var ok bool
		if bitutil.BitIsSet(mask, i) {
			ok = av.at(i)
		} else {
			ok = bv.at(i)
		}
		if ok {
			bitutil.SetBit(vb, i)
		}
	}
	nulls := n - bitutil.CountSetBits(vb, 0, n)
	if nulls == 0 {
		valid.Release()
		valid = nil
	}
	switch t.k {
	case kInt, kTime:
		buf, out := newBuffer[int64](ec.mem, n)
		pick(mask, out, intOperand(a), intOperand(b), a.i, b.i)
		return vec{arr: makeArray(t.arrowType(), n, valid, nulls, buf)}
	case kFloat:
		buf, out := newBuffer[float64](ec.mem, n)
		pick(mask, out, floatOperand(a), floatOperand(b), a.f, b.f)
		return vec{arr: makeArray(t.arrowType(), n, valid, nulls, buf)}
	case kBool:
		buf, out := newBitmap(ec.mem, n)
		ab, bb := boolSrc(a), boolSrc(b)
		for i := range n {
			var x bool
			if bitutil.BitIsSet(mask, i) {
				x = ab.at(i)
			} else {
				x = bb.at(i)
			}
			if x {
				bitutil.SetBit(out, i)
			}
		}
		return vec{arr: makeArray(t.arrowType(), n, valid, nulls, buf)}
	default:
		// kString, handled below.
	}
	if valid != nil {
		valid.Release()
	}
	// kString
	as, bs := stringsOf(a), stringsOf(b)
	sb := array.NewStringBuilder(ec.mem)
	defer sb.Release()
	sb.Reserve(n)
	for i := range n {
		switch {
		case bitutil.BitIsSet(mask, i) && av.at(i):
			sb.Append(as.at(i))
		case !bitutil.BitIsSet(mask, i) && bv.at(i):
			sb.Append(bs.at(i))
		default:
			sb.AppendNull()
		}
	}
	return vec{arr: sb.NewArray()}
}

func pick[T int64 | float64](mask []byte, out, a, b []T, ca, cb T) {
	for i := range out {
		if bitutil.BitIsSet(mask, i) {
			if a != nil {
				out[i] = a[i]
			} else {
				out[i] = ca
			}
		} else {
			if b != nil {
				out[i] = b[i]
			} else {
				out[i] = cb
			}
		}
	}
}

// bitSrc reads a bitmap or a constant bit.
type bitSrc struct {
	bits []byte
	c    bool
}

func (s bitSrc) at(i int) bool {
	if s.bits != nil {
		return bitutil.BitIsSet(s.bits, i)
	}
	return s.c
}

func validSrc(v vec) bitSrc {
	if v.isConst() {
		return bitSrc{c: !v.null}
	}
	if b := validBits(v.arr); b != nil {
		return bitSrc{bits: b}
	}
	return bitSrc{c: true}
}

func boolSrc(v vec) bitSrc {
	if v.isConst() {
		return bitSrc{c: v.b}
	}
	return bitSrc{bits: boolBits(v.arr)}
}
