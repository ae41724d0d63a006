package expr

import (
	"fmt"
	"strings"
)

// astKind is the syntactic form of an AST node.
type astKind uint8

const (
	aLit     astKind = iota // tok is the literal (tInt, tFloat, tString) or TRUE/FALSE/NULL
	aCol                    // tok.text is the column name
	aUnary                  // op is "-", "+" or "NOT"; args[0]
	aBinary                 // op is an operator or AND/OR; args[0], args[1]
	aIsNull                 // args[0] IS [NOT] NULL; not means IS NOT NULL
	aBetween                // args[0] [NOT] BETWEEN args[1] AND args[2]
	aIn                     // args[0] [NOT] IN (args[1:]...)
	aCall                   // op is the upper-cased function name
	aCast                   // CAST(args[0] AS op)
	aCase                   // CASE [args[0]] WHEN ... ; see parseCase
)

// ast is the parse tree. Every node keeps the offset of the token that
// names it, so type errors point at the operator or function at fault.
type ast struct {
	kind astKind
	off  int
	op   string
	not  bool
	tok  token
	args []*ast
	// For aCase: subject is the operand of a simple CASE (nil for a
	// searched CASE), whens/thens pair up, els may be nil.
	subject      *ast
	whens, thens []*ast
	els          *ast
}

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 200

type parser struct {
	src   string
	toks  []token
	pos   int
	depth int
}

func parse(src string) (*ast, *Error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{src: src, toks: toks}
	if p.peek().kind == tEOF {
		return nil, p.errf(p.peek().off, "empty expression")
	}
	e, err := p.expr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.errf(t.off, "expected end of expression but found %s", t.describe())
	}
	return e, nil
}

func (p *parser) peek() token { return p.toks[p.pos] }

func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tEOF {
		p.pos++
	}
	return t
}

