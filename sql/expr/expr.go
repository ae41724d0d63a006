package expr

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Expr is a compiled expression bound to one input schema. It is safe for use
// by one goroutine at a time; compile one per subtask.
type Expr struct {
	src    string
	schema *arrow.Schema
	typ    arrow.DataType
	root   node
	cols   []string
	// fused is Select's kernel for a condition of a fused shape, or nil.
	fused *cmpSelect
	// ec is the evaluation context of the current Eval or Select, kept
	// here so that it is not allocated per batch (an Expr is used by one
	// goroutine at a time); cleared afterwards so it retains no batch.
	ec evalCtx
}

// Compile parses src and type-checks it against schema. The error, if any,
// is an *Error naming the byte offset in src.
func Compile(src string, schema *arrow.Schema) (*Expr, error) {
	return compile(src, schema)
}

// Type is the Arrow type of the expression's result.
func (e *Expr) Type() arrow.DataType { return e.typ }

// Columns returns the names of the input columns the expression reads, in
// order of first reference. The caller must not modify the slice.
func (e *Expr) Columns() []string { return e.cols }

// String returns the source text.
func (e *Expr) String() string { return e.src }

// Eval evaluates the expression over every row of rec, whose schema must be
// the one the expression was compiled against, and returns an array of
// rec.NumRows() values of Type(). The caller releases the result.
func (e *Expr) Eval(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.Array, error) {
	return e.eval(ctx, mem, rec)
}
