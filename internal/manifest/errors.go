package manifest

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// MaxErrors bounds how many problems one Parse reports. A manifest with more
// is cut at MaxErrors and ends with a "too many errors" entry, as the Go
// compiler does: the first screenful is what a person fixes first.
const MaxErrors = 20

// Error is one problem with a manifest, placed where a person would fix it.
//
// Line and Column are 1-based and count characters (not bytes) on the line;
// both are 0 when the problem has no place in the file (an unreadable or
// empty file). Field is the path of the offending key in manifest terms,
// e.g. "steps[2].parallelism" or "steps[1].map.doubled", never the proto
// path ("graph.vertices[2].parallelism"); it is empty for YAML syntax errors.
type Error struct {
	File   string
	Line   int
	Column int
	Field  string
	Msg    string
	// Err is the underlying error where there is one: the goccy/go-yaml
	// syntax error, or the *jobgraph.Error (which may wrap an *expr.Error).
	// Problems found while decoding or by protovalidate have none.
	Err error
}

// Error reads like a compiler's message so editors can jump to it:
//
//	job.yaml:12:5: steps[2].parallelism: must be greater than or equal to 0
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:%d:", e.Line, e.Column)
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying error, if any.
func (e *Error) Unwrap() error { return e.Err }

// Errors is every problem Parse found, in file order, at most MaxErrors+1
// entries long. It is never empty when returned as an error.
type Errors []*Error

// Error joins the problems one per line.
func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap lets errors.Is and errors.As look at every problem.
func (es Errors) Unwrap() []error {
	errs := make([]error, len(es))
	for i, e := range es {
		errs[i] = e
	}
	return errs
}

// finish sorts es by position (problems without one first, then by line and
// column, ties in the order found) and bounds it to MaxErrors.
func (es Errors) finish(file string) Errors {
	slices.SortStableFunc(es, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	if len(es) > MaxErrors {
		n := len(es) - MaxErrors
		es = append(es[:MaxErrors:MaxErrors], &Error{File: file, Msg: fmt.Sprintf("too many errors (%d more not shown)", n)})
	}
	return es
}
