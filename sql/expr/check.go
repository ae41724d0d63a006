package expr

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// checker turns the parse tree into a typed node tree: it resolves
// columns, checks operand types, inserts promotions, rewrites BETWEEN, IN
// and simple CASE, and folds constant subtrees.
type checker struct {
	src    string
	schema *arrow.Schema
	cols   []string // referenced columns, in order of first reference
	// fold is the allocator constant folding evaluates with.
	fold memory.Allocator
}

func compile(src string, schema *arrow.Schema) (*Expr, error) {
	if schema == nil {
		return nil, &Error{Src: src, Msg: "no input schema"}
	}
	a, perr := parse(src)
	if perr != nil {
		return nil, perr
	}
	c := &checker{src: src, schema: schema, fold: memory.NewGoAllocator()}
	root, err := c.check(a)
	if err != nil {
		return nil, err
	}
	if root.typ().k == kNull {
		return nil, c.errf(a.off, "expression is always NULL and has no type; write CAST(NULL AS <type>)")
	}
	return &Expr{src: src, schema: schema, typ: root.typ().arrowType(), root: root, cols: c.cols, fused: fuse(root)}, nil
}

func (e *Expr) eval(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.Array, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ec := e.newEvalCtx(ctx, mem, rec)
	defer e.doneEvalCtx()
	v, err := e.root.eval(ec)
	if err != nil {
		return nil, err
	}
	return materialize(ec, v, e.root.typ()), nil
}

// newEvalCtx returns e's evaluation context, set up for rec.
func (e *Expr) newEvalCtx(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) *evalCtx {
	e.ec = evalCtx{ctx: ctx, mem: mem, rec: rec, src: e.src, n: int(rec.NumRows())}
	return &e.ec
}

// doneEvalCtx drops the references e's evaluation context holds.
func (e *Expr) doneEvalCtx() { e.ec = evalCtx{} }

