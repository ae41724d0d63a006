package expr

import (
	"fmt"
	"strings"
)

// tokKind classifies a token.
type tokKind uint8

const (
	tEOF    tokKind = iota
	tIdent          // bare identifier or keyword; keywords are recognised by the parser
	tQIdent         // `quoted identifier`, never a keyword
	tInt            // integer literal
	tFloat          // decimal or exponent literal
	tString         // 'string' literal, value unescaped
	tOp             // operator or punctuation: + - * / % || = <> != < <= > >= ( ) ,
)

// token is one lexeme. text is the unescaped value for strings and quoted
// identifiers, the source text otherwise; off is the byte offset in the
// expression.
type token struct {
	kind tokKind
	text string
	off  int
}

// describe names the token in error messages.
func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of expression"
	case tString:
		return fmt.Sprintf("string '%s'", strings.ReplaceAll(t.text, "'", "''"))
	case tQIdent:
		return fmt.Sprintf("`%s`", t.text)
	default:
		return fmt.Sprintf("%q", t.text)
	}
}

// lex splits src into tokens, ending with a tEOF token at len(src).
func lex(src string) ([]token, *Error) {
	var toks []token
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
		case c == '-' && i+1 < len(src) && src[i+1] == '-':
			// SQL line comment.
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			toks = append(toks, token{kind: tIdent, text: src[i:j], off: i})
			i = j
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(src) && src[i+1] >= '0' && src[i+1] <= '9':
			j, kind, err := lexNumber(src, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{kind: kind, text: src[i:j], off: i})
			i = j
		case c == '\'':
			s, j, err := lexQuoted(src, i, '\'', "string")
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{kind: tString, text: s, off: i})
			i = j
		case c == '`':
			s, j, err := lexQuoted(src, i, '`', "quoted identifier")
			if err != nil {
				return nil, err
			}
			if s == "" {
				return nil, &Error{Src: src, Offset: i, Msg: "empty quoted identifier"}
			}
			toks = append(toks, token{kind: tQIdent, text: s, off: i})
			i = j
		default:
			n := opLen(src[i:])
			if n == 0 {
				return nil, &Error{Src: src, Offset: i, Msg: fmt.Sprintf("unexpected character %q", rune0(src[i:]))}
			}
			toks = append(toks, token{kind: tOp, text: src[i : i+n], off: i})
			i += n
		}
	}
	toks = append(toks, token{kind: tEOF, off: len(src)})
	return toks, nil
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func isIdentPart(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9' || c == '$'
}

// lexNumber scans a numeric literal starting at i: digits, an optional
// fraction and an optional exponent. Any fraction or exponent makes it a
// float.
func lexNumber(src string, i int) (int, tokKind, *Error) {
	j := i
	kind := tInt
	for j < len(src) && isDigit(src[j]) {
		j++
	}
	if j < len(src) && src[j] == '.' {
		kind = tFloat
		j++
		for j < len(src) && isDigit(src[j]) {
			j++
		}
	}
	if j < len(src) && (src[j] == 'e' || src[j] == 'E') {
		k := j + 1
		if k < len(src) && (src[k] == '+' || src[k] == '-') {
			k++
		}
		if k >= len(src) || !isDigit(src[k]) {
			return 0, 0, &Error{Src: src, Offset: i, Msg: fmt.Sprintf("malformed number %q: exponent needs digits", src[i:k])}
		}
		for k < len(src) && isDigit(src[k]) {
			k++
		}
		kind = tFloat
		j = k
	}
	if j < len(src) && isIdentStart(src[j]) {
		return 0, 0, &Error{Src: src, Offset: i, Msg: fmt.Sprintf("malformed number %q", src[i:j+1])}
	}
	return j, kind, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// lexQuoted scans a literal delimited by q starting at i, where a doubled
// q stands for one q. It returns the unescaped value and the offset after
// the closing quote.
func lexQuoted(src string, i int, q byte, what string) (string, int, *Error) {
	var b strings.Builder
	j := i + 1
	start := j
	escaped := false
	for {
		if j >= len(src) {
			return "", 0, &Error{Src: src, Offset: i, Msg: fmt.Sprintf("unterminated %s: missing closing %c", what, q)}
		}
		if src[j] == q {
			if j+1 < len(src) && src[j+1] == q {
				b.WriteString(src[start : j+1])
				j += 2
				start = j
				escaped = true
				continue
			}
			break
		}
		j++
	}
	if !escaped {
		return src[start:j], j + 1, nil
	}
	b.WriteString(src[start:j])
	return b.String(), j + 1, nil
}

// opLen returns the length of the operator at the start of s, or 0.
func opLen(s string) int {
	if len(s) >= 2 {
		switch s[:2] {
		case "<>", "!=", "<=", ">=", "||":
			return 2
		}
	}
	switch s[0] {
	case '+', '-', '*', '/', '%', '=', '<', '>', '(', ')', ',':
		return 1
	}
	return 0
}

func rune0(s string) rune {
	for _, r := range s {
		return r
	}
	return 0
}