func (p *parser) errf(off int, format string, args ...any) *Error {
	return &Error{Src: p.src, Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// isKw reports whether t is the (case-insensitive) keyword kw.
func isKw(t token, kw string) bool {
	return t.kind == tIdent && strings.EqualFold(t.text, kw)
}

func isOp(t token, op string) bool { return t.kind == tOp && t.text == op }

// acceptKw consumes the keyword kw if it is next.
func (p *parser) acceptKw(kw string) bool {
	if isKw(p.peek(), kw) {
		p.pos++
		return true
	}
	return false
}

func (p *parser) expectOp(op string) (token, *Error) {
	t := p.peek()
	if !isOp(t, op) {
		return t, p.errf(t.off, "expected %q but found %s", op, t.describe())
	}
	return p.next(), nil
}

func (p *parser) expectKw(kw string) *Error {
	t := p.peek()
	if !isKw(t, kw) {
		return p.errf(t.off, "expected %s but found %s", kw, t.describe())
	}
	p.pos++
	return nil
}

// isReserved reports whether s is a keyword that cannot be a bare column
// name; quote such a column with backquotes.
func isReserved(s string) bool {
	if len(s) > 7 {
		return false
	}
	switch strings.ToUpper(s) {
	case "AND", "OR", "NOT", "IS", "NULL", "TRUE", "FALSE", "BETWEEN", "IN",
		"CASE", "WHEN", "THEN", "ELSE", "END", "CAST", "AS":
		return true
	}
	return false
}

func (p *parser) enter() *Error {
	p.depth++
	if p.depth > maxDepth {
		return p.errf(p.peek().off, "expression nested deeper than %d levels", maxDepth)
	}
	return nil
}

func (p *parser) expr() (*ast, *Error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	return p.or()
}

func (p *parser) or() (*ast, *Error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for isKw(p.peek(), "OR") {
		t := p.next()
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = &ast{kind: aBinary, off: t.off, op: "OR", args: []*ast{l, r}}
	}
	return l, nil
}

func (p *parser) and() (*ast, *Error) {
	l, err := p.not()
	if err != nil {
		return nil, err
	}
	for isKw(p.peek(), "AND") {
		t := p.next()
		r, err := p.not()
		if err != nil {
			return nil, err
		}
		l = &ast{kind: aBinary, off: t.off, op: "AND", args: []*ast{l, r}}
	}
	return l, nil
}

func (p *parser) not() (*ast, *Error) {
	if isKw(p.peek(), "NOT") {
		t := p.next()
		if err := p.enter(); err != nil {
			return nil, err
		}
		x, err := p.not()
		p.depth--
		if err != nil {
			return nil, err
		}
		return &ast{kind: aUnary, off: t.off, op: "NOT", args: []*ast{x}}, nil
	}
	return p.comparison()
}

func isCmpOp(t token) bool {
	if t.kind != tOp {
		return false
	}
	switch t.text {
	case "=", "<>", "!=", "<", "<=", ">", ">=":
		return true
	}
	return false
}

func (p *parser) comparison() (*ast, *Error) {
	l, err := p.concat()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		switch {
		case isCmpOp(t):
			p.next()
			r, err := p.concat()
			if err != nil {
				return nil, err
			}
			op := t.text
			if op == "!=" {
				op = "<>"
			}
			l = &ast{kind: aBinary, off: t.off, op: op, args: []*ast{l, r}}
		case isKw(t, "IS"):
			p.next()
			neg := p.acceptKw("NOT")
			if err := p.expectKw("NULL"); err != nil {
				return nil, err
			}
			l = &ast{kind: aIsNull, off: t.off, not: neg, args: []*ast{l}}
		case isKw(t, "BETWEEN"), isKw(t, "IN"),
			isKw(t, "NOT") && (isKw(p.toks[p.pos+1], "BETWEEN") || isKw(p.toks[p.pos+1], "IN")):
			p.next()
			neg := false
			if isKw(t, "NOT") {
				neg = true
				t = p.next()
			}
			if isKw(t, "BETWEEN") {
				lo, err := p.concat()
				if err != nil {
					return nil, err
				}
				if err := p.expectKw("AND"); err != nil {
					return nil, err
				}
				hi, err := p.concat()
				if err != nil {
					return nil, err
				}
				l = &ast{kind: aBetween, off: t.off, not: neg, args: []*ast{l, lo, hi}}
				continue
			}
			if _, err := p.expectOp("("); err != nil {
				return nil, err
			}
			args := []*ast{l}
			for {
				x, err := p.expr()
				if err != nil {
					return nil, err
				}
				args = append(args, x)
				if isOp(p.peek(), ",") {
					p.next()
					continue
				}
				break
			}
			if _, err := p.expectOp(")"); err != nil {
				return nil, err
			}
			l = &ast{kind: aIn, off: t.off, not: neg, args: args}
		default:
			return l, nil
		}
	}
}

func (p *parser) concat() (*ast, *Error) {
	l, err := p.additive()
	if err != nil {
		return nil, err
	}
	for isOp(p.peek(), "||") {
		t := p.next()
		r, err := p.additive()
		if err != nil {
			return nil, err
		}
		l = &ast{kind: aBinary, off: t.off, op: "||", args: []*ast{l, r}}
	}
	return l, nil
}

func (p *parser) additive() (*ast, *Error) {
	l, err := p.multiplicative()
	if err != nil {
		return nil, err
	}
	for isOp(p.peek(), "+") || isOp(p.peek(), "-") {
		t := p.next()
		r, err := p.multiplicative()
		if err != nil {
			return nil, err
		}
		l = &ast{kind: aBinary, off: t.off, op: t.text, args: []*ast{l, r}}
	}
	return l, nil
}

func (p *parser) multiplicative() (*ast, *Error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for isOp(p.peek(), "*") || isOp(p.peek(), "/") || isOp(p.peek(), "%") {
		t := p.next()
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = &ast{kind: aBinary, off: t.off, op: t.text, args: []*ast{l, r}}
	}
	return l, nil
}

func (p *parser) unary() (*ast, *Error) {
	t := p.peek()
	if !isOp(t, "-") && !isOp(t, "+") {
		return p.primary()
	}
	p.next()
	// Fold a sign into an integer literal, so -9223372036854775808 (whose
	// magnitude does not fit in BIGINT) is still a valid literal.
	if n := p.peek(); t.text == "-" && (n.kind == tInt || n.kind == tFloat) {
		p.next()
		return &ast{kind: aLit, off: t.off, tok: token{kind: n.kind, text: "-" + n.text, off: t.off}}, nil
	}
	if err := p.enter(); err != nil {
		return nil, err
	}
	x, err := p.unary()
	p.depth--
	if err != nil {
		return nil, err
	}
	return &ast{kind: aUnary, off: t.off, op: t.text, args: []*ast{x}}, nil
}

func (p *parser) primary() (*ast, *Error) {
	t := p.peek()
	switch t.kind {
	case tInt, tFloat, tString:
		p.next()
		return &ast{kind: aLit, off: t.off, tok: t}, nil
	case tQIdent:
		p.next()
		return &ast{kind: aCol, off: t.off, tok: t}, nil
	case tOp:
		if t.text == "(" {
			p.next()
			x, err := p.expr()
			if err != nil {
				return nil, err
			}
			if _, err := p.expectOp(")"); err != nil {
				return nil, err
			}
			return x, nil
		}
	case tIdent:
		switch {
		case isKw(t, "TRUE"), isKw(t, "FALSE"), isKw(t, "NULL"):
			p.next()
			return &ast{kind: aLit, off: t.off, tok: t}, nil
		case isKw(t, "CAST"):
			return p.cast()
		case isKw(t, "CASE"):
			return p.caseExpr()
		case isReserved(t.text):
			return nil, p.errf(t.off, "expected an operand but found keyword %s (quote a column named so with backquotes)", strings.ToUpper(t.text))
		}
		p.next()
		if isOp(p.peek(), "(") {
			return p.call(t)
		}
		return &ast{kind: aCol, off: t.off, tok: t}, nil
	default:
		// tEOF is reported below.
	}
	return nil, p.errf(t.off, "expected an operand but found %s", t.describe())
}

func (p *parser) call(name token) (*ast, *Error) {
	p.next() // (
	c := &ast{kind: aCall, off: name.off, op: strings.ToUpper(name.text)}
	if isOp(p.peek(), ")") {
		p.next()
		return c, nil
	}
	for {
		x, err := p.expr()
		if err != nil {
			return nil, err
		}
		c.args = append(c.args, x)
		if isOp(p.peek(), ",") {
			p.next()
			continue
		}
		if _, err := p.expectOp(")"); err != nil {
			return nil, err
		}
		return c, nil
	}
}

func (p *parser) cast() (*ast, *Error) {
	t := p.next() // CAST
	if _, err := p.expectOp("("); err != nil {
		return nil, err
	}
	x, err := p.expr()
	if err != nil {
		return nil, err
	}
	if err := p.expectKw("AS"); err != nil {
		return nil, err
	}
	tt := p.peek()
	if tt.kind != tIdent {
		return nil, p.errf(tt.off, "expected a type name but found %s", tt.describe())
	}
	p.next()
	name := strings.ToUpper(tt.text)
	if name == "DOUBLE" && isKw(p.peek(), "PRECISION") {
		p.next()
	}
	if _, err := p.expectOp(")"); err != nil {
		return nil, err
	}
	return &ast{kind: aCast, off: t.off, op: name, tok: tt, args: []*ast{x}}, nil
}

func (p *parser) caseExpr() (*ast, *Error) {
	t := p.next() // CASE
	c := &ast{kind: aCase, off: t.off}
	if !isKw(p.peek(), "WHEN") && !isKw(p.peek(), "END") {
		s, err := p.expr()
		if err != nil {
			return nil, err
		}
		c.subject = s
	}
	for p.acceptKw("WHEN") {
		w, err := p.expr()
		if err != nil {
			return nil, err
		}
		if err := p.expectKw("THEN"); err != nil {
			return nil, err
		}
		th, err := p.expr()
		if err != nil {
			return nil, err
		}
		c.whens = append(c.whens, w)
		c.thens = append(c.thens, th)
	}
	if len(c.whens) == 0 {
		n := p.peek()
		return nil, p.errf(n.off, "expected WHEN but found %s", n.describe())
	}
	if p.acceptKw("ELSE") {
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		c.els = e
	}
	if err := p.expectKw("END"); err != nil {
		return nil, err
	}
	return c, nil
}