func (c *checker) errf(off int, format string, args ...any) *Error {
	return &Error{Src: c.src, Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// constant folding: a node whose operands are all constants is evaluated
// once at compile time. If that fails (1/0), the node is kept, so the
// error surfaces at evaluation, and only for rows that reach it.
func (c *checker) mk(n node, kids ...node) node {
	for _, k := range kids {
		if _, ok := k.(*litNode); !ok {
			return n
		}
	}
	ec := &evalCtx{ctx: context.Background(), mem: c.fold, n: 1}
	v, err := n.eval(ec)
	if err != nil {
		return n
	}
	if !v.isConst() {
		cv := constOf(v.arr)
		v.release()
		v = cv
	}
	return &litNode{t: n.typ(), v: v}
}

func (c *checker) check(a *ast) (node, *Error) {
	switch a.kind {
	case aLit:
		return c.literal(a)
	case aCol:
		return c.column(a)
	case aUnary:
		return c.unary(a)
	case aBinary:
		return c.binary(a)
	case aIsNull:
		x, err := c.check(a.args[0])
		if err != nil {
			return nil, err
		}
		return c.mk(&isNullNode{x: x, not: a.not}, x), nil
	case aBetween:
		return c.between(a)
	case aIn:
		return c.in(a)
	case aCall:
		return c.call(a)
	case aCast:
		return c.cast(a)
	case aCase:
		return c.caseExpr(a)
	}
	return nil, c.errf(a.off, "unsupported expression")
}

func (c *checker) literal(a *ast) (node, *Error) {
	t := a.tok
	switch t.kind {
	case tInt:
		v, err := strconv.ParseInt(t.text, 10, 64)
		if err != nil {
			return nil, c.errf(a.off, "integer literal %s is out of range for BIGINT", t.text)
		}
		return &litNode{t: typ{k: kInt}, v: vec{i: v}}, nil
	case tFloat:
		v, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return nil, c.errf(a.off, "number %s is out of range for DOUBLE", t.text)
		}
		return &litNode{t: typ{k: kFloat}, v: vec{f: v}}, nil
	case tString:
		return &litNode{t: typ{k: kString}, v: vec{s: t.text}}, nil
	default:
		// TRUE, FALSE or NULL keyword, handled below.
	}
	switch strings.ToUpper(t.text) {
	case "TRUE":
		return &litNode{t: typ{k: kBool}, v: vec{b: true}}, nil
	case "FALSE":
		return &litNode{t: typ{k: kBool}, v: vec{b: false}}, nil
	}
	return &litNode{t: typ{k: kNull}, v: vec{null: true}}, nil
}

func (c *checker) column(a *ast) (node, *Error) {
	name := a.tok.text
	idx := c.schema.FieldIndices(name)
	switch len(idx) {
	case 0:
		names := make([]string, c.schema.NumFields())
		for i, f := range c.schema.Fields() {
			names[i] = f.Name
		}
		hint := ""
		for _, f := range names {
			if strings.EqualFold(f, name) {
				hint = fmt.Sprintf("; column names are case-sensitive, did you mean %q?", f)
				break
			}
		}
		return nil, c.errf(a.off, "unknown column %q (columns: %s)%s", name, strings.Join(names, ", "), hint)
	case 1:
	default:
		return nil, c.errf(a.off, "column name %q is ambiguous: the schema has %d columns of that name", name, len(idx))
	}
	dt := c.schema.Field(idx[0]).Type
	t, ok := columnType(dt)
	if !ok {
		return nil, c.errf(a.off, "column %q has type %s, which expressions do not support", name, dt)
	}
	seen := false
	for _, n := range c.cols {
		seen = seen || n == name
	}
	if !seen {
		c.cols = append(c.cols, name)
	}
	return &colNode{idx: idx[0], name: name, dt: dt, t: t}, nil
}

// retype gives an untyped NULL operand the type t; any other node is
// converted to t if needed (BIGINT to DOUBLE is the only implicit one).
func retype(n node, t typ, off int) node {
	from := n.typ()
	if from.equal(t) {
		return n
	}
	if from.k == kNull {
		return &litNode{t: t, v: vec{null: true}}
	}
	return &castNode{x: n, from: from, to: t, off: off}
}

func (c *checker) unary(a *ast) (node, *Error) {
	x, err := c.check(a.args[0])
	if err != nil {
		return nil, err
	}
	t := x.typ()
	if a.op == "NOT" {
		if t.k != kBool && t.k != kNull {
			return nil, c.errf(a.off, "NOT needs a BOOLEAN, got %s", t)
		}
		return c.mk(&notNode{x: retype(x, typ{k: kBool}, a.off)}, x), nil
	}
	if !t.numeric() && t.k != kNull {
		return nil, c.errf(a.off, "unary %s needs a number, got %s", a.op, t)
	}
	if t.k == kNull {
		t = typ{k: kInt}
		x = retype(x, t, a.off)
	}
	if a.op == "+" {
		return x, nil
	}
	return c.mk(&negNode{x: x, t: t}, x), nil
}

func (c *checker) binary(a *ast) (node, *Error) {
	l, err := c.check(a.args[0])
	if err != nil {
		return nil, err
	}
	r, err := c.check(a.args[1])
	if err != nil {
		return nil, err
	}
	return c.binaryNodes(a.op, a.off, l, r)
}

// binaryNodes builds "l op r" from checked operands.
func (c *checker) binaryNodes(op string, off int, l, r node) (node, *Error) {
	lt, rt := l.typ(), r.typ()
	switch op {
	case "AND", "OR":
		if (lt.k != kBool && lt.k != kNull) || (rt.k != kBool && rt.k != kNull) {
			return nil, c.errf(off, "operator %s needs BOOLEAN operands, got %s and %s", op, lt, rt)
		}
		b := typ{k: kBool}
		l, r = retype(l, b, off), retype(r, b, off)
		return c.mk(&logicNode{and: op == "AND", l: l, r: r}, l, r), nil
	case "||":
		if (lt.k != kString && lt.k != kNull) || (rt.k != kString && rt.k != kNull) {
			return nil, c.errf(off, "operator || needs strings, got %s and %s (use CAST(x AS VARCHAR))", lt, rt)
		}
		s := typ{k: kString}
		l, r = retype(l, s, off), retype(r, s, off)
		return c.mk(&concatNode{args: []node{l, r}}, l, r), nil
	case "+", "-", "*", "/", "%":
		if (!lt.numeric() && lt.k != kNull) || (!rt.numeric() && rt.k != kNull) {
			return nil, c.errf(off, "operator %s needs numbers, got %s and %s", op, lt, rt)
		}
		t, _ := common(lt, rt)
		if t.k == kNull {
			t = typ{k: kInt}
		}
		l, r = retype(l, t, off), retype(r, t, off)
		return c.mk(&arithNode{op: op[0], l: l, r: r, t: t, off: off}, l, r), nil
	}
	// Comparison.
	t, ok := common(lt, rt)
	if !ok {
		return nil, c.errf(off, "operator %s cannot compare %s with %s", op, lt, rt)
	}
	if t.k == kNull {
		return &litNode{t: typ{k: kBool}, v: vec{null: true}}, nil
	}
	l, r = retype(l, t, off), retype(r, t, off)
	return c.mk(&cmpNode{op: cmpCode(op), l: l, r: r, k: t.k}, l, r), nil
}

// between rewrites x [NOT] BETWEEN lo AND hi to [NOT] (x >= lo AND x <= hi),
// which is its SQL meaning, NULLs included.
func (c *checker) between(a *ast) (node, *Error) {
	x, err := c.check(a.args[0])
	if err != nil {
		return nil, err
	}
	lo, err := c.check(a.args[1])
	if err != nil {
		return nil, err
	}
	hi, err := c.check(a.args[2])
	if err != nil {
		return nil, err
	}
	if _, ok := common(x.typ(), lo.typ()); !ok {
		return nil, c.errf(a.args[1].off, "BETWEEN cannot compare %s with lower bound %s", x.typ(), lo.typ())
	}
	if _, ok := common(x.typ(), hi.typ()); !ok {
		return nil, c.errf(a.args[2].off, "BETWEEN cannot compare %s with upper bound %s", x.typ(), hi.typ())
	}
	ge, err := c.binaryNodes(">=", a.off, x, lo)
	if err != nil {
		return nil, err
	}
	le, err := c.binaryNodes("<=", a.off, x, hi)
	if err != nil {
		return nil, err
	}
	n, err := c.binaryNodes("AND", a.off, ge, le)
	if err != nil {
		return nil, err
	}
	if a.not {
		return c.mk(&notNode{x: n}, n), nil
	}
	return n, nil
}

// in rewrites x [NOT] IN (a, b, ...) to [NOT] (x = a OR x = b OR ...),
// which is its SQL meaning, NULLs included.
func (c *checker) in(a *ast) (node, *Error) {
	x, err := c.check(a.args[0])
	if err != nil {
		return nil, err
	}
	var n node
	for _, ea := range a.args[1:] {
		e, err := c.check(ea)
		if err != nil {
			return nil, err
		}
		if _, ok := common(x.typ(), e.typ()); !ok {
			return nil, c.errf(ea.off, "IN list value of type %s cannot be compared with %s", e.typ(), x.typ())
		}
		eq, err := c.binaryNodes("=", ea.off, x, e)
		if err != nil {
			return nil, err
		}
		if n == nil {
			n = eq
			continue
		}
		if n, err = c.binaryNodes("OR", a.off, n, eq); err != nil {
			return nil, err
		}
	}
	if a.not {
		return c.mk(&notNode{x: retype(n, typ{k: kBool}, a.off)}, n), nil
	}
	return n, nil
}

// functionNames lists the functions, for the unknown-function error.
const functionNames = "ABS, CAST, CHAR_LENGTH, COALESCE, CONCAT, LOWER, MOD, UPPER"

func (c *checker) call(a *ast) (node, *Error) {
	arity := func(want int) *Error {
		if len(a.args) != want {
			return c.errf(a.off, "function %s takes %d argument%s, got %d", a.op, want, plural(want), len(a.args))
		}
		return nil
	}
	switch a.op {
	case "ABS", "LOWER", "UPPER", "CHAR_LENGTH", "CHARACTER_LENGTH", "MOD":
	case "CONCAT", "COALESCE":
		if len(a.args) == 0 {
			return nil, c.errf(a.off, "function %s needs at least one argument", a.op)
		}
	default:
		return nil, c.errf(a.off, "unknown function %s (functions: %s)", a.op, functionNames)
	}
	args := make([]node, len(a.args))
	for i, x := range a.args {
		n, err := c.check(x)
		if err != nil {
			return nil, err
		}
		args[i] = n
	}
	switch a.op {
	case "MOD":
		if err := arity(2); err != nil {
			return nil, err
		}
		lt, rt := args[0].typ(), args[1].typ()
		if (!lt.numeric() && lt.k != kNull) || (!rt.numeric() && rt.k != kNull) {
			return nil, c.errf(a.off, "function MOD needs numbers, got %s and %s", lt, rt)
		}
		return c.binaryNodes("%", a.off, args[0], args[1])
	case "ABS":
		if err := arity(1); err != nil {
			return nil, err
		}
		t := args[0].typ()
		if !t.numeric() && t.k != kNull {
			return nil, c.errf(a.off, "function ABS needs a number, got %s", t)
		}
		if t.k == kNull {
			t = typ{k: kInt}
		}
		x := retype(args[0], t, a.off)
		return c.mk(&funcNode{fn: fnAbs, x: x, t: t}, x), nil
	case "LOWER", "UPPER", "CHAR_LENGTH", "CHARACTER_LENGTH":
		if err := arity(1); err != nil {
			return nil, err
		}
		t := args[0].typ()
		if t.k != kString && t.k != kNull {
			return nil, c.errf(a.off, "function %s needs a VARCHAR, got %s", a.op, t)
		}
		x := retype(args[0], typ{k: kString}, a.off)
		fn, rt := fnLower, typ{k: kString}
		switch a.op {
		case "UPPER":
			fn = fnUpper
		case "CHAR_LENGTH", "CHARACTER_LENGTH":
			fn, rt = fnCharLength, typ{k: kInt}
		}
		return c.mk(&funcNode{fn: fn, x: x, t: rt}, x), nil
	case "CONCAT":
		for i, x := range args {
			if t := x.typ(); t.k != kString && t.k != kNull {
				return nil, c.errf(a.args[i].off, "function CONCAT needs VARCHAR arguments, got %s for argument %d (use CAST(x AS VARCHAR))", t, i+1)
			}
			args[i] = retype(x, typ{k: kString}, a.off)
		}
		return c.mk(&concatNode{args: args}, args...), nil
	}
	// COALESCE
	t, err := c.unify(a.op, a.args, args)
	if err != nil {
		return nil, err
	}
	if t.k == kNull {
		return &litNode{t: t, v: vec{null: true}}, nil
	}
	for i := range args {
		args[i] = retype(args[i], t, a.args[i].off)
	}
	if len(args) == 1 {
		return args[0], nil
	}
	return c.mk(&coalesceNode{args: args, t: t}, args...), nil
}

// unify finds the common type of the values of COALESCE or CASE.
func (c *checker) unify(what string, as []*ast, ns []node) (typ, *Error) {
	t := typ{k: kNull}
	for i, n := range ns {
		u, ok := common(t, n.typ())
		if !ok {
			return typ{}, c.errf(as[i].off, "%s values must have one type, but %s does not go with %s", what, n.typ(), t)
		}
		t = u
	}
	return t, nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// castTypeNames lists the CAST targets, for the unknown-type error.
const castTypeNames = "BIGINT, INT, INTEGER, SMALLINT, TINYINT, DOUBLE, FLOAT, REAL, VARCHAR, STRING, BOOLEAN"

func (c *checker) cast(a *ast) (node, *Error) {
	x, err := c.check(a.args[0])
	if err != nil {
		return nil, err
	}
	var to typ
	narrow := ""
	switch a.op {
	case "BIGINT":
		to = typ{k: kInt}
	case "INT", "INTEGER":
		to, narrow = typ{k: kInt}, "INT"
	case "SMALLINT", "TINYINT":
		to, narrow = typ{k: kInt}, a.op
	case "DOUBLE":
		to = typ{k: kFloat}
	case "FLOAT", "REAL":
		to, narrow = typ{k: kFloat}, "FLOAT"
	case "VARCHAR", "STRING":
		to = typ{k: kString}
	case "BOOLEAN":
		to = typ{k: kBool}
	default:
		return nil, c.errf(a.tok.off, "unknown type %s in CAST (types: %s)", a.tok.text, castTypeNames)
	}
	from := x.typ()
	if from.k == kNull {
		return &litNode{t: to, v: vec{null: true}}, nil
	}
	if from.k == kTime {
		return nil, c.errf(a.off, "CAST from %s to %s is not supported", from, a.op)
	}
	return c.mk(&castNode{x: x, from: from, to: to, narrow: narrow, off: a.off}, x), nil
}

func (c *checker) caseExpr(a *ast) (node, *Error) {
	var subject node
	if a.subject != nil {
		s, err := c.check(a.subject)
		if err != nil {
			return nil, err
		}
		subject = s
	}
	conds := make([]node, len(a.whens))
	for i, w := range a.whens {
		cn, err := c.check(w)
		if err != nil {
			return nil, err
		}
		if subject != nil {
			// CASE x WHEN v THEN ... is CASE WHEN x = v THEN ...
			if _, ok := common(subject.typ(), cn.typ()); !ok {
				return nil, c.errf(w.off, "CASE operand of type %s cannot be compared with WHEN value of type %s", subject.typ(), cn.typ())
			}
			if cn, err = c.binaryNodes("=", w.off, subject, cn); err != nil {
				return nil, err
			}
		} else if t := cn.typ(); t.k != kBool && t.k != kNull {
			return nil, c.errf(w.off, "WHEN condition must be BOOLEAN, got %s", t)
		}
		conds[i] = retype(cn, typ{k: kBool}, w.off)
	}
	valAsts := append([]*ast(nil), a.thens...)
	if a.els != nil {
		valAsts = append(valAsts, a.els)
	}
	vals := make([]node, len(valAsts))
	for i, v := range valAsts {
		n, err := c.check(v)
		if err != nil {
			return nil, err
		}
		vals[i] = n
	}
	t, err := c.unify("CASE", valAsts, vals)
	if err != nil {
		return nil, err
	}
	if t.k == kNull {
		return &litNode{t: t, v: vec{null: true}}, nil
	}
	for i := range vals {
		vals[i] = retype(vals[i], t, valAsts[i].off)
	}
	n := &caseNode{conds: conds, vals: vals[:len(a.thens)], t: t}
	if a.els != nil {
		n.els = vals[len(vals)-1]
	}
	return c.mk(n, append(append([]node(nil), conds...), vals...)...), nil
}
